//! The process-wide f32 matmul precision (`set_float32_matmul_precision`). One test only:
//! the setting is global, and this binary is its own process.

use tessera_tensor::{
    bf16, float32_matmul_precision, set_float32_matmul_precision, Cpu, MatmulPrecision, Rng, Tensor,
};

/// `a @ b` in f64 from f32 `[batch, m, k]` and `[k, n]` data, optionally bf16-rounded first,
/// with `sum |a||b|` per element.
fn reference(
    a: &[f32],
    b: &[f32],
    dims: (usize, usize, usize, usize),
    round: bool,
) -> Vec<(f64, f64)> {
    let (batch, m, k, n) = dims;
    let r = |x: f32| {
        if round {
            bf16::from_f32(x).to_f64()
        } else {
            x as f64
        }
    };
    let mut out = Vec::new();
    for e in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut bound) = (0.0, 0.0);
                for p in 0..k {
                    let t = r(a[(e * m + i) * k + p]) * r(b[p * n + j]);
                    s += t;
                    bound += t.abs();
                }
                out.push((s, bound));
            }
        }
    }
    out
}

fn close(got: &[f32], want: &[(f64, f64)], tol: f64) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(&g, &(w, b))| (g as f64 - w).abs() <= tol * b + 1e-30)
}

#[test]
fn bf16_precision_rounds_f32_matmul_inputs_and_leaves_f64_alone() {
    assert_eq!(float32_matmul_precision(), MatmulPrecision::Highest);
    let mut rng = Rng::new(3);
    let (batch, m, k, n) = (3, 37, 45, 29);
    let a = Tensor::<Cpu>::randn(
        &[batch, m, k],
        0.0,
        1.0,
        tessera_tensor::DType::F32,
        &mut rng,
        &Cpu,
    )
    .unwrap();
    let b = Tensor::<Cpu>::randn(
        &[k, n],
        0.0,
        1.0,
        tessera_tensor::DType::F32,
        &mut rng,
        &Cpu,
    )
    .unwrap();
    let (av, bv) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let exact = reference(&av, &bv, (batch, m, k, n), false);
    let rounded = reference(&av, &bv, (batch, m, k, n), true);
    // The per-entry path too: a batched B (not broadcast) and a transposed A.
    let bb = b
        .unsqueeze(0)
        .unwrap()
        .broadcast_to(&[batch, k, n])
        .unwrap()
        .contiguous()
        .unwrap();
    let at = a
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .transpose(1, 2)
        .unwrap();
    let (a64, b64) = (
        a.to_dtype(tessera_tensor::DType::F64).unwrap(),
        b.to_dtype(tessera_tensor::DType::F64).unwrap(),
    );
    let f64_highest = a64.matmul(&b64).unwrap().to_vec::<f64>().unwrap();

    let highest = a.matmul(&b).unwrap().to_vec::<f32>().unwrap();
    assert!(close(&highest, &exact, 1e-5));
    assert!(
        !close(&highest, &rounded, 1e-6),
        "highest must not round to bf16"
    );

    set_float32_matmul_precision(MatmulPrecision::Bf16);
    assert_eq!(float32_matmul_precision(), MatmulPrecision::Bf16);
    for (x, y) in [(&a, &b), (&a, &bb), (&at, &b)] {
        let got = x.matmul(y).unwrap().to_vec::<f32>().unwrap();
        assert!(close(&got, &rounded, 1e-5));
        assert!(!close(&got, &exact, 1e-6), "medium must round to bf16");
    }
    // f64 is never affected; bf16 tensors (already bf16 values) are computed in f32.
    assert_eq!(
        a64.matmul(&b64).unwrap().to_vec::<f64>().unwrap(),
        f64_highest
    );
    let (ah, bh) = (
        a.to_dtype(tessera_tensor::DType::BF16).unwrap(),
        b.to_dtype(tessera_tensor::DType::BF16).unwrap(),
    );
    let half = ah.matmul(&bh).unwrap();
    let half = half.to_dtype(tessera_tensor::DType::F32).unwrap();
    // The f32 result is rounded to bf16 once more at the end (relative error 2^-9).
    assert!(close(&half.to_vec::<f32>().unwrap(), &rounded, 4e-3));

    set_float32_matmul_precision(MatmulPrecision::Highest);
    assert_eq!(a.matmul(&b).unwrap().to_vec::<f32>().unwrap(), highest);
}
