"""The whole learning loop on a real Celery worker and the tiny model (CPU), as a school's IT
person runs it: validations of an opted-in school train a candidate (its validation loss goes
down), the candidate is evaluated against the version in service on the run's own test split,
promoted, and the next class is drafted by it (each draft names it); rolled back, the next
class is drafted by the previous version again; a panel member's blind judgement counts in the
pair's results; the quality dashboard's figures come from the validations this test makes."""

from __future__ import annotations

import pytest

from generation import services
from generation.models import Appreciation, ModelVersion
from generation.services.versions import (
    model_version_ensure_active,
    model_version_promote,
    model_version_roll_back,
)
from learning.dashboard import DashboardFilters, quality_dashboard
from learning.models import ModelEvaluation, PanelItem, PanelJudgement, TrainingRun
from learning.panel import panel_judgement_record, panel_results
from learning.services.training import training_run_create
from tests.conftest import wait_for
from tests.factories import TeacherFactory, TermAssessmentFactory

from .synthetic import synthetic_feedback

pytestmark = [pytest.mark.worker, pytest.mark.model]

RUN_SETTINGS = {
    "max_steps": 8,
    "learning_rate": 1e-2,
    "batch_size": 8,
    "eval_steps": 4,
    "save_steps": 4,
    "logging_steps": 2,
}


def _class_drafted(world) -> list:
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    wait_for(lambda: _refreshed(job).status in ("succeeded", "failed"), timeout=180)
    assert job.status == "succeeded", job.error_detail
    return list(job.drafts.all())


def _refreshed(instance):
    instance.refresh_from_db()
    return instance


def test_edits_become_a_promoted_version_that_drafts_and_rolls_back(
    world, celery_worker, tiny_model_settings, tmp_path
):
    settings = tiny_model_settings
    settings.APPRECIATION_MODELS_DIR = tmp_path / "models"
    settings.APPRECIATION_TRAINING_DIR = tmp_path / "training"
    settings.APPRECIATION_TRAINING_MIN_ROWS = 20
    settings.APPRECIATION_TRAINING_MAX_PAUSE_SECONDS = 3600
    superuser = TeacherFactory(school=None, is_staff=True, is_superuser=True)
    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    v1 = model_version_ensure_active()
    synthetic_feedback(teachers=8, students=10)

    # 1. Training, on the worker's GPU queue.
    run = training_run_create(
        user=superuser, method="sft", start_from="active", settings=RUN_SETTINGS
    )
    wait_for(lambda: _refreshed(run).state in ("finished", "failed", "cancelled"), timeout=300)
    assert run.state == TrainingRun.State.FINISHED, run.error_message
    evals = run.progress["eval_loss"]
    assert evals[0][0] == 0 and evals[-1][0] == 8
    assert evals[-1][1] < evals[0][1]
    candidate = run.result_version
    assert candidate.state == ModelVersion.State.CANDIDATE and candidate.parent == v1
    assert candidate.adapter_sha256 and candidate.adapter_sha256 != v1.adapter_sha256

    # 2. Its evaluation, queued by the run and done by the same worker, on the run's test split.
    evaluation = ModelEvaluation.objects.get(training_run=run)
    wait_for(lambda: _refreshed(evaluation).state in ("finished", "failed"), timeout=300)
    assert evaluation.state == ModelEvaluation.State.FINISHED, evaluation.error_message
    assert evaluation.candidate == candidate and evaluation.reference == v1
    assert evaluation.metrics["rows"] == run.data["rows"]["test"] > 0
    for role in ("candidate", "reference"):
        assert evaluation.metrics[role]["loss"] > 0
    assert isinstance(evaluation.gate["passed"], bool)
    assert _refreshed(candidate).evaluation["evaluation_id"] == evaluation.pk

    # 3. Promoted: the next class is drafted by the candidate, through the real backend.
    model_version_promote(version=candidate, user=superuser)
    drafts = _class_drafted(world)
    assert {draft.model_version_id for draft in drafts} == {candidate.pk}
    assert {draft.model_adapter for draft in drafts} == {candidate.adapter}

    # The teacher validates one draft as is and rewrites another: feedback per version.
    appreciations = list(Appreciation.objects.filter(student__school_class=world.school_class))
    kept, rewritten = appreciations[0], appreciations[1]
    for appreciation, text in ((kept, kept.text), (rewritten, "Un trimestre sérieux.")):
        services.draft_validate(
            assignment=world.assignment,
            term=world.term,
            student=appreciation.student,
            user=world.teacher,
            text=text,
            version=appreciation.version,
            seconds_spent=30 if appreciation is kept else 90,
            confirmed=True,
        )

    # 4. Rolled back: the next class is drafted by the previous version again.
    assert model_version_roll_back(user=superuser) == v1
    drafts = _class_drafted(world)
    assert {draft.model_version_id for draft in drafts} == {v1.pk}

    # 5. The panel: a member's blind choice counts for the pair (candidate against v1).
    item = PanelItem.objects.filter(evaluation=evaluation).first()
    assert item is not None and item.version_a == candidate and item.version_b == v1
    judge = TeacherFactory(school=world.school, on_panel=True)
    judgement = panel_judgement_record(user=judge, item=item, shown_choice="equal", reason="")
    assert judgement.verdict == PanelJudgement.Verdict.EQUAL
    (pair,) = [r for r in panel_results() if {r.version_a, r.version_b} == {candidate, v1}]
    assert (pair.wins, pair.ties, pair.losses) == (0, 1, 0)

    # 6. The dashboard: the two validations above, under the candidate, checked by hand.
    dashboard = quality_dashboard(
        user=world.admin, filters=DashboardFilters(version=str(candidate.pk))
    )
    stats = dashboard.total
    assert stats.validations == 2
    assert stats.unchanged == 1
    assert stats.median_seconds == 60  # (30 + 90) / 2
    (row,) = dashboard.by_version
    assert row.version == candidate and row.stats.validations == 2
