/* agentos-obs dashboard. Vanilla JS, no dependencies.
 *
 * Safety rule: every value that comes from the store (span names, prompts, attributes…) is put
 * in the page as a text node (textContent / createTextNode), never parsed as HTML. The helper
 * `el()` below is the only way this file builds DOM, and it has no HTML-string path.
 */
"use strict";

const REFRESH_MS = 5000;
const SVG_NS = "http://www.w3.org/2000/svg";
const CONTENT_KEYS = [
  "input.value", "output.value", "llm.input_messages", "llm.output_messages",
  "retrieval.query", "retrieval.documents", "tool.input", "tool.output",
];
const ERROR_KEYS = ["error", "error.type", "error.message"];

const state = {
  range: localStorage.getItem("agentos-obs.range") || "all",
  version: null,
  route: null,
  selectedSpan: null,
};

/* DOM helpers ---------------------------------------------------------------- */

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  applyProps(node, props);
  appendAll(node, children);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  appendAll(node, children);
  return node;
}

function applyProps(node, props) {
  if (!props) return;
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/* Formatting ----------------------------------------------------------------- */

function fmtInt(n) {
  return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US");
}

function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
  return (ms / 60000).toFixed(1) + " min";
}

function fmtCost(usd) {
  if (usd === null || usd === undefined) return "–";
  if (usd === 0) return "$0";
  if (usd >= 100) return "$" + usd.toFixed(0);
  if (usd >= 1) return "$" + usd.toFixed(2);
  if (usd >= 0.01) return "$" + usd.toFixed(4);
  return "$" + usd.toPrecision(3);
}

function fmtPct(x) {
  return x === null || x === undefined ? "–" : (x * 100).toFixed(x < 0.1 ? 1 : 0) + "%";
}

function fmtTime(ms) {
  if (!ms) return "–";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function plural(n, word) {
  return fmtInt(n) + " " + word + (n === 1 ? "" : "s");
}

function fmtValue(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

function statusBadge(status) {
  const s = String(status || "ok").toLowerCase();
  return el("span", { class: "badge " + s.replace(/[^a-z]/g, "") }, s);
}

function kindTag(kind) {
  const k = String(kind || "chain").toLowerCase();
  return el("span", { class: "kind " + k.replace(/[^a-z]/g, "") }, k);
}

/* API ------------------------------------------------------------------------ */

function rangeParams(extra) {
  const params = new URLSearchParams(extra || {});
  if (state.range && state.range !== "all") params.set("since", state.range);
  return params;
}

async function api(path, params) {
  const query = params && String(params) ? "?" + String(params) : "";
  const response = await fetch("api/" + path + query, { credentials: "same-origin" });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).error || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail + " (HTTP " + response.status + ")");
  }
  return response.json();
}

/* Routing -------------------------------------------------------------------- */

function parseRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "traces") return { page: "traces", params };
  if (parts[0] === "trace" && parts[1]) return { page: "trace", id: decodeURIComponent(parts[1]), params };
  return { page: "overview", params };
}

async function render() {
  const route = parseRoute();
  state.route = route;
  for (const a of document.querySelectorAll("[data-nav]")) {
    const current = route.page === "trace" ? "traces" : route.page;
    a.classList.toggle("active", a.dataset.nav === current);
  }
  const app = document.getElementById("app");
  try {
    let page;
    if (route.page === "traces") page = await renderTraces(route.params);
    else if (route.page === "trace") page = await renderTrace(route.id, route.params);
    else page = await renderOverview();
    clear(app).appendChild(page);
  } catch (err) {
    clear(app).appendChild(el("div", { class: "notice" }, "Could not load this page: ", String(err.message || err)));
  }
}

/* Overview ------------------------------------------------------------------- */

async function renderOverview() {
  const p = rangeParams();
  const [summary, series, byModel, byAgent, byUser, stages, budgets] = await Promise.all([
    api("summary", p),
    api("timeseries", rangeParams({ buckets: 30 })),
    api("breakdown", rangeParams({ by: "model", limit: BREAKDOWN_ROWS })),
    api("breakdown", rangeParams({ by: "agent", limit: BREAKDOWN_ROWS })),
    api("breakdown", rangeParams({ by: "user", limit: BREAKDOWN_ROWS })),
    api("stages", p),
    api("budgets", p),
  ]);
  const lat = summary.latency_ms || {};
  const page = el("div", { id: "overview" },
    el("div", { class: "page-head" },
      el("h1", null, "Overview"),
      el("span", { class: "sub" }, summary.trace_count ? rangeLabel() : "No traces yet: run `agentos-obs demo` or instrument an app.")),
    el("div", { class: "grid kpis" },
      kpi("Traces", fmtInt(summary.trace_count), plural(summary.span_count, "span"), "kpi-traces"),
      kpi("Error rate", fmtPct(summary.error_rate), plural(summary.error_count, "failed trace"), "kpi-error-rate", summary.error_rate > 0),
      kpi("Latency p50", fmtMs(lat.p50), "per trace", "kpi-p50"),
      kpi("Latency p95", fmtMs(lat.p95), "p99 " + fmtMs(lat.p99), "kpi-p95"),
      kpi("Total cost", fmtCost(summary.cost_usd), summary.unpriced_llm_calls ? plural(summary.unpriced_llm_calls, "unpriced call") : "all calls priced", "kpi-cost"),
      kpi("Tokens", fmtInt(summary.total_tokens), fmtInt(summary.input_tokens) + " in · " + fmtInt(summary.output_tokens) + " out", "kpi-tokens"),
      kpi("LLM calls", fmtInt(summary.llm_calls), null, "kpi-llm-calls")),
    el("div", { class: "grid two" },
      el("div", { class: "panel chart" }, el("h2", null, "Traces over time"),
        barChart(series.points, [
          { key: "ok", label: "ok", color: "#60a5fa", value: (pt) => pt.traces - pt.errors, integer: true },
          { key: "errors", label: "errors", color: "#ef4444", value: (pt) => pt.errors },
        ], fmtInt)),
      el("div", { class: "panel chart" }, el("h2", null, "Cost over time"),
        barChart(series.points, [
          { key: "cost", label: "cost (USD)", color: "#f59e0b", value: (pt) => pt.cost_usd },
        ], fmtCost))),
    el("div", { class: "grid three" },
      breakdownPanel("Cost by model", "by-model", byModel),
      breakdownPanel("Cost by agent", "by-agent", byAgent),
      breakdownPanel("Cost by user", "by-user", byUser)),
    el("div", { class: "grid two" },
      stagesPanel(stages.rows),
      budgetsPanel(budgets.budgets)));
  return page;
}

function rangeLabel() {
  const option = document.querySelector("#range option:checked");
  return option ? option.textContent : "";
}

function kpi(label, value, detail, id, bad) {
  return el("div", { class: "panel kpi" + (bad ? " bad" : ""), id },
    el("div", { class: "label" }, label),
    el("div", { class: "value" }, value),
    detail ? el("div", { class: "detail" }, detail) : null);
}

/* The costliest rows of a breakdown; the API pages the rest (with totals over every row). */
const BREAKDOWN_ROWS = 20;

function breakdownPanel(title, id, data) {
  const rows = (data && data.rows) || [];
  const more = data && data.total_rows > rows.length ? data.total_rows - rows.length : 0;
  const max = Math.max(0, ...rows.map((r) => r.cost_usd || 0));
  const body = rows.length === 0
    ? el("div", { class: "empty" }, "No data")
    : el("table", { class: "compact" },
      el("thead", null, el("tr", null,
        el("th", null, title.replace("Cost by ", "")), el("th", { class: "num" }, "Calls"),
        el("th", { class: "num" }, "Tokens"), el("th", { class: "num" }, "Cost"), el("th", { class: "barcell" }, ""))),
      el("tbody", null, rows.map((r) => el("tr", null,
        el("td", { class: "key", title: r.key === null ? "" : String(r.key) }, r.key === null || r.key === "" ? "(none)" : r.key),
        el("td", { class: "num" }, fmtInt(r.calls)),
        el("td", { class: "num" }, fmtInt((r.input_tokens || 0) + (r.output_tokens || 0))),
        el("td", { class: "num" }, fmtCost(r.cost_usd)),
        el("td", { class: "barcell" }, el("div", { class: "inline-bar" },
          el("div", { style: { width: (max > 0 ? (100 * (r.cost_usd || 0)) / max : 0) + "%" } })))))));
  const rest = more ? el("div", { class: "more-rows" }, `and ${fmtInt(more)} more (${fmtCost(data.totals.cost_usd)} in all)`) : null;
  return el("div", { class: "panel", id }, el("h2", null, title), body, rest);
}

function stagesPanel(rows) {
  rows = rows || [];
  const totalSelf = rows.reduce((acc, r) => acc + ((r.self && r.self.total) || 0), 0);
  const body = rows.length === 0 ? el("div", { class: "empty" }, "No spans") : el("table", null,
    el("thead", null,
      el("tr", null, el("th", null, "Stage"), el("th", { class: "num" }, "Spans"),
        el("th", { class: "num" }, "Incl. p50"), el("th", { class: "num" }, "Incl. p95"),
        el("th", { class: "num" }, "Self p50"), el("th", { class: "num" }, "Self p95"),
        el("th", { class: "barcell" }, "Share of self time"))),
    el("tbody", null, rows.map((r) => el("tr", null,
      el("td", null, kindTag(r.stage)),
      el("td", { class: "num" }, fmtInt(r.count)),
      el("td", { class: "num" }, fmtMs(r.inclusive.p50)),
      el("td", { class: "num" }, fmtMs(r.inclusive.p95)),
      el("td", { class: "num" }, fmtMs(r.self.p50)),
      el("td", { class: "num" }, fmtMs(r.self.p95)),
      el("td", { class: "barcell" }, el("div", { class: "inline-bar" },
        el("div", { style: { width: (totalSelf > 0 ? (100 * r.self.total) / totalSelf : 0) + "%" } })))))));
  return el("div", { class: "panel", id: "stages" },
    el("h2", null, "Latency by stage"),
    el("p", { class: "muted", style: { margin: "-4px 0 8px", fontSize: "12px" } },
      "Inclusive = the span's whole duration; self = minus the time covered by its children."),
    body);
}

function budgetsPanel(budgets) {
  budgets = budgets || [];
  const body = budgets.length === 0
    ? el("div", { class: "empty" }, "No budgets configured (agentos-obs ui --budget 10/day)")
    : budgets.map((b) => {
      const frac = b.limit_usd > 0 ? b.spent_usd / b.limit_usd : 0;
      const cls = frac >= 1 ? "over" : frac >= 0.8 ? "warn" : "";
      return el("div", { class: "budget " + cls },
        el("div", { class: "row" },
          el("b", null, b.name),
          el("span", null, fmtCost(b.spent_usd), " of ", fmtCost(b.limit_usd), " (", fmtPct(frac), ")")),
        el("div", { class: "track" }, el("div", { class: "fill", style: { width: Math.min(100, frac * 100) + "%" } })));
    });
  return el("div", { class: "panel", id: "budgets" }, el("h2", null, "Budgets"), body);
}

/* The smallest "nice" number (1, 2, 2.5, 5 × 10^k) >= x, so axis ticks at quarters read well;
 * whole numbers for counts (at least 4, so the quarter ticks are integers). */
function niceCeil(x, integer) {
  if (x <= 0) return 0;
  if (integer) return Math.max(4, 4 * Math.ceil(x / 4));
  const base = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * base >= x) return m * base;
  return 10 * base;
}

/* A stacked bar chart in inline SVG; each bar has a <title> tooltip (text only). */
function barChart(points, series, fmt) {
  points = points || [];
  const W = 600, H = 180, padL = 62, padB = 22, padT = 8, padR = 8;
  const totals = points.map((pt) => series.reduce((acc, s) => acc + (s.value(pt) || 0), 0));
  const max = niceCeil(Math.max(0, ...totals), series[0].integer);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  const plotH = H - padB - padT, plotW = W - padL - padR;
  for (let i = 0; i <= 4; i++) {
    const y = padT + plotH - (plotH * i) / 4;
    root.appendChild(svg("line", { x1: padL, x2: W - padR, y1: y, y2: y, class: "gridline" }));
    root.appendChild(svg("text", { x: padL - 6, y: y + 3, "text-anchor": "end", class: "axis" }, max > 0 ? fmt((max * i) / 4) : i === 0 ? "0" : ""));
  }
  const n = Math.max(points.length, 1);
  const slot = plotW / n;
  const barW = Math.max(1, slot * 0.72);
  points.forEach((pt, i) => {
    let yBase = padT + plotH;
    const x = padL + i * slot + (slot - barW) / 2;
    const tip = [fmtTime(pt.start)].concat(series.map((s) => s.label + ": " + fmt(s.value(pt) || 0))).join("\n");
    for (const s of series) {
      const v = s.value(pt) || 0;
      if (v <= 0 || max <= 0) continue;
      const h = (plotH * v) / max;
      yBase -= h;
      root.appendChild(svg("rect", { x, y: yBase, width: barW, height: h, fill: s.color, rx: 1.5 }, svg("title", null, tip)));
    }
  });
  if (points.length) {
    const first = points[0].start, last = points[points.length - 1].start;
    root.appendChild(svg("text", { x: padL, y: H - 6, class: "axis" }, shortTime(first, last - first)));
    root.appendChild(svg("text", { x: W - padR, y: H - 6, "text-anchor": "end", class: "axis" }, shortTime(last, last - first)));
  }
  const legend = series.length > 1 ? el("div", { class: "legend" },
    series.map((s) => el("span", null, el("i", { style: { background: s.color } }), s.label))) : null;
  return [root, legend];
}

function shortTime(ms, spanMs) {
  const d = new Date(ms);
  if (spanMs > 2 * 86400e3) return d.toLocaleDateString("en-GB");
  return d.toLocaleTimeString("en-GB", { hour12: false });
}

/* Traces list ---------------------------------------------------------------- */

const FILTERS = [
  ["status", "Status"], ["model", "Model"], ["agent", "Agent"], ["user", "User"],
  ["min_cost", "Min cost ($)"], ["min_duration_ms", "Min latency (ms)"], ["search", "Search"],
];
const PAGE_SIZE = 50;

async function renderTraces(params) {
  const query = rangeParams();
  for (const [key] of FILTERS) if (params.get(key)) query.set(key, params.get(key));
  const offset = Number(params.get("offset") || 0);
  query.set("limit", PAGE_SIZE);
  query.set("offset", offset);
  const [data, options] = await Promise.all([api("traces", query), api("filters", rangeParams())]);

  const form = el("form", { class: "filters", id: "trace-filters", onsubmit: (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(ev.target).entries()) if (String(value).trim()) next.set(key, String(value).trim());
    location.hash = "#/traces" + (String(next) ? "?" + next : "");
  } },
    selectField("status", "Status", ["ok", "error", "timeout", "cancelled"], params.get("status")),
    selectField("model", "Model", options.models, params.get("model")),
    selectField("agent", "Agent", options.agents, params.get("agent")),
    selectField("user", "User", options.users, params.get("user")),
    inputField("min_cost", "Min cost ($)", "number", params.get("min_cost"), { step: "any", min: "0" }),
    inputField("min_duration_ms", "Min latency (ms)", "number", params.get("min_duration_ms"), { step: "any", min: "0" }),
    inputField("search", "Search (name, id, content)", "search", params.get("search"), {}),
    el("button", { class: "primary", type: "submit" }, "Apply"),
    el("button", { type: "button", onclick: () => { location.hash = "#/traces"; } }, "Reset"));

  const rows = data.traces || [];
  const table = rows.length === 0 ? el("div", { class: "empty" }, "No traces match.") : el("table", { id: "trace-table" },
    el("thead", null, el("tr", null,
      el("th", null, "Started"), el("th", null, "Name"), el("th", null, "Status"),
      el("th", { class: "num" }, "Duration"), el("th", { class: "num" }, "Spans"),
      el("th", { class: "num" }, "Tokens"), el("th", { class: "num" }, "Cost"), el("th", null, "User"))),
    el("tbody", null, rows.map((t) => el("tr", {
      class: "clickable", dataset: { traceId: t.trace_id },
      onclick: () => { location.hash = "#/trace/" + encodeURIComponent(t.trace_id); },
    },
      el("td", { class: "mono" }, fmtTime(t.start_ms)),
      el("td", { class: "key" }, el("a", { href: "#/trace/" + encodeURIComponent(t.trace_id) }, t.name || t.trace_id)),
      el("td", null, statusBadge(t.status)),
      el("td", { class: "num" }, fmtMs(t.duration_ms)),
      el("td", { class: "num" }, fmtInt(t.span_count)),
      el("td", { class: "num" }, fmtInt(t.total_tokens)),
      el("td", { class: "num" }, fmtCost(t.cost_usd)),
      el("td", null, t.user_id || "")))));

  const pageParams = (off) => { const q = new URLSearchParams(params); q.set("offset", off); return "#/traces?" + q; };
  const pager = el("div", { class: "pager" },
    el("span", { class: "muted" }, rows.length ? `${offset + 1}–${offset + rows.length}` : ""),
    el("button", { disabled: offset === 0, onclick: () => { location.hash = pageParams(Math.max(0, offset - PAGE_SIZE)); } }, "← Newer"),
    el("button", { disabled: !data.has_more, onclick: () => { location.hash = pageParams(offset + PAGE_SIZE); } }, "Older →"));

  return el("div", { id: "traces" },
    el("div", { class: "page-head" }, el("h1", null, "Traces"), el("span", { class: "sub" }, rangeLabel())),
    form, el("div", { class: "panel" }, table, pager));
}

function selectField(name, label, values, current) {
  values = values || [];
  if (current && !values.includes(current)) values = values.concat([current]);
  return el("label", null, label, el("select", { name },
    el("option", { value: "" }, "any"),
    values.map((v) => el("option", { value: v, selected: v === current }, v))));
}

function inputField(name, label, type, value, extra) {
  return el("label", null, label, el("input", Object.assign({ name, type, value: value || "" }, extra)));
}

/* Trace page ----------------------------------------------------------------- */

/* A large trace arrives a page of spans at a time (the API's `next` cursor): the first page is
 * drawn at once, the following ones are appended in the background up to AUTO_LOAD_SPANS,
 * then a button loads the next batch. The time axis is the trace's, so bars never move. */
const SPAN_PAGE = 2000;
const AUTO_LOAD_SPANS = 10000;
const DRAW_EVERY_MS = 1500;

async function renderTrace(traceId, params) {
  const path = "traces/" + encodeURIComponent(traceId);
  const first = await api(path, new URLSearchParams({ limit: SPAN_PAGE }));
  const trace = first.trace;
  const route = state.route;
  const loaded = (first.spans || []).slice();
  const total = first.span_total || loaded.length;
  let next = first.next || null;
  let loading = false;
  let spans = orderSpans(loaded);
  let selected = null;
  const wanted = params.get("span");

  const detail = el("div", { class: "panel detail", id: "span-detail" });
  const rowsById = new Map();
  const select = (span) => {
    selected = span;
    for (const [id, row] of rowsById) row.classList.toggle("selected", id === span.span_id);
    clear(detail).appendChild(spanDetail(span));
  };

  const starts = loaded.map((s) => s.start_ms);
  const t0 = trace.start_ms !== null && trace.start_ms !== undefined ? trace.start_ms : Math.min(...starts);
  const ends = loaded.map((s) => s.end_ms || s.start_ms + (s.duration_ms || 0));
  const t1 = Math.max(trace.end_ms || 0, t0 + (trace.duration_ms || 0), ...ends);
  const span = Math.max(t1 - t0, 0.001);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { style: { left: f * 100 + "%" } }, fmtMs(f * span)));

  // One row per span, built once: a page that arrives only adds rows and re-orders the rest
  // (a span is rebuilt only when its depth changed, i.e. its parent arrived after it).
  const built = new Map();
  const row = (s) => {
    const cached = built.get(s.span_id);
    if (cached && cached.depth === s.depth) {
      cached.node.classList.toggle("selected", Boolean(selected && selected.span_id === s.span_id));
      rowsById.set(s.span_id, cached.node);
      return cached.node;
    }
    const left = Math.max(0, ((s.start_ms - t0) / span) * 100);
    const width = Math.min(100 - left, ((s.duration_ms || 0) / span) * 100);
    const ttft = s.attributes && s.attributes["llm.time_to_first_token_ms"];
    const node = el("div", { class: "wf-row" + (selected && selected.span_id === s.span_id ? " selected" : ""), dataset: { spanId: s.span_id }, onclick: () => select(s) },
      el("div", { class: "wf-name", style: { paddingLeft: s.depth * 16 + "px" } },
        kindTag(s.kind),
        el("span", { class: "label", title: s.name }, s.name || "(unnamed)"),
        s.status !== "ok" ? el("span", { class: "err-dot", title: s.status }, "!") : null),
      el("div", { class: "wf-track" },
        el("div", { class: `wf-bar ${cssKind(s.kind)} ${cssKind(s.status)}`, style: { left: left + "%", width: Math.max(width, 0.2) + "%" },
          title: `${s.name}: ${fmtMs(s.duration_ms)}` }),
        typeof ttft === "number" ? el("div", { class: "wf-ttft", title: "first token " + fmtMs(ttft), style: { left: ((s.start_ms - t0 + ttft) / span) * 100 + "%" } }) : null),
      el("div", { class: "wf-dur" }, fmtMs(s.duration_ms)));
    rowsById.set(s.span_id, node);
    built.set(s.span_id, { depth: s.depth, node });
    return node;
  };

  const rows = el("div", { class: "wf-rows" });
  const status = el("div", { class: "wf-more", id: "waterfall-more" });
  const spanCount = el("b", null, fmtInt(total));
  const showStatus = () => {
    clear(status);
    if (loaded.length >= total) return;
    status.appendChild(el("span", { class: "muted" }, `Showing ${fmtInt(spans.length)} of ${fmtInt(total)} spans`));
    if (loading) status.appendChild(el("span", { class: "muted" }, ` · loading ${fmtInt(loaded.length)}…`));
    else if (next) status.appendChild(el("button", { id: "load-more-spans", onclick: () => loadMore(AUTO_LOAD_SPANS) }, "Load more spans"));
  };
  const draw = () => {
    spans = orderSpans(loaded);
    rowsById.clear();
    const fragment = document.createDocumentFragment();
    for (const s of spans) fragment.appendChild(row(s));
    rows.replaceChildren(fragment);
    lastDraw = performance.now();
    showStatus();
  };
  // Load pages until `budget` more spans arrived (or the trace is complete, or the page was
  // left). The tree is redrawn at most every DRAW_EVERY_MS while pages arrive, then once.
  let lastDraw = 0;
  const loadMore = async (budget) => {
    if (loading || !next) return;
    loading = true;
    showStatus();
    let got = 0;
    try {
      while (next && got < budget && state.route === route) {
        const page = await api(path, new URLSearchParams({ limit: SPAN_PAGE, after: next }));
        for (const s of page.spans || []) loaded.push(s);
        got += (page.spans || []).length;
        next = page.next || null;
        if (state.route !== route) return;
        if (performance.now() - lastDraw > DRAW_EVERY_MS) draw();
        else showStatus();
      }
    } catch (err) {
      loading = false;
      showStatus();
      status.appendChild(el("span", { class: "notice" }, "Could not load more spans: " + String(err.message || err)));
      return;
    } finally {
      loading = false;
    }
    if (state.route === route) draw();
  };

  const waterfall = el("div", { class: "waterfall", id: "waterfall" },
    el("div", { class: "wf-head" }, el("div", null, "Span"), el("div", { class: "wf-ticks" }, ticks), el("div", { class: "num" }, "Duration")),
    rows, status);

  const page = el("div", { id: "trace" },
    el("div", { class: "page-head" },
      el("a", { href: "#/traces" }, "← Traces"),
      el("h1", null, trace.name || trace.trace_id), statusBadge(trace.status)),
    el("div", { class: "trace-meta" },
      meta("Trace", el("code", null, trace.trace_id)), meta("Started", fmtTime(trace.start_ms)),
      meta("Duration", fmtMs(trace.duration_ms)), el("span", null, "Spans ", spanCount),
      meta("Tokens", fmtInt(trace.total_tokens)), meta("Cost", fmtCost(trace.cost_usd)),
      trace.user_id ? meta("User", trace.user_id) : null, trace.session_id ? meta("Session", trace.session_id) : null),
    el("div", { class: "trace-layout" }, el("div", { class: "panel" }, el("h2", null, "Waterfall"), waterfall), detail));
  selected = spans.find((s) => s.span_id === wanted) || spans.find((s) => s.status !== "ok") || spans[0] || null;
  draw();
  if (selected) select(selected);
  if (next) loadMore(AUTO_LOAD_SPANS - loaded.length);
  return page;
}

function cssKind(value) {
  return String(value || "").toLowerCase().replace(/[^a-z]/g, "");
}

function meta(label, value) {
  return el("span", null, label + " ", el("b", null, value));
}

/* Depth-first order of the span tree, children by start time; orphans become roots. */
function orderSpans(spans) {
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_id && ids.has(s.parent_id) && s.parent_id !== s.span_id) {
      if (!children.has(s.parent_id)) children.set(s.parent_id, []);
      children.get(s.parent_id).push(s);
    } else roots.push(s);
  }
  const byStart = (a, b) => a.start_ms - b.start_ms;
  const out = [];
  const seen = new Set();
  const walk = (s, depth) => {
    if (seen.has(s.span_id)) return;
    seen.add(s.span_id);
    out.push(Object.assign({}, s, { depth }));
    for (const c of (children.get(s.span_id) || []).sort(byStart)) walk(c, depth + 1);
  };
  roots.sort(byStart).forEach((r) => walk(r, 0));
  return out;
}

function spanDetail(span) {
  const a = span.attributes || {};
  const ttft = a["llm.time_to_first_token_ms"];
  const facts = [
    ["Kind", kindTag(span.kind)], ["Status", statusBadge(span.status)], ["Duration", fmtMs(span.duration_ms)],
    ["Started", fmtTime(span.start_ms)], ["Span id", el("code", null, span.span_id)],
  ];
  if (span.model_name) facts.push(["Model", span.model_name]);
  if (span.provider) facts.push(["Provider", span.provider]);
  if (span.input_tokens || span.output_tokens) {
    facts.push(["Tokens", `${fmtInt(span.input_tokens)} in · ${fmtInt(span.output_tokens)} out`]);
    if (span.cache_read_tokens || span.cache_write_tokens) facts.push(["Cache", `${fmtInt(span.cache_read_tokens)} read · ${fmtInt(span.cache_write_tokens)} write`]);
    if (span.reasoning_tokens) facts.push(["Reasoning", fmtInt(span.reasoning_tokens)]);
  }
  if (span.cost_usd !== null && span.cost_usd !== undefined) facts.push(["Cost", fmtCost(span.cost_usd)]);
  else if (span.kind === "llm" && (span.input_tokens || span.output_tokens)) facts.push(["Cost", "unknown price"]);
  if (typeof ttft === "number") facts.push(["First token", fmtMs(ttft)]);

  const errors = ERROR_KEYS.filter((k) => a[k] !== undefined);
  const content = CONTENT_KEYS.filter((k) => a[k] !== undefined);
  const shown = new Set(errors.concat(content));
  const rest = Object.keys(a).filter((k) => !shown.has(k)).sort();
  return el("div", null,
    el("h2", null, span.name || "(unnamed)"),
    el("dl", { class: "kv" }, facts.map(([k, v]) => [el("dt", null, k), el("dd", null, v)])),
    span.status !== "ok" || errors.length ? el("section", { id: "span-error" }, el("h3", null, "Error"),
      el("div", { class: "error-box" }, errors.length ? errors.map((k) => el("div", null, el("b", null, k + ": "), fmtValue(a[k]))) : span.status)) : null,
    content.length ? el("section", { id: "span-content" }, el("h3", null, "Captured content"),
      content.map((k) => [el("div", { class: "muted" }, k), el("pre", { class: "content" }, fmtValue(a[k]))])) : null,
    rest.length ? el("section", null, el("h3", null, "Attributes"),
      el("dl", { class: "kv" }, rest.map((k) => [el("dt", null, k), el("dd", null, typeof a[k] === "object" && a[k] !== null ? el("pre", { class: "content" }, fmtValue(a[k])) : fmtValue(a[k]))]))) : null,
    span.events && span.events.length ? el("section", null, el("h3", null, "Events"),
      span.events.map((e) => el("div", { class: "event" },
        el("div", null, el("span", { class: "name" }, e.name), " ", el("span", { class: "muted" }, "+" + fmtMs(e.time_ms - span.start_ms))),
        Object.keys(e.attributes || {}).length ? el("dl", { class: "kv" }, Object.entries(e.attributes).map(([k, v]) => [el("dt", null, k), el("dd", null, fmtValue(v))])) : null))) : null);
}

/* Live refresh --------------------------------------------------------------- */

async function poll() {
  const live = document.getElementById("live");
  try {
    const v = await api("version");
    live.classList.remove("stale");
    live.textContent = "live · " + new Date().toLocaleTimeString("en-GB", { hour12: false });
    document.getElementById("db-path").textContent = v.db_path || "";
    const changed = state.version !== null && v.version !== state.version;
    state.version = v.version;
    const route = state.route;
    // The trace page only changes when it is re-opened; the lists follow new traces.
    if (changed && route && (route.page === "overview" || (route.page === "traces" && !Number(route.params.get("offset") || 0)))) {
      await render();
    }
  } catch (err) {
    live.classList.add("stale");
    live.textContent = "offline";
  }
}

function start() {
  const range = document.getElementById("range");
  range.value = state.range;
  range.addEventListener("change", () => {
    state.range = range.value;
    localStorage.setItem("agentos-obs.range", state.range);
    render();
  });
  window.addEventListener("hashchange", render);
  render().then(poll);
  setInterval(poll, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
