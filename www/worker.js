// The meterflow worker: starts the wasm module and hands the worker to it.
// Messages that arrive while the module loads are queued and replayed in order,
// after `startWorker()` has installed its own `onmessage` and posted `ready`.
// Start it as a module worker:
//   new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })
//
// The `.wasm` is fetched and compiled (streaming) at once, while the JS glue
// (`pkg/meterflow.js`) is still being loaded: a static import would load the
// glue first and only then start the fetch. If streaming compilation is not
// possible (a server without `application/wasm`), the glue loads it itself.
//
// The module comes in two parts (scripts/split-wasm.mjs, docs/SIZE.md): the
// warm part above, all a worker needs to start, and a cold part (stream v2,
// groups, series, catch-ups, error texts, the tick's timers past detection).
// The cold part is fetched and compiled beside the warm one but nothing waits
// for it: it is instantiated as soon as it is compiled, after `ready`. A cold
// function needed before that (a message posted before `ready`) loads it
// synchronously.

const compiled = WebAssembly.compileStreaming(fetch(new URL('./pkg/meterflow_bg.wasm', import.meta.url)))
  .catch(() => undefined);

const coldCompiled = WebAssembly.compileStreaming(fetch(new URL('./pkg/meterflow_bg_cold.wasm', import.meta.url)))
  .catch(() => undefined);

const early = [];
self.onmessage = (event) => early.push(event);

const { initWarm, startWorker, loadCold } = await import('./pkg/meterflow.js');
const module = await compiled;
await initWarm(module ? { module_or_path: module } : undefined);
coldCompiled
  .then((cold) => loadCold(cold))
  .catch((e) => console.error('meterflow: the cold part did not load in the background:', e));
startWorker();
for (const event of early) self.onmessage(event);
