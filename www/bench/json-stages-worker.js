// The worker of bench-json-stages.html: loads the package named by `pkg`
// (a directory under www/, default `pkg`) and runs bench/json-stages.js.
import { runStages } from './json-stages.js';

self.onmessage = async (e) => {
  const { pkg = 'pkg', reps = '20', rounds = '5', only } = e.data;
  try {
    const { default: init, MeterflowEngine } = await import(new URL(`../${pkg}/meterflow.js`, import.meta.url));
    await init({ module_or_path: new URL(`../${pkg}/meterflow_bg.wasm`, import.meta.url) });
    self.postMessage(runStages(MeterflowEngine, { reps: Number(reps), rounds: Number(rounds), only: only?.split(',') }));
  } catch (err) {
    self.postMessage({ error: String(err?.stack ?? err) });
  }
};
