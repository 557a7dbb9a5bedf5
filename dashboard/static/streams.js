// Stream tiles (live thumbnail + health), and adding / removing streams.
// Live info comes from the websocket (hello, frame); health and configuration from polling
// GET /api/v1/streams. When that lists health (a stream manager runs), it is the list of streams.

import { $, api, emit, fmtMedia, fmtClock, fromTemplate, setStatus, showImage } from "./util.js";

const POLL_MS = 2000;
const FPS_WINDOW_MS = 1500;
const REMOVE_CONFIRM_MS = 4000;

const streams = new Map(); // id -> {id, info, health, config, tile, img, loading, pendingUrl, fps, prev}
let managed = false; // the server lists streams with health: tiles follow that list
let refreshing = null;

export function streamIds() {
  return [...streams.keys()].sort();
}

/** What the page knows about a stream's latest frame: {stream, seq, t, thumbnail_url} or null. */
export function latestFrame(id) {
  const s = streams.get(id);
  if (!s || s.info.seq === null || s.info.seq === undefined) return null;
  // ts: when this page heard of the frame (the index stores it a moment later).
  return { stream: id, seq: s.info.seq, t: s.info.t, ts: s.seenAt };
}

export function streamNow(id) {
  const s = streams.get(id);
  return s && typeof s.info.t === "number" ? s.info.t : null;
}

export function untrainedStreams() {
  return [...streams.values()].filter((s) => s.info.untrained).map((s) => s.info);
}

function changed() {
  const empty = $("stream-empty");
  empty.hidden = streams.size > 0;
  $("stream-count").textContent = `${streams.size} stream${streams.size === 1 ? "" : "s"}`;
  emit("streams-changed", streamIds());
}

function ensureStream(id) {
  let s = streams.get(id);
  if (s) return s;
  const tile = fromTemplate("stream-tile-template");
  tile.dataset.stream = id;
  const img = tile.querySelector("img");
  s = { id, info: { stream: id }, health: null, config: null, tile, img, loading: 0, pendingUrl: null, fps: null, prev: null };
  img.addEventListener("load", () => {
    tile.classList.add("has-thumb");
    nextThumb(s);
  });
  img.addEventListener("error", () => nextThumb(s));
  tile.querySelector(".tile-thumb").addEventListener("click", () => {
    const f = latestFrame(id);
    if (f) emit("inspect-frame", { ...f, live: true });
  });
  tile.querySelector(".tile-remove").addEventListener("click", (e) => removeStream(s, e.currentTarget));
  streams.set(id, s);
  const grid = $("stream-grid");
  const after = [...grid.querySelectorAll(".tile")].find((t) => t.dataset.stream > id);
  grid.insertBefore(tile, after || null);
  render(s);
  changed();
  return s;
}

function dropStream(id) {
  const s = streams.get(id);
  if (!s) return;
  s.tile.remove();
  streams.delete(id);
  changed();
}

// At most one thumbnail request in flight per tile; only the newest URL is remembered.
function setThumb(s, url) {
  if (!url) return;
  if (s.loading && Date.now() - s.loading < 10000) {
    s.pendingUrl = url;
    return;
  }
  s.loading = Date.now(); // a request that never settles stops blocking after 10 s
  showImage(s.img, url);
}

function nextThumb(s) {
  s.loading = 0;
  const url = s.pendingUrl;
  s.pendingUrl = null;
  if (url) setThumb(s, url);
}

function render(s) {
  const i = s.info;
  const h = s.health;
  const t = s.tile;
  t.querySelector(".tile-name").textContent = s.id;
  t.querySelector(".tile-name").title = s.config ? s.config.url : s.id;
  t.querySelector(".tile-time").textContent = fmtMedia(i.t);
  t.querySelector(".tile-untrained").hidden = !i.untrained;
  t.classList.toggle("untrained", !!i.untrained);
  const state = h ? h.state : i.seq !== null && i.seq !== undefined ? "live" : "waiting";
  const badge = t.querySelector(".tile-state");
  badge.textContent = state;
  badge.dataset.state = state;
  t.dataset.state = state;
  const stats = [];
  if (h) {
    if (state === "live" && s.fps !== null) stats.push(`${s.fps.toFixed(1)} fps`);
    stats.push(`${h.frames_out} frames`);
    stats.push(`${h.drops} drop${h.drops === 1 ? "" : "s"}`);
    stats.push(`${h.reconnects} reconnect${h.reconnects === 1 ? "" : "s"}`);
  } else if (i.frames) {
    stats.push(`${i.frames} frames`);
  }
  if (i.last_event_ts) stats.push(`last event ${fmtClock(i.last_event_ts)}`);
  t.querySelector(".tile-stats").textContent = stats.join(" · ");
  const err = t.querySelector(".tile-error");
  const lastError = h && h.last_error;
  err.hidden = !lastError;
  err.textContent = lastError ? `last error: ${lastError}` : "";
  err.title = lastError || "";
  s.img.alt = `latest frame of ${s.id}`;
  t.querySelector(".tile-remove").hidden = !managed;
}

// ---------- websocket messages ----------

export function onHello(msg) {
  for (const [id, info] of Object.entries(msg.streams || {})) {
    if (managed && !streams.has(id)) continue; // not (or no longer) a stream of the service
    const s = ensureStream(id);
    s.info = { ...s.info, ...info };
    render(s);
    setThumb(s, info.thumbnail_url);
  }
  emit("streams-info");
}

export function onFrame(msg) {
  if (managed && !streams.has(msg.stream)) {
    refresh(); // a stream added elsewhere (the CLI, another page): pick it up
    return;
  }
  const s = ensureStream(msg.stream);
  s.info = {
    ...s.info,
    seq: msg.seq,
    t: msg.t,
    frames: (s.info.frames || 0) + 1,
    model: msg.model ?? s.info.model,
    untrained: !!msg.untrained,
    thumbnail_url: msg.thumbnail_url ?? s.info.thumbnail_url,
  };
  s.seenAt = Date.now() / 1000;
  render(s);
  setThumb(s, msg.thumbnail_url);
  emit("streams-info");
}

export function onEventSeen(ev) {
  const s = streams.get(ev.stream);
  if (!s) return;
  s.info.last_event_ts = ev.ts;
  render(s);
}

// ---------- polling health ----------

function refresh() {
  if (!refreshing) refreshing = poll().finally(() => (refreshing = null));
  return refreshing;
}

async function poll() {
  let data;
  try {
    data = await api("GET", "/api/v1/streams");
  } catch {
    return; // the connection badge already says the server is away
  }
  const listed = data.streams || {};
  managed = Object.values(listed).some((x) => x && x.health);
  const now = performance.now();
  for (const [id, body] of Object.entries(listed)) {
    const s = ensureStream(id);
    const { health, config, ...info } = body;
    for (const [k, v] of Object.entries(info)) if (v !== null && v !== undefined) s.info[k] = v;
    if (health) {
      // fps over at least FPS_WINDOW_MS: an extra poll right after an add must not read 0.
      if (!s.prev) s.prev = { at: now, frames: health.frames_out };
      else if (now - s.prev.at >= FPS_WINDOW_MS) {
        s.fps = ((health.frames_out - s.prev.frames) * 1000) / (now - s.prev.at);
        s.prev = { at: now, frames: health.frames_out };
      }
      s.health = health;
    }
    if (config) s.config = config;
    render(s);
    if (!s.tile.classList.contains("has-thumb")) setThumb(s, info.thumbnail_url);
  }
  if (managed) for (const id of [...streams.keys()]) if (!(id in listed)) dropStream(id);
  emit("streams-info");
}

// ---------- add and remove ----------

async function addStream(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const status = $("stream-form-status");
  const body = { url: $("stream-url").value.trim() };
  const id = $("stream-id").value.trim();
  if (id) body.id = id;
  if ($("stream-fps").value) body.sample_fps = Number($("stream-fps").value);
  if (!body.url) {
    setStatus(status, "Enter a video file path or a camera URL.", "error");
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  setStatus(status, "Adding…");
  try {
    const added = await api("POST", "/api/v1/streams", body);
    setStatus(status, `Added ${added.id} (${added.health ? added.health.state : "connecting"}).`, "ok");
    form.reset();
    await refresh();
  } catch (err) {
    setStatus(status, `Not added: ${err.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

async function removeStream(s, button) {
  if (!button.classList.contains("confirm")) {
    button.classList.add("confirm");
    button.textContent = "confirm remove";
    setTimeout(() => {
      button.classList.remove("confirm");
      button.textContent = "remove";
    }, REMOVE_CONFIRM_MS);
    return;
  }
  button.disabled = true;
  try {
    await api("DELETE", `/api/v1/streams/${encodeURIComponent(s.id)}`);
    dropStream(s.id);
    setStatus($("stream-form-status"), `Removed ${s.id}.`, "ok");
  } catch (err) {
    setStatus($("stream-form-status"), `Could not remove ${s.id}: ${err.message}`, "error");
    button.disabled = false;
  }
}

export function setupStreams() {
  $("stream-form").addEventListener("submit", addStream);
  changed();
  refresh();
  setInterval(refresh, POLL_MS);
}
