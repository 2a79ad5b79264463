// The searches table at "/": status chips and a text filter, refreshed every few seconds.

import {getJSON} from "./api.js";
import {STATUSES, age, esc, num, progressBar, statusBadge} from "./format.js";

const REFRESH_MS = 3000;
const PAGE = 100;

function matches(search, text) {
  if (!text) return true;
  const spec = search.spec || {};
  const haystack = [search.id, search.name, search.owner, search.status, spec.space, spec.dataset, spec.preset]
    .map((v) => String(v ?? "").toLowerCase()).join(" ");
  return text.toLowerCase().split(/\s+/).every((word) => haystack.includes(word));
}

function row(s) {
  const spec = s.spec || {};
  return `<tr data-id="${s.id}">
    <td class="num"><a href="/ui/searches/${s.id}">${s.id}</a></td>
    <td><a href="/ui/searches/${s.id}">${esc(s.name || `search ${s.id}`)}</a></td>
    <td${s.pending_reason ? ` title="${esc(s.pending_reason)}"` : ""}>${statusBadge(s.status)}</td>
    <td class="progress-cell">${progressBar(s.progress)}</td>
    <td class="num">${num(s.best_reward)}</td>
    <td>${esc(spec.space)}</td>
    <td>${esc(spec.dataset)}</td>
    <td>${esc(s.owner)}</td>
    <td title="${esc(s.created_at)}">${age(s.created_at)}</td>
  </tr>`;
}

export class ListView {
  constructor(root) {
    this.root = root;
    const params = new URLSearchParams(location.search);
    this.status = STATUSES.includes(params.get("status")) ? params.get("status") : "";
    this.text = params.get("q") || "";
    this.items = [];
    this.counts = {};
    this.nextCursor = null;
    this.timer = null;
  }

  start() {
    document.title = "Searches · enas-service";
    this.root.innerHTML = `
      <div class="page-head"><h1>Searches</h1></div>
      <div class="toolbar">
        <div class="chips" id="status-chips" role="group" aria-label="filter by status"></div>
        <input id="filter-text" type="search" placeholder="Filter by name, space, dataset, owner…" value="${esc(this.text)}">
      </div>
      <div class="card flush"><table class="table" id="searches">
        <thead><tr><th class="num">id</th><th>name</th><th>status</th><th>progress</th><th class="num">best reward</th>
          <th>space</th><th>dataset</th><th>owner</th><th>age</th></tr></thead>
        <tbody></tbody></table></div>
      <div class="pager"><button id="more" type="button" hidden>Load more</button></div>`;
    this.root.querySelector("#filter-text").addEventListener("input", (e) => {
      this.text = e.target.value.trim();
      this.saveFilter();
      this.renderRows();
    });
    this.root.querySelector("#status-chips").addEventListener("click", (e) => {
      const chip = e.target.closest("button[data-status]");
      if (!chip) return;
      this.status = chip.dataset.status;
      this.saveFilter();
      this.refresh();
    });
    this.root.querySelector("#more").addEventListener("click", () => this.loadMore());
    this.root.querySelector("#searches tbody").addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-id]");
      if (tr && !e.target.closest("a")) location.assign(`/ui/searches/${tr.dataset.id}`);
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) this.refresh(); });
    return this.refresh();
  }

  saveFilter() {
    const params = new URLSearchParams();
    if (this.status) params.set("status", this.status);
    if (this.text) params.set("q", this.text);
    const query = params.toString();
    history.replaceState(null, "", query ? `/?${query}` : "/");
  }

  query(cursor) {
    const params = new URLSearchParams({limit: String(PAGE)});
    if (this.status) params.set("status", this.status);
    if (cursor) params.set("cursor", cursor);
    return `/searches?${params}`;
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const page = await getJSON(this.query(null));
      this.items = page.items;
      this.counts = page.counts;
      this.nextCursor = page.next_cursor;
      this.render();
      this.problem("");
    } catch (error) {
      this.problem(`cannot refresh the list: ${error.message}`);
    }
    if (!document.hidden) this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  async loadMore() {
    if (!this.nextCursor) return;
    const page = await getJSON(this.query(this.nextCursor));
    this.items = this.items.concat(page.items);
    this.nextCursor = page.next_cursor;
    this.renderRows();
  }

  problem(message) {
    const el = document.getElementById("problem");
    el.textContent = message;
    el.hidden = !message;
  }

  render() {
    const total = Object.values(this.counts).reduce((a, b) => a + b, 0);
    const chip = (status, label, count) => `<button type="button" data-status="${status}"
      class="chip${this.status === status ? " active" : ""}" aria-pressed="${this.status === status}">
      ${esc(label)} <span class="count">${count}</span></button>`;
    this.root.querySelector("#status-chips").innerHTML = chip("", "all", total) +
      STATUSES.map((s) => chip(s, s, this.counts[s] || 0)).join("");
    this.renderRows();
  }

  renderRows() {
    const shown = this.items.filter((s) => matches(s, this.text));
    const body = this.root.querySelector("#searches tbody");
    body.innerHTML = shown.map(row).join("") || `<tr><td colspan="9" class="empty">${
      this.items.length ? "no search matches the filter" : "no searches yet: <code>enasctl submit spec.yaml</code>"}</td></tr>`;
    this.root.querySelector("#more").hidden = !this.nextCursor;
  }
}
