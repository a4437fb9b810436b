"""The teachers' panel: blind pairwise judgements and each version pair's win rate."""

from __future__ import annotations

import math
from html import unescape

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from classes.models import Teacher
from generation import selectors as generation_selectors
from learning import panel
from learning.charts import interval_chart
from learning.models import PanelJudgement
from tests.factories import (
    ModelVersionFactory,
    PanelItemFactory,
    PanelJudgementFactory,
    SchoolFactory,
    TeacherFactory,
)

pytestmark = pytest.mark.django_db

A_BETTER = PanelJudgement.Verdict.A_BETTER
B_BETTER = PanelJudgement.Verdict.B_BETTER
EQUAL = PanelJudgement.Verdict.EQUAL


def panel_teacher(**kwargs) -> Teacher:
    return TeacherFactory(on_panel=True, **kwargs)


def item_with_order(judge: Teacher, *, a_second: bool, **kwargs):
    """An item whose drawn order for this judge is the one asked (the draw is a keyed hash of
    the item and the judge: new items until one falls the right way; 1 in 2 each time)."""
    for _ in range(64):
        item = PanelItemFactory(**kwargs)
        if panel.a_shown_second(user=judge, item=item) == a_second:
            return item
        item.delete()
    raise AssertionError("64 draws without the order asked")


# --- The interval, by hand -----------------------------------------------------------------------


def test_wilson_interval_of_8_wins_in_10_by_hand():
    # p = 0.8, n = 10, z = 1.96: centre (0.8 + z²/20) / (1 + z²/10) = 0.71674,
    # half width z / (1 + z²/10) * sqrt(0.8*0.2/10 + z²/400) = 0.22658.
    interval = panel.wilson_interval(8, 10)
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_at_the_edges_and_the_middle():
    # 0 of 10: [0, z²/(n + z²)] = [0, 0.2775] — never below 0, unlike the normal interval.
    none_won = panel.wilson_interval(0, 10)
    assert none_won.low == pytest.approx(0)
    assert none_won.high == pytest.approx(0.2775, abs=1e-4)
    all_won = panel.wilson_interval(10, 10)
    assert all_won.low == pytest.approx(0.7225, abs=1e-4)
    assert all_won.high == pytest.approx(1)
    half = panel.wilson_interval(5, 10)
    assert half.low == pytest.approx(0.2366, abs=1e-4)
    assert half.high == pytest.approx(0.7634, abs=1e-4)
    assert panel.wilson_interval(0, 0) is None


def test_a_tie_is_half_a_win_in_the_rate_and_the_interval():
    old, new = ModelVersionFactory(name="v-ancienne"), ModelVersionFactory(name="v-nouvelle")
    verdicts = [A_BETTER, A_BETTER, A_BETTER, EQUAL, EQUAL, B_BETTER]
    for verdict in verdicts:
        item = PanelItemFactory(version_a=new, version_b=old)
        PanelJudgementFactory(item=item, judge=panel_teacher(), verdict=verdict)
    PanelItemFactory(version_a=new, version_b=old)  # not judged yet: counted as an item only

    [result] = panel.panel_results()
    assert (result.version_a, result.version_b) == (new, old)
    assert (result.wins, result.ties, result.losses) == (3, 2, 1)
    assert result.judgements == 6
    assert result.items == 7
    # (3 + 2/2) / 6
    assert result.win_rate == pytest.approx(4 / 6)
    z = 1.959963984540054
    p, n = 4 / 6, 6
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert result.interval.low == pytest.approx(centre - half)
    assert result.interval.high == pytest.approx(centre + half)


def test_a_pair_stored_both_ways_is_one_pair_seen_from_the_newer_version():
    old, new = ModelVersionFactory(), ModelVersionFactory()
    # Stored as (old, new): "A better" here means the old version won.
    reversed_item = PanelItemFactory(version_a=old, version_b=new)
    PanelJudgementFactory(item=reversed_item, judge=panel_teacher(), verdict=A_BETTER)
    PanelJudgementFactory(item=reversed_item, judge=panel_teacher(), verdict=B_BETTER)
    PanelJudgementFactory(item=reversed_item, judge=panel_teacher(), verdict=B_BETTER)
    straight = PanelItemFactory(version_a=new, version_b=old)
    PanelJudgementFactory(item=straight, judge=panel_teacher(), verdict=A_BETTER)

    [result] = panel.panel_results()
    assert (result.version_a, result.version_b) == (new, old)
    assert (result.wins, result.ties, result.losses) == (3, 0, 1)
    assert result.items == 2


def test_results_page_shows_counts_rate_interval_and_says_ties_count_half(client):
    old = ModelVersionFactory(name="adaptateur-carte")
    new = ModelVersionFactory(name="candidate-mars")
    for verdict in [A_BETTER] * 8 + [B_BETTER] * 2:
        PanelJudgementFactory(
            item=PanelItemFactory(version_a=new, version_b=old),
            judge=panel_teacher(),
            verdict=verdict,
        )
    client.force_login(panel_teacher())
    html = client.get(reverse("learning:panel_results")).content.decode()
    assert "candidate-mars" in html and "adaptateur-carte" in html
    assert "demi-victoire" in html
    assert "80 %" in html  # 8 of 10
    assert "49 % à 94,3 %" in html  # Wilson, 8 of 10
    # The chart: an image with a title and its numbers in the description, beside the table.
    assert 'role="img"' in html and '<title id="chart-win-rates-title">' in html
    assert "candidate-mars contre adaptateur-carte : 80 % (de 49 % à 94,3 %, 10 jugements)" in (
        unescape(html)
    )


def test_the_interval_chart_places_rate_and_bounds_on_one_scale():
    chart = interval_chart(
        chart_id="c", title="t", desc="d", rows=[("a / b", 0.5, 0.25, 1.0, "50 %")]
    )
    [row] = chart.rows
    assert row.rate_x == chart.middle_x
    assert row.low_x == pytest.approx(chart.left + (chart.right - chart.left) / 4)
    assert row.high_x == chart.right


# --- Blind, random order, mapped back on the server ---------------------------------------------


def test_the_page_shows_no_version_and_both_texts(client):
    judge = panel_teacher()
    item = PanelItemFactory(
        version_a=ModelVersionFactory(name="candidate-secrete"),
        version_b=ModelVersionFactory(name="active-secrete"),
    )
    client.force_login(judge)
    html = client.get(reverse("learning:panel")).content.decode()
    assert item.text_a in html and item.text_b in html
    assert "secrete" not in html
    assert "version A" not in html and "version B" not in html
    first = item.text_b if panel.a_shown_second(user=judge, item=item) else item.text_a
    assert html.index(first) < html.index(item.text_b if first == item.text_a else item.text_a)


@pytest.mark.parametrize("a_second", [False, True])
@pytest.mark.parametrize(
    "choice, verdict_if_a_first, verdict_if_a_second",
    [
        ("first", A_BETTER, B_BETTER),
        ("second", B_BETTER, A_BETTER),
        ("equal", EQUAL, EQUAL),
    ],
)
def test_the_post_maps_the_position_to_the_version(
    client, a_second, choice, verdict_if_a_first, verdict_if_a_second
):
    judge = panel_teacher()
    item = item_with_order(judge, a_second=a_second)
    client.force_login(judge)
    page = client.get(reverse("learning:panel")).content.decode()
    shown_first = item.text_b if a_second else item.text_a
    other = item.text_a if a_second else item.text_b
    assert page.index(shown_first) < page.index(other)  # the page shows the drawn order

    response = client.post(
        reverse("learning:panel_judge", args=[item.pk]), {"choice": choice, "reason": "Plus net."}
    )
    assert response.status_code == 302
    judgement = PanelJudgement.objects.get(item=item, judge=judge)
    assert judgement.a_shown_second is a_second
    assert judgement.verdict == (verdict_if_a_second if a_second else verdict_if_a_first)
    assert judgement.reason == "Plus net."


def test_a_client_sent_version_or_order_is_ignored(client):
    judge = panel_teacher()
    item = item_with_order(judge, a_second=True)
    client.force_login(judge)
    client.post(
        reverse("learning:panel_judge", args=[item.pk]),
        {"choice": "first", "verdict": "a_better", "a_shown_second": "false"},
    )
    judgement = PanelJudgement.objects.get(item=item, judge=judge)
    assert judgement.a_shown_second is True
    assert judgement.verdict == B_BETTER  # first shown was B's text


def test_the_order_is_drawn_per_judgement():
    """Over many items one judge sees A first and A second, and two judges of one item may
    see different orders: the order depends on nothing the versions say."""
    judges = [panel_teacher(), panel_teacher()]
    items = [PanelItemFactory() for _ in range(24)]
    draws = [[panel.a_shown_second(user=j, item=i) for i in items] for j in judges]
    assert set(draws[0]) == {True, False}
    assert draws[0] != draws[1]


def test_get_writes_nothing_and_a_reload_keeps_the_order(client):
    judge = panel_teacher()
    item = PanelItemFactory()
    client.force_login(judge)
    first = client.get(reverse("learning:panel")).content.decode()
    second = client.get(reverse("learning:panel")).content.decode()
    assert PanelJudgement.objects.count() == 0
    assert first.index(item.text_a) < first.index(item.text_b) or (
        first.index(item.text_b) < first.index(item.text_a)
    )
    order = lambda html: html.index(item.text_a) < html.index(item.text_b)  # noqa: E731
    assert order(first) == order(second)


# --- One judgement per item and judge; the next item -------------------------------------------


def test_one_judgement_per_item_and_judge(client):
    judge = panel_teacher()
    item = PanelItemFactory()
    panel.panel_judgement_record(user=judge, item=item, shown_choice="first")
    with pytest.raises(ValidationError):
        panel.panel_judgement_record(user=judge, item=item, shown_choice="second")
    client.force_login(judge)
    response = client.post(reverse("learning:panel_judge", args=[item.pk]), {"choice": "equal"})
    assert response.status_code == 302
    assert PanelJudgement.objects.filter(item=item, judge=judge).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        PanelJudgement.objects.create(item=item, judge=judge, verdict=EQUAL)


def test_an_unknown_choice_is_refused_in_french(client):
    judge = panel_teacher()
    item = PanelItemFactory()
    with pytest.raises(ValidationError):
        panel.panel_judgement_record(user=judge, item=item, shown_choice="a_better")
    client.force_login(judge)
    response = client.post(
        reverse("learning:panel_judge", args=[item.pk]), {"choice": "a"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "Choisissez l'une des trois réponses" in unescape(response.content.decode())
    assert not PanelJudgement.objects.exists()


def test_next_item_comes_by_htmx_and_judged_items_do_not_return(client):
    judge = panel_teacher()
    first, second = PanelItemFactory(), PanelItemFactory()
    same_version = ModelVersionFactory()
    PanelItemFactory(version_a=same_version, version_b=same_version)  # never shown
    # Another judge's judgement puts `first` behind `second` (the least judged comes first).
    PanelJudgementFactory(item=first, judge=panel_teacher(), verdict=EQUAL)
    assert panel.panel_next_item(user=judge) == second
    assert panel.panel_remaining_count(user=judge) == 2

    client.force_login(judge)
    response = client.post(
        reverse("learning:panel_judge", args=[second.pk]),
        {"choice": "first"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html  # the fragment only
    assert 'id="panel-item"' in html
    assert first.text_a in html and second.text_a not in html
    assert "votre choix est enregistré" in html

    client.post(reverse("learning:panel_judge", args=[first.pk]), {"choice": "second"})
    assert panel.panel_next_item(user=judge) is None
    assert "Aucune paire à comparer" in client.get(reverse("learning:panel")).content.decode()


# --- Who may judge --------------------------------------------------------------------------


def test_who_is_on_the_panel(client, world):
    item = PanelItemFactory()
    judge_url = reverse("learning:panel_judge", args=[item.pk])
    head = TeacherFactory(role=Teacher.Role.DEPARTMENT_HEAD, on_panel=True)
    superuser = TeacherFactory(school=None, is_superuser=True, is_staff=True)
    members = [panel_teacher(), head, superuser]
    outsiders = [
        world.teacher,
        world.head,
        world.admin,
        # A school admin is not a judge, even flagged.
        TeacherFactory(role=Teacher.Role.SCHOOL_ADMIN, on_panel=True),
        TeacherFactory(on_panel=True, is_active=False),
    ]
    for user in members:
        client.force_login(user)
        assert client.get(reverse("learning:panel")).status_code == 200
        assert client.get(reverse("learning:panel_results")).status_code == 200
    for user in outsiders:
        if not user.is_active:
            assert not panel.is_panel_member(user)
            continue
        client.force_login(user)
        for url in (reverse("learning:panel"), reverse("learning:panel_results")):
            assert client.get(url).status_code == 404, (user, url)
        assert client.post(judge_url, {"choice": "first"}).status_code == 404
    assert not PanelJudgement.objects.exists()
    client.logout()
    assert client.get(reverse("learning:panel")).status_code == 302


# --- Nothing identifying ----------------------------------------------------------------------


def test_nothing_identifies_a_student_or_a_school(client, world):
    """An item built from a real class's inputs, with whatever else a writer might have left
    in them: the page shows the inputs the model card's form shows, nothing else."""
    student = world.school_class.students.order_by("pk").first()
    readiness = generation_selectors.class_readiness(
        assignment=world.assignment, term=world.terms[0], students=[student]
    )[0]
    inputs = generation_selectors.dataset_inputs(
        student=student, assignment=world.assignment, term=world.terms[0], readiness=readiness
    )
    leaked = {
        **inputs,
        "student": f"{student.last_name} {student.first_name}",
        "student_id": student.pk,
        "school": world.school.name,
        "city": "Saint-Exemple-sur-Mer",
        "class": world.school_class.name,
    }
    item = PanelItemFactory(
        inputs=leaked,
        prompt_messages=[{"role": "user", "content": f"Élève {student.last_name} au lycée"}],
    )
    judge = panel_teacher(school=SchoolFactory(name="Collège du juge"))
    client.force_login(judge)
    html = client.get(reverse("learning:panel")).content.decode()
    assert item.text_a in html
    for secret in (
        student.last_name,
        student.first_name,
        world.school.name,
        "Saint-Exemple-sur-Mer",
        world.school_class.name,
    ):
        assert secret not in html, secret
    # The item's own section does not even show the judge's school (the header does).
    section = html[html.index('id="panel-item"') :]
    assert "Collège du juge" not in section
    # What the model card's form shows is there.
    assert "Histoire-Géographie" in html
    assert "Seconde" in html
    assert "12,5" in html  # the average, French style
    assert [label for label, _ in panel.shown_inputs(leaked)] == [
        "Discipline",
        "Niveau",
        "Trimestre",
        "Moyenne au premier trimestre (/20)",
        "Moyenne au deuxième trimestre (/20)",
        "Moyenne au troisième trimestre (/20)",
        "Comportement (/10)",
        "Participation (/10)",
        "Travail (/10)",
        "Redoublement",
    ]


def test_the_school_admin_puts_a_teacher_on_the_panel(client, world):
    """The teacher's page of the school's admin has the « membre du panel » box."""
    client.force_login(world.admin)
    url = reverse("admin:classes_teacher_change", args=[world.teacher.pk])
    assert 'name="on_panel"' in client.get(url).content.decode()
    teacher = world.teacher
    response = client.post(
        url,
        {
            "username": teacher.username,
            "last_name": teacher.last_name,
            "first_name": teacher.first_name,
            "email": "",
            "ent_id": "",
            "school": world.school.pk,
            "role": "teacher",
            "on_panel": "on",
            "is_active": "on",
            "sts_id": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    teacher.refresh_from_db()
    assert teacher.on_panel
    client.force_login(teacher)
    assert client.get(reverse("learning:panel")).status_code == 200


def test_inputs_named_as_the_prompt_names_them_are_shown_too():
    shown = dict(panel.shown_inputs({"subject_name": "Mathématiques", "trimester": 3}))
    assert shown == {"Discipline": "Mathématiques", "Trimestre": "3e trimestre"}
    assert panel.shown_inputs(["pas", "un", "dictionnaire"]) == []
