"""The torch side of a version's evaluation on the tiny model: the loss of the teachers' texts
(checked against a plain, unbatched cross-entropy), the drafts for a seed (the same twice),
and the memory given back between versions."""

from __future__ import annotations

import math

import torch
from transformers import AutoModelForCausalLM

from worker.backends.transformers import TransformersBackend, prompt_token_ids
from worker.evaluation import evaluate_model, reference_nll, reference_token_ids
from worker.testing import build_tokenizer, sample_messages

DATE = "26 July 2024"
TEXTS = [
    "Ensemble satisfaisant, des efforts à poursuivre.",
    "Trimestre encourageant : la participation orale est à développer pour progresser.",
    "Très bon trimestre.",
]


def examples() -> list[dict]:
    return [
        {"key": f"row-{index}", "messages": messages, "reference_text": text}
        for index, (messages, text) in enumerate(zip(sample_messages(), TEXTS, strict=True))
    ]


def test_reference_ids_are_the_generation_prompt_then_the_answer_and_its_end_of_turn():
    tokenizer = build_tokenizer()
    messages = sample_messages()[0]
    ids, prompt_length = reference_token_ids(tokenizer, messages, TEXTS[0], date_string=DATE)
    assert ids[:prompt_length] == prompt_token_ids(tokenizer, messages, date_string=DATE)
    answer = tokenizer.decode(ids[prompt_length:])
    assert answer == TEXTS[0] + "<|eot_id|>"


def test_batched_loss_equals_a_plain_cross_entropy_row_by_row(tiny_model):
    base, adapter = tiny_model
    backend = TransformersBackend(
        base_model=str(base), adapter=str(adapter), device="cpu", dtype="float32"
    )
    backend.load()
    rows = examples()
    total, tokens = reference_nll(
        backend.model, backend.tokenizer, rows, date_string=DATE, batch_size=3
    )
    expected_total, expected_tokens = 0.0, 0
    for row in rows:
        ids, prompt_length = reference_token_ids(
            backend.tokenizer, row["messages"], row["reference_text"], date_string=DATE
        )
        with torch.inference_mode():
            logits = backend.model(input_ids=torch.tensor([ids])).logits[0]
        targets = torch.tensor(ids[prompt_length:])
        expected_total += float(
            torch.nn.functional.cross_entropy(
                logits[prompt_length - 1 : -1].float(), targets, reduction="sum"
            )
        )
        expected_tokens += len(targets)
    assert tokens == expected_tokens
    assert math.isclose(total, expected_total, rel_tol=1e-4)


def test_a_version_gives_a_finite_loss_and_the_same_drafts_for_the_same_seed(tiny_model):
    base, adapter = tiny_model
    options = {"device": "cpu", "max_new_tokens": 6}
    first = evaluate_model(
        base_model=str(base),
        adapter=str(adapter),
        examples=examples(),
        seed=7,
        batch_size=2,
        backend_options=options,
    )
    again = evaluate_model(
        base_model=str(base),
        adapter=str(adapter),
        examples=examples(),
        seed=7,
        batch_size=2,
        backend_options=options,
    )
    other_seed = evaluate_model(
        base_model=str(base),
        adapter=str(adapter),
        examples=examples(),
        seed=8,
        batch_size=2,
        backend_options=options,
    )
    assert first["rows"] == 3
    assert math.isfinite(first["loss"]) and first["loss"] > 0
    assert first["loss"] == again["loss"]
    assert set(first["drafts"]) == {"row-0", "row-1", "row-2"}
    assert first["drafts"] == again["drafts"]
    assert first["drafts"] != other_seed["drafts"]
    assert other_seed["loss"] == first["loss"]  # the loss samples nothing


def test_the_model_is_freed_after_a_version(tiny_model, monkeypatch):
    base, adapter = tiny_model
    loaded = []
    real_load = TransformersBackend.load

    def recording_load(self):
        real_load(self)
        loaded.append(self)

    monkeypatch.setattr(TransformersBackend, "load", recording_load)
    evaluate_model(
        base_model=str(base),
        adapter=str(adapter),
        examples=examples()[:1],
        seed=1,
        backend_options={"device": "cpu", "max_new_tokens": 2},
    )
    assert len({id(backend) for backend in loaded}) == 1
    assert loaded[0].model is None and loaded[0].tokenizer is None


def test_the_loss_changes_with_the_adapter(tiny_model, tmp_path):
    """Two adapters over one base: the loss says which version is evaluated."""
    from worker.testing import write_model_pair

    base, adapter = tiny_model
    model = AutoModelForCausalLM.from_pretrained(base)
    _, other_adapter = write_model_pair(
        tmp_path,
        model=model,
        tokenizer=build_tokenizer(),
        lora_rank=8,
        lora_alpha=16,
        lora_b_std=0.5,
        seed=99,
    )
    options = {"device": "cpu", "max_new_tokens": 2}
    one = evaluate_model(
        base_model=str(base),
        adapter=str(adapter),
        examples=examples(),
        seed=1,
        backend_options=options,
    )
    two = evaluate_model(
        base_model=str(base),
        adapter=str(other_adapter),
        examples=examples(),
        seed=1,
        backend_options=options,
    )
    assert one["loss"] != two["loss"]


def test_the_drafting_model_of_the_process_is_released_first(tiny_model, settings):
    from generation.backends import get_backend, reset_backend_cache

    base, adapter = tiny_model
    settings.APPRECIATION_BACKEND = "worker.backends.transformers.TransformersBackend"
    settings.APPRECIATION_BASE_MODEL = str(base)
    settings.APPRECIATION_ADAPTER = str(adapter)
    settings.APPRECIATION_DEVICE = "cpu"
    reset_backend_cache()
    drafting = get_backend()
    drafting.load()
    evaluate_model(
        base_model=str(base),
        adapter=str(adapter),
        examples=examples()[:1],
        seed=1,
        backend_options={"device": "cpu", "max_new_tokens": 2},
    )
    # Released and forgotten by the process: the next job loads a fresh one.
    assert drafting.model is None
    assert get_backend() is not drafting
    reset_backend_cache()
