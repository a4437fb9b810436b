"""The quality dashboard: every figure computed from Feedback rows this test writes, checked by
hand; who sees which rows."""

from __future__ import annotations

import re
from datetime import datetime
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from classes.models import Teacher
from generation import services
from generation.models import Draft, Feedback
from learning import dashboard
from learning.charts import bar_chart, line_chart
from tests.factories import (
    AppreciationFactory,
    ModelVersionFactory,
    SchoolClassFactory,
    StudentFactory,
    TeacherFactory,
    level,
    shared_subject,
)
from tests.generation.test_review import make_draft

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")


def at(month: int, day: int = 15) -> datetime:
    return datetime(2026, month, day, 12, 0, tzinfo=PARIS)


def flags(*codes: str) -> list[dict]:
    return [{"code": code, "message": f"Alerte {code}."} for code in codes]


def write_feedback(
    *,
    school_class,
    subject,
    term,
    version,
    edited: bool,
    distance: int,
    seconds: int | None,
    found: list[dict] = (),
    rating: str = "",
    reason: str = "",
    when: datetime,
    erased: bool = False,
    draft_text: str = "Brouillon du modèle.",
) -> Feedback:
    """One validation, linked to a new student's appreciation (or, erased, to nothing: the
    subject, level and trimester then come from its inputs only)."""
    student = StudentFactory(school_class=school_class)
    appreciation = None
    if not erased:
        appreciation = AppreciationFactory(student=student, subject=subject, term=term)
    row = Feedback.objects.create(
        appreciation=appreciation,
        school=school_class.school,
        draft_text=draft_text,
        final_text="Texte final de l'enseignant.",
        edited=edited,
        edit_distance=distance,
        seconds_spent=seconds,
        flags=list(found),
        rating=rating,
        reason=reason,
        model_version=version,
        inputs={
            "subject": subject.name,
            "level": school_class.level.name,
            "trimester": term.number,
            "averages": [12.0, None, None],
        },
    )
    Feedback.objects.filter(pk=row.pk).update(validated_at=when)
    if erased:
        student.delete()
    return row


@pytest.fixture
def rows(world):
    """world.school's validations in HG (headed by world.head) and HGGSP, plus rows that must
    never count: a text written without a draft, and another school's validations."""
    hg, hggsp = shared_subject("HG"), shared_subject("HGGSP")
    v1 = ModelVersionFactory(name="carte-2025")
    v2 = ModelVersionFactory(name="candidate-2026")
    seconde = world.school_class
    premiere = SchoolClassFactory(
        school=world.school,
        school_year=world.terms[0].school_year,
        level=level("1ere"),
        name="1ère 4",
    )
    t1, t2 = world.terms[0], world.terms[1]
    common = {"school_class": seconde, "subject": hg}
    # v1, HG, Seconde, 1er trimestre.
    write_feedback(**common, term=t1, version=v1, edited=False, distance=0, seconds=30,
                   rating="up", when=at(9))  # fmt: skip
    write_feedback(**common, term=t1, version=v1, edited=True, distance=10, seconds=60,
                   found=flags("grade"), rating="down", reason="tone", when=at(10))  # fmt: skip
    write_feedback(**common, term=t1, version=v1, edited=True, distance=20, seconds=None,
                   found=flags("grade", "name"), when=at(10, 20))  # fmt: skip
    write_feedback(**common, term=t1, version=v1, edited=False, distance=0, seconds=90,
                   found=flags("grammar", "grammar"), rating="down", reason="tone",
                   when=at(10, 25))  # fmt: skip
    # v2, HG, Seconde, 2e trimestre; one of them erased (subject from its inputs).
    write_feedback(**common, term=t2, version=v2, edited=False, distance=0, seconds=20,
                   rating="up", when=at(11))  # fmt: skip
    write_feedback(**common, term=t2, version=v2, edited=True, distance=6, seconds=40,
                   found=flags("length"), rating="down", reason="too_long",
                   when=at(11, 20))  # fmt: skip
    write_feedback(**common, term=t2, version=v2, edited=False, distance=0, seconds=10,
                   when=at(11, 25), erased=True)  # fmt: skip
    # v1, HGGSP, Première: the school admin's, not the HG head's.
    write_feedback(school_class=premiere, subject=hggsp, term=t1, version=v1, edited=True,
                   distance=30, seconds=50, when=at(10, 5))  # fmt: skip
    # Never counted: a text written without a draft; another school's validation.
    write_feedback(**common, term=t1, version=v1, edited=True, distance=40, seconds=5,
                   draft_text="", when=at(10))  # fmt: skip
    foreign_class = world.foreign_assignment.school_class
    write_feedback(school_class=foreign_class, subject=hg, term=world.foreign_term,
                   version=v1, edited=False, distance=0, seconds=7, found=flags("name"),
                   when=at(10))  # fmt: skip
    return v1, v2, premiere


def by_name(board) -> dict[str, dashboard.QualityStats]:
    return {v.name: v.stats for v in board.by_version}


# --- Figures, by hand ------------------------------------------------------------------------


def test_a_department_head_sees_their_subjects_figures(world, rows):
    board = dashboard.quality_dashboard(user=world.head)
    stats = by_name(board)
    assert list(stats) == ["candidate-2026", "carte-2025"]  # newest version first

    v1 = stats["carte-2025"]  # HG only: 4 validations
    assert v1.validations == 4
    assert v1.unchanged_share == pytest.approx(2 / 4)
    assert v1.mean_edit_distance == pytest.approx((0 + 10 + 20 + 0) / 4)
    assert v1.median_seconds == 60  # of 30, 60, 90 (one not measured)
    assert v1.timed == 3
    assert v1.flag_share("grade") == pytest.approx(2 / 4)
    assert v1.flag_share("name") == pytest.approx(1 / 4)
    assert v1.flag_share("grammar") == pytest.approx(1 / 4)  # two flags, one draft
    assert v1.flag_share("length") == 0
    assert (v1.thumbs_up, v1.thumbs_down) == (1, 2)
    assert v1.reasons == {"tone": 2}
    assert v1.reason_counts == [("Ton", 2)]

    v2 = stats["candidate-2026"]  # the erased row counts, from its inputs
    assert v2.validations == 3
    assert v2.unchanged_share == pytest.approx(2 / 3)
    assert v2.mean_edit_distance == pytest.approx((0 + 6 + 0) / 3)
    assert v2.median_seconds == 20  # of 20, 40, 10
    assert v2.flag_share("length") == pytest.approx(1 / 3)
    assert (v2.thumbs_up, v2.thumbs_down) == (1, 1)
    assert v2.reasons == {"too_long": 1}

    assert board.total.validations == 7
    assert [code for code, _ in board.flag_codes] == ["name", "grade", "grammar", "length"]
    # One row per version x subject x level x term.
    assert [
        (r.version_name, r.subject_name, r.level_name, r.trimester_label, r.stats.validations)
        for r in board.breakdown
    ] == [
        ("candidate-2026", "Histoire-Géographie", "Seconde", "2e trimestre", 3),
        ("carte-2025", "Histoire-Géographie", "Seconde", "1er trimestre", 4),
    ]


def test_a_school_admin_sees_the_whole_school_and_no_other(world, rows):
    board = dashboard.quality_dashboard(user=world.admin)
    v1 = by_name(board)["carte-2025"]
    assert v1.validations == 5  # HG's 4 and HGGSP's 1; not the other school's
    assert v1.unchanged_share == pytest.approx(2 / 5)
    assert v1.mean_edit_distance == pytest.approx((0 + 10 + 20 + 0 + 30) / 5)
    assert v1.median_seconds == pytest.approx((50 + 60) / 2)  # of 30, 50, 60, 90
    assert v1.flag_share("name") == pytest.approx(1 / 5)  # the other school's "name" not counted
    assert board.total.validations == 8
    subjects = {r.subject_name for r in board.breakdown}
    assert subjects == {"Histoire-Géographie", "Histoire-Géographie-Géopolitique-Science-Politique"}

    foreign_admin = TeacherFactory(
        school=world.foreign_teacher.school, role=Teacher.Role.SCHOOL_ADMIN
    )
    foreign = dashboard.quality_dashboard(user=foreign_admin)
    assert foreign.total.validations == 1
    assert foreign.total.flag_share("name") == 1


def test_over_time_per_month_and_version(world, rows):
    board = dashboard.quality_dashboard(user=world.head)
    assert [m.label for m in board.months] == ["sept. 2026", "oct. 2026", "nov. 2026"]
    # by_version follows board.by_version: [candidate-2026, carte-2025].
    september, october, november = board.months
    assert september.by_version[0] is None
    assert september.by_version[1].validations == 1
    assert september.by_version[1].unchanged_share == 1
    assert october.by_version[1].validations == 3
    assert october.by_version[1].unchanged_share == pytest.approx(1 / 3)
    assert november.by_version[0].validations == 3
    assert november.by_version[1] is None
    assert november.total.unchanged_share == pytest.approx(2 / 3)


def test_filters(world, rows):
    v1, v2, premiere = rows
    head = world.head
    by_trimester = dashboard.quality_dashboard(
        user=head, filters=dashboard.DashboardFilters(trimester=2)
    )
    assert list(by_name(by_trimester)) == ["candidate-2026"]
    by_version = dashboard.quality_dashboard(
        user=head, filters=dashboard.DashboardFilters(version=str(v1.pk))
    )
    assert by_version.total.validations == 4
    no_version = dashboard.quality_dashboard(
        user=head, filters=dashboard.DashboardFilters(version=dashboard.NO_VERSION)
    )
    assert no_version.total.validations == 0
    # A head who asks for a subject they do not head gets nothing of it.
    hggsp = dashboard.quality_dashboard(
        user=head, filters=dashboard.DashboardFilters(subject_id=shared_subject("HGGSP").pk)
    )
    assert hggsp.total.validations == 0
    by_level = dashboard.quality_dashboard(
        user=world.admin, filters=dashboard.DashboardFilters(level_id=premiere.level_id)
    )
    assert by_level.total.validations == 1
    assert by_level.total.mean_edit_distance == 30


def test_rows_without_a_recorded_version_are_their_own_group(world, rows):
    write_feedback(school_class=world.school_class, subject=shared_subject("HG"),
                   term=world.terms[0], version=None, edited=False, distance=0, seconds=12,
                   when=at(9, 2))  # fmt: skip
    board = dashboard.quality_dashboard(user=world.head)
    assert by_name(board)["Version non enregistrée"].validations == 1
    assert board.by_version[-1].version is None


# --- The page ------------------------------------------------------------------------------


def test_the_page_shows_the_figures_charts_and_tables(client, world, rows):
    client.force_login(world.head)
    response = client.get(reverse("learning:dashboard"))
    assert response.status_code == 200
    html = unescape(response.content.decode())
    # Charts: inline SVG with a title and a description, and the numbers in a table beside.
    assert html.count("<svg viewBox") == 4
    assert 'role="img"' in html and '<title id="chart-unchanged-title">' in html
    assert "carte-2025 : 50 % de 4" in html  # the chart's description
    assert "candidate-2026 : 66,7 % de 3" in html
    assert "<table" in html
    assert "Ton : 2" in html and "Trop long : 1" in html
    assert "7,5" in html  # v1's mean edit distance
    assert "sept. 2026" in html
    # The head's page never names the subject they do not head.
    assert "Géopolitique" not in html
    assert "cdn" not in html.lower()
    # SVG coordinates are numbers with a dot, whatever the page's French number format.
    coordinates = re.findall(r' (?:x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"', html)
    assert coordinates and all(re.fullmatch(r"-?\d+(\.\d+)?", c) for c in coordinates), coordinates
    points = re.findall(r'points="([^"]*)"', html)
    assert points and all(re.fullmatch(r"[\d., ]+", p) and "," in p for p in points)


def test_the_filter_form_narrows_the_page(client, world, rows):
    v1, v2, _ = rows
    client.force_login(world.head)
    html = unescape(
        client.get(
            reverse("learning:dashboard"), {"version": v2.pk, "trimester": 2}
        ).content.decode()
    )
    assert "candidate-2026 : 66,7 % de 3" in html
    assert "carte-2025 : " not in html
    # A stale or forged filter shows the whole scope, never an error.
    response = client.get(reverse("learning:dashboard"), {"subject": "abc", "version": "999"})
    assert response.status_code == 200


def test_an_empty_dashboard_says_so(client, world):
    client.force_login(world.admin)
    html = unescape(client.get(reverse("learning:dashboard")).content.decode())
    assert "Aucune validation de brouillon" in html


def test_who_sees_the_dashboard(client, world, rows):
    url = reverse("learning:dashboard")
    for user in (world.teacher, world.other_teacher,
                 TeacherFactory(school=None, is_superuser=True, is_staff=True),
                 TeacherFactory(on_panel=True)):  # fmt: skip
        client.force_login(user)
        assert client.get(url).status_code == 404, user
    for user in (world.head, world.admin):
        client.force_login(user)
        assert client.get(url).status_code == 200
    client.logout()
    assert client.get(url).status_code == 302


# --- Chart geometry ----------------------------------------------------------------------------


def test_bar_lengths_are_proportional():
    chart = bar_chart(
        chart_id="c",
        title="t",
        desc="d",
        rows=[("un", 1.0, "100 %"), ("moitié", 0.5, "50 %"), ("rien", None, "—")],
        maximum=1,
    )
    full, half, empty = chart.bars
    assert half.width == pytest.approx(full.width / 2)
    assert empty.width == 0
    assert full.x + full.width <= chart.axis_end


def test_a_line_skips_months_without_data():
    chart = line_chart(
        chart_id="c",
        title="t",
        desc="d",
        x_labels=["sept.", "oct.", "nov."],
        series=[("v1", [1.0, None, 0.0]), ("v2", [None, 0.5, None])],
    )
    first, second = chart.series
    assert [p.x for p in first.points] == [chart.left, chart.right]
    assert [p.y for p in first.points] == [chart.top, chart.bottom]
    assert second.points[0].y == pytest.approx((chart.top + chart.bottom) / 2)
    assert second.style != first.style


# --- From real validations -------------------------------------------------------------------


def test_real_validations_count_with_their_drafts_version(world):
    """Validations through the review service (not rows written by hand): the draft kept as
    is, the draft edited, a text written without a draft (not counted). The feedback's own
    version is not filled here: the draft's version stands for it."""
    version = ModelVersionFactory(name="active-2026")
    students = list(world.school_class.students.order_by("pk"))
    kept = make_draft(world, students[0], flags=flags("grade"))
    edited = make_draft(world, students[1])
    Draft.objects.update(model_version=version)
    for student, appreciation, text, seconds in (
        (students[0], kept, kept.text, 30),
        (students[1], edited, edited.text + " Bon courage.", 50),
    ):
        services.draft_validate(
            assignment=world.assignment,
            term=world.term,
            student=student,
            user=world.teacher,
            text=text,
            version=appreciation.version,
            seconds_spent=seconds,
            confirmed=True,
        )
    services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=students[2],
        user=world.teacher,
        text="Un texte écrit par l'enseignant.",
        version=0,
        confirmed=True,
    )
    assert Feedback.objects.count() == 3

    board = dashboard.quality_dashboard(user=world.head)
    [only] = board.by_version
    assert only.name == "active-2026"
    stats = only.stats
    assert stats.validations == 2
    assert stats.unchanged_share == pytest.approx(1 / 2)
    assert stats.mean_edit_distance == pytest.approx(len(" Bon courage.") / 2)
    assert stats.median_seconds == 40
    assert stats.flag_share("grade") == pytest.approx(1 / 2)
    [row] = board.breakdown
    assert (row.subject_name, row.level_name, row.trimester_label) == (
        "Histoire-Géographie",
        "Seconde",
        "2e trimestre",
    )
    assert (
        dashboard.quality_dashboard(
            user=world.head, filters=dashboard.DashboardFilters(version=str(version.pk))
        ).total.validations
        == 2
    )
