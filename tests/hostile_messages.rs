//! Messages for input a new user (or an attacker) gets wrong, each reproducing an unclear
//! message or a silent change of issue 16 and checking that the message now names the flag
//! and the value typed, or that the value is honoured: `--help` shows every default (and the
//! defaults shown are the ones used), `attention_maps --img-size` errors name `--img-size`,
//! `--output x.jpg` writes a JPEG, empty and 1-pixel images, file names that are not UTF-8,
//! the EMA mismatch message, and `--train-images 512` meaning 512. Each runs in seconds on
//! tiny inputs. Plain `cargo test` builds the examples first (`cargo test --test
//! hostile_messages` alone does not).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tessera::nn::checkpoint::{with_prefix, Checkpoint, Metadata, StateDict};
use tessera::nn::layers::Linear;
use tessera::nn::models::vit::{VisionTransformer, VitConfig};
use tessera::nn::ModuleExt;
use tessera::tensor::{Cpu, DType, Rng};

mod cli_support;
use cli_support::named_example;

/// Every example that parses flags.
const EXAMPLES: [&str; 6] = [
    "dino_vit_s",
    "byol_resnet50",
    "knn_eval",
    "attention_maps",
    "features",
    "bench_steps",
];

fn temp_dir(name: &str) -> PathBuf {
    cli_support::temp_dir("msg", name)
}

fn run<S: AsRef<std::ffi::OsStr>>(example: &str, args: &[S]) -> Output {
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
/// no panic; returns the line.
fn assert_fails(out: &Output, code: i32, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    assert!(line.contains(needle), "{line:?} lacks {needle:?}");
    line.to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `flag → text in [default: ...]` of every value flag of an example's `--help`; fails if a
/// visible flag taking a value shows no default.
fn help_defaults(example: &str) -> BTreeMap<String, String> {
    let help = assert_ok(&run(example, &["--help"]));
    let mut out = BTreeMap::new();
    for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
        let mut words = line.split_whitespace();
        let flag = words.next().unwrap().trim_start_matches("--");
        if !words.next().is_some_and(|w| w.starts_with('<')) {
            continue; // a switch
        }
        let parts: Vec<&str> = line.split("[default: ").collect();
        assert_eq!(
            parts.len(),
            2,
            "{example} --{flag}: one default wanted: {line:?}"
        );
        let d = parts[1].strip_suffix(']').unwrap_or(parts[1]);
        out.insert(flag.to_string(), d.to_string());
    }
    out
}

/// The value of the default preset in a default `"<value>; <preset>: <value>"`, when it is
/// a value (not a description).
fn plain_default(d: &str) -> Option<&str> {
    let v = d.split(';').next().unwrap().trim();
    (v.parse::<f64>().is_ok() || v == "true" || v == "false").then_some(v)
}

/// The value `preset` takes in a default `"<value>; <preset>: <value>, <a>, <b> and <c>:
/// <value>"`, when the note names that preset and the value is a value (not a description).
fn preset_default<'a>(d: &'a str, preset: &str) -> Option<&'a str> {
    let (_, notes) = d.split_once(';')?;
    // "long, paper and tiny: --epochs" splits at ", " too: names without a value wait for it.
    let mut names = String::new();
    for part in notes.split(", ") {
        let Some((last_names, value)) = part.split_once(':') else {
            names.push_str(part);
            names.push(' ');
            continue;
        };
        names.push_str(last_names);
        if names.split_whitespace().any(|n| n == preset) {
            return Some(value.trim());
        }
        names.clear();
    }
    None
}

/// A tiny ViT checkpoint laid out as `dino_vit_s` writes it (patch 7, 28-px grayscale).
fn write_checkpoint(dir: &Path) -> PathBuf {
    let vit = VitConfig {
        img_size: 28,
        in_chans: 1,
        embed_dim: 16,
        depth: 1,
        num_heads: 2,
        ..VitConfig::small(7)
    };
    let vit = VisionTransformer::new(vit, DType::F32, &mut Rng::new(3), &Cpu).unwrap();
    let sd = vit.state_dict();
    let mut tensors: StateDict<Cpu> = with_prefix(&sd, "teacher.backbone.");
    tensors.extend(with_prefix(&sd, "student.backbone."));
    let mut metadata = Metadata::new();
    metadata.insert(
        "arch".into(),
        "vit(embed 16, depth 1, heads 2, patch 7, img 28, chans 1)".into(),
    );
    let path = dir.join("checkpoint.safetensors");
    Checkpoint { tensors, metadata }.save(&path).unwrap();
    path
}

/// A small random ViT for `attention_maps` (hidden flags), so that a run takes a second.
const SMALL_RANDOM: [&str; 8] = [
    "--embed-dim",
    "16",
    "--depth",
    "1",
    "--heads",
    "2",
    "--patch-size",
    "8",
];

// ---- --help shows defaults, and they are the values used ----

#[test]
fn help_shows_the_default_of_every_flag() {
    for ex in EXAMPLES {
        let d = help_defaults(ex);
        assert!(d.len() >= 5, "{ex}: {d:?}");
    }
    let dino = help_defaults("dino_vit_s");
    assert_eq!(dino["lr"], "0.0005");
    assert_eq!(dino["epochs"], "8; long: 36, paper: 100, tiny: 3");
    assert_eq!(help_defaults("knn_eval")["k"], "20");
}

/// Flags that keep a `dino_vit_s` run tiny (their values are not the defaults checked).
const TINY_DINO_RUN: [(&str, &str); 10] = [
    ("train-images", "16"),
    ("eval-train", "20"),
    ("eval-test", "10"),
    ("batch-size", "8"),
    ("out-dim", "16"),
    ("embed-dim", "16"),
    ("depth", "1"),
    ("heads", "2"),
    ("head-hidden", "16"),
    ("head-bottleneck", "8"),
];

/// Runs `dino_vit_s` with `args` and `flags` and returns the configuration its checkpoint
/// records (`name: value, ...` with the flags' names in snake case).
fn recorded_dino_config(dir: &str, args: &[&str], flags: &[(&str, &str)]) -> String {
    let d = temp_dir(dir);
    let mut all: Vec<String> = vec!["--output-dir".into(), s(&d).into()];
    all.extend(args.iter().map(|a| a.to_string()));
    for (f, v) in flags {
        all.push(format!("--{f}"));
        all.push(v.to_string());
    }
    assert_ok(&run("dino_vit_s", &all));
    let ck = Checkpoint::<Cpu>::load(d.join("checkpoint.safetensors"), &Cpu).unwrap();
    ck.metadata["config"].clone()
}

/// The value `config` records for `--flag`, or `None` when the flag is not part of the
/// configuration (e.g. `--save-every`).
fn recorded<'a>(config: &'a str, flag: &str) -> Option<&'a str> {
    let field = format!("{}: ", flag.replace('-', "_"));
    let at = config.find(&field)?;
    config[at + field.len()..].split([',', ' ', '}']).next()
}

/// `dino_vit_s` records the configuration it ran with in its checkpoint: every default
/// `--help` shows for the default preset is the one used (flags set here to keep the run
/// tiny are not checked).
#[test]
fn dino_vit_s_help_defaults_are_the_values_used() {
    let config = recorded_dino_config("dino-defaults", &[], &TINY_DINO_RUN);
    let mut checked = 0;
    for (flag, default) in help_defaults("dino_vit_s") {
        let Some(want) = plain_default(&default) else {
            continue;
        };
        if TINY_DINO_RUN.iter().any(|(f, _)| *f == flag) {
            continue;
        }
        let Some(got) = recorded(&config, &flag) else {
            continue;
        };
        match (want.parse::<f64>(), got.parse::<f64>()) {
            (Ok(w), Ok(g)) => assert_eq!(w, g, "--{flag}: help {want}, used {got}"),
            _ => assert_eq!(want, got, "--{flag}: help {want}, used {got}"),
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} defaults checked in {config}");
}

/// `--preset long` is what `--help` says it is: every "long: <value>" note is the value the
/// run records, and its schedule spans the run (`--schedule-epochs`: "long, ...: --epochs").
#[test]
fn dino_vit_s_long_preset_is_what_help_says() {
    let mut flags = TINY_DINO_RUN.to_vec();
    flags.push(("epochs", "1"));
    let config = recorded_dino_config("dino-long", &["--preset", "long"], &flags);
    let help = help_defaults("dino_vit_s");
    assert_eq!(preset_default(&help["epochs"], "long"), Some("36"));
    assert_eq!(
        preset_default(&help["schedule-epochs"], "long"),
        Some("--epochs")
    );
    // The schedule spans the run: --epochs 1 (the default preset's would span 17).
    assert_eq!(recorded(&config, "schedule-epochs"), Some("1"), "{config}");
    let mut checked = 0;
    for (flag, default) in &help {
        let Some(want) = preset_default(default, "long").filter(|v| plain_default(v).is_some())
        else {
            continue;
        };
        if flags.iter().any(|(f, _)| f == flag) {
            continue;
        }
        let got = recorded(&config, flag);
        assert_eq!(
            Some(want),
            got,
            "--{flag}: help says long: {want}, used {got:?}"
        );
        checked += 1;
    }
    assert!(checked >= 1, "no long: note checked in {config}");
}

// ---- attention_maps: --img-size, --zoom and --output ----

#[test]
fn attention_maps_img_size_errors_name_img_size() {
    let d = temp_dir("am-size");
    let png = d.join("a.png");
    let am = |extra: &[&str]| {
        let mut a = vec!["--output", s(&png)];
        a.extend(SMALL_RANDOM);
        a.extend(extra);
        run("attention_maps", &a)
    };
    // Was "--zoom 1: tiles of 5000px; expected 1 to 4096px" (no --zoom given).
    let line = assert_fails(
        &am(&["--img-size", "5000"]),
        2,
        "--img-size 5000: expected 1 to 4096 px",
    );
    assert!(!line.contains("--zoom"), "{line}");
    assert_fails(&am(&["--img-size", "0"]), 2, "--img-size 0:");
    assert_fails(
        &am(&["--img-size", "30"]),
        2,
        "--img-size 30: not a multiple of the patch size 8 (try 24 or 32)",
    );
    // Both typed: both named.
    assert_fails(
        &am(&["--img-size", "32", "--zoom", "1000"]),
        2,
        "--zoom 1000 with an image of 32 px makes tiles of 32000 px",
    );
    // Was an overflow of `zoom * size`.
    assert_fails(
        &am(&["--img-size", "32", "--zoom", &usize::MAX.to_string()]),
        2,
        "--zoom",
    );
    // A patch size that does not divide the default size blames --patch-size.
    let mut a = vec!["--output", s(&png)];
    a.extend(&SMALL_RANDOM[..6]);
    a.extend(["--patch-size", "15"]);
    assert_fails(
        &run("attention_maps", &a),
        2,
        "--patch-size 15 does not divide the default image size 224",
    );
    assert!(!png.exists());
}

/// The file's first bytes: PNG or JPEG.
fn magic(path: &Path) -> &'static str {
    let b = std::fs::read(path).unwrap();
    if b.starts_with(b"\x89PNG") {
        "png"
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        "jpeg"
    } else {
        "other"
    }
}

#[test]
fn attention_maps_output_extension_is_honoured_or_refused() {
    let d = temp_dir("am-ext");
    let am = |out: &Path| {
        let mut a = vec!["--output", s(out), "--img-size", "32"];
        a.extend(SMALL_RANDOM);
        run("attention_maps", &a)
    };
    // Was a PNG under a .jpg name.
    for (name, want) in [("a.jpg", "jpeg"), ("b.JPEG", "jpeg"), ("c.png", "png")] {
        let p = d.join(name);
        let stdout = assert_ok(&am(&p));
        assert_eq!(magic(&p), want, "{name}");
        // 224-px tiles (32 px zoomed 7x), inside a figure with a title and captions.
        assert!(stdout.contains("tiles of 224x224 px"), "{stdout}");
        let img = image::open(&p).unwrap();
        assert!(img.height() > 224, "{name}");
    }
    for (name, needle) in [("d.gif", "--output "), ("e", "no file extension")] {
        let p = d.join(name);
        let line = assert_fails(&am(&p), 2, needle);
        assert!(line.contains(".png, .jpg or .jpeg"), "{line}");
        assert!(!p.exists());
    }
}

/// `features --output x.jpg` used to write safetensors under a picture's name; any name but
/// `.safetensors` is refused before any work.
#[test]
fn features_output_must_be_safetensors() {
    let d = temp_dir("features-ext");
    for name in ["f.jpg", "f.npy", "f"] {
        let p = d.join(name);
        let mut a = vec!["--output", s(&p)];
        a.extend(SMALL_RANDOM);
        assert_fails(&run("features", &a), 2, "use a .safetensors file name");
        assert!(!p.exists());
    }
}

// ---- images: empty, 1 pixel, names that are not UTF-8 ----

/// A 1x1 grey PNG.
fn one_pixel_png(path: &Path) {
    image::GrayImage::from_pixel(1, 1, image::Luma([128]))
        .save(path)
        .unwrap();
}

/// A PNG whose header says 0x0 pixels (the `image` crate will not write one).
fn empty_png(path: &Path) {
    // Signature, then an IHDR chunk of width 0, height 0, 8-bit grey; CRC over type + data.
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(0u32.to_be_bytes());
    ihdr.extend(0u32.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    png.extend(0u32.to_be_bytes());
    png.extend(b"IEND");
    png.extend(crc32(b"IEND").to_be_bytes());
    std::fs::write(path, png).unwrap();
}

/// CRC-32 (PNG's), bit by bit: a few dozen bytes here.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn attention_maps_of_empty_and_one_pixel_images() {
    let d = temp_dir("am-tiny-img");
    let ck = write_checkpoint(&d);
    let out = d.join("a.png");
    let (empty, one) = (d.join("empty.png"), d.join("one.png"));
    empty_png(&empty);
    one_pixel_png(&one);
    let am = |img: &Path| {
        run(
            "attention_maps",
            &[
                "--checkpoint",
                s(&ck),
                "--image",
                s(img),
                "--output",
                s(&out),
            ],
        )
    };
    let line = assert_fails(&am(&empty), 1, s(&empty));
    assert!(!line.contains("--img-size"), "{line}");
    // One pixel is a valid (if dull) photo: scaled up to the model's size.
    assert_ok(&am(&one));
    assert_eq!(magic(&out), "png");
}

/// An image folder `root/{train,test}/{a,b}/` of `n` PNGs per class of `side` pixels.
fn image_folder(root: &Path, side: u32, n: usize) {
    for split in ["train", "test"] {
        for class in ["a", "b"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img =
                    image::RgbImage::from_pixel(side, side, image::Rgb([i as u8 * 9, 50, 90]));
                img.save(dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

#[cfg(unix)]
#[test]
fn file_names_that_are_not_utf8() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let d = temp_dir("utf8");
    let name = |stem: &[u8]| OsString::from_vec([stem, b".png"].concat());

    // A photo named so: read (was "no such file" or a panic on the argument).
    let photo = d.join(name(b"caf\xe9"));
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/photos/chelsea.png"),
        &photo,
    )
    .unwrap();
    let out = d.join(name(b"out\xff"));
    let mut a: Vec<OsString> = vec!["--image".into(), photo.into(), "--output".into()];
    a.push(out.clone().into());
    a.extend(["--img-size", "32"].map(OsString::from));
    a.extend(SMALL_RANDOM.map(OsString::from));
    assert_ok(&run("attention_maps", &a));
    assert_eq!(magic(&out), "png");
    // Such a value for a number is named as such.
    let n = OsString::from_vec(b"3\xff".to_vec());
    assert_fails(
        &run("attention_maps", &[OsString::from("--zoom"), n]),
        2,
        "--zoom \"3\u{fffd}\": not valid UTF-8",
    );

    // In an image folder: the reader works on UTF-8 names, and says so.
    let data = d.join("data");
    image_folder(&data, 8, 2);
    std::fs::copy(
        data.join("train/a/0.png"),
        data.join("train/a").join(name(b"\xff")),
    )
    .unwrap();
    let line = assert_fails(
        &run(
            "dino_vit_s",
            &[
                "--preset",
                "tiny",
                "--data",
                s(&data),
                "--output-dir",
                s(&d.join("run")),
            ],
        ),
        1,
        "is not valid UTF-8; rename it",
    );
    assert!(!line.contains("no such file"), "{line}");
}

// ---- the EMA mismatch message ----

#[test]
fn ema_mismatch_names_the_student_and_the_teacher() {
    let mut rng = Rng::new(0);
    let mut teacher = Linear::new(4, 3, true, DType::F32, &mut rng, &Cpu).unwrap();
    let student = Linear::new(5, 3, false, DType::F32, &mut rng, &Cpu).unwrap();
    let e = tessera::ssl::ema::ema_update(&mut teacher, &student, 0.9)
        .unwrap_err()
        .to_string();
    // Was "error(s) in loading state dict: ... the checkpoint has shape [3, 5], the expected
    // shape is [3, 4]": no checkpoint is involved.
    assert!(
        !e.contains("checkpoint") && !e.contains("state dict"),
        "{e}"
    );
    assert!(
        e.contains("\"weight\" has shape [3, 5] in the student and [3, 4] in the teacher"),
        "{e}"
    );
    assert!(
        e.contains("parameter(s) of the teacher missing from the student: \"bias\""),
        "{e}"
    );
}

// ---- 512 images are 512 ----

#[test]
fn train_images_512_are_512() {
    let (train, _) =
        tessera::run::data::load_splits(&tessera::run::data::default_data_dir(), None).unwrap();
    assert_eq!(train.num_classes, 10);
    // Was 510: 512 / 10 classes rounded down, silently.
    for n in [512, 7, 1000] {
        let sub = tessera::run::data::balanced_prefix(&train, n, 1).unwrap();
        assert_eq!(sub.len(), n);
    }
}
