//! Resource exhaustion and non-finite features (issue 16): each case used to abort the process
//! or print meaningless numbers with exit code 0; now it is an `Err` (in the library) or a
//! one-line `error:` with a non-zero exit (in the example binaries) that names what was asked
//! for and the limit, or the first bad index.
//!
//! The memory budget of the example processes is set with `TESSERA_MEMORY_LIMIT`, so the
//! "huge" cases are refused cheaply, before anything large is computed. Plain `cargo test`
//! builds the examples first (`cargo test --test hostile_limits` alone does not: run
//! `cargo build --examples` before it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tessera::nn::checkpoint::{with_prefix, Checkpoint, Metadata, StateDict};
use tessera::nn::models::vit::{VisionTransformer, VitConfig};
use tessera::nn::ModuleExt;
use tessera::tensor::{memory, Cpu, DType, Rng, Tensor};

mod cli_support;
use cli_support::named_example;

fn temp_dir(name: &str) -> PathBuf {
    cli_support::temp_dir("limits", name)
}

/// Runs an example with `TESSERA_MEMORY_LIMIT` set to `limit` (or unset for `None`).
fn run(example: &str, limit: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(named_example(example));
    c.args(args);
    match limit {
        Some(l) => c.env(memory::MEMORY_LIMIT_ENV, l),
        None => c.env_remove(memory::MEMORY_LIMIT_ENV),
    };
    c.output().expect("running the example")
}

/// Asserts a failure with exit code 1 (not an abort, not a panic) and a one-line `error:`
/// containing every one of `needles`; returns that line.
fn assert_fails(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(!stderr.contains("memory allocation of"), "stderr: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    for n in needles {
        assert!(line.contains(n), "{line:?} lacks {n:?}");
    }
    line.to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `dino_vit_s --preset tiny`'s backbone: ViT(embed 32, depth 2, heads 2, patch 7) on 28-px
/// grayscale images.
fn tiny_vit() -> VitConfig {
    VitConfig {
        img_size: 28,
        in_chans: 1,
        embed_dim: 32,
        depth: 2,
        num_heads: 2,
        ..VitConfig::small(7)
    }
}

const TINY_ARCH: &str = "vit(embed 32, depth 2, heads 2, patch 7, img 28, chans 1) + \
                         dino head(out 64, hidden 64, bottleneck 16)";

/// A checkpoint in `dino_vit_s`'s layout with random weights, `edit` applied to the backbone's
/// state dict first.
fn write_checkpoint(dir: &Path, edit: impl Fn(&mut StateDict<Cpu>)) -> PathBuf {
    let vit = VisionTransformer::new(tiny_vit(), DType::F32, &mut Rng::new(3), &Cpu).unwrap();
    let mut sd = vit.state_dict();
    edit(&mut sd);
    let mut tensors: StateDict<Cpu> = with_prefix(&sd, "teacher.backbone.");
    tensors.extend(with_prefix(&sd, "student.backbone."));
    let mut metadata = Metadata::new();
    metadata.insert("arch".into(), TINY_ARCH.into());
    let path = dir.join("checkpoint.safetensors");
    Checkpoint { tensors, metadata }.save(&path).unwrap();
    path
}

fn write_tensor(dir: &Path, t: Tensor<Cpu>) -> PathBuf {
    let mut tensors = StateDict::new();
    tensors.insert("images".to_string(), t);
    let path = dir.join("batch.safetensors");
    Checkpoint::new(tensors).save(&path).unwrap();
    path
}

/// A small random model for `features` (one block, two heads, patch 7).
const SMALL_RANDOM: &[&str] = &[
    "--embed-dim",
    "16",
    "--depth",
    "1",
    "--heads",
    "2",
    "--patch-size",
    "7",
    "--device",
    "cpu",
];

/// Used to abort the process (the allocator's abort on 4 TB). With the default budget (the
/// machine's memory, or `TESSERA_MEMORY_LIMIT`) it is refused by the budget; without any
/// budget the fallible allocation reports the system's refusal (tested in tessera-tensor).
#[test]
fn four_terabytes_of_zeros_are_an_error() {
    let Some(limit) = memory::memory_limit() else {
        // `TESSERA_MEMORY_LIMIT=none` in this environment: the tensor crate's own test covers
        // the allocator's refusal where the system is certain to refuse.
        return;
    };
    let e = Tensor::zeros(&[1 << 20, 1 << 20], DType::F32, &Cpu).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("full"), "{msg}");
    assert!(msg.contains(&(4usize << 40).to_string()), "{msg}");
    assert!(msg.contains(&limit.to_string()), "{msg}");
}

/// `features --tensor` at 700 x 700 used to ask for 9.3 GB (the attention scores of a batch)
/// and abort; now the forward of one image is checked against the budget first.
#[test]
fn features_of_huge_images_are_refused_before_computing() {
    let d = temp_dir("features-700");
    let x = Tensor::<Cpu>::zeros(&[1, 1, 700, 700], DType::F32, &Cpu).unwrap();
    let t = write_tensor(&d, x);
    let out_file = d.join("out.safetensors");
    let mut args = vec!["--tensor", s(&t), "--output", s(&out_file)];
    args.extend(SMALL_RANDOM);
    let out = run("features", Some("64M"), &args);
    let line = assert_fails(
        &out,
        &["700x700", "10001 tokens", "the limit is 67108864 bytes"],
    );
    assert!(line.contains("TESSERA_MEMORY_LIMIT"), "{line}");
    assert!(!out_file.exists());
}

/// A malformed budget is a clear error, not silently ignored.
#[test]
fn a_malformed_budget_is_reported() {
    let d = temp_dir("bad-budget");
    let x = Tensor::<Cpu>::zeros(&[1, 1, 28, 28], DType::F32, &Cpu).unwrap();
    let t = write_tensor(&d, x);
    let out_file = d.join("out.safetensors");
    let mut args = vec!["--tensor", s(&t), "--output", s(&out_file)];
    args.extend(SMALL_RANDOM);
    let out = run("features", Some("lots"), &args);
    assert_fails(&out, &["TESSERA_MEMORY_LIMIT", "not a size"]);
    // The same run within a real budget succeeds.
    let out = run("features", Some("1G"), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out_file.is_file());
}

/// A checkpoint whose (finite) final-norm weights overflow f32 gives infinite features:
/// `features` used to write them with exit 0; now it refuses, naming the first bad image
/// (row) and feature, and writes nothing.
#[test]
fn features_refuses_non_finite_output() {
    let d = temp_dir("features-inf");
    let ck = write_checkpoint(&d, overflowing_norm);
    let x = Tensor::<Cpu>::full(&[3, 1, 28, 28], 0.5, DType::F32, &Cpu).unwrap();
    let t = write_tensor(&d, x);
    let out_file = d.join("out.safetensors");
    let out = run(
        "features",
        None,
        &[
            "--checkpoint",
            s(&ck),
            "--tensor",
            s(&t),
            "--output",
            s(&out_file),
            "--device",
            "cpu",
        ],
    );
    assert_fails(&out, &["the CLS features", "not finite", "(row 0, col"]);
    assert!(!out_file.exists());
}

/// Sets the final norm's weights to `f32::MAX`: finite (a checkpoint loader accepts them),
/// but every normalized value above 1 in magnitude becomes infinite.
fn overflowing_norm(sd: &mut StateDict<Cpu>) {
    let w = sd.get_mut("norm.weight").expect("norm.weight");
    *w = Tensor::full(w.shape(), f32::MAX as f64, DType::F32, &Cpu).unwrap();
}

/// A checkpoint whose (finite) final-norm weights overflow f32 gives infinite features:
/// `knn_eval` used to print a garbage accuracy with exit 0; now the k-NN refuses them.
#[test]
fn knn_eval_refuses_non_finite_features() {
    let d = temp_dir("knn-inf");
    let ck = write_checkpoint(&d, overflowing_norm);
    let out = run(
        "knn_eval",
        None,
        &[
            "--checkpoint",
            s(&ck),
            "--eval-train",
            "40",
            "--eval-test",
            "20",
            "--device",
            "cpu",
        ],
    );
    assert_fails(
        &out,
        &["k-NN", "train (bank) features", "not finite", "(row 0, col"],
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// NaN weights: refused, whether by the checkpoint loader or by the k-NN, never a result.
#[test]
fn knn_eval_refuses_a_nan_checkpoint() {
    let d = temp_dir("knn-nan");
    let ck = write_checkpoint(&d, |sd| {
        let w = sd.get_mut("norm.bias").expect("norm.bias");
        *w = Tensor::full(w.shape(), f64::NAN, DType::F32, &Cpu).unwrap();
    });
    let out = run(
        "knn_eval",
        None,
        &[
            "--checkpoint",
            s(&ck),
            "--eval-train",
            "40",
            "--eval-test",
            "20",
            "--device",
            "cpu",
        ],
    );
    let line = assert_fails(&out, &[]);
    assert!(
        line.contains("NaN") || line.contains("not finite"),
        "{line}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("top-1"));
}

/// `dino_vit_s --img-size 700` used to abort after asking for 51 GB (the attention scores of
/// a 64-image feature batch at 10,001 tokens); with a budget it is a one-line error.
#[test]
fn dino_at_700_pixels_is_an_error_not_an_abort() {
    let d = temp_dir("dino-700");
    let out = run(
        "dino_vit_s",
        Some("2G"),
        &[
            "--preset",
            "tiny",
            "--img-size",
            "700",
            "--output-dir",
            s(&d),
            "--device",
            "cpu",
        ],
    );
    assert_fails(&out, &["cannot allocate", "the limit is 2147483648 bytes"]);
}

/// NaN weights: `attention_maps` used to draw and `features` to write garbage with exit 0; the
/// checkpoint loader now refuses the file, naming the tensor, and nothing is written.
#[test]
fn attention_maps_and_features_refuse_a_nan_checkpoint() {
    let d = temp_dir("nan-tools");
    let ck = write_checkpoint(&d, |sd| {
        let w = sd.get_mut("norm.bias").expect("norm.bias");
        *w = Tensor::full(w.shape(), f64::NAN, DType::F32, &Cpu).unwrap();
    });
    let png = d.join("attention.png");
    let out = run(
        "attention_maps",
        None,
        &[
            "--checkpoint",
            s(&ck),
            "--output",
            s(&png),
            "--device",
            "cpu",
        ],
    );
    assert_fails(&out, &["norm.bias", "NaN"]);
    assert!(!png.exists());

    let x = Tensor::<Cpu>::full(&[2, 1, 28, 28], 0.5, DType::F32, &Cpu).unwrap();
    let t = write_tensor(&d, x);
    let out_file = d.join("out.safetensors");
    let out = run(
        "features",
        None,
        &[
            "--checkpoint",
            s(&ck),
            "--tensor",
            s(&t),
            "--output",
            s(&out_file),
            "--device",
            "cpu",
        ],
    );
    assert_fails(&out, &["norm.bias", "NaN"]);
    assert!(!out_file.exists());
}

/// Finite weights that overflow inside the last block (its first norm scaled to `f32::MAX`)
/// make the attention NaN: `attention_maps` refuses to draw it and names the first bad value.
#[test]
fn attention_maps_refuses_non_finite_attention() {
    let d = temp_dir("attention-inf");
    let ck = write_checkpoint(&d, |sd| {
        let w = sd
            .get_mut("blocks.1.norm1.weight")
            .expect("blocks.1.norm1.weight");
        *w = Tensor::full(w.shape(), f32::MAX as f64, DType::F32, &Cpu).unwrap();
    });
    let png = d.join("attention.png");
    let out = run(
        "attention_maps",
        None,
        &[
            "--checkpoint",
            s(&ck),
            "--output",
            s(&png),
            "--device",
            "cpu",
        ],
    );
    assert_fails(&out, &["CLS attention", "not finite", "(row 0, col"]);
    assert!(!png.exists());
}
