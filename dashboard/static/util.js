// Small shared helpers: DOM lookup, formatting, the JSON API client and a page-wide event bus.

export const $ = (id) => document.getElementById(id);

export const EVENT_TYPES = ["scene_change", "anomaly", "reid", "watchlist", "phase"];

export function fromTemplate(id) {
  return $(id).content.firstElementChild.cloneNode(true);
}

export function fmtMedia(t) {
  if (typeof t !== "number" || !isFinite(t)) return "–";
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = (t % 60).toFixed(1).padStart(4, "0");
  const mm = String(m).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${s}` : `${mm}:${s}`;
}

export function fmtClock(ts) {
  if (typeof ts !== "number" || !isFinite(ts)) return "";
  return new Date(ts * 1000).toLocaleTimeString();
}

export function fmtScore(score) {
  return typeof score === "number" && isFinite(score) ? score.toFixed(3) : "–";
}

export function typeLabel(type) {
  return String(type || "").replace(/_/g, " ");
}

export function frameThumbUrl(stream, seq) {
  return `/api/v1/frames/${encodeURIComponent(stream)}/${encodeURIComponent(seq)}/thumbnail.jpg`;
}

export function latestThumbUrl(stream, seq) {
  return `/api/v1/streams/${encodeURIComponent(stream)}/thumbnail.jpg?seq=${encodeURIComponent(seq ?? 0)}`;
}

// ---------- the API token (only when the server requires one) ----------
// It comes from the page URL's #token=... fragment, never the query string, and is kept in
// sessionStorage for this tab.

export function apiToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("dinostream-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search); // keep it out of the address bar
  }
  return sessionStorage.getItem("dinostream-token");
}

// ---------- JSON API ----------

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** fetch() a JSON endpoint. `body` may be FormData (multipart) or a plain object (sent as JSON).
 * Resolves to the parsed JSON; rejects with ApiError carrying the server's one-line message. */
export async function api(method, path, body) {
  const init = { method, headers: {} };
  const token = apiToken();
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", `cannot reach the server: ${err.message}`);
  }
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = data && data.error;
    throw new ApiError(resp.status, e ? e.code : "http_error", e ? e.message : `HTTP ${resp.status} ${resp.statusText}`);
  }
  return data;
}

// ---------- a page-wide bus: modules talk through named events, not imports of each other ----------

export function emit(name, detail) {
  document.dispatchEvent(new CustomEvent(`ds:${name}`, { detail }));
}

export function on(name, fn) {
  document.addEventListener(`ds:${name}`, (e) => fn(e.detail));
}

/** Show a status line: kind is "", "error", "warn" or "ok". */
export function setStatus(el, text, kind = "") {
  el.textContent = text;
  el.className = `status${kind ? ` ${kind}` : ""}`;
}
