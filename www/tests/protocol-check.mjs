// Shared by protocol-types.test.mjs and dashboard-incidents.test.mjs: the
// JSON examples of docs/PROTOCOL.md by direction, and a type check of
// message literals against the client's TypeScript types (tsc --noEmit,
// strict, the dashboard's tsconfig).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const WWW = fileURLToPath(new URL('..', import.meta.url));
export const DOC = join(WWW, '..', 'docs', 'PROTOCOL.md');
const TSC = join(WWW, 'node_modules', 'typescript', 'bin', 'tsc');

/** The top-level `{...}` objects of a code block (strings and comments respected), with their line numbers. */
function objects(block, firstLine) {
  const out = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < block.length; i++) {
    const c = block[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '/' && block[i + 1] === '*') i = block.indexOf('*/', i + 2) + 1;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && --depth === 0) {
      out.push({ text: block.slice(start, i + 1), line: firstLine + block.slice(0, start).split('\n').length - 1 });
    }
  }
  return out;
}

/** Examples by direction: the nearest "Page → worker" / "Worker → page" heading above each json block. */
export function examples(markdown) {
  const lines = markdown.split('\n');
  const found = { page: [], worker: [] };
  let h2 = '';
  let h3 = '';
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith('## ')) [h2, h3] = [l, ''];
    else if (l.startsWith('### ')) h3 = l;
    else if (l.startsWith('```json')) {
      const end = lines.indexOf('```', i + 1);
      const dir = (h) => (/page → worker/i.test(h) ? 'page' : /worker → page/i.test(h) ? 'worker' : null);
      const d = dir(h3) ?? dir(h2);
      if (d) found[d].push(...objects(lines.slice(i + 1, end).join('\n'), i + 2));
      i = end;
    }
  }
  return found;
}

/** Type-checks `found` against the types; returns tsc's exit status and output. */
export function typecheck(found) {
  const dir = mkdtempSync(join(tmpdir(), 'mf-protocol-types-'));
  try {
    const src = [
      `import type { ClientPageMessage, ClientWorkerMessage } from '${join(WWW, 'client', 'protocol.js')}';`,
      `import type { WorkerMessage } from '${join(WWW, '..', 'src', 'wasm', 'protocol')}';`,
      ...found.page.map((e, n) => `// PROTOCOL.md line ${e.line}\nexport const page${n}: ClientPageMessage = ${e.text};`),
      ...found.worker.map((e, n) => `// PROTOCOL.md line ${e.line}\nexport const worker${n}: ClientWorkerMessage | WorkerMessage = ${e.text};`),
    ].join('\n');
    writeFileSync(join(dir, 'examples.ts'), src);
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      extends: join(WWW, 'tsconfig.json'),
      compilerOptions: { noEmit: true, noUnusedLocals: false, rootDir: '/' },
      include: [join(dir, 'examples.ts')],
    }));
    const r = spawnSync(process.execPath, [TSC, '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
    return { status: r.status, output: `${r.stdout}${r.stderr}`, src };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}


/**
 * A message the worker posted, as a TypeScript literal: typed arrays become
 * `new Float64Array(0)` and buffers `new ArrayBuffer(0)` (their type is what
 * is checked; in a page, record them as `{__f64: true}` / `{__ab: true}`),
 * NaN and infinities stay numbers.
 */
export function literal(message) {
  const text = JSON.stringify(message, (_k, v) => {
    if (v instanceof Float64Array || (v && v.__f64)) return '\u0000F64';
    if (v instanceof ArrayBuffer || (v && v.__ab)) return '\u0000AB';
    if (typeof v === 'number' && !Number.isFinite(v)) return '\u0000NUM';
    return v;
  });
  return text.replaceAll('"\\u0000F64"', 'new Float64Array(0)').replaceAll('"\\u0000AB"', 'new ArrayBuffer(0)').replaceAll('"\\u0000NUM"', 'NaN');
}
