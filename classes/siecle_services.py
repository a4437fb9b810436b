"""SIECLE / STS-web import: what a parsed export would change (plan), then applying it.

The same design as the class-list import (`import_services`): parse → plan → apply, the plan
computed again under row locks at apply time, everything in one transaction.

- The file's UAI must be the school's: a foreign file changes nothing.
- Classes (divisions) are matched by name in the school year of the file (ANNEE_SCOLAIRE; the
  school's current year when the file has none) and created with the level of their MEF.
- SIECLE: students are matched on the ELEVE_ID, then the INE, then the name (and birth date)
  of a student not linked yet. A student SIECLE lists as left (DATE_SORTIE) or no longer lists
  is marked left (`left_on`), never deleted: their grades and appréciations stay. A student
  who changed division is moved: the same row, so everything attached to it follows.
- STS-web: teachers (FONCTION « ENS ») are matched on their STS-web id, then on their name
  among the accounts not linked yet; new accounts get no usable password (an invitation link
  sets one). Subjects are matched on their national code, then on their name; the teaching
  services become assignments (added, never removed).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .imports import normalize_name
from .models import (
    Level,
    School,
    SchoolClass,
    SchoolYear,
    Student,
    Subject,
    Teacher,
    TeachingAssignment,
)
from .siecle import (
    LEVELS,
    SIECLE,
    SiecleFile,
    SiecleStudent,
    StsFile,
    StsSubject,
    StsTeacher,
    level_code,
    parsed_from_data,
)

BATCH = 500


@dataclass(frozen=True)
class FieldChange:
    label: str
    old: str
    new: str


@dataclass
class PlannedClass:
    name: str
    level_code: str
    existing: SchoolClass | None = None

    @property
    def level_name(self) -> str:
        return LEVELS[self.level_code][0]


@dataclass
class PlannedStudent:
    data: SiecleStudent
    student: Student | None
    updates: dict[str, Any] = field(default_factory=dict)
    changes: list[FieldChange] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.data.last_name} {self.data.first_name}"


@dataclass
class PlannedTeacher:
    data: StsTeacher
    teacher: Teacher | None
    username: str = ""
    updates: dict[str, Any] = field(default_factory=dict)
    changes: list[FieldChange] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.data.last_name} {self.data.first_name}"


@dataclass
class PlannedSubject:
    data: StsSubject
    subject: Subject | None  # None: to be created
    matched_by: str = ""  # "code" or "nom"
    set_code: bool = False  # a school subject matched by name gets the national code


@dataclass
class DirectoryPlan:
    kind: str
    school: School
    school_year: SchoolYear | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    classes_to_create: list[PlannedClass] = field(default_factory=list)
    classes_existing: list[PlannedClass] = field(default_factory=list)
    # SIECLE
    students_to_create: list[PlannedStudent] = field(default_factory=list)
    students_to_update: list[PlannedStudent] = field(default_factory=list)
    students_unchanged: list[PlannedStudent] = field(default_factory=list)
    students_leaving: list[tuple[Student, date]] = field(default_factory=list)
    students_ignored: list[str] = field(default_factory=list)  # left already or no division
    # STS-web
    teachers_to_create: list[PlannedTeacher] = field(default_factory=list)
    teachers_to_update: list[PlannedTeacher] = field(default_factory=list)
    teachers_unchanged: list[PlannedTeacher] = field(default_factory=list)
    teachers_absent: list[Teacher] = field(default_factory=list)  # left alone
    subjects: list[PlannedSubject] = field(default_factory=list)
    assignments_to_create: list[tuple[str, str, str]] = field(default_factory=list)
    assignments_existing: int = 0
    # STS-web code -> what it maps to, for the apply step
    subject_for: dict[str, PlannedSubject] = field(default_factory=dict)
    teacher_for: dict[str, PlannedTeacher] = field(default_factory=dict)

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def is_siecle(self) -> bool:
        return self.kind == SIECLE

    @property
    def subjects_to_create(self) -> list[PlannedSubject]:
        return [s for s in self.subjects if s.subject is None]

    @property
    def subjects_matched(self) -> list[PlannedSubject]:
        return [s for s in self.subjects if s.subject is not None]

    @property
    def has_changes(self) -> bool:
        return any(self.counts()[key] for key in CHANGE_KEYS)

    def counts(self) -> dict[str, int]:
        return {
            "classes_created": len(self.classes_to_create),
            "classes_existing": len(self.classes_existing),
            "students_created": len(self.students_to_create),
            "students_updated": len(self.students_to_update),
            "students_unchanged": len(self.students_unchanged),
            "students_left": len(self.students_leaving),
            "students_ignored": len(self.students_ignored),
            "teachers_created": len(self.teachers_to_create),
            "teachers_updated": len(self.teachers_to_update),
            "teachers_unchanged": len(self.teachers_unchanged),
            "teachers_absent": len(self.teachers_absent),
            "subjects_created": len(self.subjects_to_create),
            "subjects_matched": len(self.subjects_matched),
            "subjects_code_set": sum(1 for s in self.subjects if s.set_code),
            "assignments_created": len(self.assignments_to_create),
            "assignments_existing": self.assignments_existing,
        }


CHANGE_KEYS = (
    "classes_created",
    "students_created",
    "students_updated",
    "students_left",
    "teachers_created",
    "teachers_updated",
    "subjects_created",
    "subjects_code_set",
    "assignments_created",
)


@dataclass(frozen=True)
class DirectoryResult:
    counts: dict[str, int]
    created_teacher_ids: list[int]

    @property
    def message(self) -> str:
        c = self.counts
        if self.created_teacher_ids or c["teachers_updated"] or c["assignments_created"]:
            return (
                f"Import STS-web terminé : {c['teachers_created']} enseignant(s) créé(s), "
                f"{c['teachers_updated']} mis à jour, {c['subjects_created']} discipline(s) et "
                f"{c['classes_created']} classe(s) créée(s), {c['assignments_created']} "
                "service(s) ajouté(s)."
            )
        if c["students_created"] or c["students_updated"] or c["students_left"]:
            return (
                f"Import SIECLE terminé : {c['students_created']} élève(s) créé(s), "
                f"{c['students_updated']} mis à jour, {c['students_left']} marqué(s) sorti(s), "
                f"{c['classes_created']} classe(s) créée(s)."
            )
        return "Import terminé : aucun changement."


# --- Helpers ---------------------------------------------------------------------------------


def school_year_for(*, school: School, year: int | None, today: date | None = None):
    """The school year the file is about (ANNEE_SCOLAIRE), else the school's current one."""
    years = list(SchoolYear.objects.filter(school=school).order_by("-start_date"))
    if year is not None:
        return next((y for y in years if y.start_date.year == year), None)
    today = today or timezone.localdate()
    current = next((y for y in years if y.start_date <= today <= y.end_date), None)
    return current or (years[0] if years else None)


def _class_key(name: str) -> str:
    return " ".join(name.casefold().split())


def _fmt_date(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else "—"


def _check_school(plan: DirectoryPlan, uai: str, year: int | None) -> None:
    school = plan.school
    if not school.uai:
        plan.errors.append(
            "Le code UAI de l'établissement n'est pas renseigné : saisissez-le dans la fiche de "
            "l'établissement avant d'importer. Rien n'a été importé."
        )
        return
    if uai.upper() != school.uai.strip().upper():
        plan.errors.append(
            f"Ce fichier est celui de l'établissement {uai}, pas de « {school.name} » "
            f"({school.uai.upper()}) : rien n'a été importé."
        )
        return
    plan.school_year = school_year_for(school=school, year=year)
    if plan.school_year is None:
        wanted = f"{year}-{year + 1}" if year else "en cours"
        plan.errors.append(
            f"L'année scolaire {wanted} n'existe pas pour cet établissement : créez-la "
            "(« Années scolaires ») puis importez à nouveau. Rien n'a été importé."
        )


def _plan_classes(
    plan: DirectoryPlan, wanted: dict[str, str], for_update: bool
) -> dict[str, SchoolClass | PlannedClass]:
    """Division name -> existing class, or the class to create (with its level code)."""
    query = SchoolClass.objects.filter(school=plan.school, school_year=plan.school_year)
    if for_update:
        query = query.select_for_update()
    existing: dict[str, SchoolClass] = {}
    for school_class in query:
        existing.setdefault(school_class.name, school_class)
        existing.setdefault(_class_key(school_class.name), school_class)
    result: dict[str, SchoolClass | PlannedClass] = {}
    for name in sorted(wanted):
        found = existing.get(name) or existing.get(_class_key(name))
        if found is not None:
            result[name] = found
            plan.classes_existing.append(PlannedClass(name, wanted[name], found))
        else:
            planned = PlannedClass(name, wanted[name])
            result[name] = planned
            plan.classes_to_create.append(planned)
    return result


def _dominant_levels(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """division -> the most frequent level code among (division, level code) pairs."""
    counters: dict[str, Counter] = {}
    for division, code in pairs:
        counters.setdefault(division, Counter())[code] += 1
    return {division: counter.most_common(1)[0][0] for division, counter in counters.items()}


# --- SIECLE ----------------------------------------------------------------------------------


def _plan_siecle(plan: DirectoryPlan, parsed: SiecleFile, for_update: bool) -> None:
    today = timezone.localdate()
    active = [s for s in parsed.students if s.division and not (s.left_on and s.left_on <= today)]
    for s in parsed.students:
        if s.left_on and s.left_on <= today:
            continue
        if not s.division:
            plan.students_ignored.append(f"{s.last_name} {s.first_name} (sans division)")
    levels = _dominant_levels(
        [
            (
                s.division,
                level_code(mef=s.mef, mef_label=parsed.mefs.get(s.mef, ""), division=s.division),
            )
            for s in active
        ]
    )
    classes = _plan_classes(plan, levels, for_update)

    query = Student.objects.filter(
        school_class__school=plan.school, school_class__school_year=plan.school_year
    ).select_related("school_class")
    if for_update:
        query = query.select_for_update(of=("self",))
    students = list(query.order_by("pk"))
    by_siecle = {s.siecle_id: s for s in students if s.siecle_id}
    by_ine = {s.ine.upper(): s for s in students if s.ine}
    by_name: dict[tuple[str, str], list[Student]] = {}
    for student in students:
        if not student.siecle_id:
            key = (normalize_name(student.last_name), normalize_name(student.first_name))
            by_name.setdefault(key, []).append(student)

    used: set[int] = set()
    matches: list[tuple[SiecleStudent, Student | None]] = []
    pending: list[SiecleStudent] = []
    for data in parsed.students:
        found = by_siecle.get(data.siecle_id)
        if found is None and data.ine:
            found = by_ine.get(data.ine.upper())
        if found is not None and found.pk not in used:
            used.add(found.pk)
            matches.append((data, found))
        else:
            pending.append(data)
    for data in pending:
        key = (normalize_name(data.last_name), normalize_name(data.first_name))
        candidates = [s for s in by_name.get(key, []) if s.pk not in used]
        if len(candidates) > 1 and data.birth_date:
            candidates = [s for s in candidates if s.birth_date in (None, data.birth_date)]
            same_birth = [s for s in candidates if s.birth_date == data.birth_date]
            candidates = same_birth or candidates
        is_active = data.division and not (data.left_on and data.left_on <= today)
        if len(candidates) > 1 and is_active:
            plan.errors.append(
                f"Plusieurs élèves de l'année s'appellent « {data.last_name} {data.first_name} » "
                "sans identifiant SIECLE : renseignez leur date de naissance ou leur INE dans "
                "l'administration pour les distinguer, puis importez à nouveau."
            )
            continue
        found = candidates[0] if len(candidates) == 1 else None
        if found is not None:
            used.add(found.pk)
        matches.append((data, found))
    if plan.errors:
        return

    for data, student in matches:
        left = data.left_on is not None and data.left_on <= today
        if left or not data.division:
            if student is not None and student.left_on is None:
                plan.students_leaving.append((student, data.left_on or today))
            elif student is None and left:
                plan.students_ignored.append(
                    f"{data.last_name} {data.first_name} (sorti le {_fmt_date(data.left_on)})"
                )
            continue
        planned = PlannedStudent(data=data, student=student)
        target = classes[data.division]
        wanted = {
            "last_name": data.last_name,
            "first_name": data.first_name,
            "ine": data.ine,
            "siecle_id": data.siecle_id,
            "birth_date": data.birth_date,
        }
        if student is None:
            planned.updates = wanted
            plan.students_to_create.append(planned)
            continue
        labels = {
            "last_name": "nom",
            "first_name": "prénom",
            "ine": "INE",
            "siecle_id": "identifiant SIECLE",
            "birth_date": "date de naissance",
        }
        for name, new in wanted.items():
            old = getattr(student, name)
            if new in ("", None) or new == old:
                continue
            planned.updates[name] = new
            if isinstance(new, date) or isinstance(old, date):
                planned.changes.append(FieldChange(labels[name], _fmt_date(old), _fmt_date(new)))
            else:
                planned.changes.append(FieldChange(labels[name], old or "—", new))
        if isinstance(target, PlannedClass) or target.pk != student.school_class_id:
            planned.updates["school_class"] = target
            planned.changes.append(FieldChange("classe", student.school_class.name, data.division))
        if student.left_on is not None:
            planned.updates["left_on"] = None
            planned.changes.append(FieldChange("sorti le", _fmt_date(student.left_on), "—"))
        if planned.changes:
            plan.students_to_update.append(planned)
        else:
            plan.students_unchanged.append(planned)
    for student in students:
        if student.pk not in used and student.left_on is None:
            plan.students_leaving.append((student, today))


def _ensure_levels(codes: set[str]) -> dict[str, Level]:
    levels = {level.code: level for level in Level.objects.filter(code__in=codes)}
    for code in codes - set(levels):
        name, order = LEVELS[code]
        levels[code], _ = Level.objects.get_or_create(
            code=code, defaults={"name": name, "order": order}
        )
    return levels


def _create_classes(plan: DirectoryPlan) -> None:
    levels = _ensure_levels({c.level_code for c in plan.classes_to_create})
    for planned in plan.classes_to_create:
        planned.existing = SchoolClass.objects.create(
            school=plan.school,
            school_year=plan.school_year,
            level=levels[planned.level_code],
            name=planned.name,
        )


def _class_of(value: SchoolClass | PlannedClass) -> SchoolClass:
    return value.existing if isinstance(value, PlannedClass) else value


def _apply_siecle(plan: DirectoryPlan) -> None:
    _create_classes(plan)
    new_students = []
    for planned in plan.students_to_create:
        school_class = _class_of(_find_class(plan, planned.data.division))
        new_students.append(Student(school_class=school_class, **planned.updates))
    Student.objects.bulk_create(new_students, batch_size=BATCH)
    changed: list[Student] = []
    fields: set[str] = set()
    for planned in plan.students_to_update:
        student = planned.student
        for name, value in planned.updates.items():
            if name == "school_class":
                value = _class_of(value)
            setattr(student, name, value)
            fields.add(name)
        changed.append(student)
    if changed:
        Student.objects.bulk_update(changed, sorted(fields), batch_size=BATCH)
    leaving = []
    for student, left_on in plan.students_leaving:
        student.left_on = left_on
        leaving.append(student)
    if leaving:
        Student.objects.bulk_update(leaving, ["left_on"], batch_size=BATCH)


def _find_class(plan: DirectoryPlan, name: str) -> SchoolClass | PlannedClass:
    for planned in (*plan.classes_to_create, *plan.classes_existing):
        if planned.name == name:
            return planned.existing or planned
    raise KeyError(name)


# --- STS-web ---------------------------------------------------------------------------------


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "-", folded.replace("œ", "oe").replace("æ", "ae")).strip("-")


def _username_base(data: StsTeacher) -> str:
    first = _ascii_slug(data.first_name).split("-")[0] if data.first_name else ""
    last = _ascii_slug(data.last_name)
    base = f"{first}.{last}" if first else last
    return (base or f"enseignant-{data.sts_id}")[:140]


def _plan_sts(plan: DirectoryPlan, parsed: StsFile, for_update: bool) -> None:
    school = plan.school
    # Teachers
    query = Teacher.objects.filter(school=school, is_superuser=False)
    if for_update:
        query = query.select_for_update()
    teachers = list(query.order_by("pk"))
    by_sts = {t.sts_id: t for t in teachers if t.sts_id}
    by_name: dict[tuple[str, str], list[Teacher]] = {}
    for teacher in teachers:
        if not teacher.sts_id:
            key = (normalize_name(teacher.last_name), normalize_name(teacher.first_name))
            by_name.setdefault(key, []).append(teacher)
    used: set[int] = set()
    planned_by_id: dict[str, PlannedTeacher] = {}
    taken = set()
    for data in parsed.teachers:
        teacher = by_sts.get(data.sts_id)
        if teacher is None:
            key = (normalize_name(data.last_name), normalize_name(data.first_name))
            candidates = [t for t in by_name.get(key, []) if t.pk not in used]
            if len(candidates) > 1:
                plan.errors.append(
                    f"Plusieurs comptes de l'établissement s'appellent « {data.last_name} "
                    f"{data.first_name} » : renseignez leur identifiant STS-web dans "
                    "l'administration pour les distinguer, puis importez à nouveau."
                )
                continue
            teacher = candidates[0] if candidates else None
        planned = PlannedTeacher(data=data, teacher=teacher)
        planned_by_id[data.sts_id] = planned
        if teacher is None:
            base = _username_base(data)
            existing = set(
                Teacher.objects.filter(username__startswith=base).values_list("username", flat=True)
            )
            username, number = base, 1
            while username in existing or username in taken:
                number += 1
                username = f"{base}{number}"
            taken.add(username)
            planned.username = username
            plan.teachers_to_create.append(planned)
            continue
        used.add(teacher.pk)
        planned.username = teacher.username
        for name, label, new in (
            ("last_name", "nom", data.last_name),
            ("first_name", "prénom", data.first_name),
            ("sts_id", "identifiant STS-web", data.sts_id),
        ):
            old = getattr(teacher, name)
            if new and new != old:
                planned.updates[name] = new
                planned.changes.append(FieldChange(label, old or "—", new))
        if planned.changes:
            plan.teachers_to_update.append(planned)
        else:
            plan.teachers_unchanged.append(planned)
    plan.teachers_absent = [
        t
        for t in teachers
        if t.pk not in used and t.role != Teacher.Role.SCHOOL_ADMIN and not t.is_staff
    ]
    if plan.errors:
        return

    # Subjects
    available = list(Subject.objects.filter(Q(school=None) | Q(school=school)).order_by("pk"))
    by_code = {}
    by_subject_name: dict[str, Subject] = {}
    for subject in available:
        if subject.national_code:
            by_code.setdefault(subject.national_code, subject)
        by_subject_name.setdefault(normalize_name(subject.name), subject)
    planned_names: dict[str, PlannedSubject] = {}
    subject_for: dict[str, PlannedSubject] = {}
    for data in parsed.subjects.values():
        subject = by_code.get(data.code)
        if subject is not None:
            planned = PlannedSubject(data, subject, "code")
        else:
            names = [normalize_name(n) for n in (data.name, data.long_name) if n]
            subject = next((by_subject_name[n] for n in names if n in by_subject_name), None)
            if subject is not None:
                planned = PlannedSubject(
                    data,
                    subject,
                    "nom",
                    set_code=subject.school_id is not None and not subject.national_code,
                )
                if planned.set_code:
                    by_code[data.code] = subject
            elif normalize_name(data.name) in planned_names:
                subject_for[data.code] = planned_names[normalize_name(data.name)]
                continue
            else:
                planned = PlannedSubject(data, None)
                planned_names[normalize_name(data.name)] = planned
        plan.subjects.append(planned)
        subject_for[data.code] = planned

    # Classes, from the divisions that have a service
    wanted = {}
    for _, division_code, _ in parsed.services:
        division = parsed.divisions[division_code]
        wanted[division_code] = level_code(
            mef=division.mef, mef_label=parsed.mefs.get(division.mef, ""), division=division.code
        )
    classes = _plan_classes(plan, wanted, for_update)

    # Assignments
    existing = set(
        TeachingAssignment.objects.filter(
            school_class__school=school, school_class__school_year=plan.school_year
        ).values_list("teacher_id", "school_class_id", "subject_id")
    )
    for teacher_id, division_code, subject_code in parsed.services:
        planned_teacher = planned_by_id[teacher_id]
        planned_subject = subject_for[subject_code]
        school_class = classes[division_code]
        if (
            planned_teacher.teacher is not None
            and planned_subject.subject is not None
            and isinstance(school_class, SchoolClass)
            and (planned_teacher.teacher.pk, school_class.pk, planned_subject.subject.pk)
            in existing
        ):
            plan.assignments_existing += 1
            continue
        plan.assignments_to_create.append((teacher_id, division_code, subject_code))
    plan.subject_for = subject_for
    plan.teacher_for = planned_by_id


def _apply_sts(plan: DirectoryPlan) -> list[int]:
    school = plan.school
    _create_classes(plan)
    for planned in plan.subjects:
        if planned.subject is None:
            planned.subject = Subject.objects.create(
                school=school,
                name=planned.data.name,
                short_name=planned.data.short_code,
                national_code=planned.data.code,
            )
        elif planned.set_code:
            planned.subject.national_code = planned.data.code
            planned.subject.save(update_fields=["national_code"])
    created = []
    for planned in plan.teachers_to_create:
        teacher = Teacher(
            username=planned.username,
            last_name=planned.data.last_name,
            first_name=planned.data.first_name,
            school=school,
            role=Teacher.Role.TEACHER,
            sts_id=planned.data.sts_id,
        )
        teacher.set_unusable_password()
        teacher.save()
        planned.teacher = teacher
        created.append(teacher.pk)
    for planned in plan.teachers_to_update:
        for name, value in planned.updates.items():
            setattr(planned.teacher, name, value)
        planned.teacher.save(update_fields=list(planned.updates))
    new = []
    for teacher_id, division_code, subject_code in plan.assignments_to_create:
        new.append(
            TeachingAssignment(
                teacher=plan.teacher_for[teacher_id].teacher,
                school_class=_class_of(_find_class(plan, division_code)),
                subject=plan.subject_for[subject_code].subject,
            )
        )
    TeachingAssignment.objects.bulk_create(new, batch_size=BATCH, ignore_conflicts=True)
    return created


# --- Entry points ----------------------------------------------------------------------------


def _build_plan(*, school: School, parsed: SiecleFile | StsFile, for_update: bool) -> DirectoryPlan:
    plan = DirectoryPlan(kind=parsed.kind, school=school)
    _check_school(plan, parsed.uai, parsed.year)
    if plan.errors:
        return plan
    if isinstance(parsed, SiecleFile):
        if not parsed.students:
            plan.errors.append("Le fichier SIECLE ne contient aucun élève : rien n'a été importé.")
            return plan
        _plan_siecle(plan, parsed, for_update)
    else:
        if not parsed.teachers:
            plan.errors.append(
                "Le fichier STS-web ne contient aucun enseignant : rien n'a été importé."
            )
            return plan
        _plan_sts(plan, parsed, for_update)
    return plan


def directory_preview(*, school: School, parsed: SiecleFile | StsFile) -> DirectoryPlan:
    """What importing `parsed` would do: nothing is written."""
    return _build_plan(school=school, parsed=parsed, for_update=False)


@transaction.atomic
def directory_apply(*, school: School, plan_data: dict[str, Any]) -> DirectoryResult:
    """Apply a previewed import (`to_data()` of the parsed file): all of it, or nothing.

    The plan is computed again on the rows as they are now (locked). Raises ValidationError
    (French messages) and writes nothing when something is wrong.
    """
    school = School.objects.select_for_update().get(pk=school.pk)
    parsed = parsed_from_data(plan_data)
    plan = _build_plan(school=school, parsed=parsed, for_update=True)
    if plan.errors:
        raise ValidationError(plan.errors, code="invalid_import")
    counts = plan.counts()
    created: list[int] = []
    if plan.is_siecle:
        _apply_siecle(plan)
    else:
        created = _apply_sts(plan)
    return DirectoryResult(counts=counts, created_teacher_ids=created)
