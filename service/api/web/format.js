// Formatting helpers shared by the views: escaping, numbers, times, badges, progress bars.

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
export const STATUSES = ["queued", "running", "pending", "succeeded", "failed", "cancelled"];

const ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};

/** Text made safe for HTML (element content and quoted attributes). */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** A number with `digits` decimals, trailing zeros dropped; "–" when missing. */
export function num(value, digits = 4) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  const fixed = value.toFixed(digits);
  return fixed.includes(".") ? fixed.replace(/\.?0+$/, "") : fixed;
}

/** A count in k / M / G (parameters, FLOPs). */
export function compact(value) {
  if (typeof value !== "number") return "–";
  const units = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [size, unit] of units) {
    if (Math.abs(value) >= size) return `${num(value / size, 2)}${unit}`;
  }
  return String(value);
}

/** A duration in seconds as "42.0 s", "3 min 5 s", "2 h 10 min". */
export function duration(seconds) {
  if (typeof seconds !== "number") return "–";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** How long ago an ISO time was: "12 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function age(iso, now = Date.now()) {
  if (!iso) return "–";
  const seconds = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

export function statusBadge(status) {
  return `<span class="badge status-${esc(status)}">${esc(status)}</span>`;
}

/** A thin progress bar with its percentage (the list's cells). */
export function progressBar(progress) {
  const pct = Math.round(100 * (progress || 0));
  // an SVG bar: its width is an attribute, not a style one (the page's CSP allows no inline style)
  return `<svg class="bar" viewBox="0 0 100 1" preserveAspectRatio="none" role="img" aria-label="${pct}%"><rect class="bar-fill" width="${pct}" height="1"/></svg>
    <span class="bar-text">${pct}%</span>`;
}

/** "3 of 8" epochs done (the store's epoch is the last finished one, 0-based). */
export function epochsDone(search) {
  const done = search.epoch == null ? 0 : search.epoch + 1;
  return `${done} of ${search.total_epochs}`;
}
