"""The fingerprint of an adapter's weights, read from disk without torch (web and worker alike).

Two versions with one fingerprint are one adapter. Only the weight files count (a retrained
tokenizer or a reworded README changes nothing the model computes); each file's name is hashed
with its bytes, so a renamed shard is a different adapter.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# What peft writes (safetensors by default, the pickle format for old adapters).
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
_CHUNK = 1024 * 1024


def adapter_weight_files(adapter: str, *, cache_dir: str | Path | None = None) -> list[Path]:
    """The adapter's weight files: in its folder, or in the Hugging Face cache for a hub id
    (never downloaded). Empty when none is found."""
    folder = Path(adapter).expanduser()
    if folder.is_dir():
        return [folder / name for name in ADAPTER_WEIGHT_FILES if (folder / name).is_file()]
    if adapter.count("/") != 1 or adapter.startswith(("/", ".", "~")):
        return []  # a folder that is not there
    # A hub id: the cache only; huggingface_hub reads its folder and never the network here.
    from huggingface_hub import try_to_load_from_cache

    found = []
    for name in ADAPTER_WEIGHT_FILES:
        cached = try_to_load_from_cache(adapter, name, cache_dir=cache_dir)
        if isinstance(cached, str):
            found.append(Path(cached))
    return found


def adapter_weights_sha256(adapter: str, *, cache_dir: str | Path | None = None) -> str:
    """SHA-256 over the adapter's weight files (name and bytes, in name order); "" when the
    weights are not on this machine (a hub id not downloaded: the worker fills nothing in)."""
    files = adapter_weight_files(adapter, cache_dir=cache_dir)
    if not files:
        return ""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
