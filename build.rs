//! The wasm module's stack: 64 KiB instead of rustc's default 1 MiB.
//!
//! wasm linear memory never shrinks and the stack is part of it, so the
//! default's 1 MiB cost ~210 bytes a meter at 5,000 meters (issue 9: the
//! target is 10.5 KB a meter, the ring alone is 9,600 B). Nothing in the
//! engine recurses without a bound (the JSON readers stop at depth 128) or
//! keeps large arrays on the stack. The deepest use measured on the release
//! module is 15,356 B (`node www/bench/stack-depth.mjs`: the deepest
//! nesting every JSON path allows, ticks raising alerts on 50,000 meters,
//! 8.8 MB catch-ups), so 64 KiB leaves 4.3×; `www/tests/stack.test.mjs`
//! fails below 2×. rustc places the stack first, so an overflow traps at
//! address 0 instead of overwriting data. Only the `cdylib` (the `.wasm` the
//! page loads) is linked with it; native builds and the wasm test binaries are
//! untouched.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=65536");
    }
}
