// Time and sales: the newest trades of the selected symbol, newest first.
// Trades are queued as they come and written once per animation frame.

const ROWS = 60;

/** HH:MM:SS.mmm (UTC) of a nanosecond timestamp given as a decimal string. */
function clockOf(tsNanos) {
  const ms = Number(String(tsNanos).slice(0, -6));
  return new Date(ms).toISOString().slice(11, 23);
}

export class TradeTape {
  #tbody;
  #symbol = null;
  #queued = [];

  /** @param {HTMLTableSectionElement} tbody */
  constructor(tbody) {
    this.#tbody = tbody;
  }

  show(symbol) {
    this.#symbol = symbol;
    this.#queued = [];
    this.#tbody.replaceChildren();
  }

  trade(t) {
    if (t.symbol !== this.#symbol) return;
    this.#queued.push(t);
    // Only the newest ROWS can be shown: keep the queue that short.
    if (this.#queued.length > 2 * ROWS) this.#queued.splice(0, this.#queued.length - ROWS);
  }

  render() {
    if (this.#queued.length === 0) return;
    const rows = this.#queued.slice(-ROWS).reverse().map(rowOf);
    this.#queued = [];
    this.#tbody.prepend(...rows);
    while (this.#tbody.rows.length > ROWS) this.#tbody.lastElementChild.remove();
  }
}

function rowOf(t) {
  const tr = document.createElement("tr");
  tr.className = t.side; // buy, sell or unknown: colours the price
  for (const [name, text] of [["time", clockOf(t.ts_exchange)], ["price num", t.price], ["size num", t.size]]) {
    const td = document.createElement("td");
    td.className = name;
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}
