// Drawing over a frame: heatmaps (anomaly scores, patch similarity), click-to-segment masks and
// boxes, on a <canvas> laid exactly over the frame's <img>. Pure drawing, no network.

/** A heatmap as the API sends it ({h, w, u8: base64 of h*w bytes}) -> {h, w, values: 0..1}. */
export function decodeHeatmap(hm) {
  if (!hm || !hm.u8) return null;
  const raw = atob(hm.u8);
  const values = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) values[i] = raw.charCodeAt(i) / 255;
  return { h: hm.h, w: hm.w, values };
}

/** A 2-D array of numbers (rows) -> {h, w, values} (values kept as given). */
export function gridFromRows(rows) {
  const h = rows.length;
  const w = h ? rows[0].length : 0;
  const values = new Float32Array(h * w);
  rows.forEach((row, r) => row.forEach((v, c) => (values[r * w + c] = v)));
  return { h, w, values };
}

/** The cells at least `threshold` similar that are 4-connected to the clicked cell (which is
 * always selected): the same rule as the server's click_to_segment, so a slider can move it. */
export function floodMask(grid, cell, threshold) {
  const { h, w, values } = grid;
  const mask = new Uint8Array(h * w);
  const start = cell.r * w + cell.c;
  const stack = [start];
  mask[start] = 1;
  while (stack.length) {
    const i = stack.pop();
    const r = Math.floor(i / w);
    const c = i % w;
    for (const [nr, nc] of [[r - 1, c], [r + 1, c], [r, c - 1], [r, c + 1]]) {
      if (nr < 0 || nc < 0 || nr >= h || nc >= w) continue;
      const j = nr * w + nc;
      if (!mask[j] && values[j] >= threshold) {
        mask[j] = 1;
        stack.push(j);
      }
    }
  }
  return mask;
}

/** The grid cell under a normalised point, as the server picks it. */
export function gridCell(grid, x, y) {
  return { r: Math.min(Math.floor(y * grid.h), grid.h - 1), c: Math.min(Math.floor(x * grid.w), grid.w - 1) };
}

/** The normalised box around a mask's cells, or null when empty. */
export function maskBox(grid, mask) {
  let r0 = Infinity, r1 = -1, c0 = Infinity, c1 = -1;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const r = Math.floor(i / grid.w), c = i % grid.w;
    r0 = Math.min(r0, r); r1 = Math.max(r1, r); c0 = Math.min(c0, c); c1 = Math.max(c1, c);
  }
  if (r1 < 0) return null;
  return { x0: c0 / grid.w, y0: r0 / grid.h, x1: (c1 + 1) / grid.w, y1: (r1 + 1) / grid.h };
}

// "inferno"-like ramp: transparent dark purple -> red -> yellow, opacity growing with the value.
function ramp(v) {
  const t = Math.max(0, Math.min(1, v));
  const r = Math.round(255 * Math.min(1, 0.2 + 1.6 * t));
  const g = Math.round(255 * Math.max(0, Math.min(1, 1.8 * t - 0.6)));
  const b = Math.round(255 * Math.max(0, 0.45 - t) * 1.6);
  return [r, g, b, Math.round(255 * (0.06 + 0.6 * t * t))];
}

/** Size the canvas to its displayed size (device pixels) and clear it; returns the 2-D context. */
export function resetCanvas(canvas) {
  const rect = canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(rect.width * dpr));
  canvas.height = Math.max(1, Math.round(rect.height * dpr));
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  return ctx;
}

/** Draw `grid` (values mapped by `lo..hi` to 0..1) smoothly over the whole canvas. */
export function drawHeatmap(ctx, grid, lo = 0, hi = 1) {
  const small = document.createElement("canvas");
  small.width = grid.w;
  small.height = grid.h;
  const sctx = small.getContext("2d");
  const img = sctx.createImageData(grid.w, grid.h);
  const span = hi - lo || 1;
  for (let i = 0; i < grid.values.length; i++) {
    const [r, g, b, a] = ramp((grid.values[i] - lo) / span);
    img.data.set([r, g, b, a], i * 4);
  }
  sctx.putImageData(img, 0, 0);
  ctx.save();
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(small, 0, 0, ctx.canvas.width, ctx.canvas.height);
  ctx.restore();
}

/** Fill the selected cells and outline their box. */
export function drawMask(ctx, grid, mask, colour = "rgba(56, 225, 255, 0.45)") {
  const cw = ctx.canvas.width / grid.w;
  const ch = ctx.canvas.height / grid.h;
  ctx.save();
  ctx.fillStyle = colour;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const r = Math.floor(i / grid.w), c = i % grid.w;
    ctx.fillRect(c * cw, r * ch, Math.ceil(cw), Math.ceil(ch));
  }
  ctx.restore();
  const box = maskBox(grid, mask);
  if (box) drawBoxes(ctx, [{ ...box, label: "" }], "#38e1ff");
}

/** Boxes in 0..1 coordinates with optional label and score. */
export function drawBoxes(ctx, boxes, colour = "#f0a020") {
  const W = ctx.canvas.width, H = ctx.canvas.height;
  const dpr = window.devicePixelRatio || 1;
  ctx.save();
  ctx.lineWidth = 2 * dpr;
  ctx.strokeStyle = colour;
  ctx.font = `${12 * dpr}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const b of boxes || []) {
    const x = b.x0 * W, y = b.y0 * H, w = (b.x1 - b.x0) * W, h = (b.y1 - b.y0) * H;
    ctx.strokeRect(x, y, w, h);
    const text = [b.label, typeof b.score === "number" && b.label ? b.score.toFixed(2) : ""].filter(Boolean).join(" ");
    if (text) {
      const tw = ctx.measureText(text).width + 8 * dpr;
      ctx.fillStyle = colour;
      ctx.fillRect(x, Math.max(0, y - 16 * dpr), tw, 16 * dpr);
      ctx.fillStyle = "#111";
      ctx.fillText(text, x + 4 * dpr, Math.max(0, y - 16 * dpr) + 2 * dpr);
    }
  }
  ctx.restore();
}

/** Mark the clicked point. */
export function drawPoint(ctx, x, y) {
  const dpr = window.devicePixelRatio || 1;
  ctx.save();
  ctx.beginPath();
  ctx.arc(x * ctx.canvas.width, y * ctx.canvas.height, 6 * dpr, 0, 2 * Math.PI);
  ctx.lineWidth = 2 * dpr;
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "rgba(56, 225, 255, 0.9)";
  ctx.fill();
  ctx.stroke();
  ctx.restore();
}
