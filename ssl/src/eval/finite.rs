//! Refusing non-finite features: a NaN or infinity in a feature matrix (from a diverged
//! checkpoint, say) makes every similarity or logit it touches NaN, and the evaluations would
//! then print meaningless numbers as if nothing had happened. Each evaluation entry point
//! checks its features first and names the set and the first bad `(row, col)`.

use alloc::vec::Vec;
use tessera_tensor::{arg_err, Backend, Result, Tensor};

/// Host bytes read per step of the scan (a block of rows as f64): bounded, so that a large
/// feature matrix is never copied to the host whole.
const SCAN_BYTES: usize = 16 << 20;

/// The first `(row, col)` of a row-major `[rows, cols]` slice that is NaN or infinite, with
/// the value.
pub(crate) fn first_non_finite(v: &[f64], cols: usize) -> Option<(usize, usize, f64)> {
    let i = v.iter().position(|x| !x.is_finite())?;
    Some((i / cols.max(1), i % cols.max(1), v[i]))
}

/// An error unless every element of `x` (`[n, ...]`, read as `[n, rest]`) is finite; it names
/// `op`, `what` (which set: "train (bank) features", "test features") and the first bad
/// `(row, col)`. Reads the data to the host in blocks of rows of at most 16 MiB.
pub fn check_finite<B: Backend>(op: &'static str, what: &str, x: &Tensor<B>) -> Result<()> {
    if !x.dtype().is_float() || x.rank() == 0 {
        return Ok(());
    }
    let rows = x.shape()[0];
    let cols: usize = x.shape()[1..].iter().product();
    let per_block = (SCAN_BYTES / (cols.max(1) * 8)).max(1);
    let mut start = 0;
    while start < rows {
        let m = per_block.min(rows - start);
        let block: Vec<f64> = x.narrow(0, start, m)?.to_f64_vec()?;
        if let Some((r, c, v)) = first_non_finite(&block, cols) {
            return Err(arg_err!(
                op,
                "{what} {:?} are not finite: {v} at (row {}, col {c}); a diverged or damaged \
                 model? (refusing to report numbers computed from it)",
                x.shape(),
                start + r
            ));
        }
        start += m;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tensor::Cpu;

    #[test]
    fn names_the_set_and_the_first_bad_index() {
        let mut v = alloc::vec![0.5f32; 12];
        v[7] = f32::INFINITY;
        v[10] = f32::NAN;
        let x = Tensor::from_vec(v, &[4, 3], &Cpu).unwrap();
        let msg = check_finite("k-NN", "test features", &x)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("k-NN") && msg.contains("test features"),
            "{msg}"
        );
        assert!(
            msg.contains("(row 2, col 1)") && msg.contains("inf"),
            "{msg}"
        );
        let ok = Tensor::from_vec(alloc::vec![1.0f64; 6], &[2, 3], &Cpu).unwrap();
        assert!(check_finite("k-NN", "x", &ok).is_ok());
        assert_eq!(first_non_finite(&[1.0, f64::NAN], 1).map(|t| t.0), Some(1));
    }
}
