// The soak's bound check (issue 9), part of `make test` (`make e2e`): two
// simulated minutes of 5,000 meters × 2 Hz live frames through the shipped
// worker in headless Chromium (www/bench/soak.html via soak-run.mjs --check),
// memory sampled every 10 simulated seconds. After the first simulated minute
// neither the wasm linear memory (margin 1 MiB) nor the worker's JS memory
// (8 MiB) may grow, and the final totals must equal the page's oracle. A
// memory bound, not a timing assertion.
//
// The second test proves the check can fail: 500 new meters a simulated minute
// (their rings are real growth) must fail it.
//
// Run: `make build && cd www && node --test tests/soak.test.mjs`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNNER = fileURLToPath(new URL('../bench/soak-run.mjs', import.meta.url));

async function soak(extra) {
  const dir = await mkdtemp(join(tmpdir(), 'meterflow-soak-test-'));
  const json = join(dir, 'soak.json');
  try {
    const child = spawn(process.execPath, [RUNNER, '--check', '--json', json, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c) => (stderr += c));
    const code = await new Promise((r) => child.on('exit', r));
    const report = JSON.parse(await readFile(json, 'utf8'));
    return { code, stderr, report };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('two simulated minutes at 5,000 meters × 2 Hz: no memory growth after warm-up, exact totals', async () => {
  const { code, stderr, report } = await soak([]);
  const s = report.soak;
  assert.equal(code, 0, stderr);
  assert.equal(s.readings, 2 * 60 * 10_000);
  assert.equal(s.totalsExact, true);
  assert.ok(s.samples.length >= 12, `${s.samples.length} samples`);
  assert.ok(s.samples.at(-1).linearBytes > 0 && s.samples.at(-1).meters === 5000, JSON.stringify(s.samples.at(-1)));
  assert.ok(s.growthAfterWarmup.linearBytes <= s.margins.linearBytes, JSON.stringify(s.growthAfterWarmup));
  assert.ok(s.growthAfterWarmup.engineBytes <= s.margins.engineBytes, JSON.stringify(s.growthAfterWarmup));
  assert.ok(s.growthAfterWarmup.workerJsBytes === null || s.growthAfterWarmup.workerJsBytes <= s.margins.workerJsBytes);
  assert.deepEqual(s.failures, []);
});

test('the bound check fails when memory really grows (500 new meters a simulated minute)', async () => {
  const { code, report } = await soak(['--churn', '500']);
  assert.equal(code, 1);
  const g = report.soak.growthAfterWarmup;
  const m = report.soak.margins;
  // The engine's count always shows the new rings; linear memory shows them
  // only when the allocator had no headroom left, so either may report.
  assert.ok(g.engineBytes > m.engineBytes, JSON.stringify(g));
  assert.match(report.failures.join('; '), /(engine|linear) memory grew/);
});
