"""The quality dashboard (« Qualité des brouillons »): what teachers did with the model's drafts,
per model version, subject, level and term, and over time, from the Feedback rows.

Scoped to the user: a school admin sees their school's rows; a department head their school's
rows in the subjects they head. Anyone else gets the 404 of a missing page. Only validations of
a draft count (a text written without a draft says nothing of the drafts).

A feedback row keeps its figures when the student's data is erased, but loses its links to the
appreciation and the draft: its subject, level and term then come from its `inputs` (subject
and level by name, the trimester's number), which every validation records.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import Http404
from django.utils import timezone

from classes.models import Level, School, Subject, Teacher
from classes.selectors import subjects_for_school
from generation.checks import SEVERITY
from generation.models import Feedback, ModelVersion

# The checks' codes (generation/checks.py, generation/grammar.py), as a person reads them.
FLAG_LABELS = {
    "name": "Nom d'élève",
    "grade": "Note ou nombre",
    "language": "Pas en français",
    "wording": "Formulation à éviter",
    "grammar": "Grammaire",
    "spelling": "Orthographe",
    "personal": "Style non impersonnel",
    "length": "Nombre de mots",
    "too_long_chars": "Trop de caractères",
    "typography": "Typographie",
}
FLAG_CODES = tuple(sorted(FLAG_LABELS, key=lambda code: -SEVERITY.get(code, 0)))
TRIMESTER_LABELS = {1: "1er trimestre", 2: "2e trimestre", 3: "3e trimestre"}
MONTH_LABELS = (
    "janv.",
    "févr.",
    "mars",
    "avr.",
    "mai",
    "juin",
    "juil.",
    "août",
    "sept.",
    "oct.",
    "nov.",
    "déc.",
)
NO_VERSION = "none"  # the filter's value for drafts written before versions were recorded


# --- Who sees what ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardScope:
    school: School
    # None: every subject (a school admin); else the subjects a department head heads.
    subject_ids: frozenset[int] | None

    def subjects(self):
        subjects = subjects_for_school(school=self.school)
        if self.subject_ids is not None:
            subjects = subjects.filter(pk__in=self.subject_ids)
        return subjects.order_by("name")


def dashboard_scope(*, user: Teacher) -> DashboardScope:
    """The rows the user may see; Http404 for anyone but a school admin or department head."""
    if not getattr(user, "is_authenticated", False) or user.school_id is None:
        raise Http404("No school")
    if user.is_school_admin:
        return DashboardScope(school=user.school, subject_ids=None)
    if user.is_department_head:
        headed = user.headed_subjects.filter(Q(school=None) | Q(school_id=user.school_id))
        return DashboardScope(
            school=user.school, subject_ids=frozenset(headed.values_list("pk", flat=True))
        )
    raise Http404("Not a school admin or department head")


# --- Figures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackFacts:
    """One validation of a draft, reduced to what the dashboard counts."""

    version_id: int | None
    subject_id: int | None
    level_id: int | None
    trimester: int | None
    validated_at: datetime
    edited: bool
    edit_distance: int
    seconds_spent: int | None
    flag_codes: frozenset[str]
    rating: str
    reason: str


@dataclass(frozen=True)
class QualityStats:
    validations: int
    unchanged: int
    mean_edit_distance: float | None
    median_seconds: float | None
    timed: int  # validations whose time was measured
    flagged: dict[str, int]  # code -> validations whose draft had that flag
    thumbs_up: int
    thumbs_down: int
    reasons: dict[str, int]  # reason code -> thumbs down with it

    @property
    def unchanged_share(self) -> float | None:
        return self.unchanged / self.validations if self.validations else None

    def flag_share(self, code: str) -> float | None:
        return self.flagged.get(code, 0) / self.validations if self.validations else None

    @property
    def flag_shares(self) -> list[tuple[str, str, float | None, int]]:
        """(code, label, share, count) for every check, graver first."""
        return [
            (code, FLAG_LABELS[code], self.flag_share(code), self.flagged.get(code, 0))
            for code in FLAG_CODES
        ]

    @property
    def reason_counts(self) -> list[tuple[str, int]]:
        labels = dict(Feedback.Reason.choices)
        return [
            (labels.get(code, code), count)
            for code, count in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ]


def quality_stats(facts: list[FeedbackFacts]) -> QualityStats:
    """The figures of a set of validations (pure: the tests check them by hand)."""
    count = len(facts)
    times = [f.seconds_spent for f in facts if f.seconds_spent is not None]
    flagged: Counter[str] = Counter()
    for fact in facts:
        if fact.flag_codes:
            flagged.update(fact.flag_codes)
    reasons = Counter(f.reason for f in facts if f.rating == Feedback.Rating.DOWN and f.reason)
    return QualityStats(
        validations=count,
        unchanged=sum(1 for f in facts if not f.edited),
        mean_edit_distance=(sum(f.edit_distance for f in facts) / count) if count else None,
        median_seconds=statistics.median(times) if times else None,
        timed=len(times),
        flagged=dict(flagged),
        thumbs_up=sum(1 for f in facts if f.rating == Feedback.Rating.UP),
        thumbs_down=sum(1 for f in facts if f.rating == Feedback.Rating.DOWN),
        reasons=dict(reasons),
    )


# --- Reading the rows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardFilters:
    version: str = ""  # a ModelVersion pk as text, NO_VERSION, or "" for all
    subject_id: int | None = None
    level_id: int | None = None
    trimester: int | None = None


def _flag_codes(flags_json: str | None) -> frozenset[str]:
    if not flags_json or flags_json.replace(" ", "") == "[]":
        return frozenset()
    try:
        flags = json.loads(flags_json)
    except ValueError:
        return frozenset()
    codes = set()
    for flag in flags if isinstance(flags, list) else []:
        code = flag.get("code") if isinstance(flag, dict) else None
        if isinstance(code, str) and code:
            codes.add(code)
    return frozenset(codes)


def _first(*values):
    return next((value for value in values if value is not None), None)


def scoped_facts(*, scope: DashboardScope, filters: DashboardFilters) -> list[FeedbackFacts]:
    """The validations of drafts the scope sees, filtered."""
    rows = Feedback.objects.filter(school=scope.school).exclude(draft_text="")
    if filters.version == NO_VERSION:
        rows = rows.filter(model_version__isnull=True, draft__model_version__isnull=True)
    elif filters.version:
        version_id = int(filters.version)
        rows = rows.filter(
            Q(model_version_id=version_id)
            | Q(model_version__isnull=True, draft__model_version_id=version_id)
        )
    subject_by_name = {}
    for subject in subjects_for_school(school=scope.school).order_by("-school_id"):
        # The school's own subject wins over a shared one of the same name (set last).
        subject_by_name.setdefault(subject.name, subject.pk)
    level_by_name = dict(Level.objects.values_list("name", "pk"))
    facts = []
    values = rows.values_list(
        "model_version_id",
        "draft__model_version_id",
        "validated_at",
        "edited",
        "edit_distance",
        "seconds_spent",
        # As text, decoded only when not empty (most drafts have no flag).
        Cast("flags", TextField()),
        "rating",
        "reason",
        # Only the three keys, as text: decoding every row's whole JSON costs more.
        KT("inputs__subject"),
        KT("inputs__level"),
        KT("inputs__trimester"),
        "appreciation__subject_id",
        "draft__subject_id",
        "appreciation__student__school_class__level_id",
        "draft__student__school_class__level_id",
        "appreciation__term__number",
        "draft__term__number",
    ).order_by("validated_at", "pk")
    for (
        version_id,
        draft_version_id,
        validated_at,
        edited,
        edit_distance,
        seconds_spent,
        flags,
        rating,
        reason,
        input_subject,
        input_level,
        input_trimester,
        appreciation_subject,
        draft_subject,
        appreciation_level,
        draft_level,
        appreciation_trimester,
        draft_trimester,
    ) in values:
        # Text on PostgreSQL, a number on SQLite (`->>` keeps JSON numbers as numbers there).
        trimester = int(input_trimester) if str(input_trimester) in ("1", "2", "3") else None
        fact = FeedbackFacts(
            # The feedback's own version; else its draft's (both record the version that wrote).
            version_id=_first(version_id, draft_version_id),
            subject_id=_first(
                appreciation_subject, draft_subject, subject_by_name.get(input_subject)
            ),
            level_id=_first(appreciation_level, draft_level, level_by_name.get(input_level)),
            trimester=_first(appreciation_trimester, draft_trimester, trimester),
            validated_at=validated_at,
            edited=edited,
            edit_distance=edit_distance,
            seconds_spent=seconds_spent,
            flag_codes=_flag_codes(flags),
            rating=rating,
            reason=reason,
        )
        if scope.subject_ids is not None and fact.subject_id not in scope.subject_ids:
            continue
        if filters.subject_id is not None and fact.subject_id != filters.subject_id:
            continue
        if filters.level_id is not None and fact.level_id != filters.level_id:
            continue
        if filters.trimester is not None and fact.trimester != filters.trimester:
            continue
        facts.append(fact)
    return facts


# --- The dashboard ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionStats:
    version: ModelVersion | None
    stats: QualityStats

    @property
    def name(self) -> str:
        return self.version.name if self.version else "Version non enregistrée"


@dataclass(frozen=True)
class BreakdownRow:
    version_name: str
    subject_name: str
    level_name: str
    trimester_label: str
    stats: QualityStats


@dataclass(frozen=True)
class MonthPoint:
    key: str  # "2026-09"
    label: str  # "sept. 2026"
    # Per version name, in the order of Dashboard.by_version: the month's stats (None: none).
    by_version: list[QualityStats | None] = field(default_factory=list)
    total: QualityStats | None = None


@dataclass(frozen=True)
class Dashboard:
    total: QualityStats
    by_version: list[VersionStats]
    breakdown: list[BreakdownRow]
    months: list[MonthPoint]
    flag_codes: list[tuple[str, str]]  # the checks that flagged something here, graver first


def _month_key(moment: datetime, zone) -> str:
    local = moment.astimezone(zone)
    return f"{local.year:04d}-{local.month:02d}"


def _month_label(key: str) -> str:
    year, month = key.split("-")
    return f"{MONTH_LABELS[int(month) - 1]} {year}"


def quality_dashboard(*, user: Teacher, filters: DashboardFilters | None = None) -> Dashboard:
    """The dashboard's figures for what the user may see (Http404 for anyone else)."""
    scope = dashboard_scope(user=user)
    facts = scoped_facts(scope=scope, filters=filters or DashboardFilters())
    versions = ModelVersion.objects.in_bulk({f.version_id for f in facts if f.version_id})
    subjects = dict(
        Subject.objects.filter(pk__in={f.subject_id for f in facts}).values_list("pk", "name")
    )
    levels = {level.pk: level for level in Level.objects.all()}

    by_version_facts: dict[int | None, list[FeedbackFacts]] = defaultdict(list)
    for fact in facts:
        by_version_facts[fact.version_id].append(fact)
    # The newest version first; drafts without a recorded version last.
    version_order = sorted(by_version_facts, key=lambda pk: (pk is None, -(pk or 0)))
    by_version = [
        VersionStats(versions.get(pk) if pk else None, quality_stats(by_version_facts[pk]))
        for pk in version_order
    ]

    groups: dict[tuple, list[FeedbackFacts]] = defaultdict(list)
    for fact in facts:
        groups[(fact.version_id, fact.subject_id, fact.level_id, fact.trimester)].append(fact)

    def group_sort(key):
        version_id, subject_id, level_id, trimester = key
        level = levels.get(level_id)
        return (
            version_order.index(version_id),
            subjects.get(subject_id, "~"),
            level.order if level else 999,
            trimester or 9,
        )

    breakdown = []
    for key in sorted(groups, key=group_sort):
        version_id, subject_id, level_id, trimester = key
        version = versions.get(version_id) if version_id else None
        breakdown.append(
            BreakdownRow(
                version_name=version.name if version else "Version non enregistrée",
                subject_name=subjects.get(subject_id, "Discipline inconnue"),
                level_name=levels[level_id].name if level_id in levels else "Niveau inconnu",
                trimester_label=TRIMESTER_LABELS.get(trimester, "Trimestre inconnu"),
                stats=quality_stats(groups[key]),
            )
        )

    by_month: dict[str, list[FeedbackFacts]] = defaultdict(list)
    zone = timezone.get_current_timezone()
    for fact in facts:
        by_month[_month_key(fact.validated_at, zone)].append(fact)
    months = []
    for key in sorted(by_month):
        month_facts = by_month[key]
        per_version = []
        for pk in version_order:
            chosen = [f for f in month_facts if f.version_id == pk]
            per_version.append(quality_stats(chosen) if chosen else None)
        months.append(
            MonthPoint(
                key=key,
                label=_month_label(key),
                by_version=per_version,
                total=quality_stats(month_facts),
            )
        )
    total = quality_stats(facts)
    return Dashboard(
        total=total,
        by_version=by_version,
        breakdown=breakdown,
        months=months,
        flag_codes=[(code, FLAG_LABELS[code]) for code in FLAG_CODES if total.flagged.get(code)],
    )


def dashboard_filter_choices(*, user: Teacher) -> dict:
    """What the filter form offers: the versions that drafted for the scope, its subjects, the
    levels, the trimesters."""
    scope = dashboard_scope(user=user)
    feedback = Feedback.objects.filter(school=scope.school)
    version_ids = {
        *feedback.values_list("model_version_id", flat=True).distinct(),
        *feedback.values_list("draft__model_version_id", flat=True).distinct(),
    } - {None}
    return {
        "versions": list(ModelVersion.objects.filter(pk__in=version_ids).order_by("-pk")),
        "subjects": list(scope.subjects()),
        "levels": list(Level.objects.order_by("order")),
    }
