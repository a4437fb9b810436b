"""Whether the configured model's files are on this machine, without loading anything.

A worker checks this when it starts and `make run` prints it: reading a few small files of a
local folder or of the Hugging Face cache takes milliseconds, where loading the model takes
minutes (and, for a hub id that is not cached, would try to download 6.5 GB).

Offline and torch-free: only huggingface_hub's cache lookup (`try_to_load_from_cache`, which
reads the cache folder and never touches the network), imported when a hub id is checked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from generation.backends import ModelAvailability

BASE_CONFIG = "config.json"
# One file, or an index naming the shards (Llama 3.2 3B: two safetensors shards).
BASE_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
BASE_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
# The adapter ships the tokenizer it was trained with; else the base model's serves.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

Lookup = Callable[[str], Path | None]


def looks_like_path(name: str) -> bool:
    """A hub id is "owner/name"; anything absolute, relative-looking or existing is a folder."""
    return name.startswith(("/", ".", "~")) or Path(name).exists() or name.count("/") != 1


def check_model_files(
    *, base_model: str, adapter: str, cache_dir: str | Path | None = None
) -> ModelAvailability:
    """Are the base model (config and weights), the adapter (config and weights) and a
    tokenizer present, each as a local folder or in the Hugging Face cache?"""
    started = time.monotonic()
    missing: list[str] = []
    base = _lookup(base_model, cache_dir, missing, what="base model")
    peft = _lookup(adapter, cache_dir, missing, what="adapter")
    if base is not None:
        if base(BASE_CONFIG) is None:
            missing.append(f"base model {base_model}: no {BASE_CONFIG}")
        if not _has_base_weights(base):
            missing.append(f"base model {base_model}: no weights ({', '.join(BASE_WEIGHTS)})")
    if peft is not None:
        if peft(ADAPTER_CONFIG) is None:
            missing.append(f"adapter {adapter}: no {ADAPTER_CONFIG}")
        if not any(peft(name) is not None for name in ADAPTER_WEIGHTS):
            missing.append(f"adapter {adapter}: no weights ({', '.join(ADAPTER_WEIGHTS)})")
    if base is not None and peft is not None and not _has_tokenizer(peft, base):
        missing.append(f"no tokenizer ({', '.join(TOKENIZER_FILES)}) in {adapter} or {base_model}")
    return ModelAvailability(
        available=not missing,
        base_model=base_model,
        adapter=adapter,
        missing=tuple(missing),
        seconds=time.monotonic() - started,
    )


def _lookup(name: str, cache_dir, missing: list[str], *, what: str) -> Lookup | None:
    """A function giving a file of the model's folder or cached snapshot (None when absent);
    None, with the reason added to `missing`, when there is no such folder or cached repo."""
    if not name:
        missing.append(f"{what}: not configured")
        return None
    if looks_like_path(name):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            missing.append(f"{what} {name}: no such folder")
            return None
        return lambda filename: (folder / filename) if (folder / filename).is_file() else None
    from huggingface_hub import constants, try_to_load_from_cache

    cache = str(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE

    def cached(filename: str) -> Path | None:
        found = try_to_load_from_cache(repo_id=name, filename=filename, cache_dir=cache)
        return Path(found) if isinstance(found, str) else None

    if cached(BASE_CONFIG if what == "base model" else ADAPTER_CONFIG) is None:
        missing.append(f"{what} {name}: not in the Hugging Face cache ({cache})")
        return None
    return cached


def _has_tokenizer(*lookups: Lookup) -> bool:
    return any(lookup(name) is not None for lookup in lookups for name in TOKENIZER_FILES)


def _has_base_weights(lookup: Lookup) -> bool:
    if any(lookup(name) is not None for name in BASE_WEIGHTS):
        return True
    for index_name in BASE_WEIGHT_INDEXES:
        index = lookup(index_name)
        if index is None:
            continue
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False
        return bool(shards) and all(lookup(shard) is not None for shard in shards)
    return False
