"""Builders of what leaves the platform: rows in, file bytes out.

Report cards (CSV for French spreadsheets, Gepi's import file, XLSX, printable PDF) and the
feedback dataset (TRL's chat and preference JSONL, the `eltorio/appreciation` CSV).

No database and no request here: export_selectors chooses the rows (only final appréciations,
the missing students listed apart), the views and the `export_dataset` command pick a builder.
The PDF builder renders a template (no query) and hands it to WeasyPrint.

Every text cell of a spreadsheet file goes through `neutralize_cell` (formula injection:
student names come from imported files, appréciations from people).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import groupby

from django.template.loader import render_to_string

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
GEPI_NO_MARK = "-"
GEPI_SEMICOLON = "|POINT-VIRGULE|"

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
CHAT_JSONL = "chat-jsonl"
PREFERENCE_JSONL = "preference-jsonl"
APPRECIATION_CSV = "appreciation-csv"
DATASET_FORMATS = (CHAT_JSONL, PREFERENCE_JSONL, APPRECIATION_CSV)
DATASET_EXTENSIONS = {CHAT_JSONL: "jsonl", PREFERENCE_JSONL: "jsonl", APPRECIATION_CSV: "csv"}
DATASET_CONTENT_TYPES = {
    CHAT_JSONL: JSONL_CONTENT_TYPE,
    PREFERENCE_JSONL: JSONL_CONTENT_TYPE,
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


@dataclass(frozen=True)
class MissingLine:
    """A student left out of the files, and why (French, for the teacher)."""

    last_name: str
    first_name: str
    subject: str
    reason: str


@dataclass(frozen=True)
class DatasetRow:
    """One validation, without any name or identifier of a student or a teacher."""

    row_id: str
    prompt_messages: list[dict]
    draft_text: str
    final_text: str
    inputs: dict


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
    """Gepi's NOTE: the term average on 0-20 (decimal comma), `-` when there is none."""
    return GEPI_NO_MARK if average is None else format_average_fr(average)


def gepi_text(text: str) -> str:
    """Gepi reads `|POINT-VIRGULE|` back as `;` (its CSV has no other escape for it)."""
    return neutralize_cell(text.replace(";", GEPI_SEMICOLON))


def report_gepi(*, lines: Sequence[ReportLine]) -> bytes:
    """Gepi's import file `IDENTIFIANT;NOTE;Appréciation`, UTF-8 without BOM.

    Every line needs the student's Gepi identifier: the selectors list the students without
    one apart, this builder refuses them rather than write a line Gepi cannot match.
    NOTE is written by us (a number or Gepi's `-` for "no mark"), never user text, so it is
    left as Gepi expects it; the identifier and the appréciation are neutralised.
    """
    rows: list[list[str]] = [list(GEPI_HEADER)]
    for line in lines:
        identifier = line.identifier.strip()
        if not identifier:
            raise ValueError("A Gepi line needs the student's identifier.")
        rows.append([neutralize_cell(identifier), gepi_note(line.average), gepi_text(line.text)])
    return _csv_text(rows, delimiter=";").encode("utf-8")


def _xlsx_text(value: str) -> str:
    return neutralize_cell(value.translate(_XLSX_ILLEGAL))


def report_xlsx(
    *, heading: ReportHeading, lines: Sequence[ReportLine], missing: Sequence[MissingLine] = ()
) -> bytes:
    """XLSX: the appréciations on the first sheet, the students still missing one on a second."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    workbook = Workbook()
    workbook.properties.title = heading.title[:255]
    workbook.properties.creator = "Appréciations"
    sheet = workbook.active
    sheet.title = "Appréciations"
    sheet.append(list(REPORT_COLUMNS))
    for line in lines:
        sheet.append(
            [
                _xlsx_text(line.last_name),
                _xlsx_text(line.first_name),
                _xlsx_text(line.identifier),
                _xlsx_text(heading.school_class),
                _xlsx_text(line.subject),
                _xlsx_text(heading.term),
                None if line.average is None else float(line.average),
                _xlsx_text(line.text),
            ]
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
        other.append(list(MISSING_COLUMNS))
        for item in missing:
            other.append(
                [
                    _xlsx_text(item.last_name),
                    _xlsx_text(item.first_name),
                    _xlsx_text(item.subject),
                    _xlsx_text(item.reason),
                ]
            )
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


def report_pdf(
    *,
    heading: ReportHeading,
    lines: Sequence[ReportLine],
    missing: Sequence[MissingLine] = (),
    generated_on: date,
) -> bytes:
    """A printable PDF of the class (WeasyPrint): school, class, subject, term, each student
    and their appréciation; the students still missing one are listed at the end."""
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
    return HTML(string=html, url_fetcher=fetcher).write_pdf()


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
    """The system and user messages exactly as sent at generation."""
    return [dict(message) for message in row.prompt_messages]


def dataset_chat_jsonl(rows: Iterable[DatasetRow]) -> bytes:
    """TRL's conversational format: the prompt as sent, the validated text as the assistant."""
    return _jsonl(
        {"messages": [*_prompt(row), {"role": "assistant", "content": row.final_text}]}
        for row in rows
    )


def dataset_preference_jsonl(rows: Iterable[DatasetRow]) -> bytes:
    """TRL's conversational preference format: chosen = the teacher's text, rejected = the
    model's draft."""
    return _jsonl(
        {
            "prompt": _prompt(row),
            "chosen": [{"role": "assistant", "content": row.final_text}],
            "rejected": [{"role": "assistant", "content": row.draft_text}],
        }
        for row in rows
    )


def _dataset_number(value) -> str:
    if value is None:
        return ""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def dataset_csv_row(row: DatasetRow) -> list[str]:
    inputs = row.inputs
    averages = list(inputs.get("averages") or [])
    averages += [None] * (3 - len(averages))
    return [
        row.row_id,
        "1" if inputs.get("repeating") else "0",
        neutralize_cell(str(inputs.get("subject", ""))),
        str(inputs.get("trimester", "")),
        *[_dataset_number(average) for average in averages[:3]],
        _dataset_number(inputs.get("behaviour")),
        _dataset_number(inputs.get("participation")),
        _dataset_number(inputs.get("work")),
        neutralize_cell(row.final_text),
    ]


def dataset_csv(rows: Iterable[DatasetRow]) -> bytes:
    """The `eltorio/appreciation` columns, comma-separated UTF-8 (no BOM), decimal point."""
    table = [list(DATASET_CSV_COLUMNS), *(dataset_csv_row(row) for row in rows)]
    return _csv_text(table, delimiter=",").encode("utf-8")


DATASET_BUILDERS = {
    CHAT_JSONL: dataset_chat_jsonl,
    PREFERENCE_JSONL: dataset_preference_jsonl,
    APPRECIATION_CSV: dataset_csv,
}
