"""Each figure of an evaluation checked by hand on texts written here, and the promotion gate
on constructed figures, criterion by criterion, thresholds from the settings."""

from __future__ import annotations

import math

import pytest
from django.test import override_settings

from generation.checks import KnownNames
from learning.evaluation_metrics import (
    EVALUATED_CHECKS,
    GateThresholds,
    check_pass_shares,
    check_results,
    chrf,
    compare_versions,
    mean_edit_distance,
    normalized_edit_distance,
    promotion_gate,
    version_figures,
    word_count_distribution,
)

GOOD = "Trimestre sérieux : l'élève participe volontiers et fournit un travail régulier."


def test_chrf_of_identical_texts_is_100_and_of_disjoint_texts_0():
    assert chrf([GOOD, "Bon trimestre."], [GOOD, "Bon trimestre."]) == 100.0
    assert chrf(["abc"], ["xyz"]) == 0.0
    partial = chrf(["Bon trimestre, élève sérieux."], ["Bon trimestre."])
    assert 0 < partial < 100


def test_edit_distance_is_levenshtein_over_the_longer_length():
    # "doit" -> "peut": three substitutions over 4 characters.
    assert normalized_edit_distance("doit", "peut") == 0.75
    # "chat" -> "chats": one insertion over 5 (the longer).
    assert normalized_edit_distance("chat", "chats") == 0.2
    assert normalized_edit_distance("", "") == 0.0
    assert normalized_edit_distance("", "abc") == 1.0
    assert mean_edit_distance(["doit", "chat"], ["peut", "chats"]) == pytest.approx(0.475)


def test_word_count_histogram_mean_and_median():
    texts = ["", "Bon trimestre.", "Un deux trois quatre cinq six.", " ".join(["mot"] * 45)]
    distribution = word_count_distribution(texts)
    counts = {bucket["label"]: bucket["count"] for bucket in distribution["buckets"]}
    assert counts["0"] == 1
    assert counts["1-5"] == 1
    assert counts["6-10"] == 1
    assert counts["41+"] == 1
    assert sum(counts.values()) == 4
    assert distribution["mean"] == pytest.approx((0 + 2 + 6 + 45) / 4, abs=0.01)
    assert distribution["median"] == 4.0
    assert distribution["count"] == 4


def test_each_check_fails_on_the_text_it_is_about():
    assert all(check_results(GOOD).values())
    assert check_results("Trimestre correct, 12/20 de moyenne.")["grade"] is False
    assert check_results("")["length"] is False
    assert (
        check_results("The student works hard and takes part in every lesson.")["language"] is False
    )
    assert check_results("Tu dois travailler davantage ce trimestre.")["personal"] is False
    assert check_results("Élève paresseux ce trimestre, peut mieux faire.")["wording"] is False
    names = KnownNames(["Zorglub", "Awa"])
    result = check_results("Awa participe volontiers en classe ce trimestre.", known_names=names)
    assert result["name"] is False
    assert [code for code, ok in result.items() if not ok] == ["name"]


def test_pass_shares_per_check_and_for_every_check():
    texts = [GOOD, "Trimestre correct, 12/20 de moyenne.", "Tu dois travailler davantage.", GOOD]
    shares = check_pass_shares(texts)
    assert shares["all"] == 0.5
    assert shares["grade"] == 0.75
    assert shares["personal"] == 0.75
    assert shares["length"] == 1.0
    assert set(shares) == {"all", *EVALUATED_CHECKS}


def figures(*, loss=1.0, share=0.95, chrf_value=40.0, edit=0.5, gap=2.0) -> dict:
    return {
        "loss": loss,
        "checks": {"all": share},
        "chrf": chrf_value,
        "edit_distance": edit,
        "word_count_gap": gap,
    }


def thresholds(**changes) -> GateThresholds:
    values = {
        "min_rows": 30,
        "max_loss_increase": 0.02,
        "min_check_pass_share": 0.9,
        "max_check_pass_drop": 0.02,
        "min_chrf_gain": 0.0,
        "max_edit_distance_increase": 0.0,
        "max_word_count_gap": 5.0,
    }
    return GateThresholds(**{**values, **changes})


def failed(gate: dict) -> list[str]:
    return [item["name"] for item in gate["criteria"] if not item["passed"]]


def test_the_gate_passes_a_candidate_at_least_as_good_on_everything():
    gate = promotion_gate(
        candidate=figures(loss=0.9, chrf_value=45, edit=0.4),
        reference=figures(),
        rows=40,
        thresholds=thresholds(),
    )
    assert gate["passed"] is True
    assert failed(gate) == []
    loss = next(item for item in gate["criteria"] if item["name"] == "loss")
    assert loss == {
        "name": "loss",
        "candidate": 0.9,
        "reference": 1.0,
        "threshold": 0.02,
        "passed": True,
    }


@pytest.mark.parametrize(
    ("candidate", "rows", "expected"),
    [
        (figures(), 29, ["rows"]),
        (figures(loss=1.03), 40, ["loss"]),
        (figures(loss=math.nan), 40, ["loss"]),
        (figures(share=0.85), 40, ["check_pass_share", "check_pass_drop"]),
        (figures(chrf_value=39.5), 40, ["chrf"]),
        (figures(edit=0.51), 40, ["edit_distance"]),
        (figures(gap=6.0), 40, ["word_count_gap"]),
    ],
)
def test_the_gate_fails_on_each_criterion_alone(candidate, rows, expected):
    gate = promotion_gate(
        candidate=candidate, reference=figures(), rows=rows, thresholds=thresholds()
    )
    assert gate["passed"] is False
    assert failed(gate) == expected


def test_a_small_drop_in_checks_within_the_allowed_drop_passes():
    gate = promotion_gate(
        candidate=figures(share=0.94),
        reference=figures(share=0.95),
        rows=40,
        thresholds=thresholds(),
    )
    assert gate["passed"] is True
    gate = promotion_gate(
        candidate=figures(share=0.92),
        reference=figures(share=0.95),
        rows=40,
        thresholds=thresholds(),
    )
    assert failed(gate) == ["check_pass_drop"]


@override_settings(
    APPRECIATION_GATE_MIN_ROWS=5,
    APPRECIATION_GATE_MAX_LOSS_INCREASE=0.5,
    APPRECIATION_GATE_MIN_CHECK_PASS_SHARE=0.5,
    APPRECIATION_GATE_MAX_CHECK_PASS_DROP=0.3,
    APPRECIATION_GATE_MIN_CHRF_GAIN=2.0,
    APPRECIATION_GATE_MAX_EDIT_DISTANCE_INCREASE=0.1,
    APPRECIATION_GATE_MAX_WORD_COUNT_GAP=1.0,
)
def test_the_thresholds_come_from_the_settings():
    limits = GateThresholds.from_settings()
    assert limits == thresholds(
        min_rows=5,
        max_loss_increase=0.5,
        min_check_pass_share=0.5,
        max_check_pass_drop=0.3,
        min_chrf_gain=2.0,
        max_edit_distance_increase=0.1,
        max_word_count_gap=1.0,
    )
    # Worse loss within 0.5, a 0.7 share: passes here, fails the defaults.
    candidate = figures(loss=1.4, share=0.7, chrf_value=43, edit=0.55, gap=0.5)
    gate = promotion_gate(candidate=candidate, reference=figures(), rows=6, thresholds=limits)
    assert gate["passed"] is True
    gate = promotion_gate(
        candidate={**candidate, "chrf": 41.0}, reference=figures(), rows=6, thresholds=limits
    )
    assert failed(gate) == ["chrf"]


def test_compare_says_better_and_worse_figure_by_figure():
    candidate = {**figures(loss=0.8, chrf_value=30), "checks": {"all": 0.95, "grade": 1.0}}
    reference = {**figures(loss=1.0, chrf_value=40), "checks": {"all": 0.95, "grade": 0.9}}
    result = compare_versions(candidate, reference)
    assert "la perte sur les textes des enseignants" in result["better"]
    assert "la vérification « Aucune note »" in result["better"]
    assert "la proximité avec le texte de l'enseignant (chrF)" in result["worse"]
    assert "la part des brouillons qui passent toutes les vérifications" in result["equal"]


def test_version_figures_on_texts_written_here():
    references = [GOOD, "Bon trimestre."]
    result = version_figures(
        drafts=[GOOD, "Trimestre correct, 12/20."],
        references=references,
        loss=1.5,
        loss_tokens=30,
    )
    assert result["loss"] == 1.5
    assert result["perplexity"] == pytest.approx(math.exp(1.5))
    assert result["checks"]["all"] == 0.5
    assert result["checks"]["grade"] == 0.5
    assert 0 < result["chrf"] < 100
    assert result["edit_distance"] == pytest.approx(
        normalized_edit_distance("Trimestre correct, 12/20.", "Bon trimestre.") / 2
    )
    # Drafts: 10 and 3 words (mean 6.5; the colon is no word); teachers: 10 and 2 (mean 6).
    assert result["words"]["mean"] == 6.5
    assert result["word_count_gap"] == 0.5
