//! The conformance kit (`tessera-testkit`) on [`CountingBackend`], within the kit's default
//! tolerance table (the same one the CPU and the CUDA backend are held to): every op family,
//! the property tests, the f64 gradient checks and the whole DINO ViT and BYOL ResNet steps.
//!
//! This is the file a new backend's author writes; see `testkit/README.md`.

use std::time::Instant;
use tessera_backend_counting::{CountingBackend, PRIMITIVES};
use tessera_testkit::{assert_pass, gradients, ops, props, steps, ToleranceTable};

/// Random cases per property check (8 checks).
const CASES: u32 = 256;

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    eprintln!("{what}: {:.2} s", start.elapsed().as_secs_f64());
    r
}

#[test]
fn op_families() {
    let dev = CountingBackend::new();
    assert_pass(timed("ops", || {
        ops::check_ops(&dev, &ToleranceTable::default())
    }));
    // The op suite reaches every primitive, so each delegation above ran at least once.
    let unused: Vec<&str> = PRIMITIVES
        .iter()
        .copied()
        .filter(|p| dev.count(p) == 0)
        .collect();
    assert!(
        unused.is_empty(),
        "primitives the op suite never called: {unused:?}"
    );
    eprintln!("ops: {} primitive calls", dev.total());
}

#[test]
fn properties() {
    let dev = CountingBackend::new();
    assert_pass(timed("props", || {
        props::check_props(&dev, &ToleranceTable::default(), CASES)
    }));
    eprintln!("props: {} primitive calls", dev.total());
    assert!(dev.count("matmul") > 0 && dev.count("reduce") > 0 && dev.count("im2col") > 0);
}

#[test]
fn gradients() {
    let dev = CountingBackend::new();
    assert_pass(timed("gradients", || gradients::check_gradients(&dev)));
    eprintln!("gradients: {} primitive calls", dev.total());
    assert!(dev.count("scatter_add") > 0 && dev.count("col2im") > 0);
}

#[test]
fn dino_vit_step() {
    timed("dino step", || {
        steps::check_dino_vit_step(&CountingBackend::new(), &ToleranceTable::default())
    })
    .unwrap_or_else(|f| panic!("{f}"));
}

#[test]
fn byol_resnet_step() {
    timed("byol step", || {
        steps::check_byol_resnet_step(&CountingBackend::new(), &ToleranceTable::default())
    })
    .unwrap_or_else(|f| panic!("{f}"));
}
