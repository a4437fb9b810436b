"""Hostile input never yields a 500 nor a stored bad value (property-based, hypothesis).

- grade cells: any text through the service and the HTTP view is either saved within range or
  refused with a French message; nothing out of range is ever stored;
- the class-list import: any bytes, any CSV-ish text, any spreadsheet is either a ParsedFile
  whose rows are valid, or an ImportFileError; what an import writes is within range;
- the output checks: any text gives a list of flags, never an exception.

Example counts stay modest so the suite stays fast; the database is shared by the examples of
one test (one transaction), which is fine: every example checks the whole table.
"""

from __future__ import annotations

import io
import string
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from classes.grades import FIELD_MAXIMUM
from classes.import_services import import_apply, import_preview
from classes.imports import (
    COLUMN_LABELS,
    MAX_LENGTHS,
    ImportFileError,
    ParsedFile,
    parse_class_file,
    parsed_from_data,
)
from classes.models import Student, TermAssessment
from classes.services import assessment_set_value
from generation import tasks
from generation.checks import PER_ERROR_CODES, CheckFlag, check_text, clean_text

pytestmark = pytest.mark.django_db

DB_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FAST_SETTINGS = settings(max_examples=60, deadline=None)

FIELDS = ("average", "behaviour", "participation", "work")
FRENCH_HINTS = ("nombre", "comprise entre", "décimale", "clos")

# What teachers type, what spreadsheets paste, and what attackers try.
numberish = st.from_regex(r"\A[ \t\u00a0]*[-+]?\d{0,6}([.,]\d{0,6})?([eE][-+]?\d{1,4})?\s*\Z")
nasty = st.sampled_from(
    [
        "NaN",
        "-nan",
        "Infinity",
        "-Infinity",
        "1e999999999",
        "1e-999999999",
        "-0",
        "20,001",
        "20.00",
        "10,0",
        "0x10",
        "١٢",
        "1_0",
        "½",
        "12,5,5",
        "\x00",
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "９",
        "20 ",
        "\u202e12",
    ]
)
grade_text = st.one_of(numberish, nasty, st.text(max_size=40))


def assert_table_in_range() -> None:
    for assessment in TermAssessment.objects.all():
        for field in FIELDS:
            value = getattr(assessment, field)
            assert value is None or Decimal(0) <= value <= FIELD_MAXIMUM[field], (field, value)


def assert_french_error(exc: ValidationError) -> None:
    text = " ".join(exc.messages)
    assert any(hint in text for hint in FRENCH_HINTS), text


# --- Grades --------------------------------------------------------------------------------------


@DB_SETTINGS
@given(field=st.sampled_from(FIELDS), raw=grade_text)
def test_grade_service_saves_in_range_or_refuses_in_french(world, field, raw):
    student = world.school_class.students.first()
    before = TermAssessment.objects.filter(
        student=student, subject=world.assignment.subject, term=world.term
    ).first()
    previous = getattr(before, field) if before else None
    try:
        saved = assessment_set_value(
            student=student,
            subject=world.assignment.subject,
            term=world.term,
            field=field,
            raw_value=raw,
            user=world.teacher,
        )
    except ValidationError as exc:
        assert_french_error(exc)
        after = TermAssessment.objects.filter(
            student=student, subject=world.assignment.subject, term=world.term
        ).first()
        assert (getattr(after, field) if after else None) == previous  # nothing written
    else:
        saved.refresh_from_db()
        value = getattr(saved, field)
        assert value is None or Decimal(0) <= value <= FIELD_MAXIMUM[field]
    assert_table_in_range()


@DB_SETTINGS
@given(field=st.sampled_from(FIELDS), raw=grade_text)
def test_grade_cell_view_never_errors(world, field, raw):
    client = Client()
    client.force_login(world.teacher)
    student = world.school_class.students.first()
    url = reverse(
        "classes:cell_update", args=[world.assignment.pk, world.term.pk, student.pk, field]
    )
    response = client.post(url, {"value": raw}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert" not in body  # what was typed comes back escaped
    assert_table_in_range()


@DB_SETTINGS
@given(field=st.text(min_size=1, max_size=20).filter(lambda f: f not in FIELDS and "/" not in f))
def test_unknown_cell_field_is_404(world, field):
    client = Client()
    client.force_login(world.teacher)
    student = world.school_class.students.first()
    base = reverse(
        "classes:cell_update", args=[world.assignment.pk, world.term.pk, student.pk, "average"]
    )
    url = base.replace("/average/", f"/{quote(field, safe='')}/")
    assume(url != base)
    assert client.post(url, {"value": "12"}).status_code == 404


@DB_SETTINGS
@given(
    values=st.fixed_dictionaries(
        {
            name: st.one_of(numberish, nasty, st.text(max_size=12))
            for name in (
                "average_1",
                "average_2",
                "average_3",
                "behaviour",
                "participation",
                "work",
                "trimester",
            )
        }
    )
)
def test_quick_draft_form_never_errors(world, monkeypatch, values):
    monkeypatch.setattr(tasks.generate_quick_draft, "delay_on_commit", lambda *a, **k: None)
    client = Client()
    client.force_login(world.teacher)
    response = client.post(reverse("generation:quick_draft"), values)
    assert response.status_code in (200, 302)


# --- The class-list import ----------------------------------------------------------------------


def assert_parsed_is_sound(parsed: ParsedFile) -> None:
    for row in parsed.rows:
        assert row.last_name and len(row.last_name) <= MAX_LENGTHS["last_name"]
        assert row.first_name and len(row.first_name) <= MAX_LENGTHS["first_name"]
        assert row.external_id is None or len(row.external_id) <= MAX_LENGTHS["external_id"]
        for field, value in row.grades.items():
            assert Decimal(0) <= value <= FIELD_MAXIMUM[field], (field, value)
    # What travels signed to the confirmation step rebuilds the same rows.
    rebuilt = parsed_from_data(parsed.to_data())
    assert [(r.last_name, r.first_name, r.grades) for r in rebuilt.rows] == [
        (r.last_name, r.first_name, r.grades) for r in parsed.rows
    ]


def parse(filename: str, content: bytes) -> ParsedFile | None:
    try:
        parsed = parse_class_file(filename=filename, content=content)
    except ImportFileError as exc:
        assert exc.messages and all(isinstance(m, str) and m for m in exc.messages)
        # A refusal comes from the parser's own checks (each has its code), not from the
        # catch-all of parse_class_file after a crash (code "invalid_file").
        assert exc.code != "invalid_file", f"parser crashed: {exc.__cause__!r}"
        return None
    assert isinstance(parsed, ParsedFile)
    assert_parsed_is_sound(parsed)
    return parsed


filenames = st.one_of(
    st.sampled_from(["liste.csv", "liste.CSV", "liste.txt", "liste.xlsx", "a.xls", "b.ods", ""]),
    st.text(max_size=30),
)


@FAST_SETTINGS
@given(filename=filenames, content=st.binary(max_size=3000))
def test_any_bytes_are_a_parsed_file_or_a_french_file_error(filename, content):
    parse(filename, content)


@FAST_SETTINGS
@given(content=st.binary(max_size=2000))
def test_zip_looking_garbage_is_refused(content):
    parse("liste.xlsx", b"PK\x03\x04" + content)


HEADERS = [
    "nom",
    "Nom de famille",
    "prénom",
    "PRENOM",
    "moyenne",
    "Moyenne /20",
    "comportement",
    "participation",
    "travail",
    "redoublant",
    "identifiant",
    "INE",
    "remarque",
]
cell = st.one_of(
    st.text(max_size=25),
    numberish,
    nasty,
    st.sampled_from(["oui", "non", "x", "abs", "disp", "-", "", '"', '""', ";", ",", "\n"]),
)
table = st.tuples(
    st.lists(st.sampled_from(HEADERS), min_size=1, max_size=9),
    st.lists(st.lists(cell, max_size=9), max_size=12),
)


name_text = st.text(alphabet=string.ascii_letters + "éèçœ' -", min_size=1, max_size=30)


@st.composite
def class_lists(draw):
    """A list with the right columns and names, and whatever in the other cells."""
    extra = draw(
        st.lists(
            st.sampled_from(
                ["moyenne", "comportement", "participation", "travail", "redoublant", "INE"]
            ),
            unique=True,
        )
    )
    header = ["nom", "prénom", *extra]
    rows = draw(
        st.lists(
            st.tuples(
                name_text, name_text, st.lists(cell, min_size=len(extra), max_size=len(extra))
            ),
            max_size=12,
        )
    )
    return header, [[last, first, *others] for last, first, others in rows]


def _csv_bytes(header, rows, delimiter, newline, encoding) -> bytes:
    def quoted(value: str) -> str:
        if any(ch in value for ch in (delimiter, '"', "\n", "\r")):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delimiter.join(quoted(c) for c in line) for line in [header, *rows]]
    text = newline.join(lines)
    return text.encode(encoding, errors="replace")


@FAST_SETTINGS
@given(
    data=st.one_of(class_lists(), table),
    delimiter=st.sampled_from([";", ",", "\t", "|"]),
    newline=st.sampled_from(["\r\n", "\n", "\r"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16", "latin-1"]),
)
def test_csv_like_text_is_a_parsed_file_or_a_french_file_error(data, delimiter, newline, encoding):
    header, rows = data
    parse("liste.csv", _csv_bytes(header, rows, delimiter, newline, encoding))
    # The same cells without the CSV quoting: stray quotes and separators inside cells.
    raw = newline.join(delimiter.join(line) for line in [header, *rows])
    parse("liste.csv", raw.encode(encoding, errors="replace"))


xlsx_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=25).map(lambda t: ILLEGAL_CHARACTERS_RE.sub("", t)),
    st.dates(),
    st.sampled_from(HEADERS),
)


@settings(max_examples=40, deadline=None)
@given(
    header=st.lists(st.sampled_from(HEADERS), min_size=1, max_size=8),
    rows=st.lists(st.lists(xlsx_value, max_size=9), max_size=15),
)
def test_any_spreadsheet_is_a_parsed_file_or_a_french_file_error(header, rows):
    workbook = Workbook()
    sheet = workbook.active
    for line in [header, *rows]:
        sheet.append(list(line))
    buffer = io.BytesIO()
    workbook.save(buffer)
    parse("liste.xlsx", buffer.getvalue())


@DB_SETTINGS
@given(data=st.one_of(class_lists(), table))
def test_what_an_import_writes_is_in_range(world, data):
    header, rows = data
    content = _csv_bytes(header, rows, ";", "\r\n", "utf-8")
    try:
        parsed = parse_class_file(filename="liste.csv", content=content)
    except ImportFileError:
        return
    plan = import_preview(assignment=world.assignment, term=world.term, parsed=parsed)
    if not plan.is_valid:
        return
    event("import applied")
    try:
        import_apply(
            assignment=world.assignment,
            term=world.term,
            plan_data=parsed.to_data(),
            user=world.teacher,
        )
    except ValidationError as exc:
        assert exc.messages
    assert_table_in_range()
    for student in Student.objects.filter(school_class=world.school_class):
        assert student.last_name and student.first_name


@DB_SETTINGS
@given(content=st.binary(max_size=1500), filename=filenames.filter(lambda f: "\x00" not in f))
def test_import_upload_view_never_errors(world, content, filename):
    client = Client()
    client.force_login(world.teacher)
    url = reverse("classes:import_upload", args=[world.assignment.pk, world.term.pk])
    try:
        upload = SimpleUploadedFile(filename or "x", content, content_type="text/csv")
    except SuspiciousFileOperation:
        assume(False)  # the test client's own refusal ("/", ".."): no request to send
    response = client.post(url, {"file": upload})
    assert response.status_code == 200


@DB_SETTINGS
@given(payload=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(bytes.hex)))
def test_import_confirm_with_a_forged_payload_is_refused(world, payload):
    client = Client()
    client.force_login(world.teacher)
    url = reverse("classes:import_confirm", args=[world.assignment.pk, world.term.pk])
    response = client.post(url, {"payload": payload})
    assert response.status_code == 400
    assert_table_in_range()


# --- The output checks -------------------------------------------------------------------------

words = st.text(alphabet=string.ascii_letters + "éèàùçœ'’-", min_size=1, max_size=12)
sentences = st.lists(
    st.one_of(words, st.sampled_from(["15/20", "12,5", "Emma", "«", "»", "…", ".", "!", "je"])),
    max_size=60,
).map(" ".join)
any_text = st.one_of(st.text(max_size=400), sentences)


@FAST_SETTINGS
@given(
    text=any_text,
    names=st.lists(st.text(max_size=20), max_size=4),
    banned=st.lists(st.text(max_size=20), max_size=4),
    max_chars=st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
)
def test_check_text_returns_flags_for_any_text(text, names, banned, max_chars):
    flags = check_text(text, forbidden_names=names, banned_phrases=banned, max_chars=max_chars)
    assert isinstance(flags, list)
    assert all(isinstance(flag, CheckFlag) and flag.code and flag.message for flag in flags)
    # One flag per code at most, except Grammalecte's: one per error, each with its span.
    once = [flag.code for flag in flags if flag.code not in PER_ERROR_CODES]
    assert len(set(once)) == len(once)
    for flag in flags:
        if flag.code in PER_ERROR_CODES:
            assert 0 <= flag.start < flag.end <= len(text)
            assert text[flag.start : flag.end] == flag.original


@FAST_SETTINGS
@given(text=any_text)
def test_clean_text_gives_one_line_for_any_text(text):
    cleaned = clean_text(text)
    assert isinstance(cleaned, str)
    assert "\n" not in cleaned and "\r" not in cleaned
    assert cleaned == cleaned.strip()
    check_text(cleaned)


def test_column_labels_are_french():
    # The parser's messages name columns in French (a guard for the hints above).
    assert COLUMN_LABELS["first_name"] == "prénom"
