import pytest
from django.urls import reverse

from generation.checks import check_text
from generation.models import BannedPhrase
from generation.selectors import school_banned_phrases

pytestmark = pytest.mark.django_db


def test_school_admin_extends_the_banned_wording(world, login):
    client = login(world.admin)
    response = client.post(
        reverse("admin:generation_bannedphrase_add"), {"phrase": "en roue libre"}
    )
    assert response.status_code == 302
    phrase = BannedPhrase.objects.get()
    assert phrase.school == world.school
    banned = school_banned_phrases(school_id=world.school.pk)
    flags = check_text("Élève en roue libre ce trimestre.", banned_phrases=banned)
    assert "wording" in {flag.code for flag in flags}
    # Another school's list is its own.
    assert school_banned_phrases(school_id=world.foreign_assignment.school_class.school_id) == ()


def test_other_schools_phrases_are_invisible(world, login):
    foreign = BannedPhrase.objects.create(
        school=world.foreign_assignment.school_class.school, phrase="secret"
    )
    client = login(world.admin)
    page = client.get(reverse("admin:generation_bannedphrase_changelist")).content.decode()
    assert "secret" not in page
    url = reverse("admin:generation_bannedphrase_change", args=[foreign.pk])
    assert client.get(url).status_code == 404


def test_jobs_and_workers_are_for_superusers_only(world, login):
    client = login(world.admin)
    assert client.get(reverse("admin:generation_generationjob_changelist")).status_code == 403
