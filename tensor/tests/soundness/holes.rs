//! The holes this suite was written for: each used to read out of bounds, wrap, or abort.

use crate::serial;
use tessera_tensor::{Backend, Cpu, CpuStorage, DType, HostBuffer, Layout, Tensor};

#[test]
fn as_strided_with_huge_strides_is_an_error() {
    let _g = serial();
    let t = Tensor::from_vec(vec![1.0f32; 12], &[3, 4], &Cpu).unwrap();
    // Before: `required_len` wrapped to a small number, the view was accepted, and a GEMM
    // over it segfaulted in release builds.
    for (shape, strides, offset) in [
        (vec![2, 2], vec![usize::MAX, 1], 0),
        (vec![3, 4], vec![1 << 62, 1 << 62], 0),
        (vec![2], vec![1], usize::MAX),
        (vec![1 << 33, 1 << 33], vec![0, 0], 0),
    ] {
        assert!(
            t.as_strided(&shape, &strides, offset).is_err(),
            "{shape:?} {strides:?} {offset}"
        );
        assert!(Layout::try_from_parts(&shape, &strides, offset)
            .and_then(|l| l.check_fits("t", 12))
            .is_err());
    }
    // A legitimate view is still fine.
    let v = t.as_strided(&[2, 2], &[4, 1], 1).unwrap();
    assert_eq!(v.to_vec::<f32>().unwrap(), vec![1.0; 4]);
}

#[test]
fn backend_matmul_checks_its_layouts() {
    let _g = serial();
    let a = CpuStorage::from(HostBuffer::F32(vec![1.0; 3]));
    let b = CpuStorage::from(HostBuffer::F32(vec![1.0; 2]));
    let bad = [
        // [1, 3] x [2, 1]: inner dims differ (this one read past `b`).
        (vec![1, 3], vec![2, 1]),
        // rank < 2
        (vec![3], vec![2]),
        // ranks differ
        (vec![1, 1, 3], vec![3, 1]),
        // batch dims differ
        (vec![2, 1, 1], vec![1, 1, 2]),
    ];
    for (sa, sb) in bad {
        let (al, bl) = (Layout::contiguous(&sa), Layout::contiguous(&sb));
        assert!(Cpu.matmul(&a, &al, &b, &bl).is_err(), "{sa:?} x {sb:?}");
    }
    // A layout that does not fit its storage.
    let (al, bl) = (Layout::contiguous(&[2, 3]), Layout::contiguous(&[3, 1]));
    assert!(Cpu.matmul(&a, &al, &b, &bl).is_err());
    // The same call with agreeing layouts works.
    let (al, bl) = (Layout::contiguous(&[1, 3]), Layout::contiguous(&[3, 1]));
    let b3 = CpuStorage::from(HostBuffer::F32(vec![2.0; 3]));
    assert_eq!(
        Cpu.matmul(&a, &al, &b3, &bl).unwrap(),
        CpuStorage::from(HostBuffer::F32(vec![6.0]))
    );
}

#[test]
fn impossible_sizes_are_errors() {
    let _g = serial();
    // 2^66 elements: the count overflows (it used to wrap to 0 in release).
    assert!(Tensor::zeros(&[1 << 33, 1 << 33], DType::F32, &Cpu).is_err());
    assert!(Tensor::zeros(&[usize::MAX, 2], DType::F32, &Cpu).is_err());
    assert!(Tensor::ones(&[usize::MAX], DType::F64, &Cpu).is_err());
    // The count fits but the bytes exceed isize::MAX: an error, not an allocator abort.
    assert!(Tensor::full(&[1 << 62], 1.0, DType::F32, &Cpu).is_err());
    assert!(Tensor::arange(usize::MAX, DType::F32, &Cpu).is_err());
    // A wrapped count must not match the data either.
    assert!(Tensor::from_vec(Vec::<f32>::new(), &[1 << 63, 2], &Cpu).is_err());
    // A huge broadcast view is valid, but copying it is refused.
    let one = Tensor::ones(&[1], DType::F32, &Cpu).unwrap();
    let wide = one.broadcast_to(&[1 << 40, 1 << 22]).unwrap();
    assert!(wide.contiguous().is_err());
    assert!(one.broadcast_to(&[1 << 40, 1 << 40]).is_err());
    let e = Tensor::zeros(&[1 << 33, 1 << 33], DType::F32, &Cpu).unwrap_err();
    assert!(
        e.to_string().contains("zeros") || e.to_string().contains("full"),
        "{e}"
    );
}

#[test]
fn index_kernels_check_index_values_themselves() {
    let _g = serial();
    let x = CpuStorage::from(HostBuffer::F32(vec![1.0, 2.0, 3.0]));
    let l = Layout::contiguous(&[3]);
    for bad in [3i64, -1, i64::MAX, i64::MIN] {
        let idx = CpuStorage::from(HostBuffer::I64(vec![0, bad]));
        let il = Layout::contiguous(&[2]);
        assert!(Cpu.index_select(&x, &l, 0, &idx, &il).is_err(), "{bad}");
        assert!(Cpu.gather(&x, &l, 0, &idx, &il).is_err(), "{bad}");
        let mut dst = CpuStorage::from(HostBuffer::F32(vec![0.0; 3]));
        let src = CpuStorage::from(HostBuffer::F32(vec![1.0; 2]));
        assert!(Cpu
            .scatter_add(&mut dst, &[3], 0, &idx, &il, &src, &il)
            .is_err());
    }
    // Wrong index dtype, axis past the rank, a destination shape that overflows.
    let il = Layout::contiguous(&[1]);
    let fidx = CpuStorage::from(HostBuffer::F32(vec![0.0]));
    assert!(Cpu.index_select(&x, &l, 0, &fidx, &il).is_err());
    let idx = CpuStorage::from(HostBuffer::I64(vec![0]));
    assert!(Cpu.index_select(&x, &l, 1, &idx, &il).is_err());
    let mut dst = CpuStorage::from(HostBuffer::F32(vec![0.0; 3]));
    let src = CpuStorage::from(HostBuffer::F32(vec![1.0]));
    assert!(Cpu
        .scatter_add(&mut dst, &[usize::MAX, 2], 0, &idx, &il, &src, &il)
        .is_err());
}

#[test]
fn fused_composites_check_their_arguments() {
    let _g = serial();
    let x = Tensor::from_vec(vec![1.0f32; 6], &[2, 3], &Cpu).unwrap();
    let g = Tensor::from_vec(vec![1.0f32; 2], &[2], &Cpu).unwrap();
    // Called directly, bypassing the front ends' checks.
    assert!(Cpu.gelu_backward(&x, &g).is_err());
    assert!(Cpu.softmax(&x, 2).is_err());
    assert!(Cpu.log_softmax(&x, 7).is_err());
    assert!(Cpu.layer_norm(&x, Some(&g), None, 1, 1e-5).is_err());
    assert!(Cpu.layer_norm(&x, None, None, 3, 1e-5).is_err());
    assert!(Cpu.layer_norm(&x, None, None, 0, 1e-5).is_err());
    // Valid calls still work.
    let w = Tensor::from_vec(vec![1.0f32; 3], &[3], &Cpu).unwrap();
    assert!(Cpu.layer_norm(&x, Some(&w), Some(&w), 1, 1e-5).is_ok());
    assert!(Cpu.softmax(&x, 1).is_ok());
    assert!(Cpu.gelu_backward(&x, &x).is_ok());
}
