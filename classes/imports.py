"""Parsing of class lists (CSV or XLSX) as school software exports them. No database access.

`parse_class_file` turns any bytes into either a `ParsedFile` (whose `errors` list the bad
lines, in French, numbered as the teacher sees them in a spreadsheet: header = line 1) or an
`ImportFileError` (a French message about the whole file). It raises nothing else.

The columns, encodings and separators are documented in docs/import-format.md.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from common.text import clean_line, strip_accents

from .grades import FIELD_DECIMALS, parse_grade
from .models import Student
from .text import GEPI_LOGIN_MESSAGE, is_gepi_login

MAX_ROWS = 500  # students per file
MAX_COLUMNS = 100
# Rows read from a worksheet, blank ones included (openpyxl fills the gaps of a sparse sheet).
MAX_SHEET_ROWS = 100_000
# A class list is a few dozen kilobytes once unzipped: anything huge is a wrong file or a bomb.
XLSX_MAX_UNCOMPRESSED = 10 * 1024 * 1024
# Rows before the header (a title such as "Classe de 2nde 3") looked at to find it.
HEADER_SEARCH_ROWS = 10
DATA_VERSION = 1

GRADE_FIELDS = ("average", "behaviour", "participation", "work")
REQUIRED_COLUMNS = ("last_name", "first_name")
COLUMN_LABELS = {
    "last_name": "nom",
    "first_name": "prénom",
    "is_repeating": "redoublant",
    "external_id": "identifiant",
    "gepi_login": "login Gepi",
    "average": "moyenne",
    "behaviour": "comportement",
    "participation": "participation",
    "work": "travail",
}
# Header texts once normalized (see `normalize_header`).
COLUMN_ALIASES = {
    "last_name": ("nom", "nom de famille", "nom eleve", "nom de l eleve"),
    "first_name": ("prenom", "prenoms", "prenom s", "prenom eleve", "prenom de l eleve"),
    "is_repeating": ("redoublant", "redoublement", "redouble"),
    "external_id": ("identifiant", "id", "ine", "identifiant eleve"),
    # Gepi's import of appréciations matches its login, never the INE.
    "gepi_login": ("login", "login gepi", "identifiant gepi"),
    "average": ("moyenne", "moyenne 20", "moy", "moy 20", "note", "note 20"),
    "behaviour": ("comportement", "comportement 10"),
    "participation": ("participation", "participation 10"),
    "work": ("travail", "travail 10"),
}
HEADER_TO_COLUMN = {
    alias: column for column, aliases in COLUMN_ALIASES.items() for alias in aliases
}

TRUE_WORDS = frozenset({"oui", "o", "1", "x", "vrai", "true", "yes", "y"})
FALSE_WORDS = frozenset({"non", "n", "0", "faux", "false", "no"})
# Written in grade columns by school software for "no grade": read as an empty cell.
NOT_GRADED_WORDS = frozenset({"abs", "absent", "absente", "disp", "dispense", "dispensee", "nn"})
NOT_GRADED_SYMBOLS = frozenset({"-", "--", "—", "–", "/"})

MAX_LENGTHS = {
    "last_name": Student._meta.get_field("last_name").max_length,
    "first_name": Student._meta.get_field("first_name").max_length,
    "external_id": Student._meta.get_field("external_id").max_length,
    "gepi_login": Student._meta.get_field("gepi_login").max_length,
}
MAX_GRADE_TEXT = 20

XLSX_EXTENSIONS = frozenset({".xlsx", ".xlsm"})
CSV_EXTENSIONS = frozenset({".csv", ".txt", ""})
ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (Excel 97-2003)
DELIMITERS = (";", ",", "\t")

UNREADABLE = (
    "Ce fichier n'est pas un fichier CSV ou XLSX lisible : enregistrez votre liste depuis "
    "votre tableur au format « CSV » ou « Classeur Excel (.xlsx) »."
)


class ImportFileError(ValidationError):
    """The whole file is unusable (type, size, encoding, missing column…); French message."""

    def __init__(self, message: str, code: str = "invalid_file") -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"Ligne {self.line} : {self.message}"


@dataclass
class ParsedRow:
    line: int
    last_name: str
    first_name: str
    is_repeating: bool | None = None  # None: column absent or cell empty
    external_id: str | None = None  # None: column absent or cell empty
    gepi_login: str | None = None  # None: column absent or cell empty
    grades: dict[str, Decimal] = field(default_factory=dict)  # only the non-empty cells
    cells: dict[str, str] = field(default_factory=dict)  # canonical column -> text

    @property
    def key(self) -> tuple[str, str]:
        return (normalize_name(self.last_name), normalize_name(self.first_name))


@dataclass
class ParsedFile:
    kind: str  # "csv" or "xlsx"
    columns: tuple[str, ...]  # canonical names of the recognised columns, file order
    ignored_columns: tuple[str, ...] = ()
    rows: list[ParsedRow] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def error_messages(self) -> list[str]:
        return [str(error) for error in self.errors]

    @property
    def column_labels(self) -> list[str]:
        return [COLUMN_LABELS[column] for column in self.columns]

    def to_data(self) -> dict[str, Any]:
        """JSON-able form carried (signed) between the preview and the confirmation."""
        return {
            "version": DATA_VERSION,
            "kind": self.kind,
            "columns": list(self.columns),
            "ignored": list(self.ignored_columns),
            "rows": [[row.line, [row.cells.get(c, "") for c in self.columns]] for row in self.rows],
        }


# --- Normalisation ---------------------------------------------------------------------------


def _fold(text: str) -> str:
    return strip_accents(text).casefold().replace("œ", "oe").replace("æ", "ae")


def normalize_header(text: str) -> str:
    """'  Prénom ' -> 'prenom'; 'Moyenne (/20)' -> 'moyenne 20'."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", _fold(text)).split())


_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
_HYPHENS = re.compile(r"[-‐‑‒–—_\s]+")


def normalize_name(text: str) -> str:
    """Matching key of a name: casefold, no accents, spaces and hyphens collapsed."""
    return _HYPHENS.sub(" ", _fold(text).translate(_APOSTROPHES)).strip()


def _shorten(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Entry point -----------------------------------------------------------------------------


def parse_class_file(*, filename: str, content: bytes) -> ParsedFile:
    """Read a class list. Raises only ImportFileError (French message) for a bad file."""
    try:
        return _parse(filename=filename or "", content=content)
    except ImportFileError:
        raise
    except Exception as exc:  # a parser bug must not become a 500: the file is refused
        raise ImportFileError(UNREADABLE) from exc


def _extension(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _parse(*, filename: str, content: bytes) -> ParsedFile:
    max_bytes = settings.IMPORT_MAX_BYTES
    if len(content) > max_bytes:
        raise ImportFileError(
            f"Le fichier est trop volumineux ({_size(len(content))}) : {_size(max_bytes)} au plus. "
            "Une liste de classe pèse quelques dizaines de kilo-octets.",
            code="too_big",
        )
    if not content.strip():
        raise ImportFileError("Le fichier est vide.", code="empty")
    extension = _extension(filename)
    if content.startswith(ZIP_MAGIC):
        return _parse_xlsx(content)
    if extension in XLSX_EXTENSIONS:
        raise ImportFileError(
            "Ce fichier porte l'extension .xlsx mais n'est pas un classeur Excel valide : "
            "ouvrez-le dans votre tableur et enregistrez-le à nouveau au format .xlsx ou CSV.",
            code="bad_xlsx",
        )
    if content.startswith(OLE2_MAGIC) or extension == ".xls":
        raise ImportFileError(
            "Les fichiers .xls (Excel 97-2003) ne sont pas acceptés : enregistrez la liste au "
            "format « Classeur Excel (.xlsx) » ou « CSV ».",
            code="xls",
        )
    if extension == ".ods":
        raise ImportFileError(
            "Les fichiers .ods ne sont pas acceptés : dans LibreOffice, enregistrez la liste au "
            "format .xlsx ou CSV.",
            code="ods",
        )
    if extension not in CSV_EXTENSIONS:
        raise ImportFileError(
            f"Type de fichier non accepté (« {_shorten(extension, 12)} ») : importez un fichier "
            "CSV (.csv) ou Excel (.xlsx).",
            code="file_type",
        )
    return _parse_csv(content)


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} Mo".replace(".", ",")
    return f"{max(1, round(n / 1024))} ko"


# --- CSV -------------------------------------------------------------------------------------


def _decode(content: bytes) -> tuple[str, str]:
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFileError(
            "Ce fichier est enregistré en UTF-16 (« Texte Unicode ») : enregistrez-le au format "
            "« CSV UTF-8 » ou « CSV (séparateur : point-virgule) ».",
            code="encoding",
        )
    if b"\x00" in content:
        raise ImportFileError(UNREADABLE, code="binary")
    if content.startswith(b"\xef\xbb\xbf"):
        try:
            return content.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError:
            raise ImportFileError(
                "Le fichier annonce l'encodage UTF-8 mais contient des caractères invalides : "
                "enregistrez-le à nouveau au format « CSV UTF-8 ».",
                code="encoding",
            ) from None
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        raise ImportFileError(UNREADABLE, code="encoding") from None


def _parse_csv(content: bytes) -> ParsedFile:
    text, encoding = _decode(content)
    lines = text[:100_000].splitlines()
    explicit = re.fullmatch(r"\s*sep=(.)\s*", lines[0]) if lines else None
    if explicit:
        # Excel's "sep=;" first line is not shown in the spreadsheet: it is not counted.
        delimiter = explicit.group(1)
        if delimiter not in DELIMITERS:
            raise ImportFileError(
                f"Séparateur « {delimiter} » non pris en charge : utilisez le point-virgule "
                "ou la virgule.",
                code="delimiter",
            )
        text = re.sub(r"^[^\r\n]*(\r\n|\r|\n)?", "", text, count=1)
    else:
        delimiter = _sniff_delimiter([line for line in lines[:50] if line.strip()])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        parsed = _parse_table(enumerate(reader, start=1), kind="csv")
    except csv.Error as exc:
        raise ImportFileError(
            "Le fichier CSV est mal formé (guillemets non refermés ou cellule trop longue) : "
            "enregistrez-le à nouveau depuis votre tableur.",
            code="csv",
        ) from exc
    parsed.encoding = encoding
    parsed.delimiter = delimiter
    return parsed


def _sniff_delimiter(lines: list[str]) -> str:
    """The separator that makes the most recognised columns out of the first lines.

    Decided by the header, since a comma may also be a decimal comma in the data of a
    semicolon-separated file.
    """
    best, best_score = None, (0, 0)
    for delimiter in DELIMITERS:
        recognised = 0
        for line in lines[:HEADER_SEARCH_ROWS]:
            try:
                cells = next(csv.reader([line], delimiter=delimiter))
            except (csv.Error, StopIteration):
                continue
            found = {HEADER_TO_COLUMN.get(normalize_header(c)) for c in cells} - {None}
            recognised = max(recognised, len(found))
        score = (recognised, lines[0].count(delimiter) if lines else 0)
        if score > best_score:
            best, best_score = delimiter, score
    return best or ";"


# --- XLSX ------------------------------------------------------------------------------------


def _parse_xlsx(content: bytes) -> ParsedFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        names = set(archive.namelist())
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ImportFileError(UNREADABLE, code="bad_zip") from exc
    if "mimetype" in names and "xl/workbook.xml" not in names:
        raise ImportFileError(
            "Les fichiers .ods ne sont pas acceptés : dans LibreOffice, enregistrez la liste au "
            "format .xlsx ou CSV.",
            code="ods",
        )
    if "xl/workbook.xml" not in names:
        raise ImportFileError(
            "Ce fichier n'est pas un classeur Excel (.xlsx) : importez un fichier CSV ou XLSX.",
            code="file_type",
        )
    if sum(info.file_size for info in infos) > XLSX_MAX_UNCOMPRESSED or len(infos) > 1000:
        raise ImportFileError(
            "Ce classeur est trop volumineux pour une liste de classe : gardez une seule "
            "feuille avec la liste des élèves.",
            code="too_big",
        )

    from openpyxl import load_workbook  # imported here: only imports need it

    workbook = None
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        sheet = workbook.active
        if sheet is None or not hasattr(sheet, "iter_rows"):
            sheet = next((ws for ws in workbook.worksheets if hasattr(ws, "iter_rows")), None)
        if sheet is None:
            raise ImportFileError("Ce classeur ne contient aucune feuille de calcul.", code="empty")
        # The declared size of the sheet may be wrong (some exports say "A1"): read every row.
        sheet.reset_dimensions()
        rows = sheet.iter_rows(max_col=MAX_COLUMNS + 1, values_only=True)
        return _parse_table(_xlsx_records(rows), kind="xlsx")
    except ImportFileError:
        raise
    except Exception as exc:  # openpyxl raises many kinds of errors on damaged files
        raise ImportFileError(
            "Ce classeur Excel est illisible ou endommagé : ouvrez-le dans votre tableur et "
            "enregistrez-le à nouveau au format .xlsx, ou exportez-le en CSV.",
            code="bad_xlsx",
        ) from exc
    finally:
        if workbook is not None:
            workbook.close()


def _xlsx_records(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[int, list[Any]]]:
    for number, values in enumerate(rows, start=1):
        if number > MAX_SHEET_ROWS:
            raise ImportFileError(
                f"La feuille compte plus de {MAX_SHEET_ROWS} lignes : une liste de classe en "
                f"compte {MAX_ROWS} au plus. Supprimez les lignes inutiles.",
                code="too_many_rows",
            )
        yield number, list(values)


# --- Table -----------------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    """A cell as text: XLSX gives numbers, booleans and dates, CSV gives strings."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return clean_line(str(value))


def _grade_text(value: Any, column: str) -> str:
    """An XLSX number as the spreadsheet shows it: a formula's 12.3333… is rounded (12.33)."""
    if isinstance(value, float) and not isinstance(value, bool):
        try:
            quantum = Decimal(1).scaleb(-FIELD_DECIMALS[column])
            rounded = Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP)
        except (InvalidOperation, ValueError):
            return _cell_text(value)
        return format(rounded.normalize(), "f").replace(".", ",")
    return _cell_text(value)


def _map_header(texts: list[str]) -> tuple[dict[int, str], list[str], list[str]]:
    """Recognised columns by position, ignored headers, and headers given twice."""
    mapping: dict[int, str] = {}
    ignored: list[str] = []
    twice: list[str] = []
    for index, text in enumerate(texts):
        if not text:
            continue
        column = HEADER_TO_COLUMN.get(normalize_header(text))
        if column is None:
            ignored.append(_shorten(text, 40))
        elif column in mapping.values():
            twice.append(f"« {COLUMN_LABELS[column]} » (« {_shorten(text, 40)} »)")
        else:
            mapping[index] = column
    return mapping, ignored, twice


def _parse_table(records: Iterable[tuple[int, list[Any]]], *, kind: str) -> ParsedFile:
    header: dict[int, str] | None = None
    ignored: list[str] = []
    header_width = 0
    first_cells: list[str] | None = None
    rows_before_header = 0
    raw_rows: list[tuple[int, dict[str, str], list[str]]] = []

    for number, values in records:
        texts = [_cell_text(v) for v in values]
        if not any(texts):
            continue
        if header is None:
            if any(texts[MAX_COLUMNS:]):
                raise ImportFileError(
                    f"L'en-tête compte plus de {MAX_COLUMNS} colonnes : ce n'est pas une liste "
                    "de classe.",
                    code="too_many_columns",
                )
            if first_cells is None:
                first_cells = [t for t in texts if t]
            mapping, unknown, twice = _map_header(texts)
            if all(column in mapping.values() for column in REQUIRED_COLUMNS):
                if twice:
                    raise ImportFileError(
                        "Colonne(s) en double dans l'en-tête : "
                        + ", ".join(twice)
                        + ". Gardez une seule colonne de chaque sorte.",
                        code="duplicate_column",
                    )
                header, ignored = mapping, unknown
                header_width = max(i for i, t in enumerate(texts) if t) + 1
                continue
            rows_before_header += 1
            if rows_before_header >= HEADER_SEARCH_ROWS:
                break
            continue
        if len(raw_rows) >= MAX_ROWS:
            raise ImportFileError(
                f"Le fichier compte plus de {MAX_ROWS} élèves : importez une classe à la fois.",
                code="too_many_rows",
            )
        cells = {}
        for index, column in header.items():
            value = values[index] if index < len(values) else None
            cells[column] = (
                _grade_text(value, column)
                if column in GRADE_FIELDS
                else (texts[index] if index < len(texts) else "")
            )
        problems = []
        if kind == "csv" and any(texts[header_width:]):
            problems.append(
                "plus de valeurs que de colonnes dans l'en-tête. Avec la virgule comme "
                "séparateur, écrivez les nombres décimaux avec un point (12.5) ou entre "
                "guillemets, ou utilisez le point-virgule comme séparateur."
            )
        raw_rows.append((number, cells, problems))

    if header is None:
        _raise_missing_columns(first_cells)
    columns = tuple(header[index] for index in sorted(header))
    parsed = ParsedFile(kind=kind, columns=columns, ignored_columns=tuple(ignored))
    _build_rows(parsed, raw_rows)
    return parsed


def _raise_missing_columns(first_cells: list[str] | None) -> None:
    if first_cells is None:
        raise ImportFileError("Le fichier ne contient aucune ligne remplie.", code="empty")
    found = {HEADER_TO_COLUMN.get(normalize_header(c)) for c in first_cells}
    missing = [COLUMN_LABELS[c] for c in REQUIRED_COLUMNS if c not in found]
    shown = ", ".join(f"« {_shorten(c, 30)} »" for c in first_cells[:8])
    if len(first_cells) > 8:
        shown += ", …"
    raise ImportFileError(
        "Colonne(s) obligatoire(s) manquante(s) : "
        + ", ".join(f"« {label} »" for label in missing)
        + ". La première ligne du tableau doit donner le nom des colonnes (nom ; prénom ; "
        f"moyenne…). Première ligne lue : {shown}.",
        code="missing_columns",
    )


def _build_rows(parsed: ParsedFile, raw_rows: list[tuple[int, dict[str, str], list[str]]]) -> None:
    """Validate each line; shared by the upload and the confirmation (re-validation)."""
    by_key: dict[tuple[str, str], list[ParsedRow]] = {}
    by_id: dict[str, ParsedRow] = {}
    for number, texts, problems in raw_rows:
        messages = list(problems)
        row = _parse_row(number, texts, messages)
        if row is not None and not messages:
            twins = by_key.setdefault(row.key, [])
            for twin in twins:
                # Homonyms are told apart only by different identifiants.
                if not (row.external_id and twin.external_id):
                    messages.append(
                        f"élève « {_shorten(row.last_name, 40)} {_shorten(row.first_name, 40)} » "
                        f"en double (déjà ligne {twin.line})."
                    )
                    break
            if row.external_id and row.external_id in by_id:
                messages.append(
                    f"identifiant « {_shorten(row.external_id)} » en double (déjà ligne "
                    f"{by_id[row.external_id].line})."
                )
            if not messages:
                twins.append(row)
                if row.external_id:
                    by_id[row.external_id] = row
        if messages:
            parsed.errors.extend(LineError(number, message) for message in messages)
        elif row is not None:
            parsed.rows.append(row)


def _parse_row(number: int, texts: dict[str, str], messages: list[str]) -> ParsedRow | None:
    last_name = texts.get("last_name", "")
    first_name = texts.get("first_name", "")
    for column, value in (("last_name", last_name), ("first_name", first_name)):
        if not value:
            messages.append(f"le {COLUMN_LABELS[column]} est vide.")
        elif len(value) > MAX_LENGTHS[column]:
            messages.append(
                f"{COLUMN_LABELS[column]} trop long ({MAX_LENGTHS[column]} caractères au plus)."
            )
    row = ParsedRow(line=number, last_name=last_name, first_name=first_name)
    row.cells = {"last_name": last_name, "first_name": first_name}

    if "is_repeating" in texts:
        raw = texts["is_repeating"]
        word = normalize_header(raw).replace(" ", "")
        if raw == "":
            row.is_repeating = None
        elif word in TRUE_WORDS:
            row.is_repeating = True
        elif word in FALSE_WORDS:
            row.is_repeating = False
        else:
            messages.append(
                f"redoublant « {_shorten(raw)} » — valeur non reconnue : écrivez oui, non, x "
                "ou laissez vide."
            )
        row.cells["is_repeating"] = raw

    if "external_id" in texts:
        raw = texts["external_id"]
        if len(raw) > MAX_LENGTHS["external_id"]:
            messages.append(
                f"identifiant trop long ({MAX_LENGTHS['external_id']} caractères au plus)."
            )
        row.external_id = raw or None
        row.cells["external_id"] = raw

    if "gepi_login" in texts:
        raw = texts["gepi_login"]
        if len(raw) > MAX_LENGTHS["gepi_login"]:
            messages.append(
                f"login Gepi trop long ({MAX_LENGTHS['gepi_login']} caractères au plus)."
            )
        elif raw and not is_gepi_login(raw):
            messages.append(f"login Gepi « {_shorten(raw)} » — {GEPI_LOGIN_MESSAGE}")
        row.gepi_login = raw or None
        row.cells["gepi_login"] = raw

    for column in GRADE_FIELDS:
        if column not in texts:
            continue
        raw = texts[column]
        row.cells[column] = raw
        label = COLUMN_LABELS[column]
        if _is_not_graded(raw):
            continue
        if len(raw) > MAX_GRADE_TEXT:
            messages.append(f"{label} « {_shorten(raw, 15)} » — ce n'est pas une note.")
            continue
        try:
            value = parse_grade(raw, field=column)
        except ValidationError as exc:
            messages.append(f"{label} « {raw} » — {' '.join(exc.messages)}")
            continue
        if value is not None:
            row.grades[column] = value
    return row


def _is_not_graded(raw: str) -> bool:
    return raw.strip() in NOT_GRADED_SYMBOLS or normalize_header(raw).replace(" ", "") in (
        NOT_GRADED_WORDS
    )


# --- Signed payload --------------------------------------------------------------------------


def parsed_from_data(data: Any) -> ParsedFile:
    """Rebuild (and re-validate) a ParsedFile from `ParsedFile.to_data()`."""
    invalid = ImportFileError(
        "Les données de l'import sont invalides : importez à nouveau le fichier.",
        code="bad_payload",
    )
    if not isinstance(data, dict) or data.get("version") != DATA_VERSION:
        raise invalid
    columns, rows, ignored = data.get("columns"), data.get("rows"), data.get("ignored", [])
    if (
        not isinstance(columns, list)
        or not all(isinstance(c, str) and c in COLUMN_LABELS for c in columns)
        or len(set(columns)) != len(columns)
        or not all(c in columns for c in REQUIRED_COLUMNS)
        or not isinstance(rows, list)
        or len(rows) > MAX_ROWS
        or not isinstance(ignored, list)
        or not all(isinstance(c, str) for c in ignored)
    ):
        raise invalid
    raw_rows = []
    for item in rows:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], int)
            or isinstance(item[0], bool)
            or not isinstance(item[1], list)
            or len(item[1]) != len(columns)
            or not all(isinstance(v, str) for v in item[1])
        ):
            raise invalid
        raw_rows.append(
            (item[0], {c: clean_line(v) for c, v in zip(columns, item[1], strict=True)}, [])
        )
    kind = data.get("kind") if data.get("kind") in ("csv", "xlsx") else "csv"
    parsed = ParsedFile(kind=kind, columns=tuple(columns), ignored_columns=tuple(ignored))
    _build_rows(parsed, raw_rows)
    return parsed
