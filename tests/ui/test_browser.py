"""A real browser (Debian's chromium, Playwright) against a real ``airflow api-server`` with this plugin.

Logs in through Airflow's login page, opens the "Storage efficiency" entry of Airflow's
navigation, checks every scored job is listed with its grade (names with markup, quotes,
semicolons and CJK shown verbatim and never run), opens a job and checks its chart is drawn,
and checks that a browser that is not logged in gets the login page and no data.
Screenshots go to tests/ui/screenshots/ (git-ignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.api_server import USERS, api_server
from tests.ui.seed import CJK_NAME, LAST_DAY, MARKUP_NAME, QUOTED_NAME

pytestmark = [pytest.mark.postgres, pytest.mark.airflow, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
SHOTS = Path(__file__).resolve().parent / "screenshots"
# the share of a chart's canvas pixels painted when its lines and points are drawn (axes alone paint <1%)
DRAWN = 0.02


@pytest.fixture(scope="module")
def server(airflow_db: dict[str, str], seeded_db: dict[str, Any]) -> Iterator[str]:
    with api_server(airflow_db, {"AIRFLOW_CONN_POSTGRES_DEFAULT": seeded_db["dsn"]}) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def painted_share(frame: Any, selector: str) -> float:
    """The share of the chart canvas's pixels that are not transparent."""
    return float(
        frame.evaluate(
            """(selector) => {
                const canvas = document.querySelector(selector + ' canvas');
                const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                let painted = 0;
                for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
                return painted / (canvas.width * canvas.height);
            }""",
            selector,
        )
    )


def test_anonymous_browser_gets_the_login_page_and_no_data(server: str, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    for path in (
        "/veeam-efficiency/",
        "/veeam-efficiency/host?vbr_host=vbr01.example.local",
        "/veeam-efficiency/static/app.js",
    ):
        page.goto(server + path)
        assert "/auth/login" in page.url
        page.wait_for_selector("input[name=password]")
        assert "vbr01" not in page.content() and "Media Archive" not in page.content()
    page.screenshot(path=str(SHOTS / "anonymous.png"))
    for path in ("/veeam-efficiency/api/estate", "/veeam-efficiency/api/jobs?vbr_host=vbr01.example.local"):
        response = page.request.get(server + path)
        assert response.status == 401 and "vbr01" not in response.text()
    context.close()


def test_logged_in_user_sees_every_job_with_its_grade_and_the_job_chart(
    server: str, browser: Any, seeded_db: dict[str, Any]
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    page.goto(server + "/")
    username, (_, password) = "viewer", USERS["viewer"]
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.locator("button[type=submit]").click()
    page.wait_for_url(server + "/")

    # the entry in Airflow's navigation opens the view inside the UI
    page.get_by_role("link", name="Storage efficiency").click()
    page.wait_for_url("**/plugin/storage-efficiency")
    view = page.frame_locator("iframe")
    frame = page.wait_for_selector("iframe").content_frame()
    frame.wait_for_selector("body[data-ready=estate]", timeout=30_000)
    hosts = frame.locator("#hosts tbody tr")
    assert sorted(hosts.evaluate_all("rows => rows.map(r => r.dataset.host)")) == sorted(seeded_db["scored"])
    for row in hosts.all():
        assert row.locator(".grade").first.inner_text() in list("ABCDF")
    assert frame.locator("#date-picker").input_value() == LAST_DAY.isoformat()
    assert frame.locator("#grade-chart canvas").count() == 1 and painted_share(frame, "#grade-chart") > 0.01
    assert "Monthly Archive – Full" in frame.locator("#unscored").inner_text()  # unscored, and why
    page.screenshot(path=str(SHOTS / "estate.png"))

    for host, names in seeded_db["scored"].items():
        frame.goto(f"{server}/veeam-efficiency/host?vbr_host={host}&date={LAST_DAY}")
        frame.wait_for_selector("body[data-ready=host]")
        rows = frame.locator("#jobs tbody tr")
        listed = dict(
            zip(
                rows.locator("a.job-link").all_inner_texts(), rows.locator(".grade-cell").all_inner_texts(), strict=True
            )
        )
        assert sorted(listed) == sorted(names)  # every scored job, its name exactly as Veeam has it
        assert set(listed.values()) <= set("ABCDF")
    host = "vbr01.example.local"
    frame.goto(f"{server}/veeam-efficiency/host?vbr_host={host}&date={LAST_DAY}")
    frame.wait_for_selector("body[data-ready=host]")
    assert {MARKUP_NAME, QUOTED_NAME, CJK_NAME} <= set(frame.locator("#jobs a.job-link").all_inner_texts())
    frame.locator("th[data-sort=job_name]").click()  # sort by name
    frame.wait_for_function(
        "() => document.querySelector('th[data-sort=job_name]').getAttribute('aria-sort') === 'ascending'"
    )
    shown = frame.locator("#jobs a.job-link").all_inner_texts()
    assert shown == sorted(shown, key=str.lower) or shown == sorted(shown)  # PostgreSQL's collation or bytes
    frame.locator("#filter-name").fill("drop table")  # filter: only the quoted name matches
    frame.wait_for_function("() => document.querySelectorAll('#jobs tbody tr').length === 1")
    assert frame.locator("#jobs a.job-link").all_inner_texts() == [QUOTED_NAME]
    with page.expect_download() as download:
        view.locator("#csv").click()
    csv_text = Path(download.value.path()).read_text(encoding="utf-8")
    assert QUOTED_NAME.replace('"', '""') in csv_text and MARKUP_NAME not in csv_text
    frame.locator("#filter-name").fill("")
    frame.wait_for_function(
        f"() => document.querySelectorAll('#jobs tbody tr').length === {len(seeded_db['scored'][host])}"
    )
    page.screenshot(path=str(SHOTS / "host.png"))

    frame.locator("#jobs a.job-link", has_text="<script>").click()
    frame.wait_for_selector("body[data-ready=job]", timeout=30_000)
    assert frame.locator("h1").inner_text() == MARKUP_NAME
    assert painted_share(frame, "#session-chart") > DRAWN, "the session chart is blank"
    assert painted_share(frame, "#score-chart") > 0.005, "the daily score chart is blank"
    runs = frame.locator("#runs a.run-link")
    assert runs.count() == 3 and "/dags/veeam_storage_efficiency/runs/scheduled__" in runs.first.get_attribute("href")
    page.screenshot(path=str(SHOTS / "job.png"), full_page=True)

    assert frame.evaluate("() => window.__veeam_xss") is None  # the markup in the name never ran
    assert not errors, errors
    context.close()


def test_screenshot_folder_is_ignored_by_git() -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(["git", "check-ignore", "-q", str(SHOTS / "estate.png")], cwd=repo, check=False)
    if result.returncode == 128:
        pytest.skip("not a git checkout")
    assert result.returncode == 0
