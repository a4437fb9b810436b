"""Remove a finished school year's students and grades; keep the pseudonymous feedback.

    python manage.py purge_year --school 3 --year 2025-2026 --dry-run
    python manage.py purge_year --school 3 --year 2025-2026
    python manage.py purge_year --school 3 --year 2025-2026 --force   # year or terms still open

Deletes the year's classes with their assignments, generation jobs, students, term assessments,
drafts and appréciations; keeps the year, its terms and the feedback rows (links to the
students cut, names replaced by "[élève]"). Prints what it removed, or would remove.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from classes.models import School, SchoolYear
from privacy.student_data import PurgeRefused, year_purge

REMOVED = {
    "classes": "classes",
    "assignments": "teaching assignments",
    "generation_jobs": "generation jobs",
    "students": "students",
    "assessments": "term assessments (grades)",
    "appreciations": "appreciations",
    "drafts": "drafts",
}
KEPT = {
    "feedback_unlinked": "feedback rows, unlinked from their student",
    "feedback_scrubbed": "of which with a student's name replaced by [élève]",
}


class Command(BaseCommand):
    help = "Purge a finished school year: its students and grades (feedback kept, pseudonymous)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--school", type=int, required=True, help="The school's id.")
        parser.add_argument("--year", required=True, help="The school year's name (2025-2026).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would be removed; change nothing."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Purge even if the year has not ended or a term is not closed.",
        )

    def handle(self, *args, **options) -> None:
        school = School.objects.filter(pk=options["school"]).first()
        if school is None:
            raise CommandError(f"No school with id {options['school']}.")
        school_year = SchoolYear.objects.filter(school=school, name=options["year"]).first()
        if school_year is None:
            names = ", ".join(school.years.values_list("name", flat=True)) or "none"
            raise CommandError(
                f"L'établissement {school.pk} n'a pas d'année « {options['year']} ». / "
                f"School {school.pk} has no year {options['year']!r} (its years: {names})."
            )
        try:
            report = year_purge(
                school_year=school_year, dry_run=options["dry_run"], force=options["force"]
            )
        except PurgeRefused as refusal:
            raise CommandError(str(refusal)) from None
        counts = report.counts()
        where = f"school {school.pk} ({school.name}), year {report.school_year}"
        if report.dry_run:
            self.stdout.write(f"Dry run, nothing changed. Would remove from {where}:")
        else:
            self.stdout.write(f"Removed from {where}:")
        for key, label in REMOVED.items():
            self.stdout.write(f"  {label}: {counts[key]}")
        self.stdout.write("Would keep:" if report.dry_run else "Kept:")
        for key, label in KEPT.items():
            self.stdout.write(f"  {label}: {counts[key]}")
        self.stdout.write("  the school year and its terms (no personal data in them)")
