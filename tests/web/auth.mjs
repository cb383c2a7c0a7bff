// The web UI in headless Chromium against a hub that requires a credential
// (crates/mdhub/tests/web.rs starts it with one API key, entitled to AAPL
// and BTC-*):
//
//   node tests/web/auth.mjs --url http://127.0.0.1:PORT --key mdk_… --screenshot target/ui-auth-screenshot.png
//
// The page asks for a key; a wrong one is refused on the page; the right one
// fills the board with the entitled symbols and marks the others not
// entitled; the chart draws from history fetched with the key; a reload
// signs in with the stored key; "sign out" forgets it. Progress goes to
// stderr; the exit code says whether every check passed.

import { parseArgs } from "node:util";
import { TIMEOUT_MS, poller, run, waitForCandles, waitForPhase, withBrowser } from "./browser.mjs";

const { values: opts } = parseArgs({
  options: { url: { type: "string" }, key: { type: "string" }, screenshot: { type: "string" } },
});
if (!opts.url || !opts.key || !opts.screenshot) {
  throw new Error("usage: auth.mjs --url http://HOST:PORT --key API_KEY --screenshot FILE");
}
const base = opts.url.replace(/\/$/, "");
const ENTITLED = /^(AAPL|BTC-.*)$/;

const step = (text) => console.error(`auth.mjs: ${text}`);

/** Symbol → {priced, denied} for every row of the board. */
const boardRows = (page) =>
  page.$$eval("#board tr", (rows) => Object.fromEntries(rows.map((tr) => [
    tr.dataset.symbol,
    { priced: Boolean(tr.querySelector(".bid").textContent && tr.querySelector(".last").textContent), denied: tr.classList.contains("denied") },
  ])));

async function signIn(page, key) {
  await page.fill("#signin-token", key);
  await page.press("#signin-token", "Enter");
}

/** The entitled rows get prices, every other row is marked not entitled, and the chart draws. */
async function checkEntitledBoard(page) {
  await page.waitForFunction((pattern) => {
    const re = new RegExp(pattern);
    const rows = [...document.querySelectorAll("#board tr")];
    return rows.length > 0 && rows.every((tr) => re.test(tr.dataset.symbol)
      ? tr.querySelector(".bid").textContent && tr.querySelector(".last").textContent
      : tr.classList.contains("denied"));
  }, ENTITLED.source, { timeout: TIMEOUT_MS });
  const rows = await boardRows(page);
  const wrong = Object.entries(rows).filter(([s, r]) => r.priced !== ENTITLED.test(s) || r.denied === ENTITLED.test(s));
  if (wrong.length > 0) throw new Error(`board: ${JSON.stringify(rows)}`);
  if (!Object.keys(rows).some((s) => !ENTITLED.test(s))) throw new Error(`no unentitled symbol on the board: ${Object.keys(rows)}`);
  step(`board: ${Object.keys(rows).filter((s) => ENTITLED.test(s)).join(", ")} live; ${Object.keys(rows).filter((s) => !ENTITLED.test(s)).join(", ")} not entitled`);
  const symbol = await page.getAttribute("#chart", "data-symbol");
  if (!ENTITLED.test(symbol)) throw new Error(`the chart shows ${symbol}, which the key does not cover`);
  await waitForCandles(page);
  step(`chart: ${symbol} drawn from history fetched with the key`);
}

async function main() {
  // The page needs history to draw: wait for the first bar (with the key).
  const poll = poller(base, { Authorization: `Bearer ${opts.key}` });
  await poll("/v1/history/bars?symbol=AAPL&interval=1m", (d) => d.bars.length > 0, "history bars of AAPL");
  const pageErrors = [];
  await withBrowser(async (context) => {
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${base}/`);

    step("no key: the sign-in panel");
    await waitForPhase(page, "auth_required");
    await page.waitForSelector("#signin-token", { state: "visible", timeout: TIMEOUT_MS });
    if (await page.isVisible("#account")) throw new Error("sign out is offered before signing in");

    step("a wrong key: refused on the page");
    await signIn(page, "mdk_not_a_key");
    await waitForPhase(page, "unauthorized");
    const refusal = await page.textContent("#signin-error");
    if (!/unknown API key/.test(refusal)) throw new Error(`refusal shows ${JSON.stringify(refusal)}`);
    if (!(await page.isVisible("#signin-token"))) throw new Error("the sign-in panel went away after a refusal");

    step("the right key: entitled symbols live, the rest marked");
    await signIn(page, opts.key);
    await waitForPhase(page, "live");
    await page.waitForSelector("#signin", { state: "hidden", timeout: TIMEOUT_MS });
    await page.waitForSelector("#account", { state: "visible", timeout: TIMEOUT_MS });
    await checkEntitledBoard(page);
    await page.screenshot({ path: opts.screenshot });
    step(`screenshot in ${opts.screenshot}`);

    step("reload: signed in with the stored key");
    await page.reload();
    await waitForPhase(page, "live");
    if (await page.isVisible("#signin")) throw new Error("the sign-in panel after a reload with a stored key");
    await checkEntitledBoard(page);

    step("sign out: the key is forgotten");
    await page.click("#sign-out");
    await waitForPhase(page, "auth_required");
    await page.waitForSelector("#signin-token", { state: "visible", timeout: TIMEOUT_MS });
    const stored = await page.evaluate(() => localStorage.getItem("mdhub.token"));
    if (stored !== null) throw new Error(`the key is still stored: ${stored}`);
  });
  if (pageErrors.length > 0) throw new Error(`errors in the page: ${pageErrors.join("; ")}`);
  step("all checks passed");
}

run("auth.mjs", main);
