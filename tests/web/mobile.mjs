// The trading screen on a phone (390 × 844) and a tablet (768 × 1024) in
// headless Chromium with touch, against a running hub (crates/mdhub/tests/web.rs):
//
//   node tests/web/mobile.mjs --url http://127.0.0.1:PORT --screenshots DIR
//
// Checks: no horizontal scrolling; bid and ask shown on every row; a tap
// opens the chart (candles), the trades and the quote with its sizes, and
// back returns to the board (on the phone a view of its own); the manifest and its icons are served and
// valid; a hidden page gets far fewer frames than a visible one (counted at
// the gateway) and catches up when it comes back. Screenshots of both sizes
// go to DIR.

import { parseArgs } from "node:util";
import { TIMEOUT_MS, run, waitForCandles, withBrowser } from "./browser.mjs";

const { values: opts } = parseArgs({ options: { url: { type: "string" }, screenshots: { type: "string" } } });
if (!opts.url || !opts.screenshots) throw new Error("usage: mobile.mjs --url http://HOST:PORT --screenshots DIR");
const base = opts.url.replace(/\/$/, "");
const step = (text) => console.error(`mobile.mjs: ${text}`);

const PHONE = { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 };
const TABLET = { viewport: { width: 768, height: 1024 }, hasTouch: true, isMobile: true, deviceScaleFactor: 1 };

/** The page never scrolls sideways. */
async function checkNoOverflow(page, where) {
  const { scroll, inner } = await page.evaluate(() => ({ scroll: document.scrollingElement.scrollWidth, inner: innerWidth }));
  if (scroll > inner) throw new Error(`${where}: the page is ${scroll} px wide in a ${inner} px viewport`);
}

/** Every row shows a bid and an ask, on screen. */
async function waitForPricedBoard(page) {
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#board tr")];
    const shown = (td) => td && td.textContent && td.getBoundingClientRect().width > 0 && td.getBoundingClientRect().right <= innerWidth;
    return rows.length >= 3 && rows.every((tr) => shown(tr.querySelector(".bid")) && shown(tr.querySelector(".ask")));
  }, null, { timeout: TIMEOUT_MS });
}

/** Touch targets: every row and button on screen is at least 44 px tall. */
async function checkTouchTargets(page, where) {
  const small = await page.evaluate(() =>
    [...document.querySelectorAll("#board tr, button, .add input")]
      .filter((el) => el.getBoundingClientRect().width > 0)
      .filter((el) => el.getBoundingClientRect().height < 44)
      .map((el) => el.id || el.className || el.tagName));
  if (small.length > 0) throw new Error(`${where}: touch targets under 44 px: ${small.join(", ")}`);
}

async function gatewayDeliveries() {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("mdhub_gateway_deliveries_total "));
  return Number(line.split(" ")[1]);
}

/** Frames the gateway delivered over `ms` (only this page is connected). */
async function deliveredOver(ms) {
  const before = await gatewayDeliveries();
  await new Promise((r) => setTimeout(r, ms));
  return (await gatewayDeliveries()) - before;
}

async function setHidden(page, hidden) {
  await page.evaluate((h) => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (h ? "hidden" : "visible") });
    Object.defineProperty(document, "hidden", { configurable: true, get: () => h });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

const boardText = (page) => page.$$eval("#board tr", (rows) => rows.map((tr) => tr.textContent).join("|"));

async function checkManifest() {
  step("manifest and icons");
  const res = await fetch(`${base}/web/manifest.webmanifest`);
  if (res.headers.get("content-type") !== "application/manifest+json") throw new Error(`manifest type ${res.headers.get("content-type")}`);
  const m = await res.json();
  for (const key of ["name", "short_name", "start_url", "display", "icons"]) if (!m[key]) throw new Error(`manifest lacks ${key}`);
  if (m.display !== "standalone") throw new Error(`display ${m.display}`);
  for (const size of [192, 512]) {
    const icon = m.icons.find((i) => i.sizes === `${size}x${size}` && i.type === "image/png");
    if (!icon) throw new Error(`no ${size} px PNG icon`);
    const png = Buffer.from(await (await fetch(base + icon.src)).arrayBuffer());
    const signature = png.subarray(0, 8).toString("hex") === "89504e470d0a1a0a";
    if (!signature || png.readUInt32BE(16) !== size || png.readUInt32BE(20) !== size) throw new Error(`${icon.src} is not a ${size} px PNG`);
  }
}

async function phone(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/`);
  const manifestLink = await page.getAttribute("link[rel=manifest]", "href");
  if (manifestLink !== "/web/manifest.webmanifest") throw new Error(`manifest link ${manifestLink}`);
  step("phone: the board fits, bid and ask on every row");
  await waitForPricedBoard(page);
  await checkNoOverflow(page, "phone board");
  await checkTouchTargets(page, "phone board");
  await page.screenshot({ path: `${opts.screenshots}/phone-board.png` });

  step("phone: a hidden page gets fewer frames, and catches up on return");
  await page.waitForTimeout(1500); // the 250 ms rate settles
  const visible = await deliveredOver(3000);
  await setHidden(page, true);
  await page.waitForTimeout(1000); // frames already due go out; then one batch per 10 s
  const hidden = await deliveredOver(3000);
  step(`delivered in 3 s: ${visible} visible, ${hidden} hidden`);
  if (!(visible > 20 && hidden * 4 < visible)) throw new Error(`hidden ${hidden} vs visible ${visible} frames in 3 s`);
  const before = await boardText(page);
  await setHidden(page, false);
  await page.waitForFunction((b) => [...document.querySelectorAll("#board tr")].map((tr) => tr.textContent).join("|") !== b, before, { timeout: 5000 });

  step("phone: a tap opens the chart and trades; back returns");
  const symbol = await page.getAttribute("#board tr", "data-symbol");
  await page.tap(`#board tr[data-symbol="${symbol}"]`);
  await page.waitForSelector("body[data-view=detail] #chart", { state: "visible", timeout: TIMEOUT_MS });
  if (await page.isVisible("#board")) throw new Error("the board is still shown under the detail view");
  await waitForCandles(page);
  await page.waitForFunction(() => document.querySelectorAll("#tape tr").length > 0, null, { timeout: TIMEOUT_MS });
  // Sizes on demand: the board leaves them out, the detail view shows them.
  await page.waitForFunction(() => /×/.test(document.querySelector("#detail-quote").textContent), null, { timeout: TIMEOUT_MS });
  await checkNoOverflow(page, "phone detail");
  await checkTouchTargets(page, "phone detail");
  await page.screenshot({ path: `${opts.screenshots}/phone-chart.png` });
  await page.tap("#back");
  await page.waitForSelector("#board", { state: "visible", timeout: TIMEOUT_MS });
  if (await page.evaluate(() => document.body.dataset.view)) throw new Error("still in the detail view after back");
  if (errors.length > 0) throw new Error(`errors in the page: ${errors.join("; ")}`);
}

async function tablet(context) {
  const page = await context.newPage();
  await page.goto(`${base}/`);
  step("tablet: the board fits, then chart and trades below it");
  await waitForPricedBoard(page);
  await checkNoOverflow(page, "tablet");
  const rows = await page.$$("#board tr");
  const symbol = await rows[1].getAttribute("data-symbol");
  await rows[1].tap();
  await page.waitForFunction((s) => document.querySelector("#chart-symbol").textContent === s, symbol, { timeout: TIMEOUT_MS });
  await waitForCandles(page);
  if (!(await page.isVisible("#board"))) throw new Error("the tablet hides the board");
  await checkNoOverflow(page, "tablet with chart");
  await page.screenshot({ path: `${opts.screenshots}/tablet.png`, fullPage: true });
}

async function main() {
  await checkManifest();
  await withBrowser(phone, { device: PHONE });
  await withBrowser(tablet, { device: TABLET });
  step("all checks passed");
}

run("mobile.mjs", main);
