//! Input values: the seeded [`Gen`], the [`Domain`]s values come from, tensor constructors.

use super::T;
use tessera::tensor::Cpu;

/// A small seeded generator (splitmix64): inputs are a pure function of their seed, so a
/// failing case printed by proptest can be rebuilt exactly.
#[derive(Clone, Debug)]
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

/// Where input values come from. Finite differences use a step of 1e-6, so every domain
/// keeps at least 1e-2 between a value and the nearest kink, pole or tie.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// Uniform in `[-2, 2)`.
    Any,
    /// Uniform in `[lo, hi)`.
    Range(f64, f64),
    /// `|x|` uniform in `[0.05, 2)` with a random sign (abs, relu, recip...).
    AwayFromZero,
    /// Uniform in `[-2, 2)` but at least 0.05 from each of the given points (clamp bounds).
    Avoid(Vec<f64>),
    /// Pairwise distinct values evenly spread over about `[-2, 2]` in random order (max/min
    /// reductions, max pooling): no ties within one tensor.
    Distinct,
    /// `offset + 0.1 k` for random integers `k` in `[-20, 20]`: two tensors whose offsets
    /// differ by 0.05 never tie (maximum/minimum).
    Lattice(f64),
}

impl Domain {
    /// `n` values.
    pub fn sample(&self, n: usize, g: &mut Gen) -> Vec<f64> {
        match self {
            Domain::Any => (0..n).map(|_| g.uniform(-2.0, 2.0)).collect(),
            Domain::Range(lo, hi) => (0..n).map(|_| g.uniform(*lo, *hi)).collect(),
            Domain::AwayFromZero => (0..n)
                .map(|_| {
                    let m = g.uniform(0.05, 2.0);
                    if g.coin() {
                        m
                    } else {
                        -m
                    }
                })
                .collect(),
            Domain::Avoid(points) => (0..n)
                .map(|_| loop {
                    let x = g.uniform(-2.0, 2.0);
                    if points.iter().all(|p| (x - p).abs() >= 0.05) {
                        break x;
                    }
                })
                .collect(),
            Domain::Distinct => {
                let step = (4.0 / n as f64).min(0.25);
                let shift = g.uniform(-0.5, 0.5) * step;
                g.permutation(n)
                    .into_iter()
                    .map(|k| (k as f64 - n as f64 / 2.0) * step + shift)
                    .collect()
            }
            Domain::Lattice(offset) => (0..n)
                .map(|_| offset + 0.1 * (g.below(41) as f64 - 20.0))
                .collect(),
        }
    }
}

/// A contiguous F64 tensor.
pub fn tensor(values: Vec<f64>, shape: &[usize]) -> T {
    T::from_vec(values, shape, &Cpu).expect("tensor")
}

/// A contiguous F64 tensor of `shape` with values from `domain`.
pub fn random(shape: &[usize], domain: &Domain, seed: u64) -> T {
    let n = shape.iter().product();
    tensor(domain.sample(n, &mut Gen::new(seed)), shape)
}

/// An I64 tensor.
pub fn indices(values: Vec<i64>, shape: &[usize]) -> T {
    T::from_vec(values, shape, &Cpu).expect("index tensor")
}
