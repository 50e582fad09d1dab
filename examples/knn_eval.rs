//! k-NN evaluation (k = 20, T = 0.07 by default) of the ViT backbone in a checkpoint written
//! by `dino_vit_s`. Its defaults are the training run's evaluation (the student's CLS token,
//! the whole embedded split, raw pixels standardised with the checkpoint's
//! statistics), so both print the same numbers for the same checkpoint.
//!
//! The similarities are computed in blocks of test images bounded in memory, and every large
//! allocation is checked against the memory budget (`TESSERA_MEMORY_LIMIT`, default: the
//! machine's memory): too large a request is an error naming it and the limit. Features with
//! a NaN or an infinity (a diverged checkpoint) are refused, naming the set and the first bad
//! (image, feature), with a non-zero exit, instead of printing a meaningless accuracy.
//!
//! ```sh
//! cargo run --example knn_eval -- --checkpoint runs/dino_vit_s/checkpoint.safetensors
//! ```

use std::path::PathBuf;
use tessera::run::args::{self, Flag, Outcome, Parsed};
use tessera::run::device::DEVICE_FLAG;
use tessera::run::{ctx, data, exit_on_error, mix, model, Device, Program, Result};
use tessera::ssl::eval::{knn_classifier, raw_pixel_knn, vit_batch_within_budget, KnnConfig};
use tessera::tensor::{memory, Backend};

const ABOUT: &str = "k-NN evaluation of the ViT backbone in a dino_vit_s checkpoint";

const FLAGS: &[Flag] = &[
    Flag::value("checkpoint", "FILE", "Checkpoint written by dino_vit_s")
        .default("runs/dino_vit_s/checkpoint.safetensors"),
    Flag::value("data", "DIR", "Dataset folder").default_note("the embedded data/fashion-mnist"),
    Flag::value("resize", "PX", data::RESIZE_HELP).default_note(data::RESIZE_DEFAULT),
    Flag::value("network", "teacher|student", "Which backbone to evaluate").default("student"),
    Flag::value(
        "feature",
        "cls|patch-mean",
        "The CLS token or the mean of the patch tokens (after the final norm); the default is dino_vit_s's headline feature",
    )
    .default("patch-mean"),
    Flag::value("k", "N", "Neighbours").default("20"),
    Flag::value("temperature", "T", "Vote temperature").default("0.07"),
    Flag::value(
        "eval-train",
        "N",
        "Train-split images for the k-NN bank (class-balanced; 0 = all)",
    )
    .default("0"),
    Flag::value(
        "eval-test",
        "N",
        "Test-split images to classify (class-balanced; 0 = all)",
    )
    .default("0"),
    Flag::value("seed", "N", "Seed of the subsets, as in training").default("0"),
    DEVICE_FLAG,
];

fn main() {
    exit_on_error(|| {
        let p = match args::parse_env("knn_eval", ABOUT, FLAGS)? {
            Outcome::Help(h) => {
                print!("{h}");
                return Ok(());
            }
            Outcome::Run(p) => p,
        };
        Device::from_args(&p)?.run(KnnEval(p))
    })
}

/// The evaluation for the parsed flags.
struct KnnEval(Parsed);

impl Program for KnnEval {
    fn run<B: Backend>(self, dev: B) -> Result<()> {
        run(&self.0, &dev)
    }
}

/// The evaluation, with the model and the features on `dev`.
fn run<B: Backend>(p: &Parsed, dev: &B) -> Result<()> {
    let path: PathBuf = p
        .get("checkpoint")?
        .unwrap_or_else(|| PathBuf::from("runs/dino_vit_s/checkpoint.safetensors"));
    let data_dir: PathBuf = p.path("data").unwrap_or_else(data::default_data_dir);
    let network = p.raw("network").unwrap_or("student").to_string();
    let feature_name = p
        .raw("feature")
        .unwrap_or(model::Feature::DINO_HEADLINE.name());
    let feature = model::Feature::parse(feature_name).ok_or_else(|| {
        tessera::run::RunError::usage(format!(
            "--feature {feature_name}: expected cls or patch-mean"
        ))
    })?;
    model::check_network(&network)?;
    let k: usize = p.get_or("k", 20)?;
    let temperature: f64 = p.get_or("temperature", 0.07)?;
    let seed: u64 = p.get_or("seed", 0)?;
    let n_train: usize = p.get_or("eval-train", 0)?;
    let n_test: usize = p.get_or("eval-test", 0)?;

    let model::Backbone {
        model: vit,
        arch,
        normalize,
        ..
    } = model::load_backbone(&path, &network, dev)?;
    let img_size = vit.config.img_size;
    // Fail before loading data when even one image's forward cannot fit the budget.
    vit_batch_within_budget(&vit.config, img_size, img_size, 1).map_err(ctx("features"))?;

    let (train_all, test_all) = data::load_splits(&data_dir, p.get("resize")?)?;
    let cap = |n: usize| if n == 0 { usize::MAX } else { n };
    let bank = data::balanced_prefix(&train_all, cap(n_train), mix(&[seed, 2]))?;
    let test = data::balanced_prefix(&test_all, cap(n_test), mix(&[seed, 3]))?;
    let k = k.min(bank.len()).max(1);
    let cfg = KnnConfig {
        ks: vec![k],
        temperature,
        chunk_size: 256,
    };
    // The two feature matrices (f32, both features side by side), before computing them.
    let dim = 2 * vit.config.embed_dim;
    memory::check_bytes(
        &format!(
            "the features of {} bank and {} test images ({dim} values each)",
            bank.len(),
            test.len()
        ),
        (bank.len() + test.len())
            .checked_mul(dim)
            .and_then(|n| n.checked_mul(4)),
    )
    .map_err(ctx("features"))?;
    let raw = raw_pixel_knn(&bank, &test, normalize.as_ref(), &cfg, dev)
        .map_err(ctx("raw-pixel k-NN"))?;
    let both = |ds| model::token_features(&vit, ds, img_size, normalize.as_ref(), dev);
    let tr = feature.columns(&both(&bank)?)?;
    let te = feature.columns(&both(&test)?)?;
    let classes = bank.num_classes.max(test.num_classes);
    let r =
        knn_classifier(&tr, &bank.labels, &te, &test.labels, classes, &cfg).map_err(ctx("k-NN"))?;
    println!(
        "checkpoint: {} ({arch}), {network} backbone, {} feature",
        path.display(),
        feature.name()
    );
    println!(
        "k-NN (k={k}, T={temperature}) on {} train / {} test images of {}:",
        bank.len(),
        test.len(),
        data_dir.display()
    );
    println!(
        "  raw pixels{}: top-1 {:.2}%",
        if normalize.is_some() {
            " (standardised)"
        } else {
            ""
        },
        100.0 * raw[0].top1
    );
    println!("  backbone:   top-1 {:.2}%", 100.0 * r[0].top1);
    Ok(())
}
