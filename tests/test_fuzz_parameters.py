"""Every view's parameters fed junk: a 400, a 404 or a French message, never a 500.

The URL table of tests/test_url_security.py names every view, its methods and its owner; each
view is called by its owner with junk in every parameter any view reads (query string and
form), so a parameter parsed by hand (int(), parse_datetime, get_object_or_404 on a string)
shows up here as a 500.
"""

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import TeacherFactory
from tests.test_url_security import URLS, actors, build_objects, no_task_is_queued, path_for

__all__ = ["no_task_is_queued"]  # the autouse fixture: nothing reaches a broker

pytestmark = pytest.mark.django_db

# Every parameter name a view of the platform reads, from a request's GET or POST.
PARAMETERS = (
    "since", "student", "finals", "rating", "reason", "text", "version", "draft", "confirmed",
    "seconds_spent", "trimestre", "value", "comment", "payload", "next", "subject", "level",
    "trimester", "average_1", "average_2", "average_3", "behaviour", "participation", "work",
    "school_year", "status", "term", "format", "file", "choice", "candidate",
)  # fmt: skip

JUNK = st.one_of(
    st.sampled_from(
        [
            "abc",
            "1e5",
            "-1",
            "0",
            "99999999999999999999",
            "2026-02-30T10:00:00",
            "NaN",
            "",
            "%00",
            "\x00",
            "' OR 1=1 --",
            "<script>alert(1)</script>",
            "1.5",
            " ",
            "true",
            "[]",
        ]
    ),  # fmt: skip
    st.text(max_size=40),
)

VIEWS = [(name, method) for name, spec in sorted(URLS.items()) for method in spec.methods]


def _owner_and_target(spec):
    if not spec.allowed:
        return "superuser", None  # a superuser's page (the model's evaluations)
    for actor, target in sorted(spec.allowed, key=lambda pair: (pair[1] or "", pair[0])):
        if target in (None, "own"):
            return actor, target
    return next(iter(spec.allowed))


@pytest.mark.parametrize(("name", "method"), VIEWS)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.dictionaries(st.sampled_from(PARAMETERS), JUNK, max_size=6))
def test_junk_parameters_never_answer_500(world, name, method, data):
    spec = URLS[name]
    actor, target = _owner_and_target(spec)
    # Hypothesis runs every example on the same `world`: its objects are built once.
    if "_fuzz" not in world.__dict__:
        people = {**actors(world), "superuser": TeacherFactory(school=None, is_superuser=True)}
        world.__dict__["_fuzz"] = (build_objects(world), people)
    objects, people = world.__dict__["_fuzz"]
    owned = objects[target] if target else None
    user = people[actor]
    client = Client(raise_request_exception=False)
    client.force_login(user)
    url = path_for(name, owned)
    for htmx in (False, True):
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        send = client.get if method == "get" else client.post
        response = send(url, data, **headers)
        assert response.status_code < 500, (name, method, data, response.status_code)
