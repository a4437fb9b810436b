"""A promotion reaches a real worker: the next job loads the new adapter through the real
transformers backend (tiny model, CPU), without a restart, and lets the previous one go."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer, LlamaForCausalLM

from generation import services
from generation.backends import get_backend
from generation.models import ModelVersion
from generation.services.versions import (
    model_version_ensure_active,
    model_version_promote,
    model_version_register_candidate,
    model_version_roll_back,
)
from tests.factories import TeacherFactory, TermAssessmentFactory
from worker.backends.transformers import TransformersBackend
from worker.testing import write_model_pair

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_adapter(tiny_model_dirs, tmp_path):
    """Another LoRA over the same tiny base (other random weights): a training run's output."""
    base, _ = tiny_model_dirs
    model = LlamaForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    _, adapter = write_model_pair(
        tmp_path / "run-2",
        model=model,
        tokenizer=tokenizer,
        lora_rank=8,
        lora_alpha=16,
        lora_b_std=0.5,
        seed=4321,
    )
    return adapter


def run_class_job(world):
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="gpu-test")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_detail
    return list(job.drafts.all())


def test_promotion_makes_the_real_worker_draft_with_the_new_adapter(
    world, tiny_model_settings, second_adapter
):
    base = tiny_model_settings.APPRECIATION_BASE_MODEL
    first_adapter = tiny_model_settings.APPRECIATION_ADAPTER
    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)
    superuser = TeacherFactory(school=None, is_staff=True, is_superuser=True)

    drafts = run_class_job(world)
    v1 = model_version_ensure_active()
    assert v1.is_test_model and v1.adapter == first_adapter
    assert {d.model_version_id for d in drafts} == {v1.pk}
    v1_backend = get_backend(base_model=base, adapter=first_adapter, test_model=True)
    assert isinstance(v1_backend, TransformersBackend) and v1_backend.model is not None

    v2 = model_version_register_candidate(base_model=base, adapter=str(second_adapter))
    assert v2.is_test_model and v2.adapter_sha256 not in ("", v1.adapter_sha256)
    model_version_promote(version=v2, user=superuser)
    drafts = run_class_job(world)

    assert {d.model_version_id for d in drafts} == {v2.pk}
    assert {d.model_adapter for d in drafts} == {str(second_adapter)}
    assert all(d.text or d.raw_texts for d in drafts)
    v2_backend = get_backend(base_model=base, adapter=str(second_adapter), test_model=True)
    assert v2_backend is not v1_backend
    assert v2_backend.adapter == str(second_adapter) and v2_backend.model is not None
    # One model in memory: the previous version's was released when the new one came in.
    assert v1_backend.model is None and v1_backend.status == "loading"

    assert model_version_roll_back(user=superuser).pk == v1.pk
    drafts = run_class_job(world)
    assert {d.model_version_id for d in drafts} == {v1.pk}
    assert {d.model_adapter for d in drafts} == {first_adapter}
    assert ModelVersion.objects.get(state="active").pk == v1.pk
