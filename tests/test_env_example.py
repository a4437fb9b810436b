"""`.env.example` lists every setting the platform reads from the environment."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_environment_setting_is_documented():
    read = set()
    for path in (ROOT / "appreciation_site" / "settings").glob("*.py"):
        read |= set(re.findall(r'env(?:\.[a-z]+)?\(\s*"([A-Z_]+)"', path.read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert len(read) > 20
    assert read - documented == set()
