//! Builds the kernels in `kernels/*.cu` for whichever paths the features ask for:
//!
//! - feature `cuda`: nvcc 13.0 fatbins embedded in the library (`build/nvcc.rs`);
//! - feature `sim`: the same sources compiled by the host C++ compiler against the SIMT shim
//!   (`build/sim.rs`).
//!
//! Without either feature nothing is compiled and no toolkit is needed.

#[path = "build/nvcc.rs"]
mod nvcc;
#[path = "build/sim.rs"]
mod sim;

use std::path::{Path, PathBuf};

fn kernel_stems(dir: &Path) -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(dir)
        .expect("cuda/kernels exists")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "cu").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    stems.sort();
    stems
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let kernels = manifest.join("kernels");
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=sim");
    let stems = kernel_stems(&kernels);

    if std::env::var_os("CARGO_FEATURE_SIM").is_some() {
        sim::build(&out, &manifest, &stems);
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        if let Err(e) = nvcc::build(&out, &kernels) {
            panic!("{e}");
        }
    }
}
