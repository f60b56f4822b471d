//! `sort_indices`: one small comparison sort for cold callers (today a
//! session channel's buffered deltas).
//!
//! Each `sort_unstable_by` over a new element type or comparator is another
//! copy of std's pattern-defeating quicksort in the `.wasm`, 2.3 to 2.6 KB
//! gzip each, and one over `usize` positions with a `dyn` comparator is no
//! smaller (docs/SIZE.md, 2026-12-05 night). A cold caller sorts positions
//! with this heapsort instead: a few hundred bytes, in place, `O(n log n)`
//! comparisons for any input, but about twice std's comparisons, each an
//! indirect call, and a scattered access pattern: on a JSON object of 600,000
//! keys it took 1.3 s where std's sort took 0.18 s, so a sort whose size the
//! sender controls (`wire::lite::Object::entries_by_key`) keeps std's sort,
//! and so do the hot paths (the `u64` keys of `wasm::timing` and the binary
//! catch-up's binding table share `[u64]::sort_unstable`).
//!
//! Invariant: on return `order` is a permutation of what it held, in
//! ascending `cmp` order; `cmp` must be a total order (ties left in any order).

use std::cmp::Ordering;

/// Sorts the positions in `order` by `cmp` (unstable), as a heapsort.
#[inline(never)]
pub fn sort_indices(order: &mut [usize], cmp: &mut dyn FnMut(usize, usize) -> Ordering) {
    let n = order.len();
    for node in (0..n / 2).rev() {
        sift_down(order, node, n, cmp);
    }
    for end in (1..n).rev() {
        order.swap(0, end);
        sift_down(order, 0, end, cmp);
    }
}

/// Restores the max-heap below `node` in `order[..end]`.
fn sift_down(
    order: &mut [usize],
    mut node: usize,
    end: usize,
    cmp: &mut dyn FnMut(usize, usize) -> Ordering,
) {
    let end = end.min(order.len());
    let mut less = |order: &[usize], i: usize, j: usize| match (order.get(i), order.get(j)) {
        (Some(&a), Some(&b)) => cmp(a, b) == Ordering::Less,
        _ => false,
    };
    loop {
        // A child exists only while `node < end / 2`, so this cannot overflow.
        let mut child = 2 * node + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(order, child, child + 1) {
            child += 1;
        }
        if !less(order, node, child) {
            return;
        }
        order.swap(node, child);
        node = child;
    }
}

// proptest is a native dev-dependency only (wasm-pack builds the lib tests too).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Positions sorted by their values equal the values sorted, and
        /// the result is a permutation of `0..n`.
        #[test]
        fn sorts_positions_by_values(values in proptest::collection::vec(0u8..8, 0..300)) {
            let mut order: Vec<usize> = (0..values.len()).collect();
            sort_indices(&mut order, &mut |a, b| values[a].cmp(&values[b]));
            let by_order: Vec<u8> = order.iter().map(|&i| values[i]).collect();
            let mut expected = values.clone();
            expected.sort();
            prop_assert_eq!(by_order, expected);
            let mut seen = order.clone();
            seen.sort();
            prop_assert_eq!(seen, (0..values.len()).collect::<Vec<_>>());
        }
    }
}
