"""Reads for the training page (superusers)."""

from __future__ import annotations

from .models import TrainingRun
from .training_data import school_row_counts

RECENT_RUNS = 20
ACTIVE_STATES = (TrainingRun.State.QUEUED, TrainingRun.State.RUNNING, TrainingRun.State.CANCELLING)


def training_runs_recent(*, limit: int = RECENT_RUNS) -> list[TrainingRun]:
    return list(
        TrainingRun.objects.select_related("parent_version", "result_version", "requested_by")[
            :limit
        ]
    )


def training_runs_any_active(runs: list[TrainingRun]) -> bool:
    return any(run.state in ACTIVE_STATES for run in runs)


def opted_in_schools_with_rows() -> list[tuple[object, int]]:
    """Each school whose feedback may train shared models, with its number of rows."""
    return school_row_counts()
