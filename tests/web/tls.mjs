// The web UI in headless Chromium from a hub that terminates TLS itself
// (crates/mdhub/tests/web.rs starts it with a certificate from a test CA):
//
//   NODE_EXTRA_CA_CERTS=ca.pem node tests/web/tls.mjs --url https://127.0.0.1:PORT
//
// The page loads over https://, its client connects over wss:// on its own
// (the URL follows the page's scheme), and the board fills with live prices.
// Progress goes to stderr; the exit code says whether every check passed.

import { parseArgs } from "node:util";
import { TIMEOUT_MS, poller, run, waitForPhase, withBrowser } from "./browser.mjs";

const { values: opts } = parseArgs({ options: { url: { type: "string" } } });
if (!opts.url?.startsWith("https://")) throw new Error("usage: tls.mjs --url https://HOST:PORT");
const base = opts.url.replace(/\/$/, "");
const step = (text) => console.error(`tls.mjs: ${text}`);

async function main() {
  // Node trusts the test CA through NODE_EXTRA_CA_CERTS: REST over https.
  await poller(base)("/v1/snapshot?symbols=AAPL", (d) => Boolean(d.symbols?.AAPL), "a snapshot of AAPL");
  step("REST over https answers");
  const sockets = [];
  const pageErrors = [];
  await withBrowser(async (context) => {
    const page = await context.newPage();
    page.on("websocket", (ws) => sockets.push(ws.url()));
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${base}/`);
    await waitForPhase(page, "live");
    await page.waitForFunction(() => [...document.querySelectorAll("#board tr")]
      .some((tr) => tr.querySelector(".bid")?.textContent), null, { timeout: TIMEOUT_MS });
    step("board live over TLS");
  }, { ignoreHTTPSErrors: true });
  const wss = `wss://${new URL(base).host}/v1/ws`;
  if (!sockets.includes(wss)) throw new Error(`the page's WebSockets: ${JSON.stringify(sockets)}, not ${wss}`);
  step(`the client chose ${wss} by itself`);
  if (pageErrors.length > 0) throw new Error(`errors in the page: ${pageErrors.join("; ")}`);
  step("all checks passed");
}

run("tls.mjs", main);
