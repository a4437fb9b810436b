"""The class-list parser: formats, encodings, separators, bad lines, hostile files."""

from __future__ import annotations

import io
import re
import zipfile
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from openpyxl import Workbook

from classes.imports import (
    MAX_ROWS,
    ImportFileError,
    ParsedFile,
    normalize_name,
    parse_class_file,
    parsed_from_data,
)

HEADER = "nom;prénom;redoublant;identifiant;moyenne;comportement;participation;travail"


def parse_text(text: str, *, encoding: str = "utf-8", filename: str = "liste.csv") -> ParsedFile:
    return parse_class_file(filename=filename, content=text.encode(encoding))


def xlsx_bytes(rows: list[list[object]], *, title_rows: int = 0) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for _ in range(title_rows):
        sheet.append(["Liste de la classe de 2nde 3"])
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def file_error(filename: str, content: bytes) -> ImportFileError:
    with pytest.raises(ImportFileError) as info:
        parse_class_file(filename=filename, content=content)
    return info.value


# --- Good files ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_encodings_keep_accented_names(encoding):
    parsed = parse_text(
        f"{HEADER}\nLefèvre;Chloé;non;;12,5;8;7;6\nN'Diaye;Maëlys;oui;;;;;\n", encoding=encoding
    )

    assert parsed.is_valid, parsed.error_messages
    assert [(r.last_name, r.first_name) for r in parsed.rows] == [
        ("Lefèvre", "Chloé"),
        ("N'Diaye", "Maëlys"),
    ]
    assert parsed.encoding == encoding
    assert parsed.rows[0].grades == {
        "average": Decimal("12.50"),
        "behaviour": Decimal("8.0"),
        "participation": Decimal("7.0"),
        "work": Decimal("6.0"),
    }
    assert parsed.rows[0].is_repeating is False
    assert parsed.rows[1].is_repeating is True
    assert parsed.rows[1].grades == {}


def test_semicolon_file_with_decimal_commas():
    parsed = parse_text("Nom;Prénom;Moyenne\nMartin;Léa;14,25\nPetit;Hugo;9,5\n")

    assert parsed.delimiter == ";"
    assert [r.grades["average"] for r in parsed.rows] == [Decimal("14.25"), Decimal("9.50")]


def test_comma_file_with_decimal_points_and_quoted_decimal_commas():
    parsed = parse_text('nom,prenom,moyenne,travail\nMartin,Léa,14.5,7\nPetit,Hugo,"9,5",6\n')

    assert parsed.delimiter == ","
    assert [r.grades["average"] for r in parsed.rows] == [Decimal("14.50"), Decimal("9.50")]


def test_comma_file_with_an_unquoted_decimal_comma_is_a_bad_line():
    parsed = parse_text("nom,prenom,moyenne\nMartin,Léa,14,5\n")

    assert not parsed.is_valid
    assert parsed.error_messages[0].startswith("Ligne 2 : plus de valeurs que de colonnes")


def test_excel_sep_line_is_not_counted():
    parsed = parse_text("sep=,\nnom,prenom,moyenne\nMartin,Léa,21\n")

    assert parsed.error_messages == [
        "Ligne 2 : moyenne « 21 » — La valeur doit être comprise entre 0 et 20 (saisi : 21)."
    ]


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("NOM;Prénom;Moyenne /20", "average"),
        ("Nom ; PRENOM ; note", "average"),
        ("nom;prenom;Moy.", "average"),
        ("Nom de famille;Prénom(s);Moyenne (/20)", "average"),
        ("nom;prénom;Login", "external_id"),
        ("nom;prénom;INE", "external_id"),
        ("nom;prénom;Identifiant", "external_id"),
        ("nom;prénom;Redoublant", "is_repeating"),
        ("nom;prénom;Comportement /10", "behaviour"),
        ("nom;prénom;Travail", "work"),
    ],
)
def test_header_aliases(header, column):
    parsed = parse_text(f"{header}\nMartin;Léa;1\n")

    assert parsed.columns == ("last_name", "first_name", column)


def test_unknown_columns_are_ignored_and_reported():
    parsed = parse_text("Classe;nom;prénom;Option;moyenne\n2nde 3;Martin;Léa;Latin;12\n")

    assert parsed.is_valid
    assert parsed.columns == ("last_name", "first_name", "average")
    assert parsed.ignored_columns == ("Classe", "Option")
    assert parsed.rows[0].grades == {"average": Decimal("12.00")}


def test_blank_lines_are_skipped_and_line_numbers_follow_the_spreadsheet():
    parsed = parse_text("nom;prénom;moyenne\n\nMartin;Léa;12\n;;\n   ;  ;\nPetit;Hugo;25\n")

    assert [r.line for r in parsed.rows] == [3]
    assert parsed.error_messages == [
        "Ligne 6 : moyenne « 25 » — La valeur doit être comprise entre 0 et 20 (saisi : 25)."
    ]


def test_title_lines_before_the_header_are_skipped():
    parsed = parse_text("Liste de la classe;;\n2nde 3;;\nnom;prénom;moyenne\nMartin;Léa;12\n")

    assert [r.line for r in parsed.rows] == [4]


@pytest.mark.parametrize("raw", ["abs", "ABS", "Abs.", "disp", "Disp", "-", "N.N.", "nn", ""])
def test_not_graded_markers_are_empty(raw):
    parsed = parse_text(f"nom;prénom;moyenne;travail\nMartin;Léa;{raw};{raw}\n")

    assert parsed.is_valid, parsed.error_messages
    assert parsed.rows[0].grades == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("oui", True),
        ("Oui", True),
        ("O", True),
        ("x", True),
        ("1", True),
        ("vrai", True),
        ("non", False),
        ("N", False),
        ("0", False),
        ("faux", False),
        ("", None),
    ],
)
def test_repeating_values(raw, expected):
    parsed = parse_text(f"nom;prénom;redoublant\nMartin;Léa;{raw}\n")

    assert parsed.rows[0].is_repeating is expected


def test_fewer_cells_than_columns_are_empty():
    parsed = parse_text("nom;prénom;moyenne;travail\nMartin;Léa\n")

    assert parsed.is_valid
    assert parsed.rows[0].grades == {}


def test_homonyms_with_different_identifiants_are_allowed():
    parsed = parse_text("nom;prénom;identifiant\nMartin;Léa;lmartin1\nMartin;Léa;lmartin2\n")

    assert parsed.is_valid
    assert [r.external_id for r in parsed.rows] == ["lmartin1", "lmartin2"]


def test_names_are_cleaned():
    parsed = parse_text("nom;prénom\n  Le\u00a0 Gall ;\tJean  Pierre\u200b\n")

    assert (parsed.rows[0].last_name, parsed.rows[0].first_name) == ("Le Gall", "Jean Pierre")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Lefèvre", "LEFEVRE"),
        ("Jean-Pierre", "jean pierre"),
        ("Jean - Pierre", "Jean Pierre"),
        ("N’Diaye", "N'Diaye"),
        ("Cœur", "COEUR"),
        ("  Le   Gall ", "le gall"),
    ],
)
def test_normalize_name(a, b):
    assert normalize_name(a) == normalize_name(b)


def test_normalize_name_keeps_different_names_apart():
    assert normalize_name("Martin") != normalize_name("Martine")


# --- XLSX ------------------------------------------------------------------------------------


def test_xlsx_with_numbers_text_and_a_title_row():
    content = xlsx_bytes(
        [
            ["Nom", "Prénom", "Redoublant", "Login", "Moyenne /20", "Comportement"],
            ["Lefèvre", "Chloé", "x", 12345, 12.5, 8],
            ["Dupont", "Jean-Pierre", None, "jdupont", "13,5", None],
            [None, None, None, None, None, None],
            ["Martin", "Léa", True, None, 2 / 3 * 20, "abs"],
        ],
        title_rows=1,
    )

    parsed = parse_class_file(filename="Classe 2nde 3.xlsx", content=content)

    assert parsed.kind == "xlsx"
    assert parsed.is_valid, parsed.error_messages
    assert [r.line for r in parsed.rows] == [3, 4, 6]
    first, second, third = parsed.rows
    assert (first.last_name, first.first_name, first.is_repeating) == ("Lefèvre", "Chloé", True)
    assert first.external_id == "12345"
    assert first.grades == {"average": Decimal("12.50"), "behaviour": Decimal("8.0")}
    assert second.grades == {"average": Decimal("13.50")}
    assert second.is_repeating is None
    # A formula's 13.333… is read as the spreadsheet shows it, rounded to 2 decimals.
    assert third.grades == {"average": Decimal("13.33")}
    assert third.is_repeating is True


def test_xlsx_bad_lines_have_spreadsheet_line_numbers():
    content = xlsx_bytes([["nom", "prénom", "moyenne"], ["Martin", "Léa", 21], ["", "Hugo", 10]])

    parsed = parse_class_file(filename="liste.xlsx", content=content)

    assert parsed.error_messages == [
        "Ligne 2 : moyenne « 21 » — La valeur doit être comprise entre 0 et 20 (saisi : 21).",
        "Ligne 3 : le nom est vide.",
    ]


def test_xlsx_is_detected_by_content_whatever_the_name():
    content = xlsx_bytes([["nom", "prénom"], ["Martin", "Léa"]])

    assert parse_class_file(filename="export", content=content).kind == "xlsx"


def test_xlsx_with_a_wrong_declared_size_is_read_entirely():
    # Some exports declare the sheet as "A1": read-only openpyxl would then stop at line 1.
    content = xlsx_bytes([["nom", "prénom"], ["Martin", "Léa"], ["Petit", "Hugo"]])
    source = zipfile.ZipFile(io.BytesIO(content))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                # openpyxl writes `<dimension ref="A1:B3" />`, or `…"/>` when lxml is installed.
                assert re.search(rb'<dimension ref="A1:B3" ?/>', data)
                data = re.sub(rb'<dimension ref="A1:B3" ?/>', b'<dimension ref="A1" />', data)
            target.writestr(info, data)

    parsed = parse_class_file(filename="liste.xlsx", content=buffer.getvalue())

    assert [r.last_name for r in parsed.rows] == ["Martin", "Petit"]


def test_xlsx_missing_column_is_a_file_error():
    content = xlsx_bytes([["Élève", "Moyenne"], ["Martin Léa", 12]])

    error = file_error("liste.xlsx", content)

    assert "« prénom »" in error.message


# --- Bad lines -------------------------------------------------------------------------------


def test_each_kind_of_bad_line_is_reported_with_its_line_number():
    text = "\n".join(
        [
            HEADER,
            "Martin;Léa;non;;12;8;7;6",  # 2: good
            ";Hugo;;;;;;",  # 3: empty name
            "Petit;;;;;;;",  # 4: empty first name
            "Durand;Lina;;;21;;;",  # 5: average out of range
            "Roux;Zoé;;;12,345;;;",  # 6: too many decimals
            "Morel;Théo;;;douze;;;",  # 7: not a number
            "Simon;Ethan;;;;11;;",  # 8: rating out of range
            "Girard;Inès;peut-être;;;;;",  # 9: bad repeating value
            "MARTIN;lea;;;;;;",  # 10: duplicate of line 2
            "Vincent;Sacha;;" + "x" * 65 + ";;;;",  # 11: identifiant too long
            "L" * 101 + ";Jade;;;;;;",  # 12: name too long
            "Nguyen;Adam;;;" + "9" * 40 + ";;;",  # 13: not a grade
        ]
    )

    parsed = parse_text(text)

    assert [r.line for r in parsed.rows] == [2]
    assert parsed.error_messages == [
        "Ligne 3 : le nom est vide.",
        "Ligne 4 : le prénom est vide.",
        "Ligne 5 : moyenne « 21 » — La valeur doit être comprise entre 0 et 20 (saisi : 21).",
        "Ligne 6 : moyenne « 12,345 » — 2 décimale(s) au plus (saisi : 12,345).",
        "Ligne 7 : moyenne « douze » — « douze » n'est pas un nombre : saisissez une valeur "
        "entre 0 et 20.",
        "Ligne 8 : comportement « 11 » — La valeur doit être comprise entre 0 et 10 (saisi : 11).",
        "Ligne 9 : redoublant « peut-être » — valeur non reconnue : écrivez oui, non, x ou "
        "laissez vide.",
        "Ligne 10 : élève « MARTIN lea » en double (déjà ligne 2).",
        "Ligne 11 : identifiant trop long (64 caractères au plus).",
        "Ligne 12 : nom trop long (100 caractères au plus).",
        "Ligne 13 : moyenne « 99999999999999… » — ce n'est pas une note.",
    ]


def test_duplicate_identifiant_in_the_file():
    parsed = parse_text("nom;prénom;identifiant\nMartin;Léa;abc\nPetit;Hugo;abc\n")

    assert parsed.error_messages == ["Ligne 3 : identifiant « abc » en double (déjà ligne 2)."]


def test_several_errors_on_one_line_are_all_reported():
    parsed = parse_text("nom;prénom;moyenne;travail\n;;25;12\n")

    assert len(parsed.errors) == 4
    assert {e.line for e in parsed.errors} == {2}


# --- Bad files -------------------------------------------------------------------------------


def test_missing_required_columns():
    error = file_error("liste.csv", "Élève;Moyenne\nMartin Léa;12\n".encode())

    assert error.message.startswith("Colonne(s) obligatoire(s) manquante(s) : « nom », « prénom ».")
    assert "« Élève »" in error.message


def test_a_column_given_twice():
    error = file_error("liste.csv", b"nom;prenom;note;moyenne\nMartin;Lea;12;13\n")

    assert "en double" in error.message
    assert "« moyenne »" in error.message


def test_empty_file():
    assert file_error("liste.csv", b"").message == "Le fichier est vide."
    assert file_error("liste.csv", b"\n\n  \n").message == "Le fichier est vide."


def test_header_only_is_a_valid_file_with_no_rows():
    parsed = parse_text("nom;prénom\n")

    assert parsed.is_valid
    assert parsed.rows == []


def test_too_big(settings):
    settings.IMPORT_MAX_BYTES = 1000
    error = file_error("liste.csv", b"nom;prenom\n" + b"Martin;Lea\n" * 100)

    assert error.code == "too_big"
    assert "trop volumineux" in error.message


def test_too_many_rows():
    lines = [f"Nom{i};Prénom{i}" for i in range(MAX_ROWS + 1)]

    error = file_error("liste.csv", ("nom;prénom\n" + "\n".join(lines)).encode())

    assert error.code == "too_many_rows"
    assert f"plus de {MAX_ROWS} élèves" in error.message


def test_exactly_the_maximum_of_rows_is_accepted():
    lines = [f"Nom{i};Prénom{i}" for i in range(MAX_ROWS)]

    parsed = parse_text("nom;prénom\n" + "\n".join(lines))

    assert len(parsed.rows) == MAX_ROWS


@pytest.mark.parametrize(
    ("filename", "content", "fragment"),
    [
        ("liste.pdf", b"%PDF-1.4 whatever", "Type de fichier non accepté (« .pdf »)"),
        ("photo.png", b"\x89PNG\r\n\x1a\n", "Type de fichier non accepté"),
        ("liste.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, ".xls (Excel 97-2003)"),
        ("liste.ods", b"whatever", "Les fichiers .ods ne sont pas acceptés"),
        ("liste.xlsx", b"nom;prenom\nMartin;Lea\n", "n'est pas un classeur Excel valide"),
        ("liste.csv", b"nom;prenom\x00\x01\x02\xff", "n'est pas un fichier CSV ou XLSX lisible"),
        ("liste.csv", "nom;prénom\n".encode("utf-16"), "UTF-16"),
        ("liste.csv", b"\x81\x8d\x8f\x90\x9d", "n'est pas un fichier CSV ou XLSX lisible"),
        ("liste.csv", b'nom;prenom\n"' + b"a" * 200_000, "mal formé"),
    ],
)
def test_other_file_types_are_refused_in_french(filename, content, fragment):
    assert fragment in file_error(filename, content).message


def test_zip_that_is_not_a_workbook():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")

    error = file_error("lettre.docx", buffer.getvalue())

    assert "n'est pas un classeur Excel" in error.message


def test_ods_archive():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", "<x/>")

    assert ".ods" in file_error("liste.ods", buffer.getvalue()).message


def test_zip_bomb_is_refused_before_unzipping():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/sharedStrings.xml", b"\0" * (20 * 1024 * 1024))

    error = file_error("liste.xlsx", buffer.getvalue())

    assert error.code == "too_big"


def test_damaged_xlsx():
    content = bytearray(xlsx_bytes([["nom", "prénom"], ["Martin", "Léa"]]))
    content[len(content) // 2 : len(content) // 2 + 200] = b"\0" * 200

    error = file_error("liste.xlsx", bytes(content))

    assert error.message  # French, whatever the damage


def test_truncated_xlsx():
    content = xlsx_bytes([["nom", "prénom"], ["Martin", "Léa"]])

    assert file_error("liste.xlsx", content[:300]).message


# --- Carried payload -------------------------------------------------------------------------


def test_payload_round_trip_revalidates():
    parsed = parse_text(f"{HEADER}\nLefèvre;Chloé;oui;cl1;12,5;8;;abs\n")

    again = parsed_from_data(parsed.to_data())

    assert again.rows == parsed.rows
    assert again.columns == parsed.columns


def test_payload_with_a_bad_value_is_caught_again():
    data = parse_text("nom;prénom;moyenne\nMartin;Léa;12\n").to_data()
    data["rows"][0][1][2] = "25"

    parsed = parsed_from_data(data)

    assert parsed.error_messages == [
        "Ligne 2 : moyenne « 25 » — La valeur doit être comprise entre 0 et 20 (saisi : 25)."
    ]


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"version": 99},
        {"version": 1, "columns": ["last_name"], "rows": []},
        {"version": 1, "columns": ["last_name", "first_name", "bogus"], "rows": []},
        {"version": 1, "columns": ["last_name", "first_name"], "rows": [[2, ["a"]]]},
        {"version": 1, "columns": ["last_name", "first_name"], "rows": [["2", ["a", "b"]]]},
        {"version": 1, "columns": ["last_name", "first_name"], "rows": [[2, ["a", 3]]]},
        {"version": 1, "columns": ["last_name", "first_name"], "rows": "x"},
    ],
)
def test_malformed_payload(data):
    with pytest.raises(ImportFileError):
        parsed_from_data(data)


# --- Hostile input ---------------------------------------------------------------------------

FILENAMES = st.sampled_from(["liste.csv", "liste.xlsx", "liste.txt", "liste", "x.pdf", ""])


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=2000), filename=FILENAMES)
def test_arbitrary_bytes_never_raise_anything_else(content, filename):
    _parse_or_documented_error(filename, content)


CELL = st.one_of(
    st.sampled_from(["", "abs", "12,5", "21", "x", "oui", "-", "1e5", "NaN", '"', "Lefèvre"]),
    st.text(max_size=12),
)
HEADERS = st.lists(
    st.sampled_from(["nom", "prénom", "moyenne", "travail", "redoublant", "login", "Autre", ""]),
    min_size=1,
    max_size=6,
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    header=HEADERS,
    rows=st.lists(st.lists(CELL, max_size=7), max_size=8),
    delimiter=st.sampled_from([";", ","]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
)
def test_arbitrary_tables_never_raise_anything_else(header, rows, delimiter, encoding):
    text = "\n".join(delimiter.join(cells) for cells in [header, *rows])
    content = text.encode(encoding, errors="replace")
    parsed = _parse_or_documented_error("liste.csv", content)
    if parsed is not None:
        assert parsed_from_data(parsed.to_data()).rows == parsed.rows


VALID_XLSX = xlsx_bytes([["nom", "prénom", "moyenne"], ["Martin", "Léa", 12.5]])


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.integers(0, len(VALID_XLSX) - 1), st.integers(0, 255)), max_size=5
    )
)
def test_damaged_workbooks_never_raise_anything_else(changes):
    content = bytearray(VALID_XLSX)
    for position, value in changes:
        content[position] = value
    _parse_or_documented_error("liste.xlsx", bytes(content))


def _parse_or_documented_error(filename: str, content: bytes) -> ParsedFile | None:
    try:
        parsed = parse_class_file(filename=filename, content=content)
    except ImportFileError as exc:
        assert exc.messages and all(isinstance(m, str) and m for m in exc.messages)
        return None
    assert isinstance(parsed, ParsedFile)
    assert all(str(error).startswith("Ligne ") for error in parsed.errors)
    return parsed
