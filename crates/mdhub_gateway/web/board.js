// The quote board: one row per symbol and venue (a symbol listed on two
// venues gets two rows, never one that both overwrite) with bid, ask, last
// trade and the change since the first price this page saw. Updates only change the row's
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

/** The row key of an instrument: `SYMBOL@venue`. */
const keyOf = (symbol, venue) => `${symbol}@${venue}`;

export class QuoteBoard {
  #tbody;
  #onSelect;
  #onRemove;
  /** @type {Map<string, object>} `SYMBOL@venue` (or `SYMBOL` until its first venue speaks) → row model */
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

  /** The symbols on the board, in board order (each once). */
  get symbols() {
    return [...new Set([...this.#rows.values()].map((r) => r.symbol))];
  }

  has(symbol) {
    return this.#rowsOf(symbol).length > 0;
  }

  add(symbol) {
    if (this.has(symbol)) return;
    this.#rows.set(symbol, this.#newRow(symbol, null));
  }

  remove(symbol) {
    for (const [key, row] of this.#rowsOf(symbol)) {
      row.tr.remove();
      this.#rows.delete(key);
      this.#dirty.delete(key);
    }
  }

  select(symbol) {
    this.#selected = symbol;
    for (const row of this.#rows.values()) row.tr.classList.toggle("selected", row.symbol === symbol);
  }

  /** A quote (snapshot or update) for a symbol on the board. */
  quote(q) {
    this.#set(q.symbol, q.venue, { bid: q.bid_price, bidSize: q.bid_size, ask: q.ask_price, askSize: q.ask_size });
  }

  /** A trade: the last price, and the change from the first one seen. */
  trade(t) {
    const key = this.#rowKey(t.symbol, t.venue);
    const row = key && this.#rows.get(key);
    if (!row) return;
    row.first ??= t.price;
    const delta = Number(t.price) - Number(row.first);
    const places = Math.max(decimalsOf(t.price), decimalsOf(row.first));
    this.#set(t.symbol, t.venue, {
      last: t.price,
      change: signed(delta, places),
      changePct: signed((delta / Number(row.first)) * 100, 2) + "%",
    });
  }

  /** A feed-status event: the venue's row is stale while its feed is disconnected. */
  status(s) {
    const key = this.#rowKey(s.symbol, s.venue);
    const row = key && this.#rows.get(key);
    if (!row) return;
    row.stale = s.status === "disconnected";
    row.staleWhy = s.detail ?? "";
    this.#dirty.add(key);
  }

  /** Mark symbols the credential is not entitled to (or, with `denied` false, clear the mark). */
  deny(symbols, denied = true) {
    for (const symbol of symbols) {
      for (const [key, row] of this.#rowsOf(symbol)) {
        if (row.denied === denied) continue;
        row.denied = denied;
        this.#dirty.add(key);
      }
    }
  }

  /** The latest quote of each venue of `symbol`: `[{venue, bid, bidSize, ask, askSize}]`. */
  quotesOf(symbol) {
    return this.#rowsOf(symbol)
      .map(([, row]) => ({ venue: row.venue, ...row.values }))
      .filter((q) => q.bid !== undefined);
  }

  /** Whether `symbol` is marked not entitled. */
  denied(symbol) {
    return this.#rowsOf(symbol).some(([, row]) => row.denied);
  }

  /** [key, row] of every row of `symbol`. */
  #rowsOf(symbol) {
    return [...this.#rows].filter(([, row]) => row.symbol === symbol);
  }

  /**
   * The key of the row for `symbol` on `venue`, making it when the symbol is
   * on the board: its first venue takes the placeholder row, another venue
   * gets a row of its own after the symbol's rows. `null` when the symbol is
   * not on the board.
   */
  #rowKey(symbol, venue) {
    const key = keyOf(symbol, venue);
    if (this.#rows.has(key)) return key;
    const mine = this.#rowsOf(symbol);
    if (mine.length === 0) return null;
    const placeholder = this.#rows.get(symbol);
    if (placeholder) {
      this.#rows.delete(symbol);
      placeholder.venue = venue;
      placeholder.tr.dataset.venue = venue;
      placeholder.values.venue = venue;
      placeholder.changed = true;
      this.#rows.set(key, placeholder);
      return key;
    }
    const row = this.#newRow(symbol, venue, mine[mine.length - 1][1].tr);
    row.denied = mine[0][1].denied;
    row.tr.classList.toggle("selected", symbol === this.#selected);
    this.#rows.set(key, row);
    return key;
  }

  #newRow(symbol, venue, after = null) {
    const tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    if (venue) tr.dataset.venue = venue;
    const cells = { symbol: cell(tr, "symbol", symbol) };
    for (const name of CELLS) cells[name] = cell(tr, name, "", NUMERIC.has(name));
    const remove = cell(tr, "remove", "");
    remove.innerHTML = `<button type="button" class="remove" title="Remove ${symbol}" aria-label="Remove ${symbol}">×</button>`;
    if (after) after.after(tr);
    else this.#tbody.append(tr);
    const values = venue ? { venue } : {};
    return { symbol, venue, tr, cells, values, flashes: {}, first: null, stale: false, denied: false, changed: Boolean(venue) };
  }

  /** Write every dirty row to the DOM. */
  render() {
    for (const key of this.#dirty) {
      const row = this.#rows.get(key);
      if (row) renderRow(row);
    }
    this.#dirty.clear();
  }

  #set(symbol, venue, values) {
    const key = this.#rowKey(symbol, venue);
    const row = key && this.#rows.get(key);
    if (!row) return;
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined || value === row.values[name]) continue;
      if (name === "bid" || name === "ask" || name === "last") {
        row.flashes[name] = direction(row.values[name], value);
      }
      row.values[name] = value;
      row.changed = true;
    }
    this.#dirty.add(key);
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
