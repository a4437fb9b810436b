"""The Celery settings the fault handling relies on, read from the production settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

READ = """
import json
from django.conf import settings
import django
django.setup()
print(json.dumps({
    "broker": settings.CELERY_BROKER_URL,
    "visibility_timeout": settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"],
    "time_limit": settings.CELERY_TASK_TIME_LIMIT,
    "soft_time_limit": settings.CELERY_TASK_SOFT_TIME_LIMIT,
    "acks_late": settings.CELERY_TASK_ACKS_LATE,
    "reject_on_worker_lost": settings.CELERY_TASK_REJECT_ON_WORKER_LOST,
    "prefetch": settings.CELERY_WORKER_PREFETCH_MULTIPLIER,
    "routes": settings.CELERY_TASK_ROUTES,
    "lease": settings.APPRECIATION_LEASE_SECONDS,
    "stall": settings.APPRECIATION_STALL_SECONDS,
    "beat": {
        name: {"task": entry["task"], "schedule": float(entry["schedule"])}
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
    },
}))
"""


def production_settings(**extra) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "appreciation_site.settings.production",
        "DJANGO_SECRET_KEY": "x" * 60,
        "DJANGO_ALLOWED_HOSTS": "example.org",
        "REDIS_URL": "redis://redis:6379/0",
        **extra,
    }
    result = subprocess.run(
        [sys.executable, "-c", READ], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_redis_visibility_timeout_exceeds_the_task_time_limit():
    values = production_settings()
    assert values["broker"] == "redis://redis:6379/0"
    # A task running longer than the visibility timeout would be delivered a second time.
    assert values["visibility_timeout"] > values["time_limit"] > values["soft_time_limit"]
    changed = production_settings(CELERY_TASK_TIME_LIMIT="7200")
    assert changed["visibility_timeout"] > 7200


def test_late_acknowledgement_and_one_task_at_a_time():
    values = production_settings()
    assert values["acks_late"] and values["reject_on_worker_lost"]
    assert values["prefetch"] == 1
    assert values["routes"]["generation.tasks.generate_*"]["queue"] == "gpu"


def test_a_claim_expires_before_a_job_is_declared_stalled():
    values = production_settings()
    assert values["lease"] < values["stall"]


def test_the_periodic_recovery_runs_every_minute_at_most():
    values = production_settings()
    (entry,) = [e for e in values["beat"].values() if e["task"].endswith("recover_stalled_jobs")]
    assert 0 < entry["schedule"] <= 60
    # Short leases, renewed by live workers: a dead worker's drafts wait minutes, not an hour.
    assert values["lease"] <= 5 * 60 and values["stall"] <= 10 * 60


def test_compose_runs_one_beat():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    beats = [
        name
        for name, service in compose["services"].items()
        if "beat" in service.get("command", [])
    ]
    assert beats == ["beat"]
    assert "-B" not in " ".join(compose["services"]["worker"]["command"])


def test_compose_gpu_worker_is_solo_on_the_gpu_queue():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["gpu-worker"]["command"]
    assert command[command.index("-Q") + 1] == "gpu"
    assert command[command.index("--pool") + 1] == "solo"
    assert command[command.index("--prefetch-multiplier") + 1] == "1"
    devices = compose["services"]["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    redis = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in redis  # the broker keeps queued tasks across a restart
    for name in ("postgres", "redis", "web", "worker", "beat", "gpu-worker"):
        assert "healthcheck" in compose["services"][name], name
