"""The view's JSON endpoints and pages through Airflow's real API app, against a real PostgreSQL."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from tests.ui.conftest import token
from tests.ui.seed import CJK_NAME, LAST_DAY, MARKUP_NAME, QUOTED_NAME, run_id

pytestmark = [pytest.mark.postgres, pytest.mark.airflow]

BASE = "/veeam-efficiency"
HOST = "vbr01.example.local"
ENDPOINTS = [
    "/api/estate",
    f"/api/jobs?vbr_host={HOST}",
    f"/api/jobs.csv?vbr_host={HOST}",
    "/api/flagged-jobs",
    "/api/unscored-jobs",
    f"/api/job?vbr_host={HOST}&job_id=x",
    f"/api/sessions?vbr_host={HOST}&job_id=x",
]
PAGES = ["/", "/host?vbr_host=x", "/job?vbr_host=x&job_id=y", "/static/app.js", "/static/app.css"]


@pytest.fixture(scope="module")
def client(api_app: Any) -> TestClient:
    return TestClient(api_app, base_url="http://127.0.0.1:8080", follow_redirects=False)


def viewer(client: TestClient) -> TestClient:
    client.cookies.clear()
    client.headers["Authorization"] = f"Bearer {token('viewer')}"
    return client


@pytest.fixture
def as_viewer(client: TestClient) -> TestClient:
    yield viewer(client)
    client.headers.pop("Authorization", None)


def get_json(client: TestClient, path: str) -> Any:
    response = client.get(BASE + path)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


@pytest.mark.parametrize("path", ENDPOINTS + PAGES)
def test_anonymous_gets_no_data(client: TestClient, path: str) -> None:
    client.cookies.clear()
    client.headers.pop("Authorization", None)
    response = client.get(BASE + path)
    if path.startswith("/api/"):
        assert response.status_code == 401
        assert response.json() == {"detail": "Not authenticated"}
    else:  # a page: the login page, coming back here afterwards
        assert response.status_code == 303
        assert response.headers["location"].startswith("/auth/login?next=")
    assert "vbr01" not in response.text and "<script" not in response.text


@pytest.mark.parametrize("path", ENDPOINTS + PAGES)
def test_user_who_may_not_read_the_dag_gets_403(client: TestClient, path: str) -> None:
    client.cookies.clear()
    client.headers["Authorization"] = f"Bearer {token(None, 'no-role')}"  # authenticated, no permission
    try:
        response = client.get(BASE + path)
    finally:
        client.headers.pop("Authorization", None)
    assert response.status_code == 403
    assert "vbr01" not in response.text


def test_forged_or_cookie_token_is_checked(client: TestClient) -> None:
    client.headers.pop("Authorization", None)
    client.cookies.set("_token", token("viewer")[:-4] + "AAAA")  # bad signature
    assert client.get(f"{BASE}/api/estate").status_code in (401, 403)
    client.cookies.set("_token", token("viewer"))  # the UI's own cookie, as after logging in
    assert client.get(f"{BASE}/api/estate").status_code == 200
    client.cookies.clear()


def test_estate_lists_every_host_with_grades_and_savings(as_viewer: TestClient, seeded_db: dict[str, Any]) -> None:
    estate = get_json(as_viewer, "/api/estate")
    assert estate["analysis_date"] == LAST_DAY.isoformat()
    assert estate["dates"][:3] == [LAST_DAY.isoformat(), "2026-11-25", "2026-11-24"]
    hosts = {host["vbr_host"]: host for host in estate["hosts"]}
    assert set(hosts) == set(seeded_db["scored"])
    for name, host in hosts.items():
        assert host["grade"] in "ABCDF" and host["jobs"] == len(seeded_db["scored"][name])
        assert host["dag_run_id"] == run_id(LAST_DAY)
    jobs = sum(len(names) for names in seeded_db["scored"].values())
    assert sum(estate["grade_distribution"].values()) == estate["totals"]["jobs_scored"] == jobs
    assert estate["totals"]["annual_savings_usd"] > 0
    assert estate["flagged_jobs"]["total"] == len(estate["flagged_jobs"]["rows"]) == estate["totals"]["jobs_flagged"]
    # jobs seen but not scored, and why (the sample's monthly archive has too few sessions)
    unscored = estate["unscored_jobs"]
    assert unscored["available"] and unscored["total"] == estate["totals"]["jobs_unscored"] == len(unscored["rows"]) > 0
    assert "Monthly Archive – Full" in {row["job_name"] for row in unscored["rows"]}
    assert all(row["sessions_found"] < row["sessions_needed"] and row["reason"] for row in unscored["rows"])
    earlier = get_json(as_viewer, "/api/estate?date=2026-11-24")
    assert earlier["analysis_date"] == "2026-11-24"
    assert as_viewer.get(f"{BASE}/api/estate?date=not-a-day").status_code == 422


def test_host_jobs_sort_filter_page_and_names_come_back_verbatim(
    as_viewer: TestClient, seeded_db: dict[str, Any]
) -> None:
    scored = seeded_db["scored"][HOST]
    page = get_json(as_viewer, f"/api/jobs?vbr_host={HOST}&sort=job_name&order=asc&limit=500")
    assert page["total"] == len(scored)
    names = [row["job_name"] for row in page["rows"]]
    assert {MARKUP_NAME, QUOTED_NAME, CJK_NAME} <= set(names) and set(names) == set(scored)
    assert [
        row["overall_score"]
        for row in get_json(as_viewer, f"/api/jobs?vbr_host={HOST}&sort=overall_score&order=desc")["rows"]
    ] == sorted((row["overall_score"] for row in page["rows"]), reverse=True)
    first, second = (get_json(as_viewer, f"/api/jobs?vbr_host={HOST}&sort=job_name&limit=3&offset={o}") for o in (0, 3))
    assert [r["job_name"] for r in first["rows"] + second["rows"]] == names[:6] and first["total"] == len(scored)
    # the filter is a bound value: SQL or LIKE syntax in it only ever matches itself
    assert [r["job_name"] for r in get_json(as_viewer, f"/api/jobs?vbr_host={HOST}&name=%22%3B%20DROP")["rows"]] == [
        QUOTED_NAME
    ]
    assert get_json(as_viewer, f"/api/jobs?vbr_host={HOST}&name=%25")["total"] == 0
    assert get_json(as_viewer, f"/api/jobs?vbr_host={HOST}&name=' OR 1=1 --")["total"] == 0
    graded = get_json(as_viewer, f"/api/jobs?vbr_host={HOST}&grade={page['rows'][0]['grade']}")
    assert graded["total"] >= 1 and {row["grade"] for row in graded["rows"]} == {page["rows"][0]["grade"]}
    # names of columns are a whitelist, values of enumerations too
    assert as_viewer.get(f"{BASE}/api/jobs?vbr_host={HOST}&sort=job_name;DROP").status_code == 422
    assert as_viewer.get(f"{BASE}/api/jobs?vbr_host={HOST}&grade=A' OR '1").status_code == 422
    assert as_viewer.get(f"{BASE}/api/jobs?vbr_host={HOST}&limit=100000").status_code == 422


def test_csv_download_has_every_matching_job_and_defuses_formulas(
    as_viewer: TestClient, seeded_db: dict[str, Any]
) -> None:
    response = as_viewer.get(f"{BASE}/api/jobs.csv?vbr_host={HOST}&sort=job_name")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert f"storage-efficiency-{HOST}-{LAST_DAY}.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(row["job_name"] for row in rows) == sorted(seeded_db["scored"][HOST])
    assert all(row["grade"] in "ABCDF" for row in rows)
    from veeam_efficiency.airflow.ui.app import _csv_line

    assert _csv_line(['=HYPERLINK("x")', "-1+2", "@SUM(A1)", 1.5]) == '"\'=HYPERLINK(""x"")",\'-1+2,\'@SUM(A1),1.5\r\n'


def test_job_scorecard_daily_scores_runs_and_sessions(as_viewer: TestClient) -> None:
    page = get_json(as_viewer, f"/api/jobs?vbr_host={HOST}&name=%3Cscript%3E")
    (row,) = page["rows"]
    job = get_json(as_viewer, f"/api/job?vbr_host={HOST}&job_id={row['job_id']}")
    assert job["scorecard"]["job_name"] == MARKUP_NAME
    assert [day["analysis_date"] for day in job["daily_scores"]] == ["2026-11-24", "2026-11-25", "2026-11-26"]
    assert [day["dag_run_id"] for day in job["daily_scores"]] == [run_id(LAST_DAY.replace(day=d)) for d in (24, 25, 26)]
    older = get_json(as_viewer, f"/api/job?vbr_host={HOST}&job_id={row['job_id']}&date=2026-11-25")
    assert older["scorecard"]["analysis_date"] == "2026-11-25"
    sessions = get_json(as_viewer, f"/api/sessions?vbr_host={HOST}&job_id={row['job_id']}&limit=10")
    times = [s["creation_time"] for s in sessions["rows"]]
    assert len(times) == 10 and times == sorted(times, reverse=True) and sessions["older"] == times[-1]
    rest = get_json(
        as_viewer, f"/api/sessions?vbr_host={HOST}&job_id={row['job_id']}&before={quote(sessions['older'])}&limit=500"
    )
    assert rest["rows"] and max(s["creation_time"] for s in rest["rows"]) < times[-1]
    algorithms = {s["algorithm"] for s in sessions["rows"] + rest["rows"]}
    assert "Increment" in algorithms and algorithms & {"Full", "Synthetic"}  # fulls and incrementals, told apart
    assert as_viewer.get(f"{BASE}/api/job?vbr_host={HOST}&job_id=no-such-job").status_code == 404


def test_pages_are_fixed_markup_with_a_strict_content_security_policy(as_viewer: TestClient) -> None:
    response = as_viewer.get(f"{BASE}/job?vbr_host=%3Cscript%3Ex&job_id=%22%3E%3Cimg")
    assert response.status_code == 200
    assert "<script>x" not in response.text and "<img" not in response.text  # nothing from the URL is echoed
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert as_viewer.get(f"{BASE}/static/..%2F..%2Fapp.py").status_code == 404


def test_the_view_only_reads(as_viewer: TestClient, seeded_db: dict[str, Any]) -> None:
    """The queries run in a read-only transaction: even a write that got in could not commit."""
    import psycopg

    from veeam_efficiency import view_queries

    with (
        psycopg.connect(seeded_db["dsn"]) as conn,
        view_queries.read_only_cursor(conn) as cur,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        cur.execute("DELETE FROM feature3.metrics_storage_efficiency")


def test_plugin_is_registered_with_the_nav_entry(as_viewer: TestClient) -> None:
    plugins = as_viewer.get("/api/v2/plugins").json()["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "veeam_storage_efficiency_view"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == BASE
    (view,) = plugin["external_views"]
    assert view["name"] == "Storage efficiency" and view["href"] == "veeam-efficiency/"
