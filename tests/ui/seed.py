"""A results database for the view's tests: the bundled sample data scored by the DAG's own steps.

``pipeline.validate -> analyze -> optimize -> load`` (the functions the DAG's tasks call)
run in-process on ``include/sample_data`` for a few consecutive days, so the view reads
rows exactly as the DAG writes them. Two scored jobs of vbr01 are renamed, to markup and to
quotes with a semicolon, so the tests can check that names are shown as text (the sample's
other hostile names belong to jobs with too few sessions; its CJK name is scored).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from veeam_efficiency import pipeline
from veeam_efficiency.payload import records
from veeam_efficiency.settings import AnalysisSettings
from veeam_efficiency.storage import ensure_schema
from veeam_efficiency.window import analysis_window

SAMPLES = Path(__file__).resolve().parents[2] / "include" / "sample_data"
LAST_DAY = date(2026, 11, 26)  # 14 jobs scored on the two sample hosts
MARKUP_NAME = '<script>window.__veeam_xss=1</script><img src=x onerror="window.__veeam_xss=2">'
QUOTED_NAME = 'Finance "Q4"; DROP TABLE feature3.x; -- O\'Brien'
CJK_NAME = "東京 SQL ログ"
RENAMED = {"SQLLogCopy": MARKUP_NAME, "SQL Log backup": QUOTED_NAME}  # on vbr01


def run_id(day: date) -> str:
    return f"scheduled__{day.isoformat()}T00:00:00+00:00"


def sample_documents() -> dict[str, str]:
    """``{vbr_host: contract JSON}``, with two of vbr01's jobs renamed (RENAMED)."""
    documents = {}
    for path in sorted(SAMPLES.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if document["vbr_host"].startswith("vbr01"):
            for session in document["sessions"]:
                session["job_name"] = RENAMED.get(session["job_name"], session["job_name"])
        documents[document["vbr_host"]] = json.dumps(document, ensure_ascii=False)
    return documents


def seed(dsn: str, days: int = 3) -> dict[str, list[str]]:
    """Score every sample host for the ``days`` ending on LAST_DAY; returns ``{vbr_host: [job names scored]}``."""
    settings = AnalysisSettings()
    scored: dict[str, list[str]] = {}
    with psycopg.connect(dsn) as conn:
        ensure_schema(conn)
        for offset in reversed(range(days)):
            day = LAST_DAY - timedelta(days=offset)
            end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
            window = analysis_window(end, settings.lookback_days)
            for host, document in sample_documents().items():
                validated = pipeline.validate(document, window, settings)
                analysis = pipeline.analyze(validated, settings)
                optimized = pipeline.scored(analysis, pipeline.optimize(analysis, settings))
                pipeline.load(conn, validated, optimized, dag_run_id=run_id(day))
                scored[host] = sorted(
                    {card["job_name"] for card in records(optimized["scorecards"]) if card["scope"] == "job"}
                )
    return scored
