//! DINO's attention maps: the self-attention of the CLS token to every patch, per head of the
//! last ViT block, over one photo (DINO's `visualize_attention.py`: the image resized and
//! cropped to a multiple of the patch size, `attentions[0, :, 0, 1:]` reshaped to the patch
//! grid, upsampled nearest by the patch size, optionally thresholded).
//!
//! ```sh
//! cargo run --example attention_maps -- --checkpoint runs/dino_vit_s/checkpoint.safetensors
//! cargo run --example attention_maps -- --image data/photos/coffee.png --threshold 0.6
//! cargo run --example attention_maps                 # random ViT-S/16: maps mean nothing
//! ```
//!
//! It writes one picture (default `runs/attention_maps/attention.png`; `--output` ending in
//! `.jpg` or `.jpeg` writes a JPEG, other extensions are refused) that says what it shows: a
//! title, the model and the image, the photo above the input exactly as the model saw it
//! (its resolution, grey for a 1-channel model, upscaled nearest-neighbour), then one heat
//! map per head ("head 1", ...) in a grid of up to 3 columns, each scaled from its smallest
//! to its largest weight (as matplotlib's `imsave`, viridis colours) with a colour bar whose
//! tick labels are the attention probabilities. With `--threshold F` each head shows instead
//! the photo with the smallest set of patches that holds a fraction `F` of that head's
//! attention mass (DINO's `--threshold`), the rest dimmed. A patch grid coarser than 8x8
//! gets a warning, on the picture and on stderr. It prints, per head, the largest weight,
//! the mass on the patches (the rest goes to the CLS token itself) and the entropy of the
//! normalized map.
//!
//! Pixels go in as `[0, 1]` values without normalization, as `dino_vit_s` trains; a
//! 1-channel model (Fashion-MNIST) sees the photo's luma. Without `--checkpoint` the model is
//! a randomly initialized ViT-S/16 (flags `--patch-size`, `--img-size`), whose maps show no
//! learned structure.

use std::path::PathBuf;
use tessera::run::args::{self, Flag, Outcome, Parsed};
use tessera::run::device::DEVICE_FLAG;
use tessera::run::{ctx, exit_on_error, images, model, plot, Device, Program, Result, RunError};
use tessera::ssl::augment::stack_images;
use tessera::ssl::eval::{check_finite, cls_attention_maps};
use tessera::tensor::Backend;

const ABOUT: &str =
    "Per-head CLS attention maps of the last ViT block over a photo, as a PNG or JPEG grid (DINO)";

const FLAGS: &[Flag] = &[
    Flag::value("checkpoint", "FILE", "Checkpoint written by dino_vit_s")
        .default_note("none, a random ViT-S/16"),
    Flag::value(
        "network",
        "teacher|student",
        "Which backbone of the checkpoint",
    )
    .default("teacher"),
    Flag::value("image", "FILE", "PNG or JPEG photo")
        .default_note("the shipped data/photos/chelsea.png"),
    Flag::value(
        "img-size",
        "N",
        "Resize + center-crop the photo to N x N, a multiple of the patch size",
    )
    .default_note("the checkpoint's training size; 224 without one"),
    Flag::value(
        "patch-size",
        "N",
        "Patch size of the random model (must match a checkpoint's)",
    )
    .default("16"),
    Flag::value(
        "threshold",
        "F",
        "Show the patches holding this fraction of each head's mass, in (0, 1]",
    )
    .default_note("off"),
    Flag::value("zoom", "N", "Enlarge every tile N times")
        .default_note("224 / img-size, at least 1"),
    Flag::value(
        "output",
        "FILE",
        "Picture to write: .png, or .jpg/.jpeg (JPEG, quality 90)",
    )
    .default("runs/attention_maps/attention.png"),
    Flag::value("seed", "N", "Seed of the random model").default("0"),
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

/// The side of the random model's input without `--img-size` (DINO's ViT-S/16 at 224).
const RANDOM_IMG_SIZE: usize = 224;
/// The largest tile side, `img-size x zoom`, in pixels: the picture stays a few MB.
const MAX_TILE: usize = 4096;

/// Fails unless tiles of `size` pixels zoomed `zoom` times fit in [`MAX_TILE`], naming what
/// the user typed: `--img-size` when `typed` (else the model's size), and `--zoom`
/// when given.
fn check_tile(size: usize, typed: bool, zoom: Option<usize>) -> Result<()> {
    let what = if typed {
        format!("--img-size {size}")
    } else {
        format!("the model's image size {size} (choose another with --img-size)")
    };
    if size == 0 || size > MAX_TILE {
        return Err(RunError::usage(format!(
            "{what}: expected 1 to {MAX_TILE} px"
        )));
    }
    match zoom {
        Some(0) => Err(RunError::usage("--zoom 0: expected at least 1")),
        Some(z) if size.saturating_mul(z) > MAX_TILE => Err(RunError::usage(format!(
            "--zoom {z} with an image of {size} px makes tiles of {} px; at most {MAX_TILE} \
             px (--zoom {} or less)",
            size.saturating_mul(z),
            MAX_TILE / size
        ))),
        _ => Ok(()),
    }
}

/// Patch grids with fewer patches a side than this get a warning: the maps are too coarse
/// to show where the model looks.
const MIN_GRID: usize = 8;

/// DINO's `--threshold`: the patches with the largest weights whose normalized mass together
/// exceeds `1 - threshold` from below, i.e. the smallest top set holding `threshold` of it.
fn threshold_mask(map: &[f32], threshold: f32) -> Vec<bool> {
    let total: f32 = map.iter().sum();
    let mut idx: Vec<usize> = (0..map.len()).collect();
    idx.sort_by(|&a, &b| map[a].total_cmp(&map[b]));
    let mut keep = vec![false; map.len()];
    let mut cum = 0.0f32;
    for &i in &idx {
        cum += map[i] / total;
        keep[i] = cum > 1.0 - threshold;
    }
    keep
}

/// Entropy (nats) of a map normalized to sum 1.
fn entropy(map: &[f32]) -> f64 {
    let total: f64 = map.iter().map(|&v| f64::from(v)).sum();
    map.iter()
        .map(|&v| f64::from(v) / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum()
}

fn main() {
    exit_on_error(|| {
        let p = match args::parse_env("attention_maps", ABOUT, FLAGS)? {
            Outcome::Help(h) => {
                print!("{h}");
                return Ok(());
            }
            Outcome::Run(p) => p,
        };
        Device::from_args(&p)?.run(AttentionMaps(p))
    })
}

/// The program for the parsed flags.
struct AttentionMaps(Parsed);

impl Program for AttentionMaps {
    fn run<B: Backend>(self, dev: B) -> Result<()> {
        run(&self.0, &dev)
    }
}

/// The maps, with the model and the input on `dev` (the picture is drawn on the host).
fn run<B: Backend>(p: &Parsed, dev: &B) -> Result<()> {
    let checkpoint: Option<PathBuf> = p.path("checkpoint");
    let network: String = p.value("network")?;
    model::check_network(&network)?;
    let image_path: PathBuf = p
        .path("image")
        .unwrap_or_else(|| images::photos_dir().join("chelsea.png"));
    let output: PathBuf = p.path_value("output")?;
    // Refused before any work: an extension we cannot write is a typo, not a format choice.
    images::picture_format(&output, "--output")?;
    let threshold: Option<f32> = p.get("threshold")?;
    if let Some(t) = threshold {
        if !(t > 0.0 && t <= 1.0) {
            return Err(RunError::usage(format!(
                "--threshold {t}: expected a fraction in (0, 1]"
            )));
        }
    }
    let patch_flag: Option<usize> = p.get("patch-size")?;
    let size_flag: Option<usize> = p.get("img-size")?;
    let zoom_flag: Option<usize> = p.get("zoom")?;
    // Sizes the user typed are checked before a model of that size is built.
    if let Some(size) = size_flag {
        check_tile(size, true, zoom_flag)?;
    }

    let bb = match &checkpoint {
        Some(path) => {
            for f in ["embed-dim", "depth", "heads", "seed"] {
                if p.raw(f).is_some() {
                    return Err(RunError::usage(format!(
                        "--{f} sets up a random model; it cannot be used with --checkpoint"
                    )));
                }
            }
            let bb = model::load_backbone(path, &network, dev)?;
            let cp = bb.model.config.patch_size;
            if let Some(ps) = patch_flag.filter(|&ps| ps != cp) {
                return Err(RunError::new(format!(
                    "--patch-size {ps}: the checkpoint's patch size is {cp}"
                )));
            }
            bb
        }
        None => {
            let patch: usize = p.value("patch-size")?;
            if patch == 0 {
                return Err(RunError::usage("--patch-size 0: expected a positive size"));
            }
            let size = size_flag.unwrap_or(RANDOM_IMG_SIZE);
            if size_flag.is_none() && size % patch != 0 {
                return Err(RunError::usage(format!(
                    "--patch-size {patch} does not divide the default image size \
                     {RANDOM_IMG_SIZE}; pass --img-size, a multiple of {patch}"
                )));
            }
            images::check_size_flag("--img-size", size, patch)?;
            let vit = tessera::nn::models::vit::VitConfig {
                img_size: size,
                embed_dim: p.value("embed-dim")?,
                depth: p.value("depth")?,
                num_heads: p.value("heads")?,
                ..tessera::nn::models::vit::VitConfig::small(patch)
            };
            model::random_backbone(vit, p.value("seed")?, dev)?
        }
    };
    let vit = &bb.model;
    let patch = vit.config.patch_size;
    let size = size_flag.unwrap_or(vit.config.img_size);
    match size_flag {
        Some(s) => images::check_size_flag("--img-size", s, patch)?,
        // A checkpoint's own size is a multiple of its patch size, but may be too large.
        None => check_tile(size, false, zoom_flag)?,
    }
    let zoom = zoom_flag.unwrap_or((224 / size).max(1));

    let photo = images::load_square(&image_path, size)?;
    let input = images::to_input(&photo, vit.config.in_chans)?;
    let x = bb.prepare(stack_images(&[&input], dev).map_err(ctx("the input"))?)?;
    let maps = cls_attention_maps(vit, &x).map_err(ctx("attention"))?;
    // Weights that are finite can still overflow inside a block; a picture of NaN would be
    // drawn as if it meant something, so refuse it and name the first bad head and patch.
    check_finite(
        "attention_maps",
        "the CLS attention of the last block",
        &maps
            .reshape(&[maps.shape()[1], maps.shape()[2] * maps.shape()[2]])
            .map_err(ctx("attention"))?,
    )
    .map_err(ctx("the model's output"))?;
    let (heads, g) = (maps.shape()[1], maps.shape()[2]);
    let values = maps.to_vec::<f32>().map_err(ctx("attention"))?;
    let per_head: Vec<&[f32]> = values.chunks_exact(g * g).collect();

    let masks: Option<Vec<Vec<bool>>> =
        threshold.map(|t| per_head.iter().map(|m| threshold_mask(m, t)).collect());
    let kept: Vec<Option<usize>> = (0..heads)
        .map(|h| masks.as_ref().map(|m| m[h].iter().filter(|&&k| k).count()))
        .collect();
    let coarse = (g < MIN_GRID).then(|| {
        format!(
            "warning: patch grid {g}x{g}: too coarse for the maps to show much \
             (use --img-size {} or more)",
            MIN_GRID * patch
        )
    });
    if let Some(w) = &coarse {
        eprintln!("{w}");
    }
    let model_line = match &checkpoint {
        Some(path) => format!(
            "model: {} ({network} backbone of {})",
            bb.arch,
            path.display()
        ),
        None => format!("model: {}", bb.arch),
    };
    let image_line = format!(
        "image: {} at {size}x{size} px, {g}x{g} patches of {patch} px",
        image_path.display()
    );
    let untrained = "note: no --checkpoint: the attention maps of an untrained model are not \
                     meaningful";
    let tile = size * zoom;
    let photo_tile = images::load_square(&image_path, tile)?;
    let input_tile = images::input_picture(&input, zoom as u32);
    let colour = if input.channels() == 1 { "grey" } else { "RGB" };
    let mut notes = vec![model_line.clone(), image_line.clone()];
    if checkpoint.is_none() {
        notes.push(untrained.to_string());
    }
    notes.push(format!(
        "model input: {size}x{size} px, {colour}, shown {zoom}x larger (nearest neighbour)"
    ));
    let canvas = plot::attention::AttentionFigure {
        title: "DINO attention maps: CLS token to patches, last block".into(),
        notes,
        warning: coarse,
        photo: &photo_tile,
        photo_label: "photo".into(),
        input: &input_tile,
        input_label: "model input".into(),
        maps: &per_head,
        head_labels: plot::attention::head_labels(masks.as_deref(), heads, g),
        grid: g,
        cell_px: (patch * zoom) as u32,
        masks: masks.as_deref(),
        legend: plot::attention::legend(threshold),
    }
    .draw();
    let (width, height) = canvas.dimensions();
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(ctx(&dir.display().to_string()))?;
    }
    images::save_picture(&canvas, &output, "--output")?;

    println!("{model_line}");
    if checkpoint.is_none() {
        println!("{untrained}");
    }
    println!("{image_line}");
    println!(
        "wrote {} ({width}x{height} px: the photo, the model input and {heads} heads in \
         tiles of {tile}x{tile} px)",
        output.display()
    );
    for (h, map) in per_head.iter().enumerate() {
        let max = map.iter().copied().fold(0.0f32, f32::max);
        let mass: f32 = map.iter().sum();
        let mut line = format!(
            "  head {}: max {max:.4}, mass on patches {mass:.4}, entropy {:.3} nats (uniform {:.3})",
            h + 1,
            entropy(map),
            ((g * g) as f64).ln()
        );
        if let (Some(k), Some(t)) = (kept[h], threshold) {
            line.push_str(&format!(
                ", {k}/{} patches hold {:.0}% of the mass",
                g * g,
                100.0 * t
            ));
        }
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_keeps_the_top_mass() {
        let m = [0.1, 0.4, 0.2, 0.3];
        assert_eq!(threshold_mask(&m, 0.6), [false, true, false, true]);
        assert_eq!(threshold_mask(&m, 1.0), [true; 4]);
        assert!((entropy(&[1.0, 1.0]) - 2f64.ln()).abs() < 1e-12);
    }
}
