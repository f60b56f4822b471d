// Replaces the generated part of README.md between `<!-- NAME:begin -->` and
// `<!-- NAME:end -->` with `body`; shared by the table scripts
// (bench-table, stream-table, soak-table, eval-table).

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const README = join(fileURLToPath(new URL('..', import.meta.url)), 'README.md');

export async function writeReadmeSection(name, body) {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const text = await readFile(README, 'utf8');
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`README.md has no ${begin} … ${end} section`);
  await writeFile(README, `${text.slice(0, a + begin.length)}\n${body}\n${text.slice(b)}`);
}
