//! Runs the built `attention_maps` and `features` example binaries: the happy paths on a tiny
//! ViT (a checkpoint written here in `dino_vit_s`'s format, one written by `dino_vit_s
//! --preset tiny`, and a small random model), checking the PNG's size and the exported
//! tensors' shapes and values, and one-line errors with exit codes for bad input. Plain
//! `cargo test` builds the examples first (`cargo test --test examples_attention_features`
//! alone does not).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tessera::nn::checkpoint::{with_prefix, Checkpoint, Metadata, StateDict};
use tessera::nn::models::vit::{VisionTransformer, VitConfig};
use tessera::nn::ModuleExt;
use tessera::tensor::{Cpu, DType, Rng, Tensor};

mod cli_support;
use cli_support::named_example;

/// A fresh temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    cli_support::temp_dir("af", name)
}

fn run(example: &str, args: &[&str]) -> Output {
    Command::new(named_example(example))
        .args(args)
        .output()
        .expect("running the example")
}

fn assert_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a failure with exit `code`, a one-line `error:` message containing `needle` and
/// no panic.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    assert!(line.contains(needle), "{line:?} lacks {needle:?}");
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

/// A checkpoint laid out as `dino_vit_s` writes it (backbones under `teacher.backbone.` and
/// `student.backbone.`, the architecture in the metadata), with random weights.
fn write_checkpoint(dir: &Path, arch: &str) -> PathBuf {
    let vit = VisionTransformer::new(tiny_vit(), DType::F32, &mut Rng::new(3), &Cpu).unwrap();
    let sd = vit.state_dict();
    let mut tensors: StateDict<Cpu> = with_prefix(&sd, "teacher.backbone.");
    tensors.extend(with_prefix(&sd, "student.backbone."));
    let mut metadata = Metadata::new();
    metadata.insert("arch".into(), arch.into());
    let path = dir.join("checkpoint.safetensors");
    Checkpoint { tensors, metadata }.save(&path).unwrap();
    path
}

fn write_tensor(dir: &Path, key: &str, t: Tensor<Cpu>) -> PathBuf {
    let mut tensors = StateDict::new();
    tensors.insert(key.to_string(), t);
    let path = dir.join("batch.safetensors");
    Checkpoint::new(tensors).save(&path).unwrap();
    path
}

fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap();
    (img.width(), img.height())
}

/// The `mass on patches` of every head in `attention_maps`' summary.
fn head_masses(stdout: &str) -> Vec<f64> {
    stdout
        .lines()
        .filter_map(|l| l.split("mass on patches ").nth(1))
        .map(|r| r.split(',').next().unwrap().parse().unwrap())
        .collect()
}

/// The tensors and metadata of a `features` output.
fn load(path: &Path) -> Checkpoint<Cpu> {
    assert!(path.is_file(), "{} missing", path.display());
    Checkpoint::load(path, &Cpu).unwrap()
}

/// Every map of `attention` `[b, heads, gh, gw]` is part of a softmax row: non-negative,
/// summing to at most 1 (and above 0).
fn assert_attention_rows(attention: &Tensor<Cpu>) {
    let sh = attention.shape();
    let v = attention.to_vec::<f32>().unwrap();
    let n = sh[2] * sh[3];
    assert!(v.iter().all(|&x| x >= 0.0 && x.is_finite()));
    for (i, m) in v.chunks_exact(n).enumerate() {
        let sum: f32 = m.iter().sum();
        assert!(sum > 0.0 && sum <= 1.0 + 1e-5, "map {i} sums to {sum}");
    }
}

fn shape(ck: &Checkpoint<Cpu>, key: &str) -> Vec<usize> {
    ck.tensors
        .get(key)
        .unwrap_or_else(|| panic!("no {key}"))
        .shape()
        .to_vec()
}

// ---- attention_maps ----

#[test]
fn attention_maps_of_a_checkpoint() {
    let d = temp_dir("am-ck");
    let ck = write_checkpoint(&d, TINY_ARCH);
    let png = d.join("out/attention.png");
    let out = run(
        "attention_maps",
        &["--checkpoint", s(&ck), "--output", s(&png)],
    );
    let stdout = assert_ok(&out);
    // 28-px tiles zoomed 8x (224 / 28): the photo, the model's input and 2 heads, in a
    // figure with a title, captions and colour bars.
    assert!(stdout.contains("tiles of 224x224 px"), "{stdout}");
    let (w, h) = png_size(&png);
    assert!(w >= 3 * 224 && h > 224, "{w}x{h}");
    assert!(
        stdout.contains(&format!("wrote {}", png.display())),
        "{stdout}"
    );
    assert!(stdout.contains("4x4 patches of 7 px"), "{stdout}");
    let m = head_masses(&stdout);
    assert_eq!(m.len(), 2, "{stdout}");
    assert!(m.iter().all(|&x| x > 0.0 && x <= 1.0), "{m:?}");

    // The student, another photo, a threshold and another zoom.
    let png2 = d.join("thr.png");
    let coffee = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/photos/coffee.png");
    let out = run(
        "attention_maps",
        &[
            "--checkpoint",
            s(&ck),
            "--network",
            "student",
            "--image",
            s(&coffee),
            "--img-size",
            "56",
            "--zoom",
            "1",
            "--threshold",
            "0.6",
            "--output",
            s(&png2),
        ],
    );
    let stdout = assert_ok(&out);
    assert!(stdout.contains("tiles of 56x56 px"), "{stdout}");
    let (w, h) = png_size(&png2);
    assert!(w > 3 * 56 && h > 56, "{w}x{h}");
    assert!(
        stdout.contains("/64 patches hold 60% of the mass"),
        "{stdout}"
    );
}

#[test]
fn attention_maps_of_a_random_model() {
    let d = temp_dir("am-random");
    let png = d.join("a.png");
    let out = run(
        "attention_maps",
        &[
            "--embed-dim",
            "24",
            "--depth",
            "1",
            "--heads",
            "4",
            "--patch-size",
            "8",
            "--img-size",
            "32",
            "--zoom",
            "2",
            "--output",
            s(&png),
        ],
    );
    let stdout = assert_ok(&out);
    assert!(stdout.contains("not meaningful"), "{stdout}");
    // 64-px tiles, 4 heads, in a figure larger than the tiles.
    assert!(stdout.contains("tiles of 64x64 px"), "{stdout}");
    let (w, h) = png_size(&png);
    assert!(w > 4 * 64 && h > 64, "{w}x{h}");
    let m = head_masses(&stdout);
    assert_eq!(m.len(), 4);
    assert!(m.iter().all(|&x| x > 0.0 && x <= 1.0), "{m:?}");
}

#[test]
fn attention_maps_bad_input() {
    let d = temp_dir("am-bad");
    let ck = write_checkpoint(&d, TINY_ARCH);
    let out_png = d.join("x.png");
    let o = s(&out_png);
    let am = |extra: &[&str]| {
        let mut a = vec!["--checkpoint", s(&ck), "--output", o];
        a.extend(extra);
        run("attention_maps", &a)
    };
    assert_fails(
        &am(&["--image", "/nonexistent/tessera.png"]),
        1,
        "no image at",
    );
    let txt = d.join("not-an-image.png");
    std::fs::write(&txt, "hello").unwrap();
    assert_fails(&am(&["--image", s(&txt)]), 1, "cannot decode the image");
    assert_fails(
        &am(&["--img-size", "30"]),
        2,
        "--img-size 30: not a multiple of the patch size 7 (try 28 or 35)",
    );
    assert_fails(
        &am(&["--patch-size", "8"]),
        1,
        "the checkpoint's patch size is 7",
    );
    assert_fails(&am(&["--threshold", "1.5"]), 2, "--threshold");
    assert_fails(&am(&["--network", "ema"]), 2, "teacher or student");
    assert_fails(
        &am(&["--depth", "1"]),
        2,
        "cannot be used with --checkpoint",
    );
    assert_fails(
        &run(
            "attention_maps",
            &["--checkpoint", "/nonexistent/ck.safetensors"],
        ),
        1,
        "no checkpoint at",
    );
    let other = temp_dir("am-bad-arch");
    let rn = write_checkpoint(&other, "resnet18(in 1, small_stem true, img 28)");
    assert_fails(
        &run("attention_maps", &["--checkpoint", s(&rn), "--output", o]),
        1,
        "another architecture",
    );
    assert_fails(
        &run(
            "attention_maps",
            &["--patch-size", "16", "--img-size", "100"],
        ),
        2,
        "--img-size 100: not a multiple of the patch size 16",
    );
    assert!(!out_png.exists());
}

// ---- features ----

#[test]
fn features_of_the_embedded_dataset() {
    let d = temp_dir("ft-data");
    let ck = write_checkpoint(&d, TINY_ARCH);
    let f = d.join("f/features.safetensors");
    let out = run(
        "features",
        &["--checkpoint", s(&ck), "--limit", "20", "--output", s(&f)],
    );
    let stdout = assert_ok(&out);
    assert!(
        stdout.contains(&format!("wrote {}", f.display())),
        "{stdout}"
    );
    let r = load(&f);
    assert_eq!(shape(&r, "cls"), [20, 32]);
    assert_eq!(shape(&r, "attention"), [20, 2, 4, 4]);
    assert_eq!(shape(&r, "labels"), [20]);
    assert_eq!(r.tensors["cls"].dtype(), DType::F32);
    let labels = r.tensors["labels"].to_vec::<i64>().unwrap();
    assert!(labels.iter().all(|&l| (0..10).contains(&l)));
    assert!(labels.iter().any(|&l| l != labels[0]), "{labels:?}");
    assert_attention_rows(&r.tensors["attention"]);
    assert_eq!(r.metadata["arch"], TINY_ARCH);
}

#[test]
fn features_of_image_files_and_of_a_tensor() {
    let d = temp_dir("ft-files");
    let ck = write_checkpoint(&d, TINY_ARCH);
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/photos");
    let f = d.join("photos.safetensors");
    let out = run(
        "features",
        &[
            "--checkpoint",
            s(&ck),
            "--images",
            s(&photos),
            "--images",
            s(&photos.join("coffee.png")),
            "--img-size",
            "42",
            "--output",
            s(&f),
        ],
    );
    assert_ok(&out);
    let r = load(&f);
    assert_eq!(shape(&r, "cls"), [3, 32]);
    assert_eq!(shape(&r, "attention"), [3, 2, 6, 6]);
    assert!(!r.tensors.contains_key("labels"));
    assert_attention_rows(&r.tensors["attention"]);
    let files: Vec<&str> = r.metadata["files"].lines().collect();
    assert_eq!(files.len(), 3);
    assert!(files[0].ends_with("chelsea.png") && files[2].ends_with("coffee.png"));

    // A non-square f64 batch, used as is.
    let x = Tensor::rand_uniform(
        &[3, 1, 28, 35],
        0.0,
        1.0,
        DType::F64,
        &mut Rng::new(1),
        &Cpu,
    )
    .unwrap();
    let t = write_tensor(&d, "x", x);
    let f2 = d.join("tensor.safetensors");
    let out = run(
        "features",
        &[
            "--checkpoint",
            s(&ck),
            "--tensor",
            s(&t),
            "--key",
            "x",
            "--output",
            s(&f2),
        ],
    );
    assert_ok(&out);
    let r = load(&f2);
    assert_eq!(shape(&r, "cls"), [3, 32]);
    assert_eq!(shape(&r, "attention"), [3, 2, 4, 5]);
    assert_attention_rows(&r.tensors["attention"]);
}

#[test]
fn features_of_a_random_model() {
    let d = temp_dir("ft-random");
    let f = d.join("r.safetensors");
    let out = run(
        "features",
        &[
            "--limit",
            "10",
            "--embed-dim",
            "24",
            "--depth",
            "1",
            "--heads",
            "3",
            "--output",
            s(&f),
        ],
    );
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: no --checkpoint"));
    let r = load(&f);
    assert_eq!(shape(&r, "cls"), [10, 24]);
    assert_eq!(shape(&r, "attention"), [10, 3, 4, 4]);
    assert_eq!(shape(&r, "labels"), [10]);
    assert_attention_rows(&r.tensors["attention"]);
}

#[test]
fn features_bad_input() {
    let d = temp_dir("ft-bad");
    let ck = write_checkpoint(&d, TINY_ARCH);
    let f = d.join("never.safetensors");
    let ft = |extra: &[&str]| {
        let mut a = vec!["--checkpoint", s(&ck), "--output", s(&f)];
        a.extend(extra);
        run("features", &a)
    };
    assert_fails(
        &ft(&["--images", "/nonexistent/tessera.png"]),
        1,
        "no image at",
    );
    assert_fails(
        &ft(&["--tensor", "/nonexistent/x.safetensors"]),
        1,
        "no tensor file at",
    );
    let cases: [(&str, Tensor<Cpu>, &str); 4] = [
        (
            "rank",
            Tensor::zeros(&[1, 28, 28], DType::F32, &Cpu).unwrap(),
            "must be [b, c, h, w], got shape [1, 28, 28]",
        ),
        (
            "dtype",
            Tensor::from_vec(vec![0i64; 784], &[1, 1, 28, 28], &Cpu).unwrap(),
            "must be a float tensor",
        ),
        (
            "patch",
            Tensor::zeros(&[2, 1, 28, 30], DType::F32, &Cpu).unwrap(),
            "28x30 is not a multiple of the patch size 7",
        ),
        (
            "channels",
            Tensor::zeros(&[2, 3, 28, 28], DType::F32, &Cpu).unwrap(),
            "the input has 3 channels; the model expects 1",
        ),
    ];
    for (name, t, needle) in cases {
        let sub = d.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let path = write_tensor(&sub, "images", t);
        assert_fails(&ft(&["--tensor", s(&path), "--key", "images"]), 1, needle);
        if name == "rank" {
            assert_fails(
                &ft(&["--tensor", s(&path), "--key", "pixels"]),
                1,
                "no tensor \"pixels\"",
            );
        }
    }
    assert_fails(
        &ft(&["--images", "/tmp", "--tensor", "x.safetensors"]),
        2,
        "not both",
    );
    assert_fails(
        &run(
            "features",
            &[
                "--checkpoint",
                "/nonexistent/ck.safetensors",
                "--output",
                s(&f),
            ],
        ),
        1,
        "no checkpoint at",
    );
    let other = temp_dir("ft-bad-arch");
    let rn = write_checkpoint(&other, "resnet18(in 1, small_stem true, img 28)");
    assert_fails(
        &run("features", &["--checkpoint", s(&rn), "--output", s(&f)]),
        1,
        "another architecture",
    );
    let no_arch = temp_dir("ft-bad-noarch");
    let path = write_tensor(
        &no_arch,
        "w",
        Tensor::zeros(&[2], DType::F32, &Cpu).unwrap(),
    );
    assert_fails(
        &run("features", &["--checkpoint", s(&path), "--output", s(&f)]),
        1,
        "no architecture metadata",
    );
    assert!(!f.exists());
}

// ---- a real dino_vit_s checkpoint ----

#[test]
fn both_examples_read_a_dino_vit_s_checkpoint() {
    let d = temp_dir("dino");
    let out = run(
        "dino_vit_s",
        &["--preset", "tiny", "--epochs", "1", "--output-dir", s(&d)],
    );
    assert_ok(&out);
    let ck = d.join("checkpoint.safetensors");
    let png = d.join("attention.png");
    let out = run(
        "attention_maps",
        &["--checkpoint", s(&ck), "--zoom", "2", "--output", s(&png)],
    );
    let stdout = assert_ok(&out);
    let heads = tiny_vit().num_heads as u32;
    assert!(stdout.contains("tiles of 56x56 px"), "{stdout}");
    let (w, h) = png_size(&png);
    assert!(w > (1 + heads) * 56 && h > 56, "{w}x{h}");
    let f = d.join("features.safetensors");
    let out = run(
        "features",
        &["--checkpoint", s(&ck), "--limit", "10", "--output", s(&f)],
    );
    assert_ok(&out);
    let r = load(&f);
    assert_eq!(shape(&r, "cls"), [10, 32]);
    assert_eq!(shape(&r, "attention"), [10, 2, 4, 4]);
    assert_attention_rows(&r.tensors["attention"]);
}
