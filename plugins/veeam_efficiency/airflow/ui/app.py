"""The view's pages (``/veeam-efficiency/``) and JSON endpoints (``/veeam-efficiency/api/``).

Read-only: each request opens a read-only transaction on the results database through
the Airflow connection the DAG writes with (the ``postgres_conn_id`` Param's default),
runs the bound queries of :mod:`veeam_efficiency.view_queries`, and closes it. Every
route, the static files included, depends on :func:`access.dag_reader`: an anonymous
browser is sent to the login page, an API client gets 401/403, and neither sees data.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from veeam_efficiency import view_queries as q
from veeam_efficiency.airflow.ui.access import dag_reader, login_url
from veeam_efficiency.settings import CollectionSettings

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css", "icon.svg": "image/svg+xml"}
CONN_ID = str(CollectionSettings.model_fields["postgres_conn_id"].default)
PAGES = ("estate", "host", "job")
SECURITY_HEADERS = {
    # the page's own script and styles only: a job name that got into the markup could not run
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Host = Annotated[str, Query(min_length=1, max_length=255)]
JobId = Annotated[str, Query(min_length=1, max_length=255)]
Day = Annotated[date | None, Query(alias="date")]
Limit = Annotated[int, Query(ge=1, le=q.MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


def create_app() -> FastAPI:
    app = FastAPI(
        title="Storage efficiency",
        dependencies=[Depends(dag_reader)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(HTTPException)
    async def _denied(request: Request, exc: HTTPException) -> Response:
        """Pages send an anonymous browser to the login page; the API answers with the status."""
        page = "/api/" not in request.url.path
        if page and exc.status_code == 401:
            return RedirectResponse(login_url(request), status_code=303, headers=SECURITY_HEADERS)
        if page and exc.status_code == 403:
            return HTMLResponse(
                "<!doctype html><title>Storage efficiency</title><p>You may not read the "
                "veeam_storage_efficiency DAG, so its results are not shown.</p>",
                status_code=403,
                headers=SECURITY_HEADERS,
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=SECURITY_HEADERS)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    for page in PAGES:
        app.add_api_route("/" if page == "estate" else f"/{page}", _page_route(page), methods=["GET"])

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise HTTPException(404, "Not found")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name])

    @app.get("/api/estate")
    def estate(day: Day = None) -> JSONResponse:
        """Every VBR host of the day (the latest by default) with grades, flagged and unscored jobs, savings."""
        with _cursor() as cur:
            return _json(q.estate(cur, day))

    @app.get("/api/flagged-jobs")
    def flagged(day: Day = None, vbr_host: Host | None = None, limit: Limit = 100, offset: Offset = 0) -> JSONResponse:
        with _cursor() as cur:
            return _json(q.flagged_jobs(cur, vbr_host, day or _latest(cur), limit=limit, offset=offset))

    @app.get("/api/unscored-jobs")
    def unscored(day: Day = None, vbr_host: Host | None = None, limit: Limit = 100, offset: Offset = 0) -> JSONResponse:
        with _cursor() as cur:
            found = q.unscored_jobs(cur, vbr_host, day or _latest(cur), limit=limit, offset=offset)
            found.pop("per_host")
            return _json(found)

    @app.get("/api/jobs")
    def jobs(
        where: Annotated[q.JobFilter, Depends(_job_filter)], limit: Limit = 100, offset: Offset = 0
    ) -> JSONResponse:
        """One page of a host's jobs of a day: filter by name, grade, flag; sort by any shown column."""
        with _cursor() as cur:
            return _json({"analysis_date": where.analysis_date, **q.host_jobs(cur, where, limit=limit, offset=offset)})

    @app.get("/api/jobs.csv")
    def jobs_csv(where: Annotated[q.JobFilter, Depends(_job_filter)]) -> StreamingResponse:
        """The same jobs as the table (every page), as CSV for a spreadsheet."""
        stack = _cursor()
        cur = stack.__enter__()
        columns, rows = q.host_jobs_all(cur, where)

        def lines() -> Iterator[str]:
            try:  # a chunk of rows per write: each one is a hop to the thread pool and back
                yield _csv_line(columns)
                chunk: list[str] = []
                for row in rows:
                    chunk.append(_csv_line(row))
                    if len(chunk) == 1000:
                        yield "".join(chunk)
                        chunk.clear()
                yield "".join(chunk)
            finally:
                stack.__exit__(None, None, None)

        name = f"storage-efficiency-{_safe_file_part(where.vbr_host)}-{where.analysis_date}.csv"
        return StreamingResponse(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @app.get("/api/job")
    def job(vbr_host: Host, job_id: JobId, day: Day = None) -> JSONResponse:
        """A job's scorecard of the day (its latest by default), daily scores over time, recommendations, runs."""
        with _cursor() as cur:
            found = q.job(cur, vbr_host, job_id, day)
        if found is None:
            raise HTTPException(404, "No scorecard for this job")
        return _json({**found, "dag_id": "veeam_storage_efficiency"})

    @app.get("/api/sessions")
    def sessions(
        vbr_host: Host, job_id: JobId, before: datetime | None = None, limit: Limit = q.MAX_PAGE
    ) -> JSONResponse:
        """A job's sessions, newest first, a page at a time (``before``: the ``older`` of the previous page)."""
        with _cursor() as cur:
            return _json(q.job_sessions(cur, vbr_host, job_id, before=before, limit=limit))

    return app


def _page_route(page: str) -> Any:
    def serve() -> HTMLResponse:
        # a fixed page: no request value is ever written into it (the script reads the query string)
        return HTMLResponse(_PAGE.replace("{page}", page))

    serve.__name__ = f"{page}_page"
    return serve


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Storage efficiency</title><link rel="stylesheet" href="static/app.css"></head>
<body data-page="{page}"><main id="app"><p class="muted">Loading…</p></main>
<script src="static/app.js"></script></body></html>
"""


def _job_filter(
    vbr_host: Host,
    day: Day = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    grade: Literal["A", "B", "C", "D", "F"] | None = None,
    flag: Annotated[str | None, Query(pattern=r"^[A-Z][A-Z_]{0,63}$")] = None,
    sort: q.SortKey = "overall_score",
    order: Literal["asc", "desc"] = "asc",
) -> q.JobFilter:
    if day is None:
        with _cursor() as cur:
            day = _latest(cur)
    if day is None:
        raise HTTPException(404, "No scorecards yet")
    return q.JobFilter(vbr_host, day, name or None, grade, flag, sort, order == "desc")


def _latest(cur: Any) -> date | None:
    dates = q.analysis_dates(cur, limit=1)
    return dates[0] if dates else None


@contextmanager
def _cursor() -> Iterator[Any]:
    """A read-only cursor on the results database; the connection is closed afterwards."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn: Any = PostgresHook(postgres_conn_id=CONN_ID).get_conn()  # psycopg 3
    try:
        with q.read_only_cursor(conn) as cur:
            yield cur
        conn.rollback()
    finally:
        conn.close()


def _json(payload: Any) -> JSONResponse:
    return JSONResponse(_finite(jsonable_encoder(payload)))


def _finite(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_line(row: Any) -> str:
    """One CSV line; text that a spreadsheet would run as a formula is prefixed with ' (OWASP CSV injection)."""
    cells = []
    for value in row:
        if isinstance(value, str) and value.startswith(_FORMULA_START):
            value = "'" + value
        elif isinstance(value, dict | list):
            value = ",".join(key for key, on in value.items() if on) if isinstance(value, dict) else str(value)
        cells.append(value)
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


def _safe_file_part(text: str) -> str:
    return "".join(char if char.isascii() and (char.isalnum() or char in ".-_") else "_" for char in text)[:100]
