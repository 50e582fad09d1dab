//! The fuzz targets' inputs on stable, in CI (debug and release): every committed seed
//! (`fuzz/corpus/<target>/`) and every input that once crashed a target
//! (`fuzz/regressions/<target>/`) goes through the same body the fuzz target runs
//! (`fuzz/src/lib.rs`, compiled here through `#[path]`), which asserts that it loads with a
//! consistent result or fails with a message, without a panic. Then a few of the hostile
//! inputs of issue 16 with the error each must give.
//!
//! The seeds are written by `write_seeds` (ignored; run it after changing a format):
//! `cargo test --test fuzz_regressions -- --ignored write_seeds`.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::path::{Path, PathBuf};
use tessera::nn::{Checkpoint, StateDict};
use tessera::ssl::data::{self, FolderOptions};
use tessera::tensor::{Cpu, HostBuffer, Tensor};

fn fuzz_dir(sub: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(sub)
        .join(target)
}

/// Runs `body` on every seed and regression input of `target`. There must be seeds, and each
/// must load, except those named `seed-err-*` (inputs that must fail cleanly).
fn run_all(target: &str, body: fn(&[u8]) -> bool) {
    let mut seeds = 0;
    for sub in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir(sub, target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let loaded = body(&std::fs::read(&f).unwrap());
            if sub == "corpus" {
                seeds += 1;
                let must = !name.starts_with("seed-err-");
                assert_eq!(loaded, must, "{}: loaded {loaded}", f.display());
            }
        }
    }
    assert!(seeds > 0, "no seeds in fuzz/corpus/{target}");
}

#[test]
fn checkpoint_inputs() {
    run_all("checkpoint", targets::checkpoint);
}

#[test]
fn idx_inputs() {
    run_all("idx", targets::idx);
}

#[test]
fn cifar_inputs() {
    run_all("cifar", targets::cifar);
}

#[test]
fn image_folder_inputs() {
    run_all("image_folder", targets::image_folder);
}

#[test]
fn args_inputs() {
    run_all("args", targets::args);
    // The tables come from the examples' sources: a change of form there must not leave the
    // target fuzzing an empty table.
    for (name, flags) in targets::example_flag_tables() {
        assert!(flags.len() > 3, "{name}: {} flags found", flags.len());
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-fuzzreg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// Issue 16: a gzip bomb in the IDX reader inflated fully (4.2 GB) before any check. The
/// regression input `fuzz/regressions/idx/gzip-bomb` is such a file: a header for one 28x28
/// image followed by 64 MiB of zeros, 64 KiB compressed. Now decompression stops one byte past
/// the declared size.
#[test]
fn idx_gzip_bomb_stops_at_the_declared_size() {
    let input = std::fs::read(fuzz_dir("regressions", "idx").join("gzip-bomb")).unwrap();
    let (_, parts) = targets::split(&input, 2).unwrap();
    let d = tmp("bomb");
    let images = d.join("train-images-idx3-ubyte.gz");
    std::fs::write(&images, parts[0]).unwrap();
    let labels = d.join("train-labels-idx1-ubyte");
    std::fs::write(&labels, idx_bytes(0x801, &[1], &[0])).unwrap();
    let e = data::read_idx(&images, &labels, 10)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("goes on past the 800 bytes") && e.contains("train-images-idx3-ubyte.gz"),
        "{e}"
    );
}

/// A header that declares more than the budget (or more than u64) is refused before anything
/// is allocated, naming the file and the declared shape.
#[test]
fn idx_huge_declared_sizes_are_errors() {
    tessera::tensor::set_memory_limit(Some(targets::BUDGET_MB << 20));
    let d = tmp("huge");
    let labels = d.join("train-labels-idx1-ubyte");
    std::fs::write(&labels, idx_bytes(0x801, &[1], &[0])).unwrap();
    for dims in [[60_000, 1000, 1000], [u32::MAX, u32::MAX, u32::MAX]] {
        let images = d.join("train-images-idx3-ubyte.gz");
        std::fs::write(
            &images,
            targets::gzip_stored(&idx_bytes(0x803, &dims, &[1; 10])),
        )
        .unwrap();
        let e = data::read_idx(&images, &labels, 10)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot allocate") && e.contains(&format!("{dims:?}")),
            "{e}"
        );
        // Plain files: the size on disk is compared with the declared one first.
        let plain = d.join("train-images-idx3-ubyte");
        std::fs::write(&plain, idx_bytes(0x803, &dims, &[1; 10])).unwrap();
        let e = data::read_idx(&plain, &labels, 10).unwrap_err().to_string();
        assert!(
            e.contains("truncated file") && e.contains("found 26"),
            "{e}"
        );
        std::fs::remove_file(&images).unwrap();
    }
}

#[test]
fn idx_trailing_and_missing_data_are_errors() {
    let d = tmp("trail");
    let labels = d.join("train-labels-idx1-ubyte");
    std::fs::write(&labels, idx_bytes(0x801, &[2], &[0, 1])).unwrap();
    let (gz, plain) = (
        d.join("train-images-idx3-ubyte.gz"),
        d.join("train-images-idx3-ubyte"),
    );
    // 2 images of 2x2: 16 header bytes and 8 pixels declared.
    let with = |pixels: usize| idx_bytes(0x803, &[2, 2, 2], &vec![7; pixels]);
    let err = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).unwrap();
        data::read_idx(path, &labels, 10).unwrap_err().to_string()
    };
    let e = err(&gz, &targets::gzip_stored(&with(9)));
    assert!(e.contains("goes on past the 24 bytes"), "{e}");
    let e = err(&gz, &targets::gzip_stored(&with(7)));
    assert!(
        e.contains("(decompressed): truncated file: expected 24 bytes, found 23"),
        "{e}"
    );
    std::fs::remove_file(&gz).unwrap();
    let e = err(&plain, &with(9));
    assert!(
        e.contains("file too long: expected 24 bytes, found 25"),
        "{e}"
    );
    let e = err(&plain, &with(7));
    assert!(
        e.contains("truncated file: expected 24 bytes, found 23"),
        "{e}"
    );
    std::fs::write(&plain, with(8)).unwrap();
    let ds = data::read_idx(&plain, &labels, 10).unwrap();
    assert_eq!((ds.shape, ds.labels), ([2, 1, 2, 2], vec![0, 1]));
}

#[test]
fn cifar_partial_records_are_errors_before_reading() {
    let d = tmp("cifar");
    std::fs::write(d.join("data_batch_1.bin"), vec![1u8; 3073 * 2]).unwrap();
    std::fs::write(d.join("data_batch_2.bin"), vec![1u8; 3073 + 5]).unwrap();
    let e = data::read_cifar10(&d, true).unwrap_err().to_string();
    assert!(
        e.contains("data_batch_2.bin") && e.contains("expected 6146 bytes, found 3078"),
        "{e}"
    );
}

fn one_tensor_checkpoint(values: Vec<f32>) -> Vec<u8> {
    let mut sd = StateDict::new();
    let t = Tensor::from_host(HostBuffer::F32(values), &[2, 2], &Cpu).unwrap();
    sd.insert("blocks.0.attn.qkv.weight".to_string(), t);
    Checkpoint::new(sd).to_bytes().unwrap()
}

/// Issue 16: a checkpoint with NaN weights loaded silently (then every tool printed garbage).
#[test]
fn checkpoint_non_finite_weights_name_the_tensor() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let bytes = one_tensor_checkpoint(vec![0.5, 1.0, bad, 2.0]);
        let e = Checkpoint::<Cpu>::from_bytes(&bytes, &Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"blocks.0.attn.qkv.weight\"") && e.contains("flat index 2"),
            "{e}"
        );
    }
    assert!(Checkpoint::<Cpu>::from_bytes(&one_tensor_checkpoint(vec![1.0; 4]), &Cpu).is_ok());
}

/// Header length, offsets and sizes that do not fit the file are errors with both numbers;
/// offsets near `usize::MAX` used to overflow (a panic in debug builds) inside the
/// `safetensors` crate's final size check.
#[test]
fn checkpoint_bad_headers_are_errors() {
    let file = |header: &str, data: &[u8]| {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    };
    let load = |bytes: &[u8]| {
        Checkpoint::<Cpu>::from_bytes(bytes, &Cpu)
            .unwrap_err()
            .to_string()
    };
    let e = load(&u64::MAX.to_le_bytes());
    assert!(
        e.contains(&format!("says {} bytes but only 0", u64::MAX)),
        "{e}"
    );
    let e = load(&[1, 2, 3]);
    assert!(e.contains("3 bytes, fewer than the 8"), "{e}");
    let e = load(&file(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        &[0; 4],
    ));
    assert!(
        e.contains("cover 8 bytes of data but the file has 4"),
        "{e}"
    );
    let e = load(&file(
        r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert!(e.contains("invalid shape, data type, or offset"), "{e}");
    // Overlapping ranges.
    let e = load(&file(
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
        &[0; 6],
    ));
    assert!(e.contains("invalid offset"), "{e}");
    // Eight tensors of 2^61 - 1 bytes and one of 7: offsets up to usize::MAX.
    let big = (1u64 << 61) - 1;
    let mut header = String::from("{");
    for i in 0..8u64 {
        header += &format!(
            r#""t{i}":{{"dtype":"U8","shape":[{big}],"data_offsets":[{},{}]}},"#,
            i * big,
            (i + 1) * big
        );
    }
    header += &format!(
        r#""t8":{{"dtype":"U8","shape":[7],"data_offsets":[{},{}]}}}}"#,
        8 * big,
        8 * big + 7
    );
    let e = load(&file(&header, &[]));
    assert!(e.contains(&format!("cover {} bytes", u64::MAX)), "{e}");
}

/// A long, thin image resized to cover a square asks for a huge intermediate: an error naming
/// the file and the sizes, not an allocation.
#[test]
fn image_resize_bombs_are_errors() {
    tessera::tensor::set_memory_limit(Some(targets::BUDGET_MB << 20));
    let d = tmp("thin");
    std::fs::create_dir_all(d.join("a")).unwrap();
    let path = d.join("a").join("thin.png");
    image::RgbImage::new(60_000, 1).save(&path).unwrap();
    let opts = FolderOptions {
        size: Some((64, 64)),
        channels: 3,
    };
    let e = data::read_image_folder(&d, &opts).unwrap_err().to_string();
    assert!(
        e.contains("thin.png") && e.contains("resizing the 1x60000 image to 64x3840000"),
        "{e}"
    );
}

/// Writes the seed corpora `fuzz/corpus/<target>/seed-*` (small valid inputs of every format
/// and mode). Ignored: run it by name after a format change, then commit the files.
#[test]
#[ignore]
fn write_seeds() {
    let seed = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir("corpus", target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    // checkpoint: every dtype, metadata; an empty one; a scalar and an empty tensor.
    let mut sd = StateDict::new();
    let mut put = |name: &str, buf: HostBuffer, shape: &[usize]| {
        sd.insert(name.into(), Tensor::from_host(buf, shape, &Cpu).unwrap());
    };
    put(
        "f32",
        HostBuffer::F32(vec![0.5, -1.0, 3.0, 1e-3, 2.0, 7.0]),
        &[2, 3],
    );
    put("f64", HostBuffer::F64(vec![1.0, -2.0]), &[2]);
    put(
        "f16",
        HostBuffer::F16(vec![tessera::tensor::f16::from_f32(1.5); 3]),
        &[3, 1],
    );
    put(
        "bf16",
        HostBuffer::BF16(vec![tessera::tensor::bf16::from_f32(-0.25); 4]),
        &[2, 2],
    );
    put("i64", HostBuffer::I64(vec![5, -6]), &[1, 2]);
    put("u8", HostBuffer::U8(vec![1, 0, 1]), &[3]);
    put("scalar", HostBuffer::F32(vec![4.0]), &[]);
    put("empty", HostBuffer::F32(vec![]), &[0, 5]);
    let mut ck = Checkpoint::new(sd);
    ck.metadata.insert("arch".into(), "vit_tiny".into());
    ck.metadata.insert("epoch".into(), "3".into());
    seed("checkpoint", "all-dtypes", &ck.to_bytes().unwrap());
    let mut empty = Checkpoint::<Cpu>::new(StateDict::new());
    empty.metadata.insert("k".into(), "v".into());
    seed("checkpoint", "no-tensors", &empty.to_bytes().unwrap());
    seed(
        "checkpoint",
        "one-tensor",
        &one_tensor_checkpoint(vec![1.0, 2.0, 3.0, 4.0]),
    );

    // idx: four Fashion-MNIST test images, plain, gzipped by the harness, and detected; the
    // real (deflate-compressed) test labels with 10000 1x1 images.
    let fm = root.join("data/fashion-mnist");
    let test = data::read_idx(
        &fm.join("t10k-images-idx3-ubyte.gz"),
        &fm.join("t10k-labels-idx1-ubyte.gz"),
        10,
    )
    .unwrap();
    let img = idx_bytes(0x803, &[4, 28, 28], &test.images[..4 * 784]);
    let lab_u8: Vec<u8> = test.labels[..4].iter().map(|&l| l as u8).collect();
    let lab = idx_bytes(0x801, &[4], &lab_u8);
    seed("idx", "plain", &targets::pack(0, &[&img, &lab]));
    seed("idx", "gz", &targets::pack(2 | 8, &[&img, &lab]));
    seed("idx", "open", &targets::pack(16 | 2, &[&img, &lab]));
    let real_labels = std::fs::read(fm.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let n = test.len() as u32;
    let px: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let img1 = idx_bytes(0x803, &[n, 1, 1], &px);
    seed(
        "idx",
        "real-gz-labels",
        &targets::pack(4, &[&img1, &real_labels]),
    );

    // cifar: two records (label, then a 3x32x32 gradient) as CIFAR-10 in one and two files,
    // as CIFAR-100 (fine and coarse) and through format detection.
    let record = |labels: &[u8], k: u8| {
        let mut r = labels.to_vec();
        r.extend((0..3072u32).map(|i| (i as u8).wrapping_mul(k)));
        r
    };
    let c10 = [record(&[3], 1), record(&[7], 3)].concat();
    let c100 = [record(&[4, 42], 1), record(&[19, 99], 5)].concat();
    seed("cifar", "c10-one-file", &[&[0u8][..], &c10].concat());
    seed("cifar", "c10-two-files", &[&[8u8][..], &c10].concat());
    seed("cifar", "c10-open", &[&[32u8][..], &c10].concat());
    seed("cifar", "c100-fine", &[&[1u8][..], &c100].concat());
    seed(
        "cifar",
        "c100-coarse-open",
        &[&[1u8 | 2 | 32][..], &c100].concat(),
    );

    // image_folder: small crops of the embedded photos as PNG (RGB, gray, RGBA, 16-bit) and
    // JPEG, alone or two in a tree, with and without a resize.
    let photo = image::open(root.join("data/photos/chelsea.png")).unwrap();
    let small = photo.resize_exact(12, 9, image::imageops::FilterType::Triangle);
    let enc = |img: &image::DynamicImage, fmt: image::ImageFormat| {
        let mut c = std::io::Cursor::new(Vec::new());
        img.write_to(&mut c, fmt).unwrap();
        c.into_inner()
    };
    use image::ImageFormat::{Jpeg, Png};
    let png = enc(&small, Png);
    let gray = enc(&image::DynamicImage::ImageLuma8(small.to_luma8()), Png);
    let rgba = enc(&image::DynamicImage::ImageRgba8(small.to_rgba8()), Png);
    let rgb16 = enc(&image::DynamicImage::ImageRgb16(small.to_rgb16()), Png);
    let jpg = enc(&image::DynamicImage::ImageRgb8(small.to_rgb8()), Jpeg);
    let folder = |mode: u8, h: u8, w: u8, a: &[u8], b: &[u8]| {
        let mut v = vec![mode, h, w];
        v.extend(targets::pack(0, &[a, b])[1..].iter());
        v
    };
    seed("image_folder", "png", &folder(0, 0, 0, &png, &[]));
    seed("image_folder", "gray-1ch", &folder(1, 0, 0, &gray, &[]));
    seed("image_folder", "rgba-resize", &folder(2, 7, 15, &rgba, &[]));
    seed(
        "image_folder",
        "rgb16-resize-1ch",
        &folder(3, 31, 4, &rgb16, &[]),
    );
    seed("image_folder", "jpeg", &folder(16, 0, 0, &jpg, &[]));
    seed(
        "image_folder",
        "two-classes",
        &folder(4 | 8 | 32, 0, 0, &png, &jpg),
    );
    seed(
        "image_folder",
        "two-resized",
        &folder(2 | 4 | 16, 5, 5, &jpg, &gray),
    );

    // args: typical command lines of each example (the first byte picks the table).
    let argv = |table: u8, args: &[&str]| {
        let mut v = vec![table];
        v.extend(args.join("\0").bytes());
        v
    };
    seed(
        "args",
        "dino",
        &argv(
            0,
            &[
                "--epochs",
                "3",
                "--lr=0.0005",
                "--device",
                "cuda:1",
                "--resize",
                "64",
            ],
        ),
    );
    seed(
        "args",
        "byol-help",
        &argv(1, &["--batch-size", "8", "--help"]),
    );
    seed(
        "args",
        "knn",
        &argv(
            2,
            &["--checkpoint", "runs/x/checkpoint.safetensors", "--k", "20"],
        ),
    );
    seed(
        "args",
        "attention",
        &argv(3, &["--image", "a.png", "--image=b.jpg", "--zoom", "2"]),
    );
    seed(
        "args",
        "err-unknown",
        &argv(4, &["--tensor", "x.st", "--device=cuda-sim", "--unknown"]),
    );
    seed(
        "args",
        "features",
        &argv(
            4,
            &["--tensor", "x.st", "--device=cuda-sim", "--img-size", "224"],
        ),
    );
    seed(
        "args",
        "err-no-value",
        &argv(5, &["--steps", "-1", "--device"]),
    );
    seed("args", "bench", &argv(5, &["--steps", "3"]));
}
