#!/usr/bin/env node
// Splits the wasm-bindgen module into the part a worker needs to start and
// ingest (www/pkg/meterflow_bg.wasm) and the cold rest
// (www/pkg/meterflow_bg_cold.wasm), then teaches the generated glue
// (www/pkg/meterflow.js) to load the cold part: in the background once the
// worker is ready (`loadCold`), or synchronously the first time the warm part
// calls a cold function before that (docs/SIZE.md, "The split").
//
//   WASM_OPT_FLAGS=... node scripts/split-wasm.mjs [PKG_DIR]   (default www/pkg; run by `make build`)
//
// Input: PKG_DIR/meterflow_bg.wasm as wasm-bindgen wrote it (name section kept).
// Steps, each a binaryen tool (npm's 132 for wasm-opt/wasm-dis/wasm-as, Debian's
// 108 for wasm-split, the only one that ships it):
//   1. wasm-opt with the Makefile's WASM_OPT_FLAGS (-O3) and -g: the
//      optimised module, function names kept;
//   2. wasm-dis / wasm-as: the one `table.fill` wasm-bindgen emits (a fill of
//      one slot) as a `table.set`, since binaryen 108 cannot read `table.fill`;
//   3. wasm-split --split-funcs: every function whose name matches COLD below;
//   4. wasm-dis / wasm-as: binaryen 108 exports the first table under the
//      externref table's name; the export is pointed back at the externref
//      table (the glue and the cold part both import it by that name);
//   5. wasm-opt --strip-debug on both parts.
// Every step checks what it relies on and stops with a message if a tool's
// output is not what it expects: a build never ships a half-patched module.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PKG = resolve(process.argv[2] ?? join(ROOT, 'www/pkg'));
const BIN = join(ROOT, 'www/node_modules/.bin');
const WASM_SPLIT = process.env.WASM_SPLIT ?? '/usr/bin/wasm-split';
// The Makefile's flags (`make build` passes them): `-O3` and the features.
const OPT_FLAGS = (process.env.WASM_OPT_FLAGS ?? '').split(/\s+/).filter(Boolean);
const FEATURES = OPT_FLAGS.filter((f) => f.startsWith('--enable-'));
const LEVEL = OPT_FLAGS.filter((f) => !f.startsWith('--enable-'));
const GLUE_MARK = '/* meterflow split */';

// Functions moved to the cold part, by a module path in their names (their
// own, or a generic argument's or closure's: most of a subsystem's code is
// instantiated generics, e.g. `hashbrown::…<meterflow::core::series::…>`).
// What stays warm: start-up (`startWorker` and the worker loop, the engine's
// construction, `config`), readings ingest (JSON, binary kind 1), detection,
// the events posted meanwhile (alerts, stats, errors, warnings, acks), the
// allocator. Cold: stream v2, groups, series, catch-ups and live frames,
// queries and their answers, other control messages, the tick's timers past
// detection (`Engine::cold_tick`), float formatting for error texts.
const COLD = [
  /meterflow::core::session::/,
  /meterflow::core::stream::/,
  /meterflow::wire::stream::/,
  /meterflow::wire::delta::/,
  /meterflow::wasm::transport::/,
  /meterflow::core::groups::/,
  /meterflow::groups::/,
  /meterflow::wire::groups::/,
  /meterflow::core::series::/,
  /meterflow::core::ledger::Ledger::on_catchup::/,
  /meterflow::wire::json::general::/,
  /^<f64 as core\[[0-9a-f]+\]::fmt::Display>::fmt$/,
  /^core(\[[0-9a-f]+\])?::num::flt2dec::/,
  /^<char>::escape_debug_ext$/,
  /^<u128>::_fmt$/,
  /meterflow::core::consumption::<impl meterflow::core::Engine>::(live|hello|catchup)::/,
  /::cold_[a-z_]+::h[0-9a-f]+$/,
  /meterflow::core::Engine::(answer|reset)::/,
  /meterflow::wire::control::series_query::/,
  /meterflow::wire::out::resources::/,
  /meterflow::wire::control::payload::/,
  /meterflow::core::ledger::Ledger::(totals|receive|need_max)::/,
  /meterflow::core::consumption::report_series_refused::/,
  /meterflow::core::clock::marzullo::/,
  /meterflow::wire::field::hlc::/,
  /meterflow::wire::binary::Reader::pair_binding::/,
];

// The Rust functions named `cold_*` hand a warm function's rare cases over to
// the cold part (e.g. `Engine::cold_input`, `wire::binary::cold_frame`): they
// are `#[inline(never)]` for LLVM, and wasm-opt must not inline them either
// (it inlines any function with a single caller, whatever its size).
const NO_INLINE = '*::cold_*';

// Functions of the modules above that start-up or ingest call: they stay warm
// (www/tests/split.test.mjs checks that an engine is made, configured and fed
// readings without loading the cold part).
const WARM = [
  // The engine's construction replaces a default series slab.
  /^core::ptr::drop_in_place<meterflow::core::series::slab::SeriesSlab>/,
  /meterflow::core::session::types::SessionConfig::validate::/,
];

function fail(message) {
  console.error(`split-wasm: ${message}`);
  process.exit(1);
}

function run(tool, args) {
  try {
    execFileSync(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    fail(`${tool} ${args.join(' ')} failed:\n${e.stderr?.toString() ?? e.message}`);
  }
}

// Binaryen's names escape what its text format cannot hold (space, braces, comma).
const escapeName = (name) =>
  name.replace(/[ {},\[\]]/g, (c) => `\\${c.charCodeAt(0).toString(16)}`);

function main() {
  const input = join(PKG, 'meterflow_bg.wasm');
  const glue = join(PKG, 'meterflow.js');
  if (!existsSync(input) || !existsSync(glue)) fail(`${PKG} has no meterflow_bg.wasm / meterflow.js (run wasm-pack first)`);
  if (FEATURES.length === 0 || LEVEL.length === 0) fail('WASM_OPT_FLAGS is not set: run it through `make build`');
  if (!existsSync(WASM_SPLIT)) fail(`${WASM_SPLIT} missing: Debian's binaryen package (scripts/install-deps.sh)`);
  const glueText = readFileSync(glue, 'utf8');
  if (glueText.includes(GLUE_MARK)) fail(`${glue} is split already: rebuild with wasm-pack first`);

  const tmp = mkdtempSync(join(tmpdir(), 'mf-split-'));
  try {
    // 1. optimise, names kept
    const opt = join(tmp, 'opt.wasm');
    run(join(BIN, 'wasm-opt'), ['--no-inline', `--pass-arg=no-inline@${NO_INLINE}`, ...LEVEL, '-g', ...FEATURES, input, '-o', opt]);

    // 2. table.fill of one slot -> table.set
    const optWat = join(tmp, 'opt.wat');
    run(join(BIN, 'wasm-dis'), [opt, '-o', optWat]);
    let wat = readFileSync(optWat, 'utf8');
    const fill = /\(table\.fill (\$\S+)\n(\s*)(\([^\n]*\))\n\s*(\(ref\.null [a-z]+\))\n\s*\(i32\.const 1\)\n(\s*)\)/g;
    let fills = 0;
    wat = wat.replace(fill, (_m, table, ind, index, value, close) => {
      fills += 1;
      return `(table.set ${table}\n${ind}${index}\n${ind}${value}\n${close})`;
    });
    const left = (wat.match(/\(table\.fill /g) ?? []).length;
    if (left > 0) fail(`${left} table.fill left that is not a fill of one slot (binaryen 108 cannot read it)`);
    const fixed = join(tmp, 'fixed.wasm');
    writeFileSync(optWat, wat);
    run(join(BIN, 'wasm-as'), ['-g', ...FEATURES, optWat, '-o', fixed]);

    // 3. split by name
    const names = [...wat.matchAll(/^ \(func \$("(?:[^"\\]|\\.)*"|\S+)/gm)].map((m) =>
      m[1].startsWith('"') ? m[1].slice(1, -1).replace(/\\"/g, '"') : m[1]);
    if (names.length < 100) fail(`only ${names.length} named functions: is the name section missing?`);
    const cold = names.filter((n) => COLD.some((re) => re.test(n)) && !WARM.some((re) => re.test(n)));
    if (cold.length === 0) fail('no function matches the cold list');
    const list = join(tmp, 'cold.txt');
    writeFileSync(list, cold.map(escapeName).join('\n') + '\n');
    const warmOut = join(tmp, 'warm.wasm');
    const coldOut = join(tmp, 'cold.wasm');
    run(WASM_SPLIT, [...FEATURES, fixed, '--split-funcs', `@${list}`, '-o1', warmOut, '-o2', coldOut, '--symbolmap']);

    // 4. the externref table's export
    const warmWat = join(tmp, 'warm.wat');
    run(join(BIN, 'wasm-dis'), [warmOut, '-o', warmWat]);
    let w = readFileSync(warmWat, 'utf8');
    const tables = [...w.matchAll(/^ \(table (\$\S+) \d+(?: \d+)? (funcref|externref)\)$/gm)];
    const externref = tables.find((t) => t[2] === 'externref');
    const exportRe = /\(export "__wbindgen_externrefs" \(table (\$\S+)\)\)/;
    const exported = w.match(exportRe);
    if (!externref || !exported) fail('the warm part has no externref table or no __wbindgen_externrefs export');
    w = w.replace(exportRe, () => `(export "__wbindgen_externrefs" (table ${externref[1]}))`);
    const placeholders = (w.match(/\(import "placeholder" "\d+"/g) ?? []).length;
    writeFileSync(warmWat, w);
    const warmFixed = join(tmp, 'warm-fixed.wasm');
    run(join(BIN, 'wasm-as'), [...FEATURES, warmWat, '-o', warmFixed]);

    // 5. strip names
    run(join(BIN, 'wasm-opt'), [...FEATURES, '--strip-debug', warmFixed, '-o', join(PKG, 'meterflow_bg.wasm')]);
    run(join(BIN, 'wasm-opt'), [...FEATURES, '--strip-debug', coldOut, '-o', join(PKG, 'meterflow_bg_cold.wasm')]);

    writeFileSync(glue, patchGlue(glueText));
    const types = join(PKG, 'meterflow.d.ts');
    if (existsSync(types)) writeFileSync(types, readFileSync(types, 'utf8') + TYPES);
    console.log(`split-wasm: ${names.length} functions, ${cold.length} cold, ${placeholders} placeholders, ${fills} table.fill rewritten`);
  } finally {
    // SPLIT_KEEP=1 keeps the steps' files (the named module, the cold list,
    // each part's `.symbols` map from function index to name) and says where.
    if (process.env.SPLIT_KEEP) console.log(`split-wasm: steps kept in ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

// The declarations of what the loader adds to the glue (meterflow.d.ts).
const TYPES = `
/** The warm part alone (wasm-bindgen's init): the default export loads both parts. */
export function initWarm(module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>): Promise<InitOutput>;
/** Loads the module's cold part (a compiled module, its bytes, or a URL; default: beside the glue). */
export function loadCold(source?: WebAssembly.Module | BufferSource | URL | string): Promise<void>;
/** Whether the cold part is instantiated. */
export function coldLoaded(): boolean;
`;

// The glue: a `placeholder` import namespace whose functions load the cold
// part and call through the table, and `loadCold`, exported beside `default`.
function patchGlue(text) {
  const importsAnchor = '        "./meterflow_bg.js": import0,\n    };';
  const exportAnchor = 'export { initSync, __wbg_init as default };';
  for (const anchor of [importsAnchor, exportAnchor]) {
    if (text.split(anchor).length !== 2) fail(`the glue's text changed: "${anchor.trim()}" is not there once`);
  }
  return text
    .replace(importsAnchor, '        "./meterflow_bg.js": import0,\n        "placeholder": __mf_placeholders,\n    };')
    .replace(exportAnchor, `${readFileSync(join(ROOT, 'www/cold-loader.js'), 'utf8')}\n${GLUE_MARK}\nexport { initSync, __mf_initAll as default, __wbg_init as initWarm, loadCold, coldLoaded };`);
}

main();
