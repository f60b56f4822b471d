// The cold part's loader: scripts/split-wasm.mjs appends this file to the
// glue wasm-bindgen generates (pkg/meterflow.js), where `wasm` is the warm
// instance's exports. The warm part (meterflow_bg.wasm) imports one
// `placeholder` function per table slot that a cold function will fill; the
// first call to any of them instantiates the cold part (meterflow_bg_cold.wasm),
// whose element segments put the real functions into those slots, and calls
// through the table. After that the warm part calls them through the table
// directly: no placeholder runs again.
//
// The default export `init()` loads both parts. `initWarm()` loads the warm
// part alone and `loadCold()` the cold one (www/worker.js: the worker posts
// `ready` as soon as the warm part is running and instantiates the cold part
// when its compile, started beside the warm one, ends). A cold function
// called before `loadCold()` has finished loads the cold part synchronously
// (a synchronous request in a worker, `fs` in Node; a page's main thread
// cannot, and is told to load it first): slower, never wrong.

let __mf_coldUrl = new URL('meterflow_bg_cold.wasm', import.meta.url);
let __mf_coldModule = null;
let __mf_coldInstance = null;

function __mf_coldBytesSync() {
    if (typeof document !== 'undefined') {
        // A document cannot make a synchronous request for bytes, nor compile
        // a module this size synchronously: the default `init()` loads both
        // parts; `initWarm()` / `initSync()` users call `loadCold()` first.
        throw new Error('meterflow: the cold part is needed but not loaded; on a page, use the default init() or await loadCold() first');
    }
    if (typeof XMLHttpRequest === 'function') {
        const xhr = new XMLHttpRequest();
        xhr.open('GET', __mf_coldUrl, false);
        xhr.responseType = 'arraybuffer';
        xhr.send();
        if (xhr.status !== 200 && xhr.status !== 0) {
            throw new Error(`meterflow: cannot load ${__mf_coldUrl}: HTTP ${xhr.status}`);
        }
        return xhr.response;
    }
    const fs = globalThis.process?.getBuiltinModule?.('node:fs');
    if (fs && __mf_coldUrl.protocol === 'file:') return fs.readFileSync(__mf_coldUrl);
    throw new Error(`meterflow: cannot load ${__mf_coldUrl} synchronously here; call loadCold() first`);
}

function __mf_instantiateCold() {
    if (__mf_coldInstance !== null) return;
    if (wasm === undefined) throw new Error('meterflow: the cold part is needed before the module is initialised');
    if (__mf_coldModule === null) __mf_coldModule = new WebAssembly.Module(__mf_coldBytesSync());
    __mf_coldInstance = new WebAssembly.Instance(__mf_coldModule, { primary: wasm });
}

const __mf_placeholders = new Proxy({}, {
    get(_target, name) {
        const slot = Number(name);
        return function (...args) {
            if (globalThis.__meterflowColdTrace) console.trace(`meterflow: cold slot ${slot} called before the cold part was loaded`);
            __mf_instantiateCold();
            return wasm.table.get(slot)(...args);
        };
    },
});

/**
 * The default initialisation: the warm part (as wasm-bindgen's `init`), then
 * the cold part, so that nothing is loaded later. `initWarm` is wasm-bindgen's
 * `init` alone (www/worker.js, which loads the cold part after `ready`).
 */
async function __mf_initAll(module_or_path) {
    const exports = await __wbg_init(module_or_path);
    await loadCold();
    return exports;
}

/** Whether the cold part is instantiated (loaded ahead or on first need). */
function coldLoaded() {
    return __mf_coldInstance !== null;
}

/**
 * Loads the cold part (meterflow_bg_cold.wasm) ahead of need. `source` is a
 * compiled `WebAssembly.Module`, bytes, or a URL (default: beside this file).
 * Resolves once it is instantiated (or compiled, if the module is not yet
 * initialised: then it is instantiated at the first need).
 */
async function loadCold(source) {
    if (__mf_coldInstance !== null) return;
    if (source instanceof WebAssembly.Module) {
        __mf_coldModule = source;
    } else if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
        __mf_coldModule = await WebAssembly.compile(source);
    } else if (__mf_coldModule === null) {
        if (source !== undefined) __mf_coldUrl = new URL(source, __mf_coldUrl);
        const fs = globalThis.process?.getBuiltinModule?.('node:fs');
        if (fs && __mf_coldUrl.protocol === 'file:') {
            // Node's fetch does not read files.
            __mf_coldModule = await WebAssembly.compile(await fs.promises.readFile(__mf_coldUrl));
            if (wasm !== undefined) __mf_instantiateCold();
            return;
        }
        const response = fetch(__mf_coldUrl);
        const compiled = await WebAssembly.compileStreaming(response).catch(async () => {
            const r = await fetch(__mf_coldUrl);
            if (!r.ok) throw new Error(`meterflow: cannot load ${__mf_coldUrl}: HTTP ${r.status}`);
            return WebAssembly.compile(await r.arrayBuffer());
        });
        __mf_coldModule ??= compiled;
    }
    if (wasm !== undefined) __mf_instantiateCold();
}
