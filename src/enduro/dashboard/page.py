"""The dashboard's page: one HTML document with its script inline (no CDN, nothing fetched
but the JSON endpoints), polling them every two seconds. Text from the run (op, service and
fault names, messages) reaches the page through ``textContent`` only, never as markup."""

from __future__ import annotations

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE", "POLL_MS"]

POLL_MS = 2000

# The page fetches its own endpoints and nothing else; the inline script and style are the
# page's own.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; "
                           "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>enduro dashboard</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
header { display: flex; gap: 1.5em; align-items: baseline; flex-wrap: wrap; }
h1 { font-size: 1.3em; margin: 0; }
.badge { padding: .1em .6em; border-radius: .3em; background: #ddd; font-weight: 600; }
.badge.running, .badge.starting { background: #cfe3ff; }
.badge.pass, .badge.completed { background: #c8efc8; }
.badge.fail, .badge.failed, .badge.dead { background: #f6c6c6; }
.badge.incomplete, .badge.stopped { background: #f6e3b4; }
table { border-collapse: collapse; margin: .8em 0; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.label { text-align: left; }
.muted { color: #777; }
.err { color: #b00020; }
#problem { color: #b00020; min-height: 1.4em; }
.fault { color: #b35c00; } .service { color: #5b3fa0; } .abort { color: #b00020; }
.phase { color: #236b2c; } .stop { color: #b00020; }
</style>
</head>
<body>
<header>
  <h1 id="title">enduro</h1>
  <span id="state" class="badge">loading</span>
  <span id="verdict" class="badge" hidden></span>
  <span id="clock" class="muted"></span>
  <span id="phase" class="muted"></span>
</header>
<div id="problem"></div>
<div id="faults" class="fault"></div>
<h2>Operations <span class="muted" id="window"></span></h2>
<table id="ops">
  <thead><tr><th>op</th><th>req/s</th><th>errors</th><th>error rate</th><th>p50</th>
  <th>p95</th><th>p99</th><th>requests (total)</th><th>errors (total)</th></tr></thead>
  <tbody></tbody>
</table>
<div id="rules"></div>
<p class="muted" id="series"></p>
<h2>Events</h2>
<table id="events">
  <thead><tr><th>time</th><th>what</th></tr></thead>
  <tbody></tbody>
</table>
<script>
"use strict";
const POLL_MS = __POLL_MS__;
const token = new URLSearchParams(location.search).get("token");
const headers = token ? {"Authorization": "Bearer " + token} : {};
const series = {windowsUntil: null, samplesUntil: null, ops: {}, resources: {}};
let lastSeq = 0;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function duration(s) {
  if (s === null || s === undefined) return "-";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
  return (h ? h + "h" : "") + (h || m ? String(m).padStart(h ? 2 : 1, "0") + "m" : "")
    + String(r).padStart(h || m ? 2 : 1, "0") + "s";
}
function ms(v) {
  if (v === null || v === undefined) return "-";
  if (v >= 1000) return (v / 1000).toPrecision(3) + " s";
  if (v >= 100) return Math.round(v) + " ms";
  return v.toPrecision(3) + " ms";
}
function num(v, digits) {
  if (v === null || v === undefined) return "-";
  return v.toLocaleString(undefined, {maximumFractionDigits: digits || 0});
}
function pct(v) { return v === null || v === undefined ? "-" : (100 * v).toPrecision(3) + "%"; }
async function get(path) {
  const answer = await fetch(path, {headers: headers, cache: "no-store"});
  const body = await answer.json();
  if (!answer.ok) throw new Error(path + ": " + (body.error || answer.status));
  return body;
}
function since(path, params) {
  const q = Object.entries(params).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => k + "=" + encodeURIComponent(v)).join("&");
  return q ? path + "?" + q : path;
}

function showRun(run) {
  document.title = "enduro: " + (run.run_id || "run");
  document.getElementById("title").textContent = (run.plan || "run") + " \u00b7 " + run.run_id;
  const state = document.getElementById("state");
  state.textContent = run.state;
  state.className = "badge " + run.state;
  const verdict = document.getElementById("verdict");
  verdict.hidden = !run.verdict;
  verdict.textContent = run.verdict ? "verdict " + run.verdict : "";
  verdict.className = "badge " + (run.verdict || "");
  document.getElementById("clock").textContent = "elapsed " + duration(run.elapsed_s)
    + (run.live ? " \u00b7 left " + duration(run.remaining_s) : "");
  document.getElementById("phase").textContent = run.live && run.phase ? "phase " + run.phase : "";
  document.getElementById("window").textContent = "(last " + run.last_s + " s)";
  document.getElementById("faults").textContent = run.faults_in_force.length
    ? "in force: " + run.faults_in_force.map(f => f.name + " (" + f.kind + " on "
      + f.targets.join(", ") + ")").join("; ") : "";
  const body = document.querySelector("#ops tbody");
  const rows = Object.entries(run.ops).map(([op, f]) => {
    const tr = el("tr");
    tr.dataset.op = op;
    for (const [v, cls] of [[op, "label"], [num(f.rps, 1)], [num(f.errors), f.errors ? "err" : ""],
                            [pct(f.error_rate)], [ms(f.p50_ms)], [ms(f.p95_ms)], [ms(f.p99_ms)],
                            [num(f.requests_total)], [num(f.errors_total)]]) {
      tr.appendChild(el("td", v, cls));
    }
    return tr;
  });
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "no window stored yet", "muted label");
    td.colSpan = 9;
    tr.appendChild(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  const rules = document.getElementById("rules");
  rules.replaceChildren(...run.rules.map(r => el("div", (r.passed ? "\u2713 " : "\u2717 ")
    + r.rule + " (" + r.observed + ")", r.passed ? "" : "err")));
}

function addSeries(answer) {
  for (const [op, cols] of Object.entries(answer.ops)) {
    const mine = series.ops[op] || (series.ops[op] = {});
    for (const [k, v] of Object.entries(cols)) (mine[k] || (mine[k] = [])).push(...v);
  }
  for (const [target, metrics] of Object.entries(answer.resources)) {
    const mine = series.resources[target] || (series.resources[target] = {});
    for (const [m, pts] of Object.entries(metrics)) {
      const s = mine[m] || (mine[m] = {t: [], value: []});
      s.t.push(...pts.t);
      s.value.push(...pts.value);
    }
  }
  if (answer.windows_until !== null) series.windowsUntil = answer.windows_until;
  if (answer.samples_until !== null) series.samplesUntil = answer.samples_until;
  const windows = Object.values(series.ops).reduce((n, c) => n + (c.t ? c.t.length : 0), 0);
  document.getElementById("series").textContent = windows
    ? windows + " op windows stored, up to " + duration(series.windowsUntil) : "";
}

function addEvents(answer) {
  const body = document.querySelector("#events tbody");
  for (const e of answer.events) {
    const tr = el("tr", null, e.category);
    tr.dataset.event = e.event;
    tr.appendChild(el("td", e.t === null ? "before load" : duration(e.t)));
    tr.appendChild(el("td", e.label, "label"));
    body.insertBefore(tr, body.firstChild);
  }
  lastSeq = answer.last_seq;
}

async function poll() {
  const problem = document.getElementById("problem");
  try {
    showRun(await get("api/run"));
    let answer;
    do {
      answer = await get(since("api/series", {since: series.windowsUntil,
                                              samples_since: series.samplesUntil}));
      addSeries(answer);
    } while (answer.more);
    addEvents(await get(since("api/events", {after: lastSeq})));
    problem.textContent = "";
    document.body.dataset.updated = String(Date.now());
  } catch (err) {
    problem.textContent = "cannot read the run: " + err.message;
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body>
</html>
""".replace("__POLL_MS__", str(POLL_MS))
