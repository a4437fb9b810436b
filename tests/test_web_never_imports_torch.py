"""The web process never imports torch, transformers or peft: only worker/ does."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import importlib, os, pkgutil, sys

class Block:
    # Any import of the worker's stack fails loudly, as on the web image that lacks it.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "peft", "accelerate"}:
            raise ImportError(f"web process imported {name}")
        return None

sys.meta_path.insert(0, Block())
os.environ["DJANGO_SETTINGS_MODULE"] = "appreciation_site.settings.test"
import django
django.setup()
imported = []
for package in (
    "appreciation_site", "audit", "common", "classes", "generation", "exports", "privacy",
    "learning"
):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if ".migrations." in info.name or info.name.startswith("appreciation_site.settings."):
            continue
        importlib.import_module(info.name)
        imported.append(info.name)
from django.urls import reverse
from django.test import Client
reverse("classes:dashboard")
Client().get("/connexion/")
print(len(imported), "modules")
assert not any(m.split(".")[0] in {"torch", "transformers", "peft"} for m in sys.modules)
"""


def test_every_web_module_imports_without_torch():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    count = int(result.stdout.split()[0])
    assert count >= 15  # the walk really covered the apps


def test_show_prompt_needs_no_model():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nclass B:\n def find_spec(s,n,p=None,t=None):\n"
            "  if n.split('.')[0] in {'torch','transformers','peft'}: raise ImportError(n)\n"
            "sys.meta_path.insert(0,B())\nimport os\n"
            "os.environ['DJANGO_SETTINGS_MODULE']='appreciation_site.settings.test'\n"
            "from django.core.management import execute_from_command_line\n"
            "execute_from_command_line(['manage.py','draft','--trimester','2','--averages','12.5',"
            "'14','--behaviour','7','--participation','6','--work','8','--show-prompt'])",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"role": "system"' in result.stdout
