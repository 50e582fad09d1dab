//! Random and adversarial layouts through `Layout::try_from_parts` and `Tensor::as_strided`:
//! accepted exactly when every element is in bounds (as far as the reference can tell), and
//! then reading the view gives the reference's elements.

use crate::naive::{self, Naive};
use crate::{cases, limit, serial};
use proptest::prelude::*;
use tessera_tensor::{Cpu, Layout, Tensor};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512)))]

    #[test]
    fn try_from_parts_agrees_with_checked_arithmetic(raw in naive::raw(), len in 0usize..48) {
        let _g = serial();
        let l = Layout::try_from_parts(&raw.shape, &raw.strides, raw.offset);
        match naive::offsets(&raw, len) {
            Naive::Offsets(o) => {
                // In bounds: must be accepted and fit, with the right required length.
                let l = l.expect("a layout whose elements are in bounds");
                l.check_fits("t", len).unwrap();
                prop_assert_eq!(l.required_len(), o.iter().max().map_or(0, |m| m + 1));
                prop_assert_eq!(l.offsets().collect::<Vec<_>>(), o);
            }
            Naive::OutOfBounds => {
                prop_assert!(l.and_then(|l| l.check_fits("t", len)).is_err());
            }
            Naive::Unknown => {
                if let Ok(l) = l {
                    // Valid: the checked length is exact, never wrapped.
                    let fits = l.check_fits("t", len).is_ok();
                    prop_assert_eq!(fits, l.checked_required_len().is_some_and(|n| n <= len));
                }
            }
        }
    }

    #[test]
    fn as_strided_reads_the_reference_or_errs(raw in naive::raw(), len in 0usize..48) {
        let _g = serial();
        let _l = limit(1 << 16);
        let t = Tensor::from_vec(naive::data(len), &[len], &Cpu).unwrap();
        let v = t.as_strided(&raw.shape, &raw.strides, raw.offset);
        let want = naive::offsets(&raw, len);
        let res = match (&v, &want) {
            (Ok(v), Naive::Offsets(o)) => {
                let got = v.to_f64_vec().unwrap();
                let d = naive::data(len);
                let want: Vec<f64> = o.iter().map(|&i| d[i]).collect();
                if got == want { Ok(()) } else { Err("read the wrong elements") }
            }
            (Ok(_), Naive::OutOfBounds) => Err("accepted a view out of bounds"),
            (Err(_), Naive::Offsets(_)) => Err("rejected a view in bounds"),
            (Ok(v), Naive::Unknown) => {
                // Huge (a broadcast): copying it is refused by the memory limit, or works.
                let _ = v.contiguous();
                Ok(())
            }
            _ => Ok(()),
        };
        prop_assert_eq!(res, Ok(()));
    }

    #[test]
    fn views_of_adversarial_layouts_never_panic(raw in naive::raw(), len in 0usize..48,
                                                  a in 0usize..5, s in 0usize..4,
                                                  step in prop::sample::select(vec![1, 2, 7, usize::MAX])) {
        let _g = serial();
        let _l = limit(1 << 16); // copies of huge broadcast views are refused
        let t = Tensor::from_vec(naive::data(len), &[len], &Cpu).unwrap();
        let Ok(v) = t.as_strided(&raw.shape, &raw.strides, raw.offset) else { return Ok(()) };
        // Each view op either errs or gives a layout that still fits.
        let ax = a as isize;
        for w in [
            v.narrow(ax, s, 1), v.slice(ax, s, usize::MAX, step), v.unsqueeze(ax),
            v.transpose(0, ax), v.squeeze(ax), v.reshape(&[usize::MAX]), v.flatten(0, -1),
        ].into_iter().flatten() {
            // (reshape may copy: check against the view's own storage)
            let have = tessera_tensor::BackendStorage::len(&**w.storage());
            w.layout().check_fits("t", have).unwrap();
        }
    }
}
