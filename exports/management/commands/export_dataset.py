"""Export the teachers' corrections as a dataset for the next training run.

    python manage.py export_dataset --format chat-jsonl -o feedback.jsonl
    python manage.py export_dataset --format preference-jsonl --since 2027-01-01 --school 3
    python manage.py export_dataset --format appreciation-parquet -o rows.parquet
    python manage.py export_dataset --format appreciation-csv > rows.csv

No names and no identifiers; rows whose final text quotes a grade are left out. The Parquet
file is the training set in the `eltorio/appreciation` shape; the CSV is for reading it in a
spreadsheet (a text that would run as a formula there keeps a guard `'`). The command
says how many rows it wrote and why it left the others out (on stderr when the data goes to
stdout).
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.models import AuditEvent
from audit.services import audit_record
from classes.models import School
from exports import builders, dataset


def parse_since(value: str) -> datetime:
    """A date (midnight, local time) or an ISO datetime (naive = local time)."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(value)
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = "Export the feedback dataset (chat JSONL, preference JSONL, eltorio Parquet or CSV)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=builders.DATASET_FORMATS)
        parser.add_argument(
            "--since", help="Only validations from this date (YYYY-MM-DD) or ISO datetime on."
        )
        parser.add_argument("--school", type=int, help="Only this school's feedback (its id).")
        parser.add_argument(
            "-o", "--output", type=Path, help="File to write (default: standard output)."
        )

    def handle(self, *args, **options) -> None:
        fmt: str = options["format"]
        since = None
        if options["since"]:
            try:
                since = parse_since(options["since"])
            except ValueError:
                raise CommandError(
                    f"--since {options['since']!r}: expected YYYY-MM-DD or an ISO datetime."
                ) from None
        if fmt in builders.BINARY_DATASET_FORMATS and options["output"] is None:
            raise CommandError(f"--format {fmt} writes a binary file: give it with -o/--output.")
        school_id = options["school"]
        if school_id is not None and not School.objects.filter(pk=school_id).exists():
            raise CommandError(f"No school with id {school_id}.")
        selection = dataset.dataset_selection(fmt=fmt, school_id=school_id, since=since)
        content = builders.DATASET_BUILDERS[fmt](selection.rows)
        output: Path | None = options["output"]
        if output is None:
            self.stdout.ending = ""
            self.stdout.write(content.decode("utf-8"))
            report = self.stderr
        else:
            output.write_bytes(content)
            report = self.stdout
        audit_record(
            event=AuditEvent.Event.DATASET_DOWNLOAD,
            school=school_id,
            actor_username="manage.py export_dataset",
            fmt=fmt,
            since=since.isoformat() if since else None,
            rows=len(selection.rows),
            left_out=selection.left_out_count,
            source="export_dataset command",
        )
        where = str(output) if output else "standard output"
        scope = f"school {school_id}" if school_id is not None else "all schools"
        report.write(
            f"Wrote {len(selection.rows)} row(s) ({fmt}, {scope}"
            + (f", since {since.isoformat()}" if since else "")
            + f") to {where}."
        )
        if selection.left_out_count:
            report.write(f"Left out {selection.left_out_count} row(s):")
            for label, count in selection.left_out_labels(english=True):
                report.write(f"  {count}: {label}")
        else:
            report.write("Left out no row.")
