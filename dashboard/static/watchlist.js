// Watchlist management: list what the analytics look for, add an uploaded crop, remove.
// (Adding from a click on a live frame is in the inspector.)

import { $, api, on, setStatus } from "./util.js";

async function refresh() {
  const list = $("watchlist-list");
  let data;
  try {
    data = await api("GET", "/api/v1/watchlist");
  } catch (err) {
    setStatus($("watchlist-status"), `Watchlist unavailable: ${err.message}`, "error");
    return;
  }
  list.replaceChildren();
  for (const ex of data.exemplars) {
    const li = document.createElement("li");
    li.className = "wl-item";
    li.dataset.id = ex.id;
    const name = document.createElement("span");
    name.className = "wl-label";
    name.textContent = ex.label || "(no label)";
    const id = document.createElement("span");
    id.className = "wl-id";
    id.textContent = ex.id;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "quiet";
    remove.textContent = "remove";
    remove.setAttribute("aria-label", `remove ${ex.label || ex.id} from the watchlist`);
    remove.addEventListener("click", () => removeExemplar(ex, remove));
    li.append(name, id, remove);
    list.appendChild(li);
  }
  $("watchlist-empty").hidden = data.exemplars.length > 0;
}

async function removeExemplar(ex, button) {
  button.disabled = true;
  try {
    await api("DELETE", `/api/v1/watchlist/${encodeURIComponent(ex.id)}`);
    setStatus($("watchlist-status"), `Removed “${ex.label || ex.id}”.`, "ok");
  } catch (err) {
    setStatus($("watchlist-status"), `Could not remove: ${err.message}`, "error");
  }
  await refresh();
}

async function addCrop(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const file = $("watchlist-image").files[0];
  const label = $("watchlist-label").value.trim();
  if (!file) {
    setStatus($("watchlist-status"), "Choose a cropped picture of what to look for.", "error");
    return;
  }
  const body = new FormData();
  body.append("image", file);
  body.append("label", label);
  try {
    const added = await api("POST", "/api/v1/watchlist", body);
    setStatus($("watchlist-status"), `Watching for “${added.label || added.id}”.`, "ok");
    form.reset();
  } catch (err) {
    setStatus($("watchlist-status"), `Could not add: ${err.message}`, "error");
  }
  await refresh();
}

export function setupWatchlist() {
  $("watchlist-form").addEventListener("submit", addCrop);
  on("watchlist-changed", refresh);
  refresh();
}
