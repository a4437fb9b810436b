"""manage.py fetch_model and build_test_model."""

import json

import huggingface_hub.constants
import pytest
from django.core.management import CommandError, call_command


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
