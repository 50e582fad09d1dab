//! The conformance kit (`tessera-testkit`) over the CUDA kernels run by the CPU SIMT shim:
//! every op family, the property tests, the f64 gradient checks and the whole DINO ViT and
//! BYOL ResNet steps, against the CPU reference within the kit's one tolerance table.
//!
//! Each test prints a `CONFORMANCE` line with what it ran; `.ci/run` collects them.
#![cfg(feature = "sim")]

use std::time::Instant;
use tessera_cuda::Cuda;
use tessera_testkit::{assert_pass, gradients, ops, props, steps, ToleranceTable};

/// Property cases per property check (8 checks). The shim runs every kernel thread as a
/// fiber, so cases cost more than on the CPU backend; 64 cases keep the run near a minute.
const CASES: u32 = 64;

fn dev() -> Cuda {
    Cuda::sim().expect("the SIMT shim device")
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    eprintln!("{what}: {:.2} s", start.elapsed().as_secs_f64());
    r
}

#[test]
fn op_families_on_sim() {
    let tol = ToleranceTable::default();
    assert_pass(timed("ops on sim", || ops::check_ops(&dev(), &tol)));
    println!(
        "CONFORMANCE sim ops: {} op families passed",
        ops::FAMILIES.len()
    );
}

#[test]
fn properties_on_sim() {
    let tol = ToleranceTable::default();
    assert_pass(timed("props on sim", || {
        props::check_props(&dev(), &tol, CASES)
    }));
    println!("CONFORMANCE sim props: 8 property checks x {CASES} cases passed");
}

#[test]
fn gradients_on_sim() {
    assert_pass(timed("gradients on sim", || {
        gradients::check_gradients(&dev())
    }));
    println!("CONFORMANCE sim gradients: f64 gradcheck suite passed");
}

#[test]
fn dino_vit_step_on_sim() {
    let tol = ToleranceTable::default();
    timed("dino step on sim", || {
        steps::check_dino_vit_step(&dev(), &tol)
    })
    .unwrap_or_else(|f| panic!("{f}"));
    println!("CONFORMANCE sim whole-step: DINO ViT step passed");
}

#[test]
fn byol_resnet_step_on_sim() {
    let tol = ToleranceTable::default();
    timed("byol step on sim", || {
        steps::check_byol_resnet_step(&dev(), &tol)
    })
    .unwrap_or_else(|f| panic!("{f}"));
    println!("CONFORMANCE sim whole-step: BYOL ResNet step passed");
}
