// One search at "/ui/searches/{id}": live progress (Server-Sent Events, polling as a fallback),
// training curves, architecture drawings, retraining results, the sampled-architectures table.

import {followEvents, getJSON, getText} from "./api.js";
import {ArchTable} from "./archs.js";
import {PALETTE, lineChart} from "./charts.js";
import {TERMINAL, duration, epochsDone, esc, num, statusBadge, when} from "./format.js";
import {retrainsHtml} from "./retrains.js";

const RETRAIN_POLL_MS = 3000;
const DRAWING_SCALE = 1.3;  // drawings are laid out for 11px text; a little larger reads better here
const LIVE_TEXT = {
  connecting: "connecting…", live: "live", reconnecting: "reconnecting…", polling: "polling", closed: "finished",
};

const FRAME = `
  <nav class="crumbs"><a href="/">Searches</a> <span>/</span> <span id="crumb"></span></nav>
  <div class="page-head">
    <h1 id="search-title"></h1><span id="search-status"></span>
    <span class="spacer"></span><span id="live" class="live" data-mode="connecting">connecting…</span>
  </div>
  <div id="search-error" class="error-box" hidden></div>
  <section class="cards">
    <div class="card stat wide"><div class="label">Progress</div>
      <progress id="progress" max="1" value="0"></progress>
      <div class="value" id="progress-text"></div><div class="muted" id="last-epoch"></div></div>
    <div class="card stat"><div class="label">Best reward</div><div class="value big" id="best-reward"></div>
      <div class="muted" id="best-arch"></div></div>
    <div class="card stat"><div class="label">Search</div><dl class="facts" id="what"></dl></div>
    <div class="card stat"><div class="label">Timing</div><dl class="facts" id="timing"></dl></div>
  </section>
  <section><h2>Training curves</h2><div class="grid charts" id="charts"></div></section>
  <section><h2>Architectures</h2>
    <div class="card"><div class="tabs" id="arch-tabs" role="tablist"></div>
      <div class="drawing" id="drawing"><p class="muted">no architecture yet</p></div>
      <div class="muted drawing-caption" id="drawing-caption"></div></div></section>
  <section id="retrain-section" hidden><h2>Retraining</h2><div id="retrains"></div></section>
  <section><h2>Sampled architectures</h2><div class="card flush" id="archs"></div></section>
  <section><details class="card"><summary>Epoch metrics</summary><div class="table-scroll" id="epochs"></div></details></section>
  <section><details class="card"><summary>Resolved spec</summary><pre id="spec"></pre></details></section>`;

function series(epochs, key) {
  return epochs.filter((e) => typeof e.metrics[key] === "number").map((e) => [e.epoch, e.metrics[key]]);
}

function chartCard(title, html) {
  return `<div class="card"><h3>${esc(title)}</h3>${html}</div>`;
}

function fact(label, value) {
  return `<dt>${esc(label)}</dt><dd>${value}</dd>`;
}

export class SearchView {
  constructor(root, id) {
    this.root = root;
    this.id = Number(id);
    this.search = null;
    this.epochs = [];
    this.derived = [];
    this.retrains = [];
    this.tab = "best";
    this.selected = null;  // an architecture chosen in the table
    this.drawings = new Map();  // architecture id -> SVG text
    this.shownDrawing = null;
    this.retrainTimer = null;
    this.mode = null;
  }

  async start() {
    this.root.innerHTML = FRAME;
    this.archs = new ArchTable(this.root.querySelector("#archs"), this.id, (arch) => {
      this.selected = arch;
      this.tab = "selected";
      this.renderDrawings();
    });
    this.root.querySelector("#arch-tabs").addEventListener("click", (e) => {
      const tab = e.target.closest("button[data-tab]");
      if (tab) this.showTab(tab.dataset.tab);
    });
    this.root.querySelector("#retrains").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-show-arch]");
      if (button) this.showArchitecture(Number(button.dataset.showArch));
    });
    await this.refresh();
    this.archs.load().catch((error) => this.problem(error));
    this.stream = followEvents(`/searches/${this.id}/events`, {
      onEvent: (event) => this.onEvent(event).catch((error) => this.problem(error)),
      onMode: (mode) => this.setMode(mode),
      poll: () => this.refresh().then(() => !TERMINAL.has(this.search.status)),
    });
  }

  /** Fetch the whole state again and draw it. */
  async refresh() {
    const base = `/searches/${this.id}`;
    const [search, epochs, derived, retrains] = await Promise.all([
      getJSON(base), getJSON(`${base}/epochs`), getJSON(`${base}/derived`), getJSON(`${base}/retrains`)]);
    this.search = search;
    this.epochs = epochs.items;
    this.derived = derived.items;
    this.retrains = retrains.items;
    this.renderAll();
    this.problem(null);
  }

  async onEvent(event) {
    if (event.type === "epoch") {
      this.applyEpoch(event);
      this.archs.load({onlyFirst: true}).catch((error) => this.problem(error));
      if (event.best_reward !== this.search.best_reward || this.search.best_architecture_id == null) {
        this.search = await getJSON(`/searches/${this.id}`);
      }
      this.search.best_reward = event.best_reward ?? this.search.best_reward;
      this.renderSummary();
      this.renderDrawings();
    } else if (event.type === "status") {
      this.search = await getJSON(`/searches/${this.id}`);
      this.renderSummary();
    } else if (event.type === "derived") {
      this.derived = (await getJSON(`/searches/${this.id}/derived`)).items;
      this.renderDrawings();
      this.pollRetrains();
    } else if (event.type === "retrained") {
      await this.loadRetrains();
    } else if (event.type === "finished") {
      await this.refresh();
      this.archs.load({onlyFirst: true}).catch((error) => this.problem(error));
    }
  }

  /** Merge an epoch event into the curves without asking the API. */
  applyEpoch(event) {
    const row = {epoch: event.epoch, metrics: event.metrics || {}, duration_s: (event.metrics || {}).duration_s};
    this.epochs = this.epochs.filter((e) => e.epoch !== event.epoch).concat([row]).sort((a, b) => a.epoch - b.epoch);
    this.search.epoch = Math.max(this.search.epoch ?? -1, event.epoch);
    this.search.total_epochs = event.total || this.search.total_epochs;
    this.search.progress = (this.search.epoch + 1) / this.search.total_epochs;
    if (this.search.status === "queued") this.search.status = "running";
    this.renderCharts();
    this.renderEpochTable();
  }

  /** While retraining runs, its curves grow without events: poll them until every run ended. */
  pollRetrains() {
    clearTimeout(this.retrainTimer);
    this.retrainTimer = setTimeout(async () => {
      try {
        await this.loadRetrains();
      } catch (error) {
        this.problem(error);
      }
      const open = this.retrains.length === 0 || this.retrains.some((r) => !TERMINAL.has(r.status));
      if (open && !TERMINAL.has(this.search.status)) this.pollRetrains();
    }, RETRAIN_POLL_MS);
  }

  async loadRetrains() {
    this.retrains = (await getJSON(`/searches/${this.id}/retrains`)).items;
    this.renderRetrains();
  }

  setMode(mode) {
    // Back after a dropped connection: the replay holds only the latest event, so catch up on the rest.
    if (mode === "live" && this.mode === "reconnecting") this.refresh().catch((error) => this.problem(error));
    this.mode = mode;
    const el = this.root.querySelector("#live");
    el.dataset.mode = mode;
    el.textContent = LIVE_TEXT[mode] || mode;
    if (mode === "closed") clearTimeout(this.retrainTimer);
  }

  problem(error) {
    const el = document.getElementById("problem");
    el.textContent = error ? `cannot refresh: ${error.message}` : "";
    el.hidden = !error;
  }

  renderAll() {
    this.renderSummary();
    this.renderCharts();
    this.renderDrawings();
    this.renderRetrains();
    this.renderEpochTable();
    this.root.querySelector("#spec").textContent = JSON.stringify(this.search.spec, null, 2);
    if (!TERMINAL.has(this.search.status) && this.derived.length) this.pollRetrains();
  }

  renderSummary() {
    const s = this.search;
    const spec = s.spec || {};
    const title = s.name ? `${s.name}` : `search ${s.id}`;
    document.title = `${title} · enas-service`;
    this.root.querySelector("#crumb").textContent = `search ${s.id}`;
    this.root.querySelector("#search-title").innerHTML = `${esc(title)}${s.name ? ` <span class="sub">#${s.id}</span>` : ""}`;
    const cancelling = s.cancel_requested && !TERMINAL.has(s.status) ? ' <span class="muted">cancel requested</span>' : "";
    const waiting = s.status === "pending" && s.pending_reason ? ` <span class="muted" id="pending-reason">${esc(s.pending_reason)}</span>` : "";
    this.root.querySelector("#search-status").innerHTML = statusBadge(s.status) + waiting + cancelling;
    const progress = this.root.querySelector("#progress");
    progress.value = s.progress || 0;
    progress.dataset.progress = String(s.progress || 0);
    this.root.querySelector("#progress-text").textContent = `${Math.round(100 * (s.progress || 0))}% · ${epochsDone(s)} epochs`;
    const last = this.epochs[this.epochs.length - 1];
    this.root.querySelector("#last-epoch").textContent = last
      ? `epoch ${last.epoch}: reward ${num(last.metrics.reward_mean)}, entropy ${num(last.metrics.entropy, 3)}, ${duration(last.metrics.duration_s)}`
      : "";
    this.root.querySelector("#best-reward").textContent = num(s.best_reward);
    this.root.querySelector("#best-arch").innerHTML = s.best_architecture_id == null ? "" :
      `architecture <button type="button" class="link" data-tab-link="best">#${s.best_architecture_id}</button>`;
    this.root.querySelector("#what").innerHTML = fact("space", esc(spec.space)) + fact("dataset", esc(spec.dataset)) +
      fact("preset", esc(spec.preset)) + fact("seed", esc(s.seed)) + fact("owner", esc(s.owner));
    this.root.querySelector("#timing").innerHTML = fact("created", when(s.created_at)) + fact("started", when(s.started_at)) +
      fact("finished", when(s.finished_at)) + fact("running for", duration(s.duration_s)) +
      (s.lease_owner ? fact("worker", esc(s.lease_owner)) : "");
    const error = this.root.querySelector("#search-error");
    error.hidden = !s.error;
    error.textContent = s.error || "";
    const link = this.root.querySelector("[data-tab-link]");
    if (link) link.addEventListener("click", () => this.showTab("best"));
  }

  renderCharts() {
    const e = this.epochs;
    const perplexity = e.some((row) => typeof row.metrics.shared_perplexity === "number");
    const quality = perplexity
      ? chartCard("Shared perplexity", lineChart([{name: "perplexity", color: PALETTE.violet, points: series(e, "shared_perplexity")}], {label: "shared perplexity per epoch"}))
      : chartCard("Shared accuracy", lineChart([{name: "accuracy", color: PALETTE.green, points: series(e, "shared_accuracy")}], {label: "shared accuracy per epoch"}));
    this.root.querySelector("#charts").innerHTML = [
      chartCard("Reward", lineChart([
        {name: "mean", color: PALETTE.blue, points: series(e, "reward_mean")},
        {name: "max", color: PALETTE.green, points: series(e, "reward_max")},
        {name: "baseline", color: PALETTE.orange, points: series(e, "baseline"), dashed: true},
      ], {label: "reward per epoch"})),
      chartCard("Controller entropy", lineChart([{name: "entropy", color: PALETTE.violet, points: series(e, "entropy")}], {label: "controller entropy per epoch"})),
      chartCard("Shared loss", lineChart([{name: "loss", color: PALETTE.red, points: series(e, "shared_loss")}], {label: "shared loss per epoch"})),
      quality,
    ].join("");
  }

  /** The drawing tabs: the best sampled architecture, each derived one, the one chosen in the table. */
  tabs() {
    const tabs = [];
    if (this.search.best_architecture_id != null) {
      tabs.push({key: "best", id: this.search.best_architecture_id, label: "Best sampled",
        caption: `best reward ${num(this.search.best_reward)}`});
    }
    for (const d of this.derived) {
      tabs.push({key: `derived-${d.rank}`, id: d.architecture_id, label: `Derived #${d.rank}`,
        caption: `derived rank ${d.rank}, score ${num(d.score)}`});
    }
    if (this.selected) {
      tabs.push({key: "selected", id: this.selected.id, label: `#${this.selected.id}`,
        caption: `epoch ${this.selected.epoch}, ${this.selected.phase} #${this.selected.index}, reward ${num(this.selected.reward)}`});
    }
    return tabs;
  }

  showTab(key) {
    this.tab = key;
    this.renderDrawings();
  }

  async showArchitecture(id) {
    this.selected = await getJSON(`/architectures/${id}`);
    this.tab = "selected";
    this.renderDrawings();
  }

  renderDrawings() {
    const tabs = this.tabs();
    const current = tabs.find((t) => t.key === this.tab) || tabs[0];
    this.root.querySelector("#arch-tabs").innerHTML = tabs.map((t) => `<button type="button" role="tab" data-tab="${t.key}"
      aria-selected="${current && t.key === current.key}" class="tab${current && t.key === current.key ? " active" : ""}">${esc(t.label)}</button>`).join("");
    if (!current) return;
    this.root.querySelector("#drawing-caption").innerHTML = `architecture <a href="/architectures/${current.id}">#${current.id}</a> · ${esc(current.caption)} ·
      <a href="/architectures/${current.id}/svg" download="architecture-${current.id}.svg">SVG</a>`;
    this.draw(current.id).catch((error) => this.problem(error));
  }

  async draw(id) {
    if (this.shownDrawing === id) return;
    this.shownDrawing = id;
    if (!this.drawings.has(id)) this.drawings.set(id, await getText(`/architectures/${id}/svg`, "image/svg+xml"));
    if (this.shownDrawing !== id) return;  // another tab was chosen meanwhile
    const el = this.root.querySelector("#drawing");
    el.innerHTML = this.drawings.get(id);
    el.dataset.architecture = String(id);
    const svg = el.querySelector("svg");
    if (svg) svg.style.width = `${Math.round(DRAWING_SCALE * Number(svg.getAttribute("width")))}px`;  // max-width: 100%
  }

  renderRetrains() {
    const html = retrainsHtml(this.retrains);
    this.root.querySelector("#retrain-section").hidden = !html;
    this.root.querySelector("#retrains").innerHTML = html;
  }

  renderEpochTable() {
    this.archs.setEpochCount(this.epochs.length ? this.epochs[this.epochs.length - 1].epoch + 1 : 0);
    const keys = [...new Set(this.epochs.flatMap((e) => Object.keys(e.metrics)))]
      .filter((k) => this.epochs.some((e) => typeof e.metrics[k] === "number"));
    if (!keys.length) {
      this.root.querySelector("#epochs").innerHTML = '<p class="muted pad">no epoch finished yet</p>';
      return;
    }
    const head = ["epoch", ...keys].map((k) => `<th class="num">${esc(k)}</th>`).join("");
    const rows = this.epochs.map((e) => `<tr><td class="num">${e.epoch}</td>${keys.map((k) => `<td class="num">${num(e.metrics[k])}</td>`).join("")}</tr>`);
    this.root.querySelector("#epochs").innerHTML = `<table class="table" id="epoch-table"><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
  }
}
