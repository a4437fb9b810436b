"""Every page, as the person who uses it: no serious or critical axe-core violation (RGAA), and
at 390 px wide (a phone) no sideways scroll of the page."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.urls import reverse

from generation import services
from generation.models import Appreciation
from learning.models import PanelJudgement
from tests.factories import (
    ModelVersionFactory,
    PanelItemFactory,
    PanelJudgementFactory,
    TeacherFactory,
)
from tests.generation.test_review import make_draft

from .support import (
    PHONE,
    assert_accessible,
    axe_violations,
    horizontal_overflow,
    log_in_with_form,
)

pytestmark = pytest.mark.browser

FLAGGED = [{"code": "grade", "message": "Le texte cite une note : à reformuler."}]


@dataclass
class Site:
    world: object
    review_url: str


@pytest.fixture
def site(world) -> Site:
    """The world of tests/conftest.py with what each page shows when it is in use: drafts to
    review (one flagged, one validated), a long student name, a validated appreciation in the
    department head's queue."""
    students = list(world.school_class.students.order_by("last_name"))
    students[0].last_name = "de La Fontaine-Ducasse-Montesquieu"
    students[0].save()
    make_draft(world, students[0])
    make_draft(world, students[1], flags=FLAGGED)
    appreciation = make_draft(world, students[2])
    services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=students[2],
        user=world.teacher,
        text=appreciation.text,
        version=appreciation.version,
    )
    assert Appreciation.objects.filter(status=Appreciation.Status.VALIDATED).count() == 1
    # The teachers' panel: a member, a pair to judge and a judged one (learning).
    world.panel_member = TeacherFactory(school=world.school, on_panel=True)
    # The platform's superuser: training runs, evaluations and model versions.
    world.superuser = TeacherFactory(school=None, is_staff=True, is_superuser=True)
    old, new = ModelVersionFactory(name="adaptateur-carte"), ModelVersionFactory(name="candidate-1")
    PanelItemFactory(version_a=new, version_b=old)
    PanelJudgementFactory(
        item=PanelItemFactory(version_a=new, version_b=old),
        judge=world.panel_member,
        verdict=PanelJudgement.Verdict.A_BETTER,
    )
    return Site(world, reverse("generation:review", args=[world.assignment.pk, world.term.pk]))


def urls(world) -> dict[str, tuple[str | None, str]]:
    """page name -> (who, url)."""
    a, t = world.assignment.pk, world.term.pk
    return {
        "login": (None, reverse("login")),
        "dashboard-teacher": ("teacher", reverse("classes:dashboard")),
        "dashboard-head": ("head", reverse("classes:dashboard")),
        "class-page": ("teacher", reverse("classes:class_page", args=[a, t])),
        "review": ("teacher", reverse("generation:review", args=[a, t])),
        "head-queue": ("head", reverse("generation:head_queue")),
        "head-review": ("head", reverse("generation:head_review", args=[a, t])),
        "exports-index": ("teacher", reverse("exports:index")),
        "export-assignment": ("teacher", reverse("exports:assignment", args=[a, t])),
        "export-class": ("teacher", reverse("exports:class", args=[world.school_class.pk, t])),
        "copy": ("teacher", reverse("exports:assignment_copy", args=[a, t])),
        "quick-draft": ("teacher", reverse("generation:quick_draft")),
        "import": ("teacher", reverse("classes:import_upload", args=[a, t])),
        "password-change": ("teacher", reverse("password_change")),
        "panel": ("panel_member", reverse("learning:panel")),
        "panel-results": ("panel_member", reverse("learning:panel_results")),
        "quality-dashboard": ("head", reverse("learning:dashboard")),
        "training": ("superuser", reverse("learning:training")),
        "evaluations": ("superuser", reverse("learning:evaluations")),
        "admin-versions": ("superuser", reverse("admin:generation_modelversion_changelist")),
        "admin-index": ("admin", reverse("admin:index")),
        "admin-changelist": ("admin", reverse("admin:classes_student_changelist")),
    }


PAGES = [
    "login",
    "dashboard-teacher",
    "dashboard-head",
    "class-page",
    "review",
    "head-queue",
    "head-review",
    "exports-index",
    "export-assignment",
    "export-class",
    "copy",
    "quick-draft",
    "import",
    "password-change",
    "panel",
    "panel-results",
    "quality-dashboard",
    "training",
    "evaluations",
    "admin-versions",
    "admin-index",
    "admin-changelist",
]


def open_page(page, log_in, site: Site, name: str) -> None:
    who, url = urls(site.world)[name]
    if who is not None:
        log_in(getattr(site.world, who))
    response = page.goto(url)
    assert response.status == 200, f"{name}: {url} answered {response.status}"
    page.wait_for_load_state("load")


@pytest.mark.parametrize("name", PAGES)
def test_page_is_accessible_and_fits_a_phone(page, log_in, site, name):
    open_page(page, log_in, site, name)
    assert_accessible(page)

    page.set_viewport_size(PHONE)
    assert horizontal_overflow(page) <= 0, f"{name}: the page scrolls sideways at 390 px"
    # Reflowed, the page must still pass (a wrapped header, a scrolled table box...).
    assert_accessible(page)


def test_every_page_is_covered(world):
    assert sorted(PAGES) == sorted(urls(world))


def test_login_form_works_and_errors_are_announced(page, live_server, world):
    log_in_with_form(page, world.teacher.username, "mauvais-mot-de-passe")
    alert = page.get_by_role("alert")
    assert "incorrect" in alert.inner_text()
    assert_accessible(page)
    log_in_with_form(page, world.teacher.username)
    page.wait_for_url(f"{live_server.url}{reverse('classes:dashboard')}")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Mes classes")


def test_grade_table_scrolls_in_its_own_focusable_box_on_a_phone(page, log_in, site):
    open_page(page, log_in, site, "class-page")
    page.set_viewport_size(PHONE)
    box = page.locator(".table-scroll:has(#sheet)")
    assert box.get_attribute("tabindex") == "0"
    assert box.get_attribute("role") == "region"
    assert box.get_attribute("aria-labelledby") or box.get_attribute("aria-label")
    # The table is wider than the phone: its box scrolls, the page does not.
    widths = box.evaluate("b => [b.scrollWidth, b.clientWidth]")
    assert widths[0] > widths[1], widths
    assert horizontal_overflow(page) <= 0
    # A keyboard user reaches the box and scrolls it with the arrow keys.
    box.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("End")
    # Keyboard scrolling is smooth (animated): wait for it rather than read it at once.
    page.wait_for_function("() => document.querySelector('.table-scroll').scrollLeft > 0")


def test_header_wraps_on_a_phone(page, log_in, site):
    open_page(page, log_in, site, "dashboard-head")
    page.set_viewport_size(PHONE)
    # Every link and button of the header is inside the screen, none is cut or hidden.
    for element in page.locator("header.topbar a, header.topbar button").all():
        box = element.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (
            element.inner_text(),
            box,
        )


def test_the_audit_catches_what_it_must(page):
    """The audit is not a no-op: an unlabelled field and grey-on-white text fail it."""
    page.set_content(
        '<html lang="fr"><body><main><h1>Essai</h1><input type="text">'
        '<p class="faint">texte pâle</p></main></body></html>'
    )
    page.add_style_tag(content=".faint { color: #bbb; }")
    found = {v["id"] for v in axe_violations(page)}
    assert {"label", "color-contrast"} <= found, found
