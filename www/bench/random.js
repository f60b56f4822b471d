// The benchmarks' seeded generator (mulberry32): the same stream of readings
// for every arm and every run, in the page and in the workers.

/** A generator of uniform numbers in [0, 1) from a 32-bit seed. */
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
