"""The training page: superusers only (the same 404 as a missing page for everyone else), the
opted-in schools with their row counts, the form (its refusals in French), the runs' table
polled by HTMX until none is active, cancel."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from exports.builders import DATASET_CSV_COLUMNS
from learning import tasks
from learning.models import TrainingRun
from tests.factories import TeacherFactory, TrainingRunFactory

from .synthetic import synthetic_feedback

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(settings, tmp_path):
    settings.APPRECIATION_TRAINING_DIR = tmp_path / "training"
    settings.APPRECIATION_TRAINING_MIN_ROWS = 20
    return TeacherFactory(school=None, is_staff=True, is_superuser=True)


@pytest.fixture
def sent(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(tasks.train_adapter, "delay_on_commit", calls.append)
    return calls


def test_only_superusers_see_the_page(world, login, client, superuser):
    for user in (world.teacher, world.head, world.admin):
        for name in ("learning:training", "learning:training_runs"):
            assert login(user).get(reverse(name)).status_code == 404
        assert login(user).post(reverse("learning:training_start")).status_code == 404
    page = login(superuser).get(reverse("learning:training"))
    assert page.status_code == 200
    assert "Aucun établissement n'a encore accepté" in page.content.decode()


def test_the_page_lists_the_opted_in_schools_and_the_form(login, superuser):
    kept = synthetic_feedback(teachers=3, students=4)
    synthetic_feedback(teachers=2, students=2, opted_in=False)
    html = login(superuser).get(reverse("learning:training")).content.decode()
    assert f"<td>{kept.school.name}</td><td>12</td>" in html
    assert html.count("<tr><td>") == 1
    for field in ("method", "start_from", "epochs", "max_steps", "learning_rate", "batch_size"):
        assert f'name="{field}"' in html
    assert 'name="original_dataset_file"' in html
    assert (
        reverse("learning:training")
        in login(superuser).get(reverse("admin:learning_trainingrun_changelist")).content.decode()
    )


def test_start_a_run_and_the_refusals(login, superuser, sent):
    client = login(superuser)
    refused = client.post(
        reverse("learning:training_start"), {"method": "sft", "start_from": "base"}
    )
    assert refused.status_code == 200
    assert "Aucun établissement n&#x27;a accepté" in refused.content.decode()
    assert TrainingRun.objects.count() == 0

    synthetic_feedback(teachers=10, students=4)
    response = client.post(
        reverse("learning:training_start"),
        {"method": "sft", "start_from": "base", "max_steps": "5", "learning_rate": "0.001"},
    )
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert (run.method, run.start_from, run.requested_by) == ("sft", "base", superuser)
    assert run.settings["max_steps"] == 5 and run.settings["learning_rate"] == 0.001
    assert sent == [run.pk]


def test_an_uploaded_original_dataset_is_kept_and_used(login, superuser, sent):
    synthetic_feedback(teachers=10, students=4)
    content = io.StringIO()
    writer = csv.writer(content)
    writer.writerow(DATASET_CSV_COLUMNS)
    writer.writerow([1, 0, "Histoire-Géographie", 1, 12, "", "", 7, 6, 8, "Bon début."])
    upload = SimpleUploadedFile("appreciation.csv", content.getvalue().encode("utf-8"))
    response = login(superuser).post(
        reverse("learning:training_start"),
        {"method": "sft", "start_from": "base", "original_dataset_file": upload},
    )
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert run.original_dataset_path.endswith(".csv") and "/uploads/" in run.original_dataset_path
    assert run.data["original_dataset_rows"] == 1

    bad = SimpleUploadedFile("appreciation.xlsx", b"x")
    page = login(superuser).post(
        reverse("learning:training_start"),
        {"method": "sft", "start_from": "base", "original_dataset_file": bad},
    )
    assert "Envoyez un fichier .parquet ou .csv." in page.content.decode()


def test_the_runs_table_polls_until_no_run_is_active_and_cancel(login, superuser):
    run = TrainingRunFactory(
        state=TrainingRun.State.RUNNING,
        progress={"step": 7, "total_steps": 20, "loss": [[5, 2.5]], "eval_loss": [[0, 3.1]]},
        data={"rows": {"train": 80, "validation": 10, "test": 10}},
    )
    client = login(superuser)
    fragment = client.get(reverse("learning:training_runs"), headers={"HX-Request": "true"})
    html = fragment.content.decode()
    assert fragment.status_code == 200 and 'hx-trigger="every 3s"' in html
    assert "7 / 20" in html and "2,5000" in html and "3,1000" in html
    assert "80 / 10 / 10" in html

    cancelled = client.post(
        reverse("learning:training_cancel", args=[run.pk]), headers={"HX-Request": "true"}
    )
    assert cancelled.status_code == 200
    run.refresh_from_db()
    assert run.state == TrainingRun.State.CANCELLING
    TrainingRun.objects.filter(pk=run.pk).update(state=TrainingRun.State.CANCELLED)
    done = client.get(reverse("learning:training_runs"), headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx stops polling
    assert client.post(reverse("learning:training_cancel", args=[999_999])).status_code == 404
