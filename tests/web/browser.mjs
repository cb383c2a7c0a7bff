// What the browser tests (ui.mjs, auth.mjs, mobile.mjs) share: headless Chromium with a
// throwaway profile, polling a hub's REST API, the candle check on the chart,
// and a script's exit code.
//
// Chromium: $MDHUB_TEST_CHROMIUM, default /usr/bin/chromium (Debian's).

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const TIMEOUT_MS = 30_000;
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/**
 * Run `fn(context)` in a fresh headless Chromium; closed and removed
 * afterwards. `options.ignoreHTTPSErrors`: accept a certificate no authority
 * in the browser vouches for (a test CA); `options.device`: viewport, touch
 * and scale of a device (`{ viewport, hasTouch, isMobile, deviceScaleFactor }`).
 */
export async function withBrowser(fn, options = {}) {
  const profile = await mkdtemp(join(tmpdir(), "mdhub-ui-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.MDHUB_TEST_CHROMIUM || "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1360, height: 760 },
    ignoreHTTPSErrors: Boolean(options.ignoreHTTPSErrors),
    ...options.device,
  });
  try {
    return await fn(context);
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}

/**
 * `poll(path, ok, what)`: GET `base + path` (with `headers`) until the JSON
 * answer is one `ok` accepts, at most TIMEOUT_MS.
 */
export function poller(base, headers = {}) {
  return async function poll(path, ok, what) {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      const res = await fetch(base + path, { headers });
      if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
      const doc = await res.json();
      if (ok(doc)) return doc;
      if (Date.now() > deadline) throw new Error(`waited ${TIMEOUT_MS} ms for ${what}; last answer ${JSON.stringify(doc).slice(0, 300)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
}

/** The chart has history bars, and candles drawn: pixels of the up or down colour on its canvases. */
export async function waitForCandles(page) {
  await page.waitForFunction(() => Number(document.querySelector("#chart").dataset.bars) >= 1, null, { timeout: TIMEOUT_MS });
  await page.waitForFunction(() => {
    let candle = 0;
    for (const canvas of document.querySelectorAll("#chart canvas")) {
      const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
        if ((r === 0x26 && g === 0xc2 && b === 0x81) || (r === 0xef && g === 0x53 && b === 0x50)) candle++;
      }
    }
    return candle >= 20;
  }, null, { timeout: TIMEOUT_MS, polling: 500 });
}

/** Wait for the page's connection indicator to show `phase`. */
export async function waitForPhase(page, phase) {
  await page.waitForSelector(`#conn[data-phase="${phase}"]`, { timeout: TIMEOUT_MS });
}

/** Run a test script's `main`: exit 0 when it resolves, 1 (with the stack) when it throws. */
export function run(name, main) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(`${name}: FAILED: ${e.stack ?? e}`);
      process.exit(1);
    },
  );
}
