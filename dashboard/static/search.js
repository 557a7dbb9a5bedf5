// Search: by an uploaded picture (multipart POST /api/v1/search), and the moments any search
// returns (a point or an event query from the inspector lands here too). A moment opens in the
// inspector.

import { $, api, emit, fmtClock, fmtMedia, fmtScore, fromTemplate, on, setStatus, showImage } from "./util.js";

let previewUrl = null;

function showPreview(file) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = file ? URL.createObjectURL(file) : null;
  const img = $("search-preview");
  img.hidden = !previewUrl;
  if (previewUrl) img.src = previewUrl;
  $("search-file-label").textContent = file ? file.name : "Choose or drop a picture";
}

const QUERY_NAMES = { image: "the picture", point: "the clicked point", event: "the event's frame", frame: "the frame" };

function showResults(data) {
  const results = $("search-results");
  results.replaceChildren();
  for (const m of data.results) {
    const fig = fromTemplate("result-template");
    fig.dataset.stream = m.stream;
    fig.dataset.seq = m.seq;
    const img = fig.querySelector("img");
    showImage(img, m.thumbnail_url);
    img.alt = `${m.stream} at ${fmtMedia(m.t)}`;
    img.addEventListener("error", () => fig.classList.add("missing"));
    fig.querySelector(".result-stream").textContent = m.stream;
    const span = m.end_t > m.start_t ? `${fmtMedia(m.start_t)}–${fmtMedia(m.end_t)}` : fmtMedia(m.t);
    fig.querySelector(".result-time").textContent = span;
    fig.querySelector(".result-when").textContent = `${fmtClock(m.ts)}${m.hits > 1 ? ` · ${m.hits} frames` : ""}`;
    fig.querySelector(".result-score").textContent = fmtScore(m.score);
    fig.addEventListener("click", () =>
      emit("inspect-frame", { stream: m.stream, seq: m.seq, t: m.t, thumbnail_url: m.thumbnail_url }),
    );
    results.appendChild(fig);
  }
  const n = data.results.length;
  const what = QUERY_NAMES[data.query && data.query.kind] || "the query";
  const more = data.total > n ? ` of ${data.total}` : "";
  let text = `${n}${more} moment${data.total === 1 ? "" : "s"} like ${what}`;
  if (data.untrained) text += " — untrained features: scores are meaningless";
  setStatus($("search-status"), text, data.untrained ? "warn" : n ? "ok" : "");
}

async function runSearch(ev) {
  ev.preventDefault();
  const file = $("search-image").files[0];
  if (!file) {
    setStatus($("search-status"), "Choose a picture first.", "error");
    return;
  }
  const body = new FormData();
  body.append("image", file);
  body.append("limit", $("search-limit").value || "10");
  const wanted = $("search-streams").value.trim();
  if (wanted) body.append("streams", wanted);
  $("search-submit").disabled = true;
  setStatus($("search-status"), "Searching…");
  try {
    showResults(await api("POST", "/api/v1/search", body));
  } catch (err) {
    setStatus($("search-status"), `Search failed: ${err.message}`, "error");
  } finally {
    $("search-submit").disabled = false;
  }
}

export function setupSearch() {
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
  on("search-started", (kind) => setStatus($("search-status"), `Searching by ${QUERY_NAMES[kind] || kind}…`));
  on("search-results", showResults);
  on("search-failed", (message) => setStatus($("search-status"), `Search failed: ${message}`, "error"));
}
