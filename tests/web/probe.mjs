// A page that uses mdhub.js as a third-party page would (`import("/mdhub.js")`)
// and records every frame it hands out, and the checks on what it recorded:
// per symbol and channel, positions strictly increasing across reconnects
// (no duplicate), and exactly the log's records between the first and the
// last (no gap), as the REST history reports them.

const TIMEOUT_MS = 30_000;

/**
 * Open the probe page on the hub's origin and subscribe `symbols` to quotes and trades.
 * @param {import("playwright-core").BrowserContext} context
 */
export async function startProbe(context, base, symbols) {
  const page = await context.newPage();
  await page.goto(`${base}/healthz`);
  await page.evaluate(async (symbols) => {
    const { MdhubClient } = await import("/mdhub.js");
    const client = new MdhubClient();
    const probe = { client, frames: [], phases: [] };
    const record = (f) => probe.frames.push({ type: f.type, symbol: f.symbol, channel: f.channel, pos: f.pos, ts: f.data.ts_exchange });
    client.on("snapshot", record);
    client.on("update", record);
    client.on("state", (s) => probe.phases.push(s.phase));
    client.subscribe(symbols);
    window.probe = probe;
  }, symbols);
  const count = () => page.evaluate(() => window.probe.frames.length);
  return {
    async waitForFrames(n) {
      const want = (await count()) + n;
      await page.waitForFunction((want) => window.probe.frames.length >= want, want, { timeout: TIMEOUT_MS });
    },
    async drop() {
      await page.evaluate(() => window.probe.client.dropConnection());
      await page.waitForFunction(() => window.probe.client.state.phase === "resumed", null, { timeout: TIMEOUT_MS });
    },
    async waitForPhase(phase) {
      await page.waitForFunction((p) => window.probe.client.state.phase === p, phase, { timeout: TIMEOUT_MS });
    },
    frames: () => page.evaluate(() => window.probe.frames),
    stats: () => page.evaluate(() => ({ ...window.probe.client.stats })),
  };
}

const parse = (pos) => {
  const [, partition, offset] = pos.split(":");
  return { partition, offset: BigInt(offset) };
};

function byStream(frames) {
  const streams = new Map();
  for (const f of frames) {
    const key = `${f.symbol} ${f.channel}`;
    streams.set(key, [...(streams.get(key) ?? []), f]);
  }
  return streams;
}

/** No duplicate, one snapshot per stream and only at its start (resumes send none). */
export function checkStreams(frames, stats) {
  for (const [key, list] of byStream(frames)) {
    list.forEach((f, i) => {
      if (i === 0) return;
      const [prev, cur] = [parse(list[i - 1].pos), parse(f.pos)];
      if (cur.partition !== prev.partition || cur.offset <= prev.offset) {
        throw new Error(`${key}: ${f.pos} after ${list[i - 1].pos}: positions must strictly increase`);
      }
      if (f.type === "snapshot") throw new Error(`${key}: a snapshot at ${f.pos} after a resume; expected updates only`);
    });
  }
  if (stats.duplicatesDropped !== 0 || stats.resets !== 0 || stats.skipped !== 0 || stats.reconnects !== 2) {
    throw new Error(`expected 2 reconnects, and no reset, duplicate or skipped update; stats ${JSON.stringify(stats)}`);
  }
}

/** Each stream's positions are exactly the history's between its first and last. */
export async function checkAgainstHistory(frames, poll) {
  for (const [key, list] of byStream(frames)) {
    const [symbol, channel] = key.split(" ");
    const first = parse(list[0].pos);
    const last = list.at(-1).pos;
    const stamps = list.map((f) => BigInt(f.ts));
    const from = stamps.reduce((a, b) => (a < b ? a : b)) - 1_000_000_000n;
    const to = stamps.reduce((a, b) => (a > b ? a : b)) + 1_000_000_000n;
    const path = `/v1/history/${channel}?symbol=${symbol}&from=${from}&to=${to}&limit=100000`;
    const doc = await poll(path, (d) => d[channel].some((row) => row.position === last), `${key} up to ${last} in history`);
    if (doc.truncated) throw new Error(`${path}: truncated`);
    const logged = doc[channel]
      .map((row) => parse(row.position))
      .filter((p) => p.partition === first.partition && p.offset >= first.offset && p.offset <= parse(last).offset)
      .map((p) => p.offset)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const seen = new Set(list.map((f) => String(parse(f.pos).offset)));
    const missing = logged.filter((o) => !seen.has(String(o)));
    if (missing.length > 0 || logged.length !== seen.size) {
      throw new Error(`${key}: client saw ${seen.size} frames, history has ${logged.length} in the range; missing offsets ${missing.slice(0, 10).join(", ")}`);
    }
    console.error(`ui.mjs: ${key}: ${seen.size} frames from ${list[0].pos} to ${last}, exactly the log's`);
  }
}
