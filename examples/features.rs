//! Exports the backbone features and last-block CLS attention of a batch of images to a
//! safetensors file, for analysis outside Tessera (NumPy, PyTorch, ...).
//!
//! ```sh
//! cargo run --example features -- --checkpoint runs/dino_vit_s/checkpoint.safetensors
//! cargo run --example features -- --checkpoint CK --images data/photos --img-size 28
//! cargo run --example features -- --checkpoint CK --tensor batch.safetensors --key images
//! ```
//!
//! Inputs, one of: image files and folders (`--images`, repeatable; resized and
//! center-cropped to `--img-size`), a float tensor `[b, c, h, w]` in a safetensors file
//! (`--tensor FILE --key NAME`, used as is), or by default the test split of `--data` (the
//! embedded Fashion-MNIST subset), class-balanced, `--limit` images, resized to the model's
//! training size. Pixels (also a `--tensor` batch) are `[0, 1]` values; they are standardized with the
//! per-channel mean/std recorded in the checkpoint, as `dino_vit_s` trained.
//!
//! The output (default `runs/features/features.safetensors`, written atomically) holds
//! `cls` `[b, D]` f32 (the CLS output after the final norm: what DINO's k-NN and linear
//! evaluations use), `attention` `[b, heads, h/p, w/p]` f32 (the last block's attention from
//! the CLS token to each patch; each map sums to less than 1, the rest is on the CLS token)
//! and, for dataset inputs, `labels` `[b]` i64. Its metadata names the model (`arch`), the
//! input (`source`) and, for image inputs, the files in order (`files`, one per line).
//!
//! Without `--checkpoint` the backbone is a randomly initialized ViT-S/7 (a warning says so).
//!
//! Memory: images go through the model in batches sized to the memory budget (attention is
//! quadratic in the tokens, so large images get small batches), and the outputs' sizes are
//! checked before anything is computed; a request over the budget is an error naming what
//! was asked for and the limit (`TESSERA_MEMORY_LIMIT`, default: the machine's memory). A
//! model that gives NaN or infinite features (a diverged checkpoint) is refused, naming the
//! first bad image and feature, and nothing is written.

use std::path::{Path, PathBuf};
use tessera::autograd::Var;
use tessera::nn::checkpoint::{Checkpoint, Metadata, StateDict};
use tessera::nn::models::vit::VitConfig;
use tessera::run::args::{self, Flag, Outcome, Parsed};
use tessera::run::device::DEVICE_FLAG;
use tessera::run::{
    ckpt, ctx, data, exit_on_error, images, mix, model, Device, Program, Result, RunError,
};
use tessera::ssl::augment::{resize_crop, stack_images, CropBox, Image};
use tessera::ssl::eval::{check_finite, cls_attention_maps, vit_batch_within_budget};
use tessera::tensor::{memory, Backend, DType, Tensor};

const ABOUT: &str =
    "Export CLS features and last-block CLS attention of images to safetensors (DINO ViT)";

const FLAGS: &[Flag] = &[
    Flag::value("checkpoint", "FILE", "Checkpoint written by dino_vit_s")
        .default_note("none, a random ViT-S/7"),
    Flag::value(
        "network",
        "teacher|student",
        "Which backbone of the checkpoint",
    )
    .default("teacher"),
    Flag::value(
        "images",
        "DIR|FILE",
        "PNG/JPEG file, or folder of them; repeat for more",
    )
    .default_note("the dataset"),
    Flag::value(
        "tensor",
        "FILE",
        "safetensors file holding a float [b, c, h, w] batch",
    )
    .default_note("none"),
    Flag::value("key", "NAME", "Tensor in --tensor's file").default_note("its only tensor"),
    Flag::value(
        "data",
        "DIR",
        "Dataset whose test split is used without --images/--tensor",
    )
    .default_note("the embedded data/fashion-mnist"),
    Flag::value("resize", "PX", data::RESIZE_HELP).default_note(data::RESIZE_DEFAULT),
    Flag::value("limit", "N", "Dataset images (class-balanced; 0 = all)").default("100"),
    Flag::value(
        "img-size",
        "N",
        "Resize + center-crop --images (and dataset images) to N x N",
    )
    .default_note("the model's training size; 224 for --images without a checkpoint"),
    Flag::value("patch-size", "N", "Patch size of the random model").default("7"),
    Flag::value("output", "FILE", "safetensors file to write")
        .default("runs/features/features.safetensors"),
    Flag::value(
        "seed",
        "N",
        "Seed of the dataset subset and of the random model",
    )
    .default("0"),
    DEVICE_FLAG,
    Flag::value("embed-dim", "N", "Random model width")
        .default("384")
        .hide(),
    Flag::value("depth", "N", "Random model blocks")
        .default("12")
        .hide(),
    Flag::value("heads", "N", "Random model heads")
        .default("6")
        .hide(),
];

/// Images per forward pass, at most (fewer when large images would exceed the memory budget).
const CHUNK: usize = 64;

/// The inputs: a `[b, c, h, w]` f32 batch on the model's backend, labels if known, a
/// description and file names.
struct Inputs<B: Backend> {
    x: Tensor<B>,
    labels: Option<Vec<i64>>,
    source: String,
    files: Vec<String>,
}

/// `--tensor FILE [--key NAME]`: the batch, checked for rank and dtype, as f32 on `dev`.
fn tensor_input<B: Backend>(path: &Path, key: Option<&str>, dev: &B) -> Result<Inputs<B>> {
    if !path.is_file() {
        return Err(RunError::new(format!(
            "no tensor file at {}",
            path.display()
        )));
    }
    let ck = Checkpoint::load(path, dev).map_err(ctx(&format!(
        "cannot read the safetensors file {}",
        path.display()
    )))?;
    let names: Vec<&str> = ck.tensors.keys().map(String::as_str).collect();
    let key = match key {
        Some(k) => k.to_string(),
        None if names.len() == 1 => names[0].to_string(),
        None => {
            return Err(RunError::usage(format!(
                "--tensor {} holds {} tensors ({}); choose one with --key",
                path.display(),
                names.len(),
                names.join(", ")
            )))
        }
    };
    let t = ck.tensors.get(&key).ok_or_else(|| {
        RunError::new(format!(
            "no tensor {key:?} in {} (it has: {})",
            path.display(),
            names.join(", ")
        ))
    })?;
    if t.shape().len() != 4 {
        return Err(RunError::new(format!(
            "tensor {key:?} in {} must be [b, c, h, w], got shape {:?}",
            path.display(),
            t.shape()
        )));
    }
    if !t.dtype().is_float() {
        return Err(RunError::new(format!(
            "tensor {key:?} in {} must be a float tensor (f16, bf16, f32 or f64), got {}",
            path.display(),
            t.dtype()
        )));
    }
    if t.shape()[0] == 0 {
        return Err(RunError::new(format!(
            "tensor {key:?} in {} is an empty batch",
            path.display()
        )));
    }
    let x = t.to_dtype(DType::F32).map_err(ctx("the input tensor"))?;
    Ok(Inputs {
        x,
        labels: None,
        source: format!("tensor {key:?} of {}", path.display()),
        files: Vec::new(),
    })
}

/// `--images`: every file resized and cropped to `size`, with `channels` planes, on `dev`.
fn image_input<B: Backend>(
    paths: &[PathBuf],
    size: usize,
    channels: usize,
    dev: &B,
) -> Result<Inputs<B>> {
    let files = images::expand_paths(paths)?;
    let imgs: Vec<Image> = files
        .iter()
        .map(|f| images::load_square(f, size).and_then(|rgb| images::to_input(&rgb, channels)))
        .collect::<Result<_>>()?;
    let refs: Vec<&Image> = imgs.iter().collect();
    let x = stack_images(&refs, dev).map_err(ctx("the images"))?;
    Ok(Inputs {
        x,
        labels: None,
        source: format!("{} image files", files.len()),
        files: files.iter().map(|f| f.display().to_string()).collect(),
    })
}

/// The test split of `dir`: `limit` class-balanced images, resized to `size` if needed, on
/// `dev`.
fn dataset_input<B: Backend>(
    dir: &Path,
    resize: Option<usize>,
    limit: usize,
    size: Option<usize>,
    seed: u64,
    dev: &B,
) -> Result<Inputs<B>> {
    let (_, test) = data::load_splits(dir, resize)?;
    let n = if limit == 0 { usize::MAX } else { limit };
    let ds = data::balanced_prefix(&test, n, mix(&[seed, 3]))?;
    let imgs: Vec<Image> = (0..ds.len())
        .map(|i| {
            ds.image(i).map(|im| match size {
                Some(s) if im.height() != s || im.width() != s => {
                    let b = CropBox {
                        top: 0,
                        left: 0,
                        height: im.height(),
                        width: im.width(),
                    };
                    resize_crop(&im, b, s, s)
                }
                _ => im,
            })
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(ctx("the dataset"))?;
    let refs: Vec<&Image> = imgs.iter().collect();
    let x = stack_images(&refs, dev).map_err(ctx("the dataset"))?;
    Ok(Inputs {
        x,
        labels: Some(ds.labels.iter().map(|&l| i64::from(l)).collect()),
        source: format!("{} test images of {}", ds.len(), dir.display()),
        files: Vec::new(),
    })
}

/// The random model for inputs of `chans` channels and `size` pixels, on `dev`.
fn random_model<B: Backend>(
    p: &Parsed,
    chans: usize,
    size: usize,
    dev: &B,
) -> Result<model::Backbone<B>> {
    let vit = VitConfig {
        img_size: size,
        in_chans: chans,
        embed_dim: p.get_or("embed-dim", 384)?,
        depth: p.get_or("depth", 12)?,
        num_heads: p.get_or("heads", 6)?,
        ..VitConfig::small(p.get_or("patch-size", 7)?)
    };
    model::random_backbone(vit, p.get_or("seed", 0)?, dev)
}

fn main() {
    exit_on_error(|| {
        let p = match args::parse_env("features", ABOUT, FLAGS)? {
            Outcome::Help(h) => {
                print!("{h}");
                return Ok(());
            }
            Outcome::Run(p) => p,
        };
        Device::from_args(&p)?.run(Features(p))
    })
}

/// The export for the parsed flags.
struct Features(Parsed);

impl Program for Features {
    fn run<B: Backend>(self, dev: B) -> Result<()> {
        run(&self.0, &dev)
    }
}

/// The export, with the model and the inputs on `dev` (the file is written from the host).
fn run<B: Backend>(p: &Parsed, dev: &B) -> Result<()> {
    let checkpoint: Option<PathBuf> = p.path("checkpoint");
    let network = p.raw("network").unwrap_or("teacher").to_string();
    model::check_network(&network)?;
    let image_args = p.all_paths("images");
    let tensor: Option<PathBuf> = p.path("tensor");
    if tensor.is_some() && !image_args.is_empty() {
        return Err(RunError::usage("give --images or --tensor, not both"));
    }
    if tensor.is_none() && p.raw("key").is_some() {
        return Err(RunError::usage("--key needs --tensor"));
    }
    let size_flag: Option<usize> = p.get("img-size")?;
    let limit: usize = p.get_or("limit", 100)?;
    let seed: u64 = p.get_or("seed", 0)?;
    let output: PathBuf = p
        .path("output")
        .unwrap_or_else(|| PathBuf::from("runs/features/features.safetensors"));
    // The file is safetensors whatever it is called; a name saying otherwise (`x.npy`,
    // `x.jpg`) would mislead whoever opens it, so refuse it before any work.
    let is_safetensors = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if !is_safetensors {
        return Err(RunError::usage(format!(
            "--output {}: features are written as safetensors; use a .safetensors file name",
            output.display()
        )));
    }

    let loaded = match &checkpoint {
        Some(path) => {
            for f in ["embed-dim", "depth", "heads", "patch-size"] {
                if p.raw(f).is_some() {
                    return Err(RunError::usage(format!(
                        "--{f} sets up a random model; it cannot be used with --checkpoint"
                    )));
                }
            }
            Some(model::load_backbone(path, &network, dev)?)
        }
        None => None,
    };
    let model_size = loaded.as_ref().map(|b| b.model.config.img_size);
    let model_chans = loaded.as_ref().map(|b| b.model.config.in_chans);

    let inputs = if let Some(t) = &tensor {
        if size_flag.is_some() {
            return Err(RunError::usage(
                "--img-size resizes images; a --tensor batch is used as is",
            ));
        }
        tensor_input(t, p.raw("key"), dev)?
    } else if !image_args.is_empty() {
        let size = size_flag.or(model_size).unwrap_or(224);
        image_input(&image_args, size, model_chans.unwrap_or(3), dev)?
    } else {
        let dir: PathBuf = p.path("data").unwrap_or_else(data::default_data_dir);
        dataset_input(
            &dir,
            p.get("resize")?,
            limit,
            size_flag.or(model_size),
            seed,
            dev,
        )?
    };
    let [b, c, h, w] = <[usize; 4]>::try_from(inputs.x.shape()).expect("rank 4");

    let bb = match loaded {
        Some(bb) => bb,
        None => {
            eprintln!(
                "warning: no --checkpoint: the features of a randomly initialized ViT are not \
                 meaningful"
            );
            random_model(p, c, h, dev)?
        }
    };
    let vit = &bb.model;
    let cfg = vit.config;
    if c != cfg.in_chans {
        return Err(RunError::new(format!(
            "the input has {c} channels; the model expects {}",
            cfg.in_chans
        )));
    }
    images::check_patch_multiple("the image size", h, w, cfg.patch_size)?;
    // Before any compute: the outputs fit the budget, and so does one image's forward (the
    // batch is then as large as the budget allows).
    let (gh, gw) = (h / cfg.patch_size, w / cfg.patch_size);
    let out_bytes = [cfg.embed_dim, cfg.num_heads * gh * gw]
        .iter()
        .try_fold(0usize, |acc, &per| {
            per.checked_mul(b)?.checked_mul(4)?.checked_add(acc)
        });
    memory::check_bytes(
        &format!("the features and attention maps of {b} images ({h}x{w})"),
        out_bytes,
    )
    .map_err(ctx("features"))?;
    let chunk = vit_batch_within_budget(&cfg, h, w, CHUNK).map_err(ctx("features"))?;
    // Inputs are `[0, 1]` pixels; the model sees them standardized as in its training.
    let x = bb.prepare(inputs.x.clone())?;

    let mut cls = Vec::new();
    let mut attn = Vec::new();
    for start in (0..b).step_by(chunk) {
        let xb = x
            .narrow(0, start, chunk.min(b - start))
            .map_err(ctx("the input"))?;
        let f = vit
            .forward(&Var::constant(xb.clone()))
            .map_err(ctx("features"))?;
        cls.push(f.value().clone());
        attn.push(cls_attention_maps(vit, &xb).map_err(ctx("attention"))?);
    }
    let cls = Tensor::cat(&cls, 0).map_err(ctx("features"))?;
    let attn = Tensor::cat(&attn, 0).map_err(ctx("attention"))?;
    // Row = image: the error names the first image (in input order) and feature that is bad.
    check_finite("features", "the CLS features", &cls).map_err(ctx("the model's output"))?;
    check_finite("features", "the attention maps", &attn).map_err(ctx("the model's output"))?;
    let mut tensors = StateDict::new();
    tensors.insert("cls".into(), cls);
    tensors.insert("attention".into(), attn);
    if let Some(l) = &inputs.labels {
        tensors.insert(
            "labels".into(),
            Tensor::from_vec(l.clone(), &[b], dev).map_err(ctx("labels"))?,
        );
    }
    let mut md = Metadata::new();
    md.insert(ckpt::ARCH_KEY.into(), bb.arch.clone());
    md.insert("source".into(), inputs.source.clone());
    if let Some(path) = &checkpoint {
        md.insert("checkpoint".into(), path.display().to_string());
        md.insert("network".into(), network.clone());
    }
    if !inputs.files.is_empty() {
        md.insert("files".into(), inputs.files.join("\n"));
    }
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(ctx(&dir.display().to_string()))?;
    }
    let summary: Vec<String> = tensors
        .iter()
        .map(|(k, t)| format!("{k} {:?}", t.shape()))
        .collect();
    Checkpoint {
        tensors,
        metadata: md,
    }
    .save(&output)
    .map_err(ctx(&format!("writing {}", output.display())))?;

    println!("model: {}", bb.arch);
    println!("input: {} ({b} x {c} x {h} x {w})", inputs.source);
    println!("wrote {}: {}", output.display(), summary.join(", "));
    Ok(())
}
