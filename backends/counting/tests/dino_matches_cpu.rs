//! A few DINO steps of a tiny ViT on [`CountingBackend`] produce the CPU backend's numbers:
//! the loss of every step and every tensor of the trainer's state at the end (student,
//! teacher, AdamW moments, center).
//!
//! Not bit for bit: the CPU overrides softmax, log-softmax, GELU (and its backward), layer
//! norm and the AdamW/EMA updates with fused kernels, while `CountingBackend` runs their
//! default compositions from primitives, which round differently (a few f32 ulps per op).
//! So the comparison is within the tolerance stated in [`tolerance`], and a second test shows
//! that this is the only difference: against a backend that runs the same CPU primitives
//! with the same default compositions (the kit's `backends::Counting`) the run is
//! bit-identical.

#[path = "support/tiny_dino.rs"]
mod tiny_dino;

use tessera_backend_counting::CountingBackend;
use tessera_tensor::Cpu;
use tessera_testkit::backends::Counting as KitCounting;
use tessera_testkit::{OpFamily, Tolerance, ToleranceTable};
use tiny_dino::{run, Run, STEPS};

/// The whole-step cell of the kit's default table for f32 (`atol 1e-4, rtol 1e-3`), the
/// bound every backend's one-step DINO check meets, applied here to every step of the run.
/// As in the kit, the absolute part is scaled by each tensor's largest magnitude when that
/// is above 1 (a rounding error is a multiple of the largest terms summed into an element).
fn tolerance() -> Tolerance {
    ToleranceTable::default().get(tessera_tensor::DType::F32, OpFamily::WholeStep)
}

/// How two runs differ: the largest `|a - e|` of the losses and of the state, the largest
/// `|a - e| / |e|` over elements with `|e| > 1e-3`, the number of elements that differ at
/// all, and the first element outside `tol`, if any.
#[derive(Debug, Default)]
struct Diff {
    loss_abs: f64,
    max_abs: f64,
    max_rel: f64,
    differing: usize,
    elements: usize,
    bad: Option<String>,
}

fn diff(expected: &Run, actual: &Run, tol: Tolerance) -> Diff {
    let mut d = Diff::default();
    let mut check = |what: &str, e: &[f64], a: &[f64], atol: f64| {
        assert_eq!(e.len(), a.len(), "{what}: lengths differ");
        for (i, (&e, &a)) in e.iter().zip(a).enumerate() {
            d.elements += 1;
            d.differing += usize::from(e.to_bits() != a.to_bits());
            let abs = (a - e).abs();
            if what == "loss" {
                d.loss_abs = d.loss_abs.max(abs);
            } else {
                d.max_abs = d.max_abs.max(abs);
            }
            if e.abs() > 1e-3 {
                d.max_rel = d.max_rel.max(abs / e.abs());
            }
            // Written so that a NaN fails.
            let within = abs <= atol + tol.rtol * e.abs();
            if !within && d.bad.is_none() {
                d.bad = Some(format!("{what}[{i}]: expected {e:e}, actual {a:e}"));
            }
        }
    };
    check("loss", &expected.losses, &actual.losses, tol.atol);
    assert_eq!(
        expected.state.keys().collect::<Vec<_>>(),
        actual.state.keys().collect::<Vec<_>>(),
        "state dict names differ"
    );
    for (k, e) in &expected.state {
        let largest = e.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        check(k, e, &actual.state[k], tol.atol * largest.max(1.0));
    }
    d
}

#[test]
fn dino_steps_match_the_cpu() {
    let cpu = run(&Cpu).expect("CPU run");
    let dev = CountingBackend::new();
    let counted = run(&dev).expect("counting run");
    let tol = tolerance();
    let d = diff(&cpu, &counted, tol);
    println!(
        "DINO {STEPS} steps, counting vs CPU: losses {:?} vs {:?} (max |diff| {:.3e}); {} of \
         {} numbers (losses and {} state tensors) differ in some bit; state max |diff| {:.3e}, \
         max rel diff (|expected| > 1e-3) {:.3e}; tolerance atol {:e} (scaled by the tensor's \
         largest magnitude when above 1) + rtol {:e}",
        cpu.losses,
        counted.losses,
        d.loss_abs,
        d.differing,
        d.elements,
        cpu.state.len(),
        d.max_abs,
        d.max_rel,
        tol.atol,
        tol.rtol,
    );
    if let Some(bad) = d.bad {
        panic!("counting backend differs from the CPU beyond the tolerance: {bad}");
    }
    // The losses changed over the run: the steps did train.
    assert!(cpu.losses.iter().all(|l| l.is_finite()));
    assert_ne!(cpu.losses[0], cpu.losses[STEPS - 1]);
    assert!(dev.count("matmul") > 0);
}

#[test]
fn dino_steps_are_bit_identical_to_cpu_primitives_with_default_composites() {
    let kit = run(&KitCounting::new()).expect("kit backend run");
    let counted = run(&CountingBackend::new()).expect("counting run");
    let d = diff(&kit, &counted, Tolerance::EXACT);
    assert!(d.elements > STEPS, "nothing compared");
    assert_eq!(d.differing, 0, "{d:?}");
}
