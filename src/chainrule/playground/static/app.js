// chainrule playground: the page. Plain JavaScript, no libraries, nothing fetched from outside.
// The server (chainrule.playground.server) trains; this file draws what its frames say.
// Every number shown goes through formatNumber (format.js, loaded first).
"use strict";

const COLORS = { pos: "#0877bd", neg: "#f59322", zero: "#bbbbbb" };
const CLASS_RGB = [[245, 147, 34], [8, 119, 189], [44, 162, 95]];
const WHITE = [255, 255, 255];
const FIELDS = ["dataset", "classes", "noise", "train_ratio", "samples", "seed", "features", "layers",
  "activations", "loss", "optimizer", "lr", "batch_size", "regularization", "reg_rate", "speed"];
const LIST_FIELDS = new Set(["features", "layers", "activations"]);
// the server sends the activations it offers (chainrule's registry) with each state
let ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear"];
const NODE = 36, ROW = 62;

const S = { state: null, frame: null, mode: "weights", walk: null, walkPos: -1, hoverEdge: null,
  hoverUnit: null, pending: null, drawing: false, geometry: null, history: [] };
const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";

// --- talking to the server ----------------------------------------------------------------
async function api(path, body, contentType) {
  const opts = { method: body === undefined ? "GET" : "POST", headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = contentType || "application/json";
    opts.body = contentType ? body : JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
  if (!res.ok) throw new Error(data.error || `${res.status}`);
  return data;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function run(promise) {
  try {
    const result = await promise;
    showError(S.frame && S.frame.error);
    return result;
  } catch (err) {
    showError(err.message);
    return null;
  }
}

async function configure(update) {
  const state = await run(api("/api/config", update));
  if (state) applyState(state);
}

// --- the URL holds the configuration ------------------------------------------------------
function encodeConfig(cfg) {
  const parts = FIELDS.map((k) => `${k}=${encodeURIComponent(LIST_FIELDS.has(k) ? cfg[k].join(",") : cfg[k])}`);
  return "#" + parts.join("&");
}

function decodeConfig(hash) {
  const out = {};
  for (const part of hash.replace(/^#/, "").split("&")) {
    const [k, raw] = part.split("=");
    if (!FIELDS.includes(k) || raw === undefined) continue;
    const v = decodeURIComponent(raw);
    if (LIST_FIELDS.has(k)) {
      const items = v === "" ? [] : v.split(",");
      out[k] = k === "layers" ? items.map(Number) : items;
    } else if (/^-?[0-9.e-]+$/.test(v)) out[k] = Number(v);
    else out[k] = v;
  }
  return out;
}

// --- state: configuration, layout, data ---------------------------------------------------
function applyState(state) {
  S.state = state;
  if (state.choices) ACTIVATIONS = state.choices.activations;
  S.history = state.history.slice();
  exitWalk();
  const cfg = state.config;
  history.replaceState(null, "", encodeConfig(cfg));
  for (const el of document.querySelectorAll("[data-field]")) {
    const v = cfg[el.dataset.field];
    if (el.tagName === "SELECT" && ![...el.options].some((o) => (o.value || o.text) == String(v))) {
      el.add(new Option(String(v), String(v)));
    }
    el.value = String(v);
    const out = $(el.id + "-out");
    if (out) out.textContent = String(v);
  }
  for (const b of document.querySelectorAll("#datasets button")) {
    b.setAttribute("aria-pressed", String(b.dataset.dataset === cfg.dataset));
  }
  $("dataset-csv").disabled = !state.upload;
  if (state.upload) {
    $("dataset-csv").textContent = `uploaded: ${state.upload.filename}`;
  }
  for (const b of document.querySelectorAll("#features button")) {
    b.setAttribute("aria-pressed", String(cfg.features.includes(b.dataset.feature)));
  }
  const regression = state.topology.task === "regression";
  $("classes").disabled = regression || cfg.dataset === "xor" || cfg.dataset === "csv";
  $("loss").querySelector("option[value=crossentropy]").disabled = regression;
  const n = cfg.layers.length;
  $("layer-count").textContent = `${n} hidden layer${n === 1 ? "" : "s"}`;
  $("add-layer").disabled = n >= 6;
  $("remove-layer").disabled = n === 0;
  $("bp-index").max = String(state.data.train.length - 1);
  buildNetwork(state.topology);
  drawLegend(state.topology);
  S.frame = null;
  onFrame(state.frame);
  showError(state.error);
}

// --- the network as SVG ------------------------------------------------------------------------
function el(tag, attrs, parent) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function buildNetwork(topo) {
  const wrap = $("net-wrap"), svg = $("net");
  for (const node of wrap.querySelectorAll(".unit-map, .layer-ctl")) node.remove();
  svg.textContent = "";
  const sizes = topo.sizes, cols = sizes.length;
  const width = Math.max(wrap.clientWidth, 480);
  const top = 70, height = top + Math.max(...sizes) * ROW + 20;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("height", String(height));
  const x = (c) => 50 + c * (width - 100) / Math.max(cols - 1, 1);
  const y = (c, j) => top + NODE / 2 + j * ROW + (Math.max(...sizes) - sizes[c]) * ROW / 2;
  const geometry = { x, y, edges: new Map(), nodes: new Map(), maps: [] };
  const edgeLayer = el("g", { id: "edges" }, svg), hitLayer = el("g", { id: "hits" }, svg);
  const nodeLayer = el("g", { id: "nodes" }, svg);
  for (let level = 0; level < cols - 1; level++) {
    for (let i = 0; i < sizes[level]; i++) {
      for (let j = 0; j < sizes[level + 1]; j++) {
        const x1 = x(level) + NODE / 2, y1 = y(level, i), x2 = x(level + 1) - NODE / 2, y2 = y(level + 1, j);
        const mx = (x1 + x2) / 2;
        const d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
        const key = `${level},${i},${j}`;
        const name = topo.names.weights[level][i][j];
        const attrs = { d, "data-key": key, "data-name": name, "data-level": level, "data-i": i, "data-j": j };
        const edge = el("path", { ...attrs, class: "edge", stroke: COLORS.zero, "stroke-width": 1 }, edgeLayer);
        const hit = el("path", { ...attrs, class: "hit" }, hitLayer);
        hit.addEventListener("mouseenter", () => { S.hoverEdge = key; S.hoverUnit = null; showHover(); });
        geometry.edges.set(key, edge);
      }
    }
  }
  let mapIndex = 0;
  for (let c = 0; c < cols; c++) {
    const last = c === cols - 1;
    const title = c === 0 ? "input" : last ? "output" : `layer ${c}`;
    el("text", { x: x(c), y: 12, "text-anchor": "middle", class: "col-title" }, svg).textContent = title;
    for (let j = 0; j < sizes[c]; j++) {
      const key = `${c},${j}`;
      const rect = el("rect", { x: x(c) - NODE / 2, y: y(c, j) - NODE / 2, width: NODE, height: NODE, rx: 3,
        class: "node" + (last ? " output" : ""), "data-key": key, "data-name": topo.names.units[c][j] }, nodeLayer);
      rect.addEventListener("mouseenter", () => { S.hoverUnit = key; S.hoverEdge = null; showHover(); });
      const label = c === 0 ? topo.features[j].label : topo.names.units[c][j];
      el("text", { x: x(c) + (c === 0 ? -NODE / 2 - 4 : 0), y: y(c, j) + (c === 0 ? 4 : NODE / 2 + 11),
        "text-anchor": c === 0 ? "end" : "middle" }, nodeLayer).textContent = label;
      const below = c === 0 ? { x: x(c), y: y(c, j) + NODE / 2 + 11 } : { x: x(c), y: y(c, j) + NODE / 2 + 23 };
      const value = el("text", { ...below, "text-anchor": "middle", class: "unit-value" }, nodeLayer);
      const inner = last ? el("text", { x: x(c), y: y(c, j) + 3, "text-anchor": "middle", class: "unit-value" },
        nodeLayer) : null;
      geometry.nodes.set(key, { rect, value, inner });
      if (!last) {
        const canvas = document.createElement("canvas");
        canvas.className = "unit-map";
        canvas.width = canvas.height = 20;
        canvas.style.left = `${x(c) - NODE / 2 + 1}px`;
        canvas.style.top = `${y(c, j) - NODE / 2 + 1}px`;
        canvas.style.width = canvas.style.height = `${NODE - 2}px`;
        wrap.appendChild(canvas);
        geometry.maps[mapIndex++] = canvas;
      }
    }
    if (c > 0 && !last) addLayerControls(wrap, c, x(c));
  }
  S.geometry = geometry;
}

function addLayerControls(wrap, c, cx) {
  const cfg = S.state.config;
  const box = document.createElement("div");
  box.className = "layer-ctl";
  box.style.left = `${cx - 45}px`;
  box.style.top = "18px";
  box.style.width = "90px";
  const row = document.createElement("div");
  const plus = document.createElement("button"), minus = document.createElement("button");
  plus.textContent = "+"; minus.textContent = "−";
  plus.title = "add a unit"; minus.title = "remove a unit";
  plus.disabled = cfg.layers[c - 1] >= 8; minus.disabled = cfg.layers[c - 1] <= 1;
  const change = (delta) => {
    const layers = cfg.layers.slice();
    layers[c - 1] += delta;
    configure({ layers, activations: cfg.activations });
  };
  plus.addEventListener("click", () => change(1));
  minus.addEventListener("click", () => change(-1));
  row.append(plus, ` ${cfg.layers[c - 1]} `, minus);
  const select = document.createElement("select");
  select.className = "activation";
  select.dataset.layer = String(c - 1);
  for (const a of ACTIVATIONS) select.add(new Option(a, a));
  select.value = cfg.activations[c - 1];
  select.addEventListener("change", () => {
    const activations = cfg.activations.slice();
    activations[c - 1] = select.value;
    configure({ activations });
  });
  box.append(row, select);
  wrap.appendChild(box);
}

// --- frames ----------------------------------------------------------------------------------
function onFrame(frame) {
  if (!S.state) return;
  if (frame.generation !== S.state.generation) { loadState(); return; }
  if (S.frame && frame.step < S.frame.step && frame.generation === S.frame.generation) return;
  S.frame = frame;
  for (const point of frame.history || []) {
    const last = S.history[S.history.length - 1];
    if (!last || point[0] > last[0]) S.history.push(point);
  }
  if (!S.drawing) {
    S.drawing = true;
    requestAnimationFrame(() => { S.drawing = false; draw(); });
  }
}

function draw() {
  const f = S.frame;
  if (!f) return;
  const counter = $("step-count");
  counter.textContent = String(f.step);
  counter.dataset.step = String(f.step);
  $("epoch").textContent = String(f.epoch);
  $("play").textContent = f.playing ? "❚❚" : "▶";
  $("play").setAttribute("aria-pressed", String(f.playing));
  $("loss-train").textContent = formatNumber(f.loss.train, 4);
  $("loss-test").textContent = formatNumber(f.loss.test, 4);
  $("acc-train").textContent = f.accuracy.train == null ? "" : `accuracy ${formatNumber(100 * f.accuracy.train, 3)}%`;
  $("acc-test").textContent = f.accuracy.test == null ? "" : `accuracy ${formatNumber(100 * f.accuracy.test, 3)}%`;
  if (f.error) showError(f.error);
  drawEdges(f);
  drawUnits(f);
  drawOutput(f);
  drawCurve();
  showHover();
}

function colorOf(v) { return v > 0 ? COLORS.pos : v < 0 ? COLORS.neg : COLORS.zero; }

function drawEdges(f) {
  const g = S.geometry;
  let gmax = 0;
  if (f.grads) for (const layer of f.grads) for (const row of layer) for (const v of row) gmax = Math.max(gmax, Math.abs(v));
  const walkEdges = S.walk ? S.walk.edges : null;
  for (const [key, edge] of g.edges) {
    const [level, i, j] = key.split(",").map(Number);
    const w = f.weights[level][i][j];
    const grad = f.grads ? f.grads[level][i][j] : null;
    edge.setAttribute("data-weight", String(w));
    edge.setAttribute("data-grad", grad === null ? "" : String(grad));
    if (walkEdges && walkEdges[key]) edge.setAttribute("data-sample-grad", String(walkEdges[key].value));
    let color, width;
    if (S.mode === "gradients") {
      color = grad === null ? COLORS.zero : colorOf(grad);
      width = grad === null || gmax === 0 ? 0.6 : 0.6 + 7 * Math.abs(grad) / gmax;
    } else {
      color = colorOf(w);
      width = Math.min(0.6 + 2.2 * Math.abs(w), 9);
    }
    edge.setAttribute("stroke", color);
    edge.setAttribute("stroke-width", width.toFixed(2));
  }
}

function drawUnits(f) {
  const g = S.geometry;
  for (const [key, node] of g.nodes) {
    const [c, j] = key.split(",").map(Number);
    const act = f.units ? f.units.act[c][j] : null, delta = f.units ? f.units.delta[c][j] : null;
    node.rect.setAttribute("data-act", act === null ? "" : String(act));
    node.rect.setAttribute("data-delta", delta === null ? "" : String(delta));
    if (c > 0) {
      node.rect.setAttribute("data-bias", String(f.biases[c - 1][j]));
      node.rect.setAttribute("data-bias-grad", f.bias_grads ? String(f.bias_grads[c - 1][j]) : "");
    }
    const walked = walkUnit(key);
    // the unit's numbers under it: the walked sample's out and δ, else the last mini-batch's
    // mean activation and summed δ
    if (walked) {
      node.value.textContent = `out ${formatNumber(walked.out, 3)}` + (c > 0 ? ` δ ${formatNumber(walked.delta, 3)}` : "");
    }
    else node.value.textContent = act === null ? "" : `a ${formatNumber(act, 2)} δ ${formatNumber(delta, 2)}`;
    if (node.inner) node.inner.textContent = walked ? formatNumber(walked.out, 3) : act === null ? "" : formatNumber(act, 3);
  }
  const maps = f.unit_maps;
  maps.maps.forEach((m, k) => {
    const canvas = g.maps[k];
    if (!canvas) return;
    const codes = atob(m.data), size = maps.size;
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(size, size);
    const scale = Math.max(Math.abs(m.lo), Math.abs(m.hi)) || 1;
    for (let p = 0; p < size * size; p++) {
      const v = m.lo + codes.charCodeAt(p) / 255 * (m.hi - m.lo);
      setPixel(img.data, p, diverging(v / scale), 255);
    }
    ctx.putImageData(img, 0, 0);
  });
}

function mix(a, b, t) { return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * t)); }
function diverging(t) {
  t = Math.max(-1, Math.min(1, t));
  return t >= 0 ? mix(WHITE, CLASS_RGB[1], t) : mix(WHITE, CLASS_RGB[0], -t);
}
function setPixel(data, p, rgb, alpha) {
  data[4 * p] = rgb[0]; data[4 * p + 1] = rgb[1]; data[4 * p + 2] = rgb[2]; data[4 * p + 3] = alpha;
}

function decodeF64(b64) {
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
  return new Float64Array(bytes.buffer);
}

// The colour of the network's output at one point: the class colours faded by confidence, or
// the value on the orange-white-blue scale for a regression.
function outputColor(values) {
  const topo = S.state.topology;
  if (topo.task === "regression") return diverging(values[0]);
  let probs;
  if (topo.output === "softmax") {
    const m = Math.max(...values), e = values.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
    probs = e.map((v) => v / s);
  } else if (values.length === 1) probs = [1 - values[0], values[0]];
  else { const s = values.reduce((a, b) => a + b, 0) || 1; probs = values.map((v) => v / s); }
  if (probs.length === 2) return diverging(2 * probs[1] - 1);
  const best = probs.indexOf(Math.max(...probs));
  const confidence = (probs[best] - 1 / probs.length) / (1 - 1 / probs.length);
  return mix(WHITE, CLASS_RGB[best], Math.max(0, confidence));
}

function pointColor(label) {
  const topo = S.state.topology;
  if (topo.task === "regression") return diverging(label);
  return CLASS_RGB[label] || [0, 0, 0];
}

function drawOutput(f) {
  const canvas = $("output"), ctx = canvas.getContext("2d");
  const h = f.heatmap, size = h.size, k = h.outputs, values = decodeF64(h.data);
  const off = document.createElement("canvas");
  off.width = off.height = size;
  const octx = off.getContext("2d"), img = octx.createImageData(size, size);
  for (let p = 0; p < size * size; p++) {
    setPixel(img.data, p, outputColor(Array.from(values.subarray(p * k, p * k + k))), 255);
  }
  octx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  const [xmin, xmax, ymin, ymax] = h.extent;
  const px = (x) => (x - xmin) / (xmax - xmin) * canvas.width;
  const py = (y) => (ymax - y) / (ymax - ymin) * canvas.height;
  const sets = [["train", "#fff"]];
  if ($("show-test").checked) sets.push(["test", "#000"]);
  for (const [split, stroke] of sets) {
    for (const [x, y, label] of S.state.data[split]) {
      const c = pointColor(label);
      ctx.beginPath();
      ctx.arc(px(x), py(y), 3, 0, 2 * Math.PI);
      ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
      ctx.fill();
      ctx.lineWidth = 1;
      ctx.strokeStyle = stroke;
      ctx.stroke();
    }
  }
  if (S.walk) {
    const [x, y] = S.walk.sample.point;
    ctx.beginPath();
    ctx.arc(px(x), py(y), 7, 0, 2 * Math.PI);
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#000";
    ctx.stroke();
  }
}

// Tick values for an axis from lo to hi: multiples of 1, 2 or 5 × 10^k, about `count` of them.
function ticks(lo, hi, count) {
  const span = hi - lo || 1, raw = span / count, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

// The loss curve: training (dark) and test (grey) loss against epochs, with axes.
const CURVE = { left: 50, right: 8, top: 16, bottom: 30, train: "#183d4e", test: "#999" };
function drawCurve() {
  const canvas = $("loss-curve"), ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, m = CURVE;
  const x0 = m.left, x1 = W - m.right, y0 = H - m.bottom, y1 = m.top;
  ctx.clearRect(0, 0, W, H);
  const pts = S.history;
  const epochOf = (p) => (p[3] === undefined ? p[0] : p[3]);
  const maxEpoch = pts.length ? Math.max(epochOf(pts[pts.length - 1]), 1e-9) : 1;
  let maxLoss = 0;
  for (const p of pts) maxLoss = Math.max(maxLoss, p[1] || 0, p[2] || 0);
  maxLoss = maxLoss || 1;
  const sx = (e) => x0 + e / maxEpoch * (x1 - x0), sy = (v) => y0 - v / maxLoss * (y0 - y1);
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#666";
  ctx.strokeStyle = "#ddd";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of ticks(0, maxLoss, 3)) {  // y ticks and grid lines
    const y = Math.round(sy(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x0, y); ctx.lineTo(x1, y); ctx.stroke();
    ctx.fillText(formatNumber(v, 2), x0 - 4, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const e of ticks(0, maxEpoch, 4)) {  // x ticks
    const x = Math.round(sx(e)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, y0); ctx.lineTo(x, y0 + 3); ctx.strokeStyle = "#666"; ctx.stroke();
    ctx.fillText(formatNumber(e, 2), x, y0 + 4);
  }
  ctx.strokeStyle = "#666";  // the axes
  ctx.beginPath(); ctx.moveTo(x0 + 0.5, y1); ctx.lineTo(x0 + 0.5, y0 + 0.5); ctx.lineTo(x1, y0 + 0.5); ctx.stroke();
  ctx.fillText("epoch", (x0 + x1) / 2, H - 12);
  ctx.save();
  ctx.translate(9, (y0 + y1) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText("loss", 0, 0);
  ctx.restore();
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  let lx = x1 - 104;  // the key, top right
  for (const [name, color] of [["training", m.train], ["test", m.test]]) {
    ctx.fillStyle = color;
    ctx.fillRect(lx, 4, 12, 3);
    ctx.fillStyle = "#666";
    ctx.fillText(name, lx + 15, 6);
    lx += 62;
  }
  if (pts.length < 2) return;
  for (const [col, color] of [[2, m.test], [1, m.train]]) {
    ctx.beginPath();
    let started = false;
    for (const p of pts) {
      if (p[col] === null) continue;
      const x = sx(epochOf(p)), y = sy(p[col]);
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    }
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }
}

// The colour key under the output: classes (or the regression scale) and what the picture is.
function drawLegend(topo) {
  const legend = $("legend");
  legend.textContent = "";
  const head = document.createElement("b");
  head.textContent = "Output";
  legend.append(head);
  if (topo.task === "regression") {
    const ramp = document.createElement("i");
    ramp.className = "ramp";
    legend.append(" the network's output (background) and the targets (dots): orange −1, white 0,",
      " blue +1", ramp);
    return;
  }
  legend.append(" background: the predicted class, paler where the network is less sure; dots: the data.");
  legend.append(document.createElement("br"));
  topo.class_names.forEach((name, k) => {
    const dot = document.createElement("i");
    dot.className = `dot c${k}`;
    legend.append(dot, `class ${name}`);
  });
}

// The edge key follows the mode: weights or gradients.
function drawEdgeLegend() {
  const grads = S.mode === "gradients";
  $("legend-pos").textContent = grads ? "dL/dw > 0" : "positive weight";
  $("legend-neg").textContent = grads ? "dL/dw < 0" : "negative weight";
  $("legend-width").textContent = grads ? "· thicker: larger |dL/dw| (relative to the largest)" : "· thicker: larger |w|";
}

// --- hovering: the numbers of one edge or unit ---------------------------------------------------
function setValue(id, value) {
  const node = $(id);
  node.dataset.value = value === null || value === undefined ? "" : String(value);
  node.textContent = value === null || value === undefined ? "—" : formatNumber(value, 6);
}

function showHover() {
  const f = S.frame, topo = S.state && S.state.topology;
  if (!f || !topo) return;
  if (S.hoverEdge) {
    const [level, i, j] = S.hoverEdge.split(",").map(Number);
    const from = level === 0 ? topo.features[i].label : topo.names.units[level][i];
    $("hover-name").textContent = topo.names.weights[level][i][j];
    $("hover-link").textContent = `${from} → ${topo.names.units[level + 1][j]}`;
    setValue("hover-w", f.weights[level][i][j]);
    setValue("hover-g", f.grads ? f.grads[level][i][j] : null);
    $("hover-note").textContent = f.grads ? "dL/dw: the gradient of the last mini-batch's loss, from backward()" : "";
    for (const edge of S.geometry.edges.values()) edge.classList.toggle("active", edge.dataset.key === S.hoverEdge);
    showFactors(S.hoverEdge);
  } else if (S.hoverUnit) {
    const [c, j] = S.hoverUnit.split(",").map(Number);
    $("hover-name").textContent = topo.names.units[c][j];
    const walked = walkUnit(S.hoverUnit);
    if (c === 0) {
      $("hover-link").textContent = `input ${topo.features[j].label}`;
    } else {
      $("hover-link").textContent = `bias ${topo.names.biases[c - 1][j]} = ${formatNumber(f.biases[c - 1][j], 6)}` +
        (f.bias_grads ? `, dL/db = ${formatNumber(f.bias_grads[c - 1][j], 6)}` : "");
    }
    setValue("hover-w", null);
    setValue("hover-g", null);
    let note = f.units ? `activation ${formatNumber(f.units.act[c][j], 6)} (mean over the last mini-batch),` +
      ` δ = dL/dnet ${formatNumber(f.units.delta[c][j], 6)} (summed over it)` : "";
    if (walked) {
      note = `sample: net ${formatNumber(walked.net, 6)}, out ${formatNumber(walked.out, 6)},` +
        ` δ ${formatNumber(walked.delta, 6)}`;
    }
    $("hover-note").textContent = note;
  }
}

// --- backprop mode ------------------------------------------------------------------------------
function walkUnit(key) {
  if (!S.walk || S.walkPos < 0) return null;
  const u = S.walk.units[key];
  if (!u) return null;
  const [c, j] = key.split(",").map(Number);
  const seen = S.walk.steps.slice(0, S.walkPos + 1).some((s) => s.unit && s.unit[0] === c && s.unit[1] === j);
  return seen || c === 0 ? u : null;
}

async function startWalk(split, index) {
  const walk = await run(api("/api/backprop", { split, index }));
  if (!walk) return;
  S.walk = walk;
  S.walkPos = 0;
  $("bp-split").value = split;
  $("bp-index").value = String(index);
  const list = $("bp-steps");
  list.textContent = "";
  walk.steps.forEach((s, k) => {
    const li = document.createElement("li");
    li.dataset.index = String(k);
    const phase = document.createElement("span");
    phase.className = "phase";
    phase.textContent = s.phase;
    li.append(phase, s.text);
    li.addEventListener("click", () => gotoStep(k));
    list.appendChild(li);
  });
  for (const id of ["bp-prev", "bp-next", "bp-end", "bp-exit"]) $(id).disabled = false;
  const q = `?split=${split}&index=${index}`;
  $("export-md").href = "/api/trace.md" + q;
  $("export-html").href = "/api/trace.html" + q;
  gotoStep(0);
}

function gotoStep(k) {
  if (!S.walk) return;
  S.walkPos = Math.max(0, Math.min(k, S.walk.steps.length - 1));
  const step = S.walk.steps[S.walkPos];
  $("bp-current").textContent = step.text;
  $("bp-status").textContent = `step ${S.walkPos + 1} of ${S.walk.steps.length}: ${step.phase}` +
    ` · sample ${S.walk.sample.split} #${S.walk.sample.index} · E_total = ${formatNumber(S.walk.error, 6)}`;
  $("bp-status").dataset.position = String(S.walkPos);
  for (const li of $("bp-steps").children) {
    const n = Number(li.dataset.index);
    li.className = n === S.walkPos ? "current" : n > S.walkPos ? "future" : "";
  }
  const current = $("bp-steps").children[S.walkPos];
  if (current) current.scrollIntoView({ block: "nearest" });
  for (const node of S.geometry.nodes.values()) node.rect.classList.remove("active");
  for (const edge of S.geometry.edges.values()) edge.classList.remove("active");
  if (step.unit) {
    const node = S.geometry.nodes.get(step.unit.join(","));
    if (node) node.rect.classList.add("active");
  }
  if (step.edge) {
    const edge = S.geometry.edges.get(step.edge.join(","));
    if (edge) edge.classList.add("active");
    showFactors(step.edge.join(","));
  }
  draw();
}

function showFactors(key) {
  const box = $("bp-factors");
  if (!S.walk) { box.textContent = ""; return; }
  const e = S.walk.edges[key];
  box.textContent = "";
  if (!e) return;
  box.dataset.edge = e.name;
  box.dataset.key = key;
  box.append(`dE/d${e.name} = `);
  e.factors.forEach((factor, k) => {
    if (k) box.append(" · ");
    const span = document.createElement("span");
    span.className = "factor";
    span.dataset.symbol = factor.symbol;
    span.dataset.value = String(factor.value);
    const small = document.createElement("small");
    small.textContent = factor.symbol;
    span.append(small, formatNumber(factor.value, 6));
    box.appendChild(span);
  });
  const product = document.createElement("span");
  product.className = "product";
  product.dataset.value = String(e.value);
  product.textContent = formatNumber(e.value, 6);
  box.append(" = ", product);
  const check = e.numeric === undefined ? "" :
    `\ncentral difference ${formatNumber(e.numeric, 9)} (relative error ${formatNumber(e.rel_error, 2)})`;
  box.append(`\nexplain: ${e.text}${check}`);
}

function exitWalk() {
  S.walk = null;
  S.walkPos = -1;
  if ($("bp-steps")) $("bp-steps").textContent = "";
  if ($("bp-current")) $("bp-current").textContent = "";
  if ($("bp-factors")) $("bp-factors").textContent = "";
  if ($("bp-status")) $("bp-status").textContent = "";
  for (const id of ["bp-prev", "bp-next", "bp-end", "bp-exit"]) if ($(id)) $(id).disabled = true;
  if (S.geometry) {
    for (const node of S.geometry.nodes.values()) node.rect.classList.remove("active");
    for (const edge of S.geometry.edges.values()) edge.classList.remove("active");
  }
}

// --- controls --------------------------------------------------------------------------------------
function nearestPoint(event) {
  const canvas = $("output"), rect = canvas.getBoundingClientRect();
  const [xmin, xmax, ymin, ymax] = S.state.topology.extent;
  const x = xmin + (event.clientX - rect.left) / rect.width * (xmax - xmin);
  const y = ymax - (event.clientY - rect.top) / rect.height * (ymax - ymin);
  let best = null;
  const splits = $("show-test").checked ? ["train", "test"] : ["train"];
  for (const split of splits) {
    S.state.data[split].forEach((p, index) => {
      const d = (p[0] - x) ** 2 + (p[1] - y) ** 2;
      if (!best || d < best.d) best = { d, split, index };
    });
  }
  return best;
}

async function loadState() {
  const state = await run(api("/api/state"));
  if (state) applyState(state);
}

function wire() {
  $("play").addEventListener("click", async () => {
    if (S.frame && S.frame.playing) await run(api("/api/pause", {}));
    else { exitWalk(); await run(api("/api/play", {})); }
  });
  $("step").addEventListener("click", async () => {
    exitWalk();
    const frame = await run(api("/api/step", {}));
    if (frame) onFrame(frame);
  });
  $("reset").addEventListener("click", async () => {
    const state = await run(api("/api/reset", {}));
    if (state) applyState(state);
  });
  for (const node of document.querySelectorAll("[data-field]")) {
    node.addEventListener("change", () => {
      const value = node.dataset.type === "number" ? Number(node.value) : node.value;
      configure({ [node.dataset.field]: value });
    });
    if (node.type === "range") node.addEventListener("input", () => { $(node.id + "-out").textContent = node.value; });
  }
  for (const b of document.querySelectorAll("#datasets button")) {
    b.addEventListener("click", () => {
      const update = { dataset: b.dataset.dataset };
      if ((b.dataset.dataset === "plane" || b.dataset.dataset === "multigauss")) update.loss = "squared";
      if (b.dataset.dataset === "xor") update.classes = 2;
      configure(update);
    });
  }
  for (const b of document.querySelectorAll("#features button")) {
    b.addEventListener("click", () => {
      const feats = new Set(S.state.config.features);
      if (feats.has(b.dataset.feature)) feats.delete(b.dataset.feature); else feats.add(b.dataset.feature);
      if (feats.size) configure({ features: [...feats] });
    });
  }
  $("add-layer").addEventListener("click", () => {
    const cfg = S.state.config;
    configure({ layers: [...cfg.layers, cfg.layers.length ? cfg.layers[cfg.layers.length - 1] : 4] });
  });
  $("remove-layer").addEventListener("click", () => {
    configure({ layers: S.state.config.layers.slice(0, -1) });
  });
  $("new-seed").addEventListener("click", () => configure({ seed: Math.floor(Math.random() * 100000) }));
  $("mode-weights").addEventListener("click", () => setMode("weights"));
  $("mode-gradients").addEventListener("click", () => setMode("gradients"));
  $("show-test").addEventListener("change", draw);
  $("output").addEventListener("click", (event) => {
    const best = nearestPoint(event);
    if (best) startWalk(best.split, best.index);
  });
  $("bp-start").addEventListener("click", () => startWalk($("bp-split").value, Number($("bp-index").value)));
  $("bp-prev").addEventListener("click", () => gotoStep(S.walkPos - 1));
  $("bp-next").addEventListener("click", () => gotoStep(S.walkPos + 1));
  $("bp-end").addEventListener("click", () => gotoStep(S.walk ? S.walk.steps.length - 1 : 0));
  $("bp-exit").addEventListener("click", () => { exitWalk(); draw(); });
  $("csv-file").addEventListener("change", upload);
  $("share").addEventListener("click", async () => {
    const url = location.href, box = $("share-url");
    box.hidden = false;
    box.value = url;
    box.select();
    try { await navigator.clipboard.writeText(url); $("share").textContent = "link copied"; } catch (err) { /* shown */ }
  });
  window.addEventListener("resize", () => { if (S.state) { buildNetwork(S.state.topology); draw(); } });
}

function setMode(mode) {
  S.mode = mode;
  $("mode-weights").setAttribute("aria-pressed", String(mode === "weights"));
  $("mode-gradients").setAttribute("aria-pressed", String(mode === "gradients"));
  document.body.dataset.mode = mode;
  drawEdgeLegend();
  draw();
}

async function upload() {
  const file = $("csv-file").files[0];
  if (!file) return;
  const status = $("upload-status");
  status.textContent = `reading ${file.name} …`;
  const label = $("csv-label").value.trim();
  const q = `?filename=${encodeURIComponent(file.name)}` + (label ? `&label=${encodeURIComponent(label)}` : "");
  try {
    const state = await api("/api/upload" + q, await file.arrayBuffer(), "text/csv");
    status.textContent = `${state.upload.filename}: ${state.data.train.length + state.data.test.length} rows,` +
      ` ${state.upload.task}` + (state.upload.classes.length ? ` (${state.upload.classes.join(", ")})` : "");
    applyState(state);
  } catch (err) {
    status.textContent = err.message;
    showError(err.message);
  }
}

async function start() {
  wire();
  setMode("weights");
  const wanted = decodeConfig(location.hash);
  let state = null;
  if (Object.keys(wanted).length) {
    if (wanted.dataset === "csv") delete wanted.dataset;
    state = await run(api("/api/config", wanted));
  }
  if (!state) state = await run(api("/api/state"));
  if (state) applyState(state);
  window.addEventListener("hashchange", async () => {  // a link pasted into an open page
    const update = decodeConfig(location.hash);
    if (update.dataset === "csv" && !(S.state && S.state.upload)) delete update.dataset;
    if (Object.keys(update).length) await configure(update);
  });
  const events = new EventSource("/api/events");
  events.addEventListener("frame", (event) => onFrame(JSON.parse(event.data)));
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
