"""SIECLE and STS-web exports for the tests and the benchmark, with the official element names.

`siecle_xml` writes an `ElevesSansAdresses.xml` (root BEE_ELEVES), `sts_xml` an
`sts_emp_<UAI>_<année>.xml` (root STS_EDT), as the national applications export them (the
parts the import reads, plus a few it must skip: addresses, options, groups, other staff).
`generated_school` makes a whole school of them: divisions, students with French names, staff
and services.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from xml.sax.saxutils import escape

UAI = "0351234X"
YEAR = 2026

MEFS = {
    "20010018110": "2NDE GENERALE & TECHNO.",
    "20111010110": "1ERE GENERALE",
    "20212010110": "TERMINALE GENERALE",
    "10010012110": "6EME",
    "10310019110": "3EME",
}
MEF_OF_LEVEL = {"2nde": "20010018110", "1ere": "20111010110", "Tle": "20212010110"}

# STS-web's national subject codes (MATIERE CODE=) with CODE_GESTION and the edition label.
SUBJECTS = {
    "040300": ("HIGEO", "HISTOIRE-GEOGRAPHIE", "Histoire-Géographie"),
    "030201": ("AGL1", "ANGLAIS LV1", "Anglais LV1"),
    "061300": ("MATHS", "MATHEMATIQUES", "Mathématiques"),
    "020100": ("FRANC", "FRANCAIS", "Français"),
    "067000": ("PH-CH", "PHYSIQUE-CHIMIE", "Physique-Chimie"),
    "030602": ("ESP2", "ESPAGNOL LV2", "Espagnol LV2"),
    "100100": ("EPS", "ED.PHYSIQUE & SPORT.", "Éducation physique et sportive"),
    "068000": ("SVT", "SCIENCES VIE & TERRE", "Sciences de la vie et de la Terre"),
    "001000": ("ACCPE", "ACCOMPAGNEMT. PERSO.", "Accompagnement personnalisé"),
}


@dataclass
class Eleve:
    eleve_id: str
    ine: str
    nom: str
    prenom: str
    naissance: date | None
    mef: str
    division: str
    sortie: date | None = None
    nom_usage: str = ""


@dataclass
class Individu:
    id: str
    nom: str
    prenom: str
    fonction: str = "ENS"
    naissance: date | None = None


@dataclass
class Division:
    code: str
    mef: str
    # (subject code, [teacher ids])
    services: list[tuple[str, list[str]]] = field(default_factory=list)


def _d(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def siecle_xml(eleves: list[Eleve], *, uai: str = UAI, year: int = YEAR) -> bytes:
    mefs = "".join(
        f'<MEF CODE_MEF="{code}"><FORMATION>{escape(label)}</FORMATION>'
        f"<LIBELLE_LONG>{escape(label)}</LIBELLE_LONG><MEF_RATTACHEMENT>{code}"
        "</MEF_RATTACHEMENT></MEF>"
        for code, label in MEFS.items()
    )
    rows, structures = [], []
    for e in eleves:
        sortie = f"<DATE_SORTIE>{_d(e.sortie)}</DATE_SORTIE>" if e.sortie else ""
        usage = f"<NOM_USAGE>{escape(e.nom_usage)}</NOM_USAGE>" if e.nom_usage else ""
        rows.append(
            f'<ELEVE ELEVE_ID="{e.eleve_id}" ELENOET="{e.eleve_id[-5:]}">'
            f"<ID_NATIONAL>{e.ine}</ID_NATIONAL><ELENOET>{e.eleve_id[-5:]}</ELENOET>"
            f"<NOM_DE_FAMILLE>{escape(e.nom)}</NOM_DE_FAMILLE>{usage}"
            f"<PRENOM>{escape(e.prenom)}</PRENOM><PRENOM2></PRENOM2>"
            f"<DATE_NAISS>{_d(e.naissance)}</DATE_NAISS><CODE_SEXE>2</CODE_SEXE>"
            f"<CODE_PAYS>100</CODE_PAYS><CODE_REGIME>2</CODE_REGIME>"
            f"<DATE_ENTREE>02/09/{year}</DATE_ENTREE>{sortie}"
            f"<CODE_MEF>{e.mef}</CODE_MEF><CODE_STATUT>ST</CODE_STATUT></ELEVE>"
        )
        if e.division:
            structures.append(
                f'<STRUCTURES_ELEVE ELEVE_ID="{e.eleve_id}" ELENOET="{e.eleve_id[-5:]}">'
                f"<STRUCTURE><CODE_STRUCTURE>{escape(e.division)}</CODE_STRUCTURE>"
                "<TYPE_STRUCTURE>D</TYPE_STRUCTURE></STRUCTURE>"
                "<STRUCTURE><CODE_STRUCTURE>ESP2-G1</CODE_STRUCTURE>"
                "<TYPE_STRUCTURE>G</TYPE_STRUCTURE></STRUCTURE></STRUCTURES_ELEVE>"
            )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<BEE_ELEVES VERSION="3.1"><PARAMETRES>'
        f"<UAJ>{uai}</UAJ><ANNEE_SCOLAIRE>{year}</ANNEE_SCOLAIRE>"
        "<DATE_EXPORT>28/11/2026</DATE_EXPORT><HORODATAGE>28/11/2026 10:00:00</HORODATAGE>"
        "</PARAMETRES><DONNEES>"
        f"<NOMENCLATURES><MEFS>{mefs}</MEFS></NOMENCLATURES>"
        f"<ELEVES>{''.join(rows)}</ELEVES>"
        "<OPTIONS></OPTIONS>"
        f"<STRUCTURES>{''.join(structures)}</STRUCTURES>"
        "</DONNEES></BEE_ELEVES>"
    ).encode()


def sts_xml(
    individus: list[Individu],
    divisions: list[Division],
    *,
    uai: str = UAI,
    year: int = YEAR,
    groups: list[tuple[str, list[str], str, list[str]]] = (),
) -> bytes:
    """groups: (code, [division codes], subject code, [teacher ids])."""
    matieres = "".join(
        f'<MATIERE CODE="{code}"><CODE_GESTION>{g}</CODE_GESTION>'
        f"<LIBELLE_COURT>{escape(long[:20])}</LIBELLE_COURT>"
        f"<LIBELLE_LONG>{escape(long)}</LIBELLE_LONG>"
        f"<LIBELLE_EDITION>{escape(edition)}</LIBELLE_EDITION></MATIERE>"
        for code, (g, long, edition) in SUBJECTS.items()
    )
    mefs = "".join(
        f'<MEF CODE="{code}"><FORMATION>{escape(label)}</FORMATION></MEF>'
        for code, label in MEFS.items()
    )
    people = "".join(
        f'<INDIVIDU ID="{i.id}" TYPE="epp"><SEXE>2</SEXE><CIVILITE>3</CIVILITE>'
        f"<NOM_USAGE>{escape(i.nom)}</NOM_USAGE><NOM_PATRONYMIQUE>{escape(i.nom)}"
        f"</NOM_PATRONYMIQUE><PRENOM>{escape(i.prenom)}</PRENOM>"
        f"<DATE_NAISSANCE>{i.naissance.isoformat() if i.naissance else ''}</DATE_NAISSANCE>"
        f"<GRADE>CERTIFIE</GRADE><FONCTION>{i.fonction}</FONCTION>"
        '<DISCIPLINES><DISCIPLINE CODE="L0422"><LIBELLE_COURT>ANGLAIS</LIBELLE_COURT>'
        "</DISCIPLINE></DISCIPLINES></INDIVIDU>"
        for i in individus
    )

    def services(items) -> str:
        return "".join(
            f'<SERVICE CODE_MATIERE="{subject}" CODE_MOD_COURS="CG"><ENSEIGNANTS>'
            + "".join(f'<ENSEIGNANT ID="{t}" TYPE="epp"/>' for t in teachers)
            + "</ENSEIGNANTS></SERVICE>"
            for subject, teachers in items
        )

    divs = "".join(
        f'<DIVISION CODE="{escape(d.code)}"><LIBELLE_LONG>{escape(d.code)}</LIBELLE_LONG>'
        f'<MEFS_APPARTENANCE><MEF_APPARTENANCE CODE="{d.mef}"/></MEFS_APPARTENANCE>'
        f"<SERVICES>{services(d.services)}</SERVICES></DIVISION>"
        for d in divisions
    )
    grps = "".join(
        f'<GROUPE CODE="{escape(code)}"><LIBELLE_LONG>{escape(code)}</LIBELLE_LONG>'
        "<DIVISIONS_APPARTENANCE>"
        + "".join(f'<DIVISION_APPARTENANCE CODE="{escape(c)}"/>' for c in codes)
        + f"</DIVISIONS_APPARTENANCE><SERVICES>{services([(subject, teachers)])}</SERVICES>"
        "</GROUPE>"
        for code, codes, subject, teachers in groups
    )
    return (
        '<?xml version="1.0" encoding="ISO-8859-15"?>\n<STS_EDT><PARAMETRES>'
        f'<UAJ CODE="{uai}"><ACADEMIE><CODE>14</CODE></ACADEMIE><SIGLE>LYC</SIGLE></UAJ>'
        f'<ANNEE_SCOLAIRE ANNEE="{year}"><DATE_DEBUT>01/09/{year}</DATE_DEBUT>'
        f"<DATE_FIN>31/08/{year + 1}</DATE_FIN></ANNEE_SCOLAIRE>"
        "<HORODATAGE>28/11/2026 10:00:00</HORODATAGE></PARAMETRES><DONNEES>"
        f"<NOMENCLATURES><MATIERES>{matieres}</MATIERES><MEFS>{mefs}</MEFS></NOMENCLATURES>"
        f"<INDIVIDUS>{people}</INDIVIDUS>"
        f"<STRUCTURE><DIVISIONS>{divs}</DIVISIONS><GROUPES>{grps}</GROUPES></STRUCTURE>"
        "</DONNEES></STS_EDT>"
    ).encode("iso-8859-15")


LAST_NAMES = [
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit", "Durand", "Leroy", "Moreau",
    "Lefèvre", "N'Diaye", "Le Gall-Moreau", "de La Fontaine", "Nguyen", "Çelik", "Œuvray",
    "Bénard", "Fontaine", "Rousseau", "Mercier", "Dupont", "Lambert", "Bonnet", "François",
]  # fmt: skip
FIRST_NAMES = [
    "Éloïse", "Jean-Baptiste", "Chloé", "Maël", "Inès", "Noé", "Zoé", "Léa", "Hugo", "Awa",
    "Anaïs", "Raphaël", "Joséphine", "Gaëlle", "Loïc", "Amélie", "Théo", "Lou-Ann",
]  # fmt: skip


def ine_for(number: int) -> str:
    return f"{number:09d}AB"[:11]


def generated_school(
    *, students: int, teachers: int = 0, seed: int = 7, levels=("2nde", "1ere", "Tle")
):
    """(eleves, individus, divisions): about 35 students a division, every level."""
    rng = random.Random(seed)
    per_division = 35
    division_count = max(1, -(-students // per_division))
    codes = []
    for index in range(division_count):
        level = levels[index % len(levels)]
        prefix = {"2nde": "2NDE", "1ere": "1G", "Tle": "TG"}[level]
        codes.append((f"{prefix}{index // len(levels) + 1}", MEF_OF_LEVEL[level]))
    eleves = []
    for number in range(students):
        code, mef = codes[number % division_count]
        eleves.append(
            Eleve(
                eleve_id=str(100000 + number),
                ine=ine_for(number),
                nom=rng.choice(LAST_NAMES) + ("" if number % 3 else f"-{number}"),
                prenom=rng.choice(FIRST_NAMES),
                naissance=date(2009 + number % 3, 1 + number % 12, 1 + number % 28),
                mef=mef,
                division=code,
            )
        )
    individus = [
        Individu(
            id=str(5000 + number),
            nom=rng.choice(LAST_NAMES) + f"{number}",
            prenom=rng.choice(FIRST_NAMES),
        )
        for number in range(teachers)
    ]
    divisions = []
    subject_codes = list(SUBJECTS)
    for index, (code, mef) in enumerate(codes):
        items = []
        for offset, subject in enumerate(subject_codes[:7]):
            if individus:
                teacher = individus[(index * 7 + offset) % len(individus)].id
                items.append((subject, [teacher]))
        divisions.append(Division(code=code, mef=mef, services=items))
    return eleves, individus, divisions
