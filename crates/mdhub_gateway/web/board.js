// The quote board: one row per symbol with bid, ask, last trade and the
// change since the first price this page saw. Updates only change the row's
// model and mark it dirty; render() writes the dirty rows once per animation
// frame, so a burst of updates costs one DOM write per cell. A symbol the
// credential does not cover stays on the board, muted and marked.

const FLASH_MS = 500;
const FLASH_COLORS = { up: "rgba(38, 194, 129, 0.32)", down: "rgba(239, 83, 80, 0.32)" };
const CELLS = ["venue", "bidSize", "bid", "ask", "askSize", "last", "change", "changePct"];
const NUMERIC = new Set(["bidSize", "bid", "ask", "askSize", "last", "change", "changePct"]);

/** Digits after the point of a decimal string. */
const decimalsOf = (text) => (text.split(".")[1] ?? "").length;

/** -1, 0 or 1: how `next` moved from `prev` (both decimal strings, or null). */
function direction(prev, next) {
  if (prev == null) return 0;
  return Math.sign(Number(next) - Number(prev));
}

/** `x` with `places` decimals and its sign; no sign when it rounds to zero. */
function signed(x, places) {
  const text = Math.abs(x).toFixed(places);
  if (Number(text) === 0) return text;
  return (x > 0 ? "+" : "-") + text;
}

export class QuoteBoard {
  #tbody;
  #onSelect;
  #onRemove;
  /** @type {Map<string, object>} symbol → row model */
  #rows = new Map();
  #dirty = new Set();
  #selected = null;

  /**
   * @param {HTMLTableSectionElement} tbody
   * @param {{onSelect: (symbol: string) => void, onRemove: (symbol: string) => void}} handlers
   */
  constructor(tbody, { onSelect, onRemove }) {
    this.#tbody = tbody;
    this.#onSelect = onSelect;
    this.#onRemove = onRemove;
    tbody.addEventListener("click", (e) => this.#onClick(e));
  }

  get symbols() {
    return [...this.#rows.keys()];
  }

  has(symbol) {
    return this.#rows.has(symbol);
  }

  add(symbol) {
    if (this.#rows.has(symbol)) return;
    const tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    const cells = { symbol: cell(tr, "symbol", symbol) };
    for (const name of CELLS) cells[name] = cell(tr, name, "", NUMERIC.has(name));
    const remove = cell(tr, "remove", "");
    remove.innerHTML = `<button type="button" class="remove" title="Remove ${symbol}" aria-label="Remove ${symbol}">×</button>`;
    this.#tbody.append(tr);
    this.#rows.set(symbol, { tr, cells, values: {}, flashes: {}, first: null, stale: false, denied: false });
  }

  remove(symbol) {
    this.#rows.get(symbol)?.tr.remove();
    this.#rows.delete(symbol);
    this.#dirty.delete(symbol);
  }

  select(symbol) {
    this.#selected = symbol;
    for (const [s, row] of this.#rows) row.tr.classList.toggle("selected", s === symbol);
  }

  /** A quote (snapshot or update) for a symbol on the board. */
  quote(q) {
    this.#set(q.symbol, { venue: q.venue, bid: q.bid_price, bidSize: q.bid_size, ask: q.ask_price, askSize: q.ask_size });
  }

  /** A trade: the last price, and the change from the first one seen. */
  trade(t) {
    const row = this.#rows.get(t.symbol);
    if (!row) return;
    row.first ??= t.price;
    const delta = Number(t.price) - Number(row.first);
    const places = Math.max(decimalsOf(t.price), decimalsOf(row.first));
    this.#set(t.symbol, {
      venue: t.venue,
      last: t.price,
      change: signed(delta, places),
      changePct: signed((delta / Number(row.first)) * 100, 2) + "%",
    });
  }

  /** A feed-status event: the row is stale while its feed is disconnected. */
  status(s) {
    const row = this.#rows.get(s.symbol);
    if (!row) return;
    row.stale = s.status === "disconnected";
    row.staleWhy = s.detail ?? "";
    this.#dirty.add(s.symbol);
  }

  /** Mark symbols the credential is not entitled to (or, with `denied` false, clear the mark). */
  deny(symbols, denied = true) {
    for (const symbol of symbols) {
      const row = this.#rows.get(symbol);
      if (!row || row.denied === denied) continue;
      row.denied = denied;
      this.#dirty.add(symbol);
    }
  }

  /** Whether `symbol` is marked not entitled. */
  denied(symbol) {
    return this.#rows.get(symbol)?.denied ?? false;
  }

  /** Write every dirty row to the DOM. */
  render() {
    for (const symbol of this.#dirty) {
      const row = this.#rows.get(symbol);
      if (row) renderRow(row);
    }
    this.#dirty.clear();
  }

  #set(symbol, values) {
    const row = this.#rows.get(symbol);
    if (!row) return;
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined || value === row.values[name]) continue;
      if (name === "bid" || name === "ask" || name === "last") {
        row.flashes[name] = direction(row.values[name], value);
      }
      row.values[name] = value;
      row.changed = true;
    }
    this.#dirty.add(symbol);
  }

  #onClick(e) {
    const tr = e.target.closest("tr[data-symbol]");
    if (!tr) return;
    if (e.target.closest("button.remove")) this.#onRemove(tr.dataset.symbol);
    else this.#onSelect(tr.dataset.symbol);
  }
}

function cell(tr, name, text, numeric = false) {
  const td = document.createElement("td");
  td.className = numeric ? `${name} num` : name;
  td.textContent = text;
  tr.append(td);
  return td;
}

function renderRow(row) {
  row.tr.classList.toggle("stale", row.stale);
  row.tr.classList.toggle("denied", row.denied);
  row.tr.title = row.denied
    ? "your credential is not entitled to this symbol"
    : row.stale ? `feed disconnected: ${row.staleWhy}` : "";
  if (!row.changed) return;
  row.changed = false;
  for (const name of CELLS) {
    const value = row.values[name];
    if (value !== undefined && row.cells[name].textContent !== value) row.cells[name].textContent = value;
  }
  const sign = Math.sign(Number(row.values.change ?? 0));
  row.cells.change.dataset.sign = row.cells.changePct.dataset.sign = String(sign);
  for (const [name, dir] of Object.entries(row.flashes)) {
    if (dir !== 0) flash(row.cells[name], dir > 0 ? "up" : "down");
  }
  row.flashes = {};
}

// The Web Animations API restarts a flash without forcing a style recalculation.
function flash(td, way) {
  td.dataset.tick = way;
  td.animate([{ backgroundColor: FLASH_COLORS[way] }, { backgroundColor: "transparent" }], {
    duration: FLASH_MS,
    easing: "ease-out",
  });
}
