// The protocol's TypeScript types against its documentation: every JSON
// example in docs/PROTOCOL.md under a "Page → worker" heading must be a
// `ClientPageMessage`, every one under "Worker → page" a `ClientWorkerMessage`
// or a `WorkerMessage` (www/client/protocol.ts, src/wasm/protocol.d.ts), as
// TypeScript checks an object literal: no missing field, no unknown field, no
// value outside its union. The examples go into a generated .ts file that
// `tsc --noEmit` (strict, the dashboard's tsconfig) must accept.
//
// The Rust side of the same examples: tests/protocol_examples.rs decodes each
// page → worker example through `wire::decode_message`.
//
// Run: `cd www && node --test tests/protocol-types.test.mjs` (no build needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DOC, examples, typecheck } from './protocol-check.mjs';

test('every JSON example in PROTOCOL.md has the TypeScript type of its direction', () => {
  const found = examples(readFileSync(DOC, 'utf8'));
  // Not vacuous: the documented examples of both directions are found.
  assert.ok(found.page.length >= 5, `${found.page.length} page → worker examples found`);
  assert.ok(found.worker.length >= 7, `${found.worker.length} worker → page examples found`);
  const r = typecheck(found);
  assert.equal(r.status, 0, `tsc refused an example:\n${r.output}`);
});

test('the check can fail: an example with a wrong field or value is refused', () => {
  const bad = {
    page: [{ text: '{ "type": "rendered", "channel": "totals", "frame": 3 }', line: 1 }],
    worker: [{ text: '{ "type": "connection", "v": 1, "state": "online", "attempt": 0, "nextRetryAt": null, "lastCloseCode": null, "reason": "" }', line: 2 }],
  };
  const r = typecheck(bad);
  assert.notEqual(r.status, 0);
  assert.match(r.output, /frame/);
  assert.match(r.output, /online/);
});
