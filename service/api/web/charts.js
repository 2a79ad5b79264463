// Line charts as inline SVG (no library): axes with round ticks, one polyline per series,
// a dot per point with a tooltip, a legend under the plot.

import {esc} from "./format.js";

export const PALETTE = {
  blue: "#2563eb", orange: "#ea580c", green: "#16a34a", violet: "#7c3aed", slate: "#64748b", red: "#dc2626",
};

const MARGIN = {left: 54, right: 14, top: 12, bottom: 36};

/** A "nice" step (1, 2 or 5 times a power of ten) near `raw`. */
function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

/** Round ticks covering [lo, hi], about `count` of them, and how many decimals they need. */
export function ticks(lo, hi, count = 5) {
  if (!(hi - lo > 1e-12)) {
    const pad = Math.abs(lo) * 0.05 || 0.05;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep((hi - lo) / count);
  const first = Math.floor(lo / step) * step;
  const last = Math.ceil(hi / step) * step;
  const values = [];
  for (let v = first; v <= last + step / 2; v += step) values.push(Number(v.toFixed(12)));
  return {values, min: first, max: last, decimals: Math.max(0, -Math.floor(Math.log10(step)))};
}

function xTicks(x0, x1) {
  const step = Math.max(1, niceStep((x1 - x0) / 8));
  const values = [];
  for (let v = Math.ceil(x0 / step) * step; v <= x1; v += step) values.push(v);
  return values;
}

/**
 * An SVG line chart (HTML string).
 * @param {Array<{name: string, color: string, points: Array<[number, number]>, dashed?: boolean}>} series
 * @param {{label: string, xLabel?: string, width?: number, height?: number, empty?: string}} options
 */
export function lineChart(series, {label, xLabel = "epoch", width = 480, height = 220, empty}) {
  const drawn = series
    .map((s) => ({...s, points: s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]))}))
    .filter((s) => s.points.length > 0);
  if (drawn.length === 0) {
    return `<div class="chart-empty">${esc(empty || "waiting for the first epoch…")}</div>`;
  }
  const all = drawn.flatMap((s) => s.points);
  const x0 = Math.min(...all.map((p) => p[0]));
  const x1 = Math.max(x0 + 1, ...all.map((p) => p[0]));
  const y = ticks(Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1])));
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const X = (v) => (MARGIN.left + ((v - x0) / (x1 - x0)) * plotW).toFixed(1);
  const Y = (v) => (MARGIN.top + plotH - ((v - y.min) / (y.max - y.min)) * plotH).toFixed(1);

  const grid = y.values.map((v) => `<line class="gridline" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${Y(v)}" y2="${Y(v)}"/>
    <text class="tick" x="${MARGIN.left - 6}" y="${Number(Y(v)) + 3.5}" text-anchor="end">${v.toFixed(y.decimals)}</text>`);
  const xAxis = xTicks(x0, x1).map((v) => `<line class="axis" x1="${X(v)}" x2="${X(v)}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH + 4}"/>
    <text class="tick" x="${X(v)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${v}</text>`);
  const lines = drawn.map((s) => {
    const path = s.points.map((p) => `${X(p[0])},${Y(p[1])}`).join(" ");
    const dots = s.points.length > 60 ? "" : s.points.map((p) =>
      `<circle cx="${X(p[0])}" cy="${Y(p[1])}" r="2.6" fill="${s.color}"><title>${esc(s.name)} · ${esc(xLabel)} ${p[0]}: ${p[1].toPrecision(5)}</title></circle>`).join("");
    const dash = s.dashed ? ' stroke-dasharray="5 4"' : "";
    return `<g class="series"><polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${path}"/>${dots}</g>`;
  });
  const legend = drawn.map((s) =>
    `<span class="key"><svg class="swatch" viewBox="0 0 16 4" aria-hidden="true"><line x1="0" x2="16" y1="2" y2="2" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="4 3"' : ""}/></svg>${esc(s.name)}</span>`);
  return `<figure class="chart">
    <svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(label)}" preserveAspectRatio="xMidYMid meet">
      ${grid.join("")}
      <line class="axis" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}"/>
      ${xAxis.join("")}
      <text class="axis-label" x="${MARGIN.left + plotW / 2}" y="${height - 4}" text-anchor="middle">${esc(xLabel)}</text>
      ${lines.join("")}
    </svg>
    <figcaption class="legend">${legend.join("")}</figcaption>
  </figure>`;
}
