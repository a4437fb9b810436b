"""Every URL of the platform, from every side.

The table below names each URL pattern of the project with how to build its arguments for
the objects of three owners (`own`: world.teacher's, `other`: world.other_teacher's, same
school; `foreign`: world.foreign_teacher's, another school), its methods, and who may reach
what. For each URL:

- anonymous → a redirect to the login page;
- every actor that may not reach an object (wrong role, another teacher's, another school's),
  and every URL whose ids mix an allowed object with one it does not own → 404, with exactly
  the body of the 404 for a URL that does not exist (nothing tells "forbidden" from "missing");
- each id replaced by one that does not exist → the same 404;
- the allowed actors get an answer that is neither a 404 nor an error (the table is right);
- a POST without a CSRF token → 403.

`test_every_url_is_in_the_table` walks the URL resolver: a new URL fails the suite until it
is added here. Not in the table, on purpose:
- `admin:*`: the Django admin has its own login and permission checks (tests/classes/test_admin.py,
  tests/audit/test_audit_log.py);
- `login`: the one public page (throttled by django-axes, tests/audit/test_axes.py);
- `ent_login`: the ENT sign-in (CAS), public too: it signs in only the teacher a school's CAS
  server names (tests/ent/);
- `teacher_invitation`, `teacher_invitation_done`: public on purpose (an imported teacher has
  no password yet); the link carries Django's password-reset token (tests/classes/test_siecle.py);
- static files: served by WhiteNoise, outside the URLconf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from classes.models import Teacher
from generation import tasks
from generation.models import Appreciation, Draft, Feedback, GenerationJob, QuickDraft
from learning import tasks as learning_tasks
from learning.models import PanelItem, TrainingRun
from tests.factories import ModelVersionFactory, PanelItemFactory, TeacherFactory

pytestmark = pytest.mark.django_db

MISSING = 999_999
PUBLIC = {"login", "ent_login", "teacher_invitation", "teacher_invitation_done"}
SKIPPED_NAMESPACES = ("admin:",)

ACTORS = (
    "teacher",
    "other_teacher",
    "head",
    "admin",
    "foreign_teacher",
    "no_school",
    "panel_member",
    "superuser",
)
TARGETS = ("own", "other", "foreign")


# --- The objects each owner has -----------------------------------------------------------------


@dataclass
class Owned:
    owner: Teacher
    assignment: object
    term: object
    student: object
    job: GenerationJob
    appreciation: Appreciation
    feedback: Feedback
    quick: QuickDraft
    # The panel's items are shared by every school: one per owner only to have several ids.
    panel_item: PanelItem
    training_run: TrainingRun


def _owned(owner, assignment, term) -> Owned:
    student = assignment.school_class.students.order_by("pk").first()
    job = GenerationJob.objects.create(
        assignment=assignment, term=term, requested_by=owner, status=GenerationJob.Status.FAILED
    )
    draft = Draft.objects.create(
        job=job,
        student=student,
        subject=assignment.subject,
        term=term,
        status=Draft.Status.GENERATED,
        prompt_version="test",
        text="Élève sérieux, trimestre satisfaisant.",
    )
    appreciation = Appreciation.objects.create(
        student=student,
        subject=assignment.subject,
        term=term,
        status=Appreciation.Status.VALIDATED,
        text="Élève sérieux, trimestre satisfaisant.",
        draft=draft,
        validated_by=owner,
    )
    feedback = Feedback.objects.create(
        appreciation=appreciation,
        draft=draft,
        school=owner.school,
        validated_by=owner,
        draft_text=draft.text,
        final_text=appreciation.text,
    )
    quick = QuickDraft.objects.create(
        requested_by=owner,
        school=owner.school,
        status=QuickDraft.Status.DONE,
        prompt_version="test",
        text="Bon trimestre.",
    )
    panel_item = PanelItemFactory(version_a=ModelVersionFactory(), version_b=ModelVersionFactory())
    # Training runs are the platform's (superusers'), whoever asked: any owner's is one.
    training_run = TrainingRun.objects.create(requested_by=owner)
    return Owned(
        owner,
        assignment,
        term,
        student,
        job,
        appreciation,
        feedback,
        quick,
        panel_item,
        training_run,
    )


def build_objects(world) -> dict[str, Owned]:
    return {
        "own": _owned(world.teacher, world.assignment, world.term),
        "other": _owned(world.other_teacher, world.other_assignment, world.term),
        "foreign": _owned(world.foreign_teacher, world.foreign_assignment, world.foreign_term),
    }


def actors(world) -> dict[str, Teacher]:
    return {
        "teacher": world.teacher,
        "other_teacher": world.other_teacher,
        "head": world.head,  # heads world.assignment's subject (HG), not other_assignment's
        "admin": world.admin,
        "foreign_teacher": world.foreign_teacher,
        "no_school": TeacherFactory(school=None),
        # On the teachers' panel (learning): judges any item, sees no class.
        "panel_member": TeacherFactory(school=world.school, on_panel=True),
        # The platform's superuser (no school): the training page is theirs alone.
        "superuser": TeacherFactory(school=None, is_staff=True, is_superuser=True),
    }


# --- The table ----------------------------------------------------------------------------------


def _class(o: Owned) -> dict:
    return {"assignment_pk": o.assignment.pk, "term_pk": o.term.pk}


def _student(o: Owned) -> dict:
    return {**_class(o), "student_pk": o.student.pk}


OWNERS = frozenset({("teacher", "own"), ("other_teacher", "other"), ("foreign_teacher", "foreign")})
HEAD_OF_OWN = frozenset({("head", "own")})
EVERYONE = frozenset((actor, None) for actor in ACTORS)
WITH_A_SCHOOL = EVERYONE - {("no_school", None), ("superuser", None)}
SUPERUSER = frozenset({("superuser", None)})
# world.admin is the school admin of own's and other's school (not foreign's).
CLASS_READERS = OWNERS | {("admin", "own"), ("admin", "other")}


def _school_class(o: Owned) -> dict:
    return {"class_pk": o.assignment.school_class.pk, "term_pk": o.term.pk}


@dataclass(frozen=True)
class Spec:
    methods: tuple[str, ...]
    allowed: frozenset  # (actor, target); target None for a URL without an object
    kwargs: Callable[[Owned], dict] | None = None  # None: the URL names no object
    data: Callable[[Owned], dict] = field(default=lambda o: {})
    fixed: dict = field(default_factory=dict)  # arguments that name no object (a format)


URLS: dict[str, Spec] = {
    # Accounts (django.contrib.auth views).
    "logout": Spec(("post",), EVERYONE),
    "password_change": Spec(("get", "post"), EVERYONE),
    "password_change_done": Spec(("get",), EVERYONE),
    # classes
    "classes:dashboard": Spec(("get",), EVERYONE),
    "classes:class_page": Spec(("get",), OWNERS | HEAD_OF_OWN, _class),
    "classes:cell_update": Spec(
        ("post",),
        OWNERS,
        lambda o: {**_student(o), "field": "average"},
        lambda o: {"value": "12,5"},
    ),
    "classes:import_upload": Spec(("get", "post"), OWNERS, _class),
    "classes:import_confirm": Spec(("post",), OWNERS, _class, lambda o: {"payload": "x"}),
    # generation: the teacher's review
    "generation:review": Spec(("get",), OWNERS, _class),
    "generation:job_start": Spec(("post",), OWNERS, _class),
    "generation:validate": Spec(
        ("post",),
        OWNERS,
        _student,
        lambda o: {"text": "Bon trimestre.", "version": o.appreciation.version},
    ),
    "generation:offer_dismiss": Spec(("post",), OWNERS, _student),
    "generation:job_progress": Spec(("get",), OWNERS, lambda o: {"job_pk": o.job.pk}),
    "generation:job_cancel": Spec(("post",), OWNERS, lambda o: {"job_pk": o.job.pk}),
    "generation:job_retry": Spec(("post",), OWNERS, lambda o: {"job_pk": o.job.pk}),
    "generation:feedback_rate": Spec(
        ("post",), OWNERS, lambda o: {"feedback_pk": o.feedback.pk}, lambda o: {"rating": "up"}
    ),
    # generation: the department head
    "generation:head_queue": Spec(("get",), frozenset({("head", None)})),
    "generation:head_review": Spec(("get",), HEAD_OF_OWN, _class),
    "generation:approve_all": Spec(("post",), HEAD_OF_OWN, _class),
    "generation:approve": Spec(
        ("post",),
        HEAD_OF_OWN,
        lambda o: {"appreciation_pk": o.appreciation.pk},
        lambda o: {"version": o.appreciation.version},
    ),
    "generation:return": Spec(
        ("post",),
        HEAD_OF_OWN,
        lambda o: {"appreciation_pk": o.appreciation.pk},
        lambda o: {"version": o.appreciation.version, "comment": "À nuancer."},
    ),
    # generation: quick draft
    "generation:quick_draft": Spec(("get", "post"), WITH_A_SCHOOL),
    "generation:quick_draft_result": Spec(("get",), OWNERS, lambda o: {"quick_pk": o.quick.pk}),
    # exports: a class x subject (its teacher, the subject's department heads)
    "exports:index": Spec(("get",), WITH_A_SCHOOL),
    "exports:assignment": Spec(("get",), OWNERS | HEAD_OF_OWN, _class),
    "exports:assignment_copy": Spec(("get",), OWNERS | HEAD_OF_OWN, _class),
    "exports:assignment_file": Spec(
        ("get",), OWNERS | HEAD_OF_OWN, lambda o: {**_class(o), "fmt": "csv"}
    ),
    # exports: a whole class (any teacher of the class, the school admin)
    "exports:class": Spec(("get",), CLASS_READERS, _school_class),
    "exports:class_copy": Spec(("get",), CLASS_READERS, _school_class),
    "exports:class_file": Spec(
        ("get",), CLASS_READERS, lambda o: {**_school_class(o), "fmt": "csv"}
    ),
    # exports: the feedback dataset (the school admin, their school's rows)
    "exports:dataset_file": Spec(
        ("get",), frozenset({("admin", None)}), fixed={"fmt": "appreciation-csv"}
    ),
    # learning: the teachers' panel (its members, any school) and the quality dashboard
    # (school admins; department heads for their subjects)
    "learning:panel": Spec(("get",), frozenset({("panel_member", None)}) | SUPERUSER),
    "learning:panel_judge": Spec(
        ("post",),
        frozenset((actor, target) for actor in ("panel_member", "superuser") for target in TARGETS),
        lambda o: {"item_pk": o.panel_item.pk},
        lambda o: {"choice": "first"},
    ),
    "learning:panel_results": Spec(("get",), frozenset({("panel_member", None)}) | SUPERUSER),
    "learning:dashboard": Spec(("get",), frozenset({("head", None), ("admin", None)})),
    # learning: the evaluation of a model version, superusers only (the ids below exist for
    # nobody here: everyone gets the 404; tests/learning/test_evaluation_flow.py opens the
    # pages of real evaluations as a superuser)
    "learning:evaluations": Spec(("get",), SUPERUSER),
    "learning:evaluation_start": Spec(("post",), SUPERUSER, data=lambda o: {"candidate": 1}),
    "learning:evaluation": Spec(("get",), frozenset(), lambda o: {"evaluation_pk": 1}),
    "learning:version_evaluation": Spec(
        ("get",),
        frozenset(("superuser", target) for target in TARGETS),
        lambda o: {"version_pk": o.panel_item.version_a.pk},
    ),
    # learning: training runs (superusers only)
    "learning:training": Spec(("get",), SUPERUSER),
    "learning:training_start": Spec(("post",), SUPERUSER, data=lambda o: {"method": "sft"}),
    "learning:training_runs": Spec(("get",), SUPERUSER),
    "learning:training_cancel": Spec(
        ("post",),
        frozenset(("superuser", target) for target in TARGETS),
        lambda o: {"run_pk": o.training_run.pk},
    ),
}


# --- Helpers ------------------------------------------------------------------------------------


def all_url_names(patterns=None, namespace: str = ""):
    if patterns is None:
        patterns = get_resolver().url_patterns
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from all_url_names(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern):
            yield namespace + (entry.name or f"<unnamed: {entry.pattern}>")


def url(name: str, kwargs: dict | None) -> str:
    return reverse(name, kwargs=kwargs or None)


def path_for(name: str, owned: Owned | None) -> str:
    spec = URLS[name]
    kwargs = dict(spec.fixed)
    if spec.kwargs is not None:
        kwargs.update(spec.kwargs(owned))
    return url(name, kwargs)


@pytest.fixture(autouse=True)
def no_task_is_queued(monkeypatch):
    """Nothing reaches a broker from these tests, whatever a view does."""
    queued = []
    for task in (tasks.generate_drafts, tasks.generate_quick_draft, learning_tasks.train_adapter):
        monkeypatch.setattr(task, "delay_on_commit", lambda *a, **k: queued.append((a, k)))
        monkeypatch.setattr(task, "delay", lambda *a, **k: queued.append((a, k)))
    return queued


@pytest.fixture
def setup(world):
    objects = build_objects(world)
    people = actors(world)
    clients = {}
    for name, user in people.items():
        client = Client()
        client.force_login(user)
        clients[name] = client
    reference = clients["teacher"].get("/cette-adresse-n-existe-pas/")
    assert reference.status_code == 404
    return objects, people, clients, reference


def _send(client: Client, method: str, path: str, data: dict):
    return getattr(client, method)(path, data)


# --- Tests --------------------------------------------------------------------------------------


def test_every_url_is_in_the_table():
    found = {
        name
        for name in all_url_names()
        if name not in PUBLIC and not name.startswith(SKIPPED_NAMESPACES)
    }
    missing = sorted(found - set(URLS))
    assert not missing, f"URLs not covered by tests/test_url_security.py: {missing}"
    stale = sorted(set(URLS) - found)
    assert not stale, f"URLs in the table that no longer exist: {stale}"


@pytest.mark.parametrize("name", sorted(URLS))
def test_anonymous_is_sent_to_login(world, client, name):
    spec = URLS[name]
    objects = build_objects(world)
    for method in spec.methods:
        response = _send(client, method, path_for(name, objects["own"]), spec.data(objects["own"]))
        assert response.status_code == 302, (name, method, response.status_code)
        assert response["Location"].startswith(reverse("login")), (name, method)


@pytest.mark.parametrize("name", sorted(URLS))
def test_only_the_allowed_reach_it_and_others_get_the_missing_404(setup, name):
    objects, people, clients, reference = setup
    spec = URLS[name]
    problems = []

    def expect_404(actor: str, path: str, method: str, data: dict, why: str) -> None:
        response = _send(clients[actor], method, path, data)
        if response.status_code != 404 or response.content != reference.content:
            problems.append(f"{why}: {actor} {method.upper()} {path} -> {response.status_code}")

    cases = (
        [(actor, None) for actor in ACTORS]
        if spec.kwargs is None
        else [(actor, target) for actor in ACTORS for target in TARGETS]
    )
    for actor, target in cases:
        owned = objects[target or "own"]
        path = path_for(name, owned)
        for method in spec.methods:
            if (actor, target) in spec.allowed:
                response = _send(clients[actor], method, path, spec.data(owned))
                if response.status_code in (404, 405) or response.status_code >= 500:
                    problems.append(
                        f"allowed: {actor} {method.upper()} {path} -> {response.status_code}"
                    )
            else:
                expect_404(actor, path, method, spec.data(owned), f"denied ({target})")

    for actor, target in sorted(spec.allowed, key=str):
        owned = objects[target or "own"]
        own_kwargs = {**spec.fixed, **(spec.kwargs(owned) if spec.kwargs else {})}
        for key, value in own_kwargs.items():
            # The object does not exist.
            missing = {**own_kwargs, key: MISSING if isinstance(value, int) else "inconnu"}
            # One id taken from another owner's objects: an own class with another
            # school's term, an own class with another class's student...
            mixed = [
                {**own_kwargs, key: spec.kwargs(objects[alt])[key]}
                for alt in TARGETS
                if spec.kwargs is not None and alt != target and (actor, alt) not in spec.allowed
            ]
            for kwargs in [missing, *mixed]:
                if kwargs == own_kwargs:
                    continue
                for method in spec.methods:
                    expect_404(actor, url(name, kwargs), method, spec.data(owned), f"{key} swapped")
    assert not problems, "\n".join(problems)


POST_URLS = sorted(name for name, spec in URLS.items() if "post" in spec.methods)


@pytest.mark.parametrize("name", POST_URLS)
def test_post_without_csrf_token_is_refused(world, name):
    spec = URLS[name]
    objects = build_objects(world)
    people = actors(world)
    # A URL no actor may reach (a superuser's) is refused its token all the same.
    allowed = sorted(spec.allowed, key=lambda pair: (pair[1] != "own", pair))
    actor, target = allowed[0] if allowed else ("teacher", None)
    owned = objects[target or "own"]
    client = Client(enforce_csrf_checks=True)
    client.force_login(people[actor])
    response = client.post(path_for(name, owned), spec.data(owned))
    assert response.status_code == 403, (name, response.status_code)


def test_the_table_is_not_vacuous(setup):
    """The owner's own objects answer 200 on the main pages: the table builds real URLs."""
    objects, _, clients, _ = setup
    own = objects["own"]
    for name in ("classes:class_page", "generation:review", "classes:import_upload"):
        assert clients["teacher"].get(url(name, _class(own))).status_code == 200, name
    assert clients["head"].get(url("generation:head_review", _class(own))).status_code == 200
