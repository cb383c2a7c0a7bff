/**
 * mdhub.js — a browser client for mdhub's WebSocket protocol
 * (docs/protocol.md; the API is in docs/web.md). A plain ES module, served
 * by every gateway at `/mdhub.js`:
 *
 *   import { MdhubClient } from "/mdhub.js";
 *   const client = new MdhubClient();            // ws(s)://<this page's host>/v1/ws
 *   client.on("update", (u) => console.log(u.symbol, u.channel, u.data));
 *   client.subscribe(["AAPL", "BTC-USDT"]);
 *
 * What it does for you: it keeps the set of subscriptions you asked for and
 * the last position of every symbol and channel; after any disconnect it
 * reconnects (exponential backoff, full jitter) and subscribes again with
 * those positions, so the server sends exactly what was missed. A frame at or
 * before the last position of its stream is dropped, so a listener never sees
 * an update twice. When the server says goodbye first (a `closing` frame) its
 * advice is followed: wait `retry_after_ms`, or do not come back at all. A
 * connection that is silent for two heartbeat intervals is treated as dead
 * (browsers cannot see WebSocket pings; the server also sends `heartbeat`
 * frames).
 *
 * Credentials: when the welcome says `auth_required`, the `token` option (an
 * API key or a JWT, or a function that returns one, or a promise of one, on
 * each connect) is presented in an `auth` frame before the subscriptions.
 * Without one the client stops in state `auth_required`; a refused one stops
 * it in `unauthorized`; `setToken()` carries on from either.
 *
 * Numbers: prices and sizes are exact decimal strings on the wire and stay
 * strings unless `decimals: "number"` is asked for. Nanosecond timestamps do
 * not fit a JavaScript number (2^53), so their digits are quoted before
 * `JSON.parse` and they arrive as strings (or BigInt with
 * `timestamps: "bigint"`).
 */

/** Channels a subscription gets when none are named. */
export const DEFAULT_CHANNELS = Object.freeze(["quotes", "trades"]);

/** What the server means by the close codes a client should recover from (or stop at). */
export const CLOSE_CODES = Object.freeze({
  1001: "server shutting down",
  4002: "nothing arrived from the client in time",
  4008: "the client read too slowly",
  4401: "no credential, or a refused one",
  4403: "the credential expired",
  4429: "too many connections for this user",
});

/** The server's advice for a close that came without its `closing` frame. */
const CLOSE_ADVICE = {
  4401: { reconnect: false, retry_after_ms: 0 },
  4429: { reconnect: true, retry_after_ms: 5000 },
};
const UNAUTHORIZED = 4401;

// Backoff: a random delay up to BASE × 2^attempt, at most CAP (docs/protocol.md).
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 5000;
// Before the welcome there is no heartbeat interval to go by.
const CONNECT_TIMEOUT_MS = 10000;
// A connection is dead after this many heartbeat intervals without a frame.
const SILENT_HEARTBEATS = 2;

// An integer value of a nanosecond-timestamp key (a key follows `{` or `,`),
// so that its digits can be quoted before JSON.parse rounds them.
const TIMESTAMP_FIELD =
  /([{,]\s*"(?:ts_exchange|ts_received|ts|last_update|last_event|from|to|at)"\s*:\s*)(-?\d+)(?![\d.eE])/g;
const TIMESTAMP_KEYS = new Set(["ts_exchange", "ts_received", "ts", "last_update", "last_event", "from", "to", "at"]);
const DECIMAL_KEYS = new Set([
  "price", "size", "bid_price", "bid_size", "ask_price", "ask_size",
  "open", "high", "low", "close", "volume", "vwap",
]);
const INTEGER_TEXT = /^-?\d+$/;

/**
 * Parse a frame or REST body of mdhub without losing a digit.
 *
 * @param {string} text JSON text from mdhub.
 * @param {{timestamps?: "string"|"bigint", decimals?: "string"|"number"}} [options]
 *   `timestamps`: nanosecond fields as decimal strings (default) or BigInt;
 *   `decimals`: prices and sizes as exact strings (default) or Numbers.
 * @returns {any} The parsed value.
 */
export function parseExact(text, { timestamps = "string", decimals = "string" } = {}) {
  const quoted = text.replace(TIMESTAMP_FIELD, '$1"$2"');
  const bigint = timestamps === "bigint";
  const numbers = decimals === "number";
  if (!bigint && !numbers) return JSON.parse(quoted);
  return JSON.parse(quoted, (key, value) => {
    if (typeof value !== "string") return value;
    if (bigint && TIMESTAMP_KEYS.has(key) && INTEGER_TEXT.test(value)) return BigInt(value);
    if (numbers && DECIMAL_KEYS.has(key)) return Number(value);
    return value;
  });
}

/**
 * What a token option gives now: a string, or what a function returns (a
 * string or a promise of one).
 * @param {string|null|undefined|(() => string|null|Promise<string|null>)} source
 */
const tokenOf = (source) => (typeof source === "function" ? source() : source);

/**
 * GET a JSON endpoint of mdhub (`/v1/symbols`, `/v1/history/bars`, …) and
 * parse it with {@link parseExact}. Rejects with an Error carrying `status`
 * and the server's error `code` on a non-2xx answer (401 without a valid
 * credential where the hub requires one, 403 for a symbol it does not cover).
 *
 * @param {string} url
 * @param {{timestamps?: "string"|"bigint", decimals?: "string"|"number",
 *   token?: string|null|(() => string|null|Promise<string|null>)}} [options]
 *   `token`: sent as `Authorization: Bearer …` when it gives one.
 */
export async function fetchJson(url, { token, ...options } = {}) {
  const credential = await tokenOf(token);
  const res = await fetch(url, credential ? { headers: { Authorization: `Bearer ${credential}` } } : undefined);
  const text = await res.text();
  if (!res.ok) {
    let code = "http_error";
    let message = text;
    try {
      ({ code, message } = JSON.parse(text).error);
    } catch { /* not an mdhub error document: keep the text */ }
    throw Object.assign(new Error(`${url}: ${res.status} ${message}`), { status: res.status, code });
  }
  return parseExact(text, options);
}

/**
 * A position `CHANNEL:PARTITION:OFFSET` as its parts.
 * @param {string} pos
 * @returns {{pos: string, partition: number, offset: bigint}}
 */
export function parsePosition(pos) {
  const [, partition, offset] = pos.split(":");
  return { pos, partition: Number(partition), offset: BigInt(offset) };
}

/** The default WebSocket URL: this page's host, `/v1/ws`. */
function defaultUrl() {
  if (!globalThis.location) throw new Error("MdhubClient: give options.url outside a browser page");
  const scheme = globalThis.location?.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${globalThis.location.host}/v1/ws`;
}

const streamKey = (symbol, channel) => `${symbol} ${channel}`;

/**
 * A connection to an mdhub gateway that survives disconnects.
 *
 * Events (listen with `on(type, fn)`, which passes `event.detail` and returns
 * a function that removes the listener, or with `addEventListener`):
 * - `snapshot`, `update`: `{type, symbol, channel, pos, data, skipped}` for
 *   quotes and trades (`data` is the event as in schemas/event.schema.json;
 *   `skipped`: updates of the stream the server left out while this client
 *   read too slowly, 0 normally);
 * - `status`: the same shape for the `status` channel (feed state per symbol);
 * - `reset`: `{symbol, channel, reason}` — the missed updates cannot be sent
 *   (`epoch_changed`, `position_expired`, `position_ahead`, `replay_limit`: a fresh snapshot
 *   follows; `data_lost`: the replay goes on after records damaged on the
 *   server's disk); the stored position of that stream is already cleared;
 * - `open`: `{epoch, server, heartbeatMs, maxSymbols, resumed, authRequired}`
 *   on each welcome;
 * - `close`: `{code, reason, meaning, reconnect, retryAfterMs}` when a
 *   connection ends (`code` is null for a dead one the client gave up on;
 *   `reconnect` false when the server said not to come back: the client
 *   stops, in state `closed`, or after 4401 in `unauthorized` or
 *   `auth_required`);
 * - `not_entitled`: `{symbols, message, id}` — symbols (or channels) the
 *   credential does not cover; the rest of the subscribe went through (the
 *   `error` event reports it too);
 * - `reconnecting`: `{attempt, delayMs}` before each reconnect;
 * - `state`: the new {@link MdhubClient#state} whenever it changes;
 * - `ack`, `error`: the server's `ack` and `error` frames as they are
 *   (`error` also reports a frame that is not JSON, as code `bad_frame`).
 */
export class MdhubClient extends EventTarget {
  #url;
  #parseOptions;
  #WebSocket;
  #random;
  /** @type {Map<string, Set<string>>} symbol → channels wanted */
  #wanted = new Map();
  /** @type {Map<string, {pos: string, partition: number, offset: bigint}>} */
  #last = new Map();
  #epoch = null;
  #ws = null;
  #welcomed = false;
  #heartbeatMs = null;
  #lastFrameAt = 0;
  #watchdog = null;
  #retryTimer = null;
  #attempt = 0;
  #delivered = false;
  #wasLive = false;
  #closedByUser = false;
  /** The server's `closing` frame, when it sent one before closing. */
  #closing = null;
  #nextId = 1;
  /** The credential: a string, a function giving one (or a promise), or null. */
  #token;
  /** `max_rate_ms` of every subscribe; null: every update. */
  #maxRateMs = null;
  /** The last welcome's `auth_required`. */
  #authRequired = false;
  /** Subscribes may be sent: welcomed, and the credential (if needed) presented. */
  #ready = false;
  /** A credential went out on this connection. */
  #presented = false;
  /** Ids of the `auth` frame the connection waits for, and of a renewal. */
  #authId = null;
  #renewId = null;
  /** The server's message refusing the credential. */
  #refusal = null;
  #state = { phase: "connecting", attempt: 0, nextInMs: 0, reconnects: 0, reason: "" };

  /** Counters, for display and tests. */
  stats = { frames: 0, duplicatesDropped: 0, resets: 0, reconnects: 0, skipped: 0 };

  /**
   * Connects at once.
   * @param {object} [options]
   * @param {string} [options.url] WebSocket URL; default `ws(s)://<location.host>/v1/ws`.
   * @param {"string"|"bigint"} [options.timestamps] nanosecond timestamps as strings (default) or BigInt.
   * @param {"string"|"number"} [options.decimals] prices and sizes as exact strings (default) or Numbers.
   * @param {typeof WebSocket} [options.WebSocket] WebSocket implementation (default the global one).
   * @param {() => number} [options.random] source of jitter in [0, 1) (default Math.random).
   * @param {string|(() => string|null|Promise<string|null>)} [options.token] API key or JWT
   *   presented when the server requires one; a function is asked on each connect (fresh JWTs).
   */
  constructor({ url, timestamps = "string", decimals = "string", WebSocket, random, token, maxRateMs = null } = {}) {
    super();
    this.#token = token || null;
    this.#maxRateMs = maxRateMs || null;
    this.#url = url ?? defaultUrl();
    this.#parseOptions = { timestamps, decimals };
    this.#WebSocket = WebSocket ?? globalThis.WebSocket;
    this.#random = random ?? Math.random;
    this.#connect();
  }

  /**
   * Listen to an event; `fn` receives the event's detail.
   * @param {string} type
   * @param {(detail: any) => void} fn
   * @returns {() => void} removes the listener
   */
  on(type, fn) {
    const listener = (event) => fn(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /**
   * Add symbols and channels to the subscription set. Sent now when
   * connected, and again (with positions) after every reconnect.
   * @param {string[]} symbols canonical symbols (AAPL, BTC-USDT, EUR-USD)
   * @param {string[]} [channels] any of quotes, trades, status; default quotes and trades
   */
  subscribe(symbols, channels = DEFAULT_CHANNELS) {
    for (const symbol of symbols) {
      const set = this.#wanted.get(symbol) ?? new Set();
      for (const channel of channels) set.add(channel);
      this.#wanted.set(symbol, set);
    }
    if (this.#ready) this.#sendSubscribe(symbols, [...channels], this.#epoch);
  }

  /**
   * At most one update per symbol, venue and channel every `ms` milliseconds
   * (the latest, with the count of those skipped; the server's
   * `max_rate_ms`), or every update with `null`. Applies to the whole
   * subscription set at once, now and after reconnects: a phone asks for 250,
   * a hidden page for much more.
   * @param {number|null} ms 1 to 60000, or null
   */
  setMaxRate(ms) {
    const rate = ms || null;
    if (rate === this.#maxRateMs) return;
    this.#maxRateMs = rate;
    if (!this.#ready) return;
    for (const [channels, symbols] of this.#symbolsByChannels()) this.#sendSubscribe(symbols, channels, this.#epoch);
  }

  /**
   * Remove symbols (all their channels, or only `channels`) from the
   * subscription set, and forget their positions: a later subscribe starts
   * with a fresh snapshot.
   * @param {string[]} symbols
   * @param {string[]} [channels]
   */
  unsubscribe(symbols, channels) {
    for (const symbol of symbols) {
      const set = this.#wanted.get(symbol);
      if (!set) continue;
      for (const channel of channels ?? [...set]) {
        set.delete(channel);
        this.#last.delete(streamKey(symbol, channel));
      }
      if (set.size === 0) this.#wanted.delete(symbol);
    }
    if (this.#ready) {
      this.#send({ action: "unsubscribe", symbols, ...(channels && { channels }), id: this.#nextId++ });
    }
  }

  /**
   * Present another credential (API key, JWT, or a function giving one;
   * null to sign out). On a live connection that requires one it is sent at
   * once (renewing the grant; if the server refuses it there, the client
   * reconnects with it); after `auth_required` or `unauthorized` the client
   * connects again with it; otherwise the next connection presents it.
   * Null on a connection that needs a credential closes it (`auth_required`).
   * @param {string|null|(() => string|null|Promise<string|null>)} token
   */
  setToken(token) {
    this.#token = token || null;
    if (this.#closedByUser) return;
    const { phase } = this.#state;
    if (phase === "auth_required" || phase === "unauthorized") {
      if (!this.#token) this.#setState({ phase: "auth_required" });
      else this.#restart();
    } else if (!this.#welcomed || !this.#authRequired) {
      // The next welcome presents it, if it asks for one.
    } else if (!this.#token) {
      this.#needCredential("signed out");
    } else if (this.#ready && this.#authId === null) {
      this.#renew();
    } else {
      this.#restart("a new credential");
    }
  }

  /**
   * {@link fetchJson} with this client's credential and number options.
   * @param {string} url
   * @param {object} [options] as for {@link fetchJson}
   */
  fetchJson(url, options) {
    return fetchJson(url, { ...this.#parseOptions, token: this.#token, ...options });
  }

  /**
   * The connection state:
   * `{phase, attempt, nextInMs, reconnects, reason}` where `phase` is
   * `connecting`, `authenticating` (the credential sent, its answer not yet
   * in), `live`, `reconnecting` (`attempt` n, next try in `nextInMs`; 0 while
   * that try is under way), `resumed` (connected again and resumed from the
   * stored positions), `auth_required` (the server wants a credential and
   * none is set: {@link setToken}), `unauthorized` (the server refused it;
   * `reason` says why) or `closed` (after {@link close}, or when the server
   * said not to reconnect).
   */
  get state() {
    return { ...this.#state };
  }

  /** The log epoch of the current (or last) connection. */
  get epoch() {
    return this.#epoch;
  }

  /**
   * The last position per symbol and channel: what a reconnect resumes from.
   * @returns {Record<string, Record<string, string>>}
   */
  positions() {
    const out = {};
    for (const [key, at] of this.#last) {
      const [symbol, channel] = key.split(" ");
      (out[symbol] ??= {})[channel] = at.pos;
    }
    return out;
  }

  /** Close for good: no reconnect follows. */
  close() {
    this.#closedByUser = true;
    clearTimeout(this.#retryTimer);
    this.#drop(1000, "closed by the client");
    this.#setState({ phase: "closed", attempt: 0, nextInMs: 0 });
  }

  /**
   * Drop the connection as a lost network would, and recover as from one
   * (reconnect, resume). For trying out and testing recovery.
   */
  dropConnection() {
    if (this.#ws) this.#lose("dropped by dropConnection()");
  }

  #connect() {
    if (this.#state.phase === "reconnecting") this.#setState({ nextInMs: 0 });
    else this.#setState({ phase: "connecting", attempt: 0, nextInMs: 0 });
    const ws = new this.#WebSocket(this.#url);
    this.#ws = ws;
    this.#welcomed = false;
    this.#delivered = false;
    this.#closing = null;
    this.#presented = false;
    this.#refusal = null;
    this.#lastFrameAt = Date.now();
    ws.onmessage = (event) => this.#onFrame(event.data);
    // An error event is always followed by a close, which does the recovering.
    ws.onclose = (event) => this.#onClose(event.code, event.reason);
    this.#armWatchdog();
  }

  #onFrame(text) {
    this.#lastFrameAt = Date.now();
    this.stats.frames++;
    let frame;
    try {
      frame = parseExact(text, this.#parseOptions);
    } catch (e) {
      this.#emit("error", { code: "bad_frame", message: `not JSON: ${e.message}` });
      return;
    }
    switch (frame.type) {
      case "welcome": return this.#onWelcome(frame);
      case "snapshot":
      case "update": return this.#onData(frame);
      case "reset": return this.#onReset(frame);
      case "closing":
        this.#closing = frame;
        return;
      case "ack":
        if (frame.action === "auth") this.#onAuthAck(frame);
        return this.#emit("ack", frame);
      case "error": return this.#onError(frame);
      default: return; // heartbeat, pong: liveness only
    }
  }

  #onWelcome(welcome) {
    // The stored positions belong to the previous connection's epoch; the
    // server answers a resume from another log with resets.
    const epoch = this.#epoch ?? welcome.epoch;
    this.#epoch = welcome.epoch;
    this.#heartbeatMs = welcome.heartbeat_ms;
    this.#welcomed = true;
    this.#authRequired = welcome.auth_required === true;
    clearTimeout(this.#watchdog);
    this.#armWatchdog(); // now by the heartbeat interval
    const resumed = this.#wasLive;
    if (!this.#authRequired) this.#goLive();
    else if (this.#token) this.#setState({ phase: "authenticating", attempt: 0, nextInMs: 0 });
    this.#emit("open", {
      epoch: welcome.epoch, server: welcome.server, heartbeatMs: welcome.heartbeat_ms,
      maxSymbols: welcome.max_symbols, resumed, authRequired: this.#authRequired,
    });
    if (!this.#authRequired) return this.#resubscribe(epoch);
    // The credential first: the server reads frames in order, so the
    // subscribes right behind it need not wait for its ack.
    this.#withToken((token) => {
      if (!token) return this.#needCredential("the server requires a credential");
      this.#presented = true;
      this.#authId = this.#nextId++;
      this.#send({ action: "auth", token, id: this.#authId });
      this.#resubscribe(epoch);
    });
  }

  /** Live (or resumed) from now on. */
  #goLive() {
    const resumed = this.#wasLive;
    if (resumed) this.stats.reconnects++;
    this.#wasLive = true;
    this.#setState({ phase: resumed ? "resumed" : "live", attempt: 0, nextInMs: 0, reconnects: this.stats.reconnects });
  }

  /** Send the whole subscription set, resuming from `epoch`'s positions. */
  #resubscribe(epoch) {
    this.#ready = true;
    for (const [channels, symbols] of this.#symbolsByChannels()) this.#sendSubscribe(symbols, channels, epoch);
  }

  #onAuthAck(ack) {
    if (ack.id === this.#authId) {
      this.#authId = null;
      this.#goLive();
    } else if (ack.id === this.#renewId) {
      // A renewed grant may cover symbols the old one did not: ask again.
      this.#renewId = null;
      const missing = [...this.#wanted.keys()].filter((s) => !Object.hasOwn(ack.subscriptions ?? {}, s));
      for (const [channels, symbols] of this.#symbolsByChannels(missing)) this.#sendSubscribe(symbols, channels, this.#epoch);
    }
  }

  #onError(error) {
    const refusedRenewal = error.code === "unauthorized" && error.id != null && error.id === this.#renewId;
    if (error.code === "unauthorized") this.#refusal = error.message;
    this.#emit("error", error);
    if (error.code === "not_entitled") {
      this.#emit("not_entitled", { symbols: error.symbols ?? [], message: error.message, id: error.id });
    }
    // Refused on a connection that belongs to another user: start one of its own.
    if (refusedRenewal) this.#restart("a new credential");
  }

  /** Present the credential of the token option to `use`; null when there is none. */
  #withToken(use) {
    const ws = this.#ws;
    const failed = (e) => {
      if (this.#ws !== ws) return;
      this.#emit("error", { code: "token_unavailable", message: `the token function failed: ${e?.message ?? e}` });
      if (!this.#ready) this.#lose("no credential to present");
    };
    let token;
    try {
      token = tokenOf(this.#token);
    } catch (e) {
      return failed(e);
    }
    if (typeof token?.then !== "function") return use(token || null);
    token.then((t) => this.#ws === ws && use(t || null), failed);
  }

  /** Send the credential again on the open connection (a renewal). */
  #renew() {
    this.#withToken((token) => {
      if (!token) return this.#needCredential("signed out");
      this.#renewId = this.#nextId++;
      this.#send({ action: "auth", token, id: this.#renewId });
    });
  }

  /** Close, and wait in `auth_required` for {@link setToken}. */
  #needCredential(reason) {
    this.#drop(1000, reason);
    this.#emit("close", { code: 1000, reason, meaning: "", reconnect: false, retryAfterMs: 0 });
    this.#setState({ phase: "auth_required", reason, attempt: 0, nextInMs: 0 });
  }

  /** Replace the connection now (a new credential), without a backoff. */
  #restart(why = "a new credential") {
    clearTimeout(this.#retryTimer);
    this.#drop(1000, why);
    this.#attempt = 0;
    this.#connect();
  }

  #onData(frame) {
    const symbol = frame.data.symbol;
    const key = streamKey(symbol, frame.channel);
    // Wanted as the symbol (every venue) or as SYMBOL@venue; else it was
    // sent before an unsubscribe's ack.
    const wanted = (name) => this.#wanted.get(name)?.has(frame.channel);
    if (!wanted(symbol) && !wanted(`${symbol}@${frame.data.venue}`)) return;
    const at = parsePosition(frame.pos);
    const last = this.#last.get(key);
    if (last && last.partition === at.partition && at.offset <= last.offset) {
      this.stats.duplicatesDropped++;
      return;
    }
    this.#last.set(key, at);
    this.#delivered = true;
    const skipped = frame.skipped ?? 0;
    this.stats.skipped += skipped;
    const detail = { type: frame.type, symbol, channel: frame.channel, pos: frame.pos, data: frame.data, skipped };
    this.#emit(frame.channel === "status" ? "status" : frame.type, detail);
  }

  #onReset(reset) {
    this.#last.delete(streamKey(reset.symbol, reset.channel));
    this.stats.resets++;
    this.#emit("reset", { symbol: reset.symbol, channel: reset.channel, reason: reset.reason });
  }

  #onClose(code, reason) {
    const advice = this.#closing ?? { reconnect: true, retry_after_ms: 0, ...CLOSE_ADVICE[code], reason };
    const presented = this.#presented;
    this.#drop();
    this.#emit("close", {
      code, reason: advice.reason, meaning: CLOSE_CODES[code] ?? "",
      reconnect: advice.reconnect, retryAfterMs: advice.retry_after_ms,
    });
    if (this.#closedByUser) return;
    if (advice.reconnect) return this.#scheduleReconnect(advice.retry_after_ms);
    // 4401: this credential will not do (or none came in time); wait for setToken().
    const phase = (advice.code ?? code) !== UNAUTHORIZED ? "closed" : presented ? "unauthorized" : "auth_required";
    this.#setState({ phase, reason: this.#refusal ?? advice.reason ?? "", attempt: 0, nextInMs: 0 });
  }

  /** Give up on a connection that still looks open, and recover. */
  #lose(why) {
    this.#drop(1000, why);
    this.#emit("close", { code: null, reason: why, meaning: "connection lost", reconnect: true, retryAfterMs: 0 });
    this.#scheduleReconnect();
  }

  /** Detach from the current socket (closing it if asked) and stop watching it. */
  #drop(code, reason) {
    const ws = this.#ws;
    this.#ws = null;
    this.#welcomed = false;
    this.#ready = false;
    this.#authId = this.#renewId = null;
    clearTimeout(this.#watchdog);
    if (!ws) return;
    ws.onmessage = ws.onclose = null;
    if (code !== undefined) ws.close(code, reason);
  }

  /** Reconnect after a jittered backoff, and not before `minDelayMs` (the server's `retry_after_ms`). */
  #scheduleReconnect(minDelayMs = 0) {
    // A connection that delivered data was healthy: back off afresh.
    this.#attempt = this.#delivered ? 1 : this.#attempt + 1;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.#attempt, 16));
    const delayMs = Math.max(minDelayMs, Math.round(this.#random() * ceiling));
    this.#setState({ phase: "reconnecting", attempt: this.#attempt, nextInMs: delayMs });
    this.#emit("reconnecting", { attempt: this.#attempt, delayMs });
    this.#retryTimer = setTimeout(() => this.#connect(), delayMs);
  }

  #armWatchdog() {
    const limit = this.#welcomed ? SILENT_HEARTBEATS * this.#heartbeatMs : CONNECT_TIMEOUT_MS;
    const silentFor = Date.now() - this.#lastFrameAt;
    if (silentFor > limit) {
      this.#lose(`nothing received for ${silentFor} ms`);
      return;
    }
    // Check again a little after the connection would turn dead.
    this.#watchdog = setTimeout(() => this.#armWatchdog(), Math.max(limit - silentFor, 0) + 10);
  }

  /** The wanted symbols (all, or those of `only`) grouped by their channel sets (one subscribe each). */
  #symbolsByChannels(only = [...this.#wanted.keys()]) {
    const groups = new Map();
    for (const symbol of only) {
      const channels = [...this.#wanted.get(symbol)].sort().join(",");
      groups.set(channels, [...(groups.get(channels) ?? []), symbol]);
    }
    return [...groups].map(([channels, symbols]) => [channels.split(","), symbols]);
  }

  #sendSubscribe(symbols, channels, epoch) {
    const message = { action: "subscribe", symbols, channels, id: this.#nextId++ };
    if (this.#maxRateMs) message.max_rate_ms = this.#maxRateMs;
    const positions = {};
    for (const name of symbols) {
      // Positions are per symbol and channel, also for a subscription
      // narrowed to a venue (`BTC-USD@kraken`): frames name the symbol.
      const symbol = name.split("@")[0];
      for (const channel of channels) {
        const at = this.#last.get(streamKey(symbol, channel));
        if (at) (positions[symbol] ??= {})[channel] = at.pos;
      }
    }
    if (Object.keys(positions).length > 0) message.resume = { epoch, positions };
    this.#send(message);
  }

  #send(message) {
    if (this.#ws?.readyState === 1 /* OPEN */) this.#ws.send(JSON.stringify(message));
  }

  #setState(change) {
    // A reason belongs to the phase it came with.
    if (change.phase && change.reason === undefined) change = { ...change, reason: "" };
    this.#state = { ...this.#state, ...change };
    this.#emit("state", this.state);
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
