//! k-NN evaluation (k = 20, T = 0.07 by default) of the ViT backbone in a checkpoint written
//! by `dino_vit_s`.
//!
//! ```sh
//! cargo run --example knn_eval -- --checkpoint runs/dino_vit_s/checkpoint.safetensors
//! ```

use std::path::PathBuf;
use tessera::autograd::Var;
use tessera::nn::checkpoint::select_prefix;
use tessera::nn::models::vit::{VisionTransformer, VitConfig};
use tessera::nn::ModuleExt;
use tessera::run::args::{self, Flag, Outcome};
use tessera::run::{ckpt, ctx, data, exit_on_error, mix, Result, RunError};
use tessera::ssl::augment::{resize_crop, stack_images, CropBox, Image};
use tessera::ssl::data::Dataset;
use tessera::ssl::eval::{knn_classifier, raw_pixel_knn, KnnConfig};
use tessera::tensor::{Cpu, DType, Tensor};

const ABOUT: &str = "k-NN evaluation of the ViT backbone in a dino_vit_s checkpoint";

const FLAGS: &[Flag] = &[
    Flag::value(
        "checkpoint",
        "FILE",
        "Checkpoint written by dino_vit_s [default: runs/dino_vit_s/checkpoint.safetensors]",
    ),
    Flag::value(
        "data",
        "DIR",
        "Dataset folder [default: the embedded data/fashion-mnist]",
    ),
    Flag::value(
        "network",
        "teacher|student",
        "Which backbone to evaluate [default: teacher]",
    ),
    Flag::value("k", "N", "Neighbours [default: 20]"),
    Flag::value("temperature", "T", "Vote temperature [default: 0.07]"),
    Flag::value(
        "eval-train",
        "N",
        "Train-split images for the k-NN bank (class-balanced; 0 = all) [default: 400]",
    ),
    Flag::value(
        "eval-test",
        "N",
        "Test-split images to classify (class-balanced; 0 = all) [default: 200]",
    ),
    Flag::value(
        "seed",
        "N",
        "Seed of the subsets, as in training [default: 0]",
    ),
];

/// The number after `key ` in the architecture string.
fn arch_field(arch: &str, key: &str) -> Result<usize> {
    let pat = format!("{key} ");
    arch.find(&pat)
        .and_then(|i| {
            let rest = &arch[i + pat.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .ok_or_else(|| {
            RunError::new(format!(
                "the checkpoint's architecture {arch:?} lacks {key}"
            ))
        })
}

fn features(model: &VisionTransformer<Cpu>, ds: &Dataset, size: usize) -> Result<Tensor<Cpu>> {
    let mut rows = Vec::new();
    for start in (0..ds.len()).step_by(64) {
        let imgs: Vec<Image> = (start..(start + 64).min(ds.len()))
            .map(|i| {
                ds.image(i).map(|im| {
                    let b = CropBox {
                        top: 0,
                        left: 0,
                        height: im.height(),
                        width: im.width(),
                    };
                    if im.height() == size && im.width() == size {
                        im
                    } else {
                        resize_crop(&im, b, size, size)
                    }
                })
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(ctx("features"))?;
        let refs: Vec<&Image> = imgs.iter().collect();
        let x = stack_images(&refs, &Cpu).map_err(ctx("features"))?;
        let f = model.forward(&Var::constant(x)).map_err(ctx("features"))?;
        rows.push(f.value().clone());
    }
    Tensor::cat(&rows, 0).map_err(ctx("features"))
}

fn main() {
    exit_on_error(run)
}

fn run() -> Result<()> {
    let p = match args::parse(std::env::args().skip(1), "knn_eval", ABOUT, FLAGS)? {
        Outcome::Help(h) => {
            print!("{h}");
            return Ok(());
        }
        Outcome::Run(p) => p,
    };
    let path: PathBuf = p
        .get("checkpoint")?
        .unwrap_or_else(|| PathBuf::from("runs/dino_vit_s/checkpoint.safetensors"));
    let data_dir: PathBuf = p.get("data")?.unwrap_or_else(data::default_data_dir);
    let network = p.raw("network").unwrap_or("teacher").to_string();
    if network != "teacher" && network != "student" {
        return Err(RunError::usage("--network: expected teacher or student"));
    }
    let k: usize = p.get_or("k", 20)?;
    let temperature: f64 = p.get_or("temperature", 0.07)?;
    let seed: u64 = p.get_or("seed", 0)?;
    let n_train: usize = p.get_or("eval-train", 400)?;
    let n_test: usize = p.get_or("eval-test", 200)?;

    if !path.is_file() {
        return Err(RunError::new(format!(
            "no checkpoint at {}",
            path.display()
        )));
    }
    let ck = tessera::nn::Checkpoint::load(&path, &Cpu).map_err(ctx(&format!(
        "cannot read the checkpoint {}",
        path.display()
    )))?;
    let arch = ck.metadata.get(ckpt::ARCH_KEY).cloned().ok_or_else(|| {
        RunError::new(format!(
            "the checkpoint {} has no architecture metadata (not written by dino_vit_s)",
            path.display()
        ))
    })?;
    let vit = VitConfig {
        img_size: arch_field(&arch, "img")?,
        in_chans: arch_field(&arch, "chans")?,
        embed_dim: arch_field(&arch, "embed")?,
        depth: arch_field(&arch, "depth")?,
        num_heads: arch_field(&arch, "heads")?,
        ..VitConfig::small(arch_field(&arch, "patch")?)
    };
    let mut model = VisionTransformer::zeroed(vit, DType::F32, &Cpu).map_err(ctx("the model"))?;
    let sd = select_prefix(&ck.tensors, &format!("{network}.backbone."));
    model
        .load_state_dict(&sd)
        .map_err(ctx(&format!("loading the {network} backbone")))?;

    let (train_all, test_all) = data::load_splits(&data_dir)?;
    let cap = |n: usize| if n == 0 { usize::MAX } else { n };
    let bank = data::balanced_prefix(&train_all, cap(n_train), mix(&[seed, 2]))?;
    let test = data::balanced_prefix(&test_all, cap(n_test), mix(&[seed, 3]))?;
    let k = k.min(bank.len()).max(1);
    let cfg = KnnConfig {
        ks: vec![k],
        temperature,
        chunk_size: 256,
    };
    let raw = raw_pixel_knn(&bank, &test, None, &cfg, &Cpu).map_err(ctx("raw-pixel k-NN"))?;
    let tr = features(&model, &bank, vit.img_size)?;
    let te = features(&model, &test, vit.img_size)?;
    let classes = bank.num_classes.max(test.num_classes);
    let r =
        knn_classifier(&tr, &bank.labels, &te, &test.labels, classes, &cfg).map_err(ctx("k-NN"))?;
    println!(
        "checkpoint: {} ({arch}), {network} backbone",
        path.display()
    );
    println!(
        "k-NN (k={k}, T={temperature}) on {} train / {} test images of {}:",
        bank.len(),
        test.len(),
        data_dir.display()
    );
    println!("  raw pixels: top-1 {:.2}%", 100.0 * raw[0].top1);
    println!("  backbone:   top-1 {:.2}%", 100.0 * r[0].top1);
    Ok(())
}
