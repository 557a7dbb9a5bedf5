// The inspector: one event (before/after frames, its heatmap and boxes, its details) or one frame
// (a live tile, a search result). A click on a frame selects a point: click-to-segment on a recent
// live frame (POST /api/v1/segment), else a point query over the index (POST /api/v1/search);
// the similarity heatmap is drawn over the frame and the mask follows the threshold slider.

import { $, api, emit, fmtClock, fmtMedia, fmtScore, frameThumbUrl, latestThumbUrl, on, setStatus, showImage, typeLabel } from "./util.js";
import {
  decodeHeatmap,
  drawBoxes,
  drawHeatmap,
  drawMask,
  drawPoint,
  floodMask,
  gridCell,
  gridFromRows,
  resetCanvas,
} from "./overlay.js";

const INDEX_LAG_MS = 2000;

let stages = []; // [{el, img, canvas, frame: {stream, seq, t}, heatmap, boxes}]
let selection = null; // {stage, stream, seq, t, x, y, grid, cell, live}
let current = null; // {kind: "event", ev} | {kind: "frame", frame}
const resize = new ResizeObserver(() => stages.forEach(draw));

// ---------- stages: a frame with a canvas over it ----------

function makeStage(frame, caption, fallbackUrl) {
  const el = document.createElement("figure");
  el.className = "stage";
  const wrap = document.createElement("div");
  wrap.className = "stage-frame";
  const img = document.createElement("img");
  img.alt = `${frame.stream} frame ${frame.seq}`;
  const canvas = document.createElement("canvas");
  canvas.className = "stage-overlay";
  wrap.append(img, canvas);
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  el.append(wrap, cap);
  const stage = { el, img, canvas, frame, heatmap: null, boxes: [] };
  let tries = 0;
  img.addEventListener("load", () => {
    el.classList.add("loaded");
    draw(stage);
  });
  img.addEventListener("error", () => {
    // The index may store a frame a moment after the event that names it: retry, then fall back.
    tries += 1;
    if (tries === 1) setTimeout(() => showImage(img, `${frameThumbUrl(frame.stream, frame.seq)}?retry=1`), 1500);
    else if (tries === 2 && fallbackUrl) showImage(img, fallbackUrl);
    else el.classList.add("missing");
  });
  // The index stores a frame a moment after the analytics see it: give a fresh one a moment.
  const wait = typeof frame.ts === "number" ? INDEX_LAG_MS - (Date.now() - frame.ts * 1000) : 0;
  const load = () => showImage(img, frame.thumbnail_url || frameThumbUrl(frame.stream, frame.seq));
  if (wait > 0) setTimeout(load, Math.min(wait, INDEX_LAG_MS));
  else load();
  canvas.addEventListener("click", (e) => {
    const r = canvas.getBoundingClientRect();
    const x = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    const y = Math.min(1, Math.max(0, (e.clientY - r.top) / r.height));
    pick(stage, x, y);
  });
  return stage;
}

function draw(stage) {
  if (!stage.el.classList.contains("loaded")) return;
  const ctx = resetCanvas(stage.canvas);
  const sel = selection && selection.stage === stage ? selection : null;
  if (sel && sel.grid) {
    drawHeatmap(ctx, sel.grid, 0, 1);
    const mask = floodMask(sel.grid, sel.cell, threshold());
    drawMask(ctx, sel.grid, mask);
    const n = mask.reduce((a, b) => a + b, 0);
    $("segment-info").textContent = `threshold ${threshold().toFixed(2)} · ${n} of ${mask.length} cells selected`;
  } else if (stage.heatmap) {
    drawHeatmap(ctx, stage.heatmap, 0, 1);
  }
  if (!sel && stage.boxes.length) drawBoxes(ctx, stage.boxes);
  if (sel) drawPoint(ctx, sel.x, sel.y);
  stage.canvas.dataset.drawn = sel && sel.grid ? "similarity" : stage.heatmap ? "heatmap" : stage.boxes.length ? "boxes" : "";
}

function threshold() {
  return Number($("segment-threshold").value);
}

function showStages(list) {
  resize.disconnect();
  stages = list;
  for (const s of list) resize.observe(s.img.parentNode);
  selection = null;
  $("inspector-stages").replaceChildren(...list.map((s) => s.el));
  $("segment-controls").hidden = true;
  $("inspector-empty").hidden = true;
  $("inspector-body").hidden = false;
  setStatus($("inspector-status"), list.length ? "Click a point on the frame to find what looks like it." : "");
}

// ---------- showing an event or a frame ----------

function showEvent(ev) {
  const same = current && current.kind === "event" && current.ev.id === ev.id;
  current = { kind: "event", ev };
  setTitle(typeLabel(ev.type), ev.stream, ev.type);
  const span = ev.t_end > ev.t_start ? `${fmtMedia(ev.t_start)} – ${fmtMedia(ev.t_end)}` : fmtMedia(ev.t);
  $("inspector-meta").textContent = `${span} · ${fmtClock(ev.ts)} · score ${fmtScore(ev.score)}${ev.status && ev.status !== "closed" ? ` · ${ev.status}` : ""}`;
  renderDetails(ev.details);
  $("inspector-find").hidden = false;
  if (same && selection) return; // an update of the event on show: keep the user's selection
  const frames = Array.isArray(ev.frames) ? ev.frames : [];
  const last = frames[frames.length - 1];
  const list = [];
  if (ev.type === "scene_change" && frames.length >= 2) {
    // The frames on either side of the change: `ts` is the change's own time (between them), so
    // each frame's wall clock is the event's moved by its media time (the index-lag wait uses it).
    const at = (t) => (typeof ev.ts === "number" && typeof t === "number" && typeof ev.t === "number" ? ev.ts + (t - ev.t) : ev.ts);
    list.push(makeStage({ stream: ev.stream, seq: frames[0], t: ev.t_start, ts: at(ev.t_start) }, `before · frame ${frames[0]}`));
    list.push(makeStage({ stream: ev.stream, seq: last, t: ev.t_end, ts: at(ev.t_end) }, `after · frame ${last}`));
  } else if (frames.length) {
    list.push(makeStage({ stream: ev.stream, seq: last, t: ev.t, ts: ev.ts }, `frame ${last}`));
  }
  const main = list[list.length - 1];
  if (main) {
    main.heatmap = decodeHeatmap(ev.heatmap);
    main.boxes = Array.isArray(ev.boxes) ? ev.boxes : [];
  }
  showStages(list);
  if (!list.length) setStatus($("inspector-status"), "This event names no frame.");
}

function showFrame(frame) {
  current = { kind: "frame", frame };
  setTitle("frame", frame.stream, null);
  $("inspector-meta").textContent = `frame ${frame.seq} · ${fmtMedia(frame.t)}${frame.live ? " · live" : ""}`;
  renderDetails(null);
  $("inspector-find").hidden = true;
  const fallback = frame.live ? latestThumbUrl(frame.stream, frame.seq) : null;
  showStages([makeStage(frame, `${frame.stream} · frame ${frame.seq}`, fallback)]);
}

function setTitle(what, stream, type) {
  const title = $("inspector-title");
  title.querySelector(".inspector-what").textContent = what;
  title.querySelector(".inspector-stream").textContent = stream;
  if (type) title.dataset.type = type;
  else delete title.dataset.type;
}

function renderDetails(details) {
  const dl = $("inspector-details");
  dl.replaceChildren();
  for (const [k, v] of Object.entries(details || {})) {
    const dt = document.createElement("dt");
    dt.textContent = k.replace(/_/g, " ");
    const dd = document.createElement("dd");
    dd.textContent = typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : typeof v === "string" ? v : JSON.stringify(v);
    dl.append(dt, dd);
  }
  dl.hidden = !dl.childElementCount;
}

// ---------- a click on a frame ----------

async function pick(stage, x, y) {
  const f = stage.frame;
  const status = $("inspector-status");
  selection = { stage, stream: f.stream, seq: f.seq, t: f.t, x, y, grid: null, cell: null, live: false };
  const mine = selection;
  stages.forEach(draw);
  setStatus(status, "Segmenting…");
  try {
    const seg = await api("POST", "/api/v1/segment", { frame: { stream: f.stream, seq: f.seq }, point: { x, y } });
    if (selection !== mine) return;
    mine.grid = gridFromRows(seg.similarity);
    mine.live = true;
    $("segment-threshold").value = String(seg.threshold);
    setStatus(status, "Similarity to the clicked patch: move the threshold to grow or shrink the selection.");
  } catch (err) {
    if (selection !== mine) return;
    if (err.status !== 404 && err.status !== 503) {
      setStatus(status, `Segment failed: ${err.message}`, "error");
      return;
    }
    // Not a recent live frame: ask the index instead (it keeps every frame's patch grid).
    if (!(await pointSearch(mine))) return;
    setStatus(status, "Similarity over the stored frame (too old for a live segment: watchlist needs a live frame).", "warn");
  }
  if (selection !== mine) return;
  mine.cell = gridCell(mine.grid, x, y);
  $("segment-controls").hidden = false;
  $("watchlist-from-click").disabled = !mine.live;
  draw(stage);
}

/** Point query: fills `sel.grid` from the answer's heatmap and lists the moments. */
async function pointSearch(sel) {
  const status = $("inspector-status");
  if (typeof sel.t !== "number") {
    setStatus(status, "This frame's media time is unknown: cannot search by a point on it.", "error");
    return false;
  }
  setStatus(status, "Searching by the clicked point…");
  emit("search-started", "point");
  try {
    const data = await api("POST", "/api/v1/search", { point: { stream: sel.stream, t: sel.t, x: sel.x, y: sel.y }, limit: 12 });
    emit("search-results", data);
    if (selection !== sel) return false;
    if (!sel.grid && data.query && data.query.heatmap) sel.grid = decodeHeatmap(data.query.heatmap);
    if (!sel.grid) {
      setStatus(status, "The index answered without a heatmap for this point.", "error");
      return false;
    }
    return true;
  } catch (err) {
    emit("search-failed", err.message);
    if (selection === sel) setStatus(status, `Point search failed: ${err.message}`, "error");
    return false;
  }
}

async function findSimilar() {
  if (selection && selection.grid) {
    await pointSearch(selection);
    return;
  }
  if (current && current.kind === "event") {
    emit("search-started", "event");
    try {
      emit("search-results", await api("POST", "/api/v1/search", { event: current.ev.id, limit: 12 }));
    } catch (err) {
      emit("search-failed", err.message);
    }
  }
}

async function addToWatchlist(ev) {
  ev.preventDefault();
  const sel = selection;
  const status = $("inspector-status");
  if (!sel || !sel.live) {
    setStatus(status, "Click a point on a live frame first.", "error");
    return;
  }
  const label = $("watchlist-click-label").value.trim();
  try {
    const added = await api("POST", "/api/v1/watchlist", {
      label,
      frame: { stream: sel.stream, seq: sel.seq },
      point: { x: sel.x, y: sel.y },
      threshold: threshold(),
    });
    setStatus(status, `Watching for “${added.label || added.id}”.`, "ok");
    emit("watchlist-changed");
  } catch (err) {
    setStatus(status, `Could not add to the watchlist: ${err.message}`, "error");
  }
}

export function setupInspector() {
  on("inspect-event", showEvent);
  on("inspect-frame", showFrame);
  $("segment-threshold").addEventListener("input", () => selection && draw(selection.stage));
  $("inspector-find").addEventListener("click", findSimilar);
  $("segment-find").addEventListener("click", findSimilar);
  $("watchlist-click-form").addEventListener("submit", addToWatchlist);
}
