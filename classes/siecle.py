"""Reading the national exports a school's year starts from. No database access.

- **SIECLE** (base élèves), « Exports XML génériques » → `ElevesSansAdresses.xml` (or
  `Eleves.xml`): root `BEE_ELEVES`, `PARAMETRES/UAJ` (the school's UAI), `ANNEE_SCOLAIRE`,
  `DONNEES/NOMENCLATURES/MEFS/MEF` (`CODE_MEF`, `FORMATION`, `LIBELLE_LONG`…),
  `DONNEES/ELEVES/ELEVE ELEVE_ID=… ELENOET=…` (`ID_NATIONAL` = the INE, `NOM_DE_FAMILLE` or
  `NOM`, `NOM_USAGE`, `PRENOM`, `DATE_NAISS` jj/mm/aaaa, `CODE_MEF`, `DATE_SORTIE`),
  `DONNEES/STRUCTURES/STRUCTURES_ELEVE ELEVE_ID=…/STRUCTURE` (`CODE_STRUCTURE`,
  `TYPE_STRUCTURE` « D » = the division, « G » = a group).
- **STS-web**, « Exports → Emplois du temps » → `sts_emp_<UAI>_<année>.xml`: root `STS_EDT`,
  `PARAMETRES/UAJ CODE=…`, `PARAMETRES/ANNEE_SCOLAIRE ANNEE=…`,
  `DONNEES/NOMENCLATURES/MATIERES/MATIERE CODE=…` (`CODE_GESTION`, `LIBELLE_COURT`,
  `LIBELLE_LONG`, `LIBELLE_EDITION`), `DONNEES/INDIVIDUS/INDIVIDU ID=… TYPE=…` (`NOM_USAGE`,
  `NOM_PATRONYMIQUE`, `PRENOM`, `DATE_NAISSANCE`, `FONCTION`: ENS for a teacher),
  `DONNEES/STRUCTURE/DIVISIONS/DIVISION CODE=…` (`LIBELLE_LONG`,
  `MEFS_APPARTENANCE/MEF_APPARTENANCE CODE=…`, `SERVICES/SERVICE CODE_MATIERE=…/ENSEIGNANTS/
  ENSEIGNANT ID=…`) and `DONNEES/STRUCTURE/GROUPES/GROUPE CODE=…` (the same services, for
  the divisions of `DIVISIONS_APPARTENANCE/DIVISION_APPARTENANCE CODE=…`).

The element names are those Gepi's and SACoche's year initialisations read. Either file may
come zipped, as SIECLE hands it out. `parse_directory_file` returns a `SiecleFile` or an
`StsFile`, or raises `DirectoryFileError` (a French message about the whole file); nothing
else. XML is parsed with defusedxml: no DTD, no entity, no external resource.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.core.exceptions import ValidationError

MAX_BYTES = 20 * 1024 * 1024
MAX_STUDENTS = 10_000
MAX_TEACHERS = 2_000
DATA_VERSION = 1
# A division SIECLE uses for students who left (Pix's reader skips it the same way).
INACTIVE_DIVISIONS = frozenset({"inactifs", "inactif"})
TEACHER_FUNCTIONS = frozenset({"ENS"})

SIECLE, STS = "siecle", "sts"
KIND_LABELS = {SIECLE: "SIECLE (élèves)", STS: "STS-web (enseignants et services)"}

UNREADABLE = (
    "Ce fichier n'est pas un export XML de SIECLE ou de STS-web lisible : déposez "
    "« ElevesSansAdresses.xml » (SIECLE) ou « sts_emp_UAI_année.xml » (STS-web), tel quel ou "
    "zippé."
)


class DirectoryFileError(ValidationError):
    def __init__(self, message: str, code: str = "invalid_file") -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class SiecleStudent:
    siecle_id: str  # ELEVE_ID
    ine: str  # ID_NATIONAL
    last_name: str
    first_name: str
    birth_date: date | None
    mef: str
    division: str  # "" when none
    left_on: date | None  # DATE_SORTIE


@dataclass
class SiecleFile:
    uai: str
    year: int | None  # ANNEE_SCOLAIRE: 2026 for 2026-2027
    students: list[SiecleStudent] = field(default_factory=list)
    mefs: dict[str, str] = field(default_factory=dict)  # code -> label
    kind: str = SIECLE

    def to_data(self) -> dict[str, Any]:
        return {
            "version": DATA_VERSION,
            "kind": self.kind,
            "uai": self.uai,
            "year": self.year,
            "mefs": self.mefs,
            "students": [
                [
                    s.siecle_id,
                    s.ine,
                    s.last_name,
                    s.first_name,
                    s.birth_date.isoformat() if s.birth_date else "",
                    s.mef,
                    s.division,
                    s.left_on.isoformat() if s.left_on else "",
                ]
                for s in self.students
            ],
        }


@dataclass(frozen=True)
class StsSubject:
    code: str  # the national code, MATIERE CODE= (6 digits)
    short_code: str  # CODE_GESTION
    name: str  # LIBELLE_EDITION, else LIBELLE_LONG
    long_name: str


@dataclass(frozen=True)
class StsTeacher:
    sts_id: str  # INDIVIDU ID=
    last_name: str
    first_name: str
    birth_date: date | None
    function: str


@dataclass(frozen=True)
class StsDivision:
    code: str
    label: str
    mef: str


@dataclass
class StsFile:
    uai: str
    year: int | None
    subjects: dict[str, StsSubject] = field(default_factory=dict)  # only those taught
    teachers: list[StsTeacher] = field(default_factory=list)
    divisions: dict[str, StsDivision] = field(default_factory=dict)
    # (teacher sts_id, division code, subject code), each once, file order
    services: list[tuple[str, str, str]] = field(default_factory=list)
    mefs: dict[str, str] = field(default_factory=dict)
    kind: str = STS

    def to_data(self) -> dict[str, Any]:
        return {
            "version": DATA_VERSION,
            "kind": self.kind,
            "uai": self.uai,
            "year": self.year,
            "mefs": self.mefs,
            "subjects": [
                [s.code, s.short_code, s.name, s.long_name] for s in self.subjects.values()
            ],
            "teachers": [
                [
                    t.sts_id,
                    t.last_name,
                    t.first_name,
                    t.birth_date.isoformat() if t.birth_date else "",
                    t.function,
                ]
                for t in self.teachers
            ],
            "divisions": [[d.code, d.label, d.mef] for d in self.divisions.values()],
            "services": [list(s) for s in self.services],
        }


def _iso(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def parsed_from_data(data: dict[str, Any]) -> SiecleFile | StsFile:
    """Back from `to_data()` (a signed payload: trusted, but checked for its version)."""
    if data.get("version") != DATA_VERSION:
        raise DirectoryFileError("Les données de l'import sont d'une version ancienne.")
    if data["kind"] == SIECLE:
        return SiecleFile(
            uai=data["uai"],
            year=data["year"],
            mefs=dict(data["mefs"]),
            students=[
                SiecleStudent(sid, ine, last, first, _iso(birth), mef, division, _iso(left))
                for sid, ine, last, first, birth, mef, division, left in data["students"]
            ],
        )
    return StsFile(
        uai=data["uai"],
        year=data["year"],
        mefs=dict(data["mefs"]),
        subjects={c: StsSubject(c, g, n, ln) for c, g, n, ln in data["subjects"]},
        teachers=[StsTeacher(i, ln, fn, _iso(b), f) for i, ln, fn, b, f in data["teachers"]],
        divisions={c: StsDivision(c, label, mef) for c, label, mef in data["divisions"]},
        services=[tuple(s) for s in data["services"]],
    )


# --- Reading ---------------------------------------------------------------------------------


def _clean(text: str | None) -> str:
    if not text:
        return ""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        kept.append(" " if category.startswith("C") or category in ("Zl", "Zp") else char)
    return " ".join(unicodedata.normalize("NFC", "".join(kept)).split())


def _text(element: Element | None, path: str) -> str:
    if element is None:
        return ""
    found = element.find(path)
    return _clean(found.text) if found is not None else ""


_FR_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def _date(text: str) -> date | None:
    """'14/03/2010' (SIECLE, STS-web) or '2010-03-14'; None when empty or impossible."""
    match = _FR_DATE.match(text)
    try:
        if match:
            day, month, year = (int(g) for g in match.groups())
            return date(year, month, day)
        if re.match(r"^\d{4}-\d{2}-\d{2}$", text):
            return date.fromisoformat(text)
    except ValueError:
        return None
    return None


def _year(text: str) -> int | None:
    match = re.match(r"^\s*(\d{4})", text or "")
    return int(match.group(1)) if match else None


def _mef_label(mef: Element) -> str:
    return _text(mef, "FORMATION") or _text(mef, "LIBELLE_LONG") or _text(mef, "LIBELLE_EDITION")


def _unzip(content: bytes) -> bytes:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        members = [i for i in archive.infolist() if i.filename.lower().endswith(".xml")]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DirectoryFileError(UNREADABLE, code="unreadable") from exc
    if len(members) != 1:
        raise DirectoryFileError(
            "L'archive doit contenir un seul fichier XML (l'export de SIECLE ou de STS-web).",
            code="zip_members",
        )
    member = members[0]
    if member.file_size > MAX_BYTES:
        raise DirectoryFileError(_too_big(), code="too_big")
    try:
        with archive.open(member) as handle:
            data = handle.read(MAX_BYTES + 1)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError) as exc:
        raise DirectoryFileError(UNREADABLE, code="unreadable") from exc
    if len(data) > MAX_BYTES:
        raise DirectoryFileError(_too_big(), code="too_big")
    return data


def _too_big() -> str:
    return f"Le fichier est trop volumineux : {MAX_BYTES // (1024 * 1024)} Mo au plus."


def parse_directory_file(content: bytes) -> SiecleFile | StsFile:
    """Read a SIECLE or STS-web export. Raises only DirectoryFileError (French message)."""
    if len(content) > MAX_BYTES:
        raise DirectoryFileError(_too_big(), code="too_big")
    if content.startswith(b"PK\x03\x04"):
        content = _unzip(content)
    if not content.strip():
        raise DirectoryFileError("Le fichier est vide.", code="empty")
    try:
        root = fromstring(content, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise DirectoryFileError(
            "Ce fichier XML contient des déclarations interdites (DTD ou entités) : ce n'est pas "
            "un export de SIECLE ou de STS-web. Rien n'a été importé.",
            code="forbidden_xml",
        ) from exc
    except (ParseError, ValueError, UnicodeError, RecursionError) as exc:
        raise DirectoryFileError(UNREADABLE, code="unreadable") from exc
    if root.tag == "BEE_ELEVES":
        return _read_siecle(root)
    if root.tag == "STS_EDT":
        return _read_sts(root)
    raise DirectoryFileError(
        f"Ce fichier XML n'est ni un export SIECLE (« BEE_ELEVES ») ni un export STS-web "
        f"(« STS_EDT ») : son élément racine est « {_clean(root.tag)[:40]} ».",
        code="wrong_root",
    )


def _missing(element: str, kind: str) -> DirectoryFileError:
    return DirectoryFileError(
        f"L'export {KIND_LABELS[kind]} est incomplet : l'élément « {element} » manque.",
        code="missing_element",
    )


def _read_siecle(root: Element) -> SiecleFile:
    uai = _text(root, "PARAMETRES/UAJ")
    if not uai:
        raise _missing("PARAMETRES/UAJ", SIECLE)
    donnees = root.find("DONNEES")
    if donnees is None:
        raise _missing("DONNEES", SIECLE)
    eleves = donnees.find("ELEVES")
    if eleves is None:
        raise _missing("DONNEES/ELEVES", SIECLE)
    parsed = SiecleFile(uai=uai.upper(), year=_year(_text(root, "PARAMETRES/ANNEE_SCOLAIRE")))
    for mef in donnees.iterfind("NOMENCLATURES/MEFS/MEF"):
        code = mef.get("CODE_MEF") or _text(mef, "CODE_MEF")
        if code:
            parsed.mefs[_clean(code)] = _mef_label(mef)
    divisions: dict[str, str] = {}
    for structures in donnees.iterfind("STRUCTURES/STRUCTURES_ELEVE"):
        student_id = _clean(structures.get("ELEVE_ID"))
        for structure in structures.iterfind("STRUCTURE"):
            code = _text(structure, "CODE_STRUCTURE")
            is_division = _text(structure, "TYPE_STRUCTURE") == "D"
            if is_division and code and code.casefold() not in INACTIVE_DIVISIONS:
                divisions[student_id] = code
    seen: set[str] = set()
    for eleve in eleves.iterfind("ELEVE"):
        student_id = _clean(eleve.get("ELEVE_ID"))
        last_name = _text(eleve, "NOM_DE_FAMILLE") or _text(eleve, "NOM")
        usage = _text(eleve, "NOM_USAGE")
        first_name = _text(eleve, "PRENOM")
        if not student_id or not (last_name or usage) or not first_name:
            continue  # a record without identity: SIECLE keeps some, Gepi skips them too
        if student_id in seen:
            continue
        seen.add(student_id)
        if len(seen) > MAX_STUDENTS:
            raise DirectoryFileError(
                f"Le fichier compte plus de {MAX_STUDENTS} élèves : ce n'est pas l'export d'un "
                "seul établissement.",
                code="too_many",
            )
        parsed.students.append(
            SiecleStudent(
                siecle_id=student_id[:20],
                ine=_text(eleve, "ID_NATIONAL")[:11],
                last_name=(usage or last_name)[:100],
                first_name=first_name[:100],
                birth_date=_date(_text(eleve, "DATE_NAISS")),
                mef=_text(eleve, "CODE_MEF")[:11],
                division=divisions.get(student_id, "")[:40],
                left_on=_date(_text(eleve, "DATE_SORTIE")),
            )
        )
    return parsed


def _read_sts(root: Element) -> StsFile:
    uaj = root.find("PARAMETRES/UAJ")
    uai = _clean(uaj.get("CODE")) if uaj is not None else ""
    uai = uai or _text(root, "PARAMETRES/UAJ")
    if not uai:
        raise _missing("PARAMETRES/UAJ", STS)
    year_element = root.find("PARAMETRES/ANNEE_SCOLAIRE")
    year = None
    if year_element is not None:
        year = _year(year_element.get("ANNEE") or _clean(year_element.text))
    donnees = root.find("DONNEES")
    if donnees is None:
        raise _missing("DONNEES", STS)
    if donnees.find("INDIVIDUS") is None:
        raise _missing("DONNEES/INDIVIDUS", STS)
    parsed = StsFile(uai=uai.upper(), year=year)
    all_subjects: dict[str, StsSubject] = {}
    for matiere in donnees.iterfind("NOMENCLATURES/MATIERES/MATIERE"):
        code = _clean(matiere.get("CODE"))
        if not code:
            continue
        long_name = _text(matiere, "LIBELLE_LONG")
        name = _text(matiere, "LIBELLE_EDITION") or long_name or _text(matiere, "LIBELLE_COURT")
        all_subjects[code] = StsSubject(
            code=code[:12],
            short_code=(_text(matiere, "CODE_GESTION") or _text(matiere, "LIBELLE_COURT"))[:20],
            name=(name or code)[:120],
            long_name=long_name[:120],
        )
    for mef in donnees.iterfind("NOMENCLATURES/MEFS/MEF"):
        code = _clean(mef.get("CODE"))
        if code:
            parsed.mefs[code] = _mef_label(mef)
    teachers: dict[str, StsTeacher] = {}
    for individu in donnees.iterfind("INDIVIDUS/INDIVIDU"):
        sts_id = _clean(individu.get("ID"))
        function = _text(individu, "FONCTION")
        last_name = _text(individu, "NOM_USAGE") or _text(individu, "NOM_PATRONYMIQUE")
        first_name = _text(individu, "PRENOM")
        if not sts_id or function not in TEACHER_FUNCTIONS or not last_name or not first_name:
            continue
        if sts_id in teachers:
            continue
        teachers[sts_id] = StsTeacher(
            sts_id=sts_id[:20],
            last_name=last_name[:150],
            first_name=first_name[:150],
            birth_date=_date(_text(individu, "DATE_NAISSANCE")),
            function=function,
        )
        if len(teachers) > MAX_TEACHERS:
            raise DirectoryFileError(
                f"Le fichier compte plus de {MAX_TEACHERS} enseignants : ce n'est pas l'export "
                "d'un seul établissement.",
                code="too_many",
            )
    parsed.teachers = list(teachers.values())
    structure = donnees.find("STRUCTURE")
    seen: set[tuple[str, str, str]] = set()

    def add_services(element: Element, division_codes: list[str]) -> None:
        for service in element.iterfind("SERVICES/SERVICE"):
            subject_code = _clean(service.get("CODE_MATIERE"))
            if subject_code not in all_subjects:
                continue
            for enseignant in service.iterfind("ENSEIGNANTS/ENSEIGNANT"):
                teacher_id = _clean(enseignant.get("ID"))
                if teacher_id not in teachers:
                    continue  # no function this year (leave, retirement): Gepi skips them too
                for division_code in division_codes:
                    key = (teacher_id, division_code, subject_code)
                    if key not in seen:
                        seen.add(key)
                        parsed.services.append(key)
                        parsed.subjects[subject_code] = all_subjects[subject_code]

    if structure is not None:
        for division in structure.iterfind("DIVISIONS/DIVISION"):
            code = _clean(division.get("CODE"))[:40]
            if not code:
                continue
            mef = division.find("MEFS_APPARTENANCE/MEF_APPARTENANCE")
            parsed.divisions[code] = StsDivision(
                code=code,
                label=_text(division, "LIBELLE_LONG"),
                mef=_clean(mef.get("CODE")) if mef is not None else "",
            )
            add_services(division, [code])
        for groupe in structure.iterfind("GROUPES/GROUPE"):
            codes = [
                _clean(d.get("CODE"))[:40]
                for d in groupe.iterfind("DIVISIONS_APPARTENANCE/DIVISION_APPARTENANCE")
            ]
            codes = [c for c in codes if c in parsed.divisions]
            if codes:
                add_services(groupe, codes)
    return parsed


# --- Levels ----------------------------------------------------------------------------------

# The platform's levels: code -> (name, order). Lycée first (the data migration's orders).
LEVELS = {
    "2nde": ("Seconde", 1),
    "1ere": ("Première", 2),
    "Tle": ("Terminale", 3),
    "6e": ("Sixième", 11),
    "5e": ("Cinquième", 12),
    "4e": ("Quatrième", 13),
    "3e": ("Troisième", 14),
    "autre": ("Autre niveau", 99),
}
# A MEF code's first three digits (the « dispositif de formation »).
MEF_PREFIXES = {
    "100": "6e",
    "101": "5e",
    "102": "4e",
    "103": "3e",
    "167": "3e",  # 3e prépa-métiers
    "200": "2nde",
    "201": "1ere",
    "202": "Tle",
    "210": "1ere",  # technological first years (older nomenclature)
    "211": "1ere",
    "212": "Tle",
    "213": "Tle",
    "240": "2nde",  # bac pro in three years
    "241": "1ere",
    "242": "Tle",
}
_LABEL_PATTERNS = [
    (re.compile(r"^(6|SIXIEME)"), "6e"),
    (re.compile(r"^(5|CINQUIEME)"), "5e"),
    (re.compile(r"^(4|QUATRIEME)"), "4e"),
    (re.compile(r"^(3|TROISIEME)"), "3e"),
    (re.compile(r"^(2|SECONDE)"), "2nde"),
    (re.compile(r"^(1|PREMIERE)"), "1ere"),
    (re.compile(r"^(T|TERMINALE)"), "Tle"),
]


def _upper_ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper().strip()


def level_code(*, mef: str = "", mef_label: str = "", division: str = "") -> str:
    """The platform's level of a MEF code (its label, then the division's name as fallbacks)."""
    if mef[:3] in MEF_PREFIXES:
        return MEF_PREFIXES[mef[:3]]
    for text in (mef_label, division):
        folded = _upper_ascii(text)
        for pattern, code in _LABEL_PATTERNS:
            if folded and pattern.match(folded):
                return code
    return "autre"
