// Builds the operator dashboard (index.html -> src/main.ts) into www/dist,
// which `meterflow-feed --www www/dist` serves. The worker (worker.js, a
// module worker importing the wasm-bindgen glue in www/pkg) is bundled as its
// own ES module and meterflow_bg.wasm is emitted as an asset. Nothing is
// inlined: every script and stylesheet is a file, for the page's CSP.
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  publicDir: 'public',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    rollupOptions: { input: 'index.html' },
  },
  worker: { format: 'es' },
});
