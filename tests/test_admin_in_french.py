"""The admin speaks French: model and field names, column titles, filters, fieldsets, actions.

Django writes an English label wherever a model or a field leaves it out (the class name split
into words, the field's name with spaces): the tests look for those labels in the models and in
every admin page a superuser and a school admin can open.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import label_for_field
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse
from django.utils import translation
from django.utils.text import camel_case_to_spaces

from audit.services import audit_record
from generation.models import GenerationJob, WorkerState
from tests.factories import PASSWORD, TeacherFactory

OUR_APPS = ("classes", "generation", "audit", "learning")
# Field names whose automatic label is already the French word.
SAME_IN_FRENCH = {"code", "participation", "version"}


def our_models():
    return [model for app in OUR_APPS for model in apps.get_app_config(app).get_models()]


def our_fields(model):
    return [
        field
        for field in model._meta.get_fields()
        if not field.auto_created and (field.concrete or field.many_to_many)
    ]


def english_labels() -> set[str]:
    """Every label Django would make up in English for our models, fields and admin columns."""
    labels = set()
    for model in our_models():
        auto = camel_case_to_spaces(model.__name__)
        labels |= {auto, f"{auto}s"}
        labels |= {
            field.name.replace("_", " ")
            for field in our_fields(model)
            if field.name not in SAME_IN_FRENCH
        }
    for model_admin in admin.site._registry.values():
        for name in [*model_admin.list_display, *getattr(model_admin, "readonly_fields", ())]:
            if isinstance(name, str) and name not in SAME_IN_FRENCH and name != "__str__":
                labels.add(name.replace("_", " "))
    return labels - {"id", "pk"}


@pytest.mark.parametrize("model", our_models(), ids=lambda m: m._meta.label)
def test_every_model_names_itself_in_french(model):
    options = model._meta.original_attrs
    assert "verbose_name" in options, f"{model._meta.label}: no verbose_name"
    assert "verbose_name_plural" in options, f"{model._meta.label}: no verbose_name_plural"
    assert model._meta.verbose_name != camel_case_to_spaces(model.__name__)


@pytest.mark.parametrize("model", our_models(), ids=lambda m: m._meta.label)
def test_every_field_has_a_french_label(model):
    with translation.override("fr"):
        english = [
            field.name
            for field in our_fields(model)
            if field.name not in SAME_IN_FRENCH
            and str(field.verbose_name) == field.name.replace("_", " ")
        ]
    assert english == [], f"{model._meta.label}: fields without a French label: {english}"


def test_every_admin_column_has_a_french_title(db):
    english = english_labels()
    found = []
    with translation.override("fr"):
        for model, model_admin in admin.site._registry.items():
            for name in model_admin.list_display:
                title = str(label_for_field(name, model, model_admin))
                if title.lower() in english:
                    found.append((model._meta.label, name, title))
    assert found == []


class _Texts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.texts: list[str] = []

    def handle_data(self, data):
        text = " ".join(data.split())
        if text:
            self.texts.append(text)


def visible_texts(page: str) -> list[str]:
    parser = _Texts()
    parser.feed(page)
    return parser.texts


def _normalized(text: str) -> str:
    text = text.strip().rstrip(":").strip().lower()
    return text.removeprefix("par ").strip()


def admin_urls(user) -> list[str]:
    request = RequestFactory().get("/admin/")
    request.user = user
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        if not model_admin.has_view_permission(request):
            continue
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        if model_admin.has_add_permission(request):
            urls.append(reverse("admin:{}_{}_add".format(*info)))
        first = model_admin.get_queryset(request).order_by("pk").first()
        if first is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[first.pk]))
    return urls


@pytest.mark.parametrize("who", ["superuser", "school_admin"])
def test_no_admin_page_shows_an_english_label(world, client, who):
    GenerationJob.objects.create(assignment=world.assignment, term=world.term)
    WorkerState.objects.create(hostname="gpu-1")
    audit_record(event="export", actor=world.teacher, kind="csv")
    # Lists with rows, so that their column titles show; the login throttle's too.
    attempt = {"ip_address": "192.0.2.1", "user_agent": "test", "username": "x", "path_info": "/"}
    AccessAttempt.objects.create(**attempt, failures_since_start=5, get_data="", post_data="")
    AccessFailureLog.objects.create(**attempt, locked_out=True)
    AccessLog.objects.create(**attempt)
    Group.objects.create(name="Secrétariat")
    user = world.admin
    if who == "superuser":
        user = TeacherFactory(school=None, is_staff=True, is_superuser=True)
    assert client.login(username=user.username, password=PASSWORD)
    english = english_labels()

    found = {}
    urls = admin_urls(user)
    assert len(urls) > 10
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        texts = [t for t in visible_texts(response.content.decode()) if _normalized(t) in english]
        if texts:
            found[url] = texts
    assert found == {}
