"""TransformersBackend on the tiny random Llama: real loading, merging, templating, batching
and sampling. The texts are noise: tests assert shapes, settings and checks, never wording."""

import datetime
import shutil

import huggingface_hub.constants
import pytest
import torch
from django.core.management import CommandError, call_command
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig

from generation.backends import (
    STATUS_FAILED,
    STATUS_LOADING,
    STATUS_READY,
    GenerationRequest,
    ModelLoadError,
    get_backend,
    reset_backend_cache,
)
from generation.drafting import DraftItem, draft_with_checks
from generation.prompts import PromptInputs, build_messages
from worker.backends import transformers as transformers_backend
from worker.backends.transformers import (
    CPU_FREE_MEMORY_SHARE,
    MAX_AUTO_BATCH_SIZE,
    TransformersBackend,
    cpu_has_native_bf16,
    kv_cache_bytes_per_token,
)
from worker.testing import EOT, PAD

BACKEND_PATH = "worker.backends.transformers.TransformersBackend"


def make_backend(tiny_model, **options):
    base, adapter = tiny_model
    options.setdefault("max_new_tokens", 6)
    return TransformersBackend(base_model=str(base), adapter=str(adapter), **options)


def varied_requests(count):
    """Real prompts of different lengths: subjects and trimesters vary."""
    profiles = [
        ("Histoire-Géographie", 1, (12, None, None)),
        ("Sciences économiques et sociales", 3, (8.5, 9.25, 11)),
        ("Anglais", 2, (14, 15.5, None)),
        ("EPS", 1, (17, None, None)),
        ("Physique-Chimie", 3, (10, 12, 13.75)),
        ("HGGSP", 2, (6, 7.5, None)),
    ]
    requests = []
    for index in range(count):
        subject, trimester, averages = profiles[index % len(profiles)]
        inputs = PromptInputs(subject, trimester, averages, 5 + index % 5, 6, 7)
        requests.append(GenerationRequest(key=f"student-{index}", messages=build_messages(inputs)))
    return requests


class GenerateSpy:
    """Records model.generate's arguments and calls the real method."""

    def __init__(self, model):
        self.real = model.generate
        self.calls = []
        self.cache_lengths = []

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        # generate() appends to the cache it is given: note its length before that.
        cache = kwargs.get("cache")
        self.cache_lengths.append(None if cache is None else cache.get_seq_length())
        return self.real(*args, **kwargs)


def spy_generate(backend, monkeypatch):
    backend.load()
    spy = GenerateSpy(backend.model)
    monkeypatch.setattr(backend.model, "generate", spy)
    return spy


def out_of_memory_on_first_batch(backend, monkeypatch) -> list[int]:
    """The first batch runs out of GPU memory, the others run; returns each batch's size."""
    real_batch = backend._generate_batch
    sizes = []

    def first_call_runs_out_of_memory(rows, **callbacks):
        sizes.append(len(rows))
        if len(sizes) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real_batch(rows, **callbacks)

    monkeypatch.setattr(backend, "_generate_batch", first_call_runs_out_of_memory)
    return sizes


# --- loading ---


def test_status_goes_from_loading_to_ready(tiny_model):
    backend = make_backend(tiny_model)
    assert backend.status == STATUS_LOADING
    assert backend.model is None  # lazy: nothing loaded by the constructor
    backend.load()
    assert backend.status == STATUS_READY
    model = backend.model
    backend.load()
    assert backend.model is model  # loaded once
    info = backend.model_info()
    assert info["base_model"] == str(tiny_model[0])
    assert info["adapter"] == str(tiny_model[1])
    assert info["device"] == "cpu"
    assert info["dtype"] == ("bfloat16" if cpu_has_native_bf16() else "float32")
    assert info["merged"] is True
    assert info["status"] == STATUS_READY


def test_adapter_is_merged_into_the_base_weights(tiny_model):
    base_dir, adapter_dir = tiny_model
    backend = make_backend(tiny_model, dtype="float32")
    backend.load()
    merged = backend.model
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert not any(isinstance(module, BaseTunerLayer) for module in merged.modules())
    assert not any("lora" in name for name, _ in merged.named_parameters())

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    adapter = load_file(adapter_dir / "adapter_model.safetensors")
    scale = 16 / 8  # lora_alpha / r
    changed = 0
    for layer in range(2):
        for module in ("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"):
            name = f"model.layers.{layer}.{module}"
            lora_a = next(v for k, v in adapter.items() if f"{name}.lora_A" in k).float()
            lora_b = next(v for k, v in adapter.items() if f"{name}.lora_B" in k).float()
            base_weight = base.get_submodule(name).weight
            merged_weight = merged.get_submodule(name).weight
            expected = base_weight + scale * (lora_b @ lora_a)
            assert torch.allclose(merged_weight, expected, atol=1e-5)
            changed += not torch.allclose(merged_weight, base_weight)
    assert changed == 6  # the adapter is not a no-op: every merged projection moved


def test_output_layer_gets_a_contiguous_input_at_prefill(tiny_model):
    # A strided (batch, 1, hidden) slice makes torch copy the whole output weight once per
    # row when the weight is frozen (as PEFT leaves it): the backend hands it a contiguous one.
    backend = make_backend(tiny_model, batch_size=3, max_new_tokens=3, prefix_cache=False)
    backend.load()
    head = backend.model.get_output_embeddings()
    assert not head.weight.requires_grad  # frozen: the case matmul does not fold
    seen = []
    head.register_forward_pre_hook(lambda module, args: seen.append(args[0].is_contiguous()))
    backend.generate(one_subject_requests(3), seed=0)
    assert len(seen) == 3  # the prefill and two decoding steps
    assert all(seen)


def test_never_float16_on_cpu(tiny_model):
    for dtype in ("bfloat16", "float16"):
        backend = make_backend(tiny_model, dtype=dtype, device="cpu")
        backend.load()
        assert backend.dtype == torch.bfloat16
        assert {p.dtype for p in backend.model.parameters()} == {torch.bfloat16}
    backend = make_backend(tiny_model, dtype="auto", device="cpu")
    backend.load()
    assert backend.dtype != torch.float16
    assert backend.dtype == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    backend = make_backend(tiny_model, dtype="float32", device="cpu")
    backend.load()
    assert backend.model.dtype == torch.float32


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_on_cpu_follows_native_bf16(monkeypatch, native, expected):
    from worker.backends import transformers as module

    monkeypatch.setattr(module, "cpu_has_native_bf16", lambda: native)
    assert module.resolve_dtype("auto", torch.device("cpu")) == expected


def test_pad_token_and_left_padding(tiny_model):
    backend = make_backend(tiny_model)
    backend.load()
    assert backend.tokenizer.pad_token == PAD
    assert backend.tokenizer.padding_side == "left"


def test_missing_model_path_is_a_model_load_error(tiny_model, tmp_path):
    missing = tmp_path / "no-such-model"
    backend = TransformersBackend(base_model=str(missing), adapter=str(tiny_model[1]))
    with pytest.raises(ModelLoadError) as error:
        backend.generate(varied_requests(1))
    assert error.value.user_message.startswith("Le modèle n'a pas pu être chargé")
    assert str(missing) in str(error.value)  # the English reason, for the logs
    assert backend.status == STATUS_FAILED
    assert backend.model_info()["failure_reason"]


def test_broken_adapter_config_is_a_model_load_error(tiny_model, tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_model[1], adapter)
    (adapter / "adapter_config.json").write_text("{not json", encoding="utf-8")
    backend = TransformersBackend(base_model=str(tiny_model[0]), adapter=str(adapter))
    with pytest.raises(ModelLoadError):
        backend.load()
    assert backend.status == STATUS_FAILED


def test_hub_id_without_network_is_a_model_load_error(tiny_model, monkeypatch):
    # Offline mode, as on a worker without network: the hub client reads it at import time.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    backend = TransformersBackend(
        base_model="nobody-here/no-such-model-xyz", adapter=str(tiny_model[1])
    )
    with pytest.raises(ModelLoadError) as error:
        backend.load()
    assert backend.status == STATUS_FAILED
    assert "nobody-here/no-such-model-xyz" in str(error.value)


def test_tokenizer_falls_back_to_the_base_when_the_adapter_has_none(tiny_model, tmp_path):
    adapter = tmp_path / "bare-adapter"
    adapter.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(tiny_model[1] / name, adapter / name)
    backend = TransformersBackend(
        base_model=str(tiny_model[0]), adapter=str(adapter), max_new_tokens=3
    )
    results = backend.generate(varied_requests(2), seed=1)
    assert backend.status == STATUS_READY
    assert len(results) == 2


# --- prompts ---


def test_chat_template_date_is_pinned(tiny_model, monkeypatch):
    backend = make_backend(tiny_model)
    prompt = backend.render_prompt(varied_requests(1)[0].messages)
    # The adapter's training date (Unsloth's template), not Meta's fallback "26 Jul 2024".
    assert "Cutting Knowledge Date: December 2023\nToday Date: 26 July 2024\n\n" in prompt
    assert datetime.date.today().strftime("%d %b %Y") not in prompt
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    # The template writes <|begin_of_text|>: the encoded batch must not get a second one.
    spy = spy_generate(backend, monkeypatch)
    backend.generate(varied_requests(3), seed=0)
    bos = backend.tokenizer.bos_token_id
    assert all(row.tolist().count(bos) == 1 for row in spy.calls[0]["input_ids"])


def test_chat_date_is_a_setting(tiny_model, settings):
    settings.APPRECIATION_CHAT_DATE = "01 Sep 2026"
    backend = make_backend(tiny_model)
    assert backend.model_info()["chat_date"] == "01 Sep 2026"
    prompt = backend.render_prompt(varied_requests(1)[0].messages)
    assert "\nToday Date: 01 Sep 2026\n\n" in prompt


# --- sampling ---


def test_card_sampling_settings_reach_generate(tiny_model, monkeypatch):
    backend = make_backend(
        tiny_model, temperature=1.5, min_p=0.1, top_k=0, top_p=1.0, max_new_tokens=5
    )
    spy = spy_generate(backend, monkeypatch)
    backend.generate(varied_requests(2), seed=3)
    (kwargs,) = spy.calls
    assert kwargs["do_sample"] is True
    assert kwargs["temperature"] == 1.5
    assert kwargs["min_p"] == 0.1
    assert kwargs["top_k"] == 0
    assert kwargs["top_p"] == 1.0
    assert kwargs["max_new_tokens"] == 5
    assert kwargs["pad_token_id"] == backend.tokenizer.convert_tokens_to_ids(PAD)


def test_explicit_top_k_and_top_p_win_over_the_models_generation_config(tiny_model):
    backend = make_backend(tiny_model)
    backend.load()
    model = backend.model
    # The test model's generation_config.json says otherwise, like Llama 3.2's does.
    assert model.generation_config.top_k == 50
    assert model.generation_config.top_p == 0.9
    config, _ = model._prepare_generation_config(
        None, do_sample=True, temperature=1.5, min_p=0.1, top_k=0, top_p=1.0
    )
    assert (config.top_k, config.top_p, config.temperature, config.min_p) == (0, 1.0, 1.5, 0.1)
    processors = [type(p).__name__ for p in model._get_logits_processor(config)]
    assert "MinPLogitsWarper" in processors
    assert "TemperatureLogitsWarper" in processors
    assert "TopKLogitsWarper" not in processors
    assert "TopPLogitsWarper" not in processors


def test_same_seed_same_texts(tiny_model):
    backend = make_backend(tiny_model, max_new_tokens=8)
    requests = varied_requests(4)
    first = backend.generate(requests, seed=42)
    again = backend.generate(requests, seed=42)
    other = backend.generate(requests, seed=43)
    assert [r.text for r in first] == [r.text for r in again]
    assert [r.text for r in first] != [r.text for r in other]


def test_seeded_generation_leaves_the_global_rng_alone(tiny_model):
    backend = make_backend(tiny_model)
    backend.load()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    backend.generate(varied_requests(1), seed=99)
    assert torch.equal(torch.rand(3), expected)


# --- batching ---


def test_uneven_prompts_in_batches_of_two(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=2, prefix_cache=False)
    spy = spy_generate(backend, monkeypatch)
    requests = varied_requests(5)
    results = backend.generate(requests, seed=5)
    assert len(results) == len(requests)
    assert [r.key for r in results] == [r.key for r in requests]
    assert [call["input_ids"].shape[0] for call in spy.calls] == [2, 2, 1]
    pad = backend.tokenizer.pad_token_id
    padded_rows = 0
    for call in spy.calls:
        mask = call["attention_mask"]
        for row, row_mask in zip(call["input_ids"], mask, strict=True):
            pads = int((row_mask == 0).sum())
            # Left padding: the pads come first, the prompt ends at the last position.
            assert row_mask[pads:].all() and not row_mask[:pads].any()
            assert (row[:pads] == pad).all()
            padded_rows += pads > 0
    assert padded_rows > 0  # the prompts really had different lengths
    lengths = {r.key: r.prompt_tokens for r in results}
    assert len(set(lengths.values())) > 1
    assert all(0 < r.new_tokens <= 6 for r in results)


def test_results_follow_the_request_order_after_length_sorting(tiny_model):
    # The backend sorts prompts by length to batch them; each result must still be its own
    # request's: its prompt length is the one of that request's prompt alone.
    backend = make_backend(tiny_model, batch_size=2)
    requests = varied_requests(6)
    results = backend.generate(requests, seed=0)
    tokenize = backend.tokenizer
    expected = [
        len(tokenize(backend.render_prompt(r.messages), add_special_tokens=False).input_ids)
        for r in requests
    ]
    assert [r.prompt_tokens for r in results] == expected
    assert expected != sorted(expected)  # the order really had to be restored


def test_left_padded_batch_gives_each_prompt_its_own_next_token_scores(tiny_model):
    # What batching must not change: the scores of the next token, padded or not.
    backend = make_backend(tiny_model, dtype="float32")
    backend.load()
    prompts = [backend.render_prompt(r.messages) for r in varied_requests(4)]
    tokenizer, model = backend.tokenizer, backend.model
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert (batch["attention_mask"] == 0).any()
    with torch.inference_mode():
        batched = model(**batch).logits[:, -1]
        for row, prompt in enumerate(prompts):
            alone = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            single = model(**alone).logits[0, -1]
            assert torch.allclose(batched[row], single, atol=1e-4), row


# --- the shared system prompt, computed once (prefix cache) ---


def one_subject_requests(count, subject="Histoire-Géographie"):
    """A class: one subject, so one system prompt; trimesters and averages vary the rest."""
    requests = []
    for index in range(count):
        trimester = 1 + index % 3
        averages = (8 + index, 9.5 + index, 11.25)[:trimester] + (None,) * (3 - trimester)
        inputs = PromptInputs(subject, trimester, averages, 4 + index % 6, 6, 7)
        requests.append(GenerationRequest(key=f"student-{index}", messages=build_messages(inputs)))
    return requests


def prompt_ids(backend, request):
    prompt = backend.render_prompt(request.messages)
    return backend.tokenizer(prompt, add_special_tokens=False).input_ids


def test_a_class_computes_its_system_prompt_once(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=2, prefix_cache=True)
    spy = spy_generate(backend, monkeypatch)
    requests = one_subject_requests(5)
    results = backend.generate(requests, seed=2)
    assert [r.key for r in results] == [r.key for r in requests]
    assert all(0 < r.new_tokens <= 6 for r in results)
    assert backend.prefix_stats["computed"] == 1
    assert backend.prefix_stats["reused"] == 2  # three batches, one forward pass of the prefix
    (prefix,) = backend._prefixes
    rows = [prompt_ids(backend, request) for request in requests]
    # Exactly the system turn: the part every student of the subject shares.
    system_turn_end = rows[0].index(backend.tokenizer.convert_tokens_to_ids("<|eot_id|>"))
    assert prefix == tuple(rows[0][: system_turn_end + 1])
    assert all(tuple(row[: len(prefix)]) == prefix and len(row) > len(prefix) for row in rows)
    assert backend.prefix_stats["tokens_saved"] == len(prefix) * (len(requests) - 1)
    assert spy.cache_lengths == [len(prefix)] * 3
    for call in spy.calls:
        batch = call["input_ids"].shape[0]
        assert all(keys.shape[0] == batch for keys, _values, *_ in call["cache"])
        # [prefix][pads][rest]: the pads sit between the shared prefix and each row's own part.
        for row, mask in zip(
            call["input_ids"].tolist(), call["attention_mask"].tolist(), strict=True
        ):
            assert tuple(row[: len(prefix)]) == prefix and all(mask[: len(prefix)])
            pads = mask[len(prefix) :].count(0)
            assert mask[len(prefix) :] == [0] * pads + [1] * (len(mask) - len(prefix) - pads)
    # The prompt sizes reported are each prompt's own, not the padded width.
    assert [r.prompt_tokens for r in results] == [len(row) for row in rows]


def test_prefix_cache_gives_the_same_scores_as_a_prompt_alone(tiny_model):
    # What caching must not change: every step's scores, for every row, padded or not.
    backend = make_backend(tiny_model, dtype="float32", prefix_cache=True)
    backend.load()
    requests = one_subject_requests(3)
    rows = [prompt_ids(backend, request) for request in requests]
    assert len({len(row) for row in rows}) == 3  # uneven: pads in the middle
    prefix = backend._shared_prefix(rows)
    assert len(prefix) >= 16
    input_ids, attention_mask = backend._pad(rows, prefix_length=len(prefix))
    steps = 3

    def greedy(**inputs):
        return backend.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=steps,
            min_new_tokens=steps,
            return_dict_in_generate=True,
            output_logits=True,
            pad_token_id=backend.tokenizer.pad_token_id,
        )

    with torch.inference_mode():
        cached = greedy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            cache=backend._prefix_cache_for_batch(prefix, batch=len(rows)),
        )
        for index, row in enumerate(rows):
            alone = greedy(input_ids=torch.tensor([row]))
            for step in range(steps):
                assert torch.allclose(
                    cached.logits[step][index], alone.logits[step][0], atol=1e-4
                ), (index, step)
            width = input_ids.shape[1]
            assert (
                cached.sequences[index, width:].tolist() == alone.sequences[0, len(row) :].tolist()
            )


def test_a_quick_draft_after_a_class_reuses_the_cached_system_prompt(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=4, prefix_cache=True)
    spy = spy_generate(backend, monkeypatch)
    backend.generate(one_subject_requests(4), seed=1)
    backend.generate(one_subject_requests(1), seed=1)
    assert backend.prefix_stats == {
        "computed": 1,
        "reused": 1,
        "tokens_saved": backend.prefix_stats["tokens_saved"],
    }
    assert spy.cache_lengths[-1] == len(next(iter(backend._prefixes)))


def test_a_lone_prompt_with_nothing_cached_is_left_as_is(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, prefix_cache=True)
    spy = spy_generate(backend, monkeypatch)
    backend.generate(one_subject_requests(1), seed=1)
    assert "cache" not in spy.calls[0]
    assert backend.prefix_stats["computed"] == 0


def test_mixed_subjects_share_only_what_comes_before_the_subject(tiny_model, monkeypatch):
    # The subject is named in the system prompt's first words: the template's header and
    # those words are all a mixed batch has in common.
    backend = make_backend(tiny_model, batch_size=6, prefix_cache=True)
    spy = spy_generate(backend, monkeypatch)
    requests = varied_requests(6)
    backend.generate(requests, seed=1)
    rows = [prompt_ids(backend, request) for request in requests]
    (prefix,) = backend._prefixes
    assert spy.cache_lengths == [len(prefix)]
    shared = backend.tokenizer.decode(prefix)
    assert shared.endswith("Vous êtes une IA assistant les enseignants ") or shared.endswith(
        "Vous êtes une IA assistant les enseignants"
    ), shared[-80:]
    assert len(prefix) < min(len(row) for row in rows)


def test_prefix_cache_off_pads_on_the_left(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=5, prefix_cache=False)
    spy = spy_generate(backend, monkeypatch)
    backend.generate(one_subject_requests(5), seed=1)
    assert "cache" not in spy.calls[0]
    assert backend.prefix_stats["computed"] == 0
    assert backend.model_info()["prefix_cache"] is False


def test_prefix_cache_follows_the_setting(tiny_model, settings):
    settings.APPRECIATION_PREFIX_CACHE = False
    assert make_backend(tiny_model).prefix_cache is False
    settings.APPRECIATION_PREFIX_CACHE = True
    assert make_backend(tiny_model).prefix_cache is True


def test_cached_prefixes_are_bounded_and_dropped_on_out_of_memory(tiny_model, monkeypatch):
    from worker.backends import transformers as module

    monkeypatch.setattr(module, "PREFIX_CACHE_ENTRIES", 2)
    backend = make_backend(tiny_model, batch_size=2, prefix_cache=True)
    backend.load()
    for subject in ("Histoire-Géographie", "Anglais", "Mathématiques"):
        backend.generate(one_subject_requests(2, subject), seed=1)
    assert backend.prefix_stats["computed"] == 3
    assert len(backend._prefixes) == 2  # the oldest subject's prefix was dropped
    calls = out_of_memory_on_first_batch(backend, monkeypatch)
    backend.generate(one_subject_requests(2, "Anglais"), seed=1)
    assert calls == [2, 1, 1]
    assert backend.prefix_stats["computed"] == 3  # a lone prompt after the OOM: nothing cached


def test_automatic_batch_size_on_cpu_is_the_whole_class(tiny_model):
    backend = make_backend(tiny_model, batch_size=0)
    backend.load()
    assert backend.batch_size(prompt_tokens=250, rows=35) == 35
    assert backend.batch_size(prompt_tokens=250, rows=3) == 3
    # A school's whole level at once is still capped: a huge batch gains nothing more.
    assert backend.batch_size(prompt_tokens=250, rows=500) == MAX_AUTO_BATCH_SIZE
    assert backend.batch_size(prompt_tokens=250) == MAX_AUTO_BATCH_SIZE


def test_automatic_batch_size_on_cpu_is_capped_by_available_memory(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=0, max_new_tokens=50)
    backend.load()
    per_sequence = (250 + 50) * kv_cache_bytes_per_token(backend.model.config, backend.dtype) * 1.5
    available = int(per_sequence * 10 / CPU_FREE_MEMORY_SHARE) + 1
    monkeypatch.setattr(transformers_backend, "available_memory_bytes", lambda: available)
    assert backend.batch_size(prompt_tokens=250, rows=35) == 10
    monkeypatch.setattr(transformers_backend, "available_memory_bytes", lambda: 0)
    assert backend.batch_size(prompt_tokens=250, rows=35) == 1  # never 0


def test_available_memory_is_read_from_the_system():
    assert 0 < transformers_backend.available_memory_bytes() < 2**50


def test_generate_on_cpu_drafts_a_class_in_one_batch(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=0)
    spy = spy_generate(backend, monkeypatch)
    results = backend.generate(varied_requests(10), seed=1)
    assert len(spy.calls) == 1
    assert spy.calls[0]["input_ids"].shape[0] == 10
    assert len(results) == 10


def test_the_batch_size_setting_still_wins(tiny_model, settings, monkeypatch):
    settings.APPRECIATION_BATCH_SIZE = 4
    backend = TransformersBackend(
        base_model=str(tiny_model[0]), adapter=str(tiny_model[1]), max_new_tokens=4
    )
    assert backend.batch_size(prompt_tokens=250, rows=35) == 4
    spy = spy_generate(backend, monkeypatch)
    backend.generate(varied_requests(6), seed=1)
    assert [call["input_ids"].shape[0] for call in spy.calls] == [4, 2]


class ForceEnd:
    """A logits processor that makes the given rows write their end of turn at the given
    step (1 = the first new token) and forbids it to every other row before the end."""

    def __init__(self, *, prompt_width, ends, end_id, stop_ids):
        self.prompt_width = prompt_width
        self.ends = ends
        self.end_id = end_id
        self.stop_ids = list(stop_ids)

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_width + 1
        scores = scores.clone()
        for row in range(scores.shape[0]):
            if self.ends.get(row) == step:
                scores[row, :] = -float("inf")
                scores[row, self.end_id] = 0.0
            else:
                scores[row, self.stop_ids] = -float("inf")
        return scores


def same_length_requests(count):
    """One subject and trimester, ratings of one digit: prompts of one length, so the batch
    keeps the requests' order (rows are sorted by length)."""
    return [
        GenerationRequest(
            key=f"student-{index}",
            messages=build_messages(PromptInputs("Anglais", 2, (12, 13, None), 4 + index, 6, 7)),
        )
        for index in range(count)
    ]


def force_ends(backend, monkeypatch, ends):
    """Rows (in batch order) end at the given steps; the others run to max_new_tokens."""
    from transformers import LogitsProcessorList

    backend.load()
    real = backend.model.generate
    end_id = backend.tokenizer.convert_tokens_to_ids(EOT)
    eos = backend.model.generation_config.eos_token_id
    stop_ids = {end_id, *(eos if isinstance(eos, list) else [eos])}

    def generate(*args, **kwargs):
        force = ForceEnd(
            prompt_width=kwargs["input_ids"].shape[1], ends=ends, end_id=end_id, stop_ids=stop_ids
        )
        return real(*args, logits_processor=LogitsProcessorList([force]), **kwargs)

    monkeypatch.setattr(backend.model, "generate", generate)


def test_a_row_that_ends_early_is_handed_out_before_generate_returns(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=0, max_new_tokens=8)
    requests = same_length_requests(3)
    force_ends(backend, monkeypatch, {1: 2})
    steps, arrivals = [], []
    results = backend.generate(
        requests,
        seed=3,
        on_result=lambda result: arrivals.append((result, len(steps))),
        on_progress=steps.append,
    )
    # Every decoding step is reported, with the call's size.
    assert [p.step for p in steps] == list(range(1, 9))
    assert {(p.steps, p.rows) for p in steps} == {(8, 3)}
    # The row that wrote its end of turn at step 2 came out then, with its final text...
    first, steps_seen = arrivals[0]
    assert first.key == requests[1].key and first.new_tokens == 2
    assert steps_seen == 1  # step 2 not even reported yet: six steps before the batch ends
    assert steps[1].finished == 1
    # ...and the others after the last step; each once, as generate() returns them.
    assert sorted(result.key for result, _ in arrivals) == sorted(r.key for r in requests)
    assert [steps_seen for _, steps_seen in arrivals[1:]] == [8, 8]
    assert {result.key: result for result, _ in arrivals} == {r.key: r for r in results}
    assert [r.new_tokens for r in results] == [8, 2, 8]
    assert len({r.prompt_tokens for r in results}) == 1


def test_early_rows_have_the_same_texts_with_or_without_callbacks(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=0, max_new_tokens=6)
    requests = same_length_requests(3)
    force_ends(backend, monkeypatch, {0: 3, 2: 1})
    plain = backend.generate(requests, seed=5)
    arrived = []
    watched = backend.generate(requests, seed=5, on_result=arrived.append)
    assert watched == plain
    assert [r.key for r in arrived] == [requests[2].key, requests[0].key, requests[1].key]
    assert [r.new_tokens for r in plain] == [3, 6, 1]


def test_an_exception_in_a_callback_stops_the_generation(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=0, max_new_tokens=8)
    steps = []

    class Stop(Exception):
        pass

    def stop_at_three(progress):
        steps.append(progress.step)
        if progress.step == 3:
            raise Stop

    with pytest.raises(Stop):
        backend.generate(varied_requests(4), seed=1, on_progress=stop_at_three)
    assert steps == [1, 2, 3]
    # The lock is released and the backend still works.
    assert len(backend.generate(varied_requests(2), seed=1)) == 2


def test_kv_cache_estimate_matches_llama_3_2_3b():
    config = LlamaConfig(
        hidden_size=3072,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        head_dim=128,
    )
    assert kv_cache_bytes_per_token(config, torch.bfloat16) == 114688  # ~115 KB


def test_out_of_memory_halves_the_batch_and_retries(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=4)
    backend.load()
    sizes = out_of_memory_on_first_batch(backend, monkeypatch)
    requests = varied_requests(5)
    results = backend.generate(requests, seed=1)
    assert sizes == [4, 2, 2, 1]
    assert [r.key for r in results] == [r.key for r in requests]
    assert all(r.new_tokens > 0 for r in results)
    assert backend.batch_size(prompt_tokens=100) == 2  # later calls start from what fitted


def test_out_of_memory_with_a_batch_of_one_raises(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=2)
    backend.load()
    sizes = []

    def always_out_of_memory(rows, **callbacks):
        sizes.append(len(rows))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(backend, "_generate_batch", always_out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        backend.generate(varied_requests(3), seed=1)
    assert sizes == [2, 1]


def test_empty_batch(tiny_model):
    backend = make_backend(tiny_model)
    assert backend.generate([]) == []
    assert backend.status == STATUS_LOADING  # nothing to do, nothing loaded


# --- the whole loop ---


def test_regeneration_through_draft_with_checks(tiny_model, monkeypatch):
    backend = make_backend(tiny_model, batch_size=4, max_new_tokens=8)
    batches = []
    real_generate = backend.generate

    def count_batches(requests, *, seed=None, **callbacks):
        batches.append((len(requests), seed))
        return real_generate(requests, seed=seed, **callbacks)

    monkeypatch.setattr(backend, "generate", count_batches)
    requests = varied_requests(5)
    # A limit of 0 characters fails every text, so every item is regenerated to the end.
    items = [DraftItem(key=r.key, messages=r.messages, max_chars=0) for r in requests]
    outcomes = draft_with_checks(backend=backend, items=items, max_attempts=3, seed=10)
    assert batches == [(5, 10), (5, 11), (5, 12)]
    assert [o.key for o in outcomes] == [r.key for r in requests]
    for outcome in outcomes:
        assert outcome.attempts == 3
        assert len(outcome.raw_texts) == 3
        assert outcome.flags  # kept, not dropped
        assert {f.code for f in outcome.flags} & {"too_long_chars", "length"}


def test_get_backend_builds_the_settings_backend_once(tiny_model, settings):
    base, adapter = tiny_model
    settings.APPRECIATION_BACKEND = BACKEND_PATH
    settings.APPRECIATION_BASE_MODEL = str(base)
    settings.APPRECIATION_ADAPTER = str(adapter)
    reset_backend_cache()
    try:
        backend = get_backend()
        assert isinstance(backend, TransformersBackend)
        assert get_backend() is backend
        assert get_backend(BACKEND_PATH) is backend
        assert backend.base_model == str(base)
        assert get_backend(BACKEND_PATH, max_new_tokens=3) is not backend
        reset_backend_cache()
        assert get_backend() is not backend
    finally:
        reset_backend_cache()


@pytest.mark.django_db
def test_draft_command_end_to_end(tiny_model, settings, capsys):
    base, adapter = tiny_model
    settings.APPRECIATION_BACKEND = BACKEND_PATH
    settings.APPRECIATION_BASE_MODEL = str(base)
    settings.APPRECIATION_ADAPTER = str(adapter)
    settings.APPRECIATION_TEST_MODEL = True
    settings.APPRECIATION_MAX_NEW_TOKENS = 6
    settings.APPRECIATION_MAX_ATTEMPTS = 2
    reset_backend_cache()
    try:
        call_command(
            "draft",
            "--trimester=2",
            "--averages", "11", "12.5",
            "--behaviour=7",
            "--participation=6",
            "--work=8",
            "-n", "3",
            "--seed=4",
            "--max-chars=0",
        )  # fmt: skip
    finally:
        reset_backend_cache()
    captured = capsys.readouterr()
    assert "random weights" in captured.err
    for number in (1, 2, 3):
        assert f"\n{number}. " in "\n" + captured.out
    assert captured.out.count("(2 attempt(s))") == 3
    assert "⚠ too_long_chars" in captured.out or "⚠ length" in captured.out


@pytest.mark.django_db
def test_draft_command_tries_a_named_version(tiny_model, settings, capsys):
    """--model-version drafts with a candidate (its adapter), not the version in service."""
    from generation.models import ModelVersion

    base, adapter = tiny_model
    settings.APPRECIATION_BACKEND = BACKEND_PATH
    settings.APPRECIATION_MAX_NEW_TOKENS = 4
    ModelVersion.objects.create(
        name="v1", base_model="nowhere/base", adapter="nowhere/adapter", state="active"
    )
    ModelVersion.objects.create(
        name="v7", base_model=str(base), adapter=str(adapter), is_test_model=True
    )
    args = ["--trimester=1", "--averages", "11", "--behaviour=7", "--participation=6", "--work=8"]
    reset_backend_cache()
    try:
        call_command("draft", *args, "--model-version", "v7", "--seed=1")
        with pytest.raises(CommandError, match="No model version named 'v9'"):
            call_command("draft", *args, "--model-version", "v9")
    finally:
        reset_backend_cache()
    captured = capsys.readouterr()
    assert f"Model version v7 (candidate): {adapter}" in captured.err
    assert "\n1. " in "\n" + captured.out


# --- int8 weights (APPRECIATION_QUANTIZE) ---


def last_logits(backend, requests):
    backend.load()
    with torch.inference_mode():
        return torch.stack(
            [
                backend.model(input_ids=torch.tensor([prompt_ids(backend, request)]))
                .logits[0, -1]
                .float()
                for request in requests
            ]
        )


def test_int8_quantizes_every_linear_layer_and_still_generates(tiny_model):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    backend = make_backend(tiny_model, quantize="int8")
    backend.load()
    assert backend.dtype == torch.float32  # dynamic quantization takes float32 in and out
    linears = [m for m in backend.model.modules() if isinstance(m, torch.nn.Linear)]
    quantized = [m for m in backend.model.modules() if isinstance(m, DynamicInt8Linear)]
    assert not linears
    # 7 projections per layer, and the output layer.
    assert len(quantized) == 7 * backend.model.config.num_hidden_layers + 1
    assert backend.model_info()["quantize"] == "int8"
    results = backend.generate(varied_requests(3), seed=1)
    assert all(result.new_tokens > 0 for result in results)


def test_int8_logits_stay_close_to_float32(tiny_model):
    requests = varied_requests(4)
    reference = last_logits(make_backend(tiny_model, dtype="float32"), requests)
    int8 = last_logits(make_backend(tiny_model, quantize="int8"), requests)
    difference = (int8 - reference).abs().max().item()
    assert 0 < difference < 0.3 * reference.abs().max().item()  # quantized, not broken
    assert torch.equal(int8.argmax(-1), reference.argmax(-1))


def test_unknown_quantization_is_refused(tiny_model):
    with pytest.raises(ValueError, match="APPRECIATION_QUANTIZE"):
        make_backend(tiny_model, quantize="int4")


def test_quantization_follows_the_setting(tiny_model, settings):
    settings.APPRECIATION_QUANTIZE = "int8"
    backend = TransformersBackend(base_model=str(tiny_model[0]), adapter=str(tiny_model[1]))
    assert backend.quantize == "int8"
    settings.APPRECIATION_QUANTIZE = ""
    backend = TransformersBackend(base_model=str(tiny_model[0]), adapter=str(tiny_model[1]))
    assert backend.quantize == ""


# --- a large batch's prompts read a few rows at a time (CPU) ---


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_chunked_prefill_gives_the_same_scores_as_one_pass(tiny_model, prefix_cache):
    backend = make_backend(tiny_model, dtype="float32", prefix_cache=prefix_cache)
    backend.load()
    requests = one_subject_requests(11)
    rows = [prompt_ids(backend, request) for request in requests]
    prefix = backend._shared_prefix(rows) if prefix_cache else ()
    input_ids, attention_mask = backend._pad(rows, prefix_length=len(prefix))

    def prefix_cache_or_none():
        return backend._prefix_cache_for_batch(prefix, batch=len(rows)) if prefix else None

    def greedy(cache):
        return backend.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            max_new_tokens=3,
            min_new_tokens=3,
            return_dict_in_generate=True,
            output_logits=True,
            pad_token_id=backend.tokenizer.pad_token_id,
            **({} if cache is None else {"cache": cache}),
        )

    chunks = []
    with torch.inference_mode():
        whole = greedy(prefix_cache_or_none())
        cache = backend._prefill_in_chunks(
            input_ids,
            attention_mask,
            cache=prefix_cache_or_none(),
            start=len(prefix),
            on_chunk=chunks.append,
        )
        assert chunks == [1, 2]  # 11 rows, 8 at a time
        assert cache.get_seq_length() == input_ids.shape[1] - 1  # all but the last token
        chunked = greedy(cache)
    for step in range(3):
        assert torch.allclose(chunked.logits[step], whole.logits[step], atol=1e-4), step
    assert torch.equal(chunked.sequences, whole.sequences)


def test_a_large_batch_on_cpu_reports_its_prefill_chunks_then_its_steps(tiny_model):
    backend = make_backend(tiny_model, batch_size=0, max_new_tokens=4)
    steps = []
    backend.generate(varied_requests(10), seed=1, on_progress=steps.append)
    assert [(p.phase, p.step) for p in steps[:2]] == [("prefill", 1), ("prefill", 2)]
    decode = steps[2:]
    assert [p.phase for p in decode] == ["decode"] * len(decode)
    assert [p.step for p in decode] == list(range(3, 3 + len(decode)))
    assert 1 <= len(decode) <= 4
    assert {p.steps for p in steps} == {2 + 4}
