// dinostream live dashboard: vanilla JS, no build step, no external resources.
// Live data arrives over /ws/events (hello, event, frame); search posts to /api/v1/search.
"use strict";

(() => {
  const MAX_EVENTS = 200;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const streams = new Map(); // stream id -> {info, tile, img, loading (ms since epoch or 0), pendingUrl}
  const events = new Map(); // event id -> <li>
  let eventTotal = 0;

  // ---------- formatting ----------

  function fmtMedia(t) {
    if (typeof t !== "number" || !isFinite(t)) return "–";
    const h = Math.floor(t / 3600);
    const m = Math.floor((t % 3600) / 60);
    const s = (t % 60).toFixed(1).padStart(4, "0");
    const mm = String(m).padStart(2, "0");
    return h > 0 ? `${h}:${mm}:${s}` : `${mm}:${s}`;
  }

  function fmtClock(ts) {
    if (typeof ts !== "number" || !isFinite(ts)) return "";
    return new Date(ts * 1000).toLocaleTimeString();
  }

  function fmtScore(score) {
    return typeof score === "number" && isFinite(score) ? score.toFixed(3) : "–";
  }

  function frameThumbUrl(stream, seq) {
    return `/api/v1/frames/${encodeURIComponent(stream)}/${encodeURIComponent(seq)}/thumbnail.jpg`;
  }

  function fromTemplate(id) {
    return $(id).content.firstElementChild.cloneNode(true);
  }

  // ---------- connection status ----------

  function setConnection(state, text) {
    const el = $("connection");
    el.className = `conn conn-${state}`;
    $("connection-text").textContent = text;
  }

  // ---------- streams ----------

  function updateBanner() {
    const untrained = [...streams.values()].filter((s) => s.info.untrained);
    const banner = $("untrained-banner");
    banner.hidden = untrained.length === 0;
    if (untrained.length) {
      const models = [...new Set(untrained.map((s) => s.info.model).filter(Boolean))];
      $("untrained-streams").textContent =
        `streams: ${untrained.map((s) => s.info.stream).join(", ")}` + (models.length ? ` · model: ${models.join(", ")}` : "");
    }
  }

  function updateCounts() {
    $("stream-count").textContent = `${streams.size} stream${streams.size === 1 ? "" : "s"}`;
    $("event-count").textContent = `${eventTotal} event${eventTotal === 1 ? "" : "s"}`;
    $("stream-empty").hidden = streams.size > 0;
    $("event-empty").hidden = events.size > 0;
  }

  function ensureStream(id) {
    let s = streams.get(id);
    if (s) return s;
    const tile = fromTemplate("stream-tile-template");
    tile.dataset.stream = id;
    const img = tile.querySelector("img");
    s = { info: { stream: id }, tile, img, loading: 0, pendingUrl: null };
    img.addEventListener("load", () => {
      tile.classList.add("has-thumb");
      nextThumb(s);
    });
    img.addEventListener("error", () => nextThumb(s));
    streams.set(id, s);
    const grid = $("stream-grid");
    const after = [...grid.querySelectorAll(".tile")].find((t) => t.dataset.stream > id);
    grid.insertBefore(tile, after || null);
    return s;
  }

  // Keep at most one thumbnail request in flight per tile; remember only the newest URL.
  function setThumb(s, url) {
    if (!url) return;
    if (s.loading && Date.now() - s.loading < 10000) {
      s.pendingUrl = url;
      return;
    }
    s.loading = Date.now(); // a request that never settles stops blocking after 10 s
    s.img.src = url;
  }

  function nextThumb(s) {
    s.loading = 0;
    const url = s.pendingUrl;
    s.pendingUrl = null;
    if (url) setThumb(s, url);
  }

  function renderStream(s) {
    const i = s.info;
    s.tile.querySelector(".tile-name").textContent = i.stream;
    s.tile.querySelector(".tile-time").textContent = fmtMedia(i.t);
    s.tile.querySelector(".tile-badge").hidden = !i.untrained;
    s.tile.classList.toggle("untrained", !!i.untrained);
    const parts = [];
    if (i.seq !== null && i.seq !== undefined) parts.push(`frame #${i.seq}`);
    if (i.frames) parts.push(`${i.frames} seen`);
    if (i.model) parts.push(i.model);
    if (i.last_event_ts) parts.push(`last event ${fmtClock(i.last_event_ts)}`);
    s.tile.querySelector(".tile-sub").textContent = parts.join(" · ");
    s.img.alt = `latest frame of ${i.stream}`;
  }

  function onHello(msg) {
    const seen = new Set(Object.keys(msg.streams || {}));
    for (const [id, s] of streams) {
      if (!seen.has(id)) {
        s.tile.remove();
        streams.delete(id);
      }
    }
    for (const [id, info] of Object.entries(msg.streams || {})) {
      const s = ensureStream(id);
      s.info = info;
      renderStream(s);
      setThumb(s, info.thumbnail_url);
    }
    updateBanner();
    updateCounts();
  }

  function onFrame(msg) {
    const s = ensureStream(msg.stream);
    s.info = {
      ...s.info,
      stream: msg.stream,
      seq: msg.seq,
      t: msg.t,
      frames: (s.info.frames || 0) + 1,
      model: msg.model ?? s.info.model,
      untrained: !!msg.untrained,
    };
    renderStream(s);
    setThumb(s, msg.thumbnail_url);
    updateBanner();
    updateCounts();
  }

  // ---------- events ----------

  function retryOnce(img) {
    // The index may store a frame a moment after the event that refers to it: retry once.
    img.addEventListener("error", () => {
      if (img.dataset.retried) {
        img.closest("figure").classList.add("missing");
        return;
      }
      img.dataset.retried = "1";
      const src = img.getAttribute("src");
      setTimeout(() => {
        if (img.getAttribute("src") === src) img.src = `${src}?retry=1`;
      }, 2000);
    });
  }

  function onEvent(ev) {
    let li = events.get(ev.id);
    const isNew = !li;
    if (isNew) {
      li = fromTemplate("event-template");
      events.set(ev.id, li);
      eventTotal += 1;
    }
    li.dataset.type = ev.type;
    li.querySelector(".event-type").textContent = ev.type.replace("_", " ");
    li.querySelector(".event-stream").textContent = ev.stream;
    li.querySelector(".event-time").textContent = `${fmtMedia(ev.t)} · ${fmtClock(ev.ts)}`;
    li.querySelector(".event-score").textContent = `score ${fmtScore(ev.score)}`;
    const frames = Array.isArray(ev.frames) ? ev.frames : [];
    const box = li.querySelector(".event-frames");
    if (frames.length >= 2) {
      const [before, after] = box.querySelectorAll("img");
      const urls = [frameThumbUrl(ev.stream, frames[0]), frameThumbUrl(ev.stream, frames[frames.length - 1])];
      [before, after].forEach((img, k) => {
        if (img.getAttribute("src") !== urls[k]) {
          if (!img.dataset.bound) {
            retryOnce(img);
            img.dataset.bound = "1";
          }
          delete img.dataset.retried;
          img.closest("figure").classList.remove("missing");
          img.src = urls[k];
        }
      });
      box.hidden = false;
    } else {
      box.hidden = true;
    }
    const feed = $("event-feed");
    feed.insertBefore(li, feed.firstChild); // newest (or just updated) first
    while (events.size > MAX_EVENTS) {
      const last = feed.lastElementChild;
      for (const [id, el] of events) {
        if (el === last) {
          events.delete(id);
          break;
        }
      }
      last.remove();
    }
    const s = streams.get(ev.stream);
    if (s) {
      s.info.last_event_ts = ev.ts;
      s.info.last_event_t = ev.t;
      renderStream(s);
    }
    updateCounts();
  }

  // ---------- websocket with backoff ----------

  let backoff = BACKOFF_MIN_MS;
  let socket = null;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    setConnection("connecting", "connecting…");
    socket = new WebSocket(`${scheme}://${location.host}/ws/events`);
    socket.addEventListener("message", (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (msg.kind === "hello") {
        backoff = BACKOFF_MIN_MS;
        setConnection("live", "live");
        onHello(msg);
      } else if (msg.kind === "event" && msg.event) {
        onEvent(msg.event);
      } else if (msg.kind === "frame") {
        onFrame(msg);
      }
    });
    socket.addEventListener("close", (e) => {
      const delay = Math.round(backoff * (0.75 + Math.random() * 0.5));
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      const why = e.code === 1013 || e.code === 1008 ? `dropped (${e.reason || "too slow"})` : "disconnected";
      setConnection("down", `${why} · retrying in ${(delay / 1000).toFixed(1)} s`);
      setTimeout(connect, delay);
    });
  }

  // ---------- search ----------

  let previewUrl = null;

  function showPreview(file) {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = file ? URL.createObjectURL(file) : null;
    const img = $("search-preview");
    img.hidden = !previewUrl;
    if (previewUrl) img.src = previewUrl;
    $("search-file-label").textContent = file ? file.name : "Choose or drop a picture";
  }

  async function runSearch(ev) {
    ev.preventDefault();
    const file = $("search-image").files[0];
    const status = $("search-status");
    const results = $("search-results");
    if (!file) {
      status.textContent = "Choose a picture first.";
      status.className = "search-status error";
      return;
    }
    const body = new FormData();
    body.append("image", file);
    body.append("limit", $("search-limit").value || "10");
    const wanted = $("search-streams").value.trim();
    if (wanted) body.append("streams", wanted);
    $("search-submit").disabled = true;
    status.className = "search-status";
    status.textContent = "Searching…";
    try {
      const resp = await fetch("/api/v1/search", { method: "POST", body });
      const data = await resp.json().catch(() => null);
      if (!resp.ok) {
        const msg = data && data.error ? data.error.message : `HTTP ${resp.status}`;
        throw new Error(msg);
      }
      results.replaceChildren();
      for (const r of data.results) {
        const fig = fromTemplate("result-template");
        const img = fig.querySelector("img");
        img.src = r.thumbnail_url;
        img.alt = `${r.stream} at ${fmtMedia(r.t)}`;
        fig.querySelector(".result-stream").textContent = r.stream;
        fig.querySelector(".result-time").textContent = `${fmtMedia(r.t)} · ${fmtClock(r.ts)}`;
        fig.querySelector(".result-score").textContent = fmtScore(r.score);
        results.appendChild(fig);
      }
      const n = data.results.length;
      status.textContent = `${n} result${n === 1 ? "" : "s"}` + (data.untrained ? " — untrained features: scores are meaningless" : "");
      status.className = data.untrained ? "search-status warn" : "search-status";
    } catch (err) {
      status.textContent = `Search failed: ${err.message}`;
      status.className = "search-status error";
    } finally {
      $("search-submit").disabled = false;
    }
  }

  function setupSearch() {
    const input = $("search-image");
    input.addEventListener("change", () => showPreview(input.files[0]));
    const drop = input.closest(".file-drop");
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("dragging");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("dragging");
      if (e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        showPreview(input.files[0]);
      }
    });
    $("search-form").addEventListener("submit", runSearch);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupSearch();
    updateCounts();
    connect();
  });
})();
