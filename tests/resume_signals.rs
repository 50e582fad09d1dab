//! Resume that is exact or says why not, signals and checkpoints, on the built `dino_vit_s`
//! and `byol_resnet50` example binaries (tiny configurations, seconds per run):
//!
//! - SIGKILL, SIGINT and SIGTERM mid-epoch, mid-k-NN and mid-checkpoint-write each leave a
//!   run that `--resume` finishes with the same metrics and the same checkpoint (every
//!   tensor bit for bit, all metadata but the recorded wall time) as an uninterrupted run;
//!   SIGINT exits 130, SIGTERM 143;
//! - a checkpoint whose position is impossible (step 99999, huge counters) is a clear
//!   error, not an overflow panic; a changed flag is refused with the differing values, and
//!   `--allow-config-change` continues and says the result is no longer reproducible;
//! - rerunning into a finished run or a foreign directory is refused until `--resume` or
//!   `--overwrite`; `--lr` errors show the value typed; a local crop larger than the global
//!   crop is refused.
//!
//! Phases that are too short to hit by chance are widened with the binaries' test hook
//! `TESSERA_TEST_PAUSE` (`step=MS`: after each training step; `knn=MS`: after each k-NN
//! batch; `ckpt=MS`: halfway through writing the checkpoint's temporary file), and each test
//! sends its signal only once the binary's stderr (or the file system) shows it is in the
//! phase. Each test checks, from the checkpoint left behind, that the stop happened where it
//! was meant to (mid-epoch position, the epoch's k-NN pending, a partial temporary file).
//!
//! `cargo test --test resume_signals` does not build the examples: build them first
//! (`cargo build --example dino_vit_s --example byol_resnet50`, with `--release` for a
//! release run) or run plain `cargo test`.

mod cli_support;
mod resume_support;

use resume_support::*;
use std::path::PathBuf;

/// Mid-epoch: the signal arrives after step 3 of epoch 2, with a checkpoint every 2 steps.
/// SIGINT/SIGTERM checkpoint after the current step; SIGKILL leaves the last `--save-every`
/// checkpoint. Either way the run resumes from inside epoch 2.
fn mid_epoch(sig: Sig) {
    let want = reference();
    let d = temp_dir(&format!("mid-epoch-{sig:?}"));
    let args = tiny(&d, &[]);
    let mut w = spawn("dino_vit_s", &tiny(&d, &["--save-every", "2"]), "step=150");
    w.wait_line(|l| l.starts_with("epoch 2/3 3/5"));
    w.signal(sig);
    let (status, stderr) = w.finish();
    check_stop(sig, status, &stderr);
    assert_eq!(meta(&d, "epoch"), "1", "{stderr}");
    let step: usize = meta(&d, "step").parse().unwrap();
    assert!((1..5).contains(&step), "not mid-epoch: step {step}");
    resume_matches("dino_vit_s", &d, &args, want);
}

#[test]
fn sigkill_mid_epoch_resumes_exactly() {
    mid_epoch(Sig::Kill);
}

#[test]
fn sigint_mid_epoch_exits_130_and_resumes_exactly() {
    mid_epoch(Sig::Int);
}

#[test]
fn sigterm_mid_epoch_exits_143_and_resumes_exactly() {
    mid_epoch(Sig::Term);
}

/// Mid-k-NN: the signal arrives during the k-NN evaluation after epoch 2's steps (each k-NN
/// batch widened to 200 ms). SIGINT/SIGTERM stop between batches and checkpoint "epoch 2's
/// steps done, its evaluation pending"; SIGKILL leaves epoch 1's checkpoint.
fn mid_knn(sig: Sig) {
    let want = reference();
    let d = temp_dir(&format!("mid-knn-{sig:?}"));
    let args = tiny(&d, &[]);
    let mut w = spawn("dino_vit_s", &args, "knn=200");
    w.wait_line(|l| l.starts_with("epoch 2/3 5/5"));
    w.wait_line(|l| l.starts_with("k-NN 1/"));
    w.signal(sig);
    let (status, stderr) = w.finish();
    check_stop(sig, status, &stderr);
    let epochs_logged = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    assert_eq!(epochs_logged.lines().count(), 1, "epoch 2's k-NN finished");
    let pos = (meta(&d, "epoch"), meta(&d, "step"));
    let at = if sig == Sig::Kill {
        ("1", "0")
    } else {
        ("1", "5")
    };
    assert_eq!((pos.0.as_str(), pos.1.as_str()), at);
    resume_matches("dino_vit_s", &d, &args, want);
}

#[test]
fn sigkill_mid_knn_resumes_exactly() {
    mid_knn(Sig::Kill);
}

#[test]
fn sigint_mid_knn_exits_130_and_resumes_exactly() {
    mid_knn(Sig::Int);
}

#[test]
fn sigterm_mid_knn_exits_143_and_resumes_exactly() {
    mid_knn(Sig::Term);
}

/// Before training: SIGTERM during the raw-pixel / before-training k-NN leaves a checkpoint
/// of the untrained model without those numbers; the resume measures them.
#[test]
fn sigterm_during_the_knn_before_training_resumes_exactly() {
    let want = reference();
    let d = temp_dir("before-knn");
    let args = tiny(&d, &[]);
    let mut w = spawn("dino_vit_s", &args, "knn=200");
    w.wait_line(|l| l.starts_with("k-NN"));
    w.signal(Sig::Term);
    let (status, stderr) = w.finish();
    check_stop(Sig::Term, status, &stderr);
    assert_eq!(
        (meta(&d, "epoch"), meta(&d, "step")),
        ("0".into(), "0".into())
    );
    resume_matches("dino_vit_s", &d, &args, want);
}

/// The paper preset (224/96 crops, patch 16, the full k-NN sets) used to ignore Ctrl-C
/// during its long k-NN before training; now SIGINT stops it between batches, with a
/// checkpoint. The model is shrunk with the hidden test flags to keep the run short.
#[test]
fn sigint_stops_the_paper_presets_knn_before_training() {
    let d = temp_dir("paper");
    let args: Vec<String> = [
        "--preset",
        "paper",
        "--embed-dim",
        "32",
        "--depth",
        "1",
        "--heads",
        "2",
        "--out-dim",
        "64",
        "--head-hidden",
        "64",
        "--head-bottleneck",
        "16",
        "--output-dir",
        d.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut w = spawn("dino_vit_s", &args, "knn=100");
    w.wait_line(|l| l.starts_with("k-NN 1/"));
    w.signal(Sig::Int);
    let (status, stderr) = w.finish();
    check_stop(Sig::Int, status, &stderr);
    assert_eq!(
        (meta(&d, "epoch"), meta(&d, "step")),
        ("0".into(), "0".into())
    );
    assert_eq!(meta(&d, "config.img-size"), "224");
}

/// Mid-checkpoint-write: the signal arrives while the end-of-epoch-2 checkpoint's temporary
/// file is half written (the write paused there for 400 ms). SIGINT/SIGTERM let the write
/// finish and stop after it; SIGKILL leaves the half-written temporary file next to epoch 1's
/// intact checkpoint, which the resume uses (and removes the temporary file).
fn mid_write(sig: Sig) {
    let want = reference();
    let d = temp_dir(&format!("mid-write-{sig:?}"));
    let args = tiny(&d, &[]);
    let (ck, tmp) = (
        d.join("checkpoint.safetensors"),
        d.join("checkpoint.safetensors.tmp"),
    );
    let mut w = spawn("dino_vit_s", &args, "ckpt=400");
    w.wait_line(|l| l.starts_with("epoch 2/3 5/5"));
    w.wait_until("second checkpoint write", || ck.is_file() && tmp.is_file());
    w.signal(sig);
    let (status, stderr) = w.finish();
    check_stop(sig, status, &stderr);
    if sig == Sig::Kill {
        let partial = std::fs::metadata(&tmp)
            .expect("the partial temporary file")
            .len();
        assert!(partial < std::fs::metadata(&ck).unwrap().len());
        assert_eq!(meta(&d, "epoch"), "1");
    } else {
        assert!(!tmp.exists());
        assert_eq!(
            (meta(&d, "epoch"), meta(&d, "step")),
            ("2".into(), "0".into())
        );
    }
    resume_matches("dino_vit_s", &d, &args, want);
}

#[test]
fn sigkill_mid_checkpoint_write_resumes_exactly() {
    mid_write(Sig::Kill);
}

#[test]
fn sigint_mid_checkpoint_write_exits_130_and_resumes_exactly() {
    mid_write(Sig::Int);
}

#[test]
fn sigterm_mid_checkpoint_write_exits_143_and_resumes_exactly() {
    mid_write(Sig::Term);
}

/// A finished one-epoch tiny run in a fresh directory.
fn one_epoch(name: &str) -> (PathBuf, Vec<String>) {
    let d = temp_dir(name);
    let args = tiny(&d, &["--epochs", "1"]);
    assert_ok(&run("dino_vit_s", &args));
    (d, args)
}

fn with(args: &[String], extra: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn impossible_positions_are_errors_not_overflows() {
    let (d, args) = one_epoch("overflow");
    let resume = with(&args, &["--resume"]);
    // The old panic: `niter - step` with step 99999.
    edit_meta(&d, &[("epoch", "0"), ("step", "99999")]);
    let out = run("dino_vit_s", &resume);
    assert_fails(&out, 1, &["epoch 0, step 99999", "outside this run"]);
    // Counters whose product overflows, and one past usize.
    let max = usize::MAX.to_string();
    edit_meta(&d, &[("epoch", "1"), ("step", &max)]);
    assert_fails(&run("dino_vit_s", &resume), 1, &["outside this run"]);
    edit_meta(&d, &[("epoch", "1"), ("step", "18446744073709551616")]);
    assert_fails(&run("dino_vit_s", &resume), 1, &["invalid \"step\""]);
    // A position that fits but disagrees with the trainer's step counter.
    edit_meta(&d, &[("epoch", "0"), ("step", "3")]);
    assert_fails(&run("dino_vit_s", &resume), 1, &["step counter (5)"]);
    // Even with --allow-config-change, a step that overflows when remapped is an error.
    edit_meta(&d, &[("epoch", "0"), ("step", &max)]);
    let out = run(
        "dino_vit_s",
        &with(&resume, &["--batch-size", "10", "--allow-config-change"]),
    );
    assert_fails(&out, 1, &["overflows"]);
}

/// A run stopped by SIGINT after step 4 of epoch 1 (checkpoint at epoch 0, step 4).
fn stopped_mid_epoch_1(name: &str) -> (PathBuf, Vec<String>) {
    let d = temp_dir(name);
    let args = tiny(&d, &[]);
    let mut w = spawn("dino_vit_s", &args, "step=150");
    w.wait_line(|l| l.starts_with("epoch 1/3 4/5"));
    w.signal(Sig::Int);
    let (status, stderr) = w.finish();
    check_stop(Sig::Int, status, &stderr);
    assert_eq!(meta(&d, "epoch"), "0");
    (d, args)
}

#[test]
fn changed_flags_are_refused_or_continued_with_a_warning() {
    let (d, args) = stopped_mid_epoch_1("config-change");
    // The old panic: a larger batch size makes the checkpoint's step exceed the new epoch.
    let bigger = with(&args, &["--resume", "--batch-size", "20", "--lr", "0.001"]);
    let out = run("dino_vit_s", &bigger);
    assert_fails(
        &out,
        1,
        &[
            "--batch-size: checkpoint 8, given 20",
            "--lr: checkpoint 0.0005, given 0.001",
            "--allow-config-change",
        ],
    );
    let out = run("dino_vit_s", &with(&bigger, &["--allow-config-change"]));
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no longer reproducible") && stderr.contains("--batch-size: checkpoint 8"),
        "{stderr}"
    );
    assert_eq!(final_of(&d).metrics.len(), 3);
    // --allow-config-change without --resume is a usage error.
    let out = run(
        "dino_vit_s",
        &tiny(&temp_dir("acc"), &["--allow-config-change"]),
    );
    assert_fails(
        &out,
        2,
        &["--allow-config-change applies only with --resume"],
    );
}

#[test]
fn finished_or_foreign_directories_need_resume_or_overwrite() {
    let (d, args) = one_epoch("finished");
    let before = final_of(&d);
    let out = run("dino_vit_s", &args);
    assert_fails(
        &out,
        1,
        &["holds a finished run", "--resume", "--overwrite"],
    );
    assert_same(&final_of(&d), &before);
    assert_ok(&run("dino_vit_s", &with(&args, &["--overwrite"])));
    assert_eq!(final_of(&d).metrics, before.metrics);
    // --resume of a finished run has nothing left to do and succeeds.
    assert_ok(&run("dino_vit_s", &with(&args, &["--resume"])));
    // An unfinished run is not restarted by accident either.
    let (u, uargs) = stopped_mid_epoch_1("unfinished");
    let out = run("dino_vit_s", &uargs);
    assert_fails(
        &out,
        1,
        &["holds an unfinished run", "--resume", "--overwrite"],
    );
    assert!(u.join("checkpoint.safetensors").is_file());
    // Files that are not a run.
    let f = temp_dir("foreign");
    std::fs::write(f.join("notes.txt"), "mine").unwrap();
    let fargs = tiny(&f, &["--epochs", "1"]);
    assert_fails(
        &run("dino_vit_s", &fargs),
        1,
        &["not a Tessera run (notes.txt)", "--overwrite"],
    );
    assert_ok(&run("dino_vit_s", &with(&fargs, &["--overwrite"])));
    assert_eq!(
        std::fs::read_to_string(f.join("notes.txt")).unwrap(),
        "mine"
    );
    // Both flags at once make no sense.
    let out = run("dino_vit_s", &with(&args, &["--resume", "--overwrite"]));
    assert_fails(&out, 2, &["--resume", "--overwrite"]);
}

#[test]
fn lr_errors_show_the_value_typed() {
    let d = temp_dir("lr");
    for (lr, needle) in [
        ("-1", "--lr -1: expected a finite learning rate >= 0"),
        ("NaN", "--lr NaN: expected a finite learning rate >= 0"),
        ("1.7e308", "--lr 1.7e308 with --batch-size 8"),
    ] {
        let out = run("dino_vit_s", &tiny(&d, &["--lr", lr]));
        assert_fails(&out, 2, &[needle]);
    }
}

#[test]
fn a_local_crop_larger_than_the_global_crop_is_refused() {
    let d = temp_dir("crops");
    let out = run("dino_vit_s", &tiny(&d, &["--local-size", "35"]));
    assert_fails(
        &out,
        2,
        &["--local-size 35 is larger than the global crop, 28 px"],
    );
    let out = run(
        "dino_vit_s",
        &tiny(&d, &["--img-size", "14", "--local-size", "21"]),
    );
    assert_fails(&out, 2, &["--local-size 21", "--img-size 14"]);
}

/// BYOL, smallest settings (one epoch of 5 steps): SIGTERM mid-epoch with `--save-every 2`
/// resumes to the same metrics and checkpoint as the uninterrupted run.
#[test]
fn byol_sigterm_mid_epoch_resumes_exactly() {
    let small = [
        "--epochs",
        "1",
        "--train-images",
        "20",
        "--batch-size",
        "4",
        "--eval-train",
        "20",
        "--eval-test",
        "10",
    ];
    let a = temp_dir("byol-a");
    assert_ok(&run("byol_resnet50", &tiny(&a, &small)));
    let want = final_of(&a);
    assert_eq!(want.metrics.len(), 1);

    let b = temp_dir("byol-b");
    let args = tiny(&b, &small);
    let mut w = spawn(
        "byol_resnet50",
        &with(&args, &["--save-every", "2"]),
        "step=100",
    );
    w.wait_line(|l| l.starts_with("epoch 1/1 3/5"));
    w.signal(Sig::Term);
    let (status, stderr) = w.finish();
    check_stop(Sig::Term, status, &stderr);
    assert_eq!(meta(&b, "epoch"), "0");
    assert_ne!(meta(&b, "step"), "0");
    resume_matches("byol_resnet50", &b, &args, &want);
}
