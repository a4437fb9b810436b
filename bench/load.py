"""Benchmark: 50 simulated teachers against gunicorn and PostgreSQL on this machine.

Each simulated teacher logs in through the login page (its own username, CSRF token from the
form), then loops until the end of the run: the dashboard, its class page (30 students), one
grade saved from a cell (an htmx POST with the X-CSRFToken header), the progress partial of its
running generation job (htmx polling with `since`, as the review page does), with a think time
of --think-min to --think-max seconds (default 1 to 3 s) after each request: a teacher acting
every two seconds on average, busier than real use. Reported: requests/s, p50/p95/p99 per
endpoint and overall, and every error (a status other than the page's, a connection error, a
grade not saved). The baseline is the same loop run by ONE teacher with no think time (one
request at a time, the unloaded latency), on the same server just before; the ratios say what
50 concurrent teachers cost. Logging in (50 at once) is reported apart.

Production-like: `appreciation_site.settings.production` unchanged (DEBUG off, manifest static
files, secure cookies, HSTS, SSL redirect, django-axes, CSP, one trusted proxy) under gunicorn.
The client plays the TLS reverse proxy of the deployment too: it sends X-Forwarded-Proto: https
and X-Forwarded-For (one school address) and keeps cookies itself, Secure ones included, as a
browser behind TLS would. No setting is switched off for the benchmark.

A dedicated PostgreSQL database (`appreciation_bench` by default, created if missing, migrated;
`--reset` drops it first) holds 50 teachers, each with one class of 30 students, the grades of
terms 1 and 2, and one running generation job of 30 drafts. A background thread plays the GPU
worker: every --draft-interval seconds it writes the next draft of each job (and its proposed
appréciation) and beats the jobs' heartbeat, so polls sometimes carry new rows as in real use.

    python bench/load.py                                # 50 teachers, 60 s, 5 sync workers
    python bench/load.py --think-min 0.2 --think-max 0.6 --out /tmp/stress.json  # saturation
    python bench/load.py --workers 3 --threads 4 --out /tmp/gthread.json  # another setting
    python bench/load.py --profile-only                 # queries and time per endpoint, no load

The CPU seconds of gunicorn, of the bench database's PostgreSQL backends, of this client and of
every other process are reported per phase: on a shared machine, other people's jobs show there.
Only 127.0.0.1: the server binds there and the database URL must point there. Bounded: a
fixed duration and --max-requests. It is a benchmark, not a test: figures in bench/README.md,
JSON in bench/results/load.json.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import http.client
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import unquote, urlencode, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "load.json"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/appreciation_bench"
BENCH_DIR = ROOT / "var" / "bench" / "load"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

SCHOOL_NAME = "Lycée du banc d'essai (charge)"
USERNAME = "bench.prof{:02d}"
PASSWORD = "bench-load-appreciation"  # noqa: S105 - a throwaway account in a throwaway database
STUDENTS_PER_CLASS = 30
DRAFTS_ALREADY_GENERATED = 10
# The school's NAT address as the reverse proxy would report it (TEST-NET-3, RFC 5737).
SCHOOL_IP = "203.0.113.10"
DRAFT_TEXT = (
    "Un trimestre sérieux : la participation progresse et le travail écrit est soigné. "
    "Il faut approfondir l'analyse des documents."
)

CSRF_FORM = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CSRF_HTMX = re.compile(r'"X-CSRFToken": "([^"]+)"')
CLASS_LINK = re.compile(r'href="(/classes/\d+/trimestre/\d+/)"')
CELL_URL = re.compile(r'hx-post="(/classes/\d+/trimestre/\d+/eleve/\d+/(\w+)/)"')
PROGRESS_URL = re.compile(r'hx-get="(/generations/\d+/progression/[^"]*)"')


# --- Set-up: database, data set, server ---------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teachers", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument(
        "--baseline-duration", type=float, default=20.0, help="seconds of the 1-teacher baseline"
    )
    parser.add_argument("--max-requests", type=int, default=100_000, help="per phase, at most")
    parser.add_argument(
        "--think-min", type=float, default=1.0, help="seconds between a teacher's requests"
    )
    parser.add_argument("--think-max", type=float, default=3.0)
    parser.add_argument(
        "--baseline-think",
        type=float,
        default=0.05,
        help="the lone teacher's think time: back-to-back requests, for many samples",
    )
    # Measured on this 2-core machine (bench/README.md): 5 sync workers (2 x cores + 1) gave the
    # best tail latency; 3 sync matched it in steady state; 3 x 4 gthread had worse p95/p99
    # (requests sharing one process's GIL).
    parser.add_argument("--workers", type=int, default=5, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread)")
    parser.add_argument(
        "--worker-class", default="", help="gunicorn worker class (default: gthread if threads>1)"
    )
    parser.add_argument(
        "--login-ramp", type=float, default=30.0, help="seconds over which the logins spread"
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--reset", action="store_true", help="drop and recreate the database")
    parser.add_argument(
        "--draft-interval", type=float, default=4.0, help="seconds between fake drafts (0: none)"
    )
    parser.add_argument("--profile-only", action="store_true", help="no server, no load")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.database_url = args.database_url or DEFAULT_DATABASE_URL
    if args.think_max < args.think_min:
        parser.error("--think-max must be at least --think-min")
    return args


def check_local_postgres(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"The benchmark needs PostgreSQL; got {parsed.scheme}://")
    if (parsed.hostname or "127.0.0.1") not in LOCAL_HOSTS:
        sys.exit(f"Only a local PostgreSQL (127.0.0.1), not {parsed.hostname}")
    name = parsed.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name or ""):
        sys.exit(f"Unexpected database name {name!r}")
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or ""),
        "dbname": name,
    }


def ensure_database(params: dict, *, reset: bool) -> None:
    """Create the dedicated database if it is missing (drop it first with --reset)."""
    import psycopg
    from psycopg import sql

    maintenance = {**params, "dbname": "postgres"}
    with psycopg.connect(**maintenance, autocommit=True) as conn:
        name = sql.Identifier(params["dbname"])
        if reset:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [params["dbname"]]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def server_environment(args: argparse.Namespace) -> dict[str, str]:
    """The production settings as they are, with this run's throwaway values."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="appreciation_site.settings.production",
        DJANGO_SECRET_KEY="bench-" + secrets.token_urlsafe(48),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=args.database_url,
        STATIC_ROOT=str(BENCH_DIR / "static"),
        # Filesystem broker under var/bench: nothing in the loop sends a task.
        CELERY_FILESYSTEM_BROKER_DIR=str(BENCH_DIR / "broker"),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def static_outdated() -> bool:
    """collectstatic (about 20 s here: it compresses every file) only when static/ changed."""
    manifest = BENCH_DIR / "static" / "staticfiles.json"
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    known = json.loads(manifest.read_text()).get("paths", {})
    for path in (ROOT / "static").rglob("*"):
        if path.is_file() and (
            path.stat().st_mtime > built
            or path.relative_to(ROOT / "static").as_posix() not in known
        ):
            return True
    return False


def setup_django(env: dict[str, str]) -> None:
    # No .env from the developer's checkout overrides these: read_env(overwrite=False).
    os.environ.update(env)
    import django

    django.setup()


def seed(*, teachers: int) -> None:
    """50 teachers, each one class of 30 students with grades and one job; reused if present."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from classes.demo import create_year_and_terms
    from classes.models import (
        Level,
        School,
        SchoolClass,
        Student,
        Subject,
        Teacher,
        TeachingAssignment,
        TermAssessment,
    )
    from generation.models import Draft, GenerationJob

    school = School.objects.filter(name=SCHOOL_NAME).first()
    if school is not None and school.teachers.count() == teachers:
        return
    if school is not None:
        sys.exit(
            f"The bench database holds {school.teachers.count()} teachers, not {teachers}:"
            " run again with --reset."
        )
    today = timezone.localdate()
    rng = random.Random(2026)
    # One hash for every account: PBKDF2 costs about half a second each.
    password = make_password(PASSWORD)
    with transaction.atomic():
        school = School.objects.create(name=SCHOOL_NAME, uai="0000000B")
        # The demo school's calendar: trimester 2 current, trimester 1 closed.
        year, terms = create_year_and_terms(school=school, today=today)
        level, _ = Level.objects.get_or_create(
            code="2nde", defaults={"name": "Seconde", "order": 1}
        )
        subject, _ = Subject.objects.get_or_create(
            school=None, name="Histoire-Géographie", defaults={"short_name": "HG"}
        )
        for index in range(1, teachers + 1):
            teacher = Teacher.objects.create(
                username=USERNAME.format(index),
                password=password,
                first_name="Prof",
                last_name=f"Banc{index:02d}",
                school=school,
                role=Teacher.Role.TEACHER,
            )
            school_class = SchoolClass.objects.create(
                school=school, school_year=year, level=level, name=f"2nde {index}"
            )
            assignment = TeachingAssignment.objects.create(
                teacher=teacher, school_class=school_class, subject=subject
            )
            students = Student.objects.bulk_create(
                Student(
                    school_class=school_class,
                    last_name=f"Élève{index:02d}-{n:02d}",
                    first_name=rng.choice(["Léa", "Hugo", "Inès", "Noah", "Zoé", "Adam"]),
                )
                for n in range(STUDENTS_PER_CLASS)
            )
            assessments = []
            for student in students:
                assessments.append(
                    TermAssessment(
                        student=student,
                        subject=subject,
                        term=terms[0],
                        average=Decimal(rng.randint(600, 1900)) / 100,
                    )
                )
                assessments.append(
                    TermAssessment(
                        student=student,
                        subject=subject,
                        term=terms[1],
                        average=Decimal(rng.randint(600, 1900)) / 100,
                        behaviour=Decimal(rng.randint(3, 10)),
                        participation=Decimal(rng.randint(2, 10)),
                        work=Decimal(rng.randint(3, 10)),
                        updated_by=teacher,
                    )
                )
            TermAssessment.objects.bulk_create(assessments)
            job = GenerationJob.objects.create(
                assignment=assignment,
                term=terms[1],
                requested_by=teacher,
                status=GenerationJob.Status.RUNNING,
                tasks_sent=4,
                deliveries=1,
                worker_hostname="bench@gpu",
                started_at=timezone.now(),
                heartbeat_at=timezone.now(),
            )
            Draft.objects.bulk_create(
                Draft(
                    job=job,
                    student=student,
                    subject=subject,
                    term=terms[1],
                    prompt_messages=[{"role": "user", "content": "banc d'essai"}],
                    prompt_version="bench",
                )
                for student in students
            )


def reset_jobs() -> list[list[int]]:
    """Every job running with a fresh heartbeat, its first drafts written and the rest pending.

    Returns, per job, the pending drafts' ids in the order the fake worker writes them.
    """
    from django.db import transaction
    from django.utils import timezone

    from generation.models import Appreciation, Draft, GenerationJob
    from generation.services import appreciation_propose

    jobs = list(GenerationJob.objects.filter(assignment__school_class__school__name=SCHOOL_NAME))
    now = timezone.now()
    pending: list[list[int]] = []
    with transaction.atomic():
        GenerationJob.objects.filter(pk__in=[j.pk for j in jobs]).update(
            status=GenerationJob.Status.RUNNING, heartbeat_at=now, finished_at=None
        )
        Appreciation.objects.filter(draft__job__in=jobs).delete()
        for job in jobs:
            drafts = list(job.drafts.order_by("pk"))
            done, rest = drafts[:DRAFTS_ALREADY_GENERATED], drafts[DRAFTS_ALREADY_GENERATED:]
            Draft.objects.filter(pk__in=[d.pk for d in done]).update(
                status=Draft.Status.GENERATED,
                text=DRAFT_TEXT,
                attempts=1,
                generated_at=now - timedelta(minutes=5),
            )
            Draft.objects.filter(pk__in=[d.pk for d in rest]).update(
                status=Draft.Status.PENDING, text="", attempts=0, generated_at=None
            )
            for draft in Draft.objects.filter(pk__in=[d.pk for d in done]):
                appreciation_propose(draft=draft)
            pending.append([d.pk for d in rest])
    return pending


class FakeGpuWorker(threading.Thread):
    """Writes the next draft of every job each interval and beats the jobs' heartbeat."""

    def __init__(self, pending: list[list[int]], interval: float) -> None:
        super().__init__(name="fake-gpu-worker", daemon=True)
        self.pending = [list(ids) for ids in pending]
        self.interval = interval
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        from django.db import connection, transaction
        from django.utils import timezone

        from generation.models import Draft, GenerationJob
        from generation.services import appreciation_propose

        try:
            while not self.stop.wait(self.interval):
                batch = [ids.pop(0) for ids in self.pending if ids]
                now = timezone.now()
                with transaction.atomic():
                    GenerationJob.objects.filter(
                        assignment__school_class__school__name=SCHOOL_NAME
                    ).update(heartbeat_at=now)
                    if batch:
                        Draft.objects.filter(pk__in=batch).update(
                            status=Draft.Status.GENERATED,
                            text=DRAFT_TEXT,
                            attempts=1,
                            generated_at=now,
                        )
                        for draft in Draft.objects.filter(pk__in=batch):
                            appreciation_propose(draft=draft)
                self.written += len(batch)
        finally:
            connection.close()


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_gunicorn(args: argparse.Namespace, env: dict[str, str]) -> tuple[subprocess.Popen, list]:
    if not port_free(args.port):
        sys.exit(f"127.0.0.1:{args.port} is in use: pick another --port")
    worker_class = args.worker_class or ("gthread" if args.threads > 1 else "sync")
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "appreciation_site.wsgi",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--worker-class",
        worker_class,
        "--keep-alive",
        "5",
        "--log-level",
        "warning",
    ]
    log = open(BENCH_DIR / "gunicorn.log", "w")  # noqa: SIM115 - closed by stop_gunicorn
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited ({process.returncode}): see {BENCH_DIR / 'gunicorn.log'}")
        try:
            client = HttpClient(args.port)
            status, _ = client.request("GET", "/connexion/")
            if status == 200:
                time.sleep(1.0)  # the other workers finish booting
                return process, command
        except OSError:
            pass
        time.sleep(0.3)
    stop_gunicorn(process)
    sys.exit("gunicorn did not answer within 60 s")


def stop_gunicorn(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # the master stops its workers gracefully
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- The simulated teachers ----------------------------------------------------------------


class HttpClient:
    """One browser behind the TLS reverse proxy: a keep-alive connection and its cookies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.origin = f"https://127.0.0.1:{port}"
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}
        self.reconnects = 0

    def request(
        self, method: str, path: str, *, form: dict | None = None, headers: dict | None = None
    ) -> tuple[int, str]:
        all_headers = {
            "Host": f"127.0.0.1:{self.port}",
            # What the deployment's reverse proxy adds (TRUSTED_PROXY_COUNT=1).
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": SCHOOL_IP,
            "User-Agent": "appreciation-bench-load/1",
            **(headers or {}),
        }
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
            all_headers["Origin"] = self.origin
        for attempt in (1, 2):
            reused = self.conn.sock is not None
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                text = response.read().decode("utf-8", "replace")
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection just now; a browser retries
                # on a new one. Only once, and counted.
                self.conn.close()
                if attempt == 2 or not reused:
                    raise
                self.reconnects += 1
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        if response.status in (301, 302, 303):
            text = response.getheader("Location", "")
        return response.status, text


class Recorder:
    def __init__(self) -> None:
        self.samples: list[tuple[str, float]] = []
        self.errors: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.count = 0

    def add(self, endpoint: str, seconds: float, error: str = "") -> None:
        with self.lock:
            self.samples.append((endpoint, seconds))
            self.count += 1
            if error:
                self.errors.append((endpoint, error))


class SimulatedTeacher:
    def __init__(self, index: int, port: int, think: tuple[float, float], seed: int) -> None:
        self.index = index
        self.username = USERNAME.format(index)
        self.http = HttpClient(port)
        self.think = think
        self.rng = random.Random(seed * 1000 + index)
        self.csrf = ""
        self.class_url = ""
        self.cells: list[tuple[str, str]] = []
        self.progress_url = ""

    def timed(self, recorder: Recorder | None, endpoint: str, call, check) -> str:
        started = time.perf_counter()
        error = ""
        text = ""
        try:
            status, text = call()
            error = check(status, text)
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
        elapsed = time.perf_counter() - started
        if recorder is not None:
            recorder.add(endpoint, elapsed, error)
        elif error:
            raise RuntimeError(f"{self.username}: {endpoint} failed during set-up: {error}")
        return text

    def log_in(self, recorder: Recorder) -> None:
        page = self.timed(
            recorder,
            "login_page",
            lambda: self.http.request("GET", "/connexion/"),
            expect(200, "csrfmiddlewaretoken"),
        )
        token = CSRF_FORM.search(page)
        form = {
            "csrfmiddlewaretoken": token.group(1) if token else "",
            "username": self.username,
            "password": PASSWORD,
            "next": "",
        }
        headers = {"Referer": f"{self.http.origin}/connexion/"}
        self.timed(
            recorder,
            "login_post",
            lambda: self.http.request("POST", "/connexion/", form=form, headers=headers),
            lambda status, location: "" if status == 302 and location == "/" else f"{status}",
        )

    def discover(self) -> None:
        """What a browser learns from the pages: the class link, the cells, the poll URL."""
        dashboard = self.timed(
            None, "dashboard", lambda: self.http.request("GET", "/"), expect(200, "/trimestre/")
        )
        self.class_url = CLASS_LINK.search(dashboard).group(1)
        page = self.timed(
            None,
            "class_page",
            lambda: self.http.request("GET", self.class_url),
            expect(200, "hx-post="),
        )
        self.read_class_page(page)
        review_url = self.class_url + "appreciations/"
        review = self.timed(
            None,
            "review_page",
            lambda: self.http.request("GET", review_url),
            expect(200, "job-progress"),
        )
        self.progress_url = html.unescape(PROGRESS_URL.search(review).group(1))

    def read_class_page(self, page: str) -> None:
        self.csrf = CSRF_HTMX.search(page).group(1)
        self.cells = CELL_URL.findall(page)

    def pause(self) -> None:
        time.sleep(self.rng.uniform(*self.think))

    def iteration(self, recorder: Recorder) -> None:
        self.timed(
            recorder,
            "dashboard",
            lambda: self.http.request("GET", "/"),
            expect(200, self.class_url),
        )
        self.pause()
        page = self.timed(
            recorder,
            "class_page",
            lambda: self.http.request("GET", self.class_url),
            expect(200, "hx-post="),
        )
        if CSRF_HTMX.search(page):
            self.read_class_page(page)
        self.pause()
        url, field = self.rng.choice(self.cells)
        value = (
            f"{self.rng.randint(5, 19)},{self.rng.choice(['0', '5'])}"
            if field == "average"
            else str(self.rng.randint(2, 10))
        )
        htmx = {
            "HX-Request": "true",
            "HX-Current-URL": self.http.origin + self.class_url,
            "X-CSRFToken": self.csrf,
            "Referer": self.http.origin + self.class_url,
        }
        self.timed(
            recorder,
            "cell_save",
            lambda: self.http.request("POST", url, form={"value": value}, headers=htmx),
            expect(200, " saved"),
        )
        self.pause()
        poll_headers = {"HX-Request": "true", "X-CSRFToken": self.csrf}
        fragment = self.timed(
            recorder,
            "job_progress",
            lambda: self.http.request("GET", self.progress_url, headers=poll_headers),
            expect((200, 286), "job-progress"),
        )
        found = PROGRESS_URL.search(fragment)
        if found:  # htmx polls with the `since` of the last answer
            self.progress_url = html.unescape(found.group(1))
        self.pause()


def expect(status: int | tuple[int, ...], marker: str):
    statuses = (status,) if isinstance(status, int) else status

    def check(got: int, text: str) -> str:
        if got not in statuses:
            return f"HTTP {got}"
        if marker not in text:
            return f"HTTP {got} without {marker!r}"
        return ""

    return check


def run_concurrently(teachers, target) -> None:
    threads = [threading.Thread(target=target, args=(t,), daemon=True) for t in teachers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_phase(teachers, *, duration: float, max_requests: int, think: tuple[float, float]) -> dict:
    recorder = Recorder()
    for teacher in teachers:
        teacher.think = think
    barrier = threading.Barrier(len(teachers))
    window: dict[str, float] = {}

    def loop(teacher: SimulatedTeacher) -> None:
        if barrier.wait() == 0:
            window["start"] = time.perf_counter()
        deadline = time.perf_counter() + duration
        # Teachers do not start in lock-step: spread the first requests over a think time.
        time.sleep(teacher.rng.uniform(0, teacher.think[1]))
        while time.perf_counter() < deadline and recorder.count < max_requests:
            teacher.iteration(recorder)

    cpu = CpuSampler()
    run_concurrently(teachers, loop)
    elapsed = time.perf_counter() - window["start"]
    return summarize(recorder, elapsed) | {"cpu": cpu.stop()}


# --- Measurements ---------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    if len(ordered) == 1:
        cuts = [ordered[0]] * 99
    else:
        cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "count": len(ordered),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def summarize(recorder: Recorder, elapsed: float) -> dict:
    by_endpoint: dict[str, list[float]] = {}
    for endpoint, seconds in recorder.samples:
        by_endpoint.setdefault(endpoint, []).append(seconds)
    error_counts: dict[str, int] = {}
    for endpoint, error in recorder.errors:
        key = f"{endpoint}: {error}"
        error_counts[key] = error_counts.get(key, 0) + 1
    return {
        "seconds": round(elapsed, 2),
        "requests": len(recorder.samples),
        "requests_per_s": round(len(recorder.samples) / elapsed, 1) if elapsed else None,
        "errors": len(recorder.errors),
        "error_kinds": error_counts,
        "overall": percentiles([s for _, s in recorder.samples]),
        "endpoints": {name: percentiles(values) for name, values in sorted(by_endpoint.items())},
    }


def _proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def _postgres_pids(dbname: str) -> list[int]:
    """The PostgreSQL backends serving dbname (their process title names the database)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {dbname} " in title:
            pids.append(int(cmdline.parent.name))
    return pids


def _machine_busy() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuSampler:
    """CPU seconds of gunicorn (master and workers), PostgreSQL, this client, and the machine."""

    gunicorn_pid: int | None = None
    dbname = ""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.client = time.process_time()
        self.busy, self.total = _machine_busy()
        self.groups = self._groups()
        self.before = {pid: _proc_cpu_seconds(pid) for pids in self.groups.values() for pid in pids}

    def _groups(self) -> dict[str, list[int]]:
        groups = {"postgres": _postgres_pids(self.dbname)}
        if self.gunicorn_pid:
            groups["gunicorn"] = [self.gunicorn_pid, *_children(self.gunicorn_pid)]
        return groups

    def stop(self) -> dict:
        wall = time.perf_counter() - self.started
        busy, total = _machine_busy()
        result = {
            "wall_s": round(wall, 2),
            "machine_busy_pct": round(100 * (busy - self.busy) / max(1, total - self.total), 1),
            "client_cpu_s": round(time.process_time() - self.client, 2),
        }
        groups = self._groups()
        for name, pids in groups.items():
            # Processes present at both ends (PostgreSQL backends come and go).
            seconds = sum(
                _proc_cpu_seconds(pid) - self.before[pid] for pid in pids if pid in self.before
            )
            result[f"{name}_cpu_s"] = round(seconds, 2)
        # Everything else: kernel (loopback networking), PostgreSQL's background processes, and
        # other people's jobs, which disturb the figures on a shared machine.
        machine_s = (busy - self.busy) / os.sysconf("SC_CLK_TCK")
        ours = sum(
            result[key]
            for key in ("client_cpu_s", "postgres_cpu_s", "gunicorn_cpu_s")
            if key in result
        )
        result["everything_else_cpu_s"] = round(max(0.0, machine_s - ours), 2)
        result["cores"] = os.cpu_count()
        result["loadavg_1m_end"] = float(Path("/proc/loadavg").read_text().split()[0])
        return result


def profile_endpoints(repeat: int = 15) -> dict:
    """In-process, no network: queries and time per request of each endpoint, one teacher."""
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from classes.models import Teacher

    teacher = Teacher.objects.get(username=USERNAME.format(1))
    client = Client(HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    client.force_login(teacher, backend="django.contrib.auth.backends.ModelBackend")
    dashboard = client.get("/").content.decode()
    class_url = CLASS_LINK.search(dashboard).group(1)
    page = client.get(class_url).content.decode()
    cell_url, _field = CELL_URL.findall(page)[0]
    review = client.get(class_url + "appreciations/").content.decode()
    progress_url = html.unescape(PROGRESS_URL.search(review).group(1))
    calls = {
        "dashboard": lambda: client.get("/"),
        "class_page": lambda: client.get(class_url),
        "cell_save": lambda: client.post(cell_url, {"value": "12,5"}, HTTP_HX_REQUEST="true"),
        "job_progress": lambda: client.get(progress_url, HTTP_HX_REQUEST="true"),
        "review_page": lambda: client.get(class_url + "appreciations/"),
    }
    result = {}
    for name, call in calls.items():
        call()  # warm
        times, sql_times, counts, sizes = [], [], [], []
        for _ in range(repeat):
            reset_queries()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = call()
                times.append(time.perf_counter() - started)
            counts.append(len(captured.captured_queries))
            sql_times.append(sum(float(q["time"]) for q in captured.captured_queries))
            sizes.append(len(response.content))
        result[name] = {
            "status": response.status_code,
            "queries": max(counts),
            "median_ms": round(statistics.median(times) * 1000, 1),
            "sql_ms": round(statistics.median(sql_times) * 1000, 1),
            "bytes": max(sizes),
        }
    return result


def postgres_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


def print_phase(title: str, phase: dict) -> None:
    print(
        f"\n{title}: {phase['requests']} requests in {phase['seconds']} s,"
        f" {phase['requests_per_s']} req/s, {phase['errors']} error(s)"
    )
    print(f"  {'endpoint':<14}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    rows = [*phase["endpoints"].items(), ("overall", phase["overall"])]
    for name, stats in rows:
        if not stats.get("count"):
            continue
        print(
            f"  {name:<14}{stats['count']:>7}{stats['p50_ms']:>9}{stats['p95_ms']:>9}"
            f"{stats['p99_ms']:>9}{stats['max_ms']:>9}"
        )
    for kind, count in phase["error_kinds"].items():
        print(f"  error {kind}: {count}")
    if "cpu" in phase:
        print(f"  cpu: {phase['cpu']}")


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # runs the finally that stops gunicorn


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    params = check_local_postgres(args.database_url)
    ensure_database(params, reset=args.reset)
    env = server_environment(args)
    setup_django(env)

    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    if static_outdated():
        call_command("collectstatic", verbosity=0, interactive=False)
    started = time.perf_counter()
    seed(teachers=args.teachers)
    print(
        f"Data set ready ({time.perf_counter() - started:.1f} s): {args.teachers} teachers,"
        f" {STUDENTS_PER_CLASS} students each, database {params['dbname']}"
    )

    result: dict = {
        "benchmark": "load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "postgresql": postgres_version(),
        },
        "settings": "appreciation_site.settings.production (unchanged; client plays the proxy)",
        "data": {
            "teachers": args.teachers,
            "students_per_class": STUDENTS_PER_CLASS,
            "drafts_per_job": STUDENTS_PER_CLASS,
        },
    }
    if args.profile_only:
        reset_jobs()
        result["profile"] = profile_endpoints()
        print(json.dumps(result["profile"], indent=2))
        connection.close()
        return 0

    pending = reset_jobs()
    connection.close()
    process, command = start_gunicorn(args, env)
    CpuSampler.gunicorn_pid = process.pid
    CpuSampler.dbname = params["dbname"]
    worker = FakeGpuWorker(pending, args.draft_interval) if args.draft_interval > 0 else None
    try:
        think = (args.think_min, args.think_max)
        teachers = [
            SimulatedTeacher(i, args.port, think, args.seed) for i in range(1, args.teachers + 1)
        ]
        # The morning rush: logins spread over --login-ramp seconds (each costs about 0.6 s of
        # CPU: PBKDF2, 1,000,000 iterations), then everyone opens their pages once.
        logins = Recorder()
        login_started = time.perf_counter()
        step = args.login_ramp / len(teachers)

        def log_in(teacher: SimulatedTeacher) -> None:
            time.sleep((teacher.index - 1) * step)
            teacher.log_in(logins)

        run_concurrently(teachers, log_in)
        login_phase = summarize(logins, time.perf_counter() - login_started)
        if logins.errors:
            print_phase("Logins", login_phase)
            raise SystemExit("Logins failed: see above and var/bench/load/gunicorn.log")
        run_concurrently(teachers, lambda t: t.discover())
        if worker:
            worker.start()
        baseline = run_phase(
            teachers[:1],
            duration=args.baseline_duration,
            max_requests=args.max_requests,
            think=(args.baseline_think, args.baseline_think),
        )
        load = run_phase(
            teachers, duration=args.duration, max_requests=args.max_requests, think=think
        )
    finally:
        stop_gunicorn(process)
        if worker and worker.is_alive():
            worker.stop.set()
            worker.join(timeout=10)

    result["gunicorn"] = {
        "command": " ".join(command[1:]),
        "workers": args.workers,
        "threads": args.threads,
        "worker_class": command[command.index("--worker-class") + 1],
    }
    result["load"] = {
        "teachers": args.teachers,
        "duration_s": args.duration,
        "think_s": [args.think_min, args.think_max],
        "baseline_think_s": args.baseline_think,
        "login_ramp_s": args.login_ramp,
        "max_requests": args.max_requests,
        "fake_drafts_written": worker.written if worker else 0,
        "reconnects": sum(t.http.reconnects for t in teachers),
    }
    result["logins"] = login_phase
    result["baseline_1_teacher"] = baseline
    result["teachers_50"] = load
    result["ratios_vs_baseline"] = {
        name: {
            "p50": round(stats["p50_ms"] / baseline["endpoints"][name]["p50_ms"], 2),
            "p95": round(stats["p95_ms"] / baseline["endpoints"][name]["p95_ms"], 2),
        }
        for name, stats in load["endpoints"].items()
        if stats.get("count") and baseline["endpoints"].get(name, {}).get("count")
    }
    result["ratios_vs_baseline"]["overall"] = {
        "p50": round(load["overall"]["p50_ms"] / baseline["overall"]["p50_ms"], 2),
        "p95": round(load["overall"]["p95_ms"] / baseline["overall"]["p95_ms"], 2),
    }
    result["target"] = {
        "p95_ms": 300,
        "met": load["overall"].get("p95_ms", 1e9) < 300 and load["errors"] == 0,
    }
    result["profile"] = profile_endpoints()
    connection.close()

    print_phase(f"Logins (spread over {args.login_ramp:g} s)", login_phase)
    print_phase("Baseline, 1 teacher", baseline)
    print_phase(f"{args.teachers} teachers", load)
    print("\nRatios 50 teachers / 1 teacher:", json.dumps(result["ratios_vs_baseline"]))
    print("Per request, in-process (one teacher):")
    for name, stats in result["profile"].items():
        print(f"  {name:<14} {stats}")
    print(f"\nTarget p95 < 300 ms with no error: {'met' if result['target']['met'] else 'MISSED'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
