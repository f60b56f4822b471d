//! The first repeated name of a long list, found without a hash set probed
//! at random: a `/groups` body names up to millions of groups (1.2 million
//! empty ones in 16 MiB), and a set of their names cost a cache miss per
//! name in any order (38 % of that body's decode), while a sort of the names
//! costs more when they come shuffled (docs/PERFORMANCE.md, "Hostile
//! payloads").
//!
//! Each name becomes one `u64` as it is read, in document order: its hash's
//! high bits above its index (the index in the low bits keeps the keys
//! distinct and, within equal hashes, in document order). The keys are then
//! spread into buckets of a few hundred by their top bits (two passes in
//! order, writing to at most 4,096 places at a time), each bucket is sorted
//! while it sits in cache, and only names whose hashes agree are read again
//! (from where the text holds them) and compared. The cost does not depend
//! on the names' order; names made to collide cost a comparison sort of
//! those names, `O(n log n)` at worst.
//!
//! Invariant: [`NameKeys::first_repeat`] is the smallest `j` such that name
//! `j` equals an earlier name: what a set filled in document order finds.

use std::borrow::Cow;
use std::collections::TryReserveError;
use std::hash::Hasher;

use rustc_hash::FxHasher;

use crate::core::order::sort_indices;

/// Keys a bucket holds, about: 4 KiB of them, sorted in the L1 cache.
const BUCKET: usize = 512;
/// Most buckets (as bits): 4,096 places written at a time while spreading.
const MAX_BUCKET_BITS: u32 = 12;

/// The names read so far, each as a key (its hash's high bits, then its
/// index) and the byte offset where the text holds it.
#[derive(Debug, Default)]
pub(super) struct NameKeys {
    keys: Vec<u64>,
    at: Vec<u32>,
    /// Bits of the index: the low bits of a key.
    index_bits: u32,
}

impl NameKeys {
    /// Room for at most `max_names` names (a bound from the text's length).
    pub(super) fn for_at_most(max_names: usize) -> Self {
        let index_bits = (usize::BITS - max_names.leading_zeros()).clamp(1, 32);
        NameKeys { keys: Vec::new(), at: Vec::new(), index_bits }
    }

    /// Names kept.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Where the text holds name `index`.
    pub(super) fn at(&self, index: usize) -> Option<usize> {
        self.at.get(index).map(|&at| at as usize)
    }

    /// Keeps the next name, which the text holds at byte `at`; `false` if
    /// it cannot (no memory, or more names than it was made for).
    pub(super) fn push(&mut self, name: &str, at: usize) -> bool {
        let index = self.keys.len() as u64;
        let Ok(at) = u32::try_from(at) else { return false };
        if index >> self.index_bits != 0
            || self.keys.try_reserve(1).is_err()
            || self.at.try_reserve(1).is_err()
        {
            return false;
        }
        self.keys.push((hash(name.as_bytes()) & (u64::MAX << self.index_bits)) | index);
        self.at.push(at);
        true
    }

    /// Of the first `upto` names, the smallest index whose name equals an
    /// earlier one's; `read(at)` reads again the name the text holds at
    /// byte `at` (`None`: counted as unequal to every other).
    pub(super) fn first_repeat<'t>(
        &self,
        upto: usize,
        mut read: impl FnMut(usize) -> Option<Cow<'t, str>>,
    ) -> Result<Option<usize>, TryReserveError> {
        let keys = self.keys.get(..upto.min(self.keys.len())).unwrap_or_default();
        let n = keys.len();
        if n < 2 {
            return Ok(None);
        }
        // The buckets' bits are hash bits, above the index.
        let bits = (usize::BITS - (n / BUCKET).leading_zeros())
            .min(MAX_BUCKET_BITS)
            .min(64 - self.index_bits);
        let bucket = |k: u64| if bits == 0 { 0 } else { (k >> (64 - bits)) as usize };
        // Each bucket's count at its index + 1, then (summed) where each
        // bucket starts, then (as the keys are spread) where each ends.
        let mut next: Vec<usize> = Vec::new();
        next.try_reserve_exact((1 << bits) + 1)?;
        next.resize((1 << bits) + 1, 0);
        for &k in keys {
            if let Some(count) = next.get_mut(bucket(k) + 1) {
                *count += 1;
            }
        }
        let mut sum = 0;
        for at in next.iter_mut() {
            sum += *at;
            *at = sum;
        }
        let mut spread: Vec<u64> = Vec::new();
        spread.try_reserve_exact(n)?;
        spread.resize(n, 0);
        for &k in keys {
            if let Some(at) = next.get_mut(bucket(k)) {
                if let Some(slot) = spread.get_mut(*at) {
                    *slot = k;
                }
                *at += 1;
            }
        }
        let mut first = None;
        let mut from = 0;
        for &to in next.iter().take(1 << bits) {
            if let Some(keys) = spread.get_mut(from..to) {
                keys.sort_unstable();
                let found = self.first_in_bucket(keys, &mut read)?;
                first = min(first, found);
            }
            from = to;
        }
        Ok(first)
    }

    /// The first repeat among a sorted bucket's names: only names whose
    /// keys agree above the index (their hashes' high bits) are compared.
    fn first_in_bucket<'t>(
        &self,
        keys: &[u64],
        read: &mut impl FnMut(usize) -> Option<Cow<'t, str>>,
    ) -> Result<Option<usize>, TryReserveError> {
        let mut first = None;
        let mut rest = keys;
        while let Some(&k) = rest.first() {
            let high = k >> self.index_bits;
            let run = rest.iter().take_while(|&&o| o >> self.index_bits == high).count();
            let (same, after) = rest.split_at(run.min(rest.len()));
            if same.len() > 1 {
                first = min(first, self.first_in_run(same, read)?);
            }
            rest = after;
        }
        Ok(first)
    }

    /// The first repeat among names whose hashes agree: read again, sorted
    /// by (name, index), each name's second index is its first repeat.
    fn first_in_run<'t>(
        &self,
        keys: &[u64],
        read: &mut impl FnMut(usize) -> Option<Cow<'t, str>>,
    ) -> Result<Option<usize>, TryReserveError> {
        let mask = (1u64 << self.index_bits) - 1;
        let mut named: Vec<(Cow<'t, str>, usize)> = Vec::new();
        named.try_reserve_exact(keys.len())?;
        for &k in keys {
            let index = (k & mask) as usize;
            if let Some(name) = self.at.get(index).and_then(|&at| read(at as usize)) {
                named.push((name, index));
            }
        }
        // By (name, index) with the cold paths' heapsort (`core::order`): a
        // run is rare and short unless names were made to collide, and a
        // sort of its own type would be another 2.5 KB gzip of `.wasm`.
        let mut order: Vec<usize> = Vec::new();
        order.try_reserve_exact(named.len())?;
        order.extend(0..named.len());
        sort_indices(&mut order, &mut |a, b| named.get(a).cmp(&named.get(b)));
        Ok(order
            .windows(2)
            .filter_map(|w| match w {
                [a, b] => match (named.get(*a), named.get(*b)) {
                    (Some((x, _)), Some((y, later))) if x == y => Some(*later),
                    _ => None,
                },
                _ => None,
            })
            .min())
    }
}

fn min(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A name's hash: FxHash of its bytes, then murmur3's finaliser, so that
/// every input bit reaches the top bits the buckets are chosen by.
fn hash(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// What a set filled in order finds.
    fn oracle(names: &[String]) -> Option<usize> {
        let mut seen = HashSet::new();
        names.iter().position(|n| !seen.insert(n))
    }

    fn keys(names: &[String], index_bits: u32) -> NameKeys {
        let mut k = NameKeys { index_bits, ..NameKeys::default() };
        for (i, n) in names.iter().enumerate() {
            assert!(k.push(n, i));
        }
        k
    }

    #[test]
    fn finds_the_first_repeat_in_any_order_and_size() {
        let mut x: u64 = 7;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for size in [0usize, 1, 2, 3, 10, 600, 5_000, 40_000] {
            for distinct in [size.max(1) as u64, (size as u64 / 2).max(1), size as u64 * 50 + 1] {
                let names: Vec<String> =
                    (0..size).map(|_| format!("g{}", next(distinct))).collect();
                let k = NameKeys::for_at_most(size);
                let k = keys(&names, k.index_bits);
                let read = |at: usize| names.get(at).map(|s| Cow::Borrowed(s.as_str()));
                for upto in [size, size / 2, size + 1] {
                    let cut = &names[..upto.min(size)];
                    assert_eq!(k.first_repeat(upto, read), Ok(oracle(cut)), "{size} {distinct}");
                }
            }
        }
    }

    #[test]
    fn hashes_that_agree_are_told_apart_by_the_names() {
        // 62 index bits leave two of hash: most names share them.
        let names: Vec<String> = (0..3_000).map(|i| format!("n{}", (i * 7) % 2_999)).collect();
        let k = keys(&names, 62);
        let read = |at: usize| names.get(at).map(|s| Cow::Borrowed(s.as_str()));
        assert_eq!(k.first_repeat(names.len(), read), Ok(oracle(&names)));
        let distinct: Vec<String> = (0..3_000).map(|i| format!("n{i}")).collect();
        let k = keys(&distinct, 62);
        let read = |at: usize| distinct.get(at).map(|s| Cow::Borrowed(s.as_str()));
        assert_eq!(k.first_repeat(distinct.len(), read), Ok(None));
    }

    #[test]
    fn refuses_names_past_its_room() {
        let mut k = NameKeys::for_at_most(1);
        assert!(k.push("a", 0) && k.push("b", 1));
        assert!(!k.push("c", 2), "three names in one bit of index");
    }
}
