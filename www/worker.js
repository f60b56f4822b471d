// The meterflow worker: starts the wasm module and hands the worker to it.
// Messages that arrive while the module loads are queued and replayed in order,
// after `startWorker()` has installed its own `onmessage` and posted `ready`.
// Start it as a module worker:
//   new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })
import init, { startWorker } from './pkg/meterflow.js';

const early = [];
self.onmessage = (event) => early.push(event);

await init();
startWorker();
for (const event of early) self.onmessage(event);
