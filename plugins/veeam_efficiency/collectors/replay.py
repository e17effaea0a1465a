"""The replay collector: collector JSON files exported earlier, re-analysed as if collected now."""

from __future__ import annotations

import os
from pathlib import Path

from veeam_efficiency.contract import ContractError

BUNDLED_SAMPLE_DIR = Path(__file__).resolve().parents[3] / "include" / "sample_data"


def replay_dir() -> Path:
    """The directory replay files must live in: env ``VEEAM_REPLAY_DIR``, else the bundled sample data."""
    return Path(os.environ.get("VEEAM_REPLAY_DIR") or BUNDLED_SAMPLE_DIR).resolve()


def replay_files(replay_path: str, root: Path | None = None) -> list[Path]:
    """The contract files ``replay_path`` names: one file, or every ``*.json`` in a directory.

    Refuses any path that resolves outside the replay directory (``..``, absolute
    paths, symlinks out), so a run-time Param cannot read arbitrary files.
    """
    root = (root or replay_dir()).resolve()
    target = (root / replay_path).resolve()
    if not target.is_relative_to(root):
        raise ContractError(f"replay_path {replay_path!r} is outside the replay directory {root}")
    if target.is_dir():
        files = sorted(path for path in target.glob("*.json") if path.resolve().is_relative_to(root))
        if not files:
            raise ContractError(f"no *.json collector files in {target}")
        return files
    if not target.is_file():
        raise ContractError(f"replay file {target} does not exist")
    return [target]


def read_replay_file(path: str, root: Path | None = None) -> str:
    """The file's text, after checking again that it is inside the replay directory."""
    root = (root or replay_dir()).resolve()
    target = Path(path).resolve()
    if not target.is_relative_to(root):
        raise ContractError(f"replay file {path!r} is outside the replay directory {root}")
    return target.read_text(encoding="utf-8-sig")
