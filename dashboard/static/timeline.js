// Events: the per-stream timeline (one bar per occurrence, t_start..t_end in the stream's media
// time, updated in place as the occurrence grows) and the newest-first list. Clicking either
// selects the event for the inspector.

import { $, EVENT_TYPES, emit, fmtClock, fmtMedia, fmtScore, fromTemplate, on, typeLabel } from "./util.js";
import { streamIds, streamNow } from "./streams.js";

const MAX_EVENTS = 500;
const LANE_PX = 16;

const events = new Map(); // id -> {ev, li, bar}
let eventTotal = 0;
let selected = null;
let renderQueued = false;

export function getEvent(id) {
  const e = events.get(id);
  return e ? e.ev : null;
}

export function onEvent(ev) {
  let e = events.get(ev.id);
  if (!e) {
    e = { ev, li: fromTemplate("event-template"), bar: document.createElement("button") };
    e.li.addEventListener("click", () => select(ev.id));
    e.bar.type = "button";
    e.bar.className = "tl-bar";
    e.bar.addEventListener("click", () => select(ev.id));
    events.set(ev.id, e);
    eventTotal += 1;
  }
  e.ev = ev;
  renderItem(e);
  const feed = $("event-feed");
  if (feed.firstChild !== e.li) feed.insertBefore(e.li, feed.firstChild); // newest (or just updated) first
  while (events.size > MAX_EVENTS) {
    const oldest = events.keys().next().value;
    const old = events.get(oldest);
    old.li.remove();
    old.bar.remove();
    events.delete(oldest);
  }
  // An update to the event on show refreshes the inspector (a growing anomaly, a closed phase).
  if (selected === ev.id) emit("inspect-event", ev);
  $("event-count").textContent = `${eventTotal} event${eventTotal === 1 ? "" : "s"}`;
  $("event-empty").hidden = events.size > 0;
  $("timeline-empty").hidden = events.size > 0;
  scheduleRender();
}

function renderItem(e) {
  const ev = e.ev;
  const li = e.li;
  li.dataset.type = ev.type;
  li.dataset.status = ev.status || "closed";
  li.dataset.event = ev.id;
  li.querySelector(".event-type").textContent = typeLabel(ev.type);
  li.querySelector(".event-stream").textContent = ev.stream;
  const span = ev.t_end > ev.t_start ? `${fmtMedia(ev.t_start)}–${fmtMedia(ev.t_end)}` : fmtMedia(ev.t);
  li.querySelector(".event-time").textContent = `${span} · ${fmtClock(ev.ts)}`;
  li.querySelector(".event-score").textContent = fmtScore(ev.score);
  const status = li.querySelector(".event-status");
  status.hidden = !ev.status || ev.status === "closed";
  status.textContent = ev.status || "";
  const label = ev.details && (ev.details.label || ev.details.phase);
  li.querySelector(".event-label").textContent = label ? String(label) : "";
  e.bar.dataset.type = ev.type;
  e.bar.dataset.status = ev.status || "closed";
  e.bar.dataset.event = ev.id;
  e.bar.title = `${typeLabel(ev.type)} · ${span} · score ${fmtScore(ev.score)}${label ? ` · ${label}` : ""}`;
  e.bar.setAttribute("aria-label", e.bar.title);
}

function select(id) {
  selected = id;
  for (const [eid, e] of events) {
    const on_ = eid === id;
    e.li.classList.toggle("selected", on_);
    e.bar.classList.toggle("selected", on_);
  }
  const e = events.get(id);
  if (e) emit("inspect-event", e.ev);
}

on("inspect-frame", () => select(null)); // a frame from elsewhere replaces the selection

// ---------- the timeline ----------

function windowSeconds() {
  return Number($("timeline-window").value) || 0; // 0: everything
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    renderTimeline();
  }, 250);
}

function ensureRow(stream) {
  const box = $("timeline");
  let row = box.querySelector(`.tl-row[data-stream="${CSS.escape(stream)}"]`);
  if (row) return row;
  row = fromTemplate("timeline-row-template");
  row.dataset.stream = stream;
  row.querySelector(".tl-name").textContent = stream;
  const after = [...box.querySelectorAll(".tl-row")].find((r) => r.dataset.stream > stream);
  box.insertBefore(row, after || null);
  return row;
}

function renderTimeline() {
  const byStream = new Map();
  for (const e of events.values()) {
    if (!byStream.has(e.ev.stream)) byStream.set(e.ev.stream, []);
    byStream.get(e.ev.stream).push(e);
  }
  const names = new Set([...streamIds(), ...byStream.keys()]);
  for (const row of $("timeline").querySelectorAll(".tl-row")) if (!names.has(row.dataset.stream)) row.remove();
  const win = windowSeconds();
  for (const stream of [...names].sort()) {
    const row = ensureRow(stream);
    const list = byStream.get(stream) || [];
    let right = streamNow(stream) ?? 0;
    for (const e of list) right = Math.max(right, e.ev.t_end, e.ev.t);
    const left = win ? Math.max(0, right - win) : 0;
    const span = Math.max(right - left, 1);
    row.querySelector(".tl-range").textContent = `${fmtMedia(left)} – ${fmtMedia(right)}`;
    const track = row.querySelector(".tl-track");
    // One lane per event type, so a long phase never hides a cut.
    const lanes = EVENT_TYPES.filter((t) => list.some((e) => e.ev.type === t));
    for (const e of list) if (!lanes.includes(e.ev.type)) lanes.push(e.ev.type);
    track.style.height = `${Math.max(1, lanes.length) * LANE_PX + 4}px`;
    for (const e of list) {
      const ev = e.ev;
      const start = Math.min(ev.t_start, ev.t_end);
      const end = Math.max(ev.t_start, ev.t_end);
      if (end < left) {
        e.bar.hidden = true;
        continue;
      }
      e.bar.hidden = false;
      e.bar.style.top = `${2 + lanes.indexOf(ev.type) * LANE_PX}px`;
      e.bar.style.left = `${(100 * (Math.max(start, left) - left)) / span}%`;
      e.bar.style.width = `${(100 * (end - Math.max(start, left))) / span}%`;
      if (e.bar.parentNode !== track) track.appendChild(e.bar);
    }
  }
}

export function setupTimeline() {
  $("timeline-window").addEventListener("change", renderTimeline);
  on("streams-changed", scheduleRender);
  on("streams-info", scheduleRender);
}
