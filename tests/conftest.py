"""Shared fixtures: a school with a year of three terms, its people and a class; another school."""

from dataclasses import dataclass

import pytest

from classes.models import SchoolClass, Teacher, TeachingAssignment, Term

from .factories import (
    PASSWORD,
    SchoolClassFactory,
    SchoolFactory,
    SchoolYearFactory,
    StudentFactory,
    TeacherFactory,
    TeachingAssignmentFactory,
    TermAssessmentFactory,
    TermFactory,
    shared_subject,
)


@dataclass
class World:
    """One school seen from every role, and a second school that none of them may reach."""

    school: object
    terms: list[Term]
    teacher: Teacher
    other_teacher: Teacher
    head: Teacher
    admin: Teacher
    school_class: SchoolClass
    assignment: TeachingAssignment
    other_assignment: TeachingAssignment
    foreign_teacher: Teacher
    foreign_assignment: TeachingAssignment
    foreign_term: Term

    @property
    def term(self) -> Term:
        return self.terms[1]


def make_school_with_class(*, students: int = 3):
    school = SchoolFactory()
    year = SchoolYearFactory(school=school)
    terms = [TermFactory(school_year=year, number=n) for n in (1, 2, 3)]
    school_class = SchoolClassFactory(school=school, school_year=year, name="2nde 3")
    teacher = TeacherFactory(school=school)
    assignment = TeachingAssignmentFactory(teacher=teacher, school_class=school_class)
    for index in range(students):
        student = StudentFactory(school_class=school_class, last_name=f"Nom{index:02d}")
        TermAssessmentFactory(student=student, term=terms[0], subject=assignment.subject)
    return school, terms, school_class, teacher, assignment


@pytest.fixture
def world(db) -> World:
    school, terms, school_class, teacher, assignment = make_school_with_class()
    other_teacher = TeacherFactory(school=school)
    other_class = SchoolClassFactory(school=school, school_year=terms[0].school_year, name="1ère 1")
    StudentFactory(school_class=other_class)
    other_assignment = TeachingAssignmentFactory(
        teacher=other_teacher, school_class=other_class, subject=shared_subject("HGGSP")
    )
    head = TeacherFactory(school=school, role=Teacher.Role.DEPARTMENT_HEAD)
    head.headed_subjects.add(shared_subject("HG"))
    admin = TeacherFactory(school=school, role=Teacher.Role.SCHOOL_ADMIN, is_staff=True)
    f_school, f_terms, _, f_teacher, f_assignment = make_school_with_class()
    return World(
        school=school,
        terms=terms,
        teacher=teacher,
        other_teacher=other_teacher,
        head=head,
        admin=admin,
        school_class=school_class,
        assignment=assignment,
        other_assignment=other_assignment,
        foreign_teacher=f_teacher,
        foreign_assignment=f_assignment,
        foreign_term=f_terms[1],
    )


@pytest.fixture
def login(client):
    def _login(user: Teacher):
        client.logout()
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return _login


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """The tiny random Llama and its LoRA adapter, built once per test run (no network)."""
    from worker.testing import build_test_model

    return build_test_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def tiny_model_settings(settings, tiny_model_dirs):
    """Point the real transformers backend at the tiny model; short generations."""
    from generation.backends import reset_backend_cache

    base, adapter = tiny_model_dirs
    settings.APPRECIATION_BACKEND = "worker.backends.transformers.TransformersBackend"
    settings.APPRECIATION_BASE_MODEL = str(base)
    settings.APPRECIATION_ADAPTER = str(adapter)
    settings.APPRECIATION_TEST_MODEL = True
    settings.APPRECIATION_DEVICE = "cpu"
    settings.APPRECIATION_MAX_NEW_TOKENS = 8
    settings.APPRECIATION_BATCH_SIZE = 2
    settings.APPRECIATION_MAX_ATTEMPTS = 2
    settings.APPRECIATION_SEED = 1234
    reset_backend_cache()
    yield settings
    reset_backend_cache()


@pytest.fixture
def celery_worker(transactional_db, tiny_model_settings):
    """A real Celery worker consuming the `default` and `gpu` queues from the configured
    broker (Redis in CI, the in-process memory transport otherwise), in a thread of this
    process so it shares the test database."""
    with running_worker() as worker:
        yield worker


def running_worker():
    """Start a solo-pool worker on both queues in a thread, the queues emptied first (a
    context manager; `celery_worker` and the database-recovery tests use it)."""
    from celery.contrib.testing.worker import start_worker

    from appreciation_site.celery import app

    app.control.purge()
    return start_worker(
        app,
        pool="solo",
        concurrency=1,
        queues=["default", "gpu"],
        perform_ping_check=False,
        shutdown_timeout=60,
        loglevel="WARNING",
    )


def wait_for(predicate, *, timeout: float = 90.0, interval: float = 0.2):
    """Poll until predicate() is truthy; fail with its last value otherwise."""
    import time

    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    assert value, "condition not met before the timeout"
    return value
