"""Benchmark: exporting one class of 1,000 students in every report-card format.

Each format is timed end to end as a download does it (the selector that reads the class,
then the builder that writes the file), against the CSV export as the baseline, in the same
run and on the same data: a throwaway in-memory SQLite database, one class of --students
students, each with a validated appréciation (about 200 characters, with a `;`) and a term
average.

    python bench/exports.py                    # 1,000 students, best of 3
    python bench/exports.py --students 35      # one real class
    python bench/exports.py --repeat 5 --out bench/results/exports.json

It is a benchmark, not a test: see bench/README.md for figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "appreciation_site.settings.test"
# A database of its own, never the developer's: in memory, gone when the run ends.
os.environ["DATABASE_URL"] = "sqlite://:memory:"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from classes.models import (  # noqa: E402
    Level,
    School,
    SchoolClass,
    SchoolYear,
    Student,
    Subject,
    Teacher,
    TeachingAssignment,
    Term,
    TermAssessment,
)
from exports import builders  # noqa: E402
from exports.selectors import assignment_export  # noqa: E402
from generation.models import Appreciation  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "exports.json"
BASELINE = "csv"
TEXT = (
    "Un trimestre sérieux et régulier ; la participation orale progresse nettement et les"
    " travaux écrits sont soignés. Il faut maintenant approfondir l'analyse des documents et"
    " continuer à s'investir en classe."
)


def build_class(students: int) -> tuple[TeachingAssignment, Term]:
    school = School.objects.create(name="Lycée du banc d'essai", appreciation_max_chars=255)
    year = SchoolYear.objects.create(
        school=school, name="2026-2027", start_date=date(2026, 9, 1), end_date=date(2027, 7, 4)
    )
    term = Term.objects.create(
        school_year=year, number=2, start_date=date(2026, 12, 1), end_date=date(2027, 2, 28)
    )
    level, _ = Level.objects.get_or_create(code="2nde", defaults={"name": "Seconde", "order": 1})
    school_class = SchoolClass.objects.create(
        school=school, school_year=year, level=level, name="2nde 1"
    )
    subject, _ = Subject.objects.get_or_create(school=None, name="Histoire-Géographie")
    teacher = Teacher.objects.create(username="bench", school=school)
    assignment = TeachingAssignment.objects.create(
        teacher=teacher, school_class=school_class, subject=subject
    )
    Student.objects.bulk_create(
        Student(
            school_class=school_class,
            last_name=f"Nom{index:04d}",
            first_name="Camille",
            external_id=f"{index:09d}AB",
            gepi_login=f"nom{index:04d}.camille",
        )
        for index in range(students)
    )
    created = list(school_class.students.all())
    TermAssessment.objects.bulk_create(
        TermAssessment(
            student=student,
            subject=subject,
            term=term,
            average=Decimal("12.50"),
            behaviour=Decimal("7"),
            participation=Decimal("6"),
            work=Decimal("8"),
        )
        for student in created
    )
    Appreciation.objects.bulk_create(
        Appreciation(
            student=student,
            subject=subject,
            term=term,
            status=Appreciation.Status.VALIDATED,
            text=TEXT,
        )
        for student in created
    )
    return assignment, term


def export_once(fmt: str, assignment: TeachingAssignment, term: Term) -> int:
    """One download's work: read the class, write the file. Returns the file's size."""
    export = assignment_export(assignment=assignment, term=term)
    heading = export.heading()
    if fmt == "csv":
        content = builders.report_csv(heading=heading, lines=export.lines())
    elif fmt == "gepi":
        content = builders.report_gepi(lines=export.lines(gepi=True))
    elif fmt == "xlsx":
        content = builders.report_xlsx(
            heading=heading, lines=export.lines(), missing=export.missing_lines()
        )
    elif fmt == "pdf":
        content = builders.report_pdf(
            heading=heading,
            lines=export.lines(),
            missing=export.missing_lines(),
            generated_on=date(2027, 2, 20),
        )
    elif fmt == "copy":
        content = "".join(block.all_text for block in export.copy_blocks()).encode("utf-8")
    else:
        raise ValueError(fmt)
    return len(content)


def time_format(fmt: str, assignment, term, repeat: int) -> dict:
    seconds = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        size = export_once(fmt, assignment, term)
        seconds.append(time.perf_counter() - started)
    return {
        "best_s": round(min(seconds), 4),
        "median_s": round(statistics.median(seconds), 4),
        "runs_s": [round(s, 4) for s in seconds],
        "bytes": size,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--formats", nargs="+", default=["csv", "gepi", "xlsx", "pdf", "copy"], metavar="FMT"
    )
    args = parser.parse_args(argv)
    if BASELINE not in args.formats:
        args.formats.insert(0, BASELINE)

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    assignment, term = build_class(args.students)
    setup_s = time.perf_counter() - started
    # Warm-up: imports (openpyxl, WeasyPrint, fonts) are paid once per process, not per export.
    for fmt in args.formats:
        export_once(fmt, assignment, term)

    results = {fmt: time_format(fmt, assignment, term, args.repeat) for fmt in args.formats}
    baseline = results[BASELINE]["best_s"]
    for item in results.values():
        item["ratio_to_csv"] = round(item["best_s"] / baseline, 2) if baseline else None
        item["students_per_second"] = round(args.students / item["best_s"], 1)

    report = {
        "benchmark": "exports",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "students": args.students,
        "repeat": args.repeat,
        "baseline": BASELINE,
        "database": connection.vendor + " (in memory)",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "setup_s": round(setup_s, 2),
        "formats": results,
    }
    print(f"Export of one class of {args.students} students, best of {args.repeat}:")
    print(f"{'format':<8}{'best (s)':>10}{'median (s)':>12}{'size (KB)':>11}{'vs CSV':>8}")
    for fmt, item in results.items():
        print(
            f"{fmt:<8}{item['best_s']:>10.3f}{item['median_s']:>12.3f}"
            f"{item['bytes'] / 1024:>11.1f}{item['ratio_to_csv']:>7.1f}x"
        )
    print("Ratio: " + ", ".join(f"{fmt} {item['ratio_to_csv']}x" for fmt, item in results.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"Written to {args.out}")
    return report


if __name__ == "__main__":
    main()
