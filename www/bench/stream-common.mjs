// Shared by the stream benchmarks (stream-feed.mjs, stream-apply.mjs): start
// the release `meterflow-feed` (`make feed-bin`) on a free 127.0.0.1 port with
// the given flags; resolves once it prints its URL.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FEED_BIN =
  process.env.METERFLOW_FEED_BIN ??
  join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'release', 'meterflow-feed');

/**
 * @param {string[]} flags meterflow-feed flags (besides `--port 0`)
 * @returns {Promise<{ url: string, port: number, stop: () => Promise<void> }>}
 */
export function startFeed(flags) {
  if (!existsSync(FEED_BIN)) throw new Error(`${FEED_BIN} is missing: run \`make feed-bin\` first`);
  return new Promise((resolve, reject) => {
    const child = spawn(FEED_BIN, ['--port', '0', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const fail = (why) => {
      child.kill('SIGTERM');
      reject(new Error(`meterflow-feed: ${why}; stderr: ${err}`));
    };
    const guard = setTimeout(() => fail('no URL within 30 s'), 30_000);
    child.on('exit', (code) => fail(`exited with ${code}`));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c) => (err += c));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)/);
      if (!m) return;
      clearTimeout(guard);
      child.removeAllListeners('exit');
      resolve({
        url: m[0],
        port: Number(m[1]),
        stop: () => new Promise((done) => { child.on('exit', done); child.kill('SIGTERM'); }),
      });
    });
  });
}

/** The `q` quantile of an ascending array (nearest rank). */
export const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
/** Three decimals. */
export const round = (x) => Math.round(x * 1000) / 1000;
