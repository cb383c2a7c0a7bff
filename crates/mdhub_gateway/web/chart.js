// The candlestick chart of the selected symbol: one-minute bars from
// GET /v1/history/bars, continued live by the symbol's trades (the last bar
// updated, a new one opened each minute). Bars changed by trades are handed
// to the chart once per animation frame, in render().

import { CandlestickSeries, ColorType, createChart } from "./vendor/lightweight-charts.standalone.production.mjs";

const HISTORY_HOURS = 6;
const COLORS = { up: "#26c281", down: "#ef5350", text: "#8b95a7", grid: "#1a2130", border: "#263042", bg: "#0d1117" };

/** Start of the minute of a nanosecond timestamp (a decimal string), in Unix seconds. */
function minuteOf(tsNanos) {
  const seconds = Number(String(tsNanos).slice(0, -9));
  return seconds - (seconds % 60);
}

const decimalsOf = (text) => (text.split(".")[1] ?? "").length;

function candleOf(bar) {
  return {
    time: minuteOf(bar.ts),
    open: Number(bar.open),
    high: Number(bar.high),
    low: Number(bar.low),
    close: Number(bar.close),
  };
}

/**
 * The bars of one venue: /v1/history/bars answers one series per venue
 * (several bars may share a time), a chart draws one. Until the chart picks
 * a venue, it shows the one with the most trades.
 */
function oneVenue(bars) {
  const trades = new Map();
  for (const b of bars) trades.set(b.venue, (trades.get(b.venue) ?? 0) + b.trades);
  let best;
  for (const [venue, n] of trades) if (best === undefined || n > trades.get(best)) best = venue;
  return bars.filter((b) => b.venue === best);
}

export class CandleChart {
  #el;
  #legend;
  #chart;
  #series;
  #symbol = null;
  /** The venue drawn: the bars and live trades of one venue, never a mix. */
  #venue = null;
  /** Trades that arrived while the history loads; null once it is shown. */
  #pending = null;
  #last = null;
  /** Bars to hand to the chart at the next render, oldest first. */
  #dirty = [];
  #precision = 0;
  #fetchJson;

  /**
   * @param {HTMLElement} el where the chart draws
   * @param {HTMLElement} legend where the last bar's OHLC is written
   * @param {(url: string) => Promise<any>} fetchJson GETs a REST answer (with the page's credential)
   */
  constructor(el, legend, fetchJson) {
    this.#el = el;
    this.#legend = legend;
    this.#fetchJson = fetchJson;
    this.#chart = createChart(el, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: COLORS.bg }, textColor: COLORS.text, fontFamily: "inherit" },
      grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
      rightPriceScale: { borderColor: COLORS.border },
      timeScale: { borderColor: COLORS.border, timeVisible: true, secondsVisible: false, barSpacing: 10, rightOffset: 3 },
    });
    this.#series = this.#chart.addSeries(CandlestickSeries, {
      upColor: COLORS.up, downColor: COLORS.down, borderVisible: false,
      wickUpColor: COLORS.up, wickDownColor: COLORS.down,
    });
  }

  get symbol() {
    return this.#symbol;
  }

  /** Show `symbol`: its history, then its live trades. */
  async show(symbol) {
    this.#symbol = symbol;
    this.#venue = null;
    this.#pending = [];
    this.#last = null;
    this.#dirty = [];
    this.#precision = 0;
    this.#series.setData([]);
    this.#el.dataset.symbol = symbol;
    delete this.#el.dataset.bars;
    const bars = await this.#history(symbol);
    if (this.#symbol !== symbol) return; // another symbol was chosen meanwhile
    this.#venue = bars[0]?.venue ?? null;
    for (const bar of bars) this.#widenPrecision(bar.open, bar.high, bar.low, bar.close);
    const candles = bars.map(candleOf);
    this.#series.setData(candles);
    this.#chart.timeScale().scrollToRealTime();
    this.#last = candles.at(-1) ?? null;
    this.#el.dataset.bars = String(candles.length);
    const waiting = this.#pending;
    this.#pending = null;
    for (const t of waiting) this.#merge(t);
    this.#writeLegend();
  }

  /** A trade of any symbol; only the shown one's count. */
  trade(t) {
    if (t.symbol !== this.#symbol) return;
    if (this.#pending) this.#pending.push(t);
    else this.#merge(t);
  }

  render() {
    if (this.#dirty.length === 0) return;
    for (const bar of this.#dirty) this.#series.update({ ...bar });
    this.#dirty = [];
    this.#writeLegend();
  }

  async #history(symbol) {
    const from = (BigInt(Date.now() - HISTORY_HOURS * 3_600_000) * 1_000_000n).toString();
    const url = `/v1/history/bars?symbol=${encodeURIComponent(symbol)}&interval=1m&from=${from}`;
    try {
      return oneVenue((await this.#fetchJson(url)).bars);
    } catch (e) {
      // No history (a process without an archiver answers 503, one that
      // requires a credential 401 or 403): live bars only.
      console.warn(`mdhub: no history for ${symbol}: ${e.message}`);
      return [];
    }
  }

  #merge(t) {
    // Without history, the first venue to trade is the one drawn.
    this.#venue ??= t.venue;
    if (t.venue !== this.#venue) return;
    this.#el.dataset.venue = t.venue;
    const time = minuteOf(t.ts_exchange);
    const price = Number(t.price);
    const bar = this.#last;
    // Older than the last bar: history already counted it.
    if (bar && time < bar.time) return;
    this.#widenPrecision(t.price);
    if (bar && time === bar.time) {
      bar.high = Math.max(bar.high, price);
      bar.low = Math.min(bar.low, price);
      bar.close = price;
    } else {
      this.#last = { time, open: price, high: price, low: price, close: price };
    }
    if (this.#dirty.at(-1) !== this.#last) this.#dirty.push(this.#last);
  }

  /** Show as many decimals as the symbol's prices have. */
  #widenPrecision(...prices) {
    const places = Math.max(this.#precision, ...prices.map(decimalsOf));
    if (places === this.#precision) return;
    this.#precision = places;
    this.#series.applyOptions({ priceFormat: { type: "price", precision: places, minMove: 10 ** -places } });
  }

  #writeLegend() {
    const b = this.#last;
    const f = (x) => x.toFixed(this.#precision);
    this.#legend.textContent = b ? `O ${f(b.open)}  H ${f(b.high)}  L ${f(b.low)}  C ${f(b.close)}` : "no trades yet";
  }
}
