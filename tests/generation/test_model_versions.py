"""Model versions: the first from the settings, candidates, promotion, rollback, the admin, and
the version each draft, feedback and quick draft records (the locmem backend; the real
transformers backend on the tiny model is in tests/worker/test_model_version_switch.py)."""

from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.html import escape

from audit.models import AuditEvent
from generation import services
from generation.adapter_files import adapter_weights_sha256
from generation.backends import LocmemBackend, ModelLoadError, reset_backend_cache
from generation.models import Draft, Feedback, ModelVersion, QuickDraft, WorkerState
from generation.prompts import PromptInputs
from generation.selectors import active_model_version
from generation.services import quick_drafts
from generation.services.versions import (
    NO_PREVIOUS_VERSION_MESSAGE,
    drafts_plan_candidate_share,
    model_version_ensure_active,
    model_version_promote,
    model_version_register_candidate,
    model_version_roll_back,
)
from tests.factories import (
    ModelVersionFactory,
    StudentFactory,
    TeacherFactory,
    TermAssessmentFactory,
)

pytestmark = pytest.mark.django_db

CARD_BASE = "unsloth/Llama-3.2-3B-Instruct"
CARD_ADAPTER = "eltorio/Llama-3.2-3B-appreciation"


class ReleasingLocmemBackend(LocmemBackend):
    """The locmem backend, keeping every instance and how often each was released."""

    instances: list[ReleasingLocmemBackend] = []

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.releases = 0
        type(self).instances.append(self)

    def release(self) -> None:
        self.releases += 1


@pytest.fixture
def card_settings(settings):
    """The model card's adapter, by hub id (not in any cache here), with the locmem backend."""
    settings.APPRECIATION_BACKEND = f"{__name__}.ReleasingLocmemBackend"
    settings.APPRECIATION_BASE_MODEL = CARD_BASE
    settings.APPRECIATION_ADAPTER = CARD_ADAPTER
    settings.APPRECIATION_TEST_MODEL = False
    settings.APPRECIATION_SEED = 7
    ReleasingLocmemBackend.instances = []
    reset_backend_cache()
    yield settings
    reset_backend_cache()


@pytest.fixture
def superuser(db):
    return TeacherFactory(school=None, is_staff=True, is_superuser=True)


def fake_adapter(folder, payload: bytes):
    """An adapter folder as peft writes one (the weights' bytes are what the hash reads)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}", encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(payload)
    (folder / "README.md").write_text("not hashed", encoding="utf-8")
    return folder


def audit_events(event: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event=event).order_by("pk"))


# --- The first version ---------------------------------------------------------------------


def test_first_version_comes_from_the_settings_once(card_settings):
    first = model_version_ensure_active()
    again = model_version_ensure_active()
    assert again.pk == first.pk
    assert ModelVersion.objects.count() == 1
    assert (first.name, first.state) == ("v1", ModelVersion.State.ACTIVE)
    assert (first.base_model, first.adapter) == (CARD_BASE, CARD_ADAPTER)
    assert first.is_test_model is False
    assert first.parent is None and first.promoted_at is not None
    # A hub id that is not downloaded here: no weights to hash, left blank.
    assert first.adapter_sha256 == ""


def test_first_version_of_the_offline_test_model_hashes_its_weights(settings, tmp_path):
    adapter = fake_adapter(tmp_path / "adapter", b"lora weights")
    settings.APPRECIATION_BASE_MODEL = str(tmp_path / "base")
    settings.APPRECIATION_ADAPTER = str(adapter)
    settings.APPRECIATION_TEST_MODEL = True
    version = model_version_ensure_active()
    assert version.is_test_model is True
    expected = hashlib.sha256(b"adapter_model.safetensors\0lora weights").hexdigest()
    assert version.adapter_sha256 == expected


def test_the_settings_version_gives_way_to_the_real_model_never_to_the_test_model(
    card_settings, tmp_path
):
    real = model_version_ensure_active()
    card_settings.APPRECIATION_BASE_MODEL = str(tmp_path / "base")
    card_settings.APPRECIATION_ADAPTER = str(tmp_path / "adapter")
    card_settings.APPRECIATION_TEST_MODEL = True
    # A worker configured with the test model does not put it in service for every school.
    assert model_version_ensure_active().pk == real.pk

    ModelVersion.objects.filter(pk=real.pk).update(is_test_model=True)  # as if it were one
    card_settings.APPRECIATION_TEST_MODEL = False
    card_settings.APPRECIATION_BASE_MODEL = CARD_BASE
    card_settings.APPRECIATION_ADAPTER = "/srv/models/appreciation"
    now_active = model_version_ensure_active()
    assert now_active.pk != real.pk
    assert (now_active.name, now_active.adapter) == ("v2", "/srv/models/appreciation")
    assert now_active.replaced_id == real.pk
    real.refresh_from_db()
    assert real.state == ModelVersion.State.RETIRED
    (event,) = audit_events("model_version_promoted")
    assert event.detail["reason"] == "settings" and event.actor is None


def test_a_promoted_trained_version_is_not_replaced_by_the_settings(card_settings, superuser):
    candidate = model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/models/v2")
    model_version_promote(version=candidate, user=superuser)
    card_settings.APPRECIATION_ADAPTER = "/srv/models/other"
    assert model_version_ensure_active().pk == candidate.pk


# --- Candidates, promotion, rollback ------------------------------------------------------------


def test_a_candidate_records_its_origin_and_its_weights_hash(card_settings, tmp_path, superuser):
    adapter = fake_adapter(tmp_path / "run-1", b"trained weights")
    candidate = model_version_register_candidate(
        base_model=CARD_BASE,
        adapter=str(adapter),
        training_data={"snapshot": "s1", "rows": {"train": 300, "validation": 40, "test": 40}},
        training_settings={"r": 16, "lora_alpha": 16},
        user=superuser,
    )
    active = ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)
    assert candidate.state == ModelVersion.State.CANDIDATE
    assert candidate.parent_id == active.pk
    assert candidate.name == "v2"
    assert candidate.training_data["rows"]["train"] == 300
    assert candidate.adapter_sha256 == adapter_weights_sha256(str(adapter))
    assert candidate.adapter_sha256 == (
        hashlib.sha256(b"adapter_model.safetensors\0trained weights").hexdigest()
    )
    assert candidate.is_test_model is False  # as its parent
    (event,) = audit_events("model_version_registered")
    assert event.detail["version_id"] == candidate.pk and event.actor == superuser


def test_promotion_retires_the_active_version_and_is_audited(card_settings, superuser):
    first = model_version_ensure_active()
    candidate = ModelVersionFactory(parent=first)
    promoted = model_version_promote(version=candidate, user=superuser)
    first.refresh_from_db()
    assert promoted.state == ModelVersion.State.ACTIVE and promoted.promoted_at is not None
    assert promoted.replaced_id == first.pk
    assert first.state == ModelVersion.State.RETIRED and first.retired_at is not None
    assert ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).count() == 1
    (event,) = audit_events("model_version_promoted")
    assert event.actor == superuser
    assert event.detail == {
        "version_id": candidate.pk,
        "version": candidate.name,
        "previous_id": first.pk,
        "previous": first.name,
    }


def test_only_a_superuser_promotes_or_rolls_back(card_settings, world):
    first = model_version_ensure_active()
    candidate = ModelVersionFactory(parent=first)
    for user in (world.admin, world.head, world.teacher):
        with pytest.raises(PermissionDenied):
            model_version_promote(version=candidate, user=user)
        with pytest.raises(PermissionDenied):
            model_version_roll_back(user=user)
    candidate.refresh_from_db()
    assert candidate.state == ModelVersion.State.CANDIDATE
    assert not AuditEvent.objects.filter(event__startswith="model_version").exists()


def test_promoting_the_active_version_changes_nothing(card_settings, superuser):
    first = model_version_ensure_active()
    with pytest.raises(ValidationError, match="déjà en service"):
        model_version_promote(version=first, user=superuser)


def test_rollback_walks_back_the_promotions_one_click_each(card_settings, superuser):
    v1 = model_version_ensure_active()
    v2 = model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/a2")
    v3 = model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/a3")
    model_version_promote(version=v2, user=superuser)
    model_version_promote(version=v3, user=superuser)

    assert model_version_roll_back(user=superuser).pk == v2.pk
    states = dict(ModelVersion.objects.values_list("name", "state"))
    assert states == {"v1": "retired", "v2": "active", "v3": "retired"}
    assert model_version_roll_back(user=superuser).pk == v1.pk
    with pytest.raises(ValidationError) as error:
        model_version_roll_back(user=superuser)
    assert error.value.messages == [NO_PREVIOUS_VERSION_MESSAGE]
    assert ModelVersion.objects.get(state="active").pk == v1.pk
    rolled_back = audit_events("model_version_rolled_back")
    assert [(e.detail["previous"], e.detail["version"]) for e in rolled_back] == [
        ("v3", "v2"),
        ("v2", "v1"),
    ]
    # A retired version can be put back in service; rolling back then returns to v1.
    model_version_promote(version=v3, user=superuser)
    assert model_version_roll_back(user=superuser).pk == v1.pk


def test_the_database_refuses_a_second_active_version(db):
    ModelVersionFactory(state=ModelVersion.State.ACTIVE)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersionFactory(state=ModelVersion.State.ACTIVE)


# --- Drafts, feedback and quick drafts record their version -------------------------------------


def make_ready(world):
    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)


def run_class_job(world):
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="gpu-test")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_detail
    return job


def test_a_job_after_a_promotion_drafts_with_the_new_version(card_settings, world, superuser):
    make_ready(world)
    first_job = run_class_job(world)
    v1 = ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)
    assert {d.model_version_id for d in first_job.drafts.all()} == {v1.pk}
    assert {d.model_adapter for d in first_job.drafts.all()} == {CARD_ADAPTER}
    (v1_backend,) = ReleasingLocmemBackend.instances
    assert v1_backend.options["adapter"] == CARD_ADAPTER

    v2 = model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/models/v2")
    model_version_promote(version=v2, user=superuser)
    second_job = run_class_job(world)  # the same worker process: no restart

    drafts = list(second_job.drafts.all())
    assert {d.model_version_id for d in drafts} == {v2.pk}
    assert {(d.model_base, d.model_adapter) for d in drafts} == {(CARD_BASE, "/srv/models/v2")}
    assert len(ReleasingLocmemBackend.instances) == 2
    v2_backend = ReleasingLocmemBackend.instances[1]
    assert v2_backend.options == {
        "base_model": CARD_BASE,
        "adapter": "/srv/models/v2",
        "test_model": False,
    }
    assert len(v2_backend.sent) == len(drafts)
    # The previous version's model is let go before the new one is loaded.
    assert (v1_backend.releases, v2_backend.releases) == (1, 0)
    state = WorkerState.objects.get(hostname="gpu-test")
    assert state.model_info["model_version"] == v2.name
    assert state.model_info["adapter"] == "/srv/models/v2"

    model_version_roll_back(user=superuser)
    third_job = run_class_job(world)
    assert {d.model_version_id for d in third_job.drafts.all()} == {v1.pk}
    assert v2_backend.releases == 1


def test_feedback_written_on_validation_carries_the_version(card_settings, world):
    make_ready(world)
    job = run_class_job(world)
    draft = job.drafts.order_by("pk").first()
    services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=draft.student,
        user=world.teacher,
        text=draft.text,
        version=1,
    )
    feedback = Feedback.objects.get(draft=draft)
    assert feedback.model_version_id == draft.model_version_id is not None
    assert feedback.model_adapter == CARD_ADAPTER


def test_a_quick_draft_records_its_version(card_settings, world, superuser, login):
    v2 = model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/models/v2")
    model_version_promote(version=v2, user=superuser)
    quick = quick_drafts.quick_draft_create(
        user=world.teacher,
        inputs=PromptInputs("Histoire-Géographie", 2, (12, 13, None), 7, 6, 8),
        level_name="2nde",
    )
    quick_drafts.quick_draft_run(quick_draft_id=quick.pk)
    quick.refresh_from_db()
    assert quick.status == QuickDraft.Status.DONE
    assert quick.model_version_id == v2.pk
    page = login(world.teacher).get(reverse("generation:quick_draft_result", args=[quick.pk]))
    assert "version v2" in page.content.decode()


# --- Pages --------------------------------------------------------------------------------------


def test_review_and_head_pages_show_which_version_drafted(card_settings, world, login, superuser):
    make_ready(world)
    run_class_job(world)
    v2 = model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/models/v2")
    v2.name = "v2-juin"
    v2.save()
    model_version_promote(version=v2, user=superuser)
    run_class_job(world)  # the earlier drafts go to « Textes précédents »

    student = world.school_class.students.order_by("pk").first()
    current = Draft.objects.filter(student=student, model_version=v2).get()
    services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=student,
        user=world.teacher,
        text=current.text,
        version=2,
    )
    page = login(world.teacher).get(
        reverse("generation:review", args=[world.assignment.pk, world.term.pk])
    )
    body = page.content.decode()
    assert page.status_code == 200
    assert body.count("Brouillon : version v2-juin") == 3
    assert "Brouillon du modèle (version v1)" in body

    head_page = login(world.head).get(
        reverse("generation:head_review", args=[world.assignment.pk, world.term.pk])
    )
    assert head_page.status_code == 200
    assert "Brouillon : version v2-juin" in head_page.content.decode()


# --- The admin ------------------------------------------------------------------------------------


def test_superuser_promotes_and_rolls_back_from_the_admin(card_settings, client, superuser):
    first = model_version_ensure_active()
    candidate = ModelVersionFactory(name="v2", parent=first)
    client.force_login(superuser)

    listing = client.get(reverse("admin:generation_modelversion_changelist"))
    assert listing.status_code == 200
    assert "Revenir à la version précédente" in listing.content.decode()
    page = client.get(reverse("admin:generation_modelversion_change", args=[candidate.pk]))
    promote_url = reverse("admin:generation_modelversion_promote", args=[candidate.pk])
    assert promote_url in page.content.decode()

    confirmation = client.get(promote_url)
    assert confirmation.status_code == 200
    assert "Oui, mettre en service" in confirmation.content.decode()
    candidate.refresh_from_db()
    assert candidate.state == ModelVersion.State.CANDIDATE  # a GET writes nothing

    response = client.post(promote_url)
    assert response.status_code == 302
    candidate.refresh_from_db()
    assert candidate.state == ModelVersion.State.ACTIVE
    assert audit_events("model_version_promoted")[0].actor == superuser

    roll_back_url = reverse("admin:generation_modelversion_roll_back")
    confirmation = client.get(roll_back_url)
    assert "Oui, revenir à cette version" in confirmation.content.decode()
    assert client.post(roll_back_url).status_code == 302
    first.refresh_from_db()
    assert first.state == ModelVersion.State.ACTIVE
    # Nothing more to undo: said plainly, nothing changes.
    response = client.post(roll_back_url, follow=True)
    assert escape(NO_PREVIOUS_VERSION_MESSAGE) in response.content.decode()
    first.refresh_from_db()
    assert first.state == ModelVersion.State.ACTIVE


def test_a_school_admin_never_sees_the_model_versions(card_settings, client, world):
    first = model_version_ensure_active()
    candidate = ModelVersionFactory(parent=first)
    client.force_login(world.admin)
    assert "versions du modèle" not in client.get(reverse("admin:index")).content.decode()
    assert client.get(reverse("admin:generation_modelversion_changelist")).status_code == 403
    promote_url = reverse("admin:generation_modelversion_promote", args=[candidate.pk])
    roll_back_url = reverse("admin:generation_modelversion_roll_back")
    for url in (promote_url, roll_back_url):
        assert client.get(url).status_code == 404
        assert client.post(url).status_code == 404
    candidate.refresh_from_db()
    assert candidate.state == ModelVersion.State.CANDIDATE
    assert not AuditEvent.objects.filter(event__startswith="model_version").exists()


def test_the_school_admin_opts_in_with_the_explanation_on_the_page(client, world):
    school = world.school
    assert school.feedback_trains_shared_models is False
    client.force_login(world.admin)
    url = reverse("admin:classes_school_change", args=[school.pk])
    page = client.get(url).content.decode()
    assert "Amélioration du modèle partagé" in page
    assert "sans nom ni identifiant d'élève" in page
    assert "Décochée par défaut" in page

    form = client.get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name in form.fields
    }
    data.update({"feedback_trains_shared_models": "on", "_save": "Enregistrer"})
    data = {k: ("on" if v is True else v) for k, v in data.items() if v is not False}
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    school.refresh_from_db()
    assert school.feedback_trains_shared_models is True
    (event,) = audit_events("training_opt_in_changed")
    assert event.detail == {"enabled": True}
    assert event.school_id == school.pk and event.actor == world.admin


# --- A share of the drafts from the newest candidate, blind ---------------------------------------


class BrokenCandidateBackend(ReleasingLocmemBackend):
    """The locmem backend whose candidate adapter cannot be loaded."""

    def load(self) -> None:
        if self.options.get("adapter", "").endswith("broken"):
            raise ModelLoadError("no weights in the candidate's folder")
        super().load()


def class_of(world, size: int):
    for index in range(size - world.school_class.students.count()):
        StudentFactory(school_class=world.school_class, last_name=f"Ajout{index:02d}")
    make_ready(world)


def test_a_share_of_the_class_is_drafted_blind_by_the_newest_candidate(card_settings, world):
    card_settings.APPRECIATION_CANDIDATE_SHARE = 0.25
    class_of(world, 8)
    active = model_version_ensure_active()
    model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/models/older")
    candidate = model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/models/new")

    job = run_class_job(world)
    by_version = {}
    for draft in job.drafts.all():
        by_version.setdefault(draft.model_version_id, []).append(draft)
    assert {pk: len(drafts) for pk, drafts in by_version.items()} == {
        candidate.pk: 2,  # a quarter of 8, exactly
        active.pk: 6,
    }
    assert {d.model_adapter for d in by_version[candidate.pk]} == {"/srv/models/new"}
    # One model at a time: the candidate's first, then the active version's (the candidate's
    # let go before it is loaded).
    candidate_backend, active_backend = ReleasingLocmemBackend.instances
    assert candidate_backend.options["adapter"] == "/srv/models/new"
    assert (len(candidate_backend.sent), len(active_backend.sent)) == (2, 6)
    assert (candidate_backend.releases, active_backend.releases) == (1, 0)

    # The teacher's validation keeps the version: acceptance is compared per version.
    draft = by_version[candidate.pk][0]
    services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=draft.student,
        user=world.teacher,
        text=draft.text,
        version=1,
    )
    assert Feedback.objects.get(draft=draft).model_version_id == candidate.pk


def test_the_blind_share_picks_the_same_drafts_at_every_delivery(card_settings, world):
    card_settings.APPRECIATION_CANDIDATE_SHARE = 0.5
    class_of(world, 6)
    active = model_version_ensure_active()
    candidate = model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/models/new")
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)

    def planned():
        return set(job.drafts.filter(model_version=candidate).values_list("pk", flat=True))

    assert drafts_plan_candidate_share(job_id=job.pk, active=active) == candidate
    first = planned()
    assert len(first) == 3
    drafts_plan_candidate_share(job_id=job.pk, active=active)
    assert planned() == first
    # Share set back to 0: the plan is forgotten, every draft is the active version's.
    card_settings.APPRECIATION_CANDIDATE_SHARE = 0
    assert drafts_plan_candidate_share(job_id=job.pk, active=active) is None
    assert planned() == set()


def test_a_test_model_candidate_never_drafts_blind_for_a_real_model(card_settings, world):
    card_settings.APPRECIATION_CANDIDATE_SHARE = 1
    make_ready(world)
    active = model_version_ensure_active()
    model_version_register_candidate(
        base_model=CARD_BASE, adapter="/srv/models/noise", is_test_model=True
    )
    job = run_class_job(world)
    assert {d.model_version_id for d in job.drafts.all()} == {active.pk}


def test_a_candidate_that_cannot_load_leaves_its_drafts_to_the_active_version(card_settings, world):
    card_settings.APPRECIATION_BACKEND = f"{__name__}.BrokenCandidateBackend"
    card_settings.APPRECIATION_CANDIDATE_SHARE = 0.5
    make_ready(world)
    active = model_version_ensure_active()
    model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/models/broken")
    job = run_class_job(world)
    assert {d.model_version_id for d in job.drafts.all()} == {active.pk}
    assert {d.status for d in job.drafts.all()} == {Draft.Status.GENERATED}


def test_no_page_names_the_versions_while_the_comparison_is_blind(
    card_settings, world, login, superuser
):
    card_settings.APPRECIATION_CANDIDATE_SHARE = 0.5
    make_ready(world)
    model_version_ensure_active()
    model_version_register_candidate(base_model=CARD_BASE, adapter="/srv/models/new")
    job = run_class_job(world)
    assert job.drafts.exclude(model_version=None).count() == 3
    review_url = reverse("generation:review", args=[world.assignment.pk, world.term.pk])
    head_url = reverse("generation:head_review", args=[world.assignment.pk, world.term.pk])
    assert "version v" not in login(world.teacher).get(review_url).content.decode()
    assert "version v" not in login(world.head).get(head_url).content.decode()
    card_settings.APPRECIATION_CANDIDATE_SHARE = 0
    assert "Brouillon : version v" in login(world.teacher).get(review_url).content.decode()


def test_pages_read_the_active_version_without_writing(card_settings):
    assert active_model_version() is None
    assert not ModelVersion.objects.exists()
    created = model_version_ensure_active()
    assert active_model_version() == created


def test_a_hub_adapter_is_hashed_from_the_hugging_face_cache_only(tmp_path):
    """A hub id is looked up in the cache (never downloaded): its snapshot's weights count."""
    repo = tmp_path / "models--owner--adapter"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123", encoding="utf-8")
    (snapshot / "adapter_model.safetensors").write_bytes(b"cached weights")
    expected = hashlib.sha256(b"adapter_model.safetensors\0cached weights").hexdigest()
    assert adapter_weights_sha256("owner/adapter", cache_dir=tmp_path) == expected
    assert adapter_weights_sha256("owner/not-cached", cache_dir=tmp_path) == ""
    assert adapter_weights_sha256(str(tmp_path / "no-such-folder")) == ""
