"""The torch side of a version's evaluation: how likely the model finds the teachers' texts,
and what it drafts for the same inputs and seed. Plain data in and out.

One version at a time: each run loads its model, measures, drafts, and frees the memory before
the next one is loaded (never two 3B models at once). The drafting model cached in this process
(generation.backends.get_backend) is dropped first for the same reason; the next drafting job
loads it again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from generation.backends import GenerationRequest, release_backends

from .backends.transformers import (
    TransformersBackend,
    prompt_token_ids,
    render_prompt_text,
)

logger = logging.getLogger(__name__)

DEFAULT_LOSS_BATCH_SIZE = 8


def evaluate_model(
    *,
    base_model: str,
    adapter: str,
    examples: Sequence[dict[str, Any]],
    seed: int,
    batch_size: int = DEFAULT_LOSS_BATCH_SIZE,
    backend_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load one version, measure the loss of the reference texts, draft every example, free.

    examples: {"key", "messages" (system + user, as the backend sends them), "reference_text"
    (the teacher's final text)}. backend_options: TransformersBackend's keyword options
    (device, dtype, max_new_tokens...; the APPRECIATION_* settings otherwise: the card's
    sampling). The drafts are sampled with `seed` in batches of `batch_size` (a fixed size:
    on a GPU the automatic size follows the free memory, and another batching would draw other
    random numbers): the same version, examples and seed give the same drafts.

    Returns {"loss": mean negative log-likelihood per token of the reference texts,
    "loss_tokens", "rows", "drafts": {key: raw generated text}, "seconds"}.
    """
    keys = [example["key"] for example in examples]
    if len(set(keys)) != len(keys):
        raise ValueError("Evaluation example keys must be unique.")
    # The worker's drafting model first: one model in memory at a time.
    release_backends()
    options = {**(backend_options or {}), "batch_size": batch_size}
    backend = TransformersBackend(base_model=base_model, adapter=adapter, **options)
    started = time.monotonic()
    try:
        backend.load()
        total_nll, tokens = reference_nll(
            backend.model,
            backend.tokenizer,
            examples,
            date_string=backend.chat_date,
            batch_size=batch_size,
        )
        results = backend.generate(
            [
                GenerationRequest(key=example["key"], messages=example["messages"])
                for example in examples
            ],
            seed=seed,
        )
    finally:
        backend.release()
    seconds = time.monotonic() - started
    logger.info(
        "Evaluated %s (%d rows, %d reference tokens) in %.1f s", adapter, len(keys), tokens, seconds
    )
    return {
        "loss": total_nll / tokens if tokens else math.nan,
        "loss_tokens": tokens,
        "rows": len(keys),
        "drafts": {result.key: result.text for result in results},
        "seconds": round(seconds, 3),
    }


def reference_token_ids(
    tokenizer: Any, messages: list[dict[str, str]], text: str, *, date_string: str
) -> tuple[list[int], int]:
    """(ids, prompt length): the prompt's ids exactly as generation sends them, then the
    assistant's text and its end of turn as the chat template writes them."""
    prompt_ids = prompt_token_ids(tokenizer, messages, date_string=date_string)
    prompt_text = render_prompt_text(tokenizer, messages, date_string=date_string)
    full_text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": text}],
        date_string=date_string,
        tokenize=False,
    )
    if not full_text.startswith(prompt_text):
        raise ValueError("The chat template does not render the answer after the prompt.")
    answer_ids = tokenizer(full_text[len(prompt_text) :], add_special_tokens=False).input_ids
    return prompt_ids + answer_ids, len(prompt_ids)


def reference_nll(
    model: Any,
    tokenizer: Any,
    examples: Sequence[dict[str, Any]],
    *,
    date_string: str,
    batch_size: int = DEFAULT_LOSS_BATCH_SIZE,
) -> tuple[float, int]:
    """(summed negative log-likelihood in nats, token count) of every reference text given its
    prompt, end-of-turn token included (the model must also know where to stop)."""
    rows = [
        reference_token_ids(
            tokenizer, example["messages"], example["reference_text"], date_string=date_string
        )
        for example in examples
    ]
    order = sorted(range(len(rows)), key=lambda index: len(rows[index][0]))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    total = 0.0
    tokens = 0
    for start in range(0, len(order), max(1, batch_size)):
        chunk = [rows[index] for index in order[start : start + batch_size]]
        width = max(len(ids) for ids, _ in chunk)
        answer_lengths = [len(ids) - prompt_length for ids, prompt_length in chunk]
        # Left padding: every answer ends at the last position, so the logits of the last
        # positions only are computed (the vocabulary is 128k wide).
        input_ids = torch.tensor(
            [[pad] * (width - len(ids)) + ids for ids, _ in chunk], dtype=torch.long, device=device
        )
        attention_mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in chunk],
            dtype=torch.long,
            device=device,
        )
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        longest = max(answer_lengths)
        with torch.inference_mode():
            logits = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                logits_to_keep=longest + 1,
            ).logits
            # logits[:, j] predicts the token after it: the last `longest` tokens.
            log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = input_ids[:, -longest:]
            nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            columns = torch.arange(longest, device=device)
            lengths = torch.tensor(answer_lengths, device=device).unsqueeze(-1)
            mask = columns >= (longest - lengths)
            total += float(nll[mask].double().sum())
        tokens += sum(answer_lengths)
    return total, tokens
