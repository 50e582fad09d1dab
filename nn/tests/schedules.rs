//! Schedules against NumPy running DINO's and BYOL's code (scripts/gen_nn_fixtures.py).
//! The values are bit-identical: same operations in the same order, and `cos` from the `libm`
//! crate (pure Rust, the same on every platform) agrees with NumPy's on every input here. If a
//! regenerated fixture ever differs in the last place (a NumPy build with a different `cos`),
//! 1e-15 absolute is the fallback tolerance: every value is at most 1.

use tessera_nn::schedule::{byol_target_ema, cosine_scheduler, linspace, warmup_then_constant};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/nn_optim.safetensors"
);

fn fixture(name: &str) -> Vec<f64> {
    let bytes = std::fs::read(FIXTURE).expect("fixture file");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let view = st
        .tensor(&format!("schedule.{name}"))
        .expect("schedule in fixture");
    view.data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn assert_matches(name: &str, got: &[f64]) {
    let want = fixture(name);
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-15,
            "{name}[{i}]: got {a:e}, numpy {b:e}"
        );
    }
}

#[test]
fn cosine_scheduler_matches_dino() {
    let cases: [(&str, f64, f64, usize, usize, usize, f64); 7] = [
        ("cos_lr", 0.0005 * 64.0 / 256.0, 1e-6, 5, 3, 2, 0.0),
        ("cos_wd", 0.04, 0.4, 4, 5, 0, 0.0),
        ("cos_momentum", 0.996, 1.0, 3, 7, 0, 0.0),
        ("cos_warmup_one", 1.0, 0.1, 3, 1, 1, 0.5),
        ("cos_all_warmup", 1.0, 0.0, 2, 3, 2, 0.2),
        ("cos_flat_warmup", 0.3, 0.1, 3, 2, 1, 0.3),
        ("cos_long", 0.7, 0.001, 10, 37, 3, 1e-4),
    ];
    for (name, base, fin, epochs, niter, warmup, start) in cases {
        let s = cosine_scheduler(base, fin, epochs, niter, warmup, start).unwrap();
        assert_matches(name, &s);
    }
}

#[test]
fn cosine_shape_facts() {
    // Warm-up ends exactly at base; the cosine starts at base and never reaches final.
    let s = cosine_scheduler(0.5, 0.1, 4, 2, 1, 0.0).unwrap();
    assert_eq!(s.len(), 8);
    assert_eq!((s[0], s[1]), (0.0, 0.5));
    assert!((s[2] - 0.5).abs() < 1e-15);
    assert!(s[7] > 0.1 && s.windows(2).skip(2).all(|w| w[1] < w[0]));
    // Teacher momentum 0.996 -> 1 stays below 1.
    let m = cosine_scheduler(0.996, 1.0, 2, 3, 0, 0.0).unwrap();
    assert!(m.iter().all(|&v| v > 0.996 - 1e-15 && v < 1.0));
    assert!(cosine_scheduler(0.5, 0.1, 2, 3, 3, 0.0).is_err());
    assert!(cosine_scheduler(0.5, 0.1, 0, 3, 0, 0.0).unwrap().is_empty());
}

#[test]
fn linspace_like_numpy() {
    assert_eq!(linspace(0.0, 1.0, 0), Vec::<f64>::new());
    assert_eq!(linspace(0.3, 1.0, 1), vec![0.3]);
    assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(linspace(2.0, 2.0, 3), vec![2.0, 2.0, 2.0]);
    assert_eq!(*linspace(0.04, 0.07, 30).last().unwrap(), 0.07);
}

#[test]
fn teacher_temperature_matches_dino() {
    let s = warmup_then_constant(0.04, 0.07, 3, 5).unwrap();
    assert_matches("teacher_temp", &s);
    assert_eq!(&s[2..], &[0.07, 0.07, 0.07]);
    assert_matches(
        "teacher_temp_dino",
        &warmup_then_constant(0.04, 0.07, 30, 100).unwrap(),
    );
    assert_matches(
        "teacher_temp_none",
        &warmup_then_constant(0.04, 0.07, 0, 4).unwrap(),
    );
    assert!(warmup_then_constant(0.04, 0.07, 5, 4).is_err());
}

#[test]
fn byol_target_ema_matches_byol() {
    let s: Vec<f64> = (0..13).map(|k| byol_target_ema(0.996, k, 10)).collect();
    assert_matches("byol_ema", &s);
    assert_eq!(s[0], 0.996);
    assert_eq!(s[10], 1.0);
    assert_eq!(s[12], 1.0, "steps past the end are clamped");
    assert_eq!(byol_target_ema(0.99, 3, 0), 1.0);
}
