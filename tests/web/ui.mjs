// The web UI and mdhub.js in headless Chromium, against a running hub whose
// restarts the caller performs (crates/mdhub/tests/web.rs):
//
//   node tests/web/ui.mjs --url http://127.0.0.1:PORT --screenshot target/ui-screenshot.png
//
// Talking to the caller, one line each way: this script prints `stop-hub`
// and waits for `hub-stopped` on stdin, then prints `start-hub` and waits for
// `hub-started`. The hub must come back on the same address. Progress goes to
// stderr; the exit code says whether every check passed.

import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { TIMEOUT_MS, poller, run, waitForCandles, waitForPhase, withBrowser } from "./browser.mjs";
import { checkAgainstHistory, checkStreams, startProbe } from "./probe.mjs";

const { values: opts } = parseArgs({ options: { url: { type: "string" }, screenshot: { type: "string" } } });
if (!opts.url || !opts.screenshot) throw new Error("usage: ui.mjs --url http://HOST:PORT --screenshot FILE");
const base = opts.url.replace(/\/$/, "");

const step = (text) => console.error(`ui.mjs: ${text}`);
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** Ask the caller to do something to the hub and wait until it is done. */
async function ask(request, answer) {
  console.log(request);
  const { value, done } = await stdinLines.next();
  if (done || value.trim() !== answer) throw new Error(`asked ${request}, expected ${answer}, got ${done ? "end of input" : value}`);
}

const poll = poller(base);

/** The board's prices, one string for the whole table. */
const boardPrices = (page) =>
  page.$$eval("#board tr", (rows) => rows.map((tr) => `${tr.querySelector(".bid").textContent}/${tr.querySelector(".last").textContent}`).join(" "));

async function waitForBoardToMove(page) {
  const before = await boardPrices(page);
  await page.waitForFunction((b) => {
    const now = [...document.querySelectorAll("#board tr")]
      .map((tr) => `${tr.querySelector(".bid").textContent}/${tr.querySelector(".last").textContent}`).join(" ");
    return now !== b;
  }, before, { timeout: TIMEOUT_MS });
}

async function checkLiveBoard(page) {
  step("board: live prices for 3 or more symbols");
  await page.waitForFunction(() => {
    const priced = [...document.querySelectorAll("#board tr")].filter((tr) => tr.querySelector(".bid").textContent && tr.querySelector(".last").textContent);
    return priced.length >= 3;
  }, null, { timeout: TIMEOUT_MS });
  await waitForBoardToMove(page);
  step("chart: history bars drawn");
  await waitForCandles(page);
}

/** A symbol the hub has on two venues gets a priced row per venue. */
async function checkRowPerVenue(page, symbols) {
  const venues = new Map();
  for (const { symbol, venue } of symbols) venues.set(symbol, [...(venues.get(symbol) ?? []), venue]);
  const shown = new Set(await page.$$eval("#board tr", (rows) => rows.map((tr) => tr.dataset.symbol)));
  const [symbol, want] = [...venues].find(([s, vs]) => vs.length > 1 && shown.has(s)) ?? [];
  if (!symbol) throw new Error(`no symbol on two venues on the board: ${[...shown]}`);
  step(`board: a row per venue for ${symbol} (${want.join(", ")})`);
  await page.waitForFunction(([s, vs]) => {
    const rows = [...document.querySelectorAll(`#board tr[data-symbol="${s}"]`)];
    const priced = rows.filter((tr) => tr.querySelector(".bid").textContent).map((tr) => tr.dataset.venue).sort();
    return rows.length === vs.length && priced.join() === [...vs].sort().join();
  }, [symbol, want], { timeout: TIMEOUT_MS });
}

async function checkSearchAndRemove(page, symbol) {
  step(`search: add ${symbol}, then remove it`);
  await page.fill("#add-symbol", symbol.toLowerCase());
  await page.press("#add-symbol", "Enter");
  const row = `#board tr[data-symbol="${symbol}"]`;
  await page.waitForFunction((sel) => document.querySelector(sel)?.querySelector(".bid").textContent, row, { timeout: TIMEOUT_MS });
  await page.hover(row);
  await page.click(`${row} button.remove`);
  await page.waitForSelector(row, { state: "detached", timeout: TIMEOUT_MS });
}

async function main() {
  const { symbols } = await poll("/v1/symbols", (d) => d.symbols.length >= 4, "the symbol directory");
  const first = symbols[0].symbol;
  await poll(`/v1/history/bars?symbol=${first}&interval=1m`, (d) => d.bars.length > 0, `history bars of ${first}`);
  const pageErrors = [];
  await withBrowser(async (context) => {
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${base}/`);
    await checkLiveBoard(page);
    await checkRowPerVenue(page, symbols);
    const shown = await page.$$eval("#board tr", (rows) => rows.map((tr) => tr.dataset.symbol));
    const extra = symbols.map((s) => s.symbol).find((s) => !shown.includes(s));
    if (!extra) throw new Error(`every symbol of the hub is on the board already: ${shown}`);
    await checkSearchAndRemove(page, extra);

    const probe = await startProbe(context, base, [first, symbols[1].symbol]);
    await probe.waitForFrames(40);
    step("mdhub.js: dropConnection() → reconnect and resume");
    await probe.drop();
    await probe.waitForFrames(40);

    step("hub restart: the page reconnects and resumes");
    await ask("stop-hub", "hub-stopped");
    await waitForPhase(page, "reconnecting");
    await probe.waitForPhase("reconnecting");
    await ask("start-hub", "hub-started");
    await waitForPhase(page, "resumed");
    const text = await page.textContent("#conn-text");
    if (!/resumed after 1 reconnect\b/.test(text)) throw new Error(`connection indicator says ${JSON.stringify(text)}`);
    await waitForBoardToMove(page);
    await probe.waitForFrames(40);

    const frames = await probe.frames();
    checkStreams(frames, await probe.stats());
    await checkAgainstHistory(frames, poll);
    await page.screenshot({ path: opts.screenshot });
    step(`screenshot in ${opts.screenshot}`);
  });
  if (pageErrors.length > 0) throw new Error(`errors in the page: ${pageErrors.join("; ")}`);
  step("all checks passed");
}

run("ui.mjs", main);
