//! Test data: a deterministic value stream, contiguous and transposed tensors, random views.

use crate::T;
use proptest::prelude::*;
use tessera_tensor::{Cpu, Tensor};

/// SplitMix64: a tiny deterministic stream for test data (independent of `Rng`).
pub(crate) struct Mix(pub(crate) u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A multiple of 1/16 in [-2, 2).
    fn value(&mut self) -> f64 {
        (self.next() % 64) as f64 / 16.0 - 2.0
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub(crate) fn contiguous(shape: &[usize], seed: u64) -> T {
    let mut m = Mix(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| m.value()).collect::<Vec<f64>>(), shape, &Cpu).unwrap()
}

/// A non-contiguous tensor of `shape`: a contiguous one of the reversed shape, transposed.
pub(crate) fn transposed_of(shape: &[usize], seed: u64) -> T {
    let rev: Vec<usize> = shape.iter().rev().copied().collect();
    let perm: Vec<usize> = (0..shape.len()).rev().collect();
    contiguous(&rev, seed).permute(&perm).unwrap()
}

/// A random view: slices with steps, narrowed-then-broadcast dims, then a permutation.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    base: Vec<usize>,
    slices: Vec<(usize, usize)>,
    expand: Vec<Option<usize>>,
    perm: Vec<usize>,
    seed: u64,
}

fn spec_of_rank(lo: usize, hi: usize) -> impl Strategy<Value = Spec> {
    (lo..=hi)
        .prop_flat_map(|r| {
            (
                prop::collection::vec(1usize..=5, r),
                prop::collection::vec((0usize..2, 1usize..=3), r),
                prop::collection::vec(prop::option::weighted(0.2, 1usize..=3), r),
                Just((0..r).collect::<Vec<usize>>()).prop_shuffle(),
                any::<u64>(),
            )
        })
        .prop_map(|(base, slices, expand, perm, seed)| Spec {
            base,
            slices,
            expand,
            perm,
            seed,
        })
}

pub(crate) fn spec() -> impl Strategy<Value = Spec> {
    spec_of_rank(1, 4)
}

impl Spec {
    pub(crate) fn build(&self) -> T {
        // Room around each dim so that the view starts at a non-zero offset, has gaps
        // (steps) and still has exactly the base's dims.
        let big: Vec<usize> = self
            .base
            .iter()
            .zip(&self.slices)
            .map(|(d, (_, st))| d * st + 3)
            .collect();
        let mut v = contiguous(&big, self.seed);
        for (i, (&d, &(s, st))) in self.base.iter().zip(&self.slices).enumerate() {
            let start = 1 + s % 2;
            v = v
                .slice(i as isize, start, start + d * st - (st - 1), st)
                .unwrap();
            assert_eq!(v.shape()[i], d);
        }
        let mut target = v.shape().to_vec();
        for (i, e) in self.expand.iter().enumerate() {
            if let Some(e) = *e {
                let d = v.shape()[i];
                v = v.narrow(i as isize, self.seed as usize % d, 1).unwrap();
                target[i] = e;
            }
        }
        v.broadcast_to(&target)
            .unwrap()
            .permute(&self.perm)
            .unwrap()
    }
}
