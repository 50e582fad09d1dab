//! The reference: a view's elements computed one by one with checked arithmetic, and random
//! (often adversarial) layouts to feed the code under test.

use proptest::prelude::*;

/// A raw layout: shape, strides (same rank, or not) and offset.
#[derive(Clone, Debug)]
pub(crate) struct Raw {
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

/// Above this many elements the reference does not enumerate a view (the proptests also set
/// a memory limit that refuses outputs this large).
pub(crate) const MAX_ENUM: usize = 1 << 12;

/// What reading a view of a storage of `len` elements must give.
#[derive(Debug, PartialEq)]
pub(crate) enum Naive {
    /// The storage offsets of the elements, row-major.
    Offsets(Vec<usize>),
    /// Some element lies outside the storage, or an offset overflows.
    OutOfBounds,
    /// Too many elements to enumerate (in bounds or not).
    Unknown,
}

/// The row-major multi-indices of a shape (the caller keeps the count small).
pub(crate) fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0; shape.len()];
    for _ in 0..n {
        out.push(idx.clone());
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// The rule `Layout` documents: the product of the non-zero dims fits in `usize`.
pub(crate) fn valid_shape(shape: &[usize]) -> bool {
    shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .is_some()
}

/// The offsets of every element of `raw` in a storage of `len` elements.
pub(crate) fn offsets(raw: &Raw, len: usize) -> Naive {
    if raw.shape.len() != raw.strides.len() {
        return Naive::OutOfBounds;
    }
    // A shape is too large if the product of its non-zero dims overflows, even when a zero
    // dim makes it empty (the rule `Layout` documents).
    let nonzero = raw
        .shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    let n = match nonzero {
        None => return Naive::OutOfBounds,
        Some(_) if raw.shape.contains(&0) => return Naive::Offsets(vec![]),
        Some(n) if n > MAX_ENUM => return Naive::Unknown,
        Some(n) => n,
    };
    let mut out = Vec::with_capacity(n);
    for idx in indices(&raw.shape) {
        let mut o = Some(raw.offset);
        for (i, s) in idx.iter().zip(&raw.strides) {
            o = o.and_then(|o| o.checked_add(i.checked_mul(*s)?));
        }
        match o {
            Some(o) if o < len => out.push(o),
            _ => return Naive::OutOfBounds,
        }
    }
    Naive::Offsets(out)
}

/// A dim: mostly small, sometimes zero, sometimes huge.
pub(crate) fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 1usize..4,
        1 => Just(0),
        1 => prop::sample::select(vec![1 << 31, 1 << 33, usize::MAX / 2, usize::MAX]),
    ]
}

/// A stride: mostly small (0 included), sometimes near `usize::MAX`.
pub(crate) fn stride() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..6,
        1 => prop::sample::select(vec![
            1 << 62,
            isize::MAX as usize,
            isize::MAX as usize + 1,
            usize::MAX / 3,
            usize::MAX - 1,
            usize::MAX,
        ]),
    ]
}

/// An offset: mostly small, sometimes near `usize::MAX`.
pub(crate) fn offset() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..8,
        1 => prop::sample::select(vec![1 << 62, usize::MAX - 8, usize::MAX]),
    ]
}

/// Random strides and offset for a given shape; rarely a rank mismatch.
pub(crate) fn strides_for(shape: Vec<usize>) -> impl Strategy<Value = Raw> {
    let r = shape.len();
    (
        prop_oneof![20 => Just(r), 1 => Just(r + 1)],
        prop::collection::vec(stride(), r + 1),
        offset(),
    )
        .prop_map(move |(sr, s, o)| Raw {
            shape: shape.clone(),
            strides: s[..sr].to_vec(),
            offset: o,
        })
}

/// A raw layout of rank 0..=4.
pub(crate) fn raw() -> impl Strategy<Value = Raw> {
    prop::collection::vec(dim(), 0..=4).prop_flat_map(strides_for)
}

/// A storage of `len` distinct f64 values (so that a wrong offset shows).
pub(crate) fn data(len: usize) -> Vec<f64> {
    (0..len).map(|i| i as f64 * 0.5 + 1.0).collect()
}
