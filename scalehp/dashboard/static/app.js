// scalehp dashboard: vanilla JS over the read-only JSON API; charts with uPlot.
// Every element is built with textContent (never innerHTML): names, values and error
// texts from the run folders are shown as text, whatever they contain.
"use strict";

const TABS = ["overview", "curves", "scheduler", "params", "trials", "failed", "plan", "sql", "compare"];
const COLORS = {
  best: "#111111", goal: "#d4a106", stop: "#e5484d", pause: "#f5a524", continue: "#3ecf8e", exploit: "#8e4ec6", explore: "#b48ce0",
  completed: "#3b6fe0", stopped: "#e5484d", error: "#7a1f1f", infeasible: "#c2b280", running: "#8a94a6",
};
const state = { runs: [], run: null, tab: "overview", version: null, compare: new Set(), trials: { sort: "best_value", desc: false, q: "", status: "", offset: 0 }, metric: null, busy: false, charts: [] };

// ---------------------------------------------------------------- DOM helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(4) : String(Number(v.toPrecision(6)));
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  const text = await response.text();
  let data;
  try { data = JSON.parse(text); } catch (e) { data = { error: text.slice(0, 300) }; }
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function runPath(view, params) {
  const query = params ? "?" + new URLSearchParams(params).toString() : "";
  return `/api/runs/${encodeURIComponent(state.run)}/${view}${query}`;
}

function showError(message) {
  const box = document.getElementById("error");
  box.hidden = !message;
  box.textContent = message || "";
}

function panel(title, ...children) {
  return el("div", { class: "panel" }, title ? el("h2", { text: title }) : null, ...children);
}

function lineChart(target, title, xs, series, opts) {
  // series: [{label, y, color, width}], all on the x values xs
  const width = Math.max(320, (target.clientWidth || 900) - 30);
  const chart = new uPlot({
    title, width, height: (opts && opts.height) || 260,
    scales: { x: { time: false }, y: { distr: opts && opts.log ? 3 : 1 } },
    axes: [{ label: (opts && opts.xlabel) || "" }, { label: (opts && opts.ylabel) || "", size: 70 }],
    legend: { show: !(opts && opts.noLegend) },
    cursor: { focus: { prox: 16 } },
    focus: { alpha: 0.25 },
    series: [{ label: (opts && opts.xlabel) || "x" }, ...series.map(s => ({
      label: s.label, stroke: s.color, width: s.width || 1, spanGaps: true,
      points: { show: !!(opts && opts.points) }, paths: opts && opts.points ? () => null : undefined,
    }))],
  }, [xs, ...series.map(s => s.y)], target);
  state.charts.push(chart);
  return chart;
}

function logToggle() {
  const box = el("input", { type: "checkbox", onchange: e => { state.logy = e.target.checked; render(); } });
  box.checked = !!state.logy;
  return el("label", {}, box, " log scale");
}

function positive(series) {
  return series.every(s => s.y.every(v => v === null || v > 0));
}

function numbers(values) {
  return values.map(v => (typeof v === "number" ? v : null));
}

// ---------------------------------------------------------------- runs list and header

function renderRuns() {
  const nav = document.getElementById("runs");
  nav.replaceChildren();
  if (!state.runs.length) { nav.append(el("p", { class: "muted", text: "no runs under this root yet" })); return; }
  for (const run of state.runs) {
    const p = run.progress;
    const box = el("input", { type: "checkbox", title: "compare", onclick: e => e.stopPropagation(), onchange: e => {
      if (e.target.checked) state.compare.add(run.run_id); else state.compare.delete(run.run_id);
      if (state.tab === "compare") render();
    } });
    box.checked = state.compare.has(run.run_id);
    const status = p.ended ? "ended" : (p.running ? `${p.running} running` : "waiting");
    nav.append(el("div", { class: "run" + (run.run_id === state.run ? " selected" : ""), onclick: () => go(run.run_id, state.tab) },
      box,
      el("div", {},
        el("div", { class: "name", text: run.experiment ? `${run.experiment} / ${run.run_id}` : run.run_id }),
        el("div", { class: "meta", text: `${p.done}${p.planned ? " / " + p.planned : ""} trials · ${status}` }),
        el("div", { class: "meta", text: run.best ? `best ${run.metric} ${fmt(run.best.value)}` : "no best yet" }))));
  }
}

function renderHead(run) {
  const head = document.getElementById("head");
  head.replaceChildren();
  if (!run) return;
  const p = run.progress;
  head.append(el("h1", { text: run.experiment ? `${run.experiment} — ${run.run_id}` : run.run_id }),
    el("div", {},
      el("span", { class: "badge", text: `${run.metric} (${run.mode})` }),
      el("span", { class: "badge", text: `searcher ${run.searcher}` }),
      el("span", { class: "badge", text: `scheduler ${run.scheduler}` }),
      el("span", { class: "badge", text: `runtime ${run.runtime}` }),
      run.simulated ? el("span", { class: "badge sim", text: "simulated" }) : null));
  const total = Math.max(1, p.planned || (p.done + p.running + p.pending));
  const bar = el("div", { class: "bar", title: "completed / stopped / error / infeasible / running" });
  for (const [key, count] of [["completed", p.by_status.completed || 0], ["stopped", p.by_status.stopped || 0], ["error", p.by_status.error || 0], ["infeasible", p.by_status.infeasible || 0], ["running", p.running]]) {
    const part = el("span");
    part.style.width = `${(100 * count) / total}%`;
    part.style.background = COLORS[key];
    bar.append(part);
  }
  head.append(bar);
  const tabs = document.getElementById("tabs");
  tabs.replaceChildren(...TABS.map(t => el("button", { class: t === state.tab ? "on" : "", role: "tab", text: t, onclick: () => go(state.run, t) })));
}

// ---------------------------------------------------------------- views

async function viewOverview(view, run) {
  const p = run.progress;
  const cards = el("div", { class: "cards" });
  const card = (k, v) => cards.append(el("div", { class: "card" }, el("div", { class: "k", text: k }), el("div", { class: "v", text: v })));
  card("done", `${p.done}${p.planned ? " / " + p.planned : ""}`);
  card("completed", p.by_status.completed || 0);
  card("stopped", p.by_status.stopped || 0);
  card("errors", p.by_status.error || 0);
  if (p.by_status.infeasible) card("infeasible", p.by_status.infeasible);
  card("running", p.running);
  card("pending", p.pending);
  card("trials / min", p.per_minute === null ? "–" : fmt(Number(p.per_minute.toFixed(2))));
  card("eta", p.ended ? "ended" : duration(p.time_left_s !== null && p.eta_s !== null ? Math.min(p.eta_s, p.time_left_s) : p.eta_s));
  if (p.time_left_s !== null) card("time limit left", duration(p.time_left_s));
  if (run.best) card(`best ${run.metric}`, fmt(run.best.value));
  view.append(cards);
  if (p.ended) view.append(el("p", { class: "muted", text: `ended: ${p.ended.reason}` }));
  if (run.best) {
    view.append(panel(`best trial ${run.best.trial_id} (step ${fmt(run.best.step)})`,
      table(["param", "value"], Object.entries(run.best.params).map(([k, v]) => [k, fmt(v)]))));
  }
  const best = await api(runPath("best"));
  const wall = el("div"), steps = el("div");
  view.append(panel("best so far", el("div", { class: "controls" }, logToggle()), wall, steps));
  if (best.wall.x.length) {
    const w = [{ label: `best ${run.metric}`, y: numbers(best.wall.y), color: COLORS.completed, width: 2 }];
    const s = [{ label: `best ${run.metric}`, y: numbers(best.steps.y), color: COLORS.continue, width: 2 }];
    lineChart(wall, "over wall time", best.wall.x, w, { xlabel: "seconds since the first report", log: state.logy && positive(w) });
    lineChart(steps, "over steps run by all trials", best.steps.x, s, { xlabel: "steps", log: state.logy && positive(s) });
  } else wall.append(el("p", { class: "muted", text: "no report yet" }));
}

function curveColor(c) {
  if (c.best) return COLORS.best;
  if (c.decision && COLORS[c.decision]) return COLORS[c.decision];
  return COLORS[c.status] || COLORS.running;
}

async function viewCurves(view, run) {
  const data = await api(runPath("curves", state.metric ? { metric: state.metric } : null));
  const select = el("select", { onchange: e => { state.metric = e.target.value; render(); } },
    ...data.metrics.map(m => { const o = el("option", { value: m, text: m }); o.selected = m === data.metric; return o; }));
  view.append(el("div", { class: "controls" }, el("label", { text: "metric " }), select, logToggle(),
    data.note ? el("span", { class: "note", text: `${data.note}; each curve at most 400 points (downsampled on the server)` }) : null));
  if (!data.curves.length) { view.append(el("p", { class: "muted", text: data.note || "no curves yet" })); return; }
  const counts = {};
  for (const c of data.curves) { const key = c.best ? "best" : (c.decision || c.status); counts[key] = (counts[key] || 0) + 1; }
  view.append(el("div", { class: "key" }, ...Object.entries(counts).map(([k, n]) => {
    const swatch = el("i"); swatch.style.background = COLORS[k] || COLORS.running;
    return el("span", {}, swatch, `${{ continue: "promoted", stop: "stopped at a rung", pause: "paused" }[k] || k} (${n})`);
  })));
  const xs = Array.from(new Set(data.curves.flatMap(c => c.x))).sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const series = data.curves.map(c => {
    const y = new Array(xs.length).fill(null);
    c.x.forEach((x, i) => { y[index.get(x)] = typeof c.y[i] === "number" ? c.y[i] : null; });
    return { label: `${c.trial_id}: ${c.label}`, y, color: curveColor(c), width: c.best ? 2.5 : 1 };
  });
  const target = el("div");
  const hover = el("div", { class: "muted", text: "hover a curve to see its trial and what the scheduler decided; click it to open the trial" });
  view.append(panel(`learning curves: ${data.metric} (${data.shown} shown of ${data.trials} trials)`, hover, target));
  const chart = lineChart(target, "", xs, series, { xlabel: "step", noLegend: true, height: 380, log: state.logy && positive(series) });
  target.addEventListener("click", () => {
    const s = chart.series.findIndex((x, k) => k > 0 && x._focus);
    if (s > 0) { state.trialId = data.curves[s - 1].trial_id; go(state.run, "trials"); }
  });
  target.addEventListener("mousemove", () => {
    const i = chart.cursor.idx, s = chart.series.findIndex((x, k) => k > 0 && x._focus);
    if (s > 0 && i !== null && i !== undefined) hover.textContent = `${chart.series[s].label} — step ${xs[i]}: ${fmt(chart.data[s][i])}`;
  });
}

function table(columns, rows, opts) {
  const head = el("tr", {}, ...columns.map((c, i) => el("th", { text: c, onclick: opts && opts.sort ? () => opts.sort(i) : undefined })));
  const body = rows.map((r, i) => el("tr", { class: opts && opts.open ? "pick" : null, onclick: opts && opts.open ? () => opts.open(i) : undefined }, ...r.map(v => {
    const numeric = typeof v === "number";
    const cell = el("td", { class: numeric ? "num" : "", text: numeric ? fmt(v) : (v === null || v === undefined ? "" : String(v)), title: v === null || v === undefined ? undefined : String(v) });
    if (["completed", "stopped", "error", "infeasible", "running"].includes(v)) cell.classList.add(`status-${v}`);
    return cell;
  })));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function hbars(rows) {
  const max = Math.max(1e-12, ...rows.map(r => r[1]));
  return el("table", {}, el("tbody", {}, ...rows.map(([label, value]) => {
    const bar = el("div", { class: "hbar" }); bar.style.width = `${Math.round((300 * value) / max)}px`;
    return el("tr", {}, el("td", { text: label }), el("td", {}, bar), el("td", { class: "num", text: fmt(value) }));
  })));
}

async function viewScheduler(view, run) {
  const data = await api(runPath("rungs"));
  let shown = false;
  if (data.asha.length) {
    shown = true;
    const cols = ["rung", "trials", "promoted", "stopped", "cutoff_min", "cutoff_median", "cutoff_max", "cutoff_last"];
    view.append(panel("ASHA rungs: trials reached, promoted, stopped, and the cut-off to beat",
      hbars(data.asha.map(r => [`rung ${r.rung}`, r.trials])), table(cols, data.asha.map(r => cols.map(c => r[c])))));
    if (data.cutoffs.length) {
      const target = el("div");
      view.append(panel("cut-off per rung over time", target));
      const xs = Array.from(new Set(data.cutoffs.flatMap(c => c.x))).sort((a, b) => a - b);
      const index = new Map(xs.map((x, i) => [x, i]));
      const palette = ["#3b6fe0", "#e5484d", "#3ecf8e", "#f5a524", "#8e4ec6", "#111"];
      lineChart(target, "", xs, data.cutoffs.map((c, k) => {
        const y = new Array(xs.length).fill(null);
        c.x.forEach((x, i) => { y[index.get(x)] = typeof c.y[i] === "number" ? c.y[i] : null; });
        return { label: `rung ${c.rung}`, y, color: palette[k % palette.length], width: 1.5 };
      }), { xlabel: "seconds since the first decision" });
    }
  }
  if (data.brackets.length) {
    shown = true;
    const cols = ["bracket", "rung", "trials", "paused", "promoted", "stopped", "cutoff"];
    view.append(panel("Hyperband brackets (bracket = halvings it had left)", table(cols, data.brackets.map(r => cols.map(c => r[c])))));
  }
  const pbt = await api(runPath("pbt", state.pbtTrial ? { trial: state.pbtTrial } : null));
  if (pbt.edges.length) { shown = true; view.append(pbtView(pbt)); }
  if (!shown) view.append(el("p", { class: "muted", text: `no scheduler decision recorded yet (scheduler ${run.scheduler})` }));
}

function pbtView(data) {
  const NS = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v)); return n; };
  const trials = Array.from(new Set(data.edges.flatMap(e => [e.trial_id, e.donor]).concat(data.lineage.map(l => l.trial_id)))).sort();
  const maxStep = Math.max(1, ...data.edges.map(e => e.step), ...data.schedule.map(s => s.step));
  const row = 22, left = 130, width = 960, height = trials.length * row + 36;
  const y = t => 14 + trials.indexOf(t) * row, x = s => left + ((width - left - 20) * s) / maxStep;
  const svg = svgEl("svg", { class: "lineage", viewBox: `0 0 ${width} ${height}`, role: "img" });
  for (const t of trials) {
    svg.append(svgEl("line", { x1: x(0), x2: x(maxStep), y1: y(t), y2: y(t), stroke: "#dde1e7", "stroke-width": 1 }));
    const label = svgEl("text", { x: 4, y: y(t) + 3, class: "pick" }); label.textContent = t;
    label.addEventListener("click", () => { state.pbtTrial = t; render(); });
    svg.append(label);
  }
  for (const seg of data.lineage) {  // the best trial's history: whose training each stretch of steps was
    const to = seg.to_step === null || seg.to_step === undefined ? maxStep : seg.to_step;
    svg.append(svgEl("line", { x1: x(seg.from_step), x2: x(to), y1: y(seg.trial_id), y2: y(seg.trial_id), stroke: "#111", "stroke-width": 3 }));
  }
  for (const e of data.edges) {
    const line = svgEl("line", { x1: x(e.donor_step), y1: y(e.donor), x2: x(e.step), y2: y(e.trial_id), stroke: COLORS.exploit, "stroke-width": 1.2 });
    const dot = svgEl("circle", { cx: x(e.step), cy: y(e.trial_id), r: 3, fill: COLORS.exploit });
    const tip = svgEl("title", {}); tip.textContent = `${e.trial_id} copied ${e.donor}'s checkpoint of step ${e.donor_step} at its step ${e.step}; then trained with ${JSON.stringify(e.params)}`;
    dot.append(tip); svg.append(line, dot);
  }
  for (const step of [0, Math.round(maxStep / 2), maxStep]) {
    const tick = svgEl("text", { x: x(step) - 4, y: height - 6 }); tick.textContent = String(step); svg.append(tick);
  }
  const box = panel(`PBT lineage: each exploit draws donor → trial at a step (hover a dot); the dark line is ${data.trial_id}'s history (click a trial to follow another)`, svg);
  if (data.schedule.length) {
    const names = Object.keys(data.schedule[0].params);
    const stretches = [];
    for (const s of data.schedule) {
      const last = stretches[stretches.length - 1];
      const key = JSON.stringify([s.trial_id, names.map(n => s.params[n])]);
      if (last && last.key === key) last.to = s.step; else stretches.push({ key, from: s.step, to: s.step, trial: s.trial_id, params: s.params });
    }
    box.append(el("h2", { text: `${data.trial_id}'s params over its whole history` }),
      table(["steps", "trained as", ...names], stretches.map(s => [s.from === s.to ? String(s.from) : `${s.from}–${s.to}`, s.trial, ...names.map(n => s.params[n])])));
  }
  return box;
}

async function viewParams(view, run) {
  const [parallel, importance, pareto] = await Promise.all([api(runPath("parallel")), api(runPath("importance")), api(runPath("pareto"))]);
  if (parallel.axes.length > 1) {
    const canvas = el("canvas", { class: "pc" });
    view.append(panel("parallel coordinates" + (parallel.note ? ` — ${parallel.note}` : ""), canvas,
      el("p", { class: "muted", text: `darker lines are better ${run.metric}` })));
    drawParallel(canvas, parallel);
  } else view.append(panel("parallel coordinates", el("p", { class: "muted", text: "no ended trial with varying params yet" })));
  view.append(panel("param importance" + (importance.note ? ` — ${importance.note}` : ""),
    importance.rows.length ? hbars(importance.rows.map(r => [r.param, typeof r.importance === "number" ? r.importance : 0])) : el("p", { class: "muted", text: "not enough trials yet" })));
  if (pareto.objectives.length > 1) {
    const target = el("div");
    view.append(panel(`Pareto front: ${pareto.objectives.map(o => `${o.name} (${o.mode})`).join(", ")}` + (pareto.note ? ` — ${pareto.note}` : ""), target,
      table(["trial", ...pareto.objectives.map(o => o.name)], pareto.front.map(f => [f.trial_id, ...pareto.objectives.map(o => f[o.name])]))));
    if (pareto.points.x) {
      const order = pareto.points.x.map((v, i) => i).filter(i => typeof pareto.points.x[i] === "number").sort((a, b) => pareto.points.x[a] - pareto.points.x[b]);
      lineChart(target, "", order.map(i => pareto.points.x[i]), [{ label: pareto.objectives[1].name, y: order.map(i => numbers([pareto.points.y[i]])[0]), color: COLORS.completed }],
        { points: true, xlabel: pareto.objectives[0].name });
    }
  }
}

function drawParallel(canvas, data) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 900, height = 320;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const axes = data.axes, n = axes[0].values.length, pad = 40;
  const xAt = i => pad + ((width - 2 * pad) * i) / Math.max(1, axes.length - 1);
  const scaled = axes.map(a => {
    if (a.kind === "choice") {
      const labels = Array.from(new Set(a.values.map(String))).sort();
      return { labels, at: v => labels.length < 2 ? 0.5 : labels.indexOf(String(v)) / (labels.length - 1) };
    }
    const nums = a.values.filter(v => typeof v === "number");
    let lo = Math.min(...nums), hi = Math.max(...nums);
    const log = a.log && lo > 0;
    const f = v => (log ? Math.log10(v) : v);
    lo = f(lo); hi = f(hi);
    return { lo: nums.length ? Math.min(...nums) : 0, hi: nums.length ? Math.max(...nums) : 0, log, at: v => (typeof v !== "number" ? null : hi === lo ? 0.5 : (f(v) - lo) / (hi - lo)) };
  });
  const metric = scaled[scaled.length - 1], better = data.mode === "min";
  for (let r = n - 1; r >= 0; r--) {
    const q = metric.at(axes[axes.length - 1].values[r]);
    const goodness = q === null ? 0 : (better ? 1 - q : q);
    ctx.strokeStyle = `rgba(59, 111, 224, ${0.08 + 0.6 * goodness})`;
    ctx.beginPath();
    let drawing = false;
    axes.forEach((a, i) => {
      const p = scaled[i].at(a.values[r]);
      if (p === null) { drawing = false; return; }
      const y = height - 30 - (height - 60) * p;
      if (drawing) ctx.lineTo(xAt(i), y); else { ctx.moveTo(xAt(i), y); drawing = true; }
    });
    ctx.stroke();
  }
  ctx.fillStyle = "#1d2330"; ctx.font = "11px system-ui"; ctx.textAlign = "center";
  axes.forEach((a, i) => {
    ctx.strokeStyle = "#8a94a6"; ctx.beginPath(); ctx.moveTo(xAt(i), 30); ctx.lineTo(xAt(i), height - 30); ctx.stroke();
    ctx.fillText(a.name + (scaled[i].log ? " (log)" : ""), xAt(i), 16);
    if (scaled[i].labels) scaled[i].labels.forEach((l, k) => ctx.fillText(l, xAt(i), height - 30 - (height - 60) * scaled[i].at(l) + 4));
    else { ctx.fillText(fmt(scaled[i].hi), xAt(i), 28 - 2); ctx.fillText(fmt(scaled[i].lo), xAt(i), height - 14); }
  });
}

async function viewTrials(view, run) {
  const t = state.trials;
  const data = await api(runPath("trials", { sort: t.sort, desc: t.desc ? "1" : "0", q: t.q, status: t.status, offset: t.offset, limit: 100 }));
  const search = el("input", { type: "search", placeholder: "filter: id, error, decision, choice", value: t.q });
  search.addEventListener("change", e => { t.q = e.target.value; t.offset = 0; render(); });
  const status = el("select", { onchange: e => { t.status = e.target.value; t.offset = 0; render(); } },
    ...["", "completed", "stopped", "error", "infeasible", "running"].map(s => { const o = el("option", { value: s, text: s || "any status" }); o.selected = s === t.status; return o; }));
  const page = (d) => () => { t.offset = Math.max(0, t.offset + d); render(); };
  view.append(el("div", { class: "controls" }, search, status,
    el("button", { text: "◀", onclick: page(-100), disabled: t.offset === 0 ? "" : null }),
    el("span", { class: "muted", text: `${data.total ? t.offset + 1 : 0}–${Math.min(t.offset + 100, data.total)} of ${data.total} (sorted by ${data.names[t.sort] || t.sort}${t.desc ? ", descending" : ""}; click a column to sort)` }),
    el("button", { text: "▶", onclick: page(100), disabled: t.offset + 100 >= data.total ? "" : null })));
  const sort = i => { const c = data.columns[i]; if (t.sort === c) t.desc = !t.desc; else { t.sort = c; t.desc = false; } t.offset = 0; render(); };
  const open = i => { state.trialId = data.rows[i][0]; render(); };
  if (state.trialId) view.append(await trialPanel(state.trialId));
  view.append(panel(null, table(data.columns.map(c => data.names[c]), data.rows, { sort, open }),
    el("p", { class: "muted", text: "click a row to see that trial" })));
}

async function trialPanel(trialId) {
  let data;
  try { data = await api(runPath("trial", { id: trialId })); } catch (e) { state.trialId = null; return el("div", { class: "error", text: e.message }); }
  const close = el("button", { text: "close", onclick: () => { state.trialId = null; render(); } });
  const box = panel(`trial ${data.trial_id} — ${data.status}`, el("div", { class: "controls" }, close));
  box.append(table(["param", "value"], Object.entries(data.params).map(([k, v]) => [k, fmt(v)])));
  const names = Object.keys(data.curves);
  const palette = ["#3b6fe0", "#e5484d", "#3ecf8e", "#f5a524", "#8e4ec6", "#111"];
  for (const [k, name] of names.entries()) {
    const target = el("div");
    box.append(target);
    const c = data.curves[name];
    lineChart(target, name, c.x, [{ label: name, y: numbers(c.y), color: palette[k % palette.length], width: 1.5 }], { xlabel: "step", height: 200 });
  }
  if (data.events.rows.length) box.append(el("h2", { text: "what the scheduler decided about it" }), table(data.events.columns, data.events.rows));
  if (data.row.error) box.append(el("pre", { text: data.row.error }));
  return box;
}

async function viewFailed(view) {
  const rows = await api(runPath("failed"));
  if (!rows.length) { view.append(el("p", { class: "muted", text: "no failed trial" })); return; }
  for (const r of rows) {
    view.append(panel(`${r.trial_id} — ${r.retries || 0} retries${r.node ? " — node " + r.node : ""}`,
      el("div", { class: "muted", text: JSON.stringify(r.params) }),
      el("pre", { text: r.error || "(no error text)" })));
  }
}

async function viewPlan(view) {
  const plan = await api(runPath("plan"));
  view.append(panel("plan.json", el("pre", { text: JSON.stringify(plan, null, 2) })));
}

function viewSql(view) {
  const box = el("textarea", { spellcheck: "false" });
  box.value = state.sql || `SELECT status, count(*) AS trials, min(best_value) AS best FROM trials WHERE run_id = '${state.run ? state.run.replace(/'/g, "''") : ""}' GROUP BY 1`;
  const out = el("div");
  const go = async () => {
    state.sql = box.value;
    out.replaceChildren(el("p", { class: "muted", text: "running…" }));
    try {
      const data = await api(`/api/sql?${new URLSearchParams({ q: box.value })}`);
      out.replaceChildren(el("p", { class: "muted", text: `${data.total} rows${data.total > data.rows.length ? ", first " + data.rows.length + " shown" : ""}` }), table(data.columns, data.rows));
    } catch (e) { out.replaceChildren(el("div", { class: "error", text: e.message })); }
  };
  view.append(panel("SQL over the views trials, reports, events and runs (read-only, as scalehp sql)", box,
    el("div", { class: "controls" }, el("button", { text: "run", onclick: go })), out));
}

async function viewCompare(view) {
  const chosen = state.runs.filter(r => state.compare.has(r.run_id));
  if (chosen.length < 1) { view.append(el("p", { class: "muted", text: "tick runs in the list on the left to compare them" })); return; }
  const cols = ["run", "experiment", "searcher", "scheduler", "done", "errors", "best", "best trial"];
  view.append(panel("runs side by side", table(cols, chosen.map(r => [r.run_id, r.experiment, r.searcher, r.scheduler, r.progress.done, r.progress.by_status.error || 0, r.best ? r.best.value : null, r.best ? r.best.trial_id : null]))));
  const curves = await Promise.all(chosen.map(r => api(`/api/runs/${encodeURIComponent(r.run_id)}/best`)));
  const xs = Array.from(new Set(curves.flatMap(c => c.wall.x))).sort((a, b) => a - b);
  if (!xs.length) return;
  const index = new Map(xs.map((x, i) => [x, i]));
  const palette = ["#3b6fe0", "#e5484d", "#3ecf8e", "#f5a524", "#8e4ec6", "#111"];
  const target = el("div");
  view.append(panel("best so far over wall time", target));
  lineChart(target, "", xs, curves.map((c, k) => {
    const y = new Array(xs.length).fill(null);
    c.wall.x.forEach((x, i) => { y[index.get(x)] = typeof c.wall.y[i] === "number" ? c.wall.y[i] : null; });
    return { label: chosen[k].run_id, y, color: palette[k % palette.length], width: 2 };
  }), { xlabel: "seconds since each run's first report" });
}

// ---------------------------------------------------------------- routing and live refresh

function go(run, tab) {
  const params = new URLSearchParams({ run: run || "", tab: tab || "overview" });
  if (location.hash.slice(1) === params.toString()) render(); else location.hash = params.toString();
}

function fromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const run = params.get("run");
  if (run && run !== state.run) { state.trials.offset = 0; state.metric = null; state.pbtTrial = null; state.trialId = null; }
  state.run = run || (state.runs[0] && state.runs[0].run_id) || null;
  state.tab = TABS.includes(params.get("tab")) ? params.get("tab") : "overview";
}

window.scalehpRenders = [];  // {tab, start, end} of each render (ms since the page opened): what the benchmark reads

async function render() {
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  const started = performance.now();
  try {
    do {
      state.again = false;
      state.runs = await api("/api/runs");
      fromHash();
      renderRuns();
      const run = state.runs.find(r => r.run_id === state.run);
      renderHead(run);
      const view = el("section", { id: "view" });
      if (run || state.tab === "sql" || state.tab === "compare") {
        const draw = { overview: viewOverview, curves: viewCurves, scheduler: viewScheduler, params: viewParams, trials: viewTrials, failed: viewFailed, plan: viewPlan, sql: viewSql, compare: viewCompare }[state.tab];
        const old = document.getElementById("view");
        const scroll = window.scrollY;
        view.hidden = true;
        old.after(view);
        const charts = state.charts; state.charts = [];
        try {
          view.hidden = false;
          await draw(view, run);
          old.remove();
          for (const chart of charts) chart.destroy();
        } catch (e) {
          view.remove();
          state.charts.forEach(c => c.destroy());
          state.charts = charts;
          throw e;
        }
        window.scrollTo(0, scroll);
      }
      showError(null);
      window.scalehpRenders.push({ tab: state.tab, start: started, end: performance.now() });
    } while (state.again);
  } catch (e) {
    showError(e.message);
  } finally {
    state.busy = false;
  }
}

async function poll() {
  const live = document.getElementById("live");
  try {
    const data = await api("/api/version");
    live.className = "live on";
    live.textContent = `live · checked ${new Date().toLocaleTimeString()}`;
    if (data.version !== state.version) {
      const first = state.version === null;
      state.version = data.version;
      if (!first && state.tab !== "sql") await render();
    }
  } catch (e) {
    live.className = "live off";
    live.textContent = `disconnected (${e.message})`;
  }
  setTimeout(poll, 1000);
}

window.addEventListener("hashchange", render);
render().then(poll);
