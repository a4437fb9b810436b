"""The teachers' panel (« validation par un panel d'enseignants »): blind pairwise judgements of
two versions' drafts for the same pseudonymous inputs, and each version pair's win rate.

Who judges: teachers and department heads whose account has `on_panel`, of any school (the
panel judges the model every school shares; an item carries no school and no student), and
superusers. Everyone else gets the 404 of a missing page.

Blind and in random order: the page shows "the first" and "the second" text, never a version.
Which of A and B comes first is drawn per (item, judge) from a keyed hash (HMAC with the
SECRET_KEY): unpredictable for the judge, the same on a reload, and recomputed by the server
when the choice is posted, so the page writes nothing on GET and the client never says which
version it chose. The drawn order is stored with the judgement (`a_shown_second`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef
from django.http import Http404
from django.shortcuts import get_object_or_404

from classes.models import Teacher
from generation.models import ModelVersion

from .models import PanelItem, PanelJudgement

logger = logging.getLogger(__name__)

ShownChoice = Literal["first", "equal", "second"]
SHOWN_CHOICES: tuple[str, ...] = ("first", "equal", "second")
REASON_MAX_CHARS = 1000
# z for a two-sided 95 % interval: the 0.975 quantile of the standard normal distribution.
Z_95 = 1.959963984540054

PANEL_ROLES = (Teacher.Role.TEACHER, Teacher.Role.DEPARTMENT_HEAD)


# --- Who ----------------------------------------------------------------------------------------


def is_panel_member(user) -> bool:
    """A teacher or department head on the panel (any school), or a superuser."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return bool(user.on_panel) and user.role in PANEL_ROLES


def ensure_panel_member(user) -> None:
    if not is_panel_member(user):
        raise Http404("Not a panel member")


def access_panel_item_by_id(user: Teacher, item_id: int) -> PanelItem:
    """An item of the panel, for a panel member (any item: they are shared and pseudonymous)."""
    ensure_panel_member(user)
    return get_object_or_404(PanelItem, pk=item_id)


# --- Blind order --------------------------------------------------------------------------------


def a_shown_second(*, user: Teacher, item: PanelItem) -> bool:
    """Whether version A's text is shown second to this judge for this item.

    A keyed hash of (item, judge): a fair coin per judgement that the judge cannot predict
    (the key is the SECRET_KEY), stable across reloads, recomputed on the POST.
    """
    message = f"panel-order:{item.pk}:{user.pk}".encode()
    digest = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()
    return bool(digest[0] & 1)


@dataclass(frozen=True)
class ShownItem:
    """An item as one judge sees it: two texts in the drawn order, no version."""

    item: PanelItem
    first_text: str
    second_text: str
    inputs: list[tuple[str, str]]


def shown_item(*, user: Teacher, item: PanelItem) -> ShownItem:
    second = a_shown_second(user=user, item=item)
    first_text, second_text = (item.text_b, item.text_a) if second else (item.text_a, item.text_b)
    return ShownItem(
        item=item,
        first_text=first_text,
        second_text=second_text,
        inputs=shown_inputs(item.inputs),
    )


def verdict_for(*, shown_choice: str, a_second: bool) -> str:
    """The verdict from A's side, from the position the judge chose."""
    if shown_choice == "equal":
        return PanelJudgement.Verdict.EQUAL
    if shown_choice not in ("first", "second"):
        raise ValidationError("Choix inconnu : rechargez la page.")
    a_chosen = (shown_choice == "first") != a_second
    return PanelJudgement.Verdict.A_BETTER if a_chosen else PanelJudgement.Verdict.B_BETTER


# --- What the page shows of the inputs ---------------------------------------------------------

_ORDINAL_TERMS = {1: "premier", 2: "deuxième", 3: "troisième"}


def _number(value) -> str:
    if value is None or value == "":
        return "non renseignée"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "non renseignée"
    text = f"{number:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",")


def shown_inputs(inputs: dict) -> list[tuple[str, str]]:
    """The inputs as the model card's form names them, from a fixed list of keys: whatever
    else an item's inputs hold (a name, a school, an id) is never shown."""
    if not isinstance(inputs, dict):
        return []
    shown: list[tuple[str, str]] = []
    # "subject" as the dataset rows name it; "subject_name" as generation.prompts.PromptInputs.
    subject = inputs.get("subject") or inputs.get("subject_name")
    if subject:
        shown.append(("Discipline", str(subject)))
    if inputs.get("level"):
        shown.append(("Niveau", str(inputs["level"])))
    trimester = inputs.get("trimester")
    if trimester in (1, 2, 3):
        shown.append(("Trimestre", {1: "1er", 2: "2e", 3: "3e"}[trimester] + " trimestre"))
    averages = inputs.get("averages")
    if isinstance(averages, list | tuple):
        for number, average in enumerate(averages[:3], start=1):
            shown.append((f"Moyenne au {_ORDINAL_TERMS[number]} trimestre (/20)", _number(average)))
    for key, label in (
        ("behaviour", "Comportement (/10)"),
        ("participation", "Participation (/10)"),
        ("work", "Travail (/10)"),
    ):
        if key in inputs:
            shown.append((label, _number(inputs[key])))
    if isinstance(inputs.get("repeating"), bool):
        shown.append(("Redoublement", "oui" if inputs["repeating"] else "non"))
    return shown


# --- Selectors ----------------------------------------------------------------------------------


def panel_next_item(*, user: Teacher) -> PanelItem | None:
    """The next item this panel member has not judged: the least judged first, so that the
    judgements spread over the items; None when none is left."""
    ensure_panel_member(user)
    judged = PanelJudgement.objects.filter(item=OuterRef("pk"), judge=user)
    return (
        PanelItem.objects.exclude(version_a=F("version_b"))
        .filter(~Exists(judged))
        .annotate(judgement_count=Count("judgements"))
        .order_by("judgement_count", "pk")
        .first()
    )


def panel_remaining_count(*, user: Teacher) -> int:
    ensure_panel_member(user)
    return (
        PanelItem.objects.exclude(version_a=F("version_b")).exclude(judgements__judge=user).count()
    )


def panel_judged_count(*, user: Teacher) -> int:
    return PanelJudgement.objects.filter(judge=user).count()


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson_interval(successes: float, total: int, *, z: float = Z_95) -> Interval | None:
    """The Wilson score interval of a proportion (95 % with the default z).

    E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
    Journal of the American Statistical Association 22 (1927), 209-212; recommended over the
    normal ("Wald") interval by Brown, Cai and DasGupta, "Interval Estimation for a Binomial
    Proportion", Statistical Science 16 (2001), 101-133. It stays inside [0, 1] and behaves
    at 0 and n successes and for small n, where panels start.

    `successes` may be a half-integer: a tie counts as half a win. A tie has no spread, so
    the binomial variance this formula assumes is at least the true one: the interval is, if
    anything, a little wide (conservative). None when there is nothing to estimate.
    """
    if total <= 0:
        return None
    p = successes / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half_width = (z / denominator) * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return Interval(max(0.0, centre - half_width), min(1.0, centre + half_width))


@dataclass(frozen=True)
class PairResult:
    """One version pair's judgements, from A's side (A: the more recent version)."""

    version_a: ModelVersion
    version_b: ModelVersion
    wins: int
    ties: int
    losses: int
    items: int

    @property
    def judgements(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def win_rate(self) -> float | None:
        """A's wins plus half its ties, over the judgements."""
        if not self.judgements:
            return None
        return (self.wins + 0.5 * self.ties) / self.judgements

    @property
    def interval(self) -> Interval | None:
        return wilson_interval(self.wins + 0.5 * self.ties, self.judgements)


def panel_results() -> list[PairResult]:
    """Every version pair with items, most judged first. A pair stored both ways (A, B) and
    (B, A) is one pair, seen from the more recent version (created later)."""
    counts: dict[tuple[int, int], dict[str, int]] = {}
    item_rows = PanelItem.objects.exclude(version_a=F("version_b")).values_list(
        "version_a_id", "version_b_id"
    )
    for version_a_id, version_b_id in item_rows:
        key, _ = _oriented(version_a_id, version_b_id)
        counts.setdefault(key, {"wins": 0, "ties": 0, "losses": 0, "items": 0})["items"] += 1
    verdicts = (
        PanelJudgement.objects.exclude(item__version_a=F("item__version_b"))
        .values_list("item__version_a_id", "item__version_b_id", "verdict")
        .order_by()
    )
    for version_a_id, version_b_id, verdict in verdicts:
        key, flipped = _oriented(version_a_id, version_b_id)
        row = counts[key]
        if verdict == PanelJudgement.Verdict.EQUAL:
            row["ties"] += 1
        elif (verdict == PanelJudgement.Verdict.A_BETTER) != flipped:
            row["wins"] += 1
        else:
            row["losses"] += 1
    versions = ModelVersion.objects.in_bulk({pk for key in counts for pk in key})
    results = [
        PairResult(version_a=versions[a], version_b=versions[b], **row)
        for (a, b), row in counts.items()
    ]
    results.sort(key=lambda r: (-r.judgements, -r.version_a.pk, -r.version_b.pk))
    return results


def _oriented(version_a_id: int, version_b_id: int) -> tuple[tuple[int, int], bool]:
    """The pair's key with the more recent version (higher id) first, and whether the
    stored item had them the other way round."""
    if version_a_id >= version_b_id:
        return (version_a_id, version_b_id), False
    return (version_b_id, version_a_id), True


# --- Services -----------------------------------------------------------------------------------


@transaction.atomic
def panel_judgement_record(
    *, user: Teacher, item: PanelItem, shown_choice: str, reason: str = ""
) -> PanelJudgement:
    """Record a panel member's choice between the two texts as shown to them.

    `shown_choice` is the position chosen ("first", "equal", "second"); which version that is
    comes from the order drawn for this judge and item, never from the client.
    Raises ValidationError for an unknown choice, an item already judged or a reason too long.
    """
    ensure_panel_member(user)
    if shown_choice not in SHOWN_CHOICES:
        raise ValidationError("Choix inconnu : rechargez la page.")
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX_CHARS:
        raise ValidationError(f"Le motif dépasse {REASON_MAX_CHARS} caractères.")
    if item.version_a_id == item.version_b_id:
        raise ValidationError("Cette paire compare une version à elle-même.")
    second = a_shown_second(user=user, item=item)
    if PanelJudgement.objects.filter(item=item, judge=user).exists():
        raise ValidationError("Vous avez déjà jugé cette paire.")
    try:
        with transaction.atomic():
            judgement = PanelJudgement.objects.create(
                item=item,
                judge=user,
                a_shown_second=second,
                verdict=verdict_for(shown_choice=shown_choice, a_second=second),
                reason=reason,
            )
    except IntegrityError as exc:  # two tabs posting at once: the constraint decides
        raise ValidationError("Vous avez déjà jugé cette paire.") from exc
    logger.info("Panel judgement %s on item %s by user %s", judgement.pk, item.pk, user.pk)
    return judgement
