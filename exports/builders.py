"""Builders of what leaves the platform: rows in, file bytes out.

Report cards (CSV for French spreadsheets, Gepi's import file, XLSX, printable PDF) and the
feedback dataset (TRL's chat and preference JSONL, the `eltorio/appreciation` Parquet and CSV).

No database and no request here: exports.selectors and exports.dataset choose the rows (only
final appréciations, the missing students listed apart), the views and the `export_dataset`
command pick a builder.
The PDF builder renders a template (no query) and hands it to WeasyPrint.

Formula injection (student names come from imported files, appréciations from people): every
text cell of the CSV goes through `neutralize_cell`; the XLSX types its texts as strings, which
no spreadsheet runs; Gepi's file is a database import and gets the texts exactly as validated.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import groupby

from django.template.loader import render_to_string

from classes.text import GEPI_LOGIN_MESSAGE, is_gepi_login
from generation.checks import collapse_spaces

# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection"),
# the full-width forms included: some spreadsheets fold them to their ASCII twins.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF_CONTENT_TYPE = "application/pdf"
JSONL_CONTENT_TYPE = "application/x-ndjson; charset=utf-8"

# One layout for the spreadsheet files, whether one subject or the whole class is exported.
REPORT_COLUMNS = (
    "Nom",
    "Prénom",
    "Identifiant",
    "Classe",
    "Discipline",
    "Trimestre",
    "Moyenne",
    "Appréciation",
)
MISSING_COLUMNS = ("Nom", "Prénom", "Discipline", "Raison")

# Gepi's import of marks and appréciations (saisie/import_note_app.php): `;`-separated, a
# header line that Gepi skips by default, NOTE 0-20 with `.` or `,`, or abs/disp/-.
GEPI_HEADER = ("IDENTIFIANT", "NOTE", "Appréciation")
GEPI_SEMICOLON = "|POINT-VIRGULE|"
# Gepi reads with fgetcsv($fp, 8000, ";"): PHP 8.2 cuts a longer line (7 999 bytes and more
# before the CRLF, measured) in two, and the rest becomes a line of its own.
GEPI_LINE_MAX_BYTES = 7998
# What PHP's fgetcsv skips before looking for an opening quote (C isspace).
_PHP_SPACES = " \t\n\v\f\r"

# The columns of the `eltorio/appreciation` dataset, exactly, so rows can be appended to it.
DATASET_CSV_COLUMNS = (
    "Id",
    "redoublant",
    "matière",
    "trimestre",
    "note 1er trimestre",
    "note 2ème trimestre",
    "note 3ème trimestre",
    "comportement 0-10",
    "participation 0-10",
    "travail 0-10",
    "commentaire",
)
# Their types in the dataset's Parquet files (its dataset_info): `datasets` refuses to append a
# file whose types differ (a hex string Id, grades as text).
DATASET_DTYPES = {
    "Id": "int64",
    "redoublant": "int64",
    "matière": "string",
    "trimestre": "int64",
    "note 1er trimestre": "float64",
    "note 2ème trimestre": "float64",
    "note 3ème trimestre": "float64",
    "comportement 0-10": "float64",
    "participation 0-10": "float64",
    "travail 0-10": "float64",
    "commentaire": "string",
}
CHAT_JSONL = "chat-jsonl"
PREFERENCE_JSONL = "preference-jsonl"
APPRECIATION_PARQUET = "appreciation-parquet"
APPRECIATION_CSV = "appreciation-csv"
DATASET_FORMATS = (CHAT_JSONL, PREFERENCE_JSONL, APPRECIATION_PARQUET, APPRECIATION_CSV)
# Parquet is binary: never written to a terminal.
BINARY_DATASET_FORMATS = frozenset({APPRECIATION_PARQUET})
DATASET_EXTENSIONS = {
    CHAT_JSONL: "jsonl",
    PREFERENCE_JSONL: "jsonl",
    APPRECIATION_PARQUET: "parquet",
    APPRECIATION_CSV: "csv",
}
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
DATASET_CONTENT_TYPES = {
    CHAT_JSONL: JSONL_CONTENT_TYPE,
    PREFERENCE_JSONL: JSONL_CONTENT_TYPE,
    APPRECIATION_PARQUET: PARQUET_CONTENT_TYPE,
    APPRECIATION_CSV: CSV_CONTENT_TYPE,
}

# openpyxl refuses these control characters (ILLEGAL_CHARACTERS_RE): a hostile name must not
# make the whole export fail.
_XLSX_ILLEGAL = {code: None for code in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]}


@dataclass(frozen=True)
class ReportHeading:
    """What a report-card file is about. subject=None: every subject of the class."""

    school: str
    school_class: str
    term: str
    school_year: str
    subject: str | None = None
    # The subject's teacher(s), for the printed page; "" for the whole class.
    teacher: str = ""

    @property
    def title(self) -> str:
        parts = [self.school, self.school_class, self.subject or "Toutes disciplines"]
        return " · ".join([*parts, f"{self.term} {self.school_year}"])


@dataclass(frozen=True)
class ReportLine:
    """One exportable appréciation (validated, or approved where the school requires it)."""

    last_name: str
    first_name: str
    identifier: str
    subject: str
    average: Decimal | None
    text: str
    # Groups the lines of one student in the whole-class PDF; never written to a file.
    student_key: int = 0
    # The subject's teacher(s): printed on the whole-class PDF only.
    teacher: str = ""

    @property
    def average_fr(self) -> str:
        return format_average_fr(self.average)


@dataclass(frozen=True)
class MissingLine:
    """A student left out of the files, and why (French, for the teacher)."""

    last_name: str
    first_name: str
    subject: str
    reason: str


@dataclass(frozen=True)
class DatasetRow:
    """One training example, without any name or identifier of a student or a teacher.

    prompt_messages: the prompt of the inputs the teacher validated against (never an older
    draft's), rendered with chat_date as the backend renders it. rejected_text: the model's
    draft the teacher did not keep (preference rows only).
    """

    row_id: int
    prompt_messages: list[dict]
    final_text: str
    inputs: dict
    chat_date: str
    rejected_text: str = ""
    # The validation the row came from: groups a student's and a teacher's rows when a
    # training run splits them (learning.training_data). Never written to a file.
    feedback_id: int | None = field(default=None, compare=False, repr=False)


def neutralize_cell(value: str) -> str:
    """A text a spreadsheet would run as a formula, made inert by a leading apostrophe.

    Covers cells starting with = + - @ (and their full-width forms), tab or carriage return.
    Other texts are returned unchanged.
    """
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def format_average_fr(value: Decimal | float | None) -> str:
    """12.50 -> "12,5"; None -> "" (French spreadsheets read a decimal comma)."""
    if value is None:
        return ""
    number = Decimal(str(value)).normalize()
    text = format(number, "f")
    return text.replace(".", ",")


def _csv_text(rows: Iterable[Sequence[str]], *, delimiter: str) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def _report_row(heading: ReportHeading, line: ReportLine) -> list[str]:
    texts = [
        line.last_name,
        line.first_name,
        line.identifier,
        heading.school_class,
        line.subject,
        heading.term,
    ]
    return [
        *[neutralize_cell(text) for text in texts],
        format_average_fr(line.average),
        neutralize_cell(line.text),
    ]


# --- Report cards ------------------------------------------------------------------------------


def report_csv(*, heading: ReportHeading, lines: Sequence[ReportLine]) -> bytes:
    """CSV for French spreadsheets: UTF-8 with a BOM (Excel), `;`, decimal comma."""
    rows = [list(REPORT_COLUMNS), *(_report_row(heading, line) for line in lines)]
    return ("\ufeff" + _csv_text(rows, delimiter=";")).encode("utf-8")


def gepi_note(average: Decimal | float | None) -> str:
    """Gepi's NOTE: the term average on 0-20 (decimal comma); empty when there is none.

    An empty NOTE leaves the mark Gepi already has; `-` would store a mark 0 with status `-`.
    """
    return format_average_fr(average)


def gepi_text(text: str) -> str:
    """Gepi reads `|POINT-VIRGULE|` back as `;` (its CSV has no other escape for it).

    No spreadsheet guard: Gepi stores the text as it comes, a `'` would reach the report card.
    """
    return text.replace(";", GEPI_SEMICOLON)


def gepi_field(value: str) -> str:
    """One field written so that PHP's `fgetcsv($fp, 8000, ";")` gives `value` back.

    PHP's default escape character `\\` is not RFC 4180: inside quotes, a backslash and the
    character after it are both kept as they are and that character never ends the field
    (`"C:\\""d"` reads `C:\\"d"`); outside quotes a backslash is an ordinary character. So a
    field is quoted only when it must be (it starts, after spaces, with `"`, or holds `;` or a
    line break); inside quotes a `"` right after an escaping backslash is not doubled. A final
    lone backslash cannot end a quoted field: a space follows it, which Gepi's `trim()` of the
    appréciation removes. Checked against PHP 8.2 (tests/generation/test_exports.py).
    """
    if not (value.lstrip(_PHP_SPACES).startswith('"') or any(c in value for c in ";\r\n")):
        return value
    out = ['"']
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\":
            out.append(value[index : index + 2] if index + 1 < len(value) else "\\ ")
            index += 2
            continue
        out.append('""' if char == '"' else char)
        index += 1
    out.append('"')
    return "".join(out)


def gepi_login_problem(login: str) -> str | None:
    """Why `login` cannot identify a student in Gepi's file (French), None when it can.

    Gepi matches the IDENTIFIANT column against its `eleves.login` only (not the INE), and
    one unknown identifier makes it refuse the whole file.
    """
    if not login.strip():
        return "pas de login Gepi"
    if not is_gepi_login(login):
        return "login Gepi invalide : " + GEPI_LOGIN_MESSAGE
    return None


def _gepi_line(line: ReportLine) -> str:
    return ";".join((line.identifier, gepi_note(line.average), gepi_field(gepi_text(line.text))))


def gepi_line_problem(line: ReportLine) -> str | None:
    """Why this line cannot go in Gepi's file (French), None when it can."""
    problem = gepi_login_problem(line.identifier)
    if problem:
        return problem
    if GEPI_SEMICOLON in line.text:
        return f"le texte contient « {GEPI_SEMICOLON} », que Gepi changerait en « ; »"
    if len(_gepi_line(line).encode("utf-8")) > GEPI_LINE_MAX_BYTES:
        return (
            "appréciation trop longue pour l'import Gepi (chaque « ; » y compte pour 15 caractères)"
        )
    return None


def report_gepi(*, lines: Sequence[ReportLine]) -> bytes:
    """Gepi's import file `IDENTIFIANT;NOTE;Appréciation`, UTF-8 without BOM, CRLF.

    Read by Gepi's saisie/import_note_app.php with PHP's fgetcsv: every line needs the
    student's Gepi login (the selectors list apart the students without one), and the text is
    written exactly as validated, for that reader (see `gepi_field`), not for a spreadsheet.
    """
    rows = [";".join(GEPI_HEADER)]
    for line in lines:
        problem = gepi_line_problem(line)
        if problem:
            raise ValueError(f"A line cannot go in Gepi's file: {problem}.")
        rows.append(_gepi_line(line))
    return "".join(row + "\r\n" for row in rows).encode("utf-8")


def _xlsx_text(value: str) -> str:
    return value.translate(_XLSX_ILLEGAL)


def _xlsx_row(sheet, row: int, values: Sequence[str | float | None]) -> None:
    """A row whose texts are typed as strings (`t="s"`), whatever they start with.

    openpyxl types a text starting with `=` as a formula; a string cell is never one, in
    Excel or LibreOffice, so no text needs the visible `'` guard of the CSV.
    """
    for column, value in enumerate(values, start=1):
        cell = sheet.cell(row=row, column=column)
        if isinstance(value, str):
            cell.value = _xlsx_text(value)
            cell.data_type = "s"
        else:
            cell.value = value


def report_xlsx(
    *, heading: ReportHeading, lines: Sequence[ReportLine], missing: Sequence[MissingLine] = ()
) -> bytes:
    """XLSX: the appréciations on the first sheet, the students still missing one on a second.

    Every text is a string cell (never a formula) and is written as validated, without a guard.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    workbook = Workbook()
    workbook.properties.title = heading.title[:255]
    workbook.properties.creator = "Appréciations"
    sheet = workbook.active
    sheet.title = "Appréciations"
    _xlsx_row(sheet, 1, REPORT_COLUMNS)
    for row, line in enumerate(lines, start=2):
        _xlsx_row(
            sheet,
            row,
            [
                line.last_name,
                line.first_name,
                line.identifier,
                heading.school_class,
                line.subject,
                heading.term,
                None if line.average is None else float(line.average),
                line.text,
            ],
        )
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for letter, width in zip("ABCDEFGH", (18, 16, 14, 10, 24, 14, 9, 90), strict=True):
        sheet.column_dimensions[letter].width = width
    wrap = Alignment(wrap_text=True, vertical="top")
    for (cell,) in sheet.iter_rows(min_row=2, min_col=8, max_col=8):
        cell.alignment = wrap
    if missing:
        other = workbook.create_sheet("À compléter")
        _xlsx_row(other, 1, MISSING_COLUMNS)
        for row, item in enumerate(missing, start=2):
            _xlsx_row(other, row, [item.last_name, item.first_name, item.subject, item.reason])
        for cell in other[1]:
            cell.font = Font(bold=True)
        for letter, width in zip("ABCD", (18, 16, 24, 60), strict=True):
            other.column_dimensions[letter].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _grouped_by_student(lines: Sequence[ReportLine]) -> list[tuple[ReportLine, list[ReportLine]]]:
    """Consecutive lines of the same student (the whole-class export is in class order)."""
    groups = groupby(lines, key=lambda line: (line.student_key, line.last_name, line.first_name))
    result = []
    for _, group in groups:
        items = list(group)
        result.append((items[0], items))
    return result


def report_pdf_document(
    *,
    heading: ReportHeading,
    lines: Sequence[ReportLine],
    missing: Sequence[MissingLine] = (),
    generated_on: date,
):
    """The laid-out pages (WeasyPrint's Document), before they are written as a PDF."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    # WeasyPrint logs every layout step at INFO: a line per page in the web logs otherwise.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

    html = render_to_string(
        "generation/report_card.html",
        {
            "heading": heading,
            "lines": lines,
            "students": _grouped_by_student(lines),
            "missing": missing,
            "generated_on": generated_on,
        },
    )
    # The document needs nothing from outside: every fetch (file:, http:, data:) is refused.
    fetcher = URLFetcher(allowed_protocols=frozenset())
    return HTML(string=html, url_fetcher=fetcher).render()


def report_pdf(
    *,
    heading: ReportHeading,
    lines: Sequence[ReportLine],
    missing: Sequence[MissingLine] = (),
    generated_on: date,
) -> bytes:
    """The subject's page for the class council, as a school prints it (WeasyPrint): school,
    class, subject, teacher, term and school year; each student's average and appréciation
    in the order given; the students still missing one at the end; page numbers below."""
    return report_pdf_document(
        heading=heading, lines=lines, missing=missing, generated_on=generated_on
    ).write_pdf()


def copy_all_text(texts: Sequence[str]) -> str:
    """One appréciation per line, in class order, for pasting into a column (Pronote).

    A student without an appréciation keeps an empty line, so the lines stay aligned with the
    class list; line breaks inside a text would shift them, so they become spaces. The
    school's no-break spaces before « ; : ! ? » stay.
    """
    return "\n".join(collapse_spaces(text) for text in texts)


# --- The feedback dataset ----------------------------------------------------------------------


def _jsonl(objects: Iterable[dict]) -> bytes:
    return "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects).encode("utf-8")


def _prompt(row: DatasetRow) -> list[dict]:
    """The system and user messages of the validated inputs, as the backend sends them."""
    return [dict(message) for message in row.prompt_messages]


def _template_kwargs(row: DatasetRow) -> dict:
    # TRL passes a row's chat_template_kwargs to the chat template: without the date it renders
    # today's, and the model would be trained on a prompt it is never given.
    return {"date_string": row.chat_date}


def dataset_chat_jsonl(rows: Iterable[DatasetRow]) -> bytes:
    """TRL's conversational format: the prompt, the validated text as the assistant's turn."""
    return _jsonl(
        {
            "id": row.row_id,
            "messages": [*_prompt(row), {"role": "assistant", "content": row.final_text}],
            "chat_template_kwargs": _template_kwargs(row),
        }
        for row in rows
    )


def dataset_preference_jsonl(rows: Iterable[DatasetRow]) -> bytes:
    """TRL's conversational preference format: chosen = the teacher's text, rejected = a draft
    of the model the teacher did not keep, both answers to the same prompt."""
    return _jsonl(
        {
            "id": row.row_id,
            "prompt": _prompt(row),
            "chosen": [{"role": "assistant", "content": row.final_text}],
            "rejected": [{"role": "assistant", "content": row.rejected_text}],
            "chat_template_kwargs": _template_kwargs(row),
        }
        for row in rows
    )


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def dataset_record(row: DatasetRow) -> dict:
    """One row in the `eltorio/appreciation` columns, typed as the dataset types them: int64
    Id and flags, float64 grades and ratings (null where not applicable), raw text."""
    inputs = row.inputs
    averages = list(inputs.get("averages") or [])
    averages += [None] * (3 - len(averages))
    trimester = inputs.get("trimester")
    return {
        "Id": row.row_id,
        "redoublant": 1 if inputs.get("repeating") else 0,
        "matière": str(inputs.get("subject", "")),
        "trimestre": None if trimester is None else int(trimester),
        "note 1er trimestre": _float_or_none(averages[0]),
        "note 2ème trimestre": _float_or_none(averages[1]),
        "note 3ème trimestre": _float_or_none(averages[2]),
        "comportement 0-10": _float_or_none(inputs.get("behaviour")),
        "participation 0-10": _float_or_none(inputs.get("participation")),
        "travail 0-10": _float_or_none(inputs.get("work")),
        "commentaire": row.final_text,
    }


def dataset_parquet(rows: Iterable[DatasetRow]) -> bytes:
    """The training file in the `eltorio/appreciation` shape: Parquet, as the dataset is
    stored, its columns and types exactly, texts as the teachers validated them (no
    spreadsheet guard: this file is read by `datasets`, never by a spreadsheet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [(name, pa.type_for_alias(DATASET_DTYPES[name])) for name in DATASET_CSV_COLUMNS]
    )
    records = [dataset_record(row) for row in rows]
    table = pa.Table.from_pylist(records, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _dataset_number(value) -> str:
    if value is None:
        return ""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def dataset_csv_row(row: DatasetRow) -> list[str]:
    record = dataset_record(row)
    return [
        str(record["Id"]),
        str(record["redoublant"]),
        neutralize_cell(record["matière"]),
        "" if record["trimestre"] is None else str(record["trimestre"]),
        *[_dataset_number(record[name]) for name in DATASET_CSV_COLUMNS[4:10]],
        neutralize_cell(record["commentaire"]),
    ]


def dataset_csv(rows: Iterable[DatasetRow]) -> bytes:
    """The `eltorio/appreciation` columns for a spreadsheet: comma-separated UTF-8 (no BOM),
    decimal point. A text a spreadsheet would run as a formula keeps its guard `'` here, so
    this file is for reading, not training: the Parquet file is the training set."""
    table = [list(DATASET_CSV_COLUMNS), *(dataset_csv_row(row) for row in rows)]
    return _csv_text(table, delimiter=",").encode("utf-8")


DATASET_BUILDERS = {
    CHAT_JSONL: dataset_chat_jsonl,
    PREFERENCE_JSONL: dataset_preference_jsonl,
    APPRECIATION_PARQUET: dataset_parquet,
    APPRECIATION_CSV: dataset_csv,
}
