//! Runs the built `dino_vit_s` example binary: one-line errors and exit codes for bad input
//! (also `--device` on every example that builds a model), and an exact resume after a
//! SIGKILL or Ctrl-C on a tiny configuration. Plain `cargo test` builds the example first
//! (`cargo test --test examples_cli` alone does not).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/examples/dino_vit_s`, next to this test's `deps/` folder.
fn example_bin() -> PathBuf {
    named_example("dino_vit_s")
}

mod cli_support;
use cli_support::named_example;

/// A fresh temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    cli_support::temp_dir("cli", name)
}

fn run(args: &[&str]) -> Output {
    Command::new(example_bin())
        .args(args)
        .output()
        .expect("running the example")
}

/// Asserts a failure with a one-line `error:` message containing `needle` and no panic.
fn assert_fails(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    assert!(line.contains(needle), "{line:?} lacks {needle:?}");
}

const TINY: &[&str] = &["--preset", "tiny"];

fn tiny(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = TINY.iter().map(|s| s.to_string()).collect();
    v.push("--output-dir".into());
    v.push(out.display().to_string());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn args_ref(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn help_lists_the_flags() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for f in [
        "--data",
        "--epochs",
        "--batch-size",
        "--lr",
        "--img-size",
        "--patch-size",
        "--local-crops",
        "--out-dim",
        "--teacher-temp",
        "--warmup-epochs",
        "--device",
        "--seed",
        "--output-dir",
        "--resume",
        "--preset",
        "--resize",
    ] {
        assert!(s.contains(f), "--help lacks {f}");
    }
}

#[test]
fn missing_data_folder() {
    let d = temp_dir("missing");
    let out = run(&args_ref(&tiny(
        &d,
        &["--data", "/nonexistent/tessera-data"],
    )));
    assert_fails(&out, "does not exist");
}

#[test]
fn malformed_idx_data() {
    let d = temp_dir("malformed");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // A valid header promising 10 images of 28x28, then only 100 bytes.
    let mut img = vec![0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28];
    img.extend(vec![0u8; 100]);
    std::fs::write(data.join("train-images-idx3-ubyte"), &img).unwrap();
    let mut lab = vec![0, 0, 8, 1, 0, 0, 0, 10];
    lab.extend(vec![0u8; 10]);
    std::fs::write(data.join("train-labels-idx1-ubyte"), &lab).unwrap();
    let out = run(&args_ref(&tiny(
        &d.join("out"),
        &["--data", data.to_str().unwrap()],
    )));
    assert_fails(&out, "cannot read the dataset");
}

#[test]
fn image_size_not_divisible_by_patch() {
    let d = temp_dir("patch");
    let out = run(&args_ref(&tiny(&d, &["--patch-size", "5"])));
    assert_fails(&out, "not a positive multiple of the patch size 5");
}

#[test]
fn image_folder_of_mixed_sizes_needs_resize() {
    // torchvision's ImageFolder layout, two image sizes in every class.
    let data = temp_dir("mixed-sizes");
    for (split, n) in [("train", 4), ("test", 2)] {
        for (c, class) in ["coat", "shoe"].iter().enumerate() {
            for i in 0..n {
                let side = if i % 2 == 0 { 20 } else { 26 };
                let path = data.join(format!("{split}/{class}/{i}.png"));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                image::RgbImage::from_fn(side, side + 3, |x, y| {
                    image::Rgb([(x * 9) as u8, (y * 9) as u8, (c * 200) as u8])
                })
                .save(&path)
                .unwrap();
            }
        }
    }
    let dir = data.display().to_string();
    let out_dir = temp_dir("mixed-sizes-out");
    let out = run(&args_ref(&tiny(&out_dir, &["--data", &dir])));
    assert_fails(&out, "pass --resize PX");
    // Resized on load (shorter side to 14, center crop), the run goes through.
    let out = run(&args_ref(&tiny(
        &out_dir,
        &["--data", &dir, "--resize", "14", "--epochs", "1"],
    )));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3x14x14"), "{stdout}");
    // On fixed-size data the flag is an error, not silently ignored.
    let out = run(&args_ref(&tiny(&out_dir, &["--resize", "14"])));
    assert_fails(&out, "--resize applies to image folders");
}

/// The examples that build a model, each with `--device`.
const DEVICE_EXAMPLES: [&str; 5] = [
    "dino_vit_s",
    "byol_resnet50",
    "knn_eval",
    "attention_maps",
    "features",
];

/// Runs `example` with `args` in the empty directory `dir` (where default outputs would go).
fn run_in(dir: &Path, example: &str, args: &[&str]) -> Output {
    Command::new(named_example(example))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running the example")
}

// A `--features cuda` build (scripts/gpu_build.sh) accepts `--device cuda`: this checks the
// message of the default build.
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_is_not_available() {
    for example in DEVICE_EXAMPLES {
        for (flag, shown) in [("cuda", "cuda:0"), ("cuda:1", "cuda:1")] {
            let d = temp_dir(&format!("cuda-{example}-{shown}"));
            let out = run_in(&d, example, &["--device", flag]);
            assert_fails(
                &out,
                &format!(
                    "--device {shown}: built without CUDA support (rebuild with --features cuda)"
                ),
            );
            // Refused before any work: nothing written (no output folder, no checkpoint).
            let written: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
            assert!(written.is_empty(), "{example} wrote {written:?}");
        }
    }
}

#[test]
fn unknown_device_lists_the_choices() {
    for example in DEVICE_EXAMPLES {
        let d = temp_dir(&format!("tpu-{example}"));
        for bad in ["tpu", "cuda:x"] {
            let out = run_in(&d, example, &["--device", bad]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{example}: {stderr}");
            assert!(!stderr.contains("panicked"), "{example}: {stderr}");
            let want = if bad == "tpu" {
                "error: --device: expected cpu, cuda, cuda:N or cuda-sim, got \"tpu\""
            } else {
                "expected a GPU index after cuda:"
            };
            assert!(
                stderr.contains(want),
                "{example}: {stderr:?} lacks {want:?}"
            );
        }
        let written: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert!(written.is_empty(), "{example} wrote {written:?}");
    }
}

/// `--precision`: a bad value is a usage error, and bf16 (a CPU GEMM setting) is refused off
/// the CPU backend, before any work.
#[test]
fn precision_flag_is_checked() {
    for example in ["dino_vit_s", "byol_resnet50"] {
        let d = temp_dir(&format!("precision-{example}"));
        for (args, want) in [
            (
                &["--precision", "fp8"][..],
                "error: --precision: expected f32 or bf16, got \"fp8\"",
            ),
            (
                &["--precision", "bf16", "--device", "cuda-sim"][..],
                "error: --precision bf16 is implemented by the CPU backend only, not --device \
                 cuda-sim",
            ),
        ] {
            let out = run_in(&d, example, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{example}: {stderr}");
            assert!(
                stderr.contains(want),
                "{example}: {stderr:?} lacks {want:?}"
            );
        }
        let written: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert!(written.is_empty(), "{example} wrote {written:?}");
    }
}

/// `byol_resnet50 --init`: a bad value is a usage error before any work, and `--help` names
/// the small preset's default (nn.Conv2d's init) and the presets that keep torchvision's.
#[test]
fn byol_init_flag_is_checked() {
    let d = temp_dir("byol-init");
    let out = run_in(&d, "byol_resnet50", &["--init", "xavier"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--init: expected pytorch or torchvision, got \"xavier\""),
        "{stderr}"
    );
    let written: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
    assert!(written.is_empty(), "wrote {written:?}");
    let out = run_in(&d, "byol_resnet50", &["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("pytorch; resnet50, tiny: torchvision"),
        "{help}"
    );
}

/// A bf16 run trains, says so, and records it: resuming it as an f32 run is a changed
/// setting.
#[test]
fn bf16_precision_is_part_of_the_run() {
    let d = temp_dir("bf16-run");
    let out = run(&args_ref(&tiny(
        &d,
        &["--epochs", "1", "--precision", "bf16"],
    )));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("precision bf16"), "{stdout}");
    let out = run(&args_ref(&tiny(&d, &["--epochs", "1", "--resume"])));
    assert_fails(&out, "precision");
}

#[test]
fn resume_from_another_architecture() {
    let d = temp_dir("arch");
    let out = run(&args_ref(&tiny(&d, &["--epochs", "1"])));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&args_ref(&tiny(
        &d,
        &["--epochs", "1", "--resume", "--embed-dim", "48"],
    )));
    assert_fails(&out, "another architecture");
}

fn read_metrics(dir: &Path) -> Vec<(String, String)> {
    // (loss, knn_top1) per epoch, as written (exact decimal strings).
    let s = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let field = |line: &str, key: &str| -> String {
        let k = format!("\"{key}\": ");
        let rest = &line[line.find(&k).unwrap() + k.len()..];
        rest[..rest.find([',', '}']).unwrap()].to_string()
    };
    s.lines()
        .map(|l| (field(l, "loss"), field(l, "knn_top1")))
        .collect()
}

#[test]
fn resume_after_sigkill_gives_the_same_result() {
    let a = temp_dir("resume-a");
    let out = run(&args_ref(&tiny(&a, &[])));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = read_metrics(&a);
    assert_eq!(want.len(), 3);

    let b = temp_dir("resume-b");
    let mut child = Command::new(example_bin())
        .args(tiny(&b, &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ck = b.join("checkpoint.safetensors");
    let t = Instant::now();
    while !ck.is_file() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no checkpoint after epoch 1"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Mid-epoch 2 (or later): SIGKILL, no chance to clean up.
    std::thread::sleep(Duration::from_millis(30));
    let finished_alone = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    assert!(!finished_alone, "the run ended before it could be killed");
    let done = read_metrics(&b).len();
    assert!(
        (1..3).contains(&done),
        "killed after {done} epochs, not mid-run"
    );
    let out = run(&args_ref(&tiny(&b, &["--resume"])));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_metrics(&b), want);
}

#[cfg(unix)]
#[test]
fn ctrl_c_checkpoints_exits_130_and_resumes_exactly() {
    let a = temp_dir("int-a");
    let out = run(&args_ref(&tiny(&a, &[])));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = read_metrics(&a);

    let b = temp_dir("int-b");
    let child = Command::new(example_bin())
        .args(tiny(&b, &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ck = b.join("checkpoint.safetensors");
    let t = Instant::now();
    while !ck.is_file() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no checkpoint after epoch 1"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert!(
        stderr.contains("interrupted (SIGINT): checkpoint written"),
        "{stderr}"
    );
    let out = run(&args_ref(&tiny(&b, &["--resume"])));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_metrics(&b), want);
}

#[test]
fn knn_eval_reproduces_the_training_runs_knn() {
    let d = temp_dir("knn-eval");
    let out = run(&args_ref(&tiny(&d, &["--epochs", "1"])));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: f64 = read_metrics(&d)[0].1.parse().unwrap();
    let ck = d.join("checkpoint.safetensors");
    let out = Command::new(named_example("knn_eval"))
        .args(["--checkpoint", ck.to_str().unwrap()])
        .args([
            "--eval-train",
            "100",
            "--eval-test",
            "50",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("backbone:   top-1 {:.2}%", 100.0 * want)),
        "{stdout}"
    );
}

/// `--trace` starts from the initial state, so it refuses `--resume` (before any work).
#[test]
fn trace_is_refused_with_resume() {
    for example in ["dino_vit_s", "byol_resnet50"] {
        let d = temp_dir(&format!("trace-resume-{example}"));
        let out = run_in(&d, example, &["--trace", "t", "--resume"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{example}: {stderr}");
        assert!(
            stderr.contains("--trace records a run from its initial state"),
            "{example}: {stderr}"
        );
    }
}

/// A traced run writes the initial and final states, one row per step, and every step's
/// inputs with the shapes `inputs.txt` names (what the replay scripts read).
#[test]
fn trace_records_every_step() {
    for (example, columns) in [
        (
            "dino_vit_s",
            "step\tloss\tlr\tweight_decay\tmomentum\tteacher_temp\tlast_layer_frozen",
        ),
        ("byol_resnet50", "step\tloss\tlr\ttau"),
    ] {
        let d = temp_dir(&format!("trace-{example}"));
        let t = d.join("trace");
        let args = tiny(&d.join("run"), &["--epochs", "1", "--trace"]);
        let mut args = args_ref(&args);
        let t_str = t.display().to_string();
        args.push(&t_str);
        let out = run_in(&d, example, &args);
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tsv = std::fs::read_to_string(t.join("steps.tsv")).unwrap();
        let mut lines = tsv.lines();
        assert_eq!(lines.next(), Some(columns), "{example}");
        let rows: Vec<Vec<f64>> = lines
            .map(|l| l.split('\t').map(|v| v.parse().unwrap()).collect())
            .collect();
        assert!(!rows.is_empty(), "{example}: no steps");
        for (k, r) in rows.iter().enumerate() {
            assert_eq!(r[0], k as f64, "{example}: step column");
            assert!(r[1].is_finite() && r[1] > 0.0, "{example}: loss {}", r[1]);
        }
        let per_step: usize = std::fs::read_to_string(t.join("inputs.txt"))
            .unwrap()
            .lines()
            .map(|l| {
                l.trim_matches(|c| c == '[' || c == ']')
                    .split(", ")
                    .map(|v| v.parse::<usize>().unwrap())
                    .product::<usize>()
            })
            .sum();
        let bytes = std::fs::metadata(t.join("inputs.f32")).unwrap().len() as usize;
        assert_eq!(
            bytes,
            rows.len() * per_step * 4,
            "{example}: inputs.f32 size"
        );
        let init = std::fs::read(t.join("init.safetensors")).unwrap();
        let last = std::fs::read(t.join("final.safetensors")).unwrap();
        assert!(
            init != last,
            "{example}: the final state equals the initial one"
        );
    }
}
