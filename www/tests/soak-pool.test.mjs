// The worker pool (issue 9, "Past one worker"; www/client/pool.ts), part of
// `make test` (`make e2e`, after `make dash` has emitted www/build/client):
// www/bench/soak-pool.html via soak-run.mjs --only pool --pool-smoke, in
// headless Chromium with 1, 2 and 4 real workers. It proves, through the
// page's split payloads and the workers' answers:
//   - the same alerts with 1, 2 and 4 workers (every field but the workers'
//     clock), every injected spike and stuck run among them;
//   - exact merged totals against the page's oracle, before and after a
//     catch-up, with catch-ups both fetched through worker 0's client and
//     posted by the page (fanned out: the per-resource REST part once);
//   - the partition: JSON (text and bytes) handed whole to every worker and
//     binary frames split by the page, with readings of meters owned by each
//     worker, duplicates, refused items and readings, an unbound key and a
//     payload refused as a whole: the summed acks and each error exactly once
//     against the page's oracle, each worker holding exactly its own meters
//     and readings (a worker that applied another's reading, or a reading
//     dropped or counted twice, fails it), every window the oracle's;
//   - every reading of the throughput run accepted.
// No timing is asserted (readings/s is reported, not checked).
//
// Run: `make build dash && cd www && node --test tests/soak-pool.test.mjs`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNNER = fileURLToPath(new URL('../bench/soak-run.mjs', import.meta.url));
const BUILT = fileURLToPath(new URL('../build/client/pool.js', import.meta.url));

test('1, 2 and 4 workers: the same alerts and exact merged totals', async () => {
  assert.ok(existsSync(BUILT), 'www/build/client is missing: run `make dash` first');
  const dir = await mkdtemp(join(tmpdir(), 'meterflow-pool-test-'));
  try {
    const json = join(dir, 'pool.json');
    const child = spawn(process.execPath, [RUNNER, '--only', 'pool', '--pool-smoke', '--json', json], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c) => (stderr += c));
    const code = await new Promise((r) => child.on('exit', r));
    assert.equal(code, 0, stderr);
    const p = JSON.parse(await readFile(json, 'utf8')).pool;
    assert.deepEqual(p.failures, []);
    assert.deepEqual(p.runs.map((r) => r.workers), [1, 2, 4]);
    for (const r of p.runs) {
      assert.ok(r.alerts.count > 0 && r.alerts.count === p.alertEvents, JSON.stringify(r.alerts));
      assert.deepEqual(r.alerts.missing, []);
      assert.equal(r.totals.exactBeforeLastCatchup, true);
      assert.equal(r.totals.exactAfterLastCatchup, true);
      assert.equal(r.totals.livePendingAfter, 0);
      assert.deepEqual(r.partition.problems, []);
      assert.ok(r.partition.meters >= 40 && r.partition.accepted > 300 && r.partition.errors === 17, JSON.stringify(r.partition));
      assert.ok(r.totals.checks.length > 0 && r.totals.checks.every((c) => c.exact), JSON.stringify(r.totals.checks));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
