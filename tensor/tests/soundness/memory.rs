//! The process-wide memory limit (`set_memory_limit`): over it, allocations are errors that
//! name the op, the bytes asked for and the limit.

use crate::serial;
use tessera_tensor::{memory_limit, set_memory_limit, Backend, Cpu, DType, Layout, Tensor};

/// Resets the limit even if an assertion fails, so other tests are not affected.
struct Reset;
impl Drop for Reset {
    fn drop(&mut self) {
        set_memory_limit(None);
    }
}

#[test]
fn allocations_over_the_limit_are_errors() {
    let _g = serial();
    let _r = Reset;
    set_memory_limit(Some(1 << 20));
    assert_eq!(memory_limit(), Some(1 << 20));
    // 512 x 1024 f32 = 2 MiB > 1 MiB.
    let e = Tensor::zeros(&[512, 1024], DType::F32, &Cpu).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("full"), "{msg}");
    assert!(msg.contains(&(2usize << 20).to_string()), "{msg}");
    assert!(msg.contains(&(1usize << 20).to_string()), "{msg}");
    // Under the limit still works, and so do backend methods' outputs.
    let t = Tensor::ones(&[256, 1024], DType::F32, &Cpu).unwrap();
    assert_eq!(t.numel(), 1 << 18);
    // A broadcast view of one element whose copy would exceed the limit.
    let wide = t
        .narrow(0, 0, 1)
        .unwrap()
        .broadcast_to(&[1024, 1024])
        .unwrap();
    let e = Cpu.unary(tessera_tensor::UnaryOp::Neg, wide.storage(), wide.layout());
    assert!(e.unwrap_err().to_string().contains("unary"));
    assert!(Cpu.full(1 << 20, 0.0, DType::F64).is_err());
    // Reset: the same allocation succeeds.
    set_memory_limit(None);
    assert_eq!(memory_limit(), None);
    assert!(Tensor::zeros(&[512, 1024], DType::F32, &Cpu).is_ok());
    let l = Layout::contiguous(&[1024, 1024]);
    assert!(Cpu.to_host(wide.storage(), &l).is_err()); // does not fit: unrelated to limits
}

#[test]
fn check_alloc_reports_bytes_and_limit() {
    let _g = serial();
    let _r = Reset;
    set_memory_limit(Some(100));
    let e = tessera_tensor::check_alloc("myop", 26, DType::F32).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("myop") && msg.contains("104") && msg.contains("100"),
        "{msg}"
    );
    assert!(tessera_tensor::check_alloc("myop", 25, DType::F32).is_ok());
    set_memory_limit(None);
    // Without a limit, only isize::MAX bytes bound it.
    assert!(tessera_tensor::check_alloc("myop", usize::MAX / 4, DType::F32).is_err());
    assert!(tessera_tensor::check_alloc("myop", usize::MAX / 16, DType::F64).is_ok());
}

/// Used to abort the process: 4 TB of zeros is an error naming the op and the bytes, from the
/// default budget (physical memory, or `TESSERA_MEMORY_LIMIT`) or, with no budget at all, from
/// the fallible allocation (where the system refuses to reserve what it cannot back).
#[test]
fn four_terabytes_of_zeros_are_an_error() {
    let _g = serial();
    let _r = Reset;
    let shape = [1usize << 20, 1 << 20]; // 2^40 f32 = 4 TiB
    if let Some(limit) = memory_limit() {
        assert!(limit < 4 << 40, "a default budget above 4 TiB: {limit}");
        let msg = Tensor::zeros(&shape, DType::F32, &Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("full") && msg.contains(&(4usize << 40).to_string()),
            "{msg}"
        );
        assert!(msg.contains(&limit.to_string()), "{msg}");
    }
    let always = std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
        .map(|s| s.trim() == "1")
        .unwrap_or(true);
    if !always {
        // No budget: the allocator's refusal itself is the error (zeros would be written, so
        // only where the reservation is certain to be refused).
        set_memory_limit(None);
        let msg = Tensor::zeros(&shape, DType::F32, &Cpu)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("full") && msg.contains("refused"), "{msg}");
    }
}

#[test]
fn check_bytes_names_what_was_asked_for() {
    let _g = serial();
    let _r = Reset;
    set_memory_limit(Some(1000));
    let msg = tessera_tensor::check_bytes("decoded image", Some(1001))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("decoded image") && msg.contains("1001") && msg.contains("1000"),
        "{msg}"
    );
    assert!(tessera_tensor::check_bytes("decoded image", Some(1000)).is_ok());
    assert!(tessera_tensor::check_bytes("x", None).is_err());
}
