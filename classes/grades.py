"""Parsing of grades as teachers type them: French decimal comma, empty = not entered."""

from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import ValidationError

from common.scales import AVERAGE_MAX, RATING_MAX

FIELD_MAXIMUM = {
    "average": AVERAGE_MAX,
    "behaviour": RATING_MAX,
    "participation": RATING_MAX,
    "work": RATING_MAX,
}
FIELD_DECIMALS = {"average": 2, "behaviour": 1, "participation": 1, "work": 1}
GRADE_PATTERN = re.compile(r"-?[0-9]+(?:[.,][0-9]+)?", re.ASCII)


def parse_grade(raw: str | float | int | Decimal | None, *, field: str) -> Decimal | None:
    """Return the value as a Decimal, None when empty, or raise a French ValidationError."""
    maximum = FIELD_MAXIMUM[field]
    if raw is None:
        return None
    if isinstance(raw, float | int | Decimal) and not isinstance(raw, bool):
        text = format(Decimal(str(raw)), "f") if Decimal(str(raw)).is_finite() else str(raw)
    else:
        text = str(raw).strip()
    if text == "":
        return None
    # Plain ASCII digits with one decimal separator, as typed on a French keyboard ("10,5").
    # Decimal() alone would also take "1_0", "1e1", "NaN" or non-Latin digits.
    if not GRADE_PATTERN.fullmatch(text):
        raise ValidationError(
            f"« {raw} » n'est pas un nombre : saisissez une valeur entre 0 et {maximum}.",
            code="invalid",
        )
    value = Decimal(text.replace(",", "."))
    if not value.is_finite():
        raise ValidationError(
            f"« {raw} » n'est pas un nombre : saisissez une valeur entre 0 et {maximum}.",
            code="invalid",
        )
    if value < 0 or value > maximum:
        raise ValidationError(
            f"La valeur doit être comprise entre 0 et {maximum} (saisi : {raw}).",
            code="out_of_range",
        )
    decimals = FIELD_DECIMALS[field]
    quantum = Decimal(1).scaleb(-decimals)
    if value != value.quantize(quantum):
        raise ValidationError(
            f"{decimals} décimale(s) au plus (saisi : {raw}).", code="too_many_decimals"
        )
    # "-0" is 0, not a negative zero.
    return abs(value.quantize(quantum))


def format_grade(value: Decimal | None) -> str:
    """French display: 12,5 ; 14 ; empty for None."""
    if value is None:
        return ""
    normalized = value.normalize()
    text = format(normalized, "f")
    return text.replace(".", ",")
