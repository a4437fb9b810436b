"""The figures of a version's evaluation and the promotion gate: plain data in and out.

No database, no torch: the drafts and the teachers' texts come in as strings, the loss as a
number from worker.evaluation. Shares are between 0 and 1; chrF between 0 and 100 (sacrebleu's
corpus chrF, character 6-grams, beta 2); the edit distance is the Levenshtein distance (the one
Feedback.edit_distance records) divided by the longer text's length, between 0 and 1.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein
from sacrebleu.metrics import CHRF

from generation.checks import MAX_WORDS, KnownNames, check_text, word_count

# The checks a draft must pass (generation.checks), in the page's order. Grammar and spelling
# (Grammalecte) are left out: the figure must not depend on whether it is installed.
EVALUATED_CHECKS = ("length", "grade", "language", "personal", "wording", "name")
CHECK_LABELS = {
    "length": "Longueur (1 à 40 mots)",
    "grade": "Aucune note",
    "language": "En français",
    "personal": "Style impersonnel",
    "wording": "Aucune formulation à éviter",
    "name": "Aucun nom d'élève",
}
# Word-count buckets: empty, five words at a time up to the limit, then too long.
WORD_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (0, 0),
    *((low, low + 4) for low in range(1, MAX_WORDS, 5)),
    (MAX_WORDS + 1, None),
)


def bucket_label(low: int, high: int | None) -> str:
    if high is None:
        return f"{low}+"
    return str(low) if low == high else f"{low}-{high}"


def check_results(text: str, *, known_names: KnownNames | None = None) -> dict[str, bool]:
    """Whether the text passes each evaluated check (True: passes)."""
    codes = {flag.code for flag in check_text(text)}
    if known_names is not None and known_names.found(text):
        codes.add("name")
    return {code: code not in codes for code in EVALUATED_CHECKS}


def check_pass_shares(
    texts: Sequence[str], *, known_names: KnownNames | None = None
) -> dict[str, float]:
    """{"all": share passing every check, <code>: share passing that check}."""
    if not texts:
        return {"all": 0.0, **dict.fromkeys(EVALUATED_CHECKS, 0.0)}
    results = [check_results(text, known_names=known_names) for text in texts]
    shares = {"all": sum(all(result.values()) for result in results) / len(results)}
    for code in EVALUATED_CHECKS:
        shares[code] = sum(result[code] for result in results) / len(results)
    return shares


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu's defaults): 100 for identical texts."""
    if len(hypotheses) != len(references):
        raise ValueError("As many drafts as teachers' texts are needed.")
    if not hypotheses:
        return 0.0
    return float(CHRF().corpus_score(list(hypotheses), [list(references)]).score)


def normalized_edit_distance(draft: str, reference: str) -> float:
    """Levenshtein distance / the longer length: 0 identical, 1 nothing in common."""
    longer = max(len(draft), len(reference))
    if longer == 0:
        return 0.0
    return Levenshtein.distance(draft, reference) / longer


def mean_edit_distance(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    if len(hypotheses) != len(references):
        raise ValueError("As many drafts as teachers' texts are needed.")
    if not hypotheses:
        return 0.0
    distances = [
        normalized_edit_distance(draft, reference)
        for draft, reference in zip(hypotheses, references, strict=True)
    ]
    return sum(distances) / len(distances)


def word_count_distribution(texts: Iterable[str]) -> dict[str, Any]:
    """{"buckets": [{"label", "low", "high", "count"}], "mean", "median", "count"}."""
    counts = [word_count(text) for text in texts]
    buckets = []
    for low, high in WORD_BUCKETS:
        in_bucket = sum(1 for n in counts if n >= low and (high is None or n <= high))
        buckets.append(
            {"label": bucket_label(low, high), "low": low, "high": high, "count": in_bucket}
        )
    return {
        "buckets": buckets,
        "mean": round(statistics.fmean(counts), 2) if counts else 0.0,
        "median": float(statistics.median(counts)) if counts else 0.0,
        "count": len(counts),
    }


def version_figures(
    *,
    drafts: Sequence[str],
    references: Sequence[str],
    loss: float,
    loss_tokens: int,
    known_names: KnownNames | None = None,
) -> dict[str, Any]:
    """Every figure of one version on the test rows (drafts and teachers' texts aligned)."""
    words = word_count_distribution(drafts)
    teachers_mean = statistics.fmean(word_count(text) for text in references) if references else 0
    return {
        "loss": loss,
        "loss_tokens": loss_tokens,
        "perplexity": math.exp(loss) if math.isfinite(loss) and loss < 700 else None,
        "checks": check_pass_shares(drafts, known_names=known_names),
        "chrf": chrf(drafts, references),
        "edit_distance": mean_edit_distance(drafts, references),
        "words": words,
        # How far the mean draft length is from the teachers' (in words).
        "word_count_gap": round(abs(words["mean"] - teachers_mean), 2),
    }


# --- The promotion gate -------------------------------------------------------------------------


@dataclass(frozen=True)
class GateThresholds:
    """See APPRECIATION_GATE_* in settings/base.py."""

    min_rows: int
    max_loss_increase: float
    min_check_pass_share: float
    max_check_pass_drop: float
    min_chrf_gain: float
    max_edit_distance_increase: float
    max_word_count_gap: float

    @classmethod
    def from_settings(cls) -> GateThresholds:
        from django.conf import settings

        return cls(
            min_rows=settings.APPRECIATION_GATE_MIN_ROWS,
            max_loss_increase=settings.APPRECIATION_GATE_MAX_LOSS_INCREASE,
            min_check_pass_share=settings.APPRECIATION_GATE_MIN_CHECK_PASS_SHARE,
            max_check_pass_drop=settings.APPRECIATION_GATE_MAX_CHECK_PASS_DROP,
            min_chrf_gain=settings.APPRECIATION_GATE_MIN_CHRF_GAIN,
            max_edit_distance_increase=settings.APPRECIATION_GATE_MAX_EDIT_DISTANCE_INCREASE,
            max_word_count_gap=settings.APPRECIATION_GATE_MAX_WORD_COUNT_GAP,
        )


# name -> French label of the criterion, for the page.
GATE_LABELS = {
    "rows": "Nombre d'appréciations de test",
    "loss": "Perte sur les textes des enseignants",
    "check_pass_share": "Part des brouillons qui passent toutes les vérifications",
    "check_pass_drop": "Vérifications : pas de recul face à la version active",
    "chrf": "Proximité avec le texte de l'enseignant (chrF)",
    "edit_distance": "Distance d'édition au texte de l'enseignant",
    "word_count_gap": "Écart de longueur moyenne avec les enseignants (mots)",
}


def _criterion(name, candidate, reference, threshold, passed) -> dict[str, Any]:
    return {
        "name": name,
        "candidate": candidate,
        "reference": reference,
        "threshold": threshold,
        "passed": bool(passed),
    }


def promotion_gate(
    *, candidate: dict[str, Any], reference: dict[str, Any], rows: int, thresholds: GateThresholds
) -> dict[str, Any]:
    """{"passed": every criterion passed, "criteria": [{name, candidate, reference, threshold,
    passed}]} from two versions' figures (version_figures). A loss that is not a finite
    number fails its criterion."""
    loss_c, loss_r = candidate["loss"], reference["loss"]
    share_c, share_r = candidate["checks"]["all"], reference["checks"]["all"]
    criteria = [
        _criterion("rows", rows, None, thresholds.min_rows, rows >= thresholds.min_rows),
        _criterion(
            "loss",
            loss_c,
            loss_r,
            thresholds.max_loss_increase,
            math.isfinite(loss_c)
            and math.isfinite(loss_r)
            and loss_c - loss_r <= thresholds.max_loss_increase,
        ),
        _criterion(
            "check_pass_share",
            share_c,
            share_r,
            thresholds.min_check_pass_share,
            share_c >= thresholds.min_check_pass_share,
        ),
        _criterion(
            "check_pass_drop",
            share_c,
            share_r,
            thresholds.max_check_pass_drop,
            share_r - share_c <= thresholds.max_check_pass_drop,
        ),
        _criterion(
            "chrf",
            candidate["chrf"],
            reference["chrf"],
            thresholds.min_chrf_gain,
            candidate["chrf"] - reference["chrf"] >= thresholds.min_chrf_gain,
        ),
        _criterion(
            "edit_distance",
            candidate["edit_distance"],
            reference["edit_distance"],
            thresholds.max_edit_distance_increase,
            candidate["edit_distance"] - reference["edit_distance"]
            <= thresholds.max_edit_distance_increase,
        ),
        _criterion(
            "word_count_gap",
            candidate["word_count_gap"],
            reference["word_count_gap"],
            thresholds.max_word_count_gap,
            candidate["word_count_gap"] <= thresholds.max_word_count_gap,
        ),
    ]
    return {"passed": all(item["passed"] for item in criteria), "criteria": criteria}


# --- Better or worse, figure by figure (the page's sentence) ------------------------------------

# name -> (French label, True when higher is better, how to read it from version_figures).
COMPARED_FIGURES: tuple[tuple[str, str, bool], ...] = (
    ("loss", "la perte sur les textes des enseignants", False),
    ("checks.all", "la part des brouillons qui passent toutes les vérifications", True),
    *(
        (f"checks.{code}", f"la vérification « {CHECK_LABELS[code]} »", True)
        for code in EVALUATED_CHECKS
    ),
    ("chrf", "la proximité avec le texte de l'enseignant (chrF)", True),
    ("edit_distance", "la distance d'édition au texte de l'enseignant", False),
    ("word_count_gap", "la longueur des textes (écart avec les enseignants)", False),
)


def figure(figures: dict[str, Any], path: str) -> Any:
    value: Any = figures
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def compare_versions(
    candidate: dict[str, Any], reference: dict[str, Any], *, tolerance: float = 1e-9
) -> dict[str, list[str]]:
    """{"better": [labels], "worse": [labels], "equal": [labels]} of the candidate."""
    result: dict[str, list[str]] = {"better": [], "worse": [], "equal": []}
    for path, label, higher_is_better in COMPARED_FIGURES:
        c, r = figure(candidate, path), figure(reference, path)
        if not isinstance(c, int | float) or not isinstance(r, int | float):
            continue
        if not (math.isfinite(c) and math.isfinite(r)) or abs(c - r) <= tolerance:
            result["equal"].append(label)
        elif (c > r) == higher_is_better:
            result["better"].append(label)
        else:
            result["worse"].append(label)
    return result
