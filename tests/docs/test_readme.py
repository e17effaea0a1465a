"""The README an operator reads first: its order, and every link, path, command and variable it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```(?:bash|sh)\n(.*?)```", re.DOTALL)
REPO_PATH = re.compile(r"`((?:dags|plugins|include|tests|scripts|docs|bench)/[A-Za-z0-9_./-]+)`")
ENV_VAR = re.compile(r"\bVEEAM_[A-Z_]+\b")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_readme_puts_the_quick_start_first_then_the_operators_path():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert sections[:4] == ["Quick start", "Point it at your VBR server", "Operating it", "Reference"], sections
    first_block = FENCE.search(text)
    assert first_block and first_block.group(1).splitlines()[:2] == [
        "make demo   # creates .venv, runs the DAG once on include/sample_data, prints the scorecards",
        "make test   # creates .venv, runs the test suite (pytest), then ruff and mypy",
    ]
    steps = text.split("## Point it at your VBR server", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"(?m)^(\d)\. ", steps) == ["1", "2", "3", "4", "5", "6"]
    operating = text.split("## Operating it", 1)[1].split("\n## ", 1)[0]
    for heading in ("### Backfills and re-runs", "### Alerts", "### Scaling out"):
        assert heading in operating
    for internal in ("binary `COPY`", "COLLATE", "bench.xcom_payload", "msgspec"):  # internals live in docs/
        assert internal not in text.split("## Reference")[0], internal


@pytest.mark.parametrize("document", DOCS, ids=lambda path: path.name)
def test_links_resolve(document: Path):
    broken = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, broken


@pytest.mark.parametrize("document", DOCS, ids=lambda path: path.name)
def test_paths_and_commands_resolve(document: Path):
    text = document.read_text(encoding="utf-8")
    missing = [path for path in REPO_PATH.findall(text) if not (REPO / path.rstrip(".")).exists()]
    assert not missing, missing
    targets = set(re.findall(r"(?m)^([a-z][a-z-]*):", (REPO / "Makefile").read_text()))
    for block in FENCE.findall(text):
        for line in block.splitlines():
            if match := re.match(r"\s*make ([a-z-]+)", line):
                assert match.group(1) in targets, line
            if match := re.match(r"\s*airflow dags test (\S+)", line):
                assert (REPO / "dags" / f"{match.group(1)}.py").exists(), line


def test_every_variable_the_readme_names_is_read_by_the_code_or_the_deployment():
    code = "\n".join(
        path.read_text(encoding="utf-8")
        for pattern in ("plugins/**/*.py", "dags/*.py", "scripts/*.py")
        for path in REPO.glob(pattern)
    )
    code += (REPO / "docker-compose.yaml").read_text()
    code += "\n".join(path.read_text(encoding="utf-8") for path in (REPO / "tests").glob("**/*.py"))  # test knobs
    code += (REPO / "include" / "sql" / "grants.sql").read_text()
    names = set(ENV_VAR.findall((REPO / "README.md").read_text(encoding="utf-8")))
    unread = sorted(name for name in names if name not in code)
    assert not unread, unread
