/* enduro's page of a run: live (polling the dashboard's /api endpoints) or, with the data
 * embedded in #enduro-data, report.html. Text from the run (op, service, fault names,
 * messages) reaches the page through textContent only, never as markup. */
"use strict";

const PALETTE = ["#2f6fdf", "#e8590c", "#2b8a3e", "#9c36b5", "#c92a2a", "#0b7285", "#5c940d",
                 "#d6336c", "#495057", "#f08c00"];
const FAULT_COLORS = ["#e8590c", "#c92a2a", "#9c36b5", "#d6336c", "#f08c00", "#0b7285"];
const MAX_LINES = 8;
const S = {run: null, ops: {}, res: {}, scraped: {series: {}, unchanged: 0, left_out: 0},
           events: [], windowsUntil: null, samplesUntil: null, lastSeq: 0, step: null,
           pick: "*", charts: {},
           timeline: {faults: [], markers: [], phases: [], failed: [], pauses: []},
           xmax: 1, polls: 0, scrapedStale: false};

/* ---- formatting for people ------------------------------------------------------------ */
function sig(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 100) return String(Math.round(v));
  return String(Number(v.toPrecision(digits || 3)));
}
function fmtMs(v) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  if (Math.abs(v) >= 1000) return sig(v / 1000) + " s";
  if (Math.abs(v) >= 1 || v === 0) return sig(v) + " ms";
  return sig(v * 1000) + " \u00b5s";
}
function fmtNum(v) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  const a = Math.abs(v);
  if (a >= 1e9) return sig(v / 1e9) + "G";
  if (a >= 1e6) return sig(v / 1e6) + "M";
  if (a >= 1e4) return sig(v / 1e3) + "k";
  return sig(v);
}
function fmtRate(v, unit) { return v === null || v === undefined ? "-" : fmtNum(v) + " " + unit; }
function fmtCount(v) {
  return v === null || v === undefined ? "-" : Math.round(v).toLocaleString("en-US");
}
function fmtPct(v) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  const p = 100 * v;
  return (p === 0 ? "0" : p < 0.01 ? "<0.01" : sig(p)) + "%";
}
function fmtBytes(v) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return sig(v) + " " + units[i];
}
function fmtSeconds(v) {
  if (v === null || v === undefined || !isFinite(v)) return "-";
  return Math.abs(v) >= 60 ? fmtClock(v) : fmtMs(v * 1000);
}
function fmtClock(s) {
  if (s === null || s === undefined || !isFinite(s)) return "-";
  const neg = s < 0;
  s = Math.abs(s);
  if (s < 10 && s !== Math.round(s)) return (neg ? "-" : "") + sig(s, 2) + "s";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
  let out = h ? h + "h" + String(m).padStart(2, "0") + "m" : m ? m + "m" : "";
  if (!h) out += (m ? String(r).padStart(2, "0") : r) + "s";
  return (neg ? "-" : "") + out;
}

/* ---- DOM helpers ---------------------------------------------------------------------- */
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function byId(id) { return document.getElementById(id); }
function table(head, rows, cls) {
  const t = el("table", null, cls);
  const tr = el("tr");
  const first = rows.length ? rows[0].cells : [];
  head.forEach((h, i) => tr.appendChild(el("th", h, Array.isArray(first[i])
    && first[i][1] === "label" ? "label" : "")));
  t.appendChild(el("thead")).appendChild(tr);
  const body = t.appendChild(el("tbody"));
  for (const row of rows) {
    const r = el("tr", null, row.cls || "");
    for (const c of row.cells) {
      const td = Array.isArray(c) ? el("td", c[0], c[1]) : el("td", c);
      r.appendChild(td);
    }
    body.appendChild(r);
  }
  return t;
}
function section(id, title, note) {
  let s = byId(id);
  if (!s) {
    s = el("section");
    s.id = id;
    byId("main").appendChild(s);
  }
  s.replaceChildren(el("h2", title));
  if (note) s.appendChild(el("p", note, "note"));
  return s;
}

/* ---- op kinds ------------------------------------------------------------------------- */
function kindOf(op) {
  const kinds = (S.run && S.run.kinds) || {};
  if (kinds[op]) return kinds[op];
  if (op.endsWith(":event")) return "event";
  if (op.endsWith(":round")) return "round";
  return "request";
}
function opsOf(kind) {
  const total = op => (S.ops[op] ? S.ops[op].requests.reduce((a, b) => a + b, 0) : 0);
  const names = new Set(Object.keys(S.ops));
  for (const op of Object.keys((S.run && S.run.ops) || {})) names.add(op);
  return [...names].filter(op => kindOf(op) === kind).sort((a, b) => total(b) - total(a));
}

/* ---- the timeline: faults, restarts and crashes, phases, rules' first failures -------- */
/* What a workload with not_during pauses for, as people say it. */
const PAUSE_LABEL = {faults: "fault", churn: "churn"};
function pauseLabel(reason) { return "paused: " + (PAUSE_LABEL[reason] || reason); }
function buildTimeline() {
  const faults = {}, markers = [], phases = [], pauses = [], open = {};
  for (const e of S.events) {
    if (e.t === null) continue;
    const d = e.data || {};
    if (e.event === "fault_start") {
      faults[d.id] = {id: d.id, name: d.name, kind: d.fault_kind, targets: d.targets || [],
                      start: e.t, end: null, failed: false};
    } else if (["fault_end", "fault_undone", "fault_error"].includes(e.event)) {
      const f = faults[d.id];
      if (f && f.end === null) { f.end = e.t; f.failed = e.event === "fault_error"; }
    } else if (e.event === "service_restart" || e.event === "service_exit") {
      const crash = e.event === "service_exit";
      markers.push({t: e.t, kind: crash ? "crash" : "restart",
                    label: (crash ? "crash " : "restart ") + (d.service || ""), title: e.label});
    } else if (e.event === "phase") {
      if (phases.length) phases[phases.length - 1].end = e.t;
      phases.push({name: d.phase, start: e.t, end: null});
    } else if (e.event === "in_force") {  // churn or faults in force: not_during pauses
      if (d.on && !open[d.reason]) {
        open[d.reason] = {reason: d.reason, start: e.t, end: null};
        pauses.push(open[d.reason]);
      } else if (!d.on && open[d.reason]) {
        open[d.reason].end = e.t;
        delete open[d.reason];
      }
    }
  }
  const kinds = [...new Set(Object.values(faults).map(f => f.kind))].sort();
  const failed = S.run.rules.filter(r => r.status === "fail" && r.first_failed_s !== null)
    .map((r, i) => ({t: r.first_failed_s, kind: "rule", row: i % 4, label: "\u2717 " + r.rule,
                title: "rule " + r.rule + " first failed at t=" + fmtClock(r.first_failed_s)}));
  S.timeline = {faults: Object.values(faults), markers: markers, phases: phases, failed: failed,
                pauses: pauses,
                colors: Object.fromEntries(kinds.map((k, i) =>
                  [k, FAULT_COLORS[i % FAULT_COLORS.length]]))};
}
function faultLabel(f) { return f.kind + " \u00b7 " + (f.targets.join(", ") || "-"); }
/* The reasons the chart's ops pause for (not_during), and which workloads. */
function pausesOf(ops) {
  const pausing = (S.run && S.run.pausing) || {};
  const by = {};
  for (const op of ops || []) {
    const p = pausing[op];
    if (!p) continue;
    for (const r of p.reasons) (by[r] || (by[r] = new Set())).add(p.workload);
  }
  return by;
}
function pauseBands(pos, width, ops) {
  const by = pausesOf(ops);
  const out = [];
  for (const p of S.timeline.pauses) {
    if (!by[p.reason]) continue;
    const a = Math.max(0, pos(p.start)), b = Math.min(width, pos(p.end === null ? S.xmax
                                                                   : p.end));
    if (b <= a) continue;
    const d = el("div", null, "pause-band");
    d.dataset.reason = p.reason;
    d.style.left = a + "px";
    d.style.width = Math.max(2, b - a) + "px";
    d.title = pauseLabel(p.reason) + " (" + [...by[p.reason]].sort().join(", ") + "), "
      + fmtClock(p.start) + " to " + (p.end === null ? "now" : fmtClock(p.end));
    d.appendChild(el("span", pauseLabel(p.reason), "band-label"));
    out.push(d);
  }
  return out;
}
function drawOverlay(u, ops) {
  let layer = u.over.querySelector(".tl");
  if (!layer) { layer = el("div", null, "tl"); u.over.appendChild(layer); }
  const parts = [];
  const pos = v => u.valToPos(v, "x");
  const width = u.over.clientWidth;
  const end = S.xmax;
  for (const p of S.timeline.phases) {
    const a = Math.max(0, pos(p.start)), b = Math.min(width, pos(p.end === null ? end : p.end));
    if (b <= a) continue;
    const d = el("div", null, "phase-band phase-" + p.name.replace(/[^a-z0-9_-]/gi, ""));
    d.style.left = a + "px";
    d.style.width = (b - a) + "px";
    d.title = "phase " + p.name;
    parts.push(d);
  }
  for (const f of S.timeline.faults) {
    const color = S.timeline.colors[f.kind];
    const stop = f.end === null ? end : f.end;
    const a = pos(f.start), b = Math.min(width, pos(stop));
    const instant = b - a < 3;
    const d = el("div", null, instant ? "fault-band instant" : "fault-band");
    d.dataset.kind = f.kind;
    d.style.left = Math.max(0, a) + "px";
    d.style.width = Math.max(2, b - Math.max(0, a)) + "px";
    d.style.setProperty("--c", color);
    d.title = "fault " + f.name + ": " + faultLabel(f) + ", " + fmtClock(f.start) + " to "
      + (f.end === null ? "now" : fmtClock(f.end)) + (f.failed ? " (failed)" : "");
    d.appendChild(el("span", faultLabel(f), "band-label"));
    parts.push(d);
  }
  parts.push(...pauseBands(pos, width, ops));
  for (const m of [...S.timeline.markers, ...S.timeline.failed]) {
    const a = pos(m.t);
    if (a < 0 || a > width) continue;
    const d = el("div", null, "marker " + m.kind);
    d.style.left = a + "px";
    if (m.row) d.style.setProperty("--row", m.row);  // labels of failures close in time apart
    d.title = m.title;
    d.appendChild(el("span", m.label, "marker-label"));
    parts.push(d);
  }
  layer.replaceChildren(...parts);
}
function legend() {
  const box = byId("legend");
  const items = [];
  for (const [kind, color] of Object.entries(S.timeline.colors || {})) {
    const i = el("span", "fault: " + kind, "key fault-key");
    i.style.setProperty("--c", color);
    items.push(i);
  }
  if (S.timeline.markers.some(m => m.kind === "restart")) {
    items.push(el("span", "service restarted", "key restart-key"));
  }
  if (S.timeline.markers.some(m => m.kind === "crash")) {
    items.push(el("span", "service exited (crash)", "key crash-key"));
  }
  if (S.timeline.failed.length) items.push(el("span", "rule first failed", "key rule-key"));
  for (const reason of [...new Set(S.timeline.pauses.map(p => p.reason))].sort()) {
    items.push(el("span", pauseLabel(reason) + " (workloads with not_during, on their "
      + "ops' charts)", "key pause-key"));
  }
  for (const name of [...new Set(S.timeline.phases.map(p => p.name))]) {
    items.push(el("span", "phase " + name, "key phase-key phase-"
      + name.replace(/[^a-z0-9_-]/gi, "")));
  }
  if (!items.length) items.push(el("span", "no faults, restarts or phases yet", "muted"));
  box.replaceChildren(...items);
}

/* ---- charts --------------------------------------------------------------------------- */
function chart(box, id, title, lines, fmt, empty, ops) {
  const have = lines.filter(l => l.y.some(v => v !== null && v !== undefined));
  let slot = byId("slot-" + id);
  if (!slot) {
    slot = el("div", null, "chart");
    slot.id = "slot-" + id;
    box.appendChild(slot);
  }
  const old = S.charts[id];
  if (!have.length) {
    if (old) { old.u.destroy(); delete S.charts[id]; }
    slot.replaceChildren(el("div", title, "chart-title"), el("div", empty, "empty"));
    slot.dataset.empty = "true";
    return;
  }
  delete slot.dataset.empty;
  const xs = [...new Set(have.flatMap(l => l.t))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const data = [xs, ...have.map(l => {
    const y = new Array(xs.length).fill(null);
    l.t.forEach((t, i) => { y[index.get(t)] = l.y[i]; });
    return y;
  })];
  const key = title + "|" + have.map(l => l.label).join("|") + "|" + (ops || []).join("|");
  if (old && old.key === key) { old.u.setData(data); return; }
  if (old) old.u.destroy();
  slot.replaceChildren();
  const opts = {
    title: title, width: Math.max(280, slot.clientWidth), height: box.dataset.small ? 170 : 230,
    scales: {x: {time: false, range: () => [0, S.xmax]},
             y: {range: (u, lo, hi) => [Math.min(0, lo), hi > 0 ? hi * 1.08 : 1]}},
    axes: [{values: (u, v) => v.map(fmtClock), size: 30},
           {values: (u, v) => v.map(fmt), size: 64}],
    series: [{label: "time", value: (u, v) => (v === null ? "-" : fmtClock(v))},
             ...have.map((l, i) => ({label: l.label, stroke: l.color || PALETTE[i % 10],
                                      width: l.width || 1.5, dash: l.dash, spanGaps: false,
                                      value: (u, v) => fmt(v)}))],
    cursor: {sync: {key: "enduro"}},
    hooks: {draw: [u => drawOverlay(u, ops)]},
  };
  S.charts[id] = {u: new uPlot(opts, data, slot), key: key};
}
function rateOf(op, col) {
  const c = S.ops[op];
  return c ? c[col].map((n, i) => n / (c.span[i] || 1)) : [];
}
function totalRate(ops, label, col) {
  const ts = [...new Set(ops.flatMap(op => (S.ops[op] ? S.ops[op].t : [])))].sort((a, b) => a - b);
  const sums = new Map(ts.map(t => [t, 0]));
  for (const op of ops) {
    const c = S.ops[op];
    if (!c) continue;
    c.t.forEach((t, i) => sums.set(t, sums.get(t) + c[col][i] / (c.span[i] || 1)));
  }
  return {label: label, t: ts, y: ts.map(t => sums.get(t)), width: 2.5, color: "#212529"};
}
function latencyLines(ops) {
  if (ops.length === 1) {
    const c = S.ops[ops[0]] || {t: [], p50_ms: [], p95_ms: [], p99_ms: []};
    return [{label: "p50", t: c.t, y: c.p50_ms, color: PALETTE[2]},
            {label: "p95", t: c.t, y: c.p95_ms, color: PALETTE[1]},
            {label: "p99", t: c.t, y: c.p99_ms, color: PALETTE[4]}];
  }
  return ops.slice(0, MAX_LINES).map((op, i) => {
    const c = S.ops[op] || {t: [], p95_ms: []};
    return {label: op + " p95", t: c.t, y: c.p95_ms, color: PALETTE[i % 10]};
  });
}
function errorLines(ops) {
  const ts = new Map();
  const totals = {};
  for (const op of ops) {
    const c = S.ops[op];
    if (!c) continue;
    c.t.forEach((t, i) => {
      const row = ts.get(t) || {};
      ts.set(t, row);  // a window without errors is a 0, not a gap
      if (!c.errors[i]) return;
      const classes = c.classes[i] || {error: c.errors[i]};
      for (const [k, n] of Object.entries(classes)) {
        row[k] = (row[k] || 0) + n / (c.span[i] || 1);
        totals[k] = (totals[k] || 0) + n;
      }
    });
  }
  const names = Object.keys(totals).sort((a, b) => totals[b] - totals[a]);
  const times = [...ts.keys()].sort((a, b) => a - b);
  const shown = names.slice(0, MAX_LINES - 1);
  const lines = shown.map((k, i) => ({label: k, t: times, y: times.map(t => ts.get(t)[k] || 0),
                                       color: PALETTE[(i + 4) % 10]}));
  const rest = names.slice(MAX_LINES - 1);
  if (rest.length) {
    lines.push({label: "other classes (" + rest.length + ")", t: times,
                y: times.map(t => rest.reduce((a, k) => a + (ts.get(t)[k] || 0), 0))});
  }
  return lines;
}
function chartsOfKind(box, kind, ops, noun, unit) {
  const picked = kind === "request" && S.pick !== "*" && ops.includes(S.pick) ? [S.pick] : ops;
  const what = picked.length === 1 ? picked[0] : "all " + noun;
  const lines = picked.length === 1 ? [] : [totalRate(picked, "all (sum)", "requests")];
  lines.push(...picked.slice(0, MAX_LINES).map((op, i) => ({
    label: op, t: S.ops[op] ? S.ops[op].t : [], y: rateOf(op, "requests"),
    color: PALETTE[i % 10]})));
  const wait = S.run && S.run.live ? "no window stored yet" : "nothing was measured";
  chart(box, kind + "-rate", "Throughput: " + what + " (" + unit + ")", lines,
        v => fmtNum(v), wait, picked);
  chart(box, kind + "-errors", "Errors per second by class: " + what, errorLines(picked),
        v => fmtNum(v), "no errors: every one of " + what + " met its expectations", picked);
  chart(box, kind + "-latency", (picked.length === 1 ? "Latency p50 / p95 / p99: " + what
        : "Latency p95 per op") + " (from the intended send time)",
        latencyLines(picked), fmtMs, picked.some(op => S.ops[op] && S.ops[op].t.length)
          ? "no latency measured: every one of " + what + " failed" : wait, picked);
}
const GROUPS = [
  ["request", "Requests", "requests", "req/s", ""],
  ["iteration", "Flows", "flows", "iterations/s",
   "Each iteration of a flow; its steps are counted as requests above, not here."],
  ["event", "SSE delivery", "SSE events", "events/s",
   "Events received on the streams of sse workloads and of flows' sse steps "
   + "(<flow>.<step>:event); latency is delivery time, kept apart from HTTP."],
  ["round", "Burst rounds", "burst rounds", "rounds/s",
   "Each round of a burst; its requests are counted above."],
];
function opPicker(ops) {
  const picker = el("select");
  picker.id = "op-picker";
  const all = el("option", "all requests (" + ops.length + " ops)");
  all.value = "*";
  picker.appendChild(all);
  for (const op of ops) {
    const o = el("option", op);
    o.value = op;
    picker.appendChild(o);
  }
  picker.value = ops.includes(S.pick) ? S.pick : "*";
  picker.addEventListener("change", () => { S.pick = picker.value; drawCharts(); });
  const label = el("label", "op ");
  label.appendChild(picker);
  return label;
}
function drawCharts() {
  for (const [kind, title, noun, unit, note] of GROUPS) {
    const ops = opsOf(kind);
    let s = byId("sec-" + kind);
    if (!ops.length && kind !== "request") { if (s) s.remove(); continue; }
    if (!s) {
      s = el("section");
      s.id = "sec-" + kind;
      s.appendChild(el("h2", title));
      if (note) s.appendChild(el("p", note, "note"));
      s.appendChild(el("div", null, "picker"));
      s.appendChild(el("div", null, "charts"));
      byId("charts").appendChild(s);
    }
    if (kind === "request") s.querySelector(".picker").replaceChildren(opPicker(ops));
    chartsOfKind(s.querySelector(".charts"), kind, ops, noun, unit);
  }
  drawResources();
  drawScraped();
}
const RESOURCES = {rss_mb: ["Memory (RSS)", v => fmtBytes(v * 1e6)],
                   cpu_pct: ["CPU", v => sig(v) + "%"], fds: ["Open files", fmtNum],
                   threads: ["Threads", fmtNum], loop_lag_ms: ["Event-loop lag", fmtMs]};
function targetName(t) {
  return t === "generator" ? "enduro (load generator)" : t.replace(/^service:/, "");
}
function drawResources() {
  const box = byId("resources");
  const metrics = new Set();
  for (const m of Object.values(S.res)) {
    for (const k of Object.keys(m)) if (k !== "pid") metrics.add(k);
  }
  if (!metrics.size) {
    box.replaceChildren(el("div", S.run && S.run.live ? "no resource sample stored yet"
      : "no resource was sampled (observe.sample, or no process to watch)", "empty"));
    box.dataset.filled = "";
    return;
  }
  if (box.dataset.filled !== "yes") { box.replaceChildren(); box.dataset.filled = "yes"; }
  const order = [...Object.keys(RESOURCES).filter(m => metrics.has(m)),
                 ...[...metrics].filter(m => !RESOURCES[m]).sort()];
  for (const metric of order) {
    const [title, fmt] = RESOURCES[metric] || [metric, fmtNum];
    const targets = Object.keys(S.res).filter(t => S.res[t][metric]).sort();
    const lines = targets.map((t, i) => ({label: targetName(t), t: S.res[t][metric].t,
                                          y: S.res[t][metric].value, color: PALETTE[i % 10]}));
    chart(box, "res-" + metric, title + " \u00b7 " + targets.map(targetName).join(", "),
          lines, fmt, "no samples");
  }
}
function unitOf(metric) {
  if (/_bytes(_total)?$/.test(metric)) return ["bytes", fmtBytes];
  if (/_seconds(_total|_sum)?$/.test(metric)) return ["seconds", fmtSeconds];
  if (/_(ratio)$/.test(metric)) return ["ratio", v => fmtPct(v)];
  if (/_percent$/.test(metric)) return ["%", v => sig(v) + "%"];
  if (/_total$|_count$/.test(metric)) return ["count", fmtNum];
  return ["value", fmtNum];
}
function drawScraped() {
  const box = byId("scraped");
  const sc = S.scraped;
  const names = [];
  for (const [svc, ms] of Object.entries(sc.series)) {
    for (const m of Object.keys(ms).sort()) names.push([svc, m]);
  }
  const hidden = (sc.unchanged ? sc.unchanged + " unchanged" : "")
    + (sc.left_out ? (sc.unchanged ? ", " : "") + sc.left_out + " over the limit" : "");
  byId("scraped-note").textContent = names.length
    ? "Each series on an axis of its own unit (summed over its labels)."
      + (hidden ? " Not drawn: " + hidden + "." : "")
    : "no scraped series changed" + (hidden ? " (" + hidden + ")" : "")
      + "; scrape a service's metrics with its 'scrape' setting";
  if (box.dataset.count !== String(names.length)) {
    box.replaceChildren();
    box.dataset.count = String(names.length);
  }
  names.forEach(([svc, m], i) => {
    const [unit, fmt] = unitOf(m);
    const pts = sc.series[svc][m];
    chart(box, "scr-" + i, svc + " \u00b7 " + m + " (" + unit + ")",
          [{label: m, t: pts.t, y: pts.value, color: PALETTE[i % 10]}], fmt, "no points");
  });
}

/* ---- header, rules, tables ------------------------------------------------------------ */
function showHeader(run) {
  document.title = "enduro \u00b7 " + (run.plan || "run") + " \u00b7 " + (run.verdict
    ? run.verdict : run.state);
  byId("title").textContent = (run.plan || "run") + " \u00b7 " + run.run_id;
  const state = byId("state");
  state.textContent = run.state;
  state.className = "badge " + run.state;
  const verdict = byId("verdict");
  verdict.hidden = !run.verdict;
  verdict.textContent = run.verdict ? run.verdict.toUpperCase() : "";
  verdict.className = "badge verdict " + (run.verdict || "");
  byId("clock").textContent = run.live
    ? fmtClock(run.elapsed_s) + " of " + fmtClock(run.duration_s) + " \u00b7 "
      + fmtClock(run.remaining_s) + " left"
    : "ran " + fmtClock(run.elapsed_s) + (run.stop_reason ? " \u00b7 " + run.stop_reason : "");
  byId("phase").textContent = run.live && run.phase ? "phase " + run.phase : "";
  byId("inforce").textContent = run.faults_in_force && run.faults_in_force.length
    ? "in force now: " + run.faults_in_force.map(f => f.name + " (" + f.kind + " on "
      + f.targets.join(", ") + ")").join("; ") : "";
}
function showCards(run) {
  const req = Object.entries(run.ops).filter(([op]) => kindOf(op) === "request");
  const total = req.reduce((a, [, f]) => a + (f.requests_total || 0), 0);
  const errors = req.reduce((a, [, f]) => a + (f.errors_total || 0), 0);
  const rps = req.reduce((a, [, f]) => a + (f.rps || 0), 0);
  const p95 = Math.max(...req.map(([, f]) => f.p95_ms || 0), 0);
  const cards = [[fmtCount(total), "requests"],
                 [fmtRate(rps, "req/s"), run.last_s ? "last " + run.last_s + " s" : "mean"],
                 [fmtPct(total ? errors / total : null), "errors (" + fmtCount(errors) + ")"],
                 [p95 ? fmtMs(p95) : "-", "worst op p95" + (run.last_s ? ", last "
                   + run.last_s + " s" : "")],
                 [String(S.timeline.faults.length), "faults"],
                 [String(S.timeline.markers.length), "restarts and crashes"]];
  byId("cards").replaceChildren(...cards.map(([v, k]) => {
    const c = el("div", null, "card");
    c.appendChild(el("b", v));
    c.appendChild(el("span", k));
    return c;
  }));
}
const STATUS = {pass: ["\u2713 pass", "ok"], fail: ["\u2717 fail", "no"],
                pending: ["\u2026 pending", "muted"], "n/a": ["n/a", "muted"]};
function showRules(run) {
  // Judged at the end (from results.json), or live: as their rule_status events told.
  const rows = run.rules;
  const live = rows.some(r => r.live);
  const s = section("rules", "Rules", !live ? "" : (run.live ? "Live: judged every few "
    + "seconds on the run so far. " : "As last judged while the run went. ") + "A rule over "
    + "sliding windows fails for good once one window failed; a whole-run rule may pass "
    + "again. The verdict is given at the end.");
  if (!rows.length) {
    s.appendChild(el("p", run.live ? "no rule judged yet" : "the plan has no rules", "muted"));
    return;
  }
  s.appendChild(table(["", "rule", "observed", "when / why"], rows.map(r => {
    // A sliding rule's reason says when it first failed: said once, from first_failed_s.
    const why = /^first failed at/.test(r.reason || "") ? "" : r.reason || "";
    const when = r.first_failed_s === null ? "" : "first failed at t=" + fmtClock(r.first_failed_s);
    const text = [when, why].filter(Boolean).join("; ")
      || (r.status === "fail" && !live ? "over the whole run" : "");
    return {cls: r.status === "fail" ? "bad" : "", cells: [STATUS[r.status] || [r.status, ""],
            [r.rule, "label"], r.observed, [text, "label"]]};
  })));
}
function showOps(run) {
  const s = section("ops", "Operations", run.last_s ? "Rates and percentiles over the last "
    + run.last_s + " s; totals since the start." : "Over the whole run.");
  const rows = Object.entries(run.ops).map(([op, f]) => ({cls: f.errors ? "bad" : "", cells: [
    [op, "label"], kindOf(op), fmtRate(f.rps, "/s"), fmtCount(f.errors), fmtPct(f.error_rate),
    fmtMs(f.p50_ms), fmtMs(f.p95_ms), fmtMs(f.p99_ms), fmtCount(f.requests_total),
    fmtCount(f.errors_total)]}));
  if (!rows.length) { s.appendChild(el("p", "no window stored yet", "muted")); return; }
  s.appendChild(table(["op", "kind", "rate", "errors", "error rate", "p50", "p95", "p99",
                       "total", "errors (total)"], rows));
}
function showFaults(run) {
  const res = run.results;
  const s = section("faults", "Faults", res ? "Detection: the first window the fault "
    + "showed in; recovery: back to the figures before it." : "Detection and recovery are "
    + "measured at the end of the run.");
  const rows = res ? res.faults.map(f => ({cls: f.error ? "bad" : "", cells: [
    ["#" + f.id + " " + f.name, "label"], f.kind, [f.target || f.targets.join(", "), "label"],
    fmtClock(f.start_s), fmtClock(f.end_s), f.detect_s === null ? "-" : fmtSeconds(f.detect_s),
    f.recover_s === null ? "-" : fmtSeconds(f.recover_s),
    f.errors === null || f.errors === undefined ? "-" : fmtCount(f.errors),
    [f.error || f.skipped || "", "label"]]}))
    : S.timeline.faults.map(f => ({cells: [["#" + f.id + " " + f.name, "label"], f.kind,
      [f.targets.join(", "), "label"], fmtClock(f.start), f.end === null ? "in force"
        : fmtClock(f.end), "-", "-", "-", [f.failed ? "failed" : "", "label"]]}));
  if (!rows.length) { s.appendChild(el("p", "no fault in this run" + (run.live ? " yet" : ""),
                                       "muted")); return; }
  s.appendChild(table(["fault", "kind", "target", "start", "end", "detected after",
                       "recovered after", "errors", "note"], rows));
}
function showResults(run) {
  const res = run.results;
  for (const id of ["classes", "streams", "bursts", "checkers"]) {
    const old = byId(id);
    if (old && !res) old.remove();
  }
  if (!res) return;
  const classes = Object.entries(res.errors_by_class);
  if (classes.length) {
    const s = section("classes", "Errors by class");
    s.appendChild(table(["class", "errors"], classes.sort((a, b) => b[1] - a[1])
      .map(([k, v]) => ({cells: [[k, "label"], fmtCount(v)]}))));
  }
  const streams = Object.entries(res.streams);
  if (streams.length) {
    const s = section("streams", "SSE streams");
    s.appendChild(table(["workload", "streams", "connects", "resumed", "events min / median / "
      + "max", "with duplicates", "with gaps", "stalled", "failed connects", "longest gap",
      "worst first event"], streams.map(([name, st]) => {
      const w = st.streams_with || {};
      const trouble = ["duplicates", "gaps", "stalls", "failed"].some(k => w[k]);
      const e = st.events_per_stream;
      return {cls: trouble ? "bad" : "", cells: [[name, "label"], fmtCount(st.streams),
        fmtCount(st.connects), fmtCount(st.resumed_with_last_event_id),
        fmtNum(e.min) + " / " + fmtNum(e.median) + " / " + fmtNum(e.max),
        fmtCount(w.duplicates || 0), fmtCount(w.gaps || 0), fmtCount(w.stalls || 0),
        fmtCount(w.failed || 0), fmtSeconds(st.longest_gap_s), fmtSeconds(st.worst_ttfe_s)]};
    })));
  }
  const bursts = Object.entries(res.bursts);
  if (bursts.length) {
    const s = section("bursts", "Burst post-conditions");
    s.appendChild(table(["burst", "violations", "rounds failed", "by check", "first"],
      bursts.map(([name, b]) => ({cls: b.violations ? "bad" : "", cells: [[name, "label"],
        fmtCount(b.violations), fmtCount(b.rounds_failed),
        [Object.entries(b.by_check).map(([k, v]) => k + ": " + v).join(", "), "label"],
        [b.examples.length ? b.examples[0].problem || "" : "", "label"]]}))));
  }
  const checkers = Object.entries(res.checkers);
  if (checkers.length) {
    const s = section("checkers", "Checkers");
    s.appendChild(table(["checker", "violations", "first"], checkers.map(([name, c]) => ({
      cls: c.violations ? "bad" : "", cells: [[name, "label"], fmtCount(c.violations),
        [c.first || "", "label"]]}))));
  }
}
function cell(v) {
  if (typeof v !== "number") return v === null || v === undefined ? "-" : String(v);
  return Number.isInteger(v) ? fmtCount(v) : sig(v);
}
function showTables(run) {
  // Each scraped table (scrape.json.tables) as last scraped: live from state.json, at the
  // end from results.json.
  const tables = Object.entries(run.tables || {}).flatMap(([svc, byName]) =>
    Object.entries(byName).map(([name, t]) => [svc, name, t]));
  const old = byId("tables");
  if (!tables.length) { if (old) old.remove(); return; }
  const s = section("tables", "Scraped tables", "One row per named entry, as last scraped "
    + "(scrape.json.tables); their numbers are also among the scraped series.");
  for (const [svc, name, t] of tables) {
    const box = s.appendChild(el("div", null, "scraped-table"));
    box.dataset.table = svc + "." + name;
    box.appendChild(el("h3", svc + " · " + name));
    box.appendChild(el("p", "scraped at t=" + fmtClock(t.at_s) + (t.truncated ? "; "
      + t.truncated + (t.truncated === 1 ? " more entry" : " more entries")
      + " left out (max_rows)" : ""), "note"));
    const rows = Object.keys(t.rows).sort().map(row => ({cells: [[row, "label"],
      ...t.fields.map(f => cell(t.rows[row][f]))]}));
    if (!rows.length) { box.appendChild(el("p", "no entry", "muted")); continue; }
    box.appendChild(table(["entry", ...t.fields], rows));
  }
}
function livePauses(reasons, now) {
  // The stretches in which any of ``reasons`` was in force, merged: a live workload's pauses.
  const spans = S.timeline.pauses.filter(p => reasons.includes(p.reason))
    .map(p => [p.start, p.end === null ? now : p.end]).sort((a, b) => a[0] - b[0]);
  const merged = [];
  for (const [a, b] of spans) {
    const last = merged[merged.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b); else merged.push([a, b]);
  }
  const byReason = Object.fromEntries(reasons.map(r => {
    const mine = S.timeline.pauses.filter(p => p.reason === r);
    return [r, {pauses: mine.length, paused_s: mine.reduce((n, p) =>
      n + (p.end === null ? now : p.end) - p.start, 0)}];
  }));
  return {pauses: merged.length, paused_s: merged.reduce((n, [a, b]) => n + b - a, 0),
          by_reason: byReason, first: merged.map(([a, b]) => ({start_s: a, end_s: b}))};
}
function showPauses(run) {
  const workloads = {};
  for (const p of Object.values(run.pausing || {})) workloads[p.workload] = p.reasons;
  const done = run.results && run.results.paused;
  for (const name of Object.keys(done || {})) workloads[name] = workloads[name] || [];
  const old = byId("pauses");
  if (!Object.keys(workloads).length) { if (old) old.remove(); return; }
  const s = section("pauses", "Workload pauses", "Workloads kept clear of faults or SSE "
    + "churn (not_during) send nothing while one is in force; their charts show each pause "
    + "as a band." + (done ? "" : " Live: from the stretches in force so far."));
  s.appendChild(table(["workload", "kept clear of", "pauses", "paused for", "by reason",
                       "pauses (load time)"], Object.keys(workloads).sort().map(name => {
    const p = done ? done[name] || {pauses: 0, paused_s: 0, by_reason: {}, first: []}
      : livePauses(workloads[name], run.elapsed_s || 0);
    const reasons = workloads[name].length ? workloads[name] : Object.keys(p.by_reason);
    return {cells: [[name, "label"], [reasons.join(", "), "label"], fmtCount(p.pauses),
      fmtSeconds(p.paused_s), [Object.entries(p.by_reason).map(([r, b]) => pauseLabel(r)
        + " ×" + b.pauses + " (" + fmtSeconds(b.paused_s) + ")").join(", "), "label"],
      [p.first.slice(0, 5).map(f => fmtClock(f.start_s) + "–" + fmtClock(f.end_s))
        .join(", ") + (p.pauses > 5 ? ", …" : ""), "label"]]};
  })));
}
function showEvents() {
  const s = section("events", "Events", S.events.length > 300
    ? "The last 300 of " + S.events.length + "." : "");
  const rows = S.events.slice(-300).reverse().map(e => ({cls: "ev-" + e.category, cells: [
    e.t === null ? "before load" : fmtClock(e.t), [e.label, "label"]]}));
  if (!rows.length) { s.appendChild(el("p", "no event yet", "muted")); return; }
  s.appendChild(table(["time", "what"], rows, "events"));
}

/* ---- data ------------------------------------------------------------------------------ */
function addSeries(answer) {
  for (const [op, cols] of Object.entries(answer.ops)) {
    const mine = S.ops[op] || (S.ops[op] = {});
    for (const [k, v] of Object.entries(cols)) (mine[k] || (mine[k] = [])).push(...v);
  }
  for (const [target, metrics] of Object.entries(answer.resources)) {
    const mine = S.res[target] || (S.res[target] = {});
    for (const [m, pts] of Object.entries(metrics)) {
      const s = mine[m] || (mine[m] = {t: [], value: []});
      s.t.push(...pts.t);
      s.value.push(...pts.value);
    }
  }
  if (answer.windows_until !== null) S.windowsUntil = answer.windows_until;
  if (answer.samples_until !== null) S.samplesUntil = answer.samples_until;
  if (answer.scrapes) S.scraped = answer.scrapes;
}
function render() {
  const run = S.run;
  buildTimeline();
  const last = Math.max(0, ...Object.values(S.ops).map(c => {
    const n = c.t.length;
    return n ? c.t[n - 1] + c.span[n - 1] : 0;
  }));
  S.xmax = Math.max(1, run.live ? run.duration_s || last : Math.max(run.elapsed_s || 0, last));
  showHeader(run);
  showCards(run);
  showRules(run);
  legend();
  drawCharts();
  showOps(run);
  showFaults(run);
  showResults(run);
  showPauses(run);
  showTables(run);
  showEvents();
  document.body.dataset.updated = String(Date.now());
}

const TOKEN = new URLSearchParams(location.search).get("token");
async function get(path) {
  const answer = await fetch(path, {headers: TOKEN ? {"Authorization": "Bearer " + TOKEN} : {},
                                    cache: "no-store"});
  const body = await answer.json();
  if (!answer.ok) throw new Error(path + ": " + (body.error || answer.status));
  return body;
}
function query(path, params) {
  const q = Object.entries(params).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => k + "=" + encodeURIComponent(v)).join("&");
  return q ? path + "?" + q : path;
}
async function poll() {
  try {
    const run = await get("api/run");
    if (S.step !== null && run.step_s !== S.step) {  // a new bucket length: start over
      S.ops = {}; S.res = {}; S.windowsUntil = null; S.samplesUntil = null;
    }
    S.run = run;
    S.step = run.step_s;
    let answer;
    do {
      answer = await get(query("api/series", {since: S.windowsUntil, step: S.step,
                                              samples_since: S.samplesUntil}));
      addSeries(answer);
    } while (answer.more);
    // Scraped series are read whole, every tenth poll: a store too busy now to answer
    // leaves the last ones drawn, and they are asked for again at the next poll.
    if (S.scrapedStale || S.polls % 10 === 0 || !run.live) {
      try {
        S.scraped = await get(query("api/scrapes", {step: S.step}));
        S.scrapedStale = false;
      } catch (err) {
        S.scrapedStale = true;
      }
    }
    const events = await get(query("api/events", {after: S.lastSeq}));
    S.events.push(...events.events);
    S.lastSeq = events.last_seq;
    S.polls++;
    render();
    byId("problem").textContent = "";
  } catch (err) {
    byId("problem").textContent = "cannot read the run: " + err.message;
  }
  setTimeout(poll, POLL_MS);
}
function start() {
  const embedded = byId("enduro-data");
  if (embedded) {
    const data = JSON.parse(embedded.textContent);
    S.run = data.run;
    addSeries(data.series);
    S.scraped = data.scrapes;
    S.events = data.events.events;
    byId("mode").textContent = "report written at the end of the run";
    render();
  } else {
    byId("mode").textContent = "live \u00b7 updated every " + POLL_MS / 1000 + " s";
    poll();
  }
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      for (const c of Object.values(S.charts)) {
        const slot = c.u.root.parentElement;
        c.u.setSize({width: Math.max(280, slot.clientWidth), height: c.u.height});
      }
    }, 150);
  });
}
start();
