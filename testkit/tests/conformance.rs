//! The kit's public checks on the CPU reference and on `Counting` (opaque storage, required
//! primitives only): what a new backend's test file looks like.

use std::time::Instant;
use tessera_tensor::Cpu;
use tessera_testkit::backends::Counting;
use tessera_testkit::{assert_pass, gradients, ops, props, steps, ToleranceTable};

/// Property cases per check: 8 property checks × this many cases.
const CASES: u32 = 256;

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    eprintln!("{what}: {:.2} s", start.elapsed().as_secs_f64());
    r
}

#[test]
fn ops_on_cpu_and_counting() {
    let tol = ToleranceTable::default();
    assert_pass(ops::check_ops(&Cpu, &tol));
    assert_pass(timed("ops on counting", || {
        ops::check_ops(&Counting::new(), &tol)
    }));
}

#[test]
fn props_on_counting() {
    let tol = ToleranceTable::default();
    assert_pass(timed("props on counting", || {
        props::check_props(&Counting::new(), &tol, CASES)
    }));
}

#[test]
fn gradients_on_cpu() {
    assert_pass(timed("gradients on cpu", || {
        gradients::check_gradients(&Cpu)
    }));
}

#[test]
fn gradients_on_counting() {
    assert_pass(timed("gradients on counting", || {
        gradients::check_gradients(&Counting::new())
    }));
}

#[test]
fn dino_vit_step_on_counting() {
    let tol = ToleranceTable::default();
    timed("dino step on counting", || {
        steps::check_dino_vit_step(&Counting::new(), &tol)
    })
    .unwrap_or_else(|f| panic!("{f}"));
}

#[test]
fn byol_resnet_step_on_counting() {
    let tol = ToleranceTable::default();
    timed("byol step on counting", || {
        steps::check_byol_resnet_step(&Counting::new(), &tol)
    })
    .unwrap_or_else(|f| panic!("{f}"));
}
