// The JS frame encoders against the golden frames (tests/data/wire/, see
// tests/wire_golden.rs): from each case's `input`, www/frames.js and
// www/live-frames.js must write exactly the committed `.bin`, which the Rust
// encoders also write and the Rust decoders read into the case's `decoded`.
// Plain Node, no browser: `node --test tests/golden.test.mjs` in www/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeReadingsFrame } from '../frames.js';
import { encodeLiveFrame, encodeCatchupFrame } from '../live-frames.js';

const dir = fileURLToPath(new URL('../../tests/data/wire/', import.meta.url));
const encoders = { 1: encodeReadingsFrame, 2: encodeLiveFrame, 3: encodeCatchupFrame };

const cases = readdirSync(dir)
  .filter((f) => f.endsWith('.json') && !f.endsWith('.body.json'))
  .map((f) => ({ name: f.slice(0, -'.json'.length), meaning: JSON.parse(readFileSync(dir + f, 'utf8')) }))
  .filter(({ meaning }) => meaning.kind !== undefined);

/** The first differing byte, for a readable failure. */
function firstDiff(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
}

test('the golden set has binary frames of every kind', () => {
  assert.deepEqual([...new Set(cases.map((c) => c.meaning.kind))].sort(), [1, 2, 3]);
});

for (const { name, meaning } of cases) {
  test(`JS encoder reproduces ${name}.bin`, () => {
    const golden = new Uint8Array(readFileSync(`${dir}${name}.bin`));
    const bytes = new Uint8Array(encoders[meaning.kind](meaning.input));
    const at = firstDiff(bytes, golden);
    assert.equal(at, -1, `${name}: first difference at byte ${at} (JS ${bytes[at]}, golden ${golden[at]}); lengths ${bytes.length}/${golden.length}`);
  });
}
