use crate::backend::Backend;
use crate::testing::bits;
use crate::{Cpu, DType, Rng, Tensor};

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor<Cpu> {
    Tensor::randn(shape, 0.0, 1.0, dtype, &mut Rng::new(seed), &Cpu).unwrap()
}

/// The fused CPU path gives the bits of `matmul` then `add`, for every GEMM path the
/// product can take: one `k` block and several (the bias goes in after the last), edge
/// tiles, rows split over threads and columns split over threads, a transposed weight (the
/// linear layer's `x Wᵀ`), batched rows, and a bias view with an offset.
#[test]
fn fused_bias_is_bit_identical_to_matmul_then_add() {
    let cases: [(&[usize], usize, bool); 7] = [
        (&[3, 5], 7, false),
        (&[37, 64], 45, true),
        (&[200, 900], 70, true),   // three k blocks, rows split
        (&[20, 1000], 300, false), // columns split, several k blocks
        (&[4, 17, 192], 576, true),
        (&[1, 1], 1, false),
        (&[2, 3, 0], 4, true), // k = 0: the bias alone
    ];
    for (i, &(a_shape, n, transposed)) in cases.iter().enumerate() {
        let seed = 10 * i as u64;
        let k = *a_shape.last().unwrap();
        let a = randn(a_shape, DType::F32, seed);
        let b = if transposed {
            randn(&[n, k], DType::F32, seed + 1).t().unwrap()
        } else {
            randn(&[k, n], DType::F32, seed + 1)
        };
        let bias_store = randn(&[n + 3], DType::F32, seed + 2);
        let bias = bias_store.narrow(0, 2, n).unwrap();
        let fused = a.matmul_bias(&b, &bias).unwrap();
        let composed = a.matmul(&b).unwrap().add(&bias).unwrap();
        assert_eq!(fused.shape(), composed.shape(), "case {i}");
        assert_eq!(bits(&fused), bits(&composed), "case {i}: {a_shape:?} x {n}");
        // The backend's default composition agrees with the override too.
        let default = super::matmul_bias_composite(&a, &b, &bias).unwrap();
        assert_eq!(bits(&default), bits(&fused), "case {i}");
    }
}

#[test]
fn other_dtypes_and_layouts_take_the_composition() {
    let a = randn(&[2, 4, 3], DType::F64, 1);
    let b = randn(&[2, 3, 5], DType::F64, 2); // batched b: not one broadcast matrix
    let bias = randn(&[5], DType::F64, 3);
    let got = a.matmul_bias(&b, &bias).unwrap().to_vec::<f64>().unwrap();
    let want = a
        .matmul(&b)
        .unwrap()
        .add(&bias)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert_eq!(got, want);
    let a = randn(&[6, 3], DType::BF16, 4);
    let b = randn(&[3, 2], DType::BF16, 5);
    let bias = randn(&[2], DType::BF16, 6);
    let got = Cpu.matmul_bias(&a, &b, &bias).unwrap();
    let want = a.matmul(&b).unwrap().add(&bias).unwrap();
    let f32s = |t: Tensor<Cpu>| t.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(f32s(got), f32s(want));
}

#[test]
fn bad_shapes_and_dtypes_are_errors() {
    let a = randn(&[4, 3], DType::F32, 1);
    let b = randn(&[3, 5], DType::F32, 2);
    for bad in [&[4][..], &[1, 5], &[]] {
        let bias = Tensor::zeros(bad, DType::F32, &Cpu).unwrap();
        let e = a.matmul_bias(&b, &bias).unwrap_err().to_string();
        assert!(e.contains("bias must be [5]"), "{e}");
    }
    let v = randn(&[3], DType::F32, 3);
    let bias = randn(&[5], DType::F32, 4);
    assert!(v.matmul_bias(&b, &bias).is_err(), "rank 1 is refused");
    let bias64 = randn(&[5], DType::F64, 5);
    assert!(a.matmul_bias(&b, &bias64).is_err(), "dtypes differ");
    let i = Tensor::zeros(&[4, 3], DType::I64, &Cpu).unwrap();
    assert!(i.matmul_bias(&b, &bias).is_err());
}
