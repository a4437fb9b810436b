"""The evaluation of a version, end to end: the rows from the feedback, the figures and the gate
recorded (checked by hand on drafts written here), the panel's pairs, the page (superusers
only), the command; and two tiny LoRA versions evaluated on a real worker."""

from __future__ import annotations

import math

import pytest
from django.core.management import call_command
from django.urls import reverse

from generation.models import ModelVersion
from generation.prompts import PromptInputs, build_messages
from learning import evaluation as services
from learning.evaluation_metrics import GateThresholds
from learning.models import ModelEvaluation, PanelItem
from learning.training_data import held_out_rows
from tests.conftest import wait_for
from tests.factories import (
    FeedbackFactory,
    ModelEvaluationFactory,
    ModelVersionFactory,
    TeacherFactory,
)

INPUTS = {
    "subject": "Histoire-Géographie",
    "level": "Seconde",
    "trimester": 2,
    "repeating": False,
    "averages": [11.0, 12.5, None],
    "behaviour": 7.0,
    "participation": 6.5,
    "work": 8.0,
}
PROMPT = build_messages(
    PromptInputs(
        subject_name="Histoire-Géographie",
        trimester=2,
        averages=(11, 12.5, None),
        behaviour=7,
        participation=6.5,
        work=8,
    )
)
TEACHER_TEXTS = [
    "Trimestre sérieux, des efforts réguliers à poursuivre à l'oral.",
    "Bon investissement en classe, les résultats progressent.",
    "Travail irrégulier : il faut s'investir davantage dans les leçons.",
]
THRESHOLDS = GateThresholds(
    min_rows=3,
    max_loss_increase=0.02,
    min_check_pass_share=0.9,
    max_check_pass_drop=0.02,
    min_chrf_gain=0.0,
    max_edit_distance_increase=0.0,
    max_word_count_gap=5.0,
)


def make_test_rows(world, count: int) -> list[str]:
    """Validations of an opted-in school, each by its own teacher (so that each is a group of
    its own for the split by student and teacher), until at least `count` of them fall in the
    test split; returns the held-out rows' final texts."""
    world.school.feedback_trains_shared_models = True
    world.school.save()
    held_out: list = []
    index = 0
    while len(held_out) < count:
        FeedbackFactory(
            school=world.school,
            validated_by=TeacherFactory(school=world.school),
            draft_text="Brouillon.",
            final_text=TEACHER_TEXTS[index % len(TEACHER_TEXTS)],
            edited=True,
            prompt_messages=PROMPT,
            inputs=INPUTS,
        )
        index += 1
        assert index < 200
        held_out = held_out_rows()
    return [row.final_text for row in held_out]


def rows_and_outputs():
    rows = [
        {"key": f"k{index}", "messages": PROMPT, "final_text": text, "inputs": INPUTS}
        for index, text in enumerate(TEACHER_TEXTS)
    ]
    outputs = {
        # The candidate writes exactly what the teachers wrote.
        "candidate": {
            "loss": 1.0,
            "loss_tokens": 40,
            "drafts": {row["key"]: f"« {row['final_text']} »" for row in rows},
        },
        # The reference quotes a grade in one draft of three.
        "reference": {
            "loss": 1.25,
            "loss_tokens": 40,
            "drafts": {
                "k0": TEACHER_TEXTS[0],
                "k1": "Bon trimestre, 14/20 de moyenne.",
                "k2": TEACHER_TEXTS[1],
            },
        },
    }
    return rows, outputs


@pytest.fixture
def pair(db):
    reference = ModelVersionFactory(name="v1", state=ModelVersion.State.ACTIVE)
    candidate = ModelVersionFactory(name="v3", parent=reference)
    return candidate, reference


def test_the_figures_gate_panel_and_summary_are_recorded(pair):
    candidate, reference = pair
    evaluation = ModelEvaluationFactory(candidate=candidate, reference=reference, seed=5)
    rows, outputs = rows_and_outputs()
    services.model_evaluation_record(
        evaluation=evaluation, rows=rows, outputs=outputs, thresholds=THRESHOLDS
    )
    evaluation.refresh_from_db()
    assert evaluation.state == ModelEvaluation.State.FINISHED
    metrics = evaluation.metrics
    assert metrics["rows"] == 3 and metrics["seed"] == 5
    c, r = metrics["candidate"], metrics["reference"]
    assert c["version"] == "v3" and r["version"] == "v1"
    # The quotes around the candidate's drafts are cleaned away: the teachers' texts exactly.
    assert c["chrf"] == 100.0
    assert c["edit_distance"] == 0.0
    assert c["checks"]["all"] == 1.0
    assert c["loss"] == 1.0 and c["perplexity"] == pytest.approx(math.e)
    assert r["checks"]["grade"] == pytest.approx(2 / 3)
    assert r["checks"]["all"] == pytest.approx(2 / 3)
    assert r["chrf"] < 100
    # Reference: k0 identical (0), k2 is another teacher's text: its distance by hand.
    from rapidfuzz.distance import Levenshtein

    k1 = Levenshtein.distance("Bon trimestre, 14/20 de moyenne.", TEACHER_TEXTS[1]) / max(
        len("Bon trimestre, 14/20 de moyenne."), len(TEACHER_TEXTS[1])
    )
    k2 = Levenshtein.distance(TEACHER_TEXTS[1], TEACHER_TEXTS[2]) / max(
        len(TEACHER_TEXTS[1]), len(TEACHER_TEXTS[2])
    )
    assert r["edit_distance"] == pytest.approx((0 + k1 + k2) / 3)
    assert c["words"]["buckets"] == metrics["teachers"]["words"]["buckets"]
    assert c["word_count_gap"] == 0.0
    assert evaluation.gate["passed"] is True
    assert {item["name"] for item in evaluation.gate["criteria"]} == {
        "rows",
        "loss",
        "check_pass_share",
        "check_pass_drop",
        "chrf",
        "edit_distance",
        "word_count_gap",
    }
    # The panel: one pair per row whose two drafts differ (k0 is the same text twice).
    items = list(PanelItem.objects.filter(evaluation=evaluation).order_by("pk"))
    assert [(item.text_a, item.text_b) for item in items] == [
        (TEACHER_TEXTS[1], "Bon trimestre, 14/20 de moyenne."),
        (TEACHER_TEXTS[2], TEACHER_TEXTS[1]),
    ]
    assert all(item.version_a == candidate and item.version_b == reference for item in items)
    assert items[0].inputs == INPUTS and items[0].prompt_messages == PROMPT
    candidate.refresh_from_db()
    assert candidate.evaluation["evaluation_id"] == evaluation.pk
    assert candidate.evaluation["gate_passed"] is True
    assert candidate.evaluation["chrf"] == {"candidate": 100.0, "reference": r["chrf"]}


def test_the_page_says_where_the_candidate_is_better_and_the_gate(pair, world, client):
    candidate, reference = pair
    evaluation = ModelEvaluationFactory(candidate=candidate, reference=reference)
    rows, outputs = rows_and_outputs()
    outputs["candidate"]["loss"] = 1.5  # worse loss: the gate fails on it
    services.model_evaluation_record(
        evaluation=evaluation, rows=rows, outputs=outputs, thresholds=THRESHOLDS
    )
    superuser = TeacherFactory(school=None, is_superuser=True, is_staff=True)
    client.force_login(superuser)
    for url in (
        reverse("learning:evaluation", args=[evaluation.pk]),
        reverse("learning:version_evaluation", args=[candidate.pk]),
    ):
        page = client.get(url).content.decode()
        assert "La version v3 fait mieux que la version active sur :" in page
        assert (
            "la proximité avec le texte de l&#x27;enseignant (chrF)"
            in page.split("moins bien sur")[0]
        )
        assert "moins bien sur : la perte sur les textes des enseignants" in page
        assert "Ne remplit pas les critères : Perte sur les textes des enseignants." in page
        assert "<svg" in page and "<rect" in page
    assert "Dernières évaluations" in client.get(reverse("learning:evaluations")).content.decode()
    for user in (world.admin, world.teacher):
        client.force_login(user)
        assert client.get(reverse("learning:evaluation", args=[evaluation.pk])).status_code == 404
        assert client.get(reverse("learning:evaluations")).status_code == 404


def test_a_passing_gate_says_it_can_be_put_in_service(pair, client):
    candidate, reference = pair
    evaluation = ModelEvaluationFactory(candidate=candidate, reference=reference)
    rows, outputs = rows_and_outputs()
    services.model_evaluation_record(
        evaluation=evaluation, rows=rows, outputs=outputs, thresholds=THRESHOLDS
    )
    client.force_login(TeacherFactory(school=None, is_superuser=True))
    page = client.get(reverse("learning:evaluation", args=[evaluation.pk])).content.decode()
    assert "Peut être mise en service." in page


def test_create_refuses_without_an_active_version_or_for_a_non_superuser(db, world):
    candidate = ModelVersionFactory()
    superuser = TeacherFactory(school=None, is_superuser=True)
    with pytest.raises(services.EvaluationError):
        services.model_evaluation_create(user=superuser, candidate=candidate, send=False)
    active = ModelVersionFactory(state=ModelVersion.State.ACTIVE)
    with pytest.raises(services.EvaluationError):
        services.model_evaluation_create(user=superuser, candidate=active, send=False)
    with pytest.raises(PermissionError):
        services.model_evaluation_create(user=world.admin, candidate=candidate, send=False)
    first = services.model_evaluation_create(user=superuser, candidate=candidate, send=False)
    assert first.reference == active
    # The same pair waiting: not queued twice.
    assert (
        services.model_evaluation_create(user=superuser, candidate=candidate, send=False) == first
    )


def test_the_rows_are_the_opted_in_schools_test_split(world):
    texts = make_test_rows(world, 2)
    rows = services.evaluation_rows()
    assert len(rows) >= 2
    assert sorted(row["final_text"] for row in rows) == sorted(texts)
    assert rows[0]["messages"] == PROMPT and rows[0]["inputs"] == INPUTS
    world.school.feedback_trains_shared_models = False
    world.school.save()
    assert services.evaluation_rows() == []


# --- On the tiny model ----------------------------------------------------------------------


@pytest.fixture
def tiny_versions(tiny_model_dirs, tmp_path):
    """The tiny model's adapter (active) and a second adapter over the same base (candidate)."""
    from transformers import AutoModelForCausalLM

    from worker.testing import build_tokenizer, write_model_pair

    base, adapter = tiny_model_dirs
    _, other = write_model_pair(
        tmp_path,
        model=AutoModelForCausalLM.from_pretrained(base),
        tokenizer=build_tokenizer(),
        lora_rank=8,
        lora_alpha=16,
        lora_b_std=0.5,
        seed=99,
    )
    reference = ModelVersionFactory(
        name="v1",
        base_model=str(base),
        adapter=str(adapter),
        state=ModelVersion.State.ACTIVE,
        is_test_model=True,
    )
    candidate = ModelVersionFactory(
        name="v2", base_model=str(base), adapter=str(other), parent=reference, is_test_model=True
    )
    return candidate, reference


def finished(evaluation) -> bool:
    evaluation.refresh_from_db()
    return evaluation.state in (ModelEvaluation.State.FINISHED, ModelEvaluation.State.FAILED)


@pytest.mark.worker
@pytest.mark.model
def test_two_tiny_versions_evaluated_on_a_real_worker(world, celery_worker, tiny_versions):
    from learning.tasks import evaluate_version

    candidate, reference = tiny_versions
    texts = make_test_rows(world, 3)
    superuser = TeacherFactory(school=None, is_superuser=True)

    evaluation = services.model_evaluation_create(user=superuser, candidate=candidate, seed=11)
    wait_for(lambda: finished(evaluation))
    assert evaluation.state == ModelEvaluation.State.FINISHED, evaluation.error_message
    metrics = evaluation.metrics
    assert metrics["rows"] == len(texts)
    for role in ("candidate", "reference"):
        loss = metrics[role]["loss"]
        assert isinstance(loss, float) and math.isfinite(loss) and loss > 0
        assert metrics[role]["loss_tokens"] > 0
        assert 0 <= metrics[role]["checks"]["all"] <= 1
        assert 0 <= metrics[role]["chrf"] <= 100
        assert 0 <= metrics[role]["edit_distance"] <= 1
        assert sum(b["count"] for b in metrics[role]["words"]["buckets"]) == 3
    assert metrics["candidate"]["loss"] != metrics["reference"]["loss"]
    assert isinstance(evaluation.gate["passed"], bool) and len(evaluation.gate["criteria"]) == 7
    candidate.refresh_from_db()
    assert candidate.evaluation["evaluation_id"] == evaluation.pk
    assert candidate.evaluation["loss"]["candidate"] == metrics["candidate"]["loss"]
    items = list(evaluation.panel_items.order_by("pk"))
    assert items, "two adapters drew the same noise for every row"
    assert all(item.version_a == candidate and item.version_b == reference for item in items)
    assert all(item.inputs == INPUTS for item in items)

    # A finished evaluation is not done again.
    finished_at = evaluation.finished_at
    item_ids = [item.pk for item in items]
    evaluate_version(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.finished_at == finished_at
    assert [item.pk for item in evaluation.panel_items.order_by("pk")] == item_ids

    # The same versions, rows and seed: the same drafts and figures.
    again = services.model_evaluation_create(user=superuser, candidate=candidate, seed=11)
    assert again.pk != evaluation.pk
    wait_for(lambda: finished(again))
    assert again.state == ModelEvaluation.State.FINISHED, again.error_message
    for role in ("candidate", "reference"):
        for key in ("loss", "chrf", "edit_distance", "checks", "words"):
            assert again.metrics[role][key] == metrics[role][key], (role, key)
    assert [(i.text_a, i.text_b) for i in again.panel_items.order_by("pk")] == [
        (i.text_a, i.text_b) for i in items
    ]


@pytest.mark.model
def test_the_command_prints_the_figures(world, tiny_model_settings, tiny_versions, capsys):
    candidate, reference = tiny_versions
    texts = make_test_rows(world, 2)
    TeacherFactory(school=None, is_superuser=True)
    call_command("evaluate_version", candidate.name, "--against", reference.name, "--seed", "3")
    out = capsys.readouterr().out
    assert f"v2 against v1 on {len(texts)} test rows" in out
    assert "Loss (nats per token)" in out
    assert "chrF" in out
    assert "Promotion gate:" in out
    evaluation = ModelEvaluation.objects.get()
    assert evaluation.state == ModelEvaluation.State.FINISHED


@pytest.mark.model
def test_a_version_that_cannot_load_fails_with_a_message(world, tiny_model_settings, tmp_path):
    base = tiny_model_settings.APPRECIATION_BASE_MODEL
    reference = ModelVersionFactory(
        name="v1", base_model=base, adapter=str(tmp_path / "absent"), state="active"
    )
    candidate = ModelVersionFactory(name="v2", base_model=base, adapter=str(tmp_path / "gone"))
    evaluation = ModelEvaluationFactory(candidate=candidate, reference=reference)
    rows, _ = rows_and_outputs()
    result = services.model_evaluation_run(evaluation_id=evaluation.pk, rows=rows)
    assert result.state == ModelEvaluation.State.FAILED
    assert "n'a pas pu être chargé" in result.error_message
    assert not PanelItem.objects.exists()
    # A failed evaluation is not run again by a second delivery.
    assert services.model_evaluation_run(evaluation_id=evaluation.pk, rows=rows) is None


def test_a_finished_training_run_queues_the_evaluation_of_its_candidate(pair):
    from learning.models import TrainingRun

    candidate, reference = pair
    run = TrainingRun.objects.create(state=TrainingRun.State.FINISHED, result_version=candidate)
    evaluation = services.model_evaluation_create_for_training_run(training_run=run, send=False)
    assert (evaluation.candidate, evaluation.reference, evaluation.training_run) == (
        candidate,
        reference,
        run,
    )
    with pytest.raises(services.EvaluationError):
        services.model_evaluation_create_for_training_run(
            training_run=TrainingRun.objects.create(), send=False
        )


def test_a_superuser_starts_an_evaluation_from_the_page(
    pair, client, monkeypatch, django_capture_on_commit_callbacks
):
    from celery import current_app

    candidate, reference = pair
    sent = []
    # What reaches the broker, by name, after commit (the real worker: the tiny-model test).
    task = current_app.tasks[services.EVALUATE_VERSION]
    monkeypatch.setattr(task, "delay_on_commit", lambda *args: sent.append(args))
    client.force_login(TeacherFactory(school=None, is_superuser=True))
    page = client.get(reverse("learning:version_evaluation", args=[candidate.pk]))
    assert "pas encore été évaluée" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("learning:evaluation_start"), {"candidate": candidate.pk})
    evaluation = ModelEvaluation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("learning:evaluation", args=[evaluation.pk])
    assert (evaluation.candidate, evaluation.reference) == (candidate, reference)
    assert sent == [(evaluation.pk,)]
    page = client.get(response["Location"]).content.decode()
    assert "Rechargez la page" in page
    # The active version is not offered as a candidate.
    refused = client.post(reverse("learning:evaluation_start"), {"candidate": reference.pk})
    assert refused.status_code == 400
    assert ModelEvaluation.objects.count() == 1
