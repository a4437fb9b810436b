"""Training runs on the tiny model, for real: a few hundred synthetic validations in an
opted-in school train a LoRA whose validation loss goes down; the candidate version loads in
the real transformers backend and drafts; cancel, pause for waiting drafts, resume after a
worker restart (the step counter goes on), DPO, the refusals, the task and the command."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.utils import timezone

from generation.adapter_files import adapter_weights_sha256
from generation.backends import GenerationRequest, get_backend
from generation.models import GenerationJob, ModelVersion
from generation.prompts import PromptInputs, build_messages
from learning import tasks
from learning.models import TrainingRun
from learning.services import training
from learning.services.training import (
    TrainingRefused,
    training_run_cancel,
    training_run_create,
    training_run_execute,
    training_runs_recover,
)
from tests.factories import (
    GenerationJobFactory,
    TeacherFactory,
    TeachingAssignmentFactory,
    TermFactory,
    TrainingRunFactory,
)
from worker.testing import LORA_TARGET_MODULES

from .synthetic import synthetic_feedback

pytestmark = pytest.mark.django_db

FAST = {
    "max_steps": 24,
    "learning_rate": 1e-2,
    "batch_size": 8,
    "eval_steps": 8,
    "save_steps": 8,
    "logging_steps": 4,
}


@pytest.fixture
def training_settings(tiny_model_settings, tmp_path):
    settings = tiny_model_settings
    settings.APPRECIATION_MODELS_DIR = tmp_path / "models"
    settings.APPRECIATION_TRAINING_DIR = tmp_path / "training"
    settings.APPRECIATION_TRAINING_MIN_ROWS = 20
    settings.APPRECIATION_TRAINING_MAX_PAUSE_SECONDS = 3600
    return settings


@pytest.fixture
def superuser():
    return TeacherFactory(school=None, is_staff=True, is_superuser=True)


@pytest.fixture
def sent(monkeypatch):
    """The runs sent to the GPU queue (the real task object, its send intercepted)."""
    calls: list[int] = []
    monkeypatch.setattr(tasks.train_adapter, "delay_on_commit", calls.append)
    return calls


def active_version(tiny_model_dirs) -> ModelVersion:
    base, adapter = tiny_model_dirs
    return ModelVersion.objects.create(
        name="v1",
        base_model=str(base),
        adapter=str(adapter),
        state=ModelVersion.State.ACTIVE,
        is_test_model=True,
    )


def test_a_run_learns_and_its_candidate_drafts_in_the_real_backend(
    training_settings, superuser, tiny_model_dirs
):
    from worker.backends.transformers import TransformersBackend

    synthetic_feedback(teachers=12, students=20)
    active = active_version(tiny_model_dirs)
    run = training_run_create(
        user=superuser, method="sft", start_from="active", settings=FAST, enqueue=False
    )
    assert run.state == TrainingRun.State.QUEUED and run.parent_version == active
    assert sum(run.data["rows"].values()) == 240 and run.data["rows"]["validation"] > 0

    # The worker's drafting model, loaded by an earlier job.
    drafting = get_backend(base_model=active.base_model, adapter=active.adapter, test_model=True)
    drafting.load()

    run = training_run_execute(run_id=run.pk, hostname="gpu-test")

    assert run.state == TrainingRun.State.FINISHED, run.error_message
    # Released before the training loaded its own model (one model on the GPU at a time).
    assert (
        drafting.model is None
        and get_backend(base_model=active.base_model, adapter=active.adapter, test_model=True)
        is not drafting
    )
    progress = run.progress
    assert progress["step"] == progress["total_steps"] == 24
    evals = progress["eval_loss"]
    assert [step for step, _ in evals] == [0, 8, 16, 24]
    # The validation loss (students and teachers never trained on) goes clearly down.
    assert evals[-1][1] < evals[0][1] - 0.25
    assert all(later < earlier for (_, earlier), (_, later) in zip(evals, evals[1:], strict=False))
    assert [step for step, _ in progress["loss"]] == [4, 8, 12, 16, 20, 24]

    version = run.result_version
    assert version.name == "v2" and version.state == ModelVersion.State.CANDIDATE
    assert version.parent == active and version.base_model == active.base_model
    folder = Path(version.adapter)
    assert folder.parent == training_settings.APPRECIATION_MODELS_DIR and folder.name == "v2"
    assert version.adapter_sha256 == adapter_weights_sha256(str(folder))
    assert version.adapter_sha256 != adapter_weights_sha256(active.adapter)
    assert version.training_data["sha256"] == run.data["sha256"]
    assert version.training_data["rows"] == run.data["rows"]
    assert version.training_settings["learning_rate"] == 1e-2
    assert version.training_settings["start_from"] == "active"
    assert version.is_test_model
    # The run's data files, kept for a resume, are the snapshot's rows.
    snapshot = json.loads((Path(run.output_dir) / "data" / "snapshot.json").read_text())
    assert snapshot["sha256"] == run.data["sha256"]
    assert (Path(run.output_dir) / "data" / "test.jsonl").is_file()
    assert not (Path(run.output_dir) / "checkpoints").exists()  # removed once done

    backend = TransformersBackend(
        base_model=version.base_model, adapter=version.adapter, device="cpu", max_new_tokens=6
    )
    requests = [
        GenerationRequest(
            key=str(trimester),
            messages=build_messages(
                PromptInputs("Histoire-Géographie", trimester, (12, 13, 14), 6, 7, 8)
            ),
        )
        for trimester in (1, 2, 3)
    ]
    results = backend.generate(requests, seed=5)
    assert [result.key for result in results] == ["1", "2", "3"]
    assert all(result.new_tokens > 0 and result.prompt_tokens > 0 for result in results)
    assert backend.model_info()["adapter"] == str(folder)


def test_a_run_pauses_for_waiting_drafts_and_resumes_after_a_restart(
    training_settings, superuser, sent
):
    training_settings.APPRECIATION_TRAINING_MAX_PAUSE_SECONDS = 0
    synthetic_feedback(teachers=10, students=6)
    run = training_run_create(
        user=superuser,
        start_from="base",
        settings={**FAST, "max_steps": 6, "batch_size": 4, "logging_steps": 1, "eval_steps": 3},
        enqueue=False,
    )
    assert run.parent_version is None
    waiting = GenerationJobFactory(
        assignment=GenerationJob.objects.first().assignment,
        term=GenerationJob.objects.first().term,
        status=GenerationJob.Status.QUEUED,
    )

    run = training_run_execute(run_id=run.pk, hostname="gpu-1")

    # A teacher's class waits: one step, a checkpoint, and the run goes back in the queue.
    assert run.state == TrainingRun.State.RUNNING
    assert run.progress["step"] == 1 and run.progress["pauses"] == 1
    assert (Path(run.output_dir) / "checkpoints" / "checkpoint-1").is_dir()
    assert sent == [run.pk] and run.claimed_by == ""

    # The drafts are done; the worker picks the run up, then dies mid-run (RUNNING, claimed).
    waiting.status = GenerationJob.Status.SUCCEEDED
    waiting.save()
    TrainingRun.objects.filter(pk=run.pk).update(claimed_by="gpu-1", claimed_at=timezone.now())
    assert training_runs_recover(hostname="gpu-2") == []
    assert training_runs_recover(hostname="gpu-1") == [run.pk]
    assert sent == [run.pk, run.pk]
    run.refresh_from_db()
    assert run.progress["restarts"] == 1 and run.claimed_by == ""

    run = training_run_execute(run_id=run.pk, hostname="gpu-1")

    assert run.state == TrainingRun.State.FINISHED, run.error_message
    assert run.progress["resumed_from"] == [0, 1]
    # The step counter went on from the checkpoint, not from 0.
    assert [step for step, _ in run.progress["loss"]] == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in run.progress["eval_loss"]] == [0, 3, 6]
    config = json.loads((Path(run.result_version.adapter) / "adapter_config.json").read_text())
    # From the base: a fresh LoRA shaped like the original adapter.
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (16, 16, 0.0)
    assert sorted(config["target_modules"]) == sorted(LORA_TARGET_MODULES)
    assert run.result_version.parent is None
    assert run.result_version.training_settings["start_from"] == "base"


def test_the_pause_waits_for_the_setting_and_for_waiting_drafts(training_settings):
    import time

    run = TrainingRunFactory(state=TrainingRun.State.RUNNING)
    control = training._RunControl(run_id=run.pk, started=time.monotonic(), progress={})
    training_settings.APPRECIATION_TRAINING_MAX_PAUSE_SECONDS = 0
    assert control.should_pause() is False  # nothing waits
    job = GenerationJobFactory(
        assignment=TeachingAssignmentFactory(),
        term=TermFactory(),
        status=GenerationJob.Status.QUEUED,
    )
    assert control.should_pause() is True
    training_settings.APPRECIATION_TRAINING_MAX_PAUSE_SECONDS = 10**6
    assert control.should_pause() is False  # not held long enough yet
    job.status = GenerationJob.Status.CANCELLED
    job.save()
    training_settings.APPRECIATION_TRAINING_SEGMENT_SECONDS = 0
    assert control.should_pause() is True  # the segment's end: hand the worker back anyway


def test_cancel(training_settings, superuser):
    synthetic_feedback(teachers=10, students=4)
    queued = training_run_create(user=superuser, settings=FAST, enqueue=False)
    assert training_run_cancel(user=superuser, run_id=queued.pk).state == "cancelled"
    assert training_run_execute(run_id=queued.pk, hostname="gpu").state == "cancelled"
    assert not (Path(queued.output_dir) / "checkpoints").exists()

    run = training_run_create(user=superuser, settings=FAST, enqueue=False)

    def cancel_when_started(report):
        # The superuser presses « Annuler » while the run evaluates its starting point.
        if report["step"] == 0:
            assert training_run_cancel(user=superuser, run_id=run.pk).state == "cancelling"

    run = training_run_execute(run_id=run.pk, hostname="gpu", on_progress=cancel_when_started)
    assert run.state == TrainingRun.State.CANCELLED and run.finished_at is not None
    assert run.result_version is None and run.progress["step"] == 1
    assert ModelVersion.objects.count() == 0
    with pytest.raises(PermissionDenied):
        training_run_cancel(user=TeacherFactory(), run_id=run.pk)


def test_dpo_from_the_active_version_through_the_task(
    training_settings, superuser, tiny_model_dirs
):
    synthetic_feedback(teachers=10, students=4)
    active = active_version(tiny_model_dirs)
    run = training_run_create(
        user=superuser,
        method="dpo",
        settings={**FAST, "max_steps": 3, "batch_size": 4, "eval_steps": 3, "logging_steps": 1},
        enqueue=False,
    )
    assert run.start_from == "active" and run.parent_version == active
    assert run.data["method"] == "dpo" and run.data["rows"]["train"] > 0

    tasks.train_adapter.apply(args=[run.pk])

    run.refresh_from_db()
    assert run.state == TrainingRun.State.FINISHED, run.error_message
    assert run.progress["step"] == 3 and run.progress["eval_loss"][0][0] == 0
    assert run.result_version.training_settings["method"] == "dpo"
    assert run.result_version.parent == active


def test_the_training_task_goes_to_the_gpu_queue():
    from celery import current_app

    route = current_app.amqp.router.route({}, "learning.tasks.train_adapter")
    assert route["queue"].name == "gpu"


def test_refusals(training_settings, superuser, tmp_path):
    with pytest.raises(PermissionDenied):
        training_run_create(user=TeacherFactory(), enqueue=False)
    synthetic_feedback(teachers=10, students=4, opted_in=False)
    with pytest.raises(TrainingRefused, match="Aucun établissement n'a accepté"):
        training_run_create(user=superuser, enqueue=False)
    synthetic_feedback(teachers=3, students=4)
    with pytest.raises(TrainingRefused, match="Trop peu de lignes"):
        training_run_create(user=superuser, enqueue=False)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"nope")
    with pytest.raises(TrainingRefused, match="n'a pas pu être lu"):
        training_run_create(user=superuser, original_dataset_path=str(bad), enqueue=False)
    with pytest.raises(TrainingRefused, match="learning_rate"):
        training_run_create(user=superuser, settings={"learning_rate": "vite"}, enqueue=False)
    assert TrainingRun.objects.count() == 0


def test_the_command_trains_and_names_the_candidate(training_settings, superuser):
    synthetic_feedback(teachers=10, students=4)
    out = io.StringIO()
    call_command(
        "train_adapter",
        "--start-from",
        "base",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        stdout=out,
    )
    text = out.getvalue()
    assert "Training run" in text and "40 rows" not in text
    assert "step 0/2: validation loss" in text
    assert "Candidate version v1 written to" in text
    assert ModelVersion.objects.get().state == ModelVersion.State.CANDIDATE


def test_a_run_that_keeps_killing_its_worker_fails_instead_of_looping(training_settings, sent):
    training_settings.APPRECIATION_TRAINING_MAX_RESTARTS = 2
    run = TrainingRunFactory(
        state=TrainingRun.State.RUNNING, claimed_by="gpu-1", claimed_at=timezone.now()
    )
    assert training_runs_recover(hostname="gpu-1") == [run.pk]
    TrainingRun.objects.filter(pk=run.pk).update(claimed_by="gpu-1")
    assert training_runs_recover(hostname="gpu-1") == [run.pk]
    TrainingRun.objects.filter(pk=run.pk).update(claimed_by="gpu-1")
    assert training_runs_recover(hostname="gpu-1") == []
    run.refresh_from_db()
    assert run.state == TrainingRun.State.FAILED and run.progress["restarts"] == 3
    assert "réduisez la taille des lots" in run.error_message
    assert sent == [run.pk, run.pk]
    # A redelivered task finds it failed and does nothing.
    assert training_run_execute(run_id=run.pk, hostname="gpu-1").state == "failed"
