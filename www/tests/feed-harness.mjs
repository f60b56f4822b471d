// Starts the real feed server (`meterflow-feed`, built by `make feed-bin`) on a
// free 127.0.0.1 port, serving www/ (`--www`) so a page, its worker and the
// WebSocket share the server's origin. Used by feed-worker.test.mjs and
// feed-latency.mjs.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WWW } from './harness.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FEED_BIN =
  process.env.METERFLOW_FEED_BIN ??
  join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'release', 'meterflow-feed');

/**
 * Starts meterflow-feed; resolves once it prints its URL.
 * @returns {Promise<{ url: string, stop: () => Promise<void> }>}
 */
export function startFeed({ meters, seed = 1, speed = 1, heartbeatMs = 15_000, port = 0, epoch }) {
  if (!existsSync(FEED_BIN)) {
    throw new Error(`${FEED_BIN} is missing: run \`make feed-bin\` first`);
  }
  const args = ['--port', String(port), '--meters', String(meters), '--seed', String(seed),
    '--speed', String(speed), '--heartbeat-ms', String(heartbeatMs), '--www', WWW];
  // The server's epoch defaults to its start second: a restart within the same
  // second would reuse it, so a test that restarts names the new one.
  if (epoch !== undefined) args.push('--epoch', String(epoch));
  return new Promise((resolve, reject) => {
    const child = spawn(FEED_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const fail = (why) => {
      child.kill('SIGTERM');
      reject(new Error(`meterflow-feed: ${why}; stdout: ${out}; stderr: ${err}`));
    };
    const guard = setTimeout(() => fail('no URL within 10 s'), 10_000);
    child.on('exit', (code) => fail(`exited with ${code}`));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c) => (err += c));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+/);
      if (m) {
        clearTimeout(guard);
        child.removeAllListeners('exit');
        resolve({
          url: m[0],
          stop: () =>
            new Promise((done) => {
              child.on('exit', done);
              child.kill('SIGTERM');
            }),
        });
      }
    });
  });
}
