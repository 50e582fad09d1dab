//! Quick checks of the shim device: transfers, copies, casts and elementwise kernels against
//! the CPU reference (the full conformance kit is in `sim_conformance.rs`).
#![cfg(feature = "sim")]

use tessera_cuda::Cuda;
use tessera_tensor::{Cpu, DType, Tensor};

#[test]
fn round_trip_strided_copy_cast_and_elementwise() {
    let dev = Cuda::sim().unwrap();
    let v: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 2.0).collect();
    let x = Tensor::from_vec(v.clone(), &[2, 3, 4], &dev).unwrap();
    let c = Tensor::from_vec(v, &[2, 3, 4], &Cpu).unwrap();
    assert_eq!(x.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap());
    let xt = x.transpose(0, 2).unwrap().contiguous().unwrap();
    let ct = c.transpose(0, 2).unwrap().contiguous().unwrap();
    assert_eq!(xt.to_vec::<f32>().unwrap(), ct.to_vec::<f32>().unwrap());
    for dt in [DType::F16, DType::BF16, DType::F64, DType::I64, DType::U8] {
        let a = x
            .transpose(1, 2)
            .unwrap()
            .to_dtype(dt)
            .unwrap()
            .to_f64_vec()
            .unwrap();
        let b = c
            .transpose(1, 2)
            .unwrap()
            .to_dtype(dt)
            .unwrap()
            .to_f64_vec()
            .unwrap();
        assert_eq!(a, b, "{dt:?}");
    }
    let y = x.exp().unwrap().add(&x.transpose(0, 0).unwrap()).unwrap();
    let z = c.exp().unwrap().add(&c).unwrap();
    let (a, b) = (y.to_vec::<f32>().unwrap(), z.to_vec::<f32>().unwrap());
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() <= 1e-5 * q.abs().max(1.0), "{p} vs {q}");
    }
}
