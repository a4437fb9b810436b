"""The model check a worker runs when it starts: files present or not, nothing loaded."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generation.backends import BaseBackend
from worker.backends.transformers import TransformersBackend
from worker.model_files import check_model_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    """A copy of the tiny model's two folders, to remove files from."""
    base, adapter = tiny_model
    return (
        Path(shutil.copytree(base, tmp_path / "base")),
        Path(shutil.copytree(adapter, tmp_path / "adapter")),
    )


def test_folders_with_their_files_are_available(tiny_model):
    base, adapter = tiny_model
    result = check_model_files(base_model=str(base), adapter=str(adapter))
    assert result.available, result.detail
    assert result.missing == ()
    assert result.seconds < 1.0


def test_missing_folders_are_named(tmp_path):
    result = check_model_files(
        base_model=str(tmp_path / "no-base"), adapter=str(tmp_path / "no-adapter")
    )
    assert not result.available
    assert result.missing == (
        f"base model {tmp_path / 'no-base'}: no such folder",
        f"adapter {tmp_path / 'no-adapter'}: no such folder",
    )


@pytest.mark.parametrize(
    ("folder", "filename", "expected"),
    [
        ("base", "config.json", "no config.json"),
        ("base", "model.safetensors", "no weights"),
        ("adapter", "adapter_config.json", "no adapter_config.json"),
        ("adapter", "adapter_model.safetensors", "no weights"),
    ],
)
def test_a_folder_without_its_config_or_weights_is_missing(model_copy, folder, filename, expected):
    base, adapter = model_copy
    (base if folder == "base" else adapter).joinpath(filename).unlink()
    result = check_model_files(base_model=str(base), adapter=str(adapter))
    assert not result.available
    assert len(result.missing) == 1 and expected in result.missing[0]


def test_sharded_weights_need_every_shard(model_copy):
    base, adapter = model_copy
    weights = base / "model.safetensors"
    shutil.move(weights, base / "model-00001-of-00002.safetensors")
    (base / "model.safetensors.index.json").write_text(
        json.dumps(
            {
                "weight_map": {
                    "a": "model-00001-of-00002.safetensors",
                    "b": "model-00002-of-00002.safetensors",
                }
            }
        )
    )
    result = check_model_files(base_model=str(base), adapter=str(adapter))
    assert not result.available and "no weights" in result.detail
    shutil.copy(
        base / "model-00001-of-00002.safetensors", base / "model-00002-of-00002.safetensors"
    )
    assert check_model_files(base_model=str(base), adapter=str(adapter)).available


def _cache_repo(cache: Path, repo_id: str, source: Path) -> None:
    """Lay a folder out as the hub client caches a download (refs/main -> a snapshot)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abc")
    shutil.copytree(source, repo / "snapshots" / "0123abc")


def test_hub_ids_are_looked_up_in_the_cache_offline(tiny_model, tmp_path):
    base, adapter = tiny_model
    cache = tmp_path / "hub"
    cache.mkdir()
    ids = {
        "base_model": "unsloth/Llama-3.2-3B-Instruct",
        "adapter": "eltorio/Llama-3.2-3B-appreciation",
    }
    result = check_model_files(**ids, cache_dir=cache)
    assert not result.available
    assert result.missing == (
        f"base model unsloth/Llama-3.2-3B-Instruct: not in the Hugging Face cache ({cache})",
        f"adapter eltorio/Llama-3.2-3B-appreciation: not in the Hugging Face cache ({cache})",
    )
    _cache_repo(cache, ids["base_model"], base)
    _cache_repo(cache, ids["adapter"], adapter)
    assert check_model_files(**ids, cache_dir=cache).available


def test_the_transformers_backend_checks_without_loading(tiny_model, tmp_path):
    base, adapter = tiny_model
    backend = TransformersBackend(base_model=str(base), adapter=str(adapter), device="cpu")
    assert backend.check_available().available
    assert backend.model is None and backend.status == "loading"  # nothing was loaded
    missing = TransformersBackend(base_model=str(tmp_path / "nothing"), adapter=str(adapter))
    result = missing.check_available()
    assert not result.available and "no such folder" in result.detail


def test_a_backend_with_nothing_to_load_is_available():
    assert BaseBackend().check_available().available


def test_the_check_imports_no_torch():
    """`make run` runs it before the worker starts: it must not pay for torch."""
    script = (
        "import sys\n"
        "from worker.model_files import check_model_files\n"
        "check_model_files(base_model='/nonexistent/base', adapter='owner/adapter')\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
