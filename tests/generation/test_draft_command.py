"""manage.py draft: input validation, and --show-prompt without torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from generation.prompts import CARD_SYSTEM_PROMPT

ROOT = Path(__file__).resolve().parents[2]
HEAVY_MODULES = ("torch", "transformers", "peft", "accelerate", "safetensors")


def run_manage(*args):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "appreciation_site.settings.test"}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def imported_modules(importtime_stderr):
    # Lines look like "import time:       123 |        456 |   package.module".
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def test_show_prompt_prints_json_messages_without_importing_torch():
    result = run_manage(
        "draft",
        "--trimester", "3",
        "--averages", "11", "12,5", "14",
        "--behaviour", "7",
        "--participation", "6",
        "--work", "8",
        "--show-prompt",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    messages = json.loads(result.stdout)
    assert [message["role"] for message in messages] == ["system", "user"]
    assert messages[0]["content"] == CARD_SYSTEM_PROMPT
    assert (
        "14 de moyenne ce trimestre, 12.5 au deuxième trimestre et 11 au premier"
        in (messages[1]["content"])
    )
    assert "évalué" in result.stdout  # ensure_ascii=False: accents as they are
    modules = imported_modules(result.stderr)
    assert "generation.prompts" in modules  # the parsing works: the module we did import
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY_MODULES)
    assert heavy == []


def test_show_prompt_uses_the_subject(capsys):
    call_command(
        "draft",
        "--trimester=1",
        "--averages=9.5",
        "--behaviour=5",
        "--participation=5",
        "--work=5",
        "--subject=Mathématiques",
        "--show-prompt",
    )
    messages = json.loads(capsys.readouterr().out)
    assert "les enseignants de mathématiques" in messages[0]["content"]
    assert "9.5 de moyenne" in messages[1]["content"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trimester=1", "--averages", "12", "13"], "Trimester 1 needs 1 average"),
        (["--trimester=2", "--averages", "12"], "Trimester 2 needs 2 average"),
        (["--trimester=3", "--averages", "12", "13"], "Trimester 3 needs 3 average"),
        (["--trimester=1", "--averages", "21"], "between 0 and 20"),
        (["--trimester=1", "--averages", "-1"], "between 0 and 20"),
        (["--trimester=1", "--averages", "douze"], "Not a number"),
        (["--trimester=1", "--averages", "12", "--behaviour=11"], "--behaviour must be between"),
        (["--trimester=1", "--averages", "12", "--work=-2"], "--work must be between"),
    ],
)
def test_invalid_inputs_are_command_errors(args, message):
    defaults = ["--behaviour=5", "--participation=5", "--work=5", "--show-prompt"]
    with pytest.raises(CommandError, match=message):
        call_command("draft", *defaults, *args)


def test_trimester_must_be_1_2_or_3():
    with pytest.raises(CommandError):
        call_command(
            "draft",
            "--trimester=4",
            "--averages=12",
            "--behaviour=5",
            "--participation=5",
            "--work=5",
            "--show-prompt",
        )
