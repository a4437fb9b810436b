from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from classes.grades import format_grade, parse_grade


@pytest.mark.parametrize(
    ("raw", "field", "expected"),
    [
        ("10,5", "average", Decimal("10.50")),
        ("10.5", "average", Decimal("10.50")),
        (" 14 ", "average", Decimal("14.00")),
        ("0", "average", Decimal("0.00")),
        ("20", "average", Decimal("20.00")),
        ("12,25", "average", Decimal("12.25")),
        ("7", "behaviour", Decimal("7.0")),
        ("7,5", "work", Decimal("7.5")),
        ("", "average", None),
        ("   ", "participation", None),
        (None, "work", None),
        (Decimal("9.5"), "work", Decimal("9.5")),
    ],
)
def test_parse_accepts_french_and_english_decimals(raw, field, expected):
    assert parse_grade(raw, field=field) == expected


@pytest.mark.parametrize(
    ("raw", "field", "message_part"),
    [
        ("21", "average", "entre 0 et 20"),
        ("-1", "average", "entre 0 et 20"),
        ("abc", "average", "n'est pas un nombre"),
        ("10,5,2", "average", "n'est pas un nombre"),
        ("11", "behaviour", "entre 0 et 10"),
        ("NaN", "work", "n'est pas un nombre"),
        ("Infinity", "work", "n'est pas un nombre"),
        ("1e1", "average", "n'est pas un nombre"),
        ("1_0", "average", "n'est pas un nombre"),
        (" 1 2 ", "average", "n'est pas un nombre"),
        ("٩", "average", "n'est pas un nombre"),
        ("９", "work", "n'est pas un nombre"),
        ("12,345", "average", "décimale"),
        ("7,25", "behaviour", "décimale"),
    ],
)
def test_parse_rejects_with_french_message(raw, field, message_part):
    with pytest.raises(ValidationError) as excinfo:
        parse_grade(raw, field=field)
    assert message_part in " ".join(excinfo.value.messages)


def test_minus_zero_is_zero():
    assert str(parse_grade("-0", field="average")) == "0.00"


def test_format_grade_french_display():
    assert format_grade(Decimal("12.50")) == "12,5"
    assert format_grade(Decimal("14.00")) == "14"
    assert format_grade(Decimal("0.00")) == "0"
    assert format_grade(None) == ""
