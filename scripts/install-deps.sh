#!/usr/bin/env bash
# Installs what `make test`, `make demo` and the benchmarks need, on a fresh
# Debian machine, as root, without asking anything. Idempotent: whatever is
# already present at the right version is left alone, so a second run does
# nothing but check.
#
#   - the wasm32-unknown-unknown Rust target
#   - wasm-bindgen-cli at exactly the wasm-bindgen version pinned in Cargo.lock
#     (the CLI and the library must match, or the generated glue is refused)
#   - wasm-pack
#   - Debian's chromium and chromium-driver
#   - Debian's binaryen, for wasm-split only (`make build`: scripts/split-wasm.mjs;
#     npm's binaryen does not ship it)
#   - Debian's redis-server (tests/feed_redis.rs starts its own on a loopback
#     port; the package's system service is not needed and is not started here)
#   - Node.js and npm (only if missing), then `npm ci` in www/ (playwright-core,
#     which drives Debian's Chromium and never downloads a browser, binaryen
#     for wasm-opt: Debian's binaryen 108 cannot read wasm-bindgen 0.2.130's output,
#     and the dashboard's TypeScript, Vite, Redux Toolkit and uPlot)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "install-deps: $*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# 1. The wasm32 target.
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "wasm32-unknown-unknown target: present"
else
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# 2. wasm-bindgen-cli, exactly the version Cargo.lock pins.
want=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/^version = "|"$/, ""); print; exit }' Cargo.lock)
if [ -z "$want" ]; then
  say "cannot read the wasm-bindgen version from Cargo.lock" >&2
  exit 1
fi
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" = "$want" ]; then
  say "wasm-bindgen-cli $want: present"
else
  say "installing wasm-bindgen-cli $want (found '${have:-none}')"
  # Not --locked: one of the CLI's locked dependencies is no longer on the
  # registry, so a locked install fails; the unlocked one resolves fine.
  cargo install wasm-bindgen-cli --version "$want" --force
fi

# 3. wasm-pack.
if command -v wasm-pack >/dev/null; then
  say "wasm-pack $(wasm-pack --version | awk '{ print $2 }'): present"
else
  say "installing wasm-pack"
  cargo install wasm-pack
fi

# 4. Debian packages: Chromium and its driver; Node.js if missing.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
[ -x /usr/bin/wasm-split ] || missing+=(binaryen)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  say "chromium, chromium-driver, redis-server, binaryen, node, npm: present"
else
  say "apt-get installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 5. www/node_modules from the committed lock file: every locked package at its version.
versions() {
  node -e '
    const lock = require("./www/package-lock.json");
    for (const [path, p] of Object.entries(lock.packages)) {
      if (!path) continue;
      let have = "none";
      try { have = require("./www/" + path + "/package.json").version; } catch {}
      // Optional packages are native bindings for other platforms (rolldown,
      // lightningcss, typescript 7): absent here by design, not stale.
      if (p.optional && have === "none") continue;
      console.log(`${path.replace("node_modules/", "")} ${p.version} ${have}`);
    }'
}
stale=$(versions | awk '$2 != $3 { print $1 " " $2 " (found " $3 ")" }')
lock_version=$(versions | awk '{ print $1 "@" $2 }' | paste -sd' ')
if [ -z "$stale" ]; then
  say "www/node_modules ($lock_version): present"
else
  say "npm ci in www/: $stale"
  # playwright-core never downloads a browser; the variable makes sure nothing tries.
  (cd www && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
say "done"
