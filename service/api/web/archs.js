// The sampled-architectures table of a search: server-side order (index or best reward), filters
// (phase, epoch), cursor paging; choosing a row shows its drawing.

import {getJSON} from "./api.js";
import {esc, num} from "./format.js";

const PAGE_SIZES = [20, 50, 100];

// `always`: shown even when the page has no value in it (the others are hidden then: a sampled
// architecture has a reward but no training loss, a trained one the reverse).
const COLUMNS = [
  {key: "id", label: "id", num: true, order: "index", always: true},
  {key: "epoch", label: "epoch", num: true, always: true},
  {key: "phase", label: "phase", always: true},
  {key: "index", label: "#", num: true, always: true},
  {key: "reward", label: "reward", num: true, order: "reward", always: true},
  {key: "loss", label: "loss", num: true},
  {key: "accuracy", label: "accuracy", num: true},
  {key: "entropy", label: "entropy", num: true},
  {key: "log_prob", label: "log prob", num: true},
  {key: "hash", label: "hash", always: true},
];

function cell(arch, column) {
  const value = arch[column.key];
  if (column.key === "hash") return `<td><code>${esc(value)}</code></td>`;
  if (column.num) return `<td class="num">${typeof value === "number" && !Number.isInteger(value) ? num(value) : esc(value ?? "–")}</td>`;
  return `<td>${esc(value)}</td>`;
}

export class ArchTable {
  /**
   * @param {HTMLElement} root where the table goes
   * @param {number} searchId
   * @param {(arch: object) => void} onSelect called with the architecture of a clicked row
   */
  constructor(root, searchId, onSelect) {
    this.root = root;
    this.searchId = searchId;
    this.onSelect = onSelect;
    this.order = "reward";
    this.phase = "sample";
    this.epoch = "";
    this.limit = PAGE_SIZES[0];
    this.cursors = [null];  // the cursor of each page seen so far; the last is the current page's
    this.next = null;
    this.items = [];
    this.epochCount = 0;
    this.selected = null;
    this.renderFrame();
  }

  renderFrame() {
    const sizes = PAGE_SIZES.map((n) => `<option value="${n}"${n === this.limit ? " selected" : ""}>${n} a page</option>`);
    this.root.innerHTML = `
      <div class="toolbar compact">
        <label>phase <select data-filter="phase">
          <option value="sample" selected>sampled (reward)</option><option value="train">trained (shared step)</option>
          <option value="derive">derived</option><option value="">all</option></select></label>
        <label>epoch <select data-filter="epoch"><option value="">all</option></select></label>
        <label><select data-filter="limit">${sizes.join("")}</select></label>
        <span class="spacer"></span>
        <span class="muted" data-role="where"></span>
        <button type="button" data-page="prev">‹ Previous</button>
        <button type="button" data-page="next">Next ›</button>
      </div>
      <div class="table-scroll"><table class="table archs" id="arch-table"><thead><tr></tr></thead>
      <tbody></tbody></table></div>`;
    this.columns = COLUMNS;
    this.renderHeader();
    this.root.addEventListener("change", (e) => this.changeFilter(e));
    this.root.addEventListener("click", (e) => this.click(e));
    this.root.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && e.target.matches("tr[data-id]")) this.click(e);
    });
  }

  header(column) {
    const classes = [column.num ? "num" : "", column.order ? "sortable" : ""].filter(Boolean).join(" ");
    if (!column.order) return `<th class="${classes}">${esc(column.label)}</th>`;
    const active = this.order === column.order;
    const sortLabel = column.order === "reward" ? "best reward first" : "in sampling order";
    return `<th class="${classes}${active ? " sorted" : ""}" aria-sort="${active ? (column.order === "reward" ? "descending" : "ascending") : "none"}">
      <button type="button" data-order="${column.order}" title="sort: ${sortLabel}">${esc(column.label)}${active ? (column.order === "reward" ? " ▼" : " ▲") : ""}</button></th>`;
  }

  changeFilter(e) {
    const name = e.target.dataset.filter;
    if (!name) return;
    this[name] = name === "limit" ? Number(e.target.value) : e.target.value;
    this.cursors = [null];
    this.load();
  }

  click(e) {
    const sort = e.target.closest("button[data-order]");
    if (sort) {
      this.order = sort.dataset.order;
      this.cursors = [null];
      this.renderHeader();
      this.load();
      return;
    }
    const page = e.target.closest("button[data-page]");
    if (page) {
      if (page.dataset.page === "next" && this.next) this.cursors.push(this.next);
      if (page.dataset.page === "prev" && this.cursors.length > 1) this.cursors.pop();
      this.load();
      return;
    }
    const tr = e.target.closest("tr[data-id]");
    if (tr) {
      this.selected = Number(tr.dataset.id);
      this.highlight();
      this.onSelect(this.items.find((a) => a.id === this.selected));
    }
  }

  /** The epoch filter offers every epoch recorded so far. */
  setEpochCount(count) {
    if (count === this.epochCount) return;
    this.epochCount = count;
    const select = this.root.querySelector('select[data-filter="epoch"]');
    const options = ['<option value="">all</option>'];
    for (let e = count - 1; e >= 0; e -= 1) options.push(`<option value="${e}"${String(e) === this.epoch ? " selected" : ""}>${e}</option>`);
    select.innerHTML = options.join("");
  }

  /** Reload the page shown; `onlyFirst`: only when it is the first page (live updates). */
  async load({onlyFirst = false} = {}) {
    if (onlyFirst && this.cursors.length > 1) return;
    const params = new URLSearchParams({order: this.order, limit: String(this.limit)});
    if (this.phase) params.set("phase", this.phase);
    if (this.epoch !== "") params.set("epoch", this.epoch);
    const cursor = this.cursors[this.cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    const page = await getJSON(`/searches/${this.searchId}/architectures?${params}`);
    this.items = page.items;
    this.next = page.next_cursor;
    this.renderRows();
  }

  renderHeader() {
    this.root.querySelector("thead tr").innerHTML = this.columns.map((c) => this.header(c)).join("");
  }

  renderRows() {
    this.columns = COLUMNS.filter((c) => c.always || this.items.some((a) => a[c.key] != null));
    this.renderHeader();
    const body = this.root.querySelector("tbody");
    body.innerHTML = this.items.map((a) => `<tr data-id="${a.id}" tabindex="0">${this.columns.map((c) => cell(a, c)).join("")}</tr>`).join("") ||
      `<tr><td class="empty" colspan="${this.columns.length}">no architectures yet</td></tr>`;
    const first = (this.cursors.length - 1) * this.limit;
    this.root.querySelector('[data-role="where"]').textContent = this.items.length
      ? `${first + 1}–${first + this.items.length}` : "";
    this.root.querySelector('button[data-page="prev"]').disabled = this.cursors.length <= 1;
    this.root.querySelector('button[data-page="next"]').disabled = !this.next;
    this.highlight();
  }

  highlight() {
    for (const tr of this.root.querySelectorAll("tbody tr[data-id]")) {
      tr.classList.toggle("selected", Number(tr.dataset.id) === this.selected);
    }
  }
}
