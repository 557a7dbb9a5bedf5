// dinostream operator dashboard: plain JS modules, no build step, no external resources.
// Live data arrives over /ws/events (hello, event, frame, resume_gap, and batch: several of those in
// one websocket message, asked for with "batch": true); the panels use the HTTP API
// (streams, search, segment, watchlist). Modules talk through the page bus in util.js.

import { $, apiToken, askToken } from "./util.js";
import { onEventSeen, onFrame, onHello, setupStreams, untrainedStreams } from "./streams.js";
import { onEvent, setupTimeline } from "./timeline.js";
import { setupInspector } from "./inspector.js";
import { setupSearch } from "./search.js";
import { setupWatchlist } from "./watchlist.js";

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;

function setConnection(state, text) {
  $("connection").className = `conn conn-${state}`;
  $("connection-text").textContent = text;
}

function updateBanner() {
  const untrained = untrainedStreams();
  const banner = $("untrained-banner");
  banner.hidden = untrained.length === 0;
  if (untrained.length) {
    const models = [...new Set(untrained.map((i) => i.model).filter(Boolean))];
    $("untrained-streams").textContent =
      `streams: ${untrained.map((i) => i.stream).join(", ")}` + (models.length ? ` · model: ${models.join(", ")}` : "");
  }
}

// ---------- websocket with backoff and resume ----------
// The first message subscribes: {"token"?, "resume_from"?, "batch": true}. Every event carries a
// cursor; on reconnect we resume from the last one, so nothing is missed or shown twice.

let backoff = BACKOFF_MIN_MS;
let lastCursor = null;

function handleMessage(msg) {
  if (msg.kind === "hello") {
    backoff = BACKOFF_MIN_MS;
    setConnection("live", "live");
    onHello(msg);
    updateBanner();
  } else if (msg.kind === "event" && msg.event) {
    if (msg.cursor) lastCursor = msg.cursor;
    onEvent(msg.event);
    onEventSeen(msg.event);
  } else if (msg.kind === "frame") {
    onFrame(msg);
    updateBanner();
  } else if (msg.kind === "resume_gap") {
    setConnection("live", `live · some events were missed (${msg.missed ?? "?"})`);
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  setConnection("connecting", "connecting…");
  const socket = new WebSocket(`${scheme}://${location.host}/ws/events`, ["dinostream.v1"]);
  socket.addEventListener("open", () => {
    const first = { batch: true };
    const token = apiToken();
    if (token) first.token = token;
    if (lastCursor) first.resume_from = lastCursor;
    socket.send(JSON.stringify(first));
  });
  socket.addEventListener("message", (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    // A busy gateway sends what queued up for us as one batch: the same messages, in order.
    if (msg.kind === "batch" && Array.isArray(msg.messages)) msg.messages.forEach(handleMessage);
    else handleMessage(msg);
  });
  socket.addEventListener("close", async (e) => {
    if (e.code === 4401) {
      // The server needs a (valid) token: ask for it once, then connect again at once.
      setConnection("down", `unauthorized (${e.reason || "token"})`);
      if (await askToken(`The live feed needs an access token (${e.reason || "token"}).`)) {
        connect();
        return;
      }
    }
    const delay = Math.round(backoff * (0.75 + Math.random() * 0.5));
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    let why = "disconnected";
    if (e.code === 4401) why = `unauthorized (${e.reason || "token"}): reload the page to give a token`;
    else if (e.code === 1013 || e.code === 1008 || e.code >= 4000) why = `dropped (${e.reason || "too slow"})`;
    setConnection("down", `${why} · retrying in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(connect, delay);
  });
}

function start() {
  setupStreams();
  setupTimeline();
  setupInspector();
  setupSearch();
  setupWatchlist();
  connect();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
