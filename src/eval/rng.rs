//! A small seeded random source for the corpus generator: the core's
//! SplitMix64, with uniform, normal (Box–Muller) and Student-t draws on top.
//! Self-contained so the corpus for a seed never changes with a dependency's
//! version.

use crate::core::session::rng::SplitMix64;

/// SplitMix64 (Steele, Lea, Flood 2014) and the draws the corpus needs.
#[derive(Clone, Debug)]
pub struct Rng {
    bits: SplitMix64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { bits: SplitMix64::new(seed) }
    }

    /// A new independent stream derived from this seed and `tag` (one per series).
    pub fn fork(seed: u64, tag: u64) -> Rng {
        let mut r = Rng::new(seed ^ tag.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.bits.next_u64()
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Student-t with `df` degrees of freedom (df ≥ 3), scaled to unit variance.
    pub fn student_t(&mut self, df: u32) -> f64 {
        let z = self.normal();
        let chi2: f64 = (0..df).map(|_| self.normal().powi(2)).sum();
        let t = z / (chi2 / f64::from(df)).sqrt();
        t / (f64::from(df) / (f64::from(df) - 2.0)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::fork(7, 3), Rng::fork(7, 3));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::fork(7, 3).next_u64(), Rng::fork(7, 4).next_u64());
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "{mean} {var}");
        let ts: Vec<f64> = (0..n).map(|_| r.student_t(3)).collect();
        let var_t = ts.iter().map(|x| x * x).sum::<f64>() / n as f64;
        assert!((var_t - 1.0).abs() < 0.3, "{var_t}");
    }
}
