//! Input layouts: [`Layout`], [`Input`] and the transposed/strided/expanded builders.

use super::values::{tensor, Domain, Gen};
use super::{T, V};
use std::fmt;
use tessera::tensor::Result;

/// How an input is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row-major.
    Contiguous,
    /// Stored with its dims reversed and permuted back (for rank 2, `.t()` of a contiguous
    /// buffer); rank <= 1 falls back to `Strided`.
    Transposed,
    /// Every other element of the last dim, behind an offset along the first dim, with NaN in
    /// every element of the buffer the view skips.
    Strided,
    /// A smaller contiguous leaf (some dims 1, maybe fewer dims) that the function under
    /// test sees through `broadcast_to`: checks the op on stride-0 operands and the
    /// broadcast's gradient reduction.
    Expanded,
}

pub const ALL_LAYOUTS: [Layout; 4] = [
    Layout::Contiguous,
    Layout::Transposed,
    Layout::Strided,
    Layout::Expanded,
];

/// Layouts that keep the input's own elements independent (no `Expanded`), for arguments
/// whose values must stay distinct or whose shape the op constrains exactly.
pub const DENSE_LAYOUTS: [Layout; 3] = [Layout::Contiguous, Layout::Transposed, Layout::Strided];

/// One argument of a function under test.
#[derive(Clone)]
pub struct Input {
    /// What `gradcheck` perturbs and differentiates (never a broadcast view).
    pub leaf: T,
    /// The shape the function sees (the leaf's, except for `Expanded`).
    pub shape: Vec<usize>,
    pub layout: Layout,
}

impl From<T> for Input {
    /// A tensor used as it is.
    fn from(t: T) -> Input {
        let layout = if t.is_contiguous() {
            Layout::Contiguous
        } else {
            Layout::Strided
        };
        Input {
            shape: t.shape().to_vec(),
            leaf: t,
            layout,
        }
    }
}

impl Input {
    /// A contiguous input with values from `domain`.
    pub fn new(shape: &[usize], domain: Domain, seed: u64) -> Input {
        Input::build(shape, Layout::Contiguous, &domain, seed)
    }

    /// An input of `shape` (as the function sees it) in `layout`, values from `domain`.
    pub fn build(shape: &[usize], layout: Layout, domain: &Domain, seed: u64) -> Input {
        let mut g = Gen::new(seed);
        let rank = shape.len();
        let layout = match layout {
            _ if rank == 0 => Layout::Contiguous,
            Layout::Transposed if rank == 1 => Layout::Strided,
            l => l,
        };
        let leaf = match layout {
            Layout::Contiguous => tensor(domain.sample(numel(shape), &mut g), shape),
            Layout::Transposed => transposed(&domain.sample(numel(shape), &mut g), shape),
            Layout::Strided => strided(&domain.sample(numel(shape), &mut g), shape),
            Layout::Expanded => {
                let small = shrink_for_broadcast(shape, &mut g);
                tensor(domain.sample(numel(&small), &mut g), &small)
            }
        };
        Input {
            leaf,
            shape: shape.to_vec(),
            layout,
        }
    }

    /// The value the function under test receives for this input's leaf.
    pub fn view(&self, leaf: &V) -> Result<V> {
        match self.layout {
            Layout::Expanded => leaf.broadcast_to(&self.shape),
            _ => Ok(leaf.clone()),
        }
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.leaf.layout();
        write!(f, "{:?} {:?}", self.shape, self.layout)?;
        if self.layout == Layout::Expanded {
            write!(f, " from leaf {:?}", self.leaf.shape())?;
        }
        write!(f, " (strides {:?}, offset {}) ", l.strides(), l.offset())?;
        match self.leaf.to_f64_vec() {
            Ok(v) if v.len() <= 24 => write!(f, "{v:?}"),
            Ok(v) => write!(f, "{:?} .. ({} values)", &v[..24], v.len()),
            Err(e) => write!(f, "<{e}>"),
        }
    }
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major multi-index of a flat position.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// `values` (row-major for `shape`) stored with the dims reversed, viewed back with
/// `permute`: every stride is "wrong way round".
pub fn transposed(values: &[f64], shape: &[usize]) -> T {
    let rank = shape.len();
    let rev: Vec<usize> = shape.iter().rev().copied().collect();
    let mut buf = vec![0.0; values.len()];
    for (flat, &v) in values.iter().enumerate() {
        let mut idx = unravel(flat, shape);
        idx.reverse();
        buf[ravel(&idx, &rev)] = v;
    }
    let perm: Vec<usize> = (0..rank).rev().collect();
    let t = tensor(buf, &rev).permute(&perm).expect("permute");
    debug_assert_eq!(t.to_f64_vec().unwrap(), values);
    t
}

/// `values` at the odd positions of a last dim of `2n + 1`, behind one slab of NaN along the
/// first dim (rank >= 2): a non-zero offset and a step-2 stride, with NaN wherever a kernel
/// that ignores the layout would read.
pub fn strided(values: &[f64], shape: &[usize]) -> T {
    let rank = shape.len();
    let mut big = shape.to_vec();
    big[rank - 1] = 2 * shape[rank - 1] + 1;
    let lead = usize::from(rank >= 2);
    big[0] += lead;
    let mut buf = vec![f64::NAN; numel(&big)];
    for (flat, &v) in values.iter().enumerate() {
        let mut idx = unravel(flat, shape);
        idx[rank - 1] = 2 * idx[rank - 1] + 1;
        idx[0] += lead;
        buf[ravel(&idx, &big)] = v;
    }
    let mut t = tensor(buf, &big)
        .slice(-1, 1, big[rank - 1], 2)
        .expect("slice");
    if lead == 1 {
        t = t.narrow(0, 1, shape[0]).expect("narrow");
    }
    debug_assert_eq!(t.shape(), shape);
    t
}

/// A shape that broadcasts to `shape`: some leading dims dropped and some dims set to 1, and
/// different from `shape` whenever that is possible.
fn shrink_for_broadcast(shape: &[usize], g: &mut Gen) -> Vec<usize> {
    let drop = g.below(shape.len() + 1).min(shape.len().saturating_sub(1));
    let drop = if g.coin() { drop } else { 0 };
    let mut small: Vec<usize> = shape[drop..]
        .iter()
        .map(|&d| if g.coin() { 1 } else { d })
        .collect();
    let stretched = drop > 0 && shape[..drop].iter().any(|&d| d > 1);
    if !stretched && small.as_slice() == &shape[drop..] {
        if let Some(i) = small.iter().position(|&d| d > 1) {
            small[i] = 1;
        }
    }
    small
}
