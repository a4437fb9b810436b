"""The OpenAI-compatible backend against a real server: llama-cpp-python's, on 127.0.0.1,
serving the tiny test model (adapter merged, float32 GGUF). No mock of the server.

What is proved: the server reads the very token ids the transformers backend gives its model;
its model computes the same first-token log-probabilities; sampled with the backend's
parameters, the first token follows the model card's distribution (temperature 1.5, then
min_p 0.1), and the same test rejects llama.cpp's default chain; a class is drafted through
the real runner; a server that is down, or killed mid-class, loses nothing.
"""

from __future__ import annotations

import concurrent.futures
from collections import Counter

import httpx2
import pytest
import torch

from generation import services
from generation.backends import (
    INFERENCE_SERVER_USER_MESSAGE,
    GenerationRequest,
    reset_backend_cache,
)
from generation.models import Draft, GenerationJob, WorkerState
from generation.services import jobs, runner
from tests.factories import StudentFactory, TermAssessmentFactory
from worker.backends.openai import (
    InferenceServerError,
    OpenAICompatibleBackend,
    render_prompt_text,
    sampling_parameters,
    served_model_name,
    server_prompt,
)
from worker.backends.transformers import prompt_token_ids
from worker.backends.transformers import render_prompt_text as transformers_render
from worker.testing import build_tokenizer, sample_messages

from .llama_server import MODEL_ALIAS, LlamaServer, free_port

DATE = "26 July 2024"
TEMPERATURE = 1.5
MIN_P = 0.1
# Samples of the first token per distribution test (fixed seeds: the test is deterministic).
SAMPLES = 1500
# The distribution test's model: the tiny model's logits times this (see `sharp`).
SHARPEN = 8.0


def make_backend(server_urls, **options) -> OpenAICompatibleBackend:
    defaults = {
        "servers": list(server_urls),
        "model": MODEL_ALIAS,
        "engine": "llama-cpp-python",
        "timeout": 60.0,
        "retries": 3,
        "backoff": 0.05,
        "concurrency": 8,
        "chat_date": DATE,
        "test_model": True,
    }
    return OpenAICompatibleBackend(**{**defaults, **options})


# --- Without a server ----------------------------------------------------------------------


def test_the_prompt_is_the_transformers_backends_byte_for_byte():
    tokenizer = build_tokenizer()
    odd = [
        {"role": "system", "content": "  Système « é » {{ pas un gabarit }} {% raw %}\n"},
        {"role": "user", "content": "Élève : 12,5/20 ; « très bien » — ça va ?\n\n"},
    ]
    for messages in [*sample_messages(), odd]:
        text = render_prompt_text(messages, date_string=DATE)
        assert text == transformers_render(tokenizer, messages, date_string=DATE)
        assert "Today Date: 26 July 2024\n\n" in text
        assert server_prompt(messages, date_string=DATE) == text.removeprefix("<|begin_of_text|>")


def test_every_engine_gets_every_sampler_pinned():
    vllm = sampling_parameters("vllm", temperature=1.5, min_p=0.1, max_tokens=90)
    assert vllm["min_p"] == 0.1 and vllm["top_k"] == -1 and vllm["top_p"] == 1.0
    cpp = sampling_parameters("llama.cpp", temperature=1.5, min_p=0.1, max_tokens=90)
    assert cpp["samplers"] == ["temperature", "min_p"]
    assert cpp["top_k"] == 0 and cpp["typical_p"] == 1.0 and cpp["dry_multiplier"] == 0
    python = sampling_parameters("llama-cpp-python", temperature=1.5, min_p=0.1, max_tokens=90)
    assert python["min_p"] == pytest.approx(0.1**1.5)  # applied before the temperature
    for params in (vllm, cpp, python):
        assert params["temperature"] == 1.5 and params["max_tokens"] == 90
    with pytest.raises(ValueError, match="Unknown APPRECIATION_INFERENCE_ENGINE"):
        sampling_parameters("ollama?", temperature=1.5, min_p=0.1, max_tokens=90)


def test_build_test_model_writes_the_gguf_the_server_reads(tmp_path, llama_server):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("build_test_model", str(tmp_path), "--gguf", stdout=out)
    path = tmp_path / "tiny-appreciation-f32.gguf"
    assert f"GGUF:       {path}" in out.getvalue()
    # The same bytes as the file the session's server was started from.
    assert path.read_bytes() == llama_server.model_path.read_bytes()


# --- The model on the server is the model ---------------------------------------------------


@pytest.fixture(scope="module")
def reference(tiny_model):
    """The tiny model as the transformers backend runs it (adapter merged, float32)."""
    from transformers import AutoTokenizer

    from worker.gguf_export import merged_model

    base, adapter = tiny_model
    return merged_model(base, adapter), AutoTokenizer.from_pretrained(adapter)


def first_token_logits(reference, messages) -> torch.Tensor:
    model, tokenizer = reference
    ids = prompt_token_ids(tokenizer, messages, date_string=DATE)
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def test_the_server_reads_the_transformers_token_ids(llama_server, reference):
    _model, tokenizer = reference
    backend = make_backend([llama_server.base_url])
    for messages in sample_messages():
        expected = prompt_token_ids(tokenizer, messages, date_string=DATE)
        payload = backend.completion_payload(messages, seed=1)
        answer = httpx2.post(
            llama_server.base_url.removesuffix("/v1") + "/extras/tokenize",
            json={"input": payload["prompt"], "model": MODEL_ALIAS},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["tokens"] == expected  # one <|begin_of_text|>, the same splits
        body = backend.post_with_retries("completions", {**payload, "max_tokens": 1})
        assert body["usage"]["prompt_tokens"] == len(expected)


def test_the_servers_logprobs_are_the_models(llama_server, reference):
    _model, tokenizer = reference
    backend = make_backend([llama_server.base_url])
    messages = sample_messages()[0]
    reference_logprobs = torch.log_softmax(first_token_logits(reference, messages), dim=-1)
    payload = {**backend.completion_payload(messages, seed=1), "max_tokens": 1, "logprobs": 20}
    body = backend.post_with_retries("completions", payload)
    top = body["choices"][0]["logprobs"]["top_logprobs"][0]
    texts = token_texts(tokenizer)
    compared = 0
    for text, logprob in top.items():
        ids = [index for index, candidate in enumerate(texts) if candidate == text]
        if len(ids) == 1:  # a text several tokens decode to names none of them
            # Both in float32 (weights, keys and values): equal to rounding.
            assert logprob == pytest.approx(reference_logprobs[ids[0]].item(), abs=1e-4)
            compared += 1
    assert compared >= 10


# --- The card's distribution ----------------------------------------------------------------


def token_texts(tokenizer) -> list[str]:
    """What llama-cpp-python answers for a lone token: its bytes as UTF-8, an incomplete
    character dropped; a control token writes nothing."""
    from tokenizers.pre_tokenizers import ByteLevel

    byte_of = {char: byte for byte, char in enumerate(_byte_level_chars(ByteLevel))}
    special = set(tokenizer.all_special_ids) | {
        tokenizer.convert_tokens_to_ids(token)
        for token in tokenizer.get_vocab()
        if token.startswith("<|") and token.endswith("|>")
    }
    texts = []
    for index in range(len(tokenizer)):
        if index in special:
            texts.append("")
            continue
        token = tokenizer.convert_ids_to_tokens(index)
        texts.append(bytes(byte_of[char] for char in token).decode("utf-8", errors="ignore"))
    return texts


def _byte_level_chars(byte_level) -> list[str]:
    """GPT-2's byte-to-character table, in byte order (what ByteLevel.alphabet() holds)."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    assert set(chars) == set(byte_level.alphabet())
    return chars


def card_distribution(logits: torch.Tensor) -> torch.Tensor:
    """The model card's first-token distribution, as transformers samples it."""
    from transformers import MinPLogitsWarper, TemperatureLogitsWarper

    scores = logits[None].clone()
    scores = TemperatureLogitsWarper(TEMPERATURE)(None, scores)
    scores = MinPLogitsWarper(MIN_P)(None, scores)
    return torch.softmax(scores[0], dim=-1)


def llama_cpp_default_distribution(logits: torch.Tensor) -> torch.Tensor:
    """What llama.cpp's default chain makes of the card's two numbers: top_k 40, top_p 0.95,
    min_p 0.1 on the untempered distribution, the temperature last."""
    order = torch.argsort(logits, descending=True)[:40]
    probs = torch.softmax(logits[order], dim=-1)
    keep = int((torch.cumsum(probs, 0) < 0.95).sum()) + 1
    order = order[:keep]
    kept = logits[order]
    order = order[kept >= kept.max() + torch.log(torch.tensor(MIN_P))]
    result = torch.zeros_like(logits)
    result[order] = torch.softmax(logits[order] / TEMPERATURE, dim=-1)
    return result


def sample_first_tokens(server: LlamaServer, payload: dict, seeds) -> Counter:
    """The server's first token for each seed, as texts (from its logprobs: after a token
    that ends inside a UTF-8 character, llama-cpp-python goes on past max_tokens)."""
    backend = make_backend([server.base_url], concurrency=4)

    def one(seed):
        body = backend.post_with_retries(
            "completions", {**payload, "seed": seed, "max_tokens": 1, "logprobs": 1}
        )
        tokens = body["choices"][0]["logprobs"]["tokens"]
        return tokens[0] if tokens else ""  # an end of turn first: nothing written

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return Counter(pool.map(one, seeds))


def chi_square_p_value(counts: Counter, probabilities: dict[str, float]) -> float:
    """Pearson's goodness of fit, categories pooled (from the likeliest) until each expects at
    least 5; a text the distribution gives no chance is an outright rejection (p = 0)."""
    total = sum(counts.values())
    if any(probabilities.get(text, 0.0) == 0.0 for text in counts):
        return 0.0
    bins, observed, expected = [], 0, 0.0
    for text, probability in sorted(probabilities.items(), key=lambda item: -item[1]):
        if probability == 0.0:
            continue
        observed += counts.get(text, 0)
        expected += probability * total
        if expected >= 5:
            bins.append((observed, expected))
            observed, expected = 0, 0.0
    if expected > 0:
        last_observed, last_expected = bins.pop() if bins else (0, 0.0)
        bins.append((last_observed + observed, last_expected + expected))
    statistic = sum((o - e) ** 2 / e for o, e in bins)
    degrees = len(bins) - 1
    return float(torch.special.gammaincc(torch.tensor(degrees / 2), torch.tensor(statistic / 2)))


def by_text(distribution: torch.Tensor, texts: list[str]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for index, probability in enumerate(distribution.tolist()):
        merged[texts[index]] = merged.get(texts[index], 0.0) + probability
    return merged


def min_p_before_temperature_distribution(logits: torch.Tensor) -> torch.Tensor:
    """The card's numbers in llama-cpp-python's chain as they are: min_p 0.1 on the
    untempered distribution, then the temperature (top_k and top_p off)."""
    keep = logits >= logits.max() + torch.log(torch.tensor(MIN_P))
    result = torch.zeros_like(logits)
    result[keep] = torch.softmax(logits[keep] / TEMPERATURE, dim=-1)
    return result


@pytest.fixture(scope="module")
def sharp(llama_server, tiny_model, tmp_path_factory):
    """A server for the tiny model with its logits multiplied by SHARPEN (the final norm's
    weight scaled), and that model in transformers.

    The random tiny model's next-token distribution is nearly flat (every token within
    e^1.1 of the likeliest): min_p 0.1 then removes nothing, before or after the temperature,
    and a wrong order would go unseen. Sharpened, the card keeps 245 tokens of the first
    prompt, min_p before the temperature 84, llama.cpp's defaults 37."""
    from transformers import AutoTokenizer

    from worker.gguf_export import export_gguf, merged_model

    base, adapter = tiny_model
    model = merged_model(base, adapter)
    with torch.no_grad():
        model.model.norm.weight.mul_(SHARPEN)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    path = export_gguf(model, tokenizer, tmp_path_factory.mktemp("sharp") / "sharp-f32.gguf")
    server = LlamaServer(path).start()
    yield server, (model, tokenizer)
    server.kill()


def test_the_first_token_follows_the_cards_distribution(sharp):
    server, reference = sharp
    _model, tokenizer = reference
    texts = token_texts(tokenizer)
    messages = sample_messages()[0]
    logits = first_token_logits(reference, messages)
    card = card_distribution(logits)
    wrong_chains = {
        # llama.cpp's defaults around the card's two numbers: top_k 40, top_p 0.95, min_p
        # 0.1, temperature last.
        "defaults": ({"top_k": 40, "top_p": 0.95, "min_p": MIN_P}, llama_cpp_default_distribution),
        # The card's parameters sent as they are to a chain that applies min_p first.
        "min_p first": ({"min_p": MIN_P}, min_p_before_temperature_distribution),
    }
    # The two chains genuinely differ from the card's here (else the test proves nothing).
    for _params, distribution in wrong_chains.values():
        assert 0.5 * float((card - distribution(logits)).abs().sum()) > 0.3

    backend = make_backend([server.base_url])
    payload = backend.completion_payload(messages, seed=None)
    counts = sample_first_tokens(server, payload, range(SAMPLES))
    assert set(counts) <= set(texts)
    p_value = chi_square_p_value(counts, by_text(card, texts))
    assert p_value > 1e-3, p_value

    # The same test rejects the wrong chains: it sees the sampling, not just the model ...
    for index, (params, distribution) in enumerate(wrong_chains.values(), start=1):
        seeds = range(index * SAMPLES, (index + 1) * SAMPLES)
        wrong = sample_first_tokens(server, {**payload, **params}, seeds)
        assert chi_square_p_value(wrong, by_text(card, texts)) < 1e-6
        # ... and those samples follow their own chain's distribution: the test is fair.
        assert chi_square_p_value(wrong, by_text(distribution(logits), texts)) > 1e-3


def test_a_seed_gives_the_same_texts(llama_server):
    backend = make_backend([llama_server.base_url], max_new_tokens=12)
    requests = [GenerationRequest(key=str(i), messages=m) for i, m in enumerate(sample_messages())]
    first = backend.generate(requests, seed=42)
    again = backend.generate(requests, seed=42)
    other = backend.generate(requests, seed=43)
    assert [r.text for r in first] == [r.text for r in again]
    assert [r.text for r in first] != [r.text for r in other]
    assert all(0 < r.new_tokens <= 12 and r.prompt_tokens > 200 for r in first)


def test_each_answer_is_handed_out_as_it_arrives(llama_server):
    """The runner writes each draft as its answer comes (BaseBackend.generate's contract)."""
    backend = make_backend([llama_server.base_url], max_new_tokens=8)
    requests = [GenerationRequest(key=str(i), messages=m) for i, m in enumerate(sample_messages())]
    handed, progress = [], []
    results = backend.generate(
        requests, seed=5, on_result=handed.append, on_progress=progress.append
    )
    assert sorted(r.key for r in handed) == [r.key for r in results] == [r.key for r in requests]
    assert {r.key: r.text for r in handed} == {r.key: r.text for r in results}
    assert [p.finished for p in progress] == sorted(p.finished for p in progress)
    assert progress[-1].finished == progress[-1].rows == len(requests)


def test_a_dead_server_in_the_list_is_passed_over(llama_server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    backend = make_backend([dead, llama_server.base_url], max_new_tokens=4, retries=2)
    requests = [GenerationRequest(key=str(i), messages=m) for i, m in enumerate(sample_messages())]
    results = backend.generate(requests, seed=7)
    assert [r.key for r in results] == ["0", "1", "2"]
    assert backend.check_available().available


def test_a_class_is_in_flight_at_once(llama_server):
    """A proxy in front of the server holds each request until the whole class has arrived
    (a barrier), then passes them on: a backend that sent them one after another would
    never get an answer."""
    import http.server
    import threading

    students = 6
    barrier = threading.Barrier(students, timeout=60)
    target = llama_server.base_url

    class HoldUntilAll(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer = httpx2.post(
                target + self.path.removeprefix("/v1"),
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            self.send_response(answer.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HoldUntilAll)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        backend = make_backend(
            [f"http://127.0.0.1:{proxy.server_port}/v1"],
            max_new_tokens=4,
            retries=1,
            concurrency=64,
        )
        messages = sample_messages()
        requests = [
            GenerationRequest(key=str(i), messages=messages[i % 3]) for i in range(students)
        ]
        results = backend.generate(requests, seed=3)
        assert [r.key for r in results] == [str(i) for i in range(students)]
        assert not barrier.broken
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_an_overloaded_server_is_passed_over(llama_server):
    """A server that answers 503 (vLLM's or a proxy's "overloaded"): each request that met it
    is sent again, to the next server."""
    import http.server
    import threading

    hits = []

    class Overloaded(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    busy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Overloaded)
    threading.Thread(target=busy.serve_forever, daemon=True).start()
    try:
        backend = make_backend(
            [f"http://127.0.0.1:{busy.server_port}/v1", llama_server.base_url],
            max_new_tokens=4,
            retries=2,
        )
        requests = [
            GenerationRequest(key=str(i), messages=m) for i, m in enumerate(sample_messages())
        ]
        results = backend.generate(requests, seed=7)
        assert [r.key for r in results] == ["0", "1", "2"]
        assert hits and set(hits) == {"/v1/completions"}
        # With one try, no next server: the batch fails with the French message.
        single = make_backend([f"http://127.0.0.1:{busy.server_port}/v1"], retries=1)
        with pytest.raises(InferenceServerError) as failure:
            single.generate(requests[:1], seed=7)
        assert failure.value.user_message == INFERENCE_SERVER_USER_MESSAGE
        assert "HTTP 503" in str(failure.value)
    finally:
        busy.shutdown()
        busy.server_close()


def test_check_model_asks_the_servers(llama_server, runner_settings):
    from io import StringIO

    from django.core.management import call_command

    runner_settings.APPRECIATION_BACKEND = "worker.backends.openai.OpenAICompatibleBackend"
    runner_settings.APPRECIATION_INFERENCE_SERVERS = [llama_server.base_url]
    runner_settings.APPRECIATION_INFERENCE_MODEL = MODEL_ALIAS
    out = StringIO()
    call_command("check_model", stdout=out)
    assert f"Serveur d'inférence : joignable ({llama_server.base_url}), il sert" in out.getvalue()

    reset_backend_cache()
    runner_settings.APPRECIATION_INFERENCE_MODEL = "autre-modele"
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("check_model", "--fail", stdout=out)
    assert "Serveur d'inférence : INDISPONIBLE" in out.getvalue()
    assert "ne sert pas le modèle autre-modele (il sert : appreciation)" in out.getvalue()


# --- llama.cpp's own server (llama-server): the `llama.cpp` engine ---------------------------


@pytest.fixture(scope="module")
def cpp_binary(llama_server):
    from .llama_server import llama_server_binary, unavailable

    binary = llama_server_binary()
    if not binary.is_file():
        unavailable(f"no llama-server at {binary}: bash scripts/build_llama_server.sh")
    return binary


@pytest.fixture(scope="module")
def cpp_servers(cpp_binary, tiny_gguf, sharp):
    """llama-server serving the tiny model, and its sharpened variant (see `sharp`)."""
    from .llama_server import LlamaCppServer

    sharp_server, _reference = sharp
    plain = LlamaCppServer(tiny_gguf, binary=cpp_binary).start()
    sharpened = LlamaCppServer(sharp_server.model_path, binary=cpp_binary)
    try:
        sharpened.start()
        yield plain, sharpened
    finally:
        plain.kill()
        sharpened.kill()


def test_llama_server_reads_the_same_ids_and_computes_the_same_logprobs(cpp_servers, reference):
    plain, _sharpened = cpp_servers
    _model, tokenizer = reference
    backend = make_backend([plain.base_url], engine="llama.cpp")
    for messages in sample_messages():
        expected = prompt_token_ids(tokenizer, messages, date_string=DATE)
        payload = backend.completion_payload(messages, seed=1)
        answer = httpx2.post(
            plain.base_url.removesuffix("/v1") + "/tokenize",
            # As the completions endpoint tokenizes a text prompt.
            json={"content": payload["prompt"], "add_special": True, "parse_special": True},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["tokens"] == expected
        body = backend.post_with_retries(
            "completions", {**payload, "max_tokens": 1, "logprobs": 20}
        )
        assert body["usage"]["prompt_tokens"] == len(expected)
        reference_logprobs = torch.log_softmax(first_token_logits(reference, messages), dim=-1)
        top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        assert len(top) == 20
        for entry in top:
            assert entry["logprob"] == pytest.approx(
                reference_logprobs[entry["id"]].item(), abs=1e-4
            )


def test_llama_server_samples_the_cards_distribution(cpp_servers, sharp):
    """The same test as llama-cpp-python's, by token id: the `llama.cpp` engine's chain
    (samplers temperature then min_p) against the card, and llama-server's defaults."""
    _plain, server = cpp_servers
    _server, reference = sharp
    _model, tokenizer = reference
    end_of_turn = {tokenizer.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eom_id|>")}
    end_of_turn.add(tokenizer.convert_tokens_to_ids("<|eot_id|>"))
    messages = sample_messages()[0]
    logits = first_token_logits(reference, messages)

    def by_id(distribution):
        merged: dict = {}
        for index, probability in enumerate(distribution.tolist()):
            key = "end" if index in end_of_turn else index
            merged[key] = merged.get(key, 0.0) + probability
        return merged

    backend = make_backend([server.base_url], engine="llama.cpp", concurrency=4)
    # The same request on llama-server's own endpoint, which returns the sampled token's id
    # (the OpenAI one holds back a token that ends inside a UTF-8 character, logprobs too)
    # and the settings it sampled with.
    native = server.base_url.removesuffix("/v1") + "/completion"
    client = httpx2.Client(timeout=60)

    def sample(payload, seeds):
        def one(seed):
            answer = client.post(
                native, json={**payload, "seed": seed, "max_tokens": 1, "return_tokens": True}
            )
            tokens = answer.json()["tokens"]
            return "end" if not tokens or tokens[0] in end_of_turn else tokens[0]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return Counter(pool.map(one, seeds))

    payload = backend.completion_payload(messages, seed=None)
    settings = httpx2.post(native, json={**payload, "max_tokens": 1}, timeout=60).json()
    settings = settings["generation_settings"]
    assert settings["samplers"] == ["temperature", "min_p"]
    assert (settings["top_k"], settings["top_p"], settings["min_p"]) == (0, 1.0, pytest.approx(0.1))
    counts = sample(payload, range(SAMPLES))
    p_value = chi_square_p_value(counts, by_id(card_distribution(logits)))
    assert p_value > 1e-3, p_value

    # llama-server's own chain with the card's two numbers: top_k 40, top_p 0.95, min_p,
    # temperature last.
    bare = {key: payload[key] for key in ("model", "prompt", "temperature", "min_p")}
    wrong = sample(bare, range(SAMPLES, 2 * SAMPLES))
    assert chi_square_p_value(wrong, by_id(card_distribution(logits))) < 1e-6
    assert chi_square_p_value(wrong, by_id(llama_cpp_default_distribution(logits))) > 1e-3


def test_llama_server_drafts_with_the_seed(cpp_servers):
    plain, _sharpened = cpp_servers
    backend = make_backend([plain.base_url], engine="llama.cpp", max_new_tokens=12)
    assert backend.check_available().available  # its /v1/models lists the alias
    requests = [GenerationRequest(key=str(i), messages=m) for i, m in enumerate(sample_messages())]
    first = backend.generate(requests, seed=42)
    assert [r.text for r in backend.generate(requests, seed=42)] == [r.text for r in first]
    assert all(0 < r.new_tokens <= 12 and r.prompt_tokens > 200 for r in first)


# --- A class through the runner -------------------------------------------------------------


def class_of(world, students: int):
    for index in range(students - 3):  # the world's class has three
        StudentFactory(school_class=world.school_class, last_name=f"Ajout{index:02d}")
    for student in world.school_class.students.all():
        TermAssessmentFactory(student=student, term=world.term, subject=world.assignment.subject)


@pytest.fixture
def no_queue(monkeypatch):
    sent = []
    monkeypatch.setattr(jobs, "_enqueue", lambda job, draft_count: sent.append(job.pk))
    return sent


@pytest.fixture
def runner_settings(settings):
    settings.APPRECIATION_MAX_ATTEMPTS = 1
    settings.APPRECIATION_MAX_NEW_TOKENS = 16
    settings.APPRECIATION_CHAT_DATE = DATE
    settings.APPRECIATION_TEST_MODEL = True
    reset_backend_cache()
    yield settings
    reset_backend_cache()


@pytest.mark.django_db
def test_a_class_is_drafted_on_the_server(world, llama_server, no_queue, runner_settings):
    runner_settings.APPRECIATION_BACKEND = "worker.backends.openai.OpenAICompatibleBackend"
    runner_settings.APPRECIATION_INFERENCE_SERVERS = [llama_server.base_url]
    runner_settings.APPRECIATION_INFERENCE_MODEL = MODEL_ALIAS
    runner_settings.APPRECIATION_INFERENCE_ENGINE = "llama-cpp-python"
    class_of(world, 6)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="gpu@server")  # the configured backend
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error_detail
    drafts = list(job.drafts.all())
    assert len(drafts) == 6
    assert all(d.status == Draft.Status.GENERATED and d.text for d in drafts)
    assert all(d.is_test_model for d in drafts)
    state = WorkerState.objects.get(hostname="gpu@server")
    assert state.state == WorkerState.State.READY
    assert state.model_info["servers"] == [llama_server.base_url]


def test_the_served_name_can_follow_the_version():
    assert served_model_name("appreciation", adapter="/models/versions/v2") == "appreciation"
    assert served_model_name("{adapter_name}", adapter="/models/versions/v2/") == "v2"
    assert served_model_name("{adapter_name}", adapter="eltorio/Llama-3.2-3B-appreciation") == (
        "Llama-3.2-3B-appreciation"
    )


@pytest.mark.django_db
def test_a_promotion_switches_the_served_model_the_worker_asks_for(
    world, llama_server, no_queue, runner_settings
):
    """With APPRECIATION_INFERENCE_MODEL = "{adapter_name}", the version in service names the
    model asked of the server: the server's alias drafts; a promoted version the server does
    not serve fails the job with the French sentence, nothing lost."""
    from generation.models import ModelVersion
    from generation.services.versions import model_version_promote
    from tests.factories import TeacherFactory

    runner_settings.APPRECIATION_BACKEND = "worker.backends.openai.OpenAICompatibleBackend"
    runner_settings.APPRECIATION_INFERENCE_SERVERS = [llama_server.base_url]
    runner_settings.APPRECIATION_INFERENCE_MODEL = "{adapter_name}"
    runner_settings.APPRECIATION_INFERENCE_ENGINE = "llama-cpp-python"
    runner_settings.APPRECIATION_ADAPTER = f"/models/versions/{MODEL_ALIAS}"
    class_of(world, 2)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="gpu@server")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.SUCCEEDED, job.error_detail
    assert WorkerState.objects.get(hostname="gpu@server").model_info["served_model"] == MODEL_ALIAS

    unserved = ModelVersion.objects.create(
        name="v9", base_model="base", adapter="/models/versions/v9", is_test_model=True
    )
    model_version_promote(
        version=unserved, user=TeacherFactory(school=None, is_staff=True, is_superuser=True)
    )
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    services.job_run(job_id=job.pk, hostname="gpu@server")
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert job.error_message == INFERENCE_SERVER_USER_MESSAGE
    assert "ne sert pas le modèle v9" in WorkerState.objects.get(hostname="gpu@server").detail
    assert job.drafts.filter(status=Draft.Status.PENDING).count() == job.drafts.count() > 0


@pytest.mark.django_db
def test_a_server_down_at_the_start_fails_the_job_in_french_and_keeps_it(
    world, tiny_gguf, no_queue, runner_settings
):
    server = LlamaServer(tiny_gguf)  # its port, nothing listening yet
    backend = make_backend([server.base_url])
    class_of(world, 3)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)

    assert not services.worker_check_model(hostname="gpu@server", backend=backend).available
    state = WorkerState.objects.get(hostname="gpu@server")
    assert state.state == WorkerState.State.MISSING
    assert state.detail.startswith(f"serveur d'inférence injoignable : {server.base_url}")

    services.job_run(job_id=job.pk, hostname="gpu@server", backend=backend)
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert job.error_message == INFERENCE_SERVER_USER_MESSAGE
    assert job.drafts.filter(status=Draft.Status.PENDING).count() == 3

    # A new job while every worker says so fails at once, with the same sentence.
    other = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    assert other.status == GenerationJob.Status.FAILED
    assert other.error_message == INFERENCE_SERVER_USER_MESSAGE

    server.start()
    try:
        services.job_retry(job=job, user=world.teacher)
        services.job_run(job_id=job.pk, hostname="gpu@server", backend=backend)
        job.refresh_from_db()
        assert job.status == GenerationJob.Status.SUCCEEDED, job.error_detail
        assert WorkerState.objects.get(hostname="gpu@server").state == WorkerState.State.READY
    finally:
        server.kill()


@pytest.mark.django_db
def test_a_server_killed_mid_class_loses_nothing(
    world, tiny_gguf, no_queue, runner_settings, monkeypatch
):
    runner_settings.APPRECIATION_BATCH_SIZE = 2
    server = LlamaServer(tiny_gguf).start()
    backend = make_backend([server.base_url], retries=3, backoff=0.05)
    class_of(world, 6)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)

    write = runner._write_outcomes

    def write_then_kill(**kwargs):
        written = write(**kwargs)
        server.kill()  # SIGKILL after the first batch is stored: the class is half done
        return written

    monkeypatch.setattr(runner, "_write_outcomes", write_then_kill)
    try:
        services.job_run(job_id=job.pk, hostname="gpu@server", backend=backend)
        job.refresh_from_db()
        assert job.status == GenerationJob.Status.FAILED
        assert job.error_message == INFERENCE_SERVER_USER_MESSAGE
        assert "No inference server answered after 3 tries" in job.error_detail
        generated = {d.pk: d.text for d in job.drafts.filter(status=Draft.Status.GENERATED)}
        assert len(generated) == 2  # what was written stays
        assert job.drafts.filter(status=Draft.Status.PENDING).count() == 4  # the rest waits
        state = WorkerState.objects.get(hostname="gpu@server")
        assert state.state == WorkerState.State.FAILED
        assert "No inference server answered" in state.detail

        monkeypatch.setattr(runner, "_write_outcomes", write)
        server.start()  # back on the same address
        services.job_retry(job=job, user=world.teacher)
        services.job_run(job_id=job.pk, hostname="gpu@server", backend=backend)
        job.refresh_from_db()
        assert job.status == GenerationJob.Status.SUCCEEDED, job.error_detail
        assert job.drafts.filter(status=Draft.Status.GENERATED).count() == 6
        for pk, text in generated.items():  # the first batch was not drafted again
            assert Draft.objects.get(pk=pk).text == text
    finally:
        server.kill()


@pytest.mark.django_db
def test_a_server_back_within_the_retries_is_waited_for(
    world, tiny_gguf, no_queue, runner_settings, monkeypatch, caplog
):
    """Killed after the first batch and started again at once: the requests that failed
    meanwhile are sent again after 0.5, 1, 2, 4... s, and the class finishes."""
    import threading

    runner_settings.APPRECIATION_BATCH_SIZE = 2
    server = LlamaServer(tiny_gguf).start()
    # Up to 0.5 + 1 + ... + 30 s of waiting: far more than a restart takes.
    backend = make_backend([server.base_url], retries=9, backoff=0.5)
    class_of(world, 4)
    job = services.job_create(assignment=world.assignment, term=world.term, user=world.teacher)
    write = runner._write_outcomes
    restarts = []

    def write_then_restart(**kwargs):
        written = write(**kwargs)
        if not restarts:
            server.kill()
            restarts.append(threading.Thread(target=server.start, daemon=True))
            restarts[0].start()
        return written

    monkeypatch.setattr(runner, "_write_outcomes", write_then_restart)
    try:
        services.job_run(job_id=job.pk, hostname="gpu@server", backend=backend)
        job.refresh_from_db()
        assert job.status == GenerationJob.Status.SUCCEEDED, job.error_detail
        assert job.drafts.filter(status=Draft.Status.GENERATED).count() == 4
        assert len(restarts) == 1
        # It did wait: the second batch's requests found the server down first.
        assert "Inference request to" in caplog.text and "retry 1/8" in caplog.text
    finally:
        for thread in restarts:
            thread.join(120)
        server.kill()
