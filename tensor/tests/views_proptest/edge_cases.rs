//! Edge cases: empty and scalar views, and a check that the view generator is not vacuous.

use crate::inputs::{contiguous, spec};
use proptest::prelude::*;
use tessera_tensor::{Cpu, DType, Tensor};

#[test]
fn empty_and_scalar_views() {
    let t = contiguous(&[2, 3, 4], 1);
    // Empty views anywhere in the storage read as empty.
    let e = t.narrow(1, 3, 0).unwrap();
    assert_eq!(e.shape(), &[2, 0, 4]);
    assert!(e.to_f64_vec().unwrap().is_empty());
    assert_eq!(
        e.sum(&[1], false).unwrap().to_f64_vec().unwrap(),
        vec![0.0; 8]
    );
    let far = t.as_strided(&[0, 3], &[3, 1], 40).unwrap();
    assert!(far.to_f64_vec().unwrap().is_empty());
    assert!(far.contiguous().unwrap().to_f64_vec().unwrap().is_empty());
    assert!(t
        .slice(2, 4, 9, 2)
        .unwrap()
        .to_f64_vec()
        .unwrap()
        .is_empty());
    // Zero inner dim: a matrix of zeros.
    let a = Tensor::<Cpu>::zeros(&[2, 0], DType::F64, &Cpu).unwrap();
    let b = Tensor::<Cpu>::zeros(&[0, 3], DType::F64, &Cpu).unwrap();
    assert_eq!(a.matmul(&b).unwrap().to_f64_vec().unwrap(), vec![0.0; 6]);
    // Scalars: reducing "axis 0" of a rank-0 tensor is the tensor itself (PyTorch allows
    // dim 0 and -1 there), and argmax of a scalar is 0.
    let s = Tensor::<Cpu>::scalar(2.5, DType::F64, &Cpu).unwrap();
    assert_eq!(s.sum(&[], false).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.sum(&[0], false).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.max(&[-1], true).unwrap().item().unwrap(), 2.5);
    assert_eq!(s.argmax(0, false).unwrap().item().unwrap(), 0.0);
    assert!(s.sum(&[1], false).is_err());
    // A broadcast scalar view.
    let bs = s.broadcast_to(&[2, 2]).unwrap();
    assert_eq!(bs.layout().strides(), &[0, 0]);
    assert_eq!(
        bs.sum(&[0], false).unwrap().to_f64_vec().unwrap(),
        vec![5.0, 5.0]
    );
}

/// The view generator is not vacuous: most views are strided, many broadcast.
#[test]
fn generated_views_are_mostly_strided() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut strided, mut zero, mut offset) = (0, 0, 0);
    for _ in 0..200 {
        let v = spec().new_tree(&mut runner).unwrap().current().build();
        strided += !v.is_contiguous() as usize;
        zero += v.layout().has_zero_stride() as usize;
        offset += (v.layout().offset() > 0) as usize;
    }
    assert!(strided > 150, "{strided}");
    assert!(zero > 40, "{zero}");
    assert_eq!(offset, 200);
}
