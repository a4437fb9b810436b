"""What the evaluation page shows, computed from a ModelEvaluation's stored figures: the rows
of the side-by-side table, the word-count chart's bars, the plain sentence and the gate."""

from __future__ import annotations

import math
from typing import Any

from generation.models import ModelVersion

from .charts import grouped_bar_chart
from .evaluation import CANDIDATE, REFERENCE, comparison
from .evaluation_metrics import CHECK_LABELS, EVALUATED_CHECKS, GATE_LABELS, figure
from .models import ModelEvaluation

# The chart: one group of three bars (teachers, candidate, reference) per word-count bucket.
CHART_SERIES = (
    ("teachers", "Enseignants"),
    (CANDIDATE, "Version évaluée"),
    (REFERENCE, "Version de référence"),
)


def french_number(value: Any, digits: int = 2) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}".replace(".", ",")


def french_percent(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    return f"{french_number(100 * value, 1)} %"


# (label, path in version_figures, formatter, True when higher is better)
TABLE_FIGURES: tuple[tuple[str, str, Any, bool | None], ...] = (
    ("Perte sur les textes des enseignants (nats par jeton)", "loss", french_number, False),
    ("Perplexité", "perplexity", french_number, False),
    ("Passent toutes les vérifications", "checks.all", french_percent, True),
    *(
        (f"Vérification : {CHECK_LABELS[code]}", f"checks.{code}", french_percent, True)
        for code in EVALUATED_CHECKS
    ),
    ("chrF au texte de l'enseignant (0 à 100)", "chrf", lambda v: french_number(v, 1), True),
    ("Distance d'édition normalisée (0 à 1)", "edit_distance", french_number, False),
    ("Nombre de mots moyen", "words.mean", lambda v: french_number(v, 1), None),
    ("Nombre de mots médian", "words.median", lambda v: french_number(v, 1), None),
    (
        "Écart de longueur moyenne avec les enseignants (mots)",
        "word_count_gap",
        lambda v: french_number(v, 1),
        False,
    ),
)


def _table(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, path, fmt, higher_is_better in TABLE_FIGURES:
        c, r = figure(metrics[CANDIDATE], path), figure(metrics[REFERENCE], path)
        better = None
        if (
            higher_is_better is not None
            and isinstance(c, int | float)
            and isinstance(r, int | float)
        ) and c != r:
            better = CANDIDATE if (c > r) == higher_is_better else REFERENCE
        rows.append({"label": label, "candidate": fmt(c), "reference": fmt(r), "better": better})
    return rows


def _chart(metrics: dict[str, Any]) -> dict[str, Any]:
    return grouped_bar_chart(
        series=CHART_SERIES,
        buckets={
            "teachers": metrics["teachers"]["words"]["buckets"],
            CANDIDATE: metrics[CANDIDATE]["words"]["buckets"],
            REFERENCE: metrics[REFERENCE]["words"]["buckets"],
        },
    )


def _join(labels: list[str]) -> str:
    return ", ".join(labels) if labels else "aucun point"


def verdict_sentence(evaluation: ModelEvaluation) -> str:
    """« La version v3 fait mieux que la version active sur : … ; moins bien sur : … »"""
    result = comparison(evaluation)
    if result is None:
        return ""
    reference = (
        "la version active"
        if evaluation.reference.state == ModelVersion.State.ACTIVE
        else f"la version {evaluation.reference.name}"
    )
    return (
        f"La version {evaluation.candidate.name} fait mieux que {reference} sur : "
        f"{_join(result['better'])} ; moins bien sur : {_join(result['worse'])}."
    )


def gate_sentence(evaluation: ModelEvaluation) -> str:
    gate = evaluation.gate or {}
    if "passed" not in gate:
        return ""
    if gate["passed"]:
        return "Peut être mise en service."
    failed = [GATE_LABELS.get(c["name"], c["name"]) for c in gate["criteria"] if not c["passed"]]
    return "Ne remplit pas les critères : " + ", ".join(failed) + "."


def _criteria(evaluation: ModelEvaluation) -> list[dict[str, Any]]:
    return [
        {
            **criterion,
            "label": GATE_LABELS.get(criterion["name"], criterion["name"]),
            "candidate_text": french_number(criterion["candidate"], 3),
            "reference_text": french_number(criterion["reference"], 3),
            "threshold_text": french_number(criterion["threshold"], 3),
        }
        for criterion in (evaluation.gate or {}).get("criteria", [])
    ]


def evaluation_page_context(evaluation: ModelEvaluation) -> dict[str, Any]:
    context: dict[str, Any] = {"evaluation": evaluation, "version": evaluation.candidate}
    metrics = evaluation.metrics or {}
    if evaluation.state == ModelEvaluation.State.FINISHED and CANDIDATE in metrics:
        context.update(
            table=_table(metrics),
            chart=_chart(metrics),
            verdict=verdict_sentence(evaluation),
            gate_text=gate_sentence(evaluation),
            gate_passed=bool(evaluation.gate.get("passed")),
            criteria=_criteria(evaluation),
            rows=metrics.get("rows"),
            panel_items=evaluation.panel_items.count(),
        )
    return context
