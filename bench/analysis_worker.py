"""One analysis measurement in a fresh interpreter: ``python -m bench.analysis_worker DOC [--repeat N] [--profile]``.

Times ``columnar.parse_document_columns`` (the DAG's validate task) on the JSON text as
``collect`` hands it on (``ascii_json`` of the file's bytes, timed apart), then the analysis the DAG runs on the parsed
document (window_sessions + job_sufficiency + score_window + add_context + add_optimization_potential),
stage by stage, with the RSS before it and the peak RSS during it (the peak is reset with
``clear_refs`` after parsing, so the analysis's own peak is visible next to the process's).
The first run is the one the DAG pays (cold: first calls, fresh memory); ``--repeat`` more
runs of the same analysis give a median that machine noise moves less, for comparing sizes.
"""

from __future__ import annotations

import argparse
import codecs
import cProfile
import gc
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import LOOKBACK_DAYS, WINDOW_END, WINDOW_START, emit, peak_kib, reset_peak, rss_kib, top_functions


def analyse(document: Any, stages: dict[str, dict[str, float]] | None = None) -> Any:
    """The DAG's analysis of a parsed document; per-stage seconds and peak KiB into ``stages``."""
    from veeam_efficiency.context_scores import add_context, job_settings_frame
    from veeam_efficiency.job_settings import job_settings_records
    from veeam_efficiency.optimization import add_optimization_potential
    from veeam_efficiency.scorecards import score_window
    from veeam_efficiency.sessions import job_sufficiency, job_tally, window_sessions
    from veeam_efficiency.settings import AnalysisSettings
    from veeam_efficiency.window import AnalysisWindow

    settings = AnalysisSettings(lookback_days=LOOKBACK_DAYS)
    window = AnalysisWindow(WINDOW_START, WINDOW_END)
    state: dict[str, Any] = {}

    def stage(name: str, step: Any) -> None:
        reset_peak()
        start = time.perf_counter()
        step()
        if stages is not None:
            stages[name] = {"s": time.perf_counter() - start, "peak_kib": peak_kib(), "rss_after_kib": rss_kib()}

    def run_window() -> None:
        state["ws"] = window_sessions(document, window.start, window.end, settings)

    def run_sufficiency() -> None:
        ws = state["ws"]
        jobs = job_sufficiency(job_tally(ws.frame), settings.min_sessions)
        state["qualifying"] = jobs.loc[jobs["qualifies"], "job_id"].tolist()

    def run_score() -> None:
        ws = state["ws"]
        state["analysis"] = score_window(
            ws.frame, state["qualifying"], settings, vbr_host=ws.vbr_host,
            window_start=window.start, window_end=window.end, analysis_date=window.analysis_date,
        )  # fmt: skip

    def run_context() -> None:  # the grade in context: expectations, recommendations, change points
        frame = job_settings_frame(job_settings_records(document))
        state["context"] = add_context(state["analysis"].scorecards, state["ws"].frame, frame, settings)

    def run_optimize() -> None:
        state["cards"] = add_optimization_potential(state["context"], settings)

    stage("window_sessions", run_window)
    stage("job_sufficiency", run_sufficiency)
    stage("score_window", run_score)
    stage("add_context", run_context)
    stage("add_optimization_potential", run_optimize)
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("doc", type=Path)
    parser.add_argument(
        "--repeat", type=int, default=0, help="time the analysis this many more times (after the first)"
    )
    parser.add_argument("--profile", action="store_true", help="also run the analysis once more under cProfile")
    args = parser.parse_args()

    start = time.perf_counter()
    import veeam_efficiency.context_scores
    import veeam_efficiency.optimization
    import veeam_efficiency.scorecards
    import veeam_efficiency.sessions  # noqa: F401  - imports (pandas, scipy) are not part of the timing
    from veeam_efficiency.collectors.ascii_text import ascii_json
    from veeam_efficiency.columnar import parse_document_columns

    imports_s = time.perf_counter() - start
    rss_start = rss_kib()
    data = args.doc.read_bytes().removeprefix(codecs.BOM_UTF8)
    start = time.perf_counter()
    text = ascii_json(data)  # what collect hands on (collectors.errors.check_output), timed as collect's
    escape_s, escape_peak = time.perf_counter() - start, peak_kib()
    del data
    gc.collect()
    text_kib, text_ascii = rss_kib() - rss_start, text.isascii()
    reset_peak()  # validate's own peak from here: it starts with the text XCom hands it
    start = time.perf_counter()
    document = parse_document_columns(text)
    parse_s = time.perf_counter() - start
    peak_through_parse = peak_kib()
    del text
    gc.collect()

    rss_before = rss_kib()
    reset_ok = reset_peak()
    stages: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    state = analyse(document, stages)
    analysis_s = time.perf_counter() - start
    analysis_peak = max(stage["peak_kib"] for stage in stages.values()) if reset_ok else peak_kib()

    result: dict[str, Any] = {
        "sessions_collected": state["ws"].sessions_collected,
        "sessions_in_window": len(state["ws"].frame),
        "jobs": int(state["ws"].frame["job_id"].nunique()),
        "scorecards": len(state["cards"]),
        "imports_s": imports_s,
        "parse_s": parse_s,
        "escape_s": escape_s,
        "escape_peak_kib": escape_peak,
        "analysis_s": analysis_s,
        "stages": stages,
        "rss_start_kib": rss_start,
        "peak_through_parse_kib": peak_through_parse,
        "text_kib": text_kib,
        "text_ascii": text_ascii,
        "rss_before_kib": rss_before,
        "analysis_peak_kib": analysis_peak,
        "process_peak_kib": max(peak_through_parse, analysis_peak),
        "peak_reset": reset_ok,
    }
    runs = [analysis_s]
    del state
    for _ in range(args.repeat):
        gc.collect()
        start = time.perf_counter()
        analyse(document)
        runs.append(time.perf_counter() - start)
    result["analysis_runs_s"] = runs
    result["analysis_median_s"] = statistics.median(runs)
    if args.profile:
        gc.collect()
        profile = cProfile.Profile()
        profile.enable()
        analyse(document)
        profile.disable()
        result["profile"] = top_functions(profile)
    emit(result)


if __name__ == "__main__":
    main()
