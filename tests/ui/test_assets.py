"""The committed browser bundle is what its sources and lockfile build (when the npm packages are installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "include" / "ui"
BUNDLE = REPO / "plugins" / "veeam_efficiency" / "airflow" / "ui" / "static" / "app.js"


def test_bundle_has_no_remote_urls_to_load() -> None:
    """Nothing is fetched from a CDN at run time (air-gapped sites): no script or import from http(s)."""
    text = BUNDLE.read_text(encoding="utf-8")
    assert not re.search(r"""(import\(|src=|fetch\()\s*["']https?://""", text)


def test_committed_bundle_matches_a_fresh_build(tmp_path: Path) -> None:
    esbuild = UI / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists() or shutil.which("node") is None:
        pytest.skip("npm packages not installed: `make ui-assets` installs them from include/ui/package-lock.json")
    out = tmp_path / "app.js"
    command = ["npm", "run", "--silent", "build", "--", f"--outfile={out}"]
    subprocess.run(command, cwd=UI, check=True, capture_output=True, timeout=120)
    assert out.read_bytes() == BUNDLE.read_bytes(), "app.js is stale: run `make ui-assets` and commit it"
