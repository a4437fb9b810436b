"""Exports and dataset downloads land in the audit log, with who and what."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_report_export_is_audited(world, login):
    client = login(world.teacher)
    url = reverse("exports:assignment_file", args=[world.assignment.pk, world.term.pk, "csv"])
    assert client.get(url).status_code == 200
    event = AuditEvent.objects.get(event=AuditEvent.Event.EXPORT)
    assert event.actor == world.teacher
    assert event.school_id == world.school.pk
    assert event.detail["fmt"] == "csv"
    assert event.detail["assignment_id"] == world.assignment.pk


def test_dataset_download_is_audited(world, login, tmp_path):
    client = login(world.admin)
    assert client.get(reverse("exports:dataset_file", args=["chat-jsonl"])).status_code == 200
    event = AuditEvent.objects.get(event=AuditEvent.Event.DATASET_DOWNLOAD)
    assert event.actor == world.admin and event.detail["rows"] == 0
    call_command("export_dataset", "--format", "appreciation-csv", "-o", str(tmp_path / "d.csv"))
    assert AuditEvent.objects.filter(event=AuditEvent.Event.DATASET_DOWNLOAD).count() == 2
