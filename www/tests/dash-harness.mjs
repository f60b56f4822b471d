// For the dashboard end-to-end test: start the real feed server
// (`meterflow-feed`, built by `make dash`) on a free 127.0.0.1 port, serving
// the built dashboard (www/dist), and stop it.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WWW } from './harness.mjs';

export const DIST = join(WWW, 'dist');
export const FEED = process.env.METERFLOW_FEED ?? join(WWW, '..', 'target', 'release', 'meterflow-feed');

/** Fails early, and clearly, if the dashboard or the feed server has not been built. */
export function requireDashboard() {
  if (!existsSync(join(DIST, 'index.html'))) throw new Error('www/dist is missing: run `make build dash` first');
  if (!existsSync(FEED)) throw new Error(`${FEED} is missing: run \`make dash\` first`);
}

/**
 * Starts `meterflow-feed --port <port> --www www/dist ...args` (port 0: a
 * free one) and resolves once it prints its URL.
 * @returns {Promise<{ url: string, port: number, stop: () => Promise<void>, log: () => string }>}
 */
export function startFeed(args = [], port = 0) {
  return new Promise((resolve, reject) => {
    const child = spawn(FEED, ['--port', String(port), '--www', DIST, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const fail = (why) => {
      child.kill();
      reject(new Error(`meterflow-feed: ${why}; stdout: ${out}; stderr: ${err}`));
    };
    const guard = setTimeout(() => fail('no URL within 20 s'), 20_000);
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
        const exited = new Promise((r) => child.on('exit', r));
        resolve({
          url: `${m[0]}/`,
          port: Number(m[0].split(':').pop()),
          log: () => err,
          stop: async () => {
            child.kill('SIGTERM');
            await exited;
          },
        });
      }
    });
  });
}
