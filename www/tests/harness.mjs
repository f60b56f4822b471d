// Shared by the end-to-end test and the benchmark runner: start www/serve.mjs
// on a free port, and launch Debian's Chromium through playwright-core (which
// never downloads a browser of its own), headless, in a fresh profile.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const WWW = fileURLToPath(new URL('..', import.meta.url));
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];

/** Fails early, and clearly, if the wasm package has not been built. */
export function requirePackage() {
  if (!existsSync(join(WWW, 'pkg', 'meterflow_bg.wasm'))) {
    throw new Error('www/pkg is missing: run `make build` first');
  }
}

/**
 * Starts www/serve.mjs and Chromium before a test file's tests (node:test's
 * `before`/`after`, passed in) and stops them after; the returned object has
 * `server` and `browser` once the tests run.
 */
export function serveAndLaunch({ before, after }) {
  const ctx = { server: undefined, browser: undefined };
  before(async () => {
    requirePackage();
    ctx.server = await startServer();
    ctx.browser = await launchChromium();
  });
  after(async () => {
    await ctx.browser?.close();
    ctx.server?.stop();
  });
  return ctx;
}

/**
 * Starts `node www/serve.mjs 0` and resolves once it prints its URL.
 * @returns {Promise<{ url: string, stop: () => void }>}
 */
export function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(WWW, 'serve.mjs'), '0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const fail = (why) => {
      child.kill();
      reject(new Error(`serve.mjs: ${why}; output: ${out}`));
    };
    const guard = setTimeout(() => fail('no URL within 10 s'), 10_000);
    child.on('exit', (code) => fail(`exited with ${code}`));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) {
        clearTimeout(guard);
        child.removeAllListeners('exit');
        resolve({ url: m[0], stop: () => child.kill() });
      }
    });
  });
}

/**
 * Launches Chromium with a fresh, throwaway profile; `extraArgs` are added to
 * its command line (e.g. `--js-flags=...` for a benchmark).
 * @returns {Promise<{ context: import('playwright-core').BrowserContext, close: () => Promise<void> }>}
 */
export async function launchChromium(extraArgs = []) {
  const profile = await mkdtemp(join(tmpdir(), 'meterflow-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}
