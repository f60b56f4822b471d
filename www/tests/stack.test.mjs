// The wasm stack is small (build.rs: 64 KiB; issue 9, memory per meter): the
// deepest input the JSON readers allow, one level more, 100,000 levels (the
// readers that skip unknown values do so without recursing), and the heavy paths
// (ticks raising alerts on every meter, large JSON batches and catch-ups)
// must neither trap nor come within 2× of the stack's size. Runs the release
// package (www/pkg, `make build`) in Node, through the same scenarios as
// `node www/bench/stack-depth.mjs` (5,000 meters here).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deepScenarios, FAR_DEPTH, heavyScenarios, load, measure, MAX_DEPTH } from '../bench/stack-depth.mjs';

const ctx = await load();
const HEADROOM = 2;

/** Error codes among the outputs (a trap throws instead). */
const codes = (out) => out.filter((m) => m.type === 'error').map((m) => m.code);

test('the stack top is the configured stack size (stack first)', () => {
  assert.ok(ctx.top > 0 && ctx.top <= 65536 && ctx.top % 16 === 0, `stack top ${ctx.top}`);
});

test(`nesting at ${MAX_DEPTH} levels, ${MAX_DEPTH + 1} and ${FAR_DEPTH} on every JSON path stays within the stack`, () => {
  const engine = new ctx.MeterflowEngine({});
  const config = {};
  for (const [name, depth, run] of deepScenarios()) {
    const { used, value } = measure(ctx, () => run(engine));
    assert.ok(Array.isArray(value), `${name}: no outputs`);
    assert.ok(used * HEADROOM <= ctx.top, `${name}: ${used} B of a ${ctx.top} B stack`);
    if (name.startsWith('config,')) config[depth] = codes(value);
  }
  engine.free();
  // The recursive reader really went to its limit: at MAX_DEPTH the config
  // text is read (and its unknown key refused), one level more it is not.
  assert.deepEqual(config[MAX_DEPTH], ['bad_config']);
  assert.deepEqual(config[MAX_DEPTH + 1], ['malformed_json']);
});

test('ticks with alerts on every meter, big JSON batches and catch-ups stay within the stack', () => {
  for (const [name, run] of heavyScenarios(ctx.MeterflowEngine, 5_000)) {
    const { used, value } = measure(ctx, run);
    assert.ok(used * HEADROOM <= ctx.top, `${name}: ${used} B of a ${ctx.top} B stack`);
    assert.deepEqual(codes(value ?? []), [], name);
  }
});
