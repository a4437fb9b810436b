"""The programs that read the exported files, run for real where they are installed.

With CI set, a missing reader fails the test (CI installs them: see .ci/run); elsewhere the
test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Gepi's saisie/import_note_app.php (tbelliard/gepi, 2025): each line read by
# `fgetcsv($fp, $long_max, ";")` with $long_max = 8000 and PHP's default enclosure `"` and
# escape `\`, the header line skipped (the "en_tete" box, checked by default), then the
# appréciation column `trim(str_replace("|POINT-VIRGULE|", ";", ...))`.
GEPI_READER = r"""<?php
$fp = fopen($argv[1], "r");
$long_max = 8000;
$rows = [];
$header = true;
while (!feof($fp)) {
    $data = fgetcsv($fp, $long_max, ";");
    if ($header) { $header = false; continue; }
    if (!is_array($data)) { continue; }
    if (count($data) == 3 && $data[2] != "") {
        $data[2] = trim(str_replace("|POINT-VIRGULE|", ";", $data[2]));
    }
    $rows[] = $data;
}
echo json_encode($rows, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES);
"""


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"CI must have `{name}` (installed by .ci/run) to check the exported files.")
    pytest.skip(f"`{name}` is not installed: the file is not checked against its reader here.")


def gepi_read(content: bytes, tmp_path: Path) -> list[list[str]]:
    """The rows Gepi's import gets from the file (header skipped), read by real PHP."""
    php = require_tool("php")
    script = tmp_path / "gepi_reader.php"
    script.write_text(GEPI_READER, encoding="utf-8")
    data = tmp_path / "gepi.csv"
    data.write_bytes(content)
    result = subprocess.run(
        [php, str(script), str(data)], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


def libreoffice_csv(content: bytes, tmp_path: Path) -> str:
    """An XLSX converted to CSV by LibreOffice (UTF-8, `;`, every text cell quoted)."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice") or require_tool("soffice")
    source = tmp_path / "export.xlsx"
    source.write_bytes(content)
    out = tmp_path / "lo"
    # Its own profile: no clash with another LibreOffice running on the machine.
    profile = (tmp_path / "lo-profile").as_uri()
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--convert-to",
            # Filter options: `;` (59), `"` (34), UTF-8 (76), first line 1, quote all texts.
            "csv:Text - txt - csv (StarCalc):59,34,76,1,,0,true",
            "--outdir",
            str(out),
            str(source),
        ],
        capture_output=True,
        check=True,
        timeout=180,
    )
    return (out / "export.csv").read_text(encoding="utf-8")
