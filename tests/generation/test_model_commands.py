"""manage.py fetch_model, build_test_model and check_model."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
from django.core.management import CommandError, call_command

from generation.backends import reset_backend_cache

ROOT = Path(__file__).resolve().parents[2]


def test_fetch_model_skips_local_folders(tmp_path, settings, capsys):
    base, adapter = tmp_path / "base", tmp_path / "adapter"
    base.mkdir()
    adapter.mkdir()
    settings.APPRECIATION_BASE_MODEL = str(base)
    settings.APPRECIATION_ADAPTER = str(adapter)
    call_command("fetch_model")
    out = capsys.readouterr().out
    assert out.count("local folder, nothing to download") == 2


def test_fetch_model_offline_is_a_clear_error(tmp_path, settings, monkeypatch):
    # No network here: offline mode makes the hub client fail at once instead of retrying.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    settings.APPRECIATION_BASE_MODEL = "nobody-here/no-such-model-xyz"
    with pytest.raises(CommandError) as error:
        call_command("fetch_model")
    message = str(error.value)
    assert "Le téléchargement de nobody-here/no-such-model-xyz a échoué" in message
    assert "Download of nobody-here/no-such-model-xyz failed" in message


def test_build_test_model_writes_the_pair_and_prints_the_settings(tmp_path, capsys):
    call_command("build_test_model", str(tmp_path / "model"))
    out = capsys.readouterr().out
    base, adapter = tmp_path / "model" / "base", tmp_path / "model" / "adapter"
    assert f"APPRECIATION_BASE_MODEL={base}" in out
    assert f"APPRECIATION_ADAPTER={adapter}" in out
    assert "APPRECIATION_TEST_MODEL=1" in out
    assert (base / "model.safetensors").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "tokenizer.json").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    assert config["target_modules"] == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    total = sum(path.stat().st_size for path in (tmp_path / "model").rglob("*") if path.is_file())
    assert total < 1_000_000  # a few hundred KB


def test_build_test_model_is_deterministic(tmp_path):
    call_command("build_test_model", str(tmp_path / "one"))
    call_command("build_test_model", str(tmp_path / "two"))
    for name in ("base/model.safetensors", "adapter/adapter_model.safetensors"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


# --- check_model (what `make run` prints at start) -------------------------------------------


def test_check_model_says_present_for_the_tiny_model(settings, tiny_model_dirs, capsys):
    base, adapter = tiny_model_dirs
    settings.APPRECIATION_BASE_MODEL = str(base)
    settings.APPRECIATION_ADAPTER = str(adapter)
    call_command("check_model", "--fail")
    out = capsys.readouterr().out
    assert out.startswith("Modèle : présent")
    assert "sans le charger" in out


def test_check_model_says_missing_and_how_to_install(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    settings.APPRECIATION_BASE_MODEL = "unsloth/Llama-3.2-3B-Instruct"
    settings.APPRECIATION_ADAPTER = "eltorio/Llama-3.2-3B-appreciation"
    call_command("check_model")  # `make run` goes on: the pages work without a model
    out = capsys.readouterr().out
    assert "Modèle : ABSENT" in out
    assert "unsloth/Llama-3.2-3B-Instruct: not in the Hugging Face cache" in out
    assert "manage.py fetch_model" in out
    assert "APPRECIATION_TEST_MODEL=1 make run" in out
    with pytest.raises(SystemExit) as exit_:
        call_command("check_model", "--fail")
    assert exit_.value.code == 1


def test_check_model_uses_the_configured_backends_check(settings, capsys):
    settings.APPRECIATION_BACKEND = "tests.generation.test_model_missing.AbsentModelBackend"
    reset_backend_cache()
    try:
        call_command("check_model")
    finally:
        reset_backend_cache()
    assert "base model owner/base: not in the Hugging Face cache" in capsys.readouterr().out


def test_run_script_prints_the_check_before_starting_the_worker():
    script = (ROOT / "scripts" / "run.sh").read_text()
    assert "manage.py check_model\n" in script
    assert script.index("manage.py check_model") < script.index("celery -A appreciation_site")


def test_check_model_is_fast_and_imports_no_torch(tmp_path):
    """`make run` pays for it at every start: no torch (about 1.5 s to import), a second."""
    blocker = (
        "import sys\n"
        "class B:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'transformers', 'peft'}:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, B())\n"
        "import os\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'appreciation_site.settings.test'\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(['manage.py', 'check_model'])\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", blocker],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Modèle : ABSENT" in result.stdout
    assert elapsed < 10  # about 0.7 s here, Django's start included
