// The retraining results of a search: a table of runs and each run's curves.

import {PALETTE, lineChart} from "./charts.js";
import {TERMINAL, compact, duration, esc, num, statusBadge} from "./format.js";

function curvePoints(curve, key) {
  return curve.filter((row) => typeof row[key] === "number").map((row) => [row.epoch, row[key]]);
}

function has(curve, key) {
  return curve.some((row) => typeof row[key] === "number");
}

/** The charts of one run: accuracy (or perplexity) and training loss per epoch. */
function runCharts(run) {
  const curve = (run.metrics && run.metrics.curve) || [];
  const empty = run.status === "queued" ? "queued" : "waiting for the first epoch…";
  const quality = has(curve, "valid_perplexity")
    ? lineChart([{name: "valid perplexity", color: PALETTE.violet, points: curvePoints(curve, "valid_perplexity")}],
      {label: `retrain ${run.id}: validation perplexity`, empty, height: 190})
    : lineChart([
      {name: "train accuracy", color: PALETTE.blue, points: curvePoints(curve, "train_accuracy")},
      {name: "valid accuracy", color: PALETTE.green, points: curvePoints(curve, "valid_accuracy")},
    ], {label: `retrain ${run.id}: accuracy`, empty, height: 190});
  const loss = lineChart([{name: "train loss", color: PALETTE.red, points: curvePoints(curve, "train_loss")}],
    {label: `retrain ${run.id}: training loss`, empty, height: 190});
  return `<div class="grid two">${quality}${loss}</div>`;
}

function scoreLabel(run) {
  const metrics = run.metrics || {};
  if ("test_perplexity" in metrics) return "test perplexity";
  return "test accuracy";
}

/** The retraining section's HTML for `retrains` (the API's items). */
export function retrainsHtml(retrains) {
  if (retrains.length === 0) return "";
  const rows = retrains.map((r) => {
    const curve = (r.metrics && r.metrics.curve) || [];
    const last = curve.length ? curve[curve.length - 1] : {};
    return `<tr>
      <td class="num">${r.id}</td>
      <td><button type="button" class="link" data-show-arch="${r.architecture_id}">#${r.architecture_id}</button></td>
      <td>${statusBadge(r.status)}</td>
      <td class="num" title="${esc(scoreLabel(r))}">${num(r.test_score)}</td>
      <td class="num">${curve.length}${r.metrics && r.metrics.epochs ? ` / ${r.metrics.epochs}` : ""}</td>
      <td class="num">${num(last.valid_accuracy ?? last.valid_perplexity)}</td>
      <td class="num">${compact(r.params)}</td>
      <td class="num">${compact(r.flops)}</td>
      <td class="num">${duration(r.metrics && r.metrics.seconds)}</td>
    </tr>${r.error ? `<tr><td colspan="9" class="error-text">${esc(r.error)}</td></tr>` : ""}`;
  });
  const charts = retrains.map((r) => `<div class="card"><h3>Retrain ${r.id} · architecture #${r.architecture_id}
    ${TERMINAL.has(r.status) ? "" : '<span class="muted">(in progress)</span>'}</h3>${runCharts(r)}</div>`);
  return `<div class="card flush"><table class="table" id="retrain-table"><thead><tr>
      <th class="num">run</th><th>architecture</th><th>status</th><th class="num">test score</th>
      <th class="num">epochs</th><th class="num">last valid</th><th class="num">params</th><th class="num">FLOPs</th>
      <th class="num">time</th></tr></thead><tbody>${rows.join("")}</tbody></table></div>${charts.join("")}`;
}
