//! Seeded random numbers, reproducible across machines and platforms.
//!
//! The generator is documented in full so that another implementation (the fixture scripts,
//! a CUDA port) can reproduce its streams bit for bit. It is *not* PyTorch's generator
//! (Mersenne Twister / Philox): fixtures pass tensors explicitly instead.
//!
//! # Algorithms
//!
//! - **Seeding: SplitMix64** (Steele, Lea & Flood, 2014; as recommended by Blackman & Vigna).
//!   With a 64-bit counter `s` starting at the seed, each output is
//!   `s += 0x9E3779B97F4A7C15; z = s; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;`
//!   `z = (z ^ (z >> 27)) * 0x94D049BB133111EB; z ^ (z >> 31)` (wrapping arithmetic).
//!   Its first four outputs are the xoshiro state `s[0..4]`; being distinct outputs of a
//!   bijection, at most one is zero, so the state is never all zeros.
//! - **Stream: xoshiro256\*\*** (Blackman & Vigna, "Scrambled linear pseudorandom number
//!   generators", ACM TOMS 47(4), 2021; <https://prng.di.unimi.it/>). Output
//!   `rotl(s[1] * 5, 7) * 9`, then `t = s[1] << 17; s[2] ^= s[0]; s[3] ^= s[1];`
//!   `s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45)`.
//! - **Uniform f64**: `(x >> 11) as f64 * 2^-53`, the top 53 bits, in `[0, 1)`.
//! - **Normal**: the basic (trigonometric) Box–Muller transform, see [`Rng::normal`].
//! - **Integers below n**: Lemire's multiply-and-reject method, see [`Rng::below`].
//!
//! Transcendental functions come from the `libm` crate (a pure Rust port of musl), never
//! from the platform's C library, so every machine computes the same bits.

use crate::backend::Backend;
use crate::dtype::DType;
use crate::{HostBuffer, Result, Tensor};
use alloc::vec::Vec;
use core::f64::consts::{PI, SQRT_2};

/// SplitMix64's increment (the golden ratio in 64-bit fixed point).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// One SplitMix64 step: advances `s` and returns the mixed output.
fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(GOLDEN_GAMMA);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small, documented generator (PyTorch: `torch.Generator`): xoshiro256\*\* seeded by
/// SplitMix64 (see the module docs). Cloning copies the state, so a clone replays the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Rng {
    state: [u64; 4],
    /// The second Box–Muller value, returned by the next [`Rng::normal`] call.
    cached_normal: Option<f64>,
}

impl Rng {
    /// A generator seeded from one `u64` (every seed, 0 included, is fine).
    pub fn new(seed: u64) -> Self {
        let mut s = seed;
        let state = [
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
        ];
        Rng {
            state,
            cached_normal: None,
        }
    }

    /// An independent generator for a sub-task (a data-loader worker, one augmentation),
    /// seeded with this generator's next `u64`: `Rng::new(self.next_u64())`. Advances `self`
    /// by one output, so forking is itself reproducible.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// The next 64 random bits (one xoshiro256\*\* step).
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits: `(next_u64() >> 11) * 2^-53`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in the open interval `(0, 1)`: `((next_u64() >> 11) + 0.5) * 2^-53`, the
    /// midpoint of each of the 2^53 cells, so that neither 0 nor 1 can come out.
    fn next_f64_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal sample, by the basic Box–Muller transform. Each pair of calls
    /// draws `u1 = 1 - next_f64()` (in `(0, 1]`, so the log is finite) then
    /// `u2 = next_f64()`, sets `r = sqrt(-2 ln u1)` and `θ = 2π u2`, returns `r cos θ` and
    /// caches `r sin θ`; the next call returns the cached value without drawing. The cache
    /// is part of the state (cloned and compared with it); other draws in between do not
    /// clear it.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.cached_normal.take() {
            return z;
        }
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let theta = 2.0 * PI * u2;
        self.cached_normal = Some(r * libm::sin(theta));
        r * libm::cos(theta)
    }

    /// A uniform integer in `0..n`, without bias, by Lemire's method ("Fast random integer
    /// generation in an interval", ACM TOMS 2019): `m = x * n` as a 128-bit product; if its
    /// low half is below `2^64 mod n` the draw is rejected and repeated; the answer is the
    /// high half. `n = 0` (an empty range) returns 0 without drawing, so that
    /// `lo + below(hi - lo)` stays at `lo` instead of panicking.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n; // 2^64 mod n
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniform random permutation of `0..n` by Fisher–Yates: starting from the identity,
    /// for `i` from `n-1` down to 1, swap entry `i` with entry `below(i + 1)`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }

    /// A normal sample of `mean`, `std` truncated to `[a, b]` by the inverse CDF, one
    /// open uniform per sample (see [`Tensor::trunc_normal`]).
    fn trunc_normal(&mut self, mean: f64, std: f64, a: f64, b: f64) -> f64 {
        if std == 0.0 {
            return mean.clamp(a, b);
        }
        let (alpha, beta) = ((a - mean) / std, (b - mean) / std);
        // Work in whichever tail keeps the CDF values small: near 1, doubles lose the
        // resolution that upper-tail intervals need. (-β, -α) is the mirror image.
        let flip = alpha + beta > 0.0;
        let (lo, hi) = if flip { (-beta, -alpha) } else { (alpha, beta) };
        let (plo, phi) = (normal_cdf(lo), normal_cdf(hi));
        let u = plo + (phi - plo) * self.next_f64_open();
        let z = normal_quantile(u).clamp(lo, hi);
        let z = if flip { -z } else { z };
        // Rounding can still step just outside; the bounds are a promise.
        (mean + std * z).clamp(a, b)
    }
}

/// The standard normal CDF Φ(z) = erfc(-z/√2) / 2 (accurate in the lower tail).
fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / SQRT_2)
}

/// The standard normal quantile Φ⁻¹(p) for `p` in `[0, 1]`: P. J. Acklam's rational
/// approximation (relative error 1.15e-9) refined by two Halley steps on [`normal_cdf`] to
/// about double precision.
fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p > 0.5 {
        // Φ⁻¹(p) = -Φ⁻¹(1-p); 1-p is exact here (Sterbenz), and the refinement below is
        // only accurate where Φ is small, so the upper half is mapped to the lower.
        return -normal_quantile(1.0 - p);
    }
    // Acklam's coefficients, as published.
    #[rustfmt::skip]
    const A: [f64; 6] = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2,
        1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
    #[rustfmt::skip]
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2,
        6.680131188771972e1, -1.328068155288572e1];
    #[rustfmt::skip]
    const C: [f64; 6] = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838,
        -2.549732539343734, 4.374664141464968, 2.938163982698783];
    #[rustfmt::skip]
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996,
        3.754408661907416];
    const P_LOW: f64 = 0.02425;
    let mut x = if p < P_LOW {
        let q = libm::sqrt(-2.0 * libm::log(p));
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    for _ in 0..2 {
        let e = normal_cdf(x) - p;
        let u = e * libm::sqrt(2.0 * PI) * libm::exp(x * x / 2.0);
        let step = u / (1.0 + x * u / 2.0);
        if step.is_finite() {
            x -= step;
        }
    }
    x
}

/// Checks the dtype and that every named parameter is finite.
fn check_params(op: &'static str, dtype: DType, params: &[(&str, f64)]) -> Result<()> {
    if !dtype.is_float() {
        return Err(crate::Error::DType {
            op,
            msg: crate::__format!("random samples need a float dtype, got {dtype}"),
        });
    }
    for &(name, v) in params {
        if !v.is_finite() {
            return Err(crate::arg_err!(op, "{name} must be finite, got {v}"));
        }
    }
    Ok(())
}

impl<B: Backend> Tensor<B> {
    /// `n` samples drawn in f64 on the host, rounded to `dtype` and uploaded.
    fn from_samples(
        op: &'static str,
        shape: &[usize],
        dtype: DType,
        backend: &B,
        mut sample: impl FnMut() -> f64,
    ) -> Result<Self> {
        let n = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| crate::shape_err!(op, "shape {shape:?} has too many elements"))?;
        let v: Vec<f64> = (0..n).map(|_| sample()).collect();
        Self::from_host(HostBuffer::F64(v).cast(dtype), shape, backend)
    }

    /// Uniform samples in `[low, high)`: `low + (high - low) * next_f64()` per element, in
    /// row-major order (PyTorch: `torch.empty(shape).uniform_(low, high)`). Rounding to a
    /// narrower dtype can yield `high` itself, as in PyTorch. `low <= high`, both finite.
    pub fn rand_uniform(
        shape: &[usize],
        low: f64,
        high: f64,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        let op = "rand_uniform";
        check_params(op, dtype, &[("low", low), ("high", high)])?;
        if low > high {
            return Err(crate::arg_err!(op, "low {low} is greater than high {high}"));
        }
        Self::from_samples(op, shape, dtype, backend, || {
            low + (high - low) * rng.next_f64()
        })
    }

    /// Normal samples `mean + std * rng.normal()`, row-major (PyTorch: `torch.normal(mean,
    /// std, shape)`). `std >= 0` (0 gives `mean` everywhere), both finite.
    pub fn randn(
        shape: &[usize],
        mean: f64,
        std: f64,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        let op = "randn";
        check_params(op, dtype, &[("mean", mean), ("std", std)])?;
        if std < 0.0 {
            return Err(crate::arg_err!(op, "std must be >= 0, got {std}"));
        }
        Self::from_samples(op, shape, dtype, backend, || mean + std * rng.normal())
    }

    /// Normal samples truncated to `[a, b]` (absolute bounds, as `nn.init.trunc_normal_`;
    /// DINO calls it with `std = 0.02, a = -2, b = 2`). Method: inverse-CDF sampling, as
    /// PyTorch does, which uses exactly one uniform per element however narrow the interval:
    /// with `α = (a-mean)/std`, `β = (b-mean)/std`, draw `u` uniform in `(Φ(α), Φ(β))` (the
    /// open uniform `((x >> 11) + 0.5) * 2^-53`) and return `mean + std * Φ⁻¹(u)`, clamped
    /// to `[a, b]`. When `α + β > 0` the mirrored interval `(-β, -α)` is sampled and the
    /// result negated, which keeps precision in upper tails. `a < b` is required (infinite
    /// bounds are fine); `std >= 0`, and `std = 0` gives `mean` clamped to `[a, b]`.
    #[allow(clippy::too_many_arguments)]
    pub fn trunc_normal(
        shape: &[usize],
        mean: f64,
        std: f64,
        a: f64,
        b: f64,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        let op = "trunc_normal";
        check_params(op, dtype, &[("mean", mean), ("std", std)])?;
        // Written so that NaN bounds fail too.
        if a.partial_cmp(&b) != Some(core::cmp::Ordering::Less) {
            return Err(crate::arg_err!(op, "needs a < b, got a = {a}, b = {b}"));
        }
        if std < 0.0 {
            return Err(crate::arg_err!(op, "std must be >= 0, got {std}"));
        }
        Self::from_samples(op, shape, dtype, backend, || {
            rng.trunc_normal(mean, std, a, b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cpu, Error};

    #[test]
    fn splitmix64_reference_vector() {
        // The published SplitMix64 outputs for seed 1234567.
        let mut s = 1234567u64;
        let out = [splitmix64(&mut s), splitmix64(&mut s), splitmix64(&mut s)];
        assert_eq!(
            out,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn xoshiro256starstar_reference_vector() {
        // The reference implementation's outputs from state [1, 2, 3, 4].
        let mut r = Rng {
            state: [1, 2, 3, 4],
            cached_normal: None,
        };
        let out: Vec<u64> = (0..6).map(|_| r.next_u64()).collect();
        #[rustfmt::skip]
        let want = [11520, 0, 1509978240, 1215971899390074240, 1216172134540287360,
            607988272756665600];
        assert_eq!(out, want);
    }

    /// Pins the stream of `Rng::new(42)`: changing any algorithm or constant breaks this.
    #[test]
    fn seed_42_stream_is_pinned() {
        let mut r = Rng::new(42);
        let u: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        #[rustfmt::skip]
        let want = [0x15780b2e0c2ec716, 0x6104d9866d113a7e, 0xae17533239e499a1, 0xecb8ad4703b360a1];
        assert_eq!(u, want);
        let mut r = Rng::new(42);
        let f: Vec<f64> = (0..3).map(|_| r.next_f64()).collect();
        assert_eq!(
            f,
            [0.08386297105988216, 0.3789802506626686, 0.6800434110281394]
        );
        let mut r = Rng::new(42);
        #[rustfmt::skip]
        let want = [-0.303263064678738, 0.28846173882942383, 1.3438117634372806, -0.6879751798977497];
        for e in want {
            let z = r.normal();
            assert!((z - e).abs() <= 1e-15, "{z} != {e}");
        }
        assert_eq!(Rng::new(42).permutation(10), [9, 1, 4, 2, 8, 7, 6, 5, 3, 0]);
        let mut r = Rng::new(42);
        let b: Vec<u64> = (0..8).map(|_| r.below(6)).collect();
        assert_eq!(b, [0, 2, 4, 5, 5, 4, 4, 5]);
        assert_eq!(Rng::new(0).next_u64(), 0x99ec5f36cb75f2b4);
    }

    #[test]
    fn integers_permutations_and_forks() {
        let mut r = Rng::new(7);
        assert_eq!(r.below(0), 0);
        let big = u64::MAX - 1;
        assert!((0..1000).all(|_| r.below(1) == 0 && r.below(3) < 3 && r.below(big) < big));
        let mut p = r.permutation(100);
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
        assert!(r.permutation(0).is_empty());
        // A fork is reproducible and differs from its parent.
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        let (mut fa, mut fb) = (a.fork(), b.fork());
        assert_eq!(fa.next_u64(), fb.next_u64());
        assert_eq!(a, b);
        assert_ne!(a.next_u64(), fa.next_u64());
    }

    #[test]
    fn quantile_matches_torch_ndtri() {
        // torch.special.ndtri in float64.
        #[rustfmt::skip]
        let cases = [(1e-300, -37.0470962993612), (1e-10, -6.361340902404056),
            (0.01, -2.3263478740408408), (0.3, -0.5244005127080409), (0.5, 0.0),
            (0.975, 1.959963984540054), (1.0 - 1e-12, 7.0344869100478356)];
        for (p, z) in cases {
            let q = normal_quantile(p);
            assert!((q - z).abs() <= 1e-12 * z.abs().max(1.0), "{p}: {q} != {z}");
        }
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
    }

    fn mean_std(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, libm::sqrt(var))
    }

    #[test]
    fn tensors_follow_the_stream() {
        let mut r = Rng::new(42);
        let t = Tensor::rand_uniform(&[2, 2], -1.0, 1.0, DType::F64, &mut r, &Cpu).unwrap();
        let mut r2 = Rng::new(42);
        let expect: Vec<f64> = (0..4).map(|_| -1.0 + 2.0 * r2.next_f64()).collect();
        assert_eq!(t.to_vec::<f64>().unwrap(), expect);
        assert_eq!(r, r2);
        let t = Tensor::rand_uniform(&[1000], 2.0, 3.0, DType::BF16, &mut r, &Cpu).unwrap();
        assert_eq!(t.dtype(), DType::BF16);
        let v = t.to_f64_vec().unwrap();
        assert!(v.iter().all(|&x| (2.0..=3.0).contains(&x)));
        let n = Tensor::randn(&[20000], 1.0, 2.0, DType::F32, &mut r, &Cpu).unwrap();
        let (m, s) = mean_std(&n.to_f64_vec().unwrap());
        assert!((m - 1.0).abs() < 0.05 && (s - 2.0).abs() < 0.05, "{m} {s}");
        let z = Tensor::randn(&[3], 4.0, 0.0, DType::F16, &mut r, &Cpu).unwrap();
        assert_eq!(z.to_f64_vec().unwrap(), [4.0; 3]);
        let e = Tensor::randn(&[0, 3], 0.0, 1.0, DType::F32, &mut r, &Cpu).unwrap();
        assert_eq!(e.shape(), &[0, 3]);
    }

    #[test]
    fn trunc_normal_stays_in_bounds() {
        let mut r = Rng::new(1);
        // DINO's ViT init: std 0.02, absolute bounds [-2, 2] (no truncation in practice).
        let t =
            Tensor::trunc_normal(&[20000], 0.0, 0.02, -2.0, 2.0, DType::F32, &mut r, &Cpu).unwrap();
        let (m, s) = mean_std(&t.to_f64_vec().unwrap());
        assert!(m.abs() < 1e-3 && (s - 0.02).abs() < 1e-3, "{m} {s}");
        // A standard normal on [-1, 2]: mean (φ(-1) - φ(2)) / (Φ(2) - Φ(-1)) = 0.22964.
        let t =
            Tensor::trunc_normal(&[20000], 0.0, 1.0, -1.0, 2.0, DType::F64, &mut r, &Cpu).unwrap();
        let v = t.to_f64_vec().unwrap();
        assert!(v.iter().all(|&x| (-1.0..=2.0).contains(&x)));
        let (m, _) = mean_std(&v);
        assert!((m - 0.22964).abs() < 0.02, "{m}");
        // Far tails on both sides, where rejection sampling would never finish.
        for (a, b) in [(10.0, 10.5), (-10.5, -10.0), (f64::NEG_INFINITY, -9.0)] {
            let t = Tensor::trunc_normal(&[100], 0.0, 1.0, a, b, DType::F64, &mut r, &Cpu).unwrap();
            assert!(t.to_f64_vec().unwrap().iter().all(|&x| x >= a && x <= b));
        }
        let c = Tensor::trunc_normal(&[2], 5.0, 0.0, -1.0, 1.0, DType::F32, &mut r, &Cpu);
        assert_eq!(c.unwrap().to_f64_vec().unwrap(), [1.0, 1.0]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut r = Rng::new(0);
        let before = r.clone();
        let cases = [
            Tensor::<Cpu>::trunc_normal(&[2], 0.0, 1.0, 1.0, 1.0, DType::F32, &mut r, &Cpu),
            Tensor::trunc_normal(&[2], 0.0, 1.0, f64::NAN, 1.0, DType::F32, &mut r, &Cpu),
            Tensor::trunc_normal(&[2], 0.0, -1.0, -1.0, 1.0, DType::F32, &mut r, &Cpu),
            Tensor::randn(&[2], 0.0, -0.5, DType::F32, &mut r, &Cpu),
            Tensor::randn(&[2], f64::INFINITY, 1.0, DType::F32, &mut r, &Cpu),
            Tensor::rand_uniform(&[2], 1.0, 0.0, DType::F32, &mut r, &Cpu),
            Tensor::rand_uniform(&[usize::MAX, 2], 0.0, 1.0, DType::F32, &mut r, &Cpu),
        ];
        for c in cases {
            assert!(matches!(
                c.unwrap_err(),
                Error::Argument { .. } | Error::Shape { .. }
            ));
        }
        let e = Tensor::<Cpu>::randn(&[2], 0.0, 1.0, DType::I64, &mut r, &Cpu).unwrap_err();
        assert!(matches!(e, Error::DType { op: "randn", .. }));
        // Failed calls draw nothing.
        assert_eq!(r, before);
    }
}
