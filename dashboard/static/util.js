// Small shared helpers: DOM lookup, formatting, the JSON API client and a page-wide event bus.

export const $ = (id) => document.getElementById(id);

export const EVENT_TYPES = ["scene_change", "anomaly", "reid", "watchlist", "phase", "quality"];

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
// Asked for once, when the server first answers 401 (or the websocket closes with 4401), and kept in
// sessionStorage for this tab. A #token=... fragment of the page URL (never the query string) works too.

const TOKEN_KEY = "dinostream-token";
let asking = null; // one dialog for every request that needs the token at once

export function apiToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search); // keep it out of the address bar
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Ask for the access token (the server said `why`); resolves to it, or null when the user cancels. */
export function askToken(why) {
  if (asking) return asking;
  sessionStorage.removeItem(TOKEN_KEY);
  const dialog = $("token-dialog");
  $("token-why").textContent = why || "This dinostream needs an access token.";
  $("token-input").value = "";
  asking = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const token = dialog.returnValue === "ok" ? $("token-input").value.trim() : "";
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        asking = null;
        resolve(token || null);
      },
      { once: true },
    );
  });
  dialog.showModal();
  return asking;
}

function authHeaders() {
  const token = apiToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// ---------- JSON API ----------

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** fetch() with the token, asking for one (and trying again) while the server answers 401. */
async function authedFetch(path, init) {
  for (;;) {
    const resp = await fetch(path, { ...init, headers: { ...init.headers, ...authHeaders() } });
    if (resp.status !== 401) return resp;
    const data = await resp.clone().json().catch(() => null);
    const why = data && data.error ? data.error.message : "This dinostream needs an access token.";
    if (!(await askToken(why))) return resp;
  }
}

/** fetch() a JSON endpoint. `body` may be FormData (multipart) or a plain object (sent as JSON).
 * Resolves to the parsed JSON; rejects with ApiError carrying the server's one-line message. */
export async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await authedFetch(path, init);
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

const shown = new WeakMap(); // img -> the object URL it shows

/** Show the picture at `url` (an API path) in `img`. With a token the picture is fetched with it
 * (an <img> cannot send headers) and shown from a blob; `load` and `error` fire on `img` as usual. */
export async function showImage(img, url) {
  if (!apiToken()) {
    img.src = url;
    return;
  }
  try {
    const resp = await authedFetch(url, { headers: {} });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const blobUrl = URL.createObjectURL(await resp.blob());
    const previous = shown.get(img);
    shown.set(img, blobUrl);
    img.addEventListener("load", () => previous && URL.revokeObjectURL(previous), { once: true });
    img.src = blobUrl;
  } catch {
    img.dispatchEvent(new Event("error"));
  }
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
