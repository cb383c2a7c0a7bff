// Unit tests of mdhub.js against a scripted WebSocket and mocked timers:
// the parts of the protocol a live hub cannot be made to show on demand
// (duplicates, resets, silent connections, backoff). The browser test
// (ui.mjs) runs the same module against a real hub.
//
//   node --test tests/web/mdhub.test.mjs

import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

// mdhub.js is a browser module in a folder without a package.json, which
// Node 20 would load as CommonJS: import its text as an ES module instead.
const source = await readFile(new URL("../../crates/mdhub_gateway/web/mdhub.js", import.meta.url), "utf8");
const { MdhubClient, parseExact, fetchJson } = await import(`data:text/javascript,${encodeURIComponent(source)}`);

/** A WebSocket whose server side the test plays. */
class ScriptedSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    ScriptedSocket.all.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code, reason) { this.closedWith = { code, reason }; this.readyState = 3; }
  // The server's side:
  welcome(epoch = "e1", heartbeatMs = 1000, extra = {}) {
    this.readyState = 1;
    this.text(JSON.stringify({ type: "welcome", epoch, server: "mdhub/test", heartbeat_ms: heartbeatMs, max_symbols: 1000, ...extra }));
  }
  /** A welcome from a hub that requires a credential. */
  welcomeAuth(epoch = "e1") { this.welcome(epoch, 1000, { auth_required: true }); }
  text(data) { this.onmessage?.({ data }); }
  frame(value) { this.text(JSON.stringify(value)); }
  /** A `closing` frame, then the close. */
  goodbye(code, reconnect, retryAfterMs = 0, reason = "") {
    this.frame({ type: "closing", code, reconnect, retry_after_ms: retryAfterMs, reason });
    this.serverClose(code);
  }
  data(type, pos, symbol = "AAPL") {
    const channel = pos.split(":")[0];
    this.text(JSON.stringify({ type, channel, pos, data: { type: "trade", venue: "kraken", symbol, price: "1.5", size: "2" } }));
  }
  serverClose(code) { this.readyState = 3; this.onclose?.({ code, reason: "" }); }
}

const latest = () => ScriptedSocket.all.at(-1);

function client(options = {}) {
  const c = new MdhubClient({ url: "ws://hub/v1/ws", WebSocket: ScriptedSocket, random: () => 0.999, ...options });
  const seen = [];
  for (const type of ["snapshot", "update", "status", "reset", "open", "close", "reconnecting", "ack", "error", "not_entitled", "state"]) {
    c.on(type, (detail) => seen.push({ event: type, ...detail }));
  }
  return { c, seen, of: (type) => seen.filter((e) => e.event === type) };
}

/** Let a scheduled reconnect happen and welcome it. */
function reconnect(epoch = "e1") {
  const before = ScriptedSocket.all.length;
  mock.timers.tick(5000);
  assert.equal(ScriptedSocket.all.length, before + 1, "a new connection after the backoff");
  latest().welcome(epoch);
}

beforeEach(() => {
  ScriptedSocket.all = [];
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
});
afterEach(() => mock.timers.reset());

test("nanosecond timestamps keep every digit; decimals stay strings unless asked", () => {
  const text = '{"type":"update","pos":"trades:1:2","data":{"ts_exchange":1764162000123456789,' +
    '"ts_received": 1764162000123800001,"price":"189.53","detail":"{\\"ts\\":1}"},"n":12.5}';
  const exact = parseExact(text);
  assert.equal(exact.data.ts_exchange, "1764162000123456789");
  assert.equal(exact.data.ts_received, "1764162000123800001");
  assert.equal(exact.data.price, "189.53");
  assert.equal(exact.data.detail, '{"ts":1}', "text inside strings is left alone");
  assert.equal(exact.n, 12.5);
  const typed = parseExact(text, { timestamps: "bigint", decimals: "number" });
  assert.equal(typed.data.ts_exchange, 1764162000123456789n);
  assert.equal(typed.data.price, 189.53);
});

test("subscriptions made before the welcome are sent with it; data becomes events", () => {
  const { c, of } = client();
  c.subscribe(["AAPL"]);
  assert.deepEqual(c.state.phase, "connecting");
  latest().welcome();
  assert.deepEqual(latest().sent, [{ action: "subscribe", symbols: ["AAPL"], channels: ["quotes", "trades"], id: 1 }]);
  assert.equal(c.state.phase, "live");
  latest().data("snapshot", "trades:1:5");
  latest().data("update", "trades:1:6");
  assert.deepEqual(of("snapshot").map((e) => e.pos), ["trades:1:5"]);
  assert.deepEqual(of("update").map((e) => [e.symbol, e.channel, e.data.price]), [["AAPL", "trades", "1.5"]]);
  assert.deepEqual(c.positions(), { AAPL: { trades: "trades:1:6" } });
});

test("max_rate_ms goes with every subscribe; setMaxRate resends the set, also after reconnects", () => {
  const { c } = client({ maxRateMs: 250 });
  c.subscribe(["AAPL"]);
  latest().welcome();
  assert.equal(latest().sent[0].max_rate_ms, 250);
  latest().data("update", "trades:1:6");
  c.setMaxRate(10_000);
  assert.deepEqual(latest().sent.at(-1).max_rate_ms, 10_000);
  assert.deepEqual(latest().sent.at(-1).symbols, ["AAPL"]);
  c.setMaxRate(10_000); // unchanged: nothing sent
  assert.equal(latest().sent.length, 2);
  c.setMaxRate(null);
  assert.equal("max_rate_ms" in latest().sent.at(-1), false, "no rate: every update");
  latest().serverClose(1006);
  reconnect();
  assert.equal("max_rate_ms" in latest().sent[0], false);
  assert.deepEqual(latest().sent[0].resume.positions, { AAPL: { trades: "trades:1:6" } });
});

test("a subscription narrowed to a venue resumes from its symbol's position", () => {
  const { c } = client();
  c.subscribe(["BTC-USD@kraken"], ["trades"]);
  latest().welcome();
  latest().data("update", "trades:2:9", "BTC-USD");
  latest().serverClose(1006);
  reconnect();
  assert.deepEqual(latest().sent[0].symbols, ["BTC-USD@kraken"]);
  assert.deepEqual(latest().sent[0].resume.positions, { "BTC-USD": { trades: "trades:2:9" } });
});

test("a frame at or before the last position of its stream is dropped", () => {
  const { c, of } = client();
  c.subscribe(["AAPL", "MSFT"]);
  latest().welcome();
  for (const pos of ["trades:1:5", "trades:1:5", "trades:1:4", "trades:1:6"]) latest().data("update", pos);
  latest().data("update", "trades:1:3", "MSFT"); // another stream: its own positions
  assert.deepEqual(of("update").map((e) => e.pos), ["trades:1:5", "trades:1:6", "trades:1:3"]);
  assert.equal(c.stats.duplicatesDropped, 2);
});

test("after a 1001 close it reconnects and resumes from the last positions", () => {
  const { c, of } = client();
  c.subscribe(["AAPL"]);
  c.subscribe(["BTC-USDT"], ["trades"]);
  latest().welcome();
  latest().data("update", "quotes:1:7");
  latest().data("update", "trades:2:9", "BTC-USDT");
  latest().serverClose(1001);
  assert.equal(of("close")[0].meaning, "server shutting down");
  assert.equal(c.state.phase, "reconnecting");
  reconnect();
  const resent = latest().sent;
  assert.deepEqual(resent.map((m) => [m.symbols, m.channels, m.resume]), [
    [["AAPL"], ["quotes", "trades"], { epoch: "e1", positions: { AAPL: { quotes: "quotes:1:7" } } }],
    [["BTC-USDT"], ["trades"], { epoch: "e1", positions: { "BTC-USDT": { trades: "trades:2:9" } } }],
  ]);
  assert.equal(c.state.phase, "resumed");
  assert.equal(c.state.reconnects, 1);
  assert.equal(of("open").at(-1).resumed, true);
});

test("a resume hands back the positions' own epoch, and a reset clears the position", () => {
  const { c, of } = client();
  c.subscribe(["AAPL"], ["trades"]);
  latest().welcome("e1");
  latest().data("update", "trades:1:900");
  latest().serverClose(1006);
  reconnect("e2");
  assert.equal(latest().sent[0].resume.epoch, "e1");
  latest().text(JSON.stringify({ type: "reset", symbol: "AAPL", channel: "trades", reason: "epoch_changed" }));
  assert.deepEqual(c.positions(), {});
  latest().data("snapshot", "trades:1:3"); // the new log's offsets start low
  assert.deepEqual(of("reset").map((e) => e.reason), ["epoch_changed"]);
  assert.deepEqual(of("snapshot").map((e) => e.pos), ["trades:1:3"]);
  assert.equal(c.epoch, "e2");
});

test("a connection silent for two heartbeats is closed and replaced", () => {
  const { c, of } = client();
  latest().welcome("e1", 1000);
  const first = latest();
  mock.timers.tick(1500);
  first.text('{"type":"heartbeat","ts":1764162020000000000}');
  mock.timers.tick(1900);
  assert.equal(first.closedWith, null, "a heartbeat keeps it alive");
  mock.timers.tick(200);
  assert.notEqual(first.closedWith, null, "2 s of silence: dead");
  assert.equal(of("close").at(-1).code, null);
  assert.equal(c.state.phase, "reconnecting");
  reconnect();
  assert.equal(c.state.phase, "resumed");
});

test("backoff doubles up to 5 s with full jitter, and starts over after a connection that delivered data", () => {
  let r = 0.999;
  const { c, of } = client({ random: () => r });
  c.subscribe(["AAPL"]);
  latest().welcome();
  for (let i = 0; i < 7; i++) {
    latest().serverClose(1006);
    mock.timers.tick(5000);
  }
  assert.deepEqual(of("reconnecting").map((e) => e.delayMs), [200, 400, 799, 1598, 3197, 4995, 4995]);
  r = 0.25;
  latest().welcome();
  latest().data("update", "trades:1:1");
  latest().serverClose(4008);
  assert.deepEqual(of("reconnecting").at(-1), { event: "reconnecting", attempt: 1, delayMs: 50 });
  assert.equal(c.state.attempt, 1);
});

test("unsubscribe forgets positions and drops frames still in flight", () => {
  const { c, of } = client();
  c.subscribe(["AAPL", "MSFT"]);
  latest().welcome();
  latest().data("update", "trades:1:5");
  c.unsubscribe(["AAPL"]);
  assert.deepEqual(latest().sent.at(-1), { action: "unsubscribe", symbols: ["AAPL"], id: 2 });
  latest().data("update", "trades:1:6");
  assert.deepEqual(of("update").map((e) => e.pos), ["trades:1:5"]);
  c.unsubscribe(["MSFT"], ["quotes"]);
  assert.deepEqual(latest().sent.at(-1).channels, ["quotes"]);
  latest().serverClose(1001);
  reconnect();
  assert.deepEqual(latest().sent, [{ action: "subscribe", symbols: ["MSFT"], channels: ["trades"], id: 4 }]);
});

test("the server's closing advice is followed: wait retry_after_ms, or stop", () => {
  const { c, of } = client({ random: () => 0 });
  latest().welcome();
  latest().text('{"type":"closing","code":1001,"reconnect":true,"retry_after_ms":1380,"reason":"server shutting down"}');
  latest().serverClose(1001);
  assert.deepEqual(of("reconnecting").at(-1), { event: "reconnecting", attempt: 1, delayMs: 1380 });
  assert.equal(of("close").at(-1).reason, "server shutting down");
  mock.timers.tick(1379);
  assert.equal(ScriptedSocket.all.length, 1, "not before retry_after_ms");
  mock.timers.tick(1);
  latest().welcome();
  latest().text('{"type":"closing","code":1008,"reconnect":false,"retry_after_ms":0,"reason":"go away"}');
  latest().serverClose(1008);
  mock.timers.tick(10_000);
  assert.equal(ScriptedSocket.all.length, 2, "no reconnect when told not to");
  assert.equal(c.state.phase, "closed");
  assert.equal(of("close").at(-1).reconnect, false);
});

test("updates left out for a slow reader are counted", () => {
  const { c, of } = client();
  c.subscribe(["AAPL"]);
  latest().welcome();
  latest().text('{"type":"update","skipped":41,"channel":"quotes","pos":"quotes:1:52210","data":{"type":"quote","symbol":"AAPL"}}');
  assert.equal(of("update")[0].skipped, 41);
  assert.equal(c.stats.skipped, 41);
});

test("close() ends it for good", () => {
  const { c } = client();
  latest().welcome();
  c.close();
  assert.equal(latest().closedWith.code, 1000);
  mock.timers.tick(10_000);
  assert.equal(ScriptedSocket.all.length, 1);
  assert.equal(c.state.phase, "closed");
});

test("server errors and unparsable frames are reported, and the connection goes on", () => {
  const { c, of } = client();
  latest().welcome();
  latest().text('{"type":"error","code":"unknown_symbol","message":"no data","symbols":["NOSUCH"],"id":3}');
  latest().text("not json");
  assert.deepEqual(of("error").map((e) => e.code), ["unknown_symbol", "bad_frame"]);
  assert.equal(c.state.phase, "live");
});

// Authentication: the credential goes in an `auth` frame before the
// subscriptions, only when the welcome asks for one.

/** Let promises (an async token function, fetch) settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test("with a token, the auth frame goes first and the client is live on its ack", () => {
  const { c, of } = client({ token: "mdk_1" });
  c.subscribe(["AAPL"]);
  latest().welcomeAuth();
  assert.equal(c.state.phase, "authenticating");
  assert.equal(of("open")[0].authRequired, true);
  assert.deepEqual(latest().sent, [
    { action: "auth", token: "mdk_1", id: 1 },
    { action: "subscribe", symbols: ["AAPL"], channels: ["quotes", "trades"], id: 2 },
  ]);
  latest().frame({ type: "ack", action: "auth", id: 1, subscriptions: {} });
  assert.equal(c.state.phase, "live");
  // A hub that needs no credential is not sent one (it would refuse an unknown key).
  latest().serverClose(1001);
  reconnect();
  assert.deepEqual(latest().sent.map((m) => m.action), ["subscribe"]);
  assert.equal(c.state.phase, "resumed");
});

test("without a token it stops in auth_required, and setToken connects", () => {
  const { c, of } = client();
  c.subscribe(["AAPL"]);
  latest().welcomeAuth();
  assert.deepEqual(of("state").map((e) => e.phase), ["auth_required"], "straight there, not through authenticating");
  assert.equal(latest().closedWith.code, 1000);
  assert.deepEqual(latest().sent, [], "nothing the server would only refuse");
  assert.equal(of("close").at(-1).reconnect, false);
  mock.timers.tick(60_000);
  assert.equal(ScriptedSocket.all.length, 1, "no reconnects without a credential");
  c.setToken(null);
  assert.equal(ScriptedSocket.all.length, 1);
  c.setToken("mdk_1");
  assert.equal(ScriptedSocket.all.length, 2, "at once");
  latest().welcomeAuth();
  assert.deepEqual(latest().sent.map((m) => [m.action, m.token]), [["auth", "mdk_1"], ["subscribe", undefined]]);
});

test("a refused credential stops in unauthorized, with the server's reason", () => {
  const { c, of } = client({ token: "nope" });
  latest().welcomeAuth();
  latest().frame({ type: "error", code: "unauthorized", message: "unknown API key", id: 1 });
  latest().goodbye(4401, false, 0, "credential refused");
  assert.deepEqual(c.state, { phase: "unauthorized", attempt: 0, nextInMs: 0, reconnects: 0, reason: "unknown API key" });
  assert.deepEqual(of("error").map((e) => e.code), ["unauthorized"]);
  mock.timers.tick(60_000);
  assert.equal(ScriptedSocket.all.length, 1, "no retry with the same credential");
  c.setToken("mdk_good");
  latest().welcomeAuth();
  assert.equal(latest().sent[0].token, "mdk_good");
  // A 4401 without its closing frame, and without a credential sent (the auth timeout).
  c.setToken(() => new Promise(() => {})); // never answers
  latest().welcomeAuth();
  latest().serverClose(4401);
  assert.equal(c.state.phase, "auth_required");
  assert.equal(of("close").at(-1).meaning, "no credential, or a refused one");
});

test("on expiry (4403) it reconnects with a fresh token from the function and resumes", async () => {
  let n = 0;
  const { c } = client({ token: async () => `jwt-${++n}`, random: () => 0 });
  c.subscribe(["AAPL"], ["trades"]);
  latest().welcomeAuth();
  assert.deepEqual(latest().sent, [], "waits for the token");
  await settle();
  assert.deepEqual(latest().sent.map((m) => m.token ?? m.action), ["jwt-1", "subscribe"]);
  latest().frame({ type: "ack", action: "auth", id: 1, subscriptions: {} });
  latest().data("update", "trades:1:40");
  latest().goodbye(4403, true, 0, "credential expired; reconnect with a fresh one");
  assert.equal(c.state.phase, "reconnecting");
  mock.timers.tick(0);
  latest().welcomeAuth();
  await settle();
  const [auth, sub] = latest().sent;
  assert.equal(auth.token, "jwt-2");
  assert.deepEqual(sub.resume, { epoch: "e1", positions: { AAPL: { trades: "trades:1:40" } } });
  latest().frame({ type: "ack", action: "auth", id: auth.id, subscriptions: {} });
  assert.equal(c.state.phase, "resumed");
});

test("a token function that fails is reported, and the connection retried", async () => {
  let fail = true;
  const { c, of } = client({ token: () => (fail ? Promise.reject(new Error("no session")) : "jwt") });
  latest().welcomeAuth();
  await settle();
  assert.equal(of("error")[0].code, "token_unavailable");
  assert.equal(c.state.phase, "reconnecting");
  fail = false;
  mock.timers.tick(5000);
  latest().welcomeAuth();
  assert.equal(latest().sent[0].token, "jwt");
});

test("too many connections (4429): wait retry_after_ms, with or without the closing frame", () => {
  const { c, of } = client({ token: "mdk_1", random: () => 0 });
  latest().welcomeAuth();
  latest().frame({ type: "error", code: "too_many_connections", message: "desk holds its limit", id: 1 });
  latest().goodbye(4429, true, 5000, "too many connections");
  assert.equal(c.state.phase, "reconnecting");
  assert.equal(of("reconnecting").at(-1).delayMs, 5000);
  mock.timers.tick(4999);
  assert.equal(ScriptedSocket.all.length, 1);
  mock.timers.tick(1);
  assert.equal(ScriptedSocket.all.length, 2);
  latest().welcomeAuth();
  latest().serverClose(4429);
  assert.equal(of("reconnecting").at(-1).delayMs, 5000);
});

test("setToken on a live connection renews the grant; null signs out", () => {
  const { c } = client({ token: "mdk_1" });
  c.subscribe(["AAPL", "MSFT"]);
  latest().welcomeAuth();
  latest().frame({ type: "ack", action: "auth", id: 1, subscriptions: {} });
  c.setToken("mdk_2");
  const socket = latest();
  assert.deepEqual(socket.sent.at(-1), { action: "auth", token: "mdk_2", id: 3 });
  // The renewed grant covers AAPL only so far: MSFT is asked for again.
  socket.frame({ type: "ack", action: "auth", id: 3, subscriptions: { AAPL: ["quotes", "trades"] } });
  assert.deepEqual(socket.sent.at(-1), { action: "subscribe", symbols: ["MSFT"], channels: ["quotes", "trades"], id: 4 });
  assert.equal(c.state.phase, "live");
  // Another user's credential is refused on this connection: a new one presents it.
  c.setToken("mdk_other");
  socket.frame({ type: "error", code: "unauthorized", message: "this connection belongs to \"desk\"", id: 5 });
  assert.equal(socket.closedWith.code, 1000);
  assert.equal(ScriptedSocket.all.length, 2);
  latest().welcomeAuth();
  assert.equal(latest().sent[0].token, "mdk_other");
  c.setToken(null);
  assert.equal(latest().closedWith.code, 1000);
  assert.equal(c.state.phase, "auth_required");
});

test("not_entitled errors become events; the connection goes on", () => {
  const { c, of } = client({ token: "mdk_1" });
  c.subscribe(["AAPL", "MSFT"]);
  latest().welcomeAuth();
  latest().frame({ type: "error", code: "not_entitled", message: "your credential is not entitled", symbols: ["MSFT"], id: 2 });
  assert.deepEqual(of("not_entitled"), [{ event: "not_entitled", symbols: ["MSFT"], message: "your credential is not entitled", id: 2 }]);
  assert.deepEqual(of("error").map((e) => e.code), ["not_entitled"]);
  assert.equal(c.state.phase, "authenticating");
});

test("fetchJson sends the token as a bearer credential", async (t) => {
  const seen = [];
  t.mock.method(globalThis, "fetch", async (url, init) => {
    seen.push([url, init?.headers?.Authorization]);
    return new Response('{"bars":[{"ts":1764162000123456789}]}');
  });
  const bars = await fetchJson("/v1/history/bars?symbol=AAPL", { token: async () => "mdk_1" });
  assert.equal(bars.bars[0].ts, "1764162000123456789");
  await fetchJson("/v1/symbols");
  const { c } = client({ token: "mdk_2" });
  await c.fetchJson("/v1/snapshot?symbols=AAPL");
  assert.deepEqual(seen, [
    ["/v1/history/bars?symbol=AAPL", "Bearer mdk_1"],
    ["/v1/symbols", undefined],
    ["/v1/snapshot?symbols=AAPL", "Bearer mdk_2"],
  ]);
});
