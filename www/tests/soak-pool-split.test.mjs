// The pool's page-side split of JSON readings text (`splitReadingsText` in
// www/client/pool.ts, emitted to www/build/client by `make dash`), in plain
// Node: random payloads in the spelling it takes and the same payloads
// disturbed. Each part must hold exactly the items of its owner (FNV-1a of
// the id, `shardOf`), in order, as valid JSON; text it does not take must give
// `null` (the pool then sends it whole to every worker). The number grammar
// is checked against `JSON.parse` on random strings of number characters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { random as rng } from '../bench/random.js';

const built = fileURLToPath(new URL('../build/client/pool.js', import.meta.url));
if (!existsSync(built)) throw new Error('www/build/client is missing: run `make dash` first');
const { splitReadingsText, shardOf } = await import(built);

const text = (items) => JSON.stringify({ type: 'readings', readings: items });
const decode = (buf) => JSON.parse(new TextDecoder().decode(buf));

test('each part holds exactly its owner\'s items, in order, as valid JSON', () => {
  const r = rng(1);
  for (let round = 0; round < 300; round++) {
    const workers = 2 + Math.floor(r() * 3);
    const n = Math.floor(r() * 50);
    const ids = Array.from({ length: 1 + Math.floor(r() * 30) }, (_, i) => `m-${i}-${Math.floor(r() * 1e6)}~!#$%&'()*+,-./:;<=>?@[]^_\`{|}`.slice(0, 4 + Math.floor(r() * 30)));
    const items = Array.from({ length: n }, () => ({
      meter: ids[Math.floor(r() * ids.length)],
      ts: Math.floor(1.7e12 + r() * 1e9),
      value: [r() * 1000 - 500, Math.floor(r() * 100), -0.000001234, 1e300, 12345678.9e-3][Math.floor(r() * 5)],
    }));
    const parts = splitReadingsText(text(items), workers, 1_000_000);
    assert.ok(parts, text(items).slice(0, 200));
    if (n === 0) {
      assert.deepEqual(parts.map(([w]) => w), [0]);
      continue;
    }
    const seen = new Set();
    for (const [w, buf] of parts) {
      assert.ok(!seen.has(w));
      seen.add(w);
      const doc = decode(buf);
      assert.equal(doc.type, 'readings');
      assert.deepEqual(doc.readings, items.filter((it) => shardOf(it.meter, workers) === w));
    }
    for (let w = 0; w < workers; w++) {
      if (!seen.has(w)) assert.equal(items.filter((it) => shardOf(it.meter, workers) === w).length, 0);
    }
  }
});

test('text in any other spelling is not split', () => {
  const good = text([{ meter: 'a', ts: 1, value: 2 }, { meter: 'b', ts: 3, value: 4.5 }]);
  assert.ok(splitReadingsText(good, 2, 1_000_000));
  const others = [
    good.replace('"ts":1', '"ts": 1'), // whitespace
    good.replace('{"type":"readings",', '{"v":1,"type":"readings",'), // another field
    good.replace('"meter":"a"', '"meter":"a\\u0041"'), // an escape
    good.replace('"meter":"a"', '"meter":"é"'), // not ASCII
    good.replace('"meter":"a"', '"meter":""'), // an empty id
    good.replace('"value":2', '"value":"2"'), // a string value
    good.replace('"value":2}', '"value":2,"x":1}'), // a fourth field
    good.replace('"value":2', '"value":02'), // not a JSON number
    `${good} `, // something after it
    good.slice(0, -1), // cut
    good.replace(']}', ',]}'), // a trailing comma
    `{"type":"readings","readings":[]} `,
  ];
  for (const t of others) assert.equal(splitReadingsText(t, 2, 1_000_000), null, t);
  // More items than maxBatch: left to the workers, which refuse it whole.
  assert.equal(splitReadingsText(good, 2, 1), null);
  assert.ok(splitReadingsText(good, 2, 2));
});

test('a number is taken exactly when JSON.parse takes it', () => {
  const r = rng(2);
  const chars = '0123456789-+.eE';
  for (let k = 0; k < 20_000; k++) {
    const num = Array.from({ length: 1 + Math.floor(r() * 6) }, () => chars[Math.floor(r() * chars.length)]).join('');
    const t = `{"type":"readings","readings":[{"meter":"a","ts":${num},"value":1}]}`;
    let valid = true;
    try {
      JSON.parse(t);
    } catch {
      valid = false;
    }
    assert.equal(splitReadingsText(t, 3, 1_000_000) !== null, valid, num);
  }
});
