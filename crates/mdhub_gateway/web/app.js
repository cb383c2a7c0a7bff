// The trading UI served at `/`: a live quote board, a candlestick chart and
// the trade tape of the selected symbol, the connection's state and the
// feeds' state. On a phone (up to 700 px wide) the board fills the screen
// and a tap opens the symbol's chart and trades as a view of its own; the
// page then asks for at most four updates a second, and a hidden page for
// one every ten seconds. Live data comes only through mdhub.js; events update the
// models, and the DOM follows once per animation frame. A hub that requires
// a credential gets a sign-in panel; the key is kept in localStorage and
// sent with every REST request too.

import { MdhubClient } from "/mdhub.js";
import { QuoteBoard } from "./board.js";
import { CandleChart } from "./chart.js";
import { TradeTape } from "./tape.js";

const DEFAULT_SYMBOLS = 8;
const CHANNELS = ["quotes", "trades", "status"];
const STATUS_POLL_MS = 5000;
const NOTE_MS = 6000;
const STORAGE_KEY = "mdhub.symbols";
const TOKEN_KEY = "mdhub.token";
/** A phone repaints its board four times a second: more would spend the battery and the data plan on updates nobody sees. */
const PHONE_RATE_MS = 250;
/** A hidden page keeps its streams (so it comes back without a gap) at a trickle. */
const HIDDEN_RATE_MS = 10_000;

const $ = (id) => document.getElementById(id);
const phone = window.matchMedia("(max-width: 700px)");

/** The `max_rate_ms` this page should ask for now; null: every update. */
function wantedRate() {
  if (document.visibilityState === "hidden") return HIDDEN_RATE_MS;
  return phone.matches ? PHONE_RATE_MS : null;
}

const client = new MdhubClient({ token: localStorage.getItem(TOKEN_KEY), maxRateMs: wantedRate() });
const board = new QuoteBoard($("board"), { onSelect: openDetail, onRemove: removeSymbol });
const chart = new CandleChart($("chart"), $("chart-ohlc"), api);
const tape = new TradeTape($("tape"));
let updates = 0;
let frameRequested = false;
let noteTimer = null;
/** The last welcome asked for a credential. */
let authRequired = false;
/** A key typed into the sign-in panel: kept once the hub accepts it. */
let offered = null;
/** A REST answer was 401: load the chart again once signed in. */
let refused = false;

// A handle for the browser console and the UI test.
window.mdhub = { client, board, chart };

client.on("snapshot", onData);
client.on("update", onData);
client.on("status", (s) => {
  board.status(s.data);
  scheduleRender();
});
client.on("open", (o) => (authRequired = o.authRequired));
client.on("state", (state) => {
  showConnection(state);
  showSignIn(state);
});
client.on("reset", (r) => note(`${r.symbol} ${r.channel}: ${r.reason.replace("_", " ")}, fresh snapshot`));
client.on("error", onServerError);
client.on("not_entitled", onNotEntitled);

/** GET a REST answer with the page's credential. */
function api(url) {
  return client.fetchJson(url).catch((e) => {
    if (e.status === 401) refused = true;
    throw e;
  });
}

function onData(u) {
  updates++;
  if (u.channel === "quotes") {
    board.quote(u.data);
  } else {
    board.trade(u.data);
    chart.trade(u.data);
    tape.trade(u.data);
  }
  scheduleRender();
}

function scheduleRender() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => {
    frameRequested = false;
    board.render();
    chart.render();
    tape.render();
    if (document.body.dataset.view === "detail") showDetailQuote();
  });
}

function addSymbols(symbols) {
  const fresh = [...new Set(symbols)].filter((s) => !board.has(s));
  if (fresh.length === 0) return;
  for (const s of fresh) board.add(s);
  client.subscribe(fresh, CHANNELS);
  save();
  if (!chart.symbol) select(board.symbols[0]);
}

function removeSymbol(symbol) {
  client.unsubscribe([symbol]);
  board.remove(symbol);
  save();
  if (chart.symbol === symbol && board.symbols.length > 0) select(board.symbols[0]);
}

/** A tap on a row: its chart and trades; on a phone, as a full-width view. */
function openDetail(symbol) {
  select(symbol);
  if (!phone.matches || document.body.dataset.view === "detail") return;
  document.body.dataset.view = "detail";
  showDetailQuote();
  // The phone's own back gesture returns to the board too.
  history.pushState({ view: "detail" }, "");
}

/** The phone's detail view: each venue's bid and ask with their sizes (the board leaves sizes out). */
function showDetailQuote() {
  const text = board
    .quotesOf(chart.symbol)
    .map((q) => `${q.venue} ${q.bid} × ${q.bidSize} / ${q.ask} × ${q.askSize}`)
    .join("  ·  ");
  if ($("detail-quote").textContent !== text) $("detail-quote").textContent = text;
}

function closeDetail() {
  delete document.body.dataset.view;
}

function select(symbol) {
  board.select(symbol);
  $("chart-symbol").textContent = symbol;
  tape.show(symbol);
  chart.show(symbol);
}

function save() {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(board.symbols));
}

function onServerError(e) {
  // A symbol the hub does not know (or cannot be one) leaves the board.
  if (e.code === "unknown_symbol" || e.code === "invalid_symbol") {
    for (const s of e.symbols ?? []) {
      if (board.has(s)) removeSymbol(s);
    }
  }
  if (e.code === "not_entitled" || e.code === "unauthorized") return; // shown by onNotEntitled, showSignIn
  note(`${e.code}: ${e.message}${e.symbols ? ` (${e.symbols.join(", ")})` : ""}`);
}

/** Symbols the credential does not cover stay on the board, marked; the chart moves to one it does. */
function onNotEntitled({ symbols }) {
  board.deny(symbols);
  scheduleRender();
  note(`not entitled: ${symbols.join(", ")}`);
  if (!board.denied(chart.symbol)) return;
  const entitled = board.symbols.find((s) => !board.denied(s));
  if (entitled) select(entitled);
}

/** The sign-in panel while the hub wants a credential; "sign out" while one is in use. */
function showSignIn({ phase, reason }) {
  const live = phase === "live" || phase === "resumed";
  const wanted = phase === "auth_required" || phase === "unauthorized";
  if (live && offered) {
    localStorage.setItem(TOKEN_KEY, offered);
    offered = null;
    $("signin-token").value = "";
  }
  if (phase === "unauthorized") localStorage.removeItem(TOKEN_KEY); // a refused key is not kept
  $("signin-error").textContent = phase === "unauthorized" ? `Refused: ${reason || "the hub did not accept it"}.` : "";
  const panel = $("signin");
  if (wanted && panel.hidden) setTimeout(() => $("signin-token").focus());
  panel.hidden = !wanted;
  $("account").hidden = wanted || !authRequired;
  if (live && refused && chart.symbol) {
    refused = false;
    chart.show(chart.symbol);
  }
}

function onSignIn(event) {
  event.preventDefault();
  offered = $("signin-token").value.trim();
  if (!offered) return;
  board.deny(board.symbols, false); // another credential: entitlements anew
  scheduleRender();
  client.setToken(offered);
}

function onSignOut() {
  localStorage.removeItem(TOKEN_KEY);
  client.setToken(null);
}

function note(text) {
  $("note").textContent = text;
  clearTimeout(noteTimer);
  noteTimer = setTimeout(() => ($("note").textContent = ""), NOTE_MS);
}

function showConnection(state) {
  const el = $("conn");
  el.dataset.phase = state.phase;
  el.dataset.reconnects = String(state.reconnects);
  const plural = state.reconnects === 1 ? "" : "s";
  $("conn-text").textContent = {
    connecting: "connecting…",
    live: "live",
    reconnecting: `reconnecting · attempt ${state.attempt}` +
      (state.nextInMs > 0 ? ` · next in ${state.nextInMs} ms` : " · connecting…"),
    resumed: `live · resumed after ${state.reconnects} reconnect${plural}`,
    closed: "closed",
    authenticating: "signing in…",
    auth_required: "sign-in required",
    unauthorized: "credential refused",
  }[state.phase];
}

/** The symbol directory, for the search box; [] while the hub cannot be reached. */
async function loadDirectory() {
  try {
    const { symbols } = await api("/v1/symbols");
    // A line per venue: one option per symbol, labelled with its venues.
    const venues = new Map();
    for (const { symbol, venue } of symbols) venues.set(symbol, [...(venues.get(symbol) ?? []), venue]);
    $("symbol-list").replaceChildren(...[...venues].map(([symbol, vs]) => new Option(vs.join(", "), symbol)));
    return [...venues.keys()];
  } catch (e) {
    note(`symbol list: ${e.message}`);
    return [];
  }
}

async function pollFeeds() {
  try {
    const status = await api("/v1/status");
    $("feeds").replaceChildren(...(status.feeds ?? []).map(feedChip));
  } catch {
    for (const chip of $("feeds").children) chip.dataset.state = "unknown";
  }
}

function feedChip(f) {
  const chip = document.createElement("span");
  chip.className = "feed";
  chip.dataset.state = f.state;
  chip.title = `${f.state} · ${f.events} events · ${f.gaps} gaps · ${f.reconnects} reconnects`;
  chip.innerHTML = '<i class="dot"></i>';
  chip.append(f.venue);
  return chip;
}

function tick() {
  const s = client.stats;
  $("rate").textContent = `${updates} updates/s`;
  $("counters").textContent =
    `reconnects ${s.reconnects} · resets ${s.resets} · duplicates dropped ${s.duplicatesDropped} · skipped ${s.skipped}`;
  $("epoch").textContent = client.epoch ? `epoch ${client.epoch}` : "";
  $("clock").textContent = new Date().toISOString().slice(11, 19) + " UTC";
  updates = 0;
}

/** The symbols saved by the last visit, or the first few the hub has. */
async function showStartingSymbols() {
  const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "[]");
  const symbols = saved.length > 0 ? saved : (await loadDirectory()).slice(0, DEFAULT_SYMBOLS);
  if (symbols.length > 0) addSymbols(symbols);
  else setTimeout(showStartingSymbols, 3000); // the hub is not up yet
}

function onAdd(event) {
  event.preventDefault();
  const input = $("add-symbol");
  addSymbols(input.value.toUpperCase().split(/[\s,]+/).filter(Boolean));
  input.value = "";
}

async function start() {
  $("add-form").addEventListener("submit", onAdd);
  $("add-symbol").addEventListener("focus", loadDirectory);
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", onSignOut);
  $("back").addEventListener("click", () => (history.state?.view === "detail" ? history.back() : closeDetail()));
  window.addEventListener("popstate", closeDetail);
  $("remove-selected").addEventListener("click", () => {
    if (chart.symbol) removeSymbol(chart.symbol);
    if (history.state?.view === "detail") history.back();
    else closeDetail();
  });
  // Hidden, or resized between phone and desktop: ask for the rate that fits.
  document.addEventListener("visibilitychange", () => client.setMaxRate(wantedRate()));
  phone.addEventListener("change", () => {
    client.setMaxRate(wantedRate());
    if (!phone.matches) closeDetail();
  });
  await showStartingSymbols();
  pollFeeds();
  setInterval(pollFeeds, STATUS_POLL_MS);
  setInterval(tick, 1000);
  tick();
}

start();
