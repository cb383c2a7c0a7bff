// How smoothly the web UI keeps up with a hub, in headless Chromium:
//
//   node tests/web/perf.mjs http://127.0.0.1:PORT [seconds=10]
//
// Opens the UI, waits until the board is live (connection `live`, prices on
// the board), then for `seconds` counts in the page: animation frames
// (a requestAnimationFrame loop), long tasks (PerformanceObserver
// `longtask`), and the updates the page's client delivered to the UI (the
// `update` and `snapshot` events of `window.mdhub.client`, which is what the
// footer's "updates/s" counts). The JS heap is read over the DevTools
// protocol after a forced garbage collection at the start and at the end
// (`performance.memory` is coarse and cached without
// --enable-precise-memory-info; its figures are in the JSON too).
//
// Prints one line for people and one JSON line. Exits 1 when the page does
// not load or go live, or throws. Used for docs/benchmarks.md.

import { loadavg } from "node:os";
import { TIMEOUT_MS, poller, run, waitForPhase, withBrowser } from "./browser.mjs";

const [url, secondsArg = "10"] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!url || !/^https?:\/\//.test(url) || !(seconds > 0)) {
  console.error("usage: node tests/web/perf.mjs http://127.0.0.1:PORT [seconds=10]");
  process.exit(2);
}
const base = url.replace(/\/$/, "");

/** In the page: count frames, long tasks and delivered updates for `seconds`. */
function measureInPage(seconds) {
  return new Promise((resolve) => {
    const client = window.mdhub.client;
    const stats0 = { ...client.stats };
    const memory = () => (performance.memory ? { used: performance.memory.usedJSHeapSize, total: performance.memory.totalJSHeapSize } : null);
    const memory0 = memory();
    let updates = 0;
    let snapshots = 0;
    const offUpdate = client.on("update", () => updates++);
    const offSnapshot = client.on("snapshot", () => snapshots++);
    const longTasks = [];
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) longTasks.push(e.duration);
    });
    observer.observe({ type: "longtask" });
    let frames = 0;
    let maxGap = 0;
    let last = null;
    let running = true;
    const frame = (t) => {
      if (!running) return;
      if (last !== null) maxGap = Math.max(maxGap, t - last);
      last = t;
      frames++;
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
    const start = performance.now();
    setTimeout(() => {
      running = false;
      const elapsed = (performance.now() - start) / 1000;
      // Long tasks that ended in the window but were not reported yet.
      for (const e of observer.takeRecords()) longTasks.push(e.duration);
      observer.disconnect();
      offUpdate();
      offSnapshot();
      const s = client.stats;
      resolve({
        elapsed,
        frames,
        maxFrameGapMs: maxGap,
        updates,
        snapshots,
        longTasks: longTasks.length,
        longTaskMs: longTasks.reduce((a, b) => a + b, 0),
        longestTaskMs: longTasks.length ? Math.max(...longTasks) : 0,
        wsFrames: s.frames - stats0.frames,
        skipped: s.skipped - stats0.skipped,
        reconnects: s.reconnects - stats0.reconnects,
        resets: s.resets - stats0.resets,
        performanceMemory: { start: memory0, end: memory() },
        rows: document.querySelectorAll("#board tr").length,
      });
    }, seconds * 1000);
  });
}

/** JS heap in use after a full garbage collection, in bytes. */
async function heapAfterGc(cdp) {
  await cdp.send("HeapProfiler.collectGarbage");
  const { usedSize, totalSize } = await cdp.send("Runtime.getHeapUsage");
  return { used: usedSize, total: totalSize };
}

const mb = (bytes) => (bytes / 2 ** 20).toFixed(1);

async function main() {
  await poller(base)("/v1/symbols", (d) => d.symbols?.length > 0, "the symbol directory");
  const pageErrors = [];
  const result = await withBrowser(async (context) => {
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const res = await page.goto(`${base}/`);
    if (!res || !res.ok()) throw new Error(`GET ${base}/: ${res ? res.status() : "no answer"}`);
    await waitForPhase(page, "live");
    // Live: every row of the board has a bid, and the client is delivering updates.
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("#board tr")];
      return rows.length > 0 && rows.every((tr) => tr.querySelector(".bid").textContent) && window.mdhub?.client;
    }, null, { timeout: TIMEOUT_MS });
    const cdp = await context.newCDPSession(page);
    const { product } = await cdp.send("Browser.getVersion");
    await cdp.send("HeapProfiler.enable");
    const heapStart = await heapAfterGc(cdp);
    const load = loadavg();
    const m = await page.evaluate(measureInPage, seconds);
    const heapEnd = await heapAfterGc(cdp);
    const phase = await page.$eval("#conn", (el) => el.dataset.phase);
    return { browser: product, ...m, phase, heapStart, heapEnd, loadavgStart: load, loadavgEnd: loadavg() };
  });
  if (pageErrors.length > 0) throw new Error(`page errors: ${pageErrors.join("; ")}`);
  if (result.updates === 0) throw new Error("the page received no updates in the window");

  const r = {
    url: base,
    seconds: result.elapsed,
    updatesPerSec: result.updates / result.elapsed,
    framesPerSec: result.frames / result.elapsed,
    maxFrameGapMs: result.maxFrameGapMs,
    longTasks: result.longTasks,
    longTaskMs: result.longTaskMs,
    longestTaskMs: result.longestTaskMs,
    snapshots: result.snapshots,
    wsFramesPerSec: result.wsFrames / result.elapsed,
    skippedPerSec: result.skipped / result.elapsed,
    reconnects: result.reconnects,
    resets: result.resets,
    rows: result.rows,
    phase: result.phase,
    heapStartBytes: result.heapStart.used,
    heapEndBytes: result.heapEnd.used,
    performanceMemory: result.performanceMemory,
    browser: result.browser,
    loadavgStart: result.loadavgStart,
    loadavgEnd: result.loadavgEnd,
  };
  console.log(
    `${r.updatesPerSec.toFixed(0)} updates/s, ${r.framesPerSec.toFixed(1)} frames/s (max gap ${r.maxFrameGapMs.toFixed(0)} ms), ` +
      `${r.longTasks} long tasks (${r.longTaskMs.toFixed(0)} ms), skipped ${r.skippedPerSec.toFixed(0)}/s, ` +
      `heap ${mb(r.heapStartBytes)} → ${mb(r.heapEndBytes)} MiB, ${r.rows} rows, ${r.seconds.toFixed(1)} s, ` +
      `load ${r.loadavgEnd.map((l) => l.toFixed(2)).join(" ")}`,
  );
  console.log(JSON.stringify(r));
}

run("perf.mjs", main);
