// The Storage efficiency view: three pages (estate, host, job) over the plugin's JSON API.
// Every value from the database goes into the page as text (textContent, never innerHTML),
// so a job named `<script>` or `"; DROP TABLE` shows as exactly that. URLs are relative to
// the page (…/veeam-efficiency/), so a reverse-proxy prefix or Airflow base_url is kept.
import * as echarts from "echarts/core";
import { BarChart, LineChart, ScatterChart } from "echarts/charts";
import {
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  MarkLineComponent,
  TooltipComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([
  BarChart, LineChart, ScatterChart, DataZoomComponent, GridComponent, LegendComponent,
  MarkAreaComponent, MarkLineComponent, TooltipComponent, CanvasRenderer,
]);

const DAG_ID = "veeam_storage_efficiency";
const GRADE_COLORS = { A: "#2e7d32", B: "#7cb342", C: "#f9a825", D: "#ef6c00", F: "#c62828" };
const PAGE_SIZE = 100;
const params = new URLSearchParams(location.search);
const app = document.getElementById("app");

// --- small DOM helpers: text only -------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const url = (path, query = {}) => {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== null && value !== undefined && value !== "") search.set(key, value);
  const text = search.toString();
  return text ? `${path}?${text}` : path;
};
const runUrl = (runId) => `../dags/${encodeURIComponent(DAG_ID)}/runs/${encodeURIComponent(runId)}`;
const fmt = (value, digits = 2) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
const usd = (value) => (value === null || value === undefined ? "–" : `$${Math.round(value).toLocaleString("en-US")}`);
const factor = (value) => (value === null || value === undefined ? "–" : `${Number(value).toFixed(2)}x`);
const gradeBadge = (grade) => (grade ? el("span", { class: `grade grade-${grade}`, title: `grade ${grade}` }, grade) : "–");
const flagsOf = (flags) => Object.entries(flags || {}).filter(([, on]) => on).map(([name]) => name);
const flagList = (flags) => flagsOf(flags).map((name) => el("span", { class: "flag" }, name));
const hostLink = (host, day) => el("a", { href: url("host", { vbr_host: host, date: day }) }, host);
const jobLink = (host, jobId, name, day) =>
  el("a", { href: url("job", { vbr_host: host, job_id: jobId, date: day }), class: "job-link" }, name || jobId);

async function api(path, query) {
  const response = await fetch(url(`api/${path}`, query), { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    location.reload(); // the page itself then sends the browser to the login page
    throw new Error("not logged in");
  }
  if (!response.ok) throw new Error(`${response.status} ${(await response.json().catch(() => ({}))).detail || response.statusText}`);
  return response.json();
}

function table(headers, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, headers.map((h) => (h instanceof Node ? h : el("th", {}, h))))),
    el("tbody", {}, rows));
}

function chart(container, option) {
  const instance = echarts.init(container, null, { renderer: "canvas" });
  instance.setOption({ animation: false, ...option });
  new ResizeObserver(() => instance.resize()).observe(container);
  return instance;
}

function header(title, ...rest) {
  return el("header", {},
    el("nav", { class: "crumbs" }, el("a", { href: url("./", { date: params.get("date") }) }, "Storage efficiency"), ...rest.map((part) => [" / ", part])),
    el("h1", {}, title));
}

// --- Estate -------------------------------------------------------------------------
async function estatePage() {
  const data = await api("estate", { date: params.get("date") });
  const day = data.analysis_date;
  if (!day) {
    app.replaceChildren(header("Estate"), el("p", { class: "muted" }, "No scorecards yet: run the veeam_storage_efficiency DAG."));
    return;
  }
  const picker = el("select", { id: "date-picker", "aria-label": "Analysis day", onchange: (e) => (location.search = `?date=${e.target.value}`) },
    data.dates.map((d) => el("option", { value: d, selected: d === day }, d)));
  const totals = data.totals;
  const cards = el("section", { class: "cards" },
    card("Jobs scored", totals.jobs_scored),
    card("Flagged jobs", totals.jobs_flagged),
    card("Unscored jobs", data.unscored_jobs.available ? totals.jobs_unscored : "n/a"),
    card("Savings at target / year", usd(totals.annual_savings_usd)),
    totals.attainable_annual_savings_usd !== null ? card("Attainable savings / year", usd(totals.attainable_annual_savings_usd)) : null);
  const context = data.has_context_grade;
  const hosts = table(
    ["VBR server", "Grade", context ? "Context grade" : null, "Score", "Jobs", "A", "B", "C", "D", "F", "Flagged", "Unscored", "Savings / year"].filter(Boolean),
    data.hosts.map((h) => el("tr", { "data-host": h.vbr_host },
      el("td", {}, hostLink(h.vbr_host, day)), el("td", {}, gradeBadge(h.grade)),
      context ? el("td", {}, gradeBadge(h.context_grade)) : null,
      el("td", { class: "num" }, fmt(h.overall_score, 1)), el("td", { class: "num" }, h.jobs),
      ...["A", "B", "C", "D", "F"].map((g) => el("td", { class: "num" }, h.grades[g] || 0)),
      el("td", { class: "num" }, h.flagged_jobs), el("td", { class: "num" }, data.unscored_jobs.available ? h.unscored_jobs ?? 0 : "–"),
      el("td", { class: "num" }, usd(h.annual_savings_usd)))),
    { id: "hosts" });
  const distribution = el("div", { class: "chart small", id: "grade-chart" });
  const flagged = table(["VBR server", "Job", "Grade", "Score", "Flags"],
    data.flagged_jobs.rows.map((j) => el("tr", {},
      el("td", {}, j.vbr_host), el("td", {}, jobLink(j.vbr_host, j.job_id, j.job_name, day)),
      el("td", {}, gradeBadge(j.grade)), el("td", { class: "num" }, fmt(j.overall_score, 1)), el("td", {}, flagList(j.quality_flags)))),
    { id: "flagged" });
  const unscored = data.unscored_jobs.available
    ? table(["VBR server", "Job", "Sessions found", "Needed", "Why"],
      data.unscored_jobs.rows.map((j) => el("tr", {},
        el("td", {}, j.vbr_host), el("td", {}, j.job_name || j.job_id), el("td", { class: "num" }, j.sessions_found),
        el("td", { class: "num" }, j.sessions_needed), el("td", {}, j.reason))),
      { id: "unscored" })
    : el("p", { class: "muted" }, "This results database does not record unscored jobs yet.");
  app.replaceChildren(
    header("Estate", el("span", {}, "day ", picker)),
    cards,
    el("section", { class: "split" },
      el("div", {}, el("h2", {}, `VBR servers on ${day}`), hosts),
      el("div", {}, el("h2", {}, "Grade distribution"), distribution)),
    el("h2", {}, `Flagged jobs (${data.flagged_jobs.total}${data.flagged_jobs.total > data.flagged_jobs.rows.length ? `, worst ${data.flagged_jobs.rows.length} shown` : ""})`), flagged,
    el("h2", {}, `Unscored jobs (${data.unscored_jobs.total}${data.unscored_jobs.total > data.unscored_jobs.rows.length ? `, first ${data.unscored_jobs.rows.length} shown` : ""})`), unscored);
  const grades = ["A", "B", "C", "D", "F"];
  chart(distribution, {
    grid: { left: 40, right: 10, top: 10, bottom: 30 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: grades },
    yAxis: { type: "value", minInterval: 1 },
    series: [{ type: "bar", name: "Jobs", data: grades.map((g) => ({ value: data.grade_distribution[g] || 0, itemStyle: { color: GRADE_COLORS[g] } })) }],
  });
}

function card(label, value) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

// --- Host ---------------------------------------------------------------------------
const HOST_COLUMNS = [
  ["job_name", "Job"], ["grade", "Grade"], ["context_grade", "Context grade"], ["overall_score", "Score"],
  ["dedup_factor", "Dedup"], ["compression_factor", "Compression"], ["combined_factor", "Combined"],
  ["trend_classification", "Trend"], [null, "Flags"], ["annual_savings_usd", "$ / year"], [null, "Top recommendation"],
];

async function hostPage() {
  const host = params.get("vbr_host");
  const state = {
    name: params.get("name") || "", grade: params.get("grade") || "", flag: params.get("flag") || "",
    sort: params.get("sort") || "overall_score", order: params.get("order") || "asc", offset: Number(params.get("offset") || 0),
  };
  const body = el("div", {});
  const nameBox = el("input", { type: "search", id: "filter-name", placeholder: "Job name contains…", value: state.name });
  const gradeBox = el("select", { id: "filter-grade" }, el("option", { value: "" }, "any grade"),
    ["A", "B", "C", "D", "F"].map((g) => el("option", { value: g, selected: g === state.grade }, g)));
  const flagBox = el("select", { id: "filter-flag" }, el("option", { value: "" }, "any flag"),
    ["CRITICAL_ANOMALIES", "DEGRADING_TREND", "HIGH_VARIANCE", "MISCONFIGURED", "LEVEL_SHIFT"]
      .map((f) => el("option", { value: f, selected: f === state.flag }, f)));
  const csv = el("a", { id: "csv", class: "button", download: "" }, "Download CSV");
  let timer;
  const refresh = () => { state.offset = 0; load(); };
  nameBox.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  gradeBox.addEventListener("change", refresh);
  flagBox.addEventListener("change", refresh);

  async function load() {
    const query = { vbr_host: host, date: params.get("date"), name: state.name = nameBox.value, grade: state.grade = gradeBox.value,
      flag: state.flag = flagBox.value, sort: state.sort, order: state.order };
    history.replaceState(null, "", url("host", { ...query, offset: state.offset || null }));
    csv.setAttribute("href", url("api/jobs.csv", query));
    const data = await api("jobs", { ...query, limit: PAGE_SIZE, offset: state.offset });
    const shown = HOST_COLUMNS.filter(([key]) => key !== "context_grade" || data.columns.includes("context_grade"));
    const heads = shown.map(([key, label]) => {
      if (!key) return el("th", {}, label);
      const active = state.sort === key;
      return el("th", { class: "sortable", "data-sort": key, "aria-sort": active ? (state.order === "asc" ? "ascending" : "descending") : "none",
        onclick: () => { state.order = active && state.order === "asc" ? "desc" : "asc"; state.sort = key; state.offset = 0; load(); } },
      label, active ? (state.order === "asc" ? " ▲" : " ▼") : "");
    });
    const rows = data.rows.map((j) => el("tr", { "data-job-id": j.job_id },
      shown.map(([key, label]) => {
        switch (label) {
          case "Job": return el("td", {}, jobLink(host, j.job_id, j.job_name, data.analysis_date));
          case "Grade": return el("td", { class: "grade-cell" }, gradeBadge(j.grade));
          case "Context grade": return el("td", {}, gradeBadge(j.context_grade));
          case "Score": return el("td", { class: "num" }, fmt(j.overall_score, 1));
          case "Dedup": case "Compression": case "Combined": return el("td", { class: "num" }, factor(j[key]));
          case "Trend": return el("td", {}, j.trend_classification);
          case "Flags": return el("td", {}, flagList(j.quality_flags));
          case "$ / year": return el("td", { class: "num" }, usd(j.annual_savings_usd));
          default: return el("td", {}, j.top_recommendation || "");
        }
      })));
    const last = Math.min(state.offset + PAGE_SIZE, data.total);
    const pager = el("div", { class: "pager" },
      el("button", { disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); load(); } }, "‹ Previous"),
      el("span", { id: "page-info" }, data.total ? `${state.offset + 1}–${last} of ${data.total} jobs` : "no job matches"),
      el("button", { disabled: last >= data.total, onclick: () => { state.offset += PAGE_SIZE; load(); } }, "Next ›"));
    body.replaceChildren(table(heads, rows, { id: "jobs" }), pager);
    document.body.dataset.ready = "host";
  }

  app.replaceChildren(header(host, hostLink(host, params.get("date"))),
    el("div", { class: "filters" }, nameBox, gradeBox, flagBox, csv), body);
  await load();
}

// --- Job ----------------------------------------------------------------------------
async function jobPage() {
  const host = params.get("vbr_host");
  const jobId = params.get("job_id");
  const [data, first] = await Promise.all([
    api("job", { vbr_host: host, job_id: jobId, date: params.get("date") }),
    api("sessions", { vbr_host: host, job_id: jobId, limit: 500 }),
  ]);
  const card = data.scorecard;
  let sessions = first.rows;
  let older = first.older;
  const sessionChart = el("div", { class: "chart", id: "session-chart" });
  const scoreChart = el("div", { class: "chart", id: "score-chart" });
  const more = el("button", { id: "older", onclick: async () => {
    const page = await api("sessions", { vbr_host: host, job_id: jobId, before: older, limit: 500 });
    sessions = sessions.concat(page.rows);
    older = page.older;
    drawSessions();
    more.disabled = !older;
  } }, "Load older sessions");
  more.disabled = !older;
  const recommendations = Array.isArray(card.recommendations) ? card.recommendations : null;
  app.replaceChildren(
    header(card.job_name, hostLink(host, params.get("date")), el("span", {}, card.job_name)),
    el("section", { class: "cards" },
      el("div", { class: "card" }, el("div", { class: "label" }, "Grade"), el("div", { class: "value" }, gradeBadge(card.grade), " ", fmt(card.overall_score, 1))),
      card.context_grade ? el("div", { class: "card" }, el("div", { class: "label" }, "Context grade"), el("div", { class: "value" }, gradeBadge(card.context_grade), " ", fmt(card.context_score, 1))) : null,
      el("div", { class: "card" }, el("div", { class: "label" }, "Dedup × compression"), el("div", { class: "value" }, `${factor(card.dedup_factor)} × ${factor(card.compression_factor)} = ${factor(card.combined_factor)}`)),
      el("div", { class: "card" }, el("div", { class: "label" }, "Trend"), el("div", { class: "value" }, card.trend_classification)),
      el("div", { class: "card" }, el("div", { class: "label" }, "Savings at target / year"), el("div", { class: "value" }, usd(card.annual_savings_usd))),
      el("div", { class: "card" }, el("div", { class: "label" }, "Flags"), el("div", { class: "value flags" }, flagList(card.quality_flags).length ? flagList(card.quality_flags) : "none"))),
    el("p", { class: "muted" }, `Scorecard of ${card.analysis_date}: window ${card.window_start.slice(0, 10)} – ${card.window_end.slice(0, 10)}, `
      + `${card.sessions_scored} of ${card.sessions_in_window} sessions scored, ${card.anomalous_sessions} anomalous.`),
    el("h2", {}, "Sessions: dedup, compression and combined factor"), sessionChart, more,
    el("h2", {}, "Daily scores"), scoreChart,
    el("h2", {}, "Recommendations"),
    recommendations === null ? el("p", { class: "muted" }, "This results database does not record recommendations yet.")
      : recommendations.length === 0 ? el("p", { class: "muted" }, "None: nothing to change.")
        : el("ul", { id: "recommendations" }, recommendations.map((r) => el("li", {},
          el("strong", {}, r.title), ` (${r.severity}) `, r.detail,
          r.est_annual_savings_usd ? ` — about ${usd(r.est_annual_savings_usd)} / year` : ""))),
    el("h2", {}, "DAG runs that wrote these scorecards"),
    table(["Day", "Grade", "Score", "DAG run"], data.daily_scores.slice().reverse().map((s) => el("tr", {},
      el("td", {}, s.analysis_date), el("td", {}, gradeBadge(s.grade)), el("td", { class: "num" }, fmt(s.overall_score, 1)),
      el("td", {}, s.dag_run_id ? el("a", { href: runUrl(s.dag_run_id), target: "_top", class: "run-link" }, s.dag_run_id) : "–"))),
    { id: "runs" }));

  function drawSessions() {
    // sessions excluded from scoring (failed, empty, …) have no meaningful ratio: not drawn
    const points = sessions.slice().reverse().filter((s) => !s.excluded_reason);
    const at = (s) => s.creation_time;
    const line = (key) => points.filter((s) => s[key] !== null).map((s) => [at(s), s[key]]);
    const kind = (algorithm) => points.filter((s) => s.combined_ratio !== null && s.algorithm === algorithm).map((s) => [at(s), s.combined_ratio]);
    const anomalies = points.filter((s) => s.is_anomaly && s.combined_ratio !== null).map((s) => [at(s), s.combined_ratio]);
    const marks = [{ name: "window start", xAxis: card.window_start }];
    if (card.change_point_at) marks.push({ name: "change point", xAxis: card.change_point_at, lineStyle: { color: "#c62828", type: "solid", width: 2 } });
    sessionInstance.setOption({
      legend: { top: 0 },
      grid: { left: 50, right: 20, top: 40, bottom: 60 },
      tooltip: { trigger: "axis" },
      dataZoom: [{ type: "inside" }, { type: "slider", height: 20, bottom: 10 }],
      xAxis: { type: "time" },
      yAxis: { type: "value", name: "factor (x)", scale: true },
      series: [
        { type: "line", name: "Dedup", data: line("dedup_ratio"), showSymbol: false, lineStyle: { width: 1 } },
        { type: "line", name: "Compression", data: line("compression_ratio"), showSymbol: false, lineStyle: { width: 1 } },
        { type: "line", name: "Combined", data: line("combined_ratio"), showSymbol: false, lineStyle: { width: 2 },
          markLine: { symbol: "none", label: { formatter: "{b}" }, lineStyle: { type: "dashed" }, data: marks } },
        { type: "scatter", name: "Full", data: kind("Full"), symbol: "diamond", symbolSize: 9 },
        { type: "scatter", name: "Synthetic full", data: kind("Synthetic"), symbol: "triangle", symbolSize: 8 },
        { type: "scatter", name: "Incremental", data: kind("Increment"), symbol: "circle", symbolSize: 4 },
        { type: "scatter", name: "Anomaly", data: anomalies, symbol: "pin", symbolSize: 22, itemStyle: { color: "#c62828" } },
      ],
    }, true);
  }
  const sessionInstance = chart(sessionChart, {});
  drawSessions();
  const scores = data.daily_scores;
  chart(scoreChart, {
    legend: { top: 0 },
    grid: { left: 50, right: 20, top: 40, bottom: 30 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: scores.map((s) => s.analysis_date) },
    yAxis: { type: "value", min: 0, max: 100, name: "score" },
    series: [
      { type: "line", name: "Overall score", data: scores.map((s) => s.overall_score), symbolSize: 6 },
      scores.some((s) => s.context_score !== undefined && s.context_score !== null)
        ? { type: "line", name: "Context score", data: scores.map((s) => s.context_score ?? null), symbolSize: 6 } : null,
    ].filter(Boolean),
  });
}

// --- start --------------------------------------------------------------------------
const pages = { estate: estatePage, host: hostPage, job: jobPage };
(pages[document.body.dataset.page] || estatePage)()
  .then(() => { document.body.dataset.ready = document.body.dataset.page; })
  .catch((error) => {
    app.replaceChildren(el("p", { class: "error", role: "alert" }, `Could not load the view: ${error.message}`));
    document.body.dataset.ready = "error";
  });
