// backprop playground: the page. Plain DOM and canvas, no build step.
//
// The server trains; this page chooses settings, starts runs (POST /api/runs), listens to
// one run's stream of pictures (Server-Sent Events) and draws them. Settings live in the
// address's #fragment, so a link reproduces the set-up.
"use strict";

const $ = (id) => document.getElementById(id);
const RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const PENALTIES = [0, 0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1];
const DROPOUTS = [0, 0.1, 0.2, 0.3, 0.5]; // after each hidden layer, in training only
const PLANE = ["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)"];
const LINE = ["x1", "x1^2", "sin(x1)"];
const LIVE = ["lr", "l1", "l2"]; // changed while training; everything else starts a new run

const page = {
  info: null, settings: null, run: null, stream: null, picture: null, playing: false,
  records: null, beats: [], generation: 0, pictures: 0,
  queued: null, // play or step pressed before the run exists: sent once it does
};
window.backpropPlayground = page; // the page's state, for scripts that measure it (benchmarks/playground.py)

// -- talking to the server ------------------------------------------------------------------
async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body ?? {}),
  });
  if (!answer.ok) {
    let message = `${answer.status} ${answer.statusText}`;
    try { message = (await answer.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return answer;
}

function say(text, error = false) {
  $("status").textContent = text || "";
  $("status").className = error ? "error" : "";
}

// -- settings <-> the address ------------------------------------------------------------------
function readHash(defaults) {
  const s = structuredClone(defaults);
  const params = new URLSearchParams(location.hash.slice(1));
  for (const [key, text] of params) {
    if (!(key in s)) continue;
    if (["features", "hidden", "pair"].includes(key)) {
      const parts = text === "" ? [] : text.split(",");
      s[key] = key === "features" ? parts : parts.map(Number);
    } else if (typeof defaults[key] === "number") {
      s[key] = Number(text);
    } else {
      s[key] = text;
    }
  }
  return s;
}

function writeHash() {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(page.settings)) {
    params.set(key, Array.isArray(value) ? value.join(",") : String(value));
  }
  history.replaceState(null, "", "#" + params.toString());
}

// -- controls ----------------------------------------------------------------------------------
function fillSelect(select, values, label = String) {
  select.replaceChildren(...values.map((v) => {
    const option = document.createElement("option");
    option.value = String(v);
    option.textContent = label(v);
    return option;
  }));
}

function dataColumns() {
  const s = page.settings, data = page.info.data;
  if (s.data === "file") return data.file.columns;
  return data.sets[s.data].columns;
}

function buildControls() {
  const info = page.info;
  fillSelect($("optimizer"), info.optimizers);
  fillSelect($("activation"), info.activations);
  fillSelect($("lr"), RATES);
  fillSelect($("l1"), PENALTIES);
  fillSelect($("l2"), PENALTIES);
  fillSelect($("dropout"), DROPOUTS);
  fillSelect($("device"), info.devices.map((d) => d.spec), (spec) => {
    const d = info.devices.find((row) => row.spec === spec);
    return d.usable ? spec : `${spec} (unusable)`;
  });
  for (const option of $("device").options) {
    const d = info.devices.find((row) => row.spec === option.value);
    option.disabled = !d.usable;
    option.title = d.reason || "";
  }
  const unusable = info.devices.filter((d) => !d.usable);
  $("device-note").textContent = unusable.map((d) => `${d.spec}: ${d.reason}`).join(" ");

  const names = Object.keys(info.data.sets);
  if (info.data.file) names.unshift("file");
  $("datasets").replaceChildren(...names.map((name) => {
    const button = document.createElement("button");
    button.textContent = name === "file" ? info.data.file.name : name;
    button.dataset.name = name;
    button.title = name === "file" ? `${info.data.file.rows} rows, ${info.data.file.columns} columns`
      : `${info.data.sets[name].task}, ${info.data.sets[name].columns}-D`;
    button.addEventListener("click", () => chooseData(name));
    return button;
  }));
  if (info.data.file) {
    const cols = info.data.file.feature_names;
    fillSelect($("pair-x"), cols.map((_, i) => i), (i) => cols[i]);
    fillSelect($("pair-y"), cols.map((_, i) => i), (i) => cols[i]);
  }
  showSettings();
}

function showSettings() {
  const s = page.settings, info = page.info;
  const full = info.full_batch.includes(s.optimizer);
  for (const key of ["optimizer", "activation", "device", "dtype"]) $(key).value = s[key];
  for (const key of ["lr", "l1", "l2", "dropout"]) {
    const values = key === "lr" ? RATES : key === "dropout" ? DROPOUTS : PENALTIES;
    if (!values.includes(s[key])) fillSelect($(key), [...values, s[key]].sort((a, b) => a - b));
    $(key).value = String(s[key]);
  }
  $("lr").disabled = full;
  $("l1").disabled = full;
  $("batch_size").disabled = full;
  $("batch_size").value = s.batch_size;
  $("seed").value = s.seed;
  for (const b of $("datasets").children) b.classList.toggle("selected", b.dataset.name === s.data);
  const generated = s.data !== "file";
  $("noise-row").hidden = $("n-row").hidden = $("regenerate").hidden = !generated;
  if (generated) {
    const max = info.data.sets[s.data].max_noise;
    $("noise").value = Math.round((s.noise / max) * 50);
    $("noise-out").textContent = s.noise.toFixed(3).replace(/0+$/, "").replace(/\.$/, "");
    $("n").value = s.n;
    $("n-out").textContent = s.n;
  }
  $("test").value = Math.round(s.test * 100);
  $("test-out").textContent = Math.round(s.test * 100);
  const columns = dataColumns();
  $("pair-controls").hidden = !(s.data === "file" && columns > 2);
  if (!$("pair-controls").hidden) { $("pair-x").value = s.pair[0]; $("pair-y").value = s.pair[1]; }
  const crosses = columns === 2 ? PLANE : columns === 1 ? LINE : [];
  $("features").replaceChildren(...crosses.map((name) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = s.features.includes(name);
    box.dataset.feature = name;
    box.addEventListener("change", () => toggleFeature(name, box.checked));
    label.append(box, " " + name.replace("^2", "²"));
    return label;
  }));
  $("layers-title").textContent = `${s.hidden.length} hidden layer${s.hidden.length === 1 ? "" : "s"}`;
  $("unit-controls").replaceChildren(...s.hidden.map((width, i) => {
    const span = document.createElement("span");
    const minus = document.createElement("button"), plus = document.createElement("button");
    minus.textContent = "−"; plus.textContent = "+";
    minus.title = `fewer units in layer ${i + 1}`; plus.title = `more units in layer ${i + 1}`;
    minus.addEventListener("click", () => changeUnits(i, -1));
    plus.addEventListener("click", () => changeUnits(i, +1));
    span.append(minus, ` layer ${i + 1}: ${width} unit${width === 1 ? "" : "s"} `, plus);
    return span;
  }));
  $("accuracy-row").hidden = page.run ? page.run.task !== "classification" : false;
}

function change(key, value) {
  page.settings[key] = value;
  writeHash();
  showSettings();
  if (LIVE.includes(key) && page.run) {
    post(`/api/runs/${page.run.id}/settings`, { [key]: value })
      .then(() => say(`${key} is now ${value}`))
      .catch((e) => say(e.message, true));
  } else {
    reset();
  }
}

// The features and pair the data allows, keeping what was chosen where it still applies.
function fitToData() {
  const s = page.settings, columns = dataColumns();
  const crosses = columns === 2 ? PLANE : columns === 1 ? LINE : [];
  s.features = s.features.filter((f) => crosses.includes(f));
  if (!s.features.length && crosses.length) s.features = columns === 2 ? ["x1", "x2"] : ["x1"];
  if (columns <= 2) s.pair = columns === 2 ? [0, 1] : [0];
  else if (!(s.pair.length === 2 && s.pair.every((i) => i >= 0 && i < columns) && s.pair[0] !== s.pair[1])) s.pair = [0, 1];
}

function chooseData(name) {
  const s = page.settings, before = dataColumns();
  s.data = name;
  if (dataColumns() !== before) s.features = []; // another kind of plane: its own default inputs
  if (name !== "file") s.noise = page.info.data.sets[name].noise;
  fitToData();
  change("data", name);
}

function toggleFeature(name, on) {
  const crosses = dataColumns() === 1 ? LINE : PLANE;
  const chosen = crosses.filter((f) => (f === name ? on : page.settings.features.includes(f)));
  if (!chosen.length) { say("keep at least one feature", true); showSettings(); return; }
  change("features", chosen);
}

function changeUnits(layer, by) {
  const hidden = [...page.settings.hidden];
  hidden[layer] = Math.min(page.info.limits.units, Math.max(1, hidden[layer] + by));
  change("hidden", hidden);
}

function wireTransport() { // at once: a click while the page is still starting is kept
  $("play").addEventListener("click", () => control(page.playing ? "pause" : "play"));
  $("step").addEventListener("click", () => control("step"));
}

function wire() {
  $("reset").addEventListener("click", () => reset());
  for (const key of ["optimizer", "activation", "device", "dtype"]) {
    $(key).addEventListener("change", () => change(key, $(key).value));
  }
  for (const key of ["lr", "l1", "l2", "dropout"]) {
    $(key).addEventListener("change", () => change(key, Number($(key).value)));
  }
  for (const key of ["batch_size", "seed"]) {
    $(key).addEventListener("change", () => {
      const value = Math.round(Number($(key).value));
      if (!Number.isFinite(value) || value < Number($(key).min)) { say(`${key}: a whole number ≥ ${$(key).min}`, true); return; }
      change(key, value);
    });
  }
  $("noise").addEventListener("change", () => {
    change("noise", (Number($("noise").value) / 50) * page.info.data.sets[page.settings.data].max_noise);
  });
  $("n").addEventListener("change", () => change("n", Number($("n").value)));
  $("test").addEventListener("change", () => change("test", Number($("test").value) / 100));
  $("regenerate").addEventListener("click", () => change("data_seed", Math.floor(Math.random() * 1e9)));
  $("add-layer").addEventListener("click", () => {
    if (page.settings.hidden.length < page.info.limits.layers) change("hidden", [...page.settings.hidden, 2]);
  });
  $("remove-layer").addEventListener("click", () => {
    if (page.settings.hidden.length) change("hidden", page.settings.hidden.slice(0, -1));
  });
  $("pair-x").addEventListener("change", () => change("pair", [Number($("pair-x").value), page.settings.pair[1]]));
  $("pair-y").addEventListener("change", () => change("pair", [page.settings.pair[0], Number($("pair-y").value)]));
  $("show-test").addEventListener("change", () => drawHeatmap());
  $("save").addEventListener("click", saveCheckpoint);
  $("copy").addEventListener("click", () => {
    navigator.clipboard?.writeText($("command").textContent).then(() => say("copied"), () => say("select and copy it"));
  });
  $("copy-tf").addEventListener("click", copyTfLink);
  window.addEventListener("resize", () => drawAll());
  window.addEventListener("pagehide", () => stopRun());
}

// The server builds the link (session.tf_link) and names each setting it leaves out.
function copyTfLink() {
  const link = page.tfLink;
  if (!link) return;
  const left = link.left_out.length ? ` (left out: ${link.left_out.join("; ")})` : "";
  if (!link.url) { say(`no TensorFlow Playground link${left}`, true); return; }
  navigator.clipboard?.writeText(link.url).then(() => say(`copied${left}`), () => say(`${link.url}${left}`));
}

// -- runs -----------------------------------------------------------------------------------------
function stopRun() {
  if (page.stream) page.stream.close();
  page.stream = null;
  if (page.run) {
    // keepalive: the stop still goes out while the page closes
    fetch(`/api/runs/${page.run.id}/control`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ action: "stop" }), keepalive: true,
    }).catch(() => {});
  }
}

async function reset() {
  const generation = ++page.generation;
  stopRun();
  page.run = null;
  page.picture = null;
  page.records = { epoch: [], train_loss: [], val_loss: [], train_accuracy: [], val_accuracy: [] };
  setPlaying(page.queued === "play");
  $("epoch").textContent = "0";
  try {
    const run = await (await post("/api/runs", page.settings)).json();
    if (generation !== page.generation) { // a newer reset overtook this one
      post(`/api/runs/${run.id}/control`, { action: "stop" }).catch(() => {});
      return;
    }
    page.run = run;
    say(run.notes.length ? run.notes.join(" ") : `${run.n_params} parameters; press play`);
    $("command").textContent = run.command;
    page.tfLink = run.tf_link;
    showSettings();
    listen(run.id);
  } catch (e) {
    if (generation === page.generation) { page.queued = null; setPlaying(false); }
    say(e.message, true);
  }
}

function listen(id) {
  const stream = new EventSource(`/api/runs/${id}/events`);
  page.stream = stream;
  stream.onmessage = (event) => {
    if (page.stream !== stream) return;
    onPicture(JSON.parse(event.data));
    const queued = page.queued; // pressed while the run was being made: sent after its first picture
    page.queued = null;
    if (queued) control(queued);
  };
  stream.addEventListener("end", () => { stream.close(); if (page.stream === stream) { setPlaying(false); say("this run has ended: reset to start another"); } });
  stream.onerror = () => {
    if (page.stream === stream && stream.readyState === EventSource.CLOSED) {
      setPlaying(false);
      say("the connection to the server was lost: is backprop playground still running?", true);
    }
  };
}

async function control(action) {
  if (!page.run) { // the run is still being made: do this once it exists
    page.queued = action === "pause" ? null : action;
    setPlaying(action === "play");
    say(page.queued ? `starting the run: it will ${action} as soon as it is ready` : "paused");
    return;
  }
  try {
    const answer = await (await post(`/api/runs/${page.run.id}/control`, { action })).json();
    setPlaying(answer.state === "running" && action === "play");
    if (action === "play") say("training");
    else if (action === "pause") say("paused");
  } catch (e) {
    say(e.message, true);
  }
}

function setPlaying(on) {
  page.playing = on;
  $("play").classList.toggle("playing", on);
  $("play").innerHTML = on ? "&#10074;&#10074;" : "&#9654;";
  $("play").setAttribute("aria-label", on ? "pause" : "play");
}

async function saveCheckpoint() {
  if (!page.run) return;
  try {
    const answer = await post(`/api/runs/${page.run.id}/checkpoint`);
    const name = /filename="([^"]+)"/.exec(answer.headers.get("Content-Disposition") || "")?.[1] || "playground.safetensors";
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await answer.blob());
    link.download = name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    say(`saved ${name}: backprop predict ${name} DATA.csv, or backprop evaluate ${name} DATA`);
  } catch (e) {
    say(e.message, true);
  }
}

function onPicture(p) {
  page.picture = p;
  page.pictures += 1;
  const r = page.records;
  for (const rec of p.records || []) {
    for (const key of Object.keys(r)) r[key].push(rec[key] ?? null);
  }
  if (r.epoch.length > 4000) for (const key of Object.keys(r)) r[key] = r[key].filter((_, i) => i % 2 === 0);
  $("epoch").textContent = String(p.epoch).padStart(6, "0").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  $("rate").textContent = p.samples_per_s ? Math.round(p.samples_per_s).toLocaleString("en") : "–";
  const last = (key) => { const v = r[key]; for (let i = v.length - 1; i >= 0; i--) if (v[i] != null) return v[i]; return null; };
  const fmt = (v, digits = 3) => (v == null ? "–" : v.toFixed(digits));
  $("train-loss").textContent = fmt(last("train_loss"));
  $("test-loss").textContent = fmt(last("val_loss"));
  $("test-acc").textContent = last("val_accuracy") == null ? "–" : `${(100 * last("val_accuracy")).toFixed(1)}%`;
  if (p.command) $("command").textContent = p.command;
  if (p.tf_link) page.tfLink = p.tf_link;
  if (p.state === "done") {
    setPlaying(false);
    say(p.error ? `stopped: ${p.error}` : "done");
  } else if (p.state === "paused" && page.playing && !page.queued) {
    setPlaying(false);
  }
  const now = performance.now();
  page.beats.push(now);
  while (page.beats.length && now - page.beats[0] > 2000) page.beats.shift();
  $("updates").textContent = `${(page.beats.length / 2).toFixed(0)} updates/s`;
  drawAll();
}

// -- drawing ------------------------------------------------------------------------------------
function bytes(text) {
  const raw = atob(text), out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function hex(colour) {
  return [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
}

const ORANGE = hex("#f59322"), BLUE = hex("#0877bd"), WHITE = [255, 255, 255];

function mix(a, b, t) {
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));
}

// -1 orange, 0 white, +1 blue: TensorFlow Playground's scale.
function scale(v) {
  return v < 0 ? mix(WHITE, ORANGE, Math.min(1, -v)) : mix(WHITE, BLUE, Math.min(1, v));
}

function gridImage(size, colourAt) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d"), image = ctx.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const [r, g, b] = colourAt(i);
    image.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

function outputImage(p, run) {
  const values = bytes(p.output);
  if (p.classes) {
    const classes = bytes(p.classes), k = run.classes.length;
    return gridImage(p.size, (i) => {
      const confidence = values[i] / 255, strength = Math.max(0, (confidence - 1 / k) / (1 - 1 / k));
      return mix(WHITE, hex(page.info.class_colours[classes[i]]), 0.15 + 0.6 * strength);
    });
  }
  return gridImage(p.size, (i) => mix(WHITE, scale(values[i] / 127.5 - 1), 0.75));
}

function pointColour(run, label) {
  if (run.task === "classification") {
    return page.info.class_colours[label]; // the server offers no more classes than colours
  }
  const [lo, hi] = run.y_range;
  const [r, g, b] = scale((2 * (label - lo)) / Math.max(hi - lo, 1e-12) - 1);
  return `rgb(${r},${g},${b})`;
}

function fitCanvas(canvas, height) {
  const ratio = window.devicePixelRatio || 1, width = canvas.clientWidth || canvas.width;
  const h = height ?? Math.round(width * (canvas.height / canvas.width));
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [ctx, width, h];
}

function drawHeatmap() {
  const canvas = $("heatmap"), run = page.run, p = page.picture;
  const [ctx, w, h] = fitCanvas(canvas, canvas.clientWidth || 320);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  if (!run) return;
  const [x0, x1, y0, y1] = run.domain;
  const px = (x) => ((x - x0) / (x1 - x0)) * w, py = (y) => ((y1 - y) / (y1 - y0)) * h;
  if (p && p.output) {
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(outputImage(p, run), 0, 0, w, h);
  }
  const parts = [[run.train, "#fff"]];
  if ($("show-test").checked && run.test) parts.push([run.test, "#000"]);
  for (const [part, edge] of parts) {
    for (let i = 0; i < part.x.length; i++) {
      ctx.beginPath();
      ctx.arc(px(part.x[i]), py(part.y[i]), 3, 0, 2 * Math.PI);
      ctx.fillStyle = pointColour(run, part.label[i]);
      ctx.fill();
      ctx.strokeStyle = edge;
      ctx.lineWidth = 1;
      ctx.stroke();
    }
  }
  if (p && p.curve) { // 1-D regression: the network's curve over the points
    ctx.beginPath();
    p.curve.forEach((y, i) => {
      const x = x0 + ((i + 0.5) * (x1 - x0)) / p.size;
      i ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y));
    });
    ctx.strokeStyle = "#222";
    ctx.lineWidth = 2.5;
    ctx.stroke();
  }
}

function drawCurves() {
  const canvas = $("curves"), r = page.records;
  const [ctx, w, h] = fitCanvas(canvas, 110);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  if (!r || r.epoch.length < 1) return;
  const losses = [...r.train_loss, ...r.val_loss].filter((v) => v != null && Number.isFinite(v));
  const top = Math.max(...losses, 1e-9), n = r.epoch.length;
  const x = (i) => (n === 1 ? w / 2 : (i / (n - 1)) * (w - 4) + 2), y = (v, max) => h - 4 - (v / max) * (h - 8);
  const series = [["train_loss", "#999", top, []], ["val_loss", "#000", top, []],
    ["val_accuracy", "#0877bd", 1, [4, 3]]];
  for (const [key, colour, max, dash] of series) {
    ctx.beginPath();
    let started = false;
    r[key].forEach((v, i) => {
      if (v == null) return;
      started ? ctx.lineTo(x(i), y(v, max)) : ctx.moveTo(x(i), y(v, max));
      started = true;
    });
    ctx.setLineDash(dash);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

function featureValue(name, x, y) {
  switch (name) {
    case "x1": return x;
    case "x2": return y;
    case "x1^2": return x * x;
    case "x2^2": return y * y;
    case "x1*x2": return x * y;
    case "sin(x1)": return Math.sin(x);
    case "sin(x2)": return Math.sin(y);
    default: return 0;
  }
}

function featureImage(name, run, size) {
  const [x0, x1, y0, y1] = run.domain, values = [];
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const x = x0 + ((j + 0.5) * (x1 - x0)) / size, y = y1 - ((i + 0.5) * (y1 - y0)) / size;
      values.push(featureValue(name, x, run.pair.length > 1 ? y : 0));
    }
  }
  const top = Math.max(...values.map(Math.abs), 1e-12);
  return gridImage(size, (i) => scale(values[i] / top));
}

function unitImage(text, size, oneD) {
  const values = bytes(text);
  if (!oneD) return gridImage(size, (i) => scale(values[i] / 127.5 - 1));
  // 1-D: the unit's output along x as a line in a small square
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 32;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#f4f4f4";
  ctx.fillRect(0, 0, 32, 32);
  ctx.beginPath();
  values.forEach((b, i) => {
    const x = ((i + 0.5) / values.length) * 32, y = 16 - (b / 127.5 - 1) * 14;
    i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
  });
  ctx.strokeStyle = "#0877bd";
  ctx.lineWidth = 2;
  ctx.stroke();
  return canvas;
}

function drawNetwork() {
  const canvas = $("network"), run = page.run, p = page.picture, s = page.settings;
  const inputs = run && s.features.length ? s.features : (run ? page.info.data.file?.feature_names ?? [] : []);
  const shown = inputs.slice(0, 16);
  const widths = [shown.length, ...s.hidden, 1];
  const size = 30, gap = 42, height = Math.max(...widths) * gap + 24;
  const [ctx, w, h] = fitCanvas(canvas, height);
  ctx.clearRect(0, 0, w, h);
  if (!run) return;
  const left = 56; // room for the feature names
  const column = (c) => left + (c * (w - left - 20 - size)) / Math.max(widths.length - 1, 1);
  const row = (c, i) => 12 + (h - 24 - widths[c] * gap) / 2 + i * gap;
  // links first, under the nodes: width by |w|, blue positive, orange negative
  if (p && p.weights) {
    const all = p.weights.flat(2).map(Math.abs), top = Math.max(...all, 1e-9);
    p.weights.forEach((W, c) => {
      const rows = c === 0 ? Math.min(W.length, shown.length) : W.length;
      const outs = c === p.weights.length - 1 ? 1 : W[0]?.length ?? 0;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < outs; j++) {
          const weight = c === p.weights.length - 1 && W[0].length > 1
            ? W[i].reduce((a, b) => a + Math.abs(b), 0) / W[0].length : W[i][j];
          ctx.beginPath();
          ctx.moveTo(column(c) + size, row(c, i) + size / 2);
          ctx.lineTo(column(c + 1), row(c + 1, j) + size / 2);
          ctx.strokeStyle = weight < 0 ? "rgba(245,147,34,0.7)" : "rgba(8,119,189,0.7)";
          ctx.lineWidth = 0.5 + (5 * Math.abs(weight)) / top;
          ctx.stroke();
        }
      }
    });
  }
  ctx.imageSmoothingEnabled = false;
  const oneD = run.pair.length === 1;
  shown.forEach((name, i) => {
    if (s.features.length) ctx.drawImage(featureImage(name, run, 16), column(0), row(0, i), size, size);
    else { ctx.fillStyle = "#eee"; ctx.fillRect(column(0), row(0, i), size, size); }
    ctx.fillStyle = "#444";
    ctx.font = "11px sans-serif";
    ctx.textAlign = "right";
    ctx.fillText(name.replace("^2", "²").slice(0, 10), column(0) - 3, row(0, i) + size / 2 + 4);
  });
  ctx.textAlign = "left";
  if (p && p.units) {
    p.units.forEach((layer, c) => layer.forEach((text, i) => {
      ctx.drawImage(unitImage(text, p.unit_size, oneD), column(c + 1), row(c + 1, i), size, size);
      ctx.strokeStyle = "#bbb";
      ctx.strokeRect(column(c + 1), row(c + 1, i), size, size);
    }));
  }
  const out = widths.length - 1;
  if (p && p.output) ctx.drawImage(outputImage(p, run), column(out), row(out, 0), size, size);
  ctx.strokeStyle = "#888";
  ctx.strokeRect(column(out), row(out, 0), size, size);
}

function drawAll() {
  drawHeatmap();
  drawCurves();
  drawNetwork();
}

// -- start ------------------------------------------------------------------------------------
async function start() {
  wireTransport();
  try {
    const answer = await fetch("/api/info");
    page.info = await answer.json();
  } catch (e) {
    say("cannot reach the playground server: is backprop playground running?", true);
    return;
  }
  page.settings = readHash(page.info.defaults);
  const known = page.settings.data === "file" ? page.info.data.file : page.info.data.sets[page.settings.data];
  if (!known) page.settings.data = page.info.data.file ? "file" : page.info.defaults.data;
  if (page.info.data.file && !location.hash) page.settings.data = "file"; // started with a file: show it
  const s = page.settings;
  if (s.data !== "file" && !new URLSearchParams(location.hash.slice(1)).has("noise")) {
    s.noise = page.info.data.sets[s.data].noise; // the set's own noise unless the link says
  }
  fitToData();
  buildControls();
  wire();
  writeHash();
  reset();
}

start();
