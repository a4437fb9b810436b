"""Benchmark: the SIECLE and STS-web imports of a whole school (2,000 students by default).

A generated `ElevesSansAdresses.xml` (--students students in divisions of 35, 2nde/1ère/Tle)
and the school's `sts_emp_<UAI>_<année>.xml` (--teachers teachers, seven subjects a division),
written with the official element names (tests/siecle_files.py). Timed as the admin page does
it: parse + preview (the plan, nothing written), then apply (parse the signed payload again,
re-plan under locks, write in one transaction). Three imports of each file:

- first: an empty school year;
- re-run: the same file again (nothing to change);
- mid-year: 2 % new students, 2 % gone, 2 % moved to another division.

On a throwaway in-memory SQLite database, never the developer's.

    python bench/siecle_import.py                    # 2,000 students, 120 teachers
    python bench/siecle_import.py --students 500 --out /tmp/siecle.json

It is a benchmark, not a test: see bench/README.md for figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "appreciation_site.settings.test"
os.environ["DATABASE_URL"] = "sqlite://:memory:"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from classes.models import School, SchoolYear, Student, TeachingAssignment  # noqa: E402
from classes.siecle import parse_directory_file  # noqa: E402
from classes.siecle_services import directory_apply, directory_preview  # noqa: E402
from tests.siecle_files import UAI, Eleve, generated_school, siecle_xml, sts_xml  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "siecle_import.json"


def timed(school: School, content: bytes) -> dict:
    started = time.perf_counter()
    parsed = parse_directory_file(content)
    parsed_s = time.perf_counter() - started
    plan = directory_preview(school=school, parsed=parsed)
    preview_s = time.perf_counter() - started
    assert plan.is_valid, plan.errors
    data = parsed.to_data()
    started = time.perf_counter()
    result = directory_apply(school=school, plan_data=data)
    apply_s = time.perf_counter() - started
    return {
        "bytes": len(content),
        "parse_s": round(parsed_s, 3),
        "preview_s": round(preview_s, 3),
        "apply_s": round(apply_s, 3),
        "counts": {k: v for k, v in result.counts.items() if v},
    }


def mid_year(eleves: list[Eleve]) -> list[Eleve]:
    step = 50  # 2 %
    changed = [e for index, e in enumerate(eleves) if index % step != 1]  # 2 % gone
    divisions = sorted({e.division for e in eleves})
    for index, eleve in enumerate(changed):
        if index % step == 0:  # 2 % moved
            eleve.division = divisions[(divisions.index(eleve.division) + 3) % len(divisions)]
    first_new = 900_000
    for number in range(len(eleves) // step):  # 2 % new
        changed.append(
            Eleve(
                str(first_new + number),
                "",
                "Nouvel-Élève",
                f"Arrivée{number}",
                date(2010, 5, 1),
                eleves[0].mef,
                eleves[0].division,
            )
        )
    return changed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--teachers", type=int, default=120)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    call_command("migrate", verbosity=0)
    school = School.objects.create(name="Lycée du banc d'essai", uai=UAI)
    SchoolYear.objects.create(
        school=school, name="2026-2027", start_date=date(2026, 9, 1), end_date=date(2027, 7, 4)
    )
    eleves, individus, divisions = generated_school(students=args.students, teachers=args.teachers)
    siecle = siecle_xml(eleves)
    sts = sts_xml(individus, divisions)
    runs = {
        "siecle_first": timed(school, siecle),
        "siecle_rerun": timed(school, siecle),
        "siecle_mid_year": timed(school, siecle_xml(mid_year(eleves))),
        "sts_first": timed(school, sts),
        "sts_rerun": timed(school, sts),
    }
    report = {
        "benchmark": "siecle_import",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "students": args.students,
        "teachers": args.teachers,
        "divisions": len(divisions),
        "students_stored": Student.objects.count(),
        "assignments_stored": TeachingAssignment.objects.count(),
        "database": connection.vendor + " (in memory)",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "runs": runs,
    }
    print(
        f"SIECLE / STS-web import: {args.students} students, {args.teachers} teachers, "
        f"{len(divisions)} divisions"
    )
    print(f"{'run':<18}{'file (KB)':>10}{'parse (s)':>11}{'preview (s)':>13}{'apply (s)':>11}")
    for name, item in runs.items():
        print(
            f"{name:<18}{item['bytes'] / 1024:>10.0f}{item['parse_s']:>11.3f}"
            f"{item['preview_s']:>13.3f}{item['apply_s']:>11.3f}  {item['counts']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"Written to {args.out}")
    return report


if __name__ == "__main__":
    main()
