"""The feedback dataset: one row per validation (per discarded draft in the preference file),
without names or identifiers, leaving out (and counting, by reason) the rows that must not
train the next adapter."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Max
from django.utils.crypto import salted_hmac

from classes.models import (
    School,
    Student,
    Teacher,
)

# The checks of the drafts, reused on the teachers' final texts.
from generation.checks import (
    INSTITUTION_WORDS,
    MAX_WORDS,
    PLACEHOLDER,
    KnownNames,
    check_grade,
    word_count,
)
from generation.models import Appreciation, Draft, Feedback
from generation.prompts import PromptInputs, build_messages

from .builders import (
    DATASET_FORMATS,
    PREFERENCE_JSONL,
    DatasetRow,
)

# --- The feedback dataset ----------------------------------------------------------------------


class LeftOut(models.TextChoices):
    """Why a validation (or, in the preference file, a pair) is not a dataset row (French
    labels for the admin's page)."""

    SUPERSEDED = "superseded", "validée à nouveau depuis (seule la dernière version compte)"
    RETURNED = "returned", "renvoyée par le responsable de discipline"
    NAME = "name", "le texte cite un nom d'élève"
    STAFF_OR_PLACE = (
        "staff_or_place",
        "le texte cite un membre du personnel, l'établissement ou sa commune",
    )
    GRADE = "grade", "le texte final cite une note"
    TOO_LONG = "too_long", "le texte final dépasse 40 mots (la consigne du modèle)"
    NO_PROMPT = "no_prompt", "écrite sans brouillon du modèle (aucune demande envoyée)"
    NOT_EDITED = "not_edited", "brouillon validé sans modification (pas de préférence)"
    STALE_PROMPT = (
        "stale_prompt",
        "brouillon écarté rédigé avec d'autres saisies que celles validées",
    )
    TEST_MODEL = "test_model", "brouillon du modèle de test (texte aléatoire)"
    DUPLICATE = "duplicate", "brouillon écarté identique à un autre déjà retenu"
    INCOMPLETE = "incomplete", "saisies incomplètes (moyenne ou évaluations manquantes)"


# The command's report is in English, like the logs.
LEFT_OUT_ENGLISH = {
    LeftOut.SUPERSEDED: "validated again later (only the latest validation counts)",
    LeftOut.RETURNED: "returned by the department head",
    LeftOut.NAME: "the text quotes a student's name",
    LeftOut.STAFF_OR_PLACE: "the text quotes a staff member, the school or its town",
    LeftOut.GRADE: "the final text quotes a grade",
    LeftOut.TOO_LONG: "the final text has over 40 words (the model's rule)",
    LeftOut.NO_PROMPT: "written without a model draft (no prompt was sent)",
    LeftOut.NOT_EDITED: "draft validated as is (no preference)",
    LeftOut.STALE_PROMPT: "discarded draft written from other inputs than the validated ones",
    LeftOut.TEST_MODEL: "draft from the test model (random text)",
    LeftOut.DUPLICATE: "discarded draft identical to one already paired",
    LeftOut.INCOMPLETE: "incomplete inputs (average or ratings missing)",
}


@dataclass
class DatasetSelection:
    fmt: str
    rows: list[DatasetRow]
    left_out: Counter = field(default_factory=Counter)

    @property
    def left_out_count(self) -> int:
        return sum(self.left_out.values())

    def left_out_labels(self, *, english: bool = False) -> list[tuple[str, int]]:
        """(label, count), the most common reason first."""
        return [
            (LEFT_OUT_ENGLISH[reason] if english else LeftOut(reason).label, count)
            for reason, count in self.left_out.most_common()
        ]


# Ids are folded into a signed 64-bit integer, the type of the eltorio dataset's Id.
_INT63 = (1 << 63) - 1


def dataset_row_id(*, feedback_pk: int, draft_pk: int | None = None) -> int:
    """A stable id for a row (re-exports can be deduplicated) that reveals no database id: a
    keyed hash (SECRET_KEY) of the feedback's id, and of the rejected draft's for a pair of
    a draft the teacher discarded; folded into int64 like the dataset's Id."""
    value = str(feedback_pk) if draft_pk is None else f"{feedback_pk}:{draft_pk}"
    digest = salted_hmac("generation.exports.dataset-row", value).hexdigest()[:16]
    return int(digest, 16) & _INT63


def validated_prompt(inputs: dict) -> list[dict[str, str]] | None:
    """The prompt of the inputs a teacher validated against, as a draft for them is prompted;
    None where they cannot make one (an average or a rating missing)."""
    averages = list(inputs.get("averages") or [])
    averages += [None] * (3 - len(averages))
    try:
        return build_messages(
            PromptInputs(
                subject_name=str(inputs.get("subject") or ""),
                trimester=inputs.get("trimester"),
                averages=tuple(averages[:3]),
                behaviour=inputs.get("behaviour"),
                participation=inputs.get("participation"),
                work=inputs.get("work"),
            )
        )
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class _SchoolNames:
    """Every person and place a school's platform knows: a text quoting one stays out."""

    students: KnownNames
    staff_and_places: KnownNames

    def reason(self, text: str) -> str | None:
        if PLACEHOLDER in text or self.students.found(text):
            # PLACEHOLDER: a name an erasure replaced, the sentence still speaks of one child.
            return LeftOut.NAME
        if self.staff_and_places.found(text):
            return LeftOut.STAFF_OR_PLACE
        return None


def _school_names(school_ids: set[int]) -> dict[int, _SchoolNames]:
    """Three queries whatever the number of schools, students and staff."""
    students: dict[int, list[str]] = {pk: [] for pk in school_ids}
    for school_id, *values in Student.objects.filter(
        school_class__school_id__in=school_ids
    ).values_list("school_class__school_id", "last_name", "first_name", "external_id"):
        students[school_id].extend(values)
    others: dict[int, list[str]] = {pk: [] for pk in school_ids}
    for school_id, *values in Teacher.objects.filter(school_id__in=school_ids).values_list(
        "school_id", "first_name", "last_name", "username", "email"
    ):
        others[school_id].extend(values)
    for school_id, *values in School.objects.filter(pk__in=school_ids).values_list(
        "pk", "name", "city", "uai"
    ):
        others[school_id].extend(values)
    return {
        pk: _SchoolNames(
            students=KnownNames(students[pk]),
            # "Lycée", "collège"... alone name no one.
            staff_and_places=KnownNames(others[pk], ignore=INSTITUTION_WORDS),
        )
        for pk in school_ids
    }


def _final_text_reason(
    item: Feedback, *, latest: dict[int, int], names: _SchoolNames
) -> str | None:
    """Why the teacher's final text of this validation makes no row, in any format."""
    appreciation = item.appreciation
    if appreciation is not None:
        if latest.get(appreciation.pk, item.pk) != item.pk:
            return LeftOut.SUPERSEDED
        if appreciation.status == Appreciation.Status.RETURNED:
            return LeftOut.RETURNED
    reason = names.reason(item.final_text)
    if reason is not None:
        return reason
    if check_grade(item.final_text) is not None:
        return LeftOut.GRADE
    # The model is told to write fewer than 40 words: a longer text would teach it otherwise.
    if word_count(item.final_text) > MAX_WORDS:
        return LeftOut.TOO_LONG
    return None


def _rejected_candidates(
    item: Feedback, *, discarded: list[Draft]
) -> list[tuple[int | None, str, list, bool, bool]]:
    """(draft pk or None, text, prompt, is_test_model, own) of every draft the teacher did not
    keep for this validation: the draft they edited, then the drafts they threw away."""
    candidates = []
    if item.prompt_messages or item.draft_id is not None:
        candidates.append(
            (
                None,
                item.draft_text,
                list(item.prompt_messages or []),
                bool(item.draft is not None and item.draft.is_test_model),
                True,
            )
        )
    for draft in discarded:
        candidates.append(
            (draft.pk, draft.text, list(draft.prompt_messages or []), draft.is_test_model, False)
        )
    return candidates


def dataset_selection(
    *,
    fmt: str,
    school_id: int | None = None,
    since: datetime | None = None,
    chat_date: str | None = None,
) -> DatasetSelection:
    """The dataset rows in one format, oldest first, and the count of rows left out by reason.

    Every row's prompt is rebuilt from the inputs the teacher validated against (a draft's
    prompt may come from inputs changed since), rendered with `chat_date` (default:
    APPRECIATION_CHAT_DATE, the date inference uses). A preference row pairs the teacher's
    text with a draft of the model they did not keep: the one they edited, an earlier one
    they regenerated, an offered one they set aside; only a draft prompted with those same
    inputs answers the same prompt. school_id=None: every school (the command). A fixed
    number of queries.
    """
    if fmt not in DATASET_FORMATS:
        raise ValueError(f"Unknown dataset format: {fmt}")
    chat_date = chat_date or settings.APPRECIATION_CHAT_DATE
    feedback = Feedback.objects.select_related("appreciation__student", "draft").order_by(
        "validated_at", "pk"
    )
    if school_id is not None:
        feedback = feedback.filter(school_id=school_id)
    if since is not None:
        feedback = feedback.filter(validated_at__gte=since)
    items = list(feedback)
    appreciation_ids = {item.appreciation_id for item in items if item.appreciation_id}
    # The latest validation of each appréciation, whatever `since` (an older one is superseded).
    latest = dict(
        Feedback.objects.filter(appreciation_id__in=appreciation_ids)
        .values("appreciation_id")
        .annotate(last=Max("pk"))
        .values_list("appreciation_id", "last")
    )
    names = _school_names({item.school_id for item in items})
    discarded = _discarded_drafts(items) if fmt == PREFERENCE_JSONL else {}
    selection = DatasetSelection(fmt=fmt, rows=[])
    for item in items:
        reason = _final_text_reason(item, latest=latest, names=names[item.school_id])
        prompt = validated_prompt(item.inputs or {}) if reason is None else None
        if reason is None and prompt is None:
            reason = LeftOut.INCOMPLETE
        if reason is not None:
            selection.left_out[reason] += 1
            continue
        row = DatasetRow(
            row_id=dataset_row_id(feedback_pk=item.pk),
            prompt_messages=prompt,
            final_text=item.final_text,
            inputs=dict(item.inputs or {}),
            chat_date=chat_date,
            feedback_id=item.pk,
        )
        if fmt != PREFERENCE_JSONL:
            selection.rows.append(row)
            continue
        candidates = _rejected_candidates(item, discarded=discarded.get(item.appreciation_id, []))
        if not candidates:
            selection.left_out[LeftOut.NO_PROMPT] += 1
        paired: set[str] = set()
        for draft_pk, text, draft_prompt, is_test_model, own in candidates:
            reason = (
                LeftOut.DUPLICATE
                if text in paired
                else _pair_reason(
                    item,
                    text=text,
                    prompt=draft_prompt,
                    validated=prompt,
                    own=own,
                    is_test_model=is_test_model,
                    names=names[item.school_id],
                )
            )
            if reason is not None:
                selection.left_out[reason] += 1
                continue
            paired.add(text)
            selection.rows.append(
                replace(
                    row,
                    row_id=dataset_row_id(feedback_pk=item.pk, draft_pk=draft_pk),
                    rejected_text=text,
                )
            )
    return selection


def _pair_reason(
    item: Feedback,
    *,
    text: str,
    prompt: list,
    validated: list,
    own: bool,
    is_test_model: bool,
    names: _SchoolNames,
) -> str | None:
    if (own and not item.edited) or not text.strip() or text == item.final_text:
        return LeftOut.NOT_EDITED
    if is_test_model:
        return LeftOut.TEST_MODEL
    if prompt != validated:
        # The draft answers other inputs: preferring the teacher's text to it teaches nothing
        # about this prompt (and the chosen text may be right only for the new inputs).
        return LeftOut.STALE_PROMPT
    return names.reason(text)


def _discarded_drafts(items: list[Feedback]) -> dict[int, list[Draft]]:
    """Per appréciation, the drafts of the model the teacher did not keep: every generated
    draft of the same student, subject and term but the one the validated text came from and
    the one still offered (not decided yet). One query."""
    keys = {
        (
            item.appreciation.student_id,
            item.appreciation.subject_id,
            item.appreciation.term_id,
        ): item
        for item in items
        if item.appreciation is not None
    }
    result: dict[int, list[Draft]] = {}
    if not keys:
        return result
    drafts = Draft.objects.filter(
        student_id__in={key[0] for key in keys}, status=Draft.Status.GENERATED
    ).order_by("created_at", "pk")
    for draft in drafts:
        item = keys.get((draft.student_id, draft.subject_id, draft.term_id))
        if item is None:
            continue
        appreciation = item.appreciation
        if draft.pk in (item.draft_id, appreciation.draft_id, appreciation.offered_draft_id):
            continue
        result.setdefault(appreciation.pk, []).append(draft)
    return result
