// Runs the benchmark worker once per size, one after the other (each in a
// fresh worker, so each size starts from a fresh wasm instance and its memory
// figures are its own), and publishes the results as `window.benchResult`.
import { formatTable } from './table.js';

const params = new URLSearchParams(location.search);
const sizes = (params.get('sizes') ?? '5000,20000,50000').split(',').map(Number);
const smoke = params.get('smoke') === '1';

function runOne(meters) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (e) => {
      worker.terminate();
      if (e.data.error) reject(new Error(e.data.error));
      else resolve(e.data);
    };
    worker.onerror = (e) => {
      worker.terminate();
      reject(new Error(`benchmark worker failed: ${e.message}`));
    };
    worker.postMessage({ meters, smoke });
  });
}

const env = {
  userAgent: navigator.userAgent,
  crossOriginIsolated,
  hardwareConcurrency: navigator.hardwareConcurrency,
  smoke,
};
window.benchResult = { done: false, env, results: [] };
try {
  for (const meters of sizes) {
    document.querySelector('#status').textContent = `running ${meters} meters…`;
    window.benchResult.results.push(await runOne(meters));
    document.querySelector('#out').textContent = formatTable(window.benchResult.results);
  }
  document.querySelector('#status').textContent = 'done';
} catch (e) {
  window.benchResult.error = String(e?.message ?? e);
  document.querySelector('#status').textContent = `failed: ${window.benchResult.error}`;
}
window.benchResult.done = true;
