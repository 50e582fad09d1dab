//! The conformance kit on a real GPU (feature `cuda`). Without a device each test prints a
//! `SKIP gpu:` line (counted by `.ci/run`) and passes; with `REQUIRE_GPU=1` a missing device
//! is a failure, so that a GPU session cannot pass by skipping.
#![cfg(feature = "cuda")]

use tessera_cuda::Cuda;
use tessera_testkit::{assert_pass, gradients, ops, props, steps, ToleranceTable};

fn gpu(test: &str) -> Option<Cuda> {
    match Cuda::new(0) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("REQUIRE_GPU=1 but no GPU for {test}: {e}")
        }
        Err(e) => {
            println!("SKIP gpu: {test}: {e}");
            None
        }
    }
}

#[test]
fn op_families_on_gpu() {
    let Some(dev) = gpu("op_families_on_gpu") else {
        return;
    };
    assert_pass(ops::check_ops(&dev, &ToleranceTable::default()));
    println!(
        "CONFORMANCE gpu ops: {} op families passed on {}",
        ops::FAMILIES.len(),
        dev.describe()
    );
}

#[test]
fn properties_on_gpu() {
    let Some(dev) = gpu("properties_on_gpu") else {
        return;
    };
    assert_pass(props::check_props(&dev, &ToleranceTable::default(), 256));
    println!("CONFORMANCE gpu props: 8 property checks x 256 cases passed");
}

#[test]
fn gradients_on_gpu() {
    let Some(dev) = gpu("gradients_on_gpu") else {
        return;
    };
    assert_pass(gradients::check_gradients(&dev));
    println!("CONFORMANCE gpu gradients: f64 gradcheck suite passed");
}

#[test]
fn whole_steps_on_gpu() {
    let Some(dev) = gpu("whole_steps_on_gpu") else {
        return;
    };
    let tol = ToleranceTable::default();
    steps::check_dino_vit_step(&dev, &tol).unwrap_or_else(|f| panic!("{f}"));
    steps::check_byol_resnet_step(&dev, &tol).unwrap_or_else(|f| panic!("{f}"));
    println!("CONFORMANCE gpu whole-step: DINO ViT and BYOL ResNet steps passed");
}

#[test]
fn paper_size_steps_on_gpu() {
    let Some(dev) = gpu("paper_size_steps_on_gpu") else {
        return;
    };
    let tol = ToleranceTable::default();
    let size = steps::StepSize::Paper { batch: 2 };
    steps::check_dino_vit_step_sized(&dev, &tol, size).unwrap_or_else(|f| panic!("{f}"));
    println!(
        "CONFORMANCE gpu whole-step: ViT-S/16 DINO step (2x224 + 10x96 crops, batch 2) passed"
    );
    steps::check_byol_resnet_step_sized(&dev, &tol, size).unwrap_or_else(|f| panic!("{f}"));
    println!("CONFORMANCE gpu whole-step: ResNet-50 BYOL step (224 px, batch 2) passed");
}
