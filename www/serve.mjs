#!/usr/bin/env node
// Static server for www/: the demo page, the worker, the built wasm package
// (www/pkg) and the in-browser benchmark. Listens on 127.0.0.1 only.
//
//   node www/serve.mjs [PORT]        PORT from the argument, else $PORT, else 8080;
//                                    0 picks a free port.
//
// It prints one line `meterflow: serving DIR at http://127.0.0.1:PORT/` once
// it listens; the end-to-end test and the benchmark runner read the URL from it.
//
// Responses carry COOP/COEP headers so the page is cross-origin isolated:
// that gives `performance.now()` its fine (5 µs) resolution in the worker,
// which the tick timing in `stats` and the benchmark rely on.

import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const HOST = '127.0.0.1';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.ts': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/** Resolves a URL path to a file under `root`, or null if it escapes it or is hidden. */
function fileFor(root, urlPath) {
  let path;
  try {
    path = decodeURIComponent(urlPath.split('?')[0].split('#')[0]);
  } catch {
    return null;
  }
  if (path.includes('\0')) return null;
  const full = normalize(join(root, path));
  if (full !== root && !full.startsWith(root + sep)) return null;
  const parts = full.slice(root.length).split(sep);
  if (parts.some((p) => p.startsWith('.') || p === 'node_modules')) return null;
  return full;
}

/** Starts the server; resolves to the `http.Server` once it listens. */
export function startServer({ root, port = 0 } = {}) {
  const dir = resolve(root ?? fileURLToPath(new URL('.', import.meta.url)));
  const server = createServer(async (req, res) => {
    const send = (status, text) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    let file = fileFor(dir, req.url ?? '/');
    if (!file) return send(404, 'not found\n');
    try {
      let st = await stat(file);
      if (st.isDirectory()) {
        file = join(file, 'index.html');
        st = await stat(file);
      }
      res.writeHead(200, {
        'content-type': MIME[extname(file)] ?? 'application/octet-stream',
        'content-length': st.size,
        'cache-control': 'no-store',
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
        'x-content-type-options': 'nosniff',
      });
      if (req.method === 'HEAD') return res.end();
      createReadStream(file).pipe(res);
    } catch {
      send(404, 'not found\n');
    }
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, HOST, () => ok(server));
  });
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const raw = process.argv[2] ?? process.env.PORT ?? '8080';
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`meterflow: bad port '${raw}' (want 0..65535; 0 picks a free one)`);
    process.exit(2);
  }
  const root = fileURLToPath(new URL('.', import.meta.url));
  startServer({ root, port }).then(
    (server) => {
      const { port: actual } = server.address();
      console.log(`meterflow: serving ${root} at http://${HOST}:${actual}/`);
      for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
    },
    (err) => {
      console.error(`meterflow: cannot listen on ${HOST}:${port}: ${err.message}`);
      process.exit(1);
    },
  );
}
