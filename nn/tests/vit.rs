//! The Vision Transformer against PyTorch (scripts/gen_vit_fixtures.py):
//! - `vit_tiny.safetensors`: a 2-block f64 model at a non-native 24×20 input (positional
//!   interpolation), its CLS output, last self-attention, intermediate layers and every
//!   parameter gradient;
//! - `vit_s16.safetensors`: DINO ViT-S/16 with the script's deterministic *recipe* weights
//!   (rebuilt here, see [`recipe`]), CLS output and last self-attention at 224 and 96 px, f32.
//!
//! Run with `--nocapture` to see the achieved errors and timings.

use std::path::PathBuf;
use std::time::Instant;
use tessera_autograd::Var;
use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_nn::{Checkpoint, Error, Module, ModuleExt, StateDict};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

fn fixture(name: &str) -> StateDict<Cpu> {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Checkpoint::load(&path, &Cpu).expect("fixture file").tensors
}

fn get<'a>(sd: &'a StateDict<Cpu>, key: &str) -> &'a Tensor<Cpu> {
    sd.get(key)
        .unwrap_or_else(|| panic!("fixture has no {key}"))
}

/// Max |got - want| / max |want|, after checking shapes.
fn rel_err(what: &str, got: &Tensor<Cpu>, want: &Tensor<Cpu>) -> f64 {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let g = got.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    let w = want.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = g
        .iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err.is_finite(), "{what}: non-finite values");
    err / scale.max(f64::MIN_POSITIVE)
}

/// The acceptance bound of the f32 comparisons: `|got - want| <= 1e-4·max|want| + 1e-6`.
fn assert_close_f32(what: &str, got: &Tensor<Cpu>, want: &Tensor<Cpu>) {
    let g = got.to_vec::<f32>().unwrap();
    let w = want.to_vec::<f32>().unwrap();
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    let tol = 1e-4 * scale + 1e-6;
    let err = g
        .iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()));
    eprintln!("{what}: max abs err {err:.3e} (tolerance {tol:.3e}, max|ref| {scale:.3})");
    assert!(err <= tol, "{what}: max abs error {err:e} > {tol:e}");
}

// ------------------------------------------------------------------- construction, names

fn small_config() -> VitConfig {
    VitConfig {
        img_size: 8,
        depth: 2,
        embed_dim: 12,
        ..VitConfig::tiny(4)
    }
}

#[test]
fn names_shapes_init_and_dpr() {
    let c = VitConfig {
        drop_path_rate: 0.1,
        ..small_config()
    };
    let vit = VisionTransformer::new(c, DType::F32, &mut Rng::new(0), &Cpu).unwrap();
    let sd = vit.state_dict();
    assert_eq!(sd["pos_embed"].shape(), [1, 5, 12]);
    assert_eq!(sd["blocks.1.attn.qkv.weight"].shape(), [36, 12]);
    assert_eq!(sd["blocks.0.mlp.fc1.weight"].shape(), [48, 12]);
    assert_eq!(sd.len(), 4 + 2 * 12 + 2);
    // DINO init: zero Linear biases, std-0.02 weights; the patch conv keeps PyTorch's default.
    let zero = |k: &str| sd[k].to_vec::<f32>().unwrap().iter().all(|&v| v == 0.0);
    assert!(zero("blocks.0.attn.proj.bias") && zero("blocks.1.mlp.fc2.bias"));
    assert!(!zero("patch_embed.proj.bias"));
    let w = sd["blocks.0.mlp.fc1.weight"].to_vec::<f32>().unwrap();
    assert!(w.iter().all(|v| v.abs() < 0.2) && w.iter().any(|v| v.abs() > 0.02));
    let dpr: Vec<f64> = vit.blocks.iter().map(|b| b.drop_path.p).collect();
    assert_eq!(dpr, [0.0, f64::from(0.1f32)]);
    let x = Var::constant(Tensor::ones(&[2, 3, 12, 8], DType::F32, &Cpu).unwrap());
    assert_eq!(vit.forward(&x).unwrap().shape(), [2, 12]);
    assert_eq!(vit.forward_tokens(&x).unwrap().shape(), [2, 7, 12]);
    // `forward_features` is the image's vector, as on ResNet and the SSL `Backbone` trait.
    assert_eq!(vit.forward_features(&x).unwrap().shape(), [2, 12]);
    let attn = vit.get_last_selfattention(&x).unwrap();
    assert_eq!(attn.shape(), [2, 3, 7, 7]);
    assert_eq!(vit.get_intermediate_layers(&x, 2).unwrap().len(), 2);
    // Grayscale, patch 7, 28 px (Fashion-MNIST).
    let gray = VitConfig {
        img_size: 28,
        in_chans: 1,
        ..VitConfig::tiny(7)
    };
    let vit = VisionTransformer::new(gray, DType::F32, &mut Rng::new(0), &Cpu).unwrap();
    let x = Var::constant(Tensor::ones(&[1, 1, 28, 28], DType::F32, &Cpu).unwrap());
    assert_eq!(vit.forward(&x).unwrap().shape(), [1, 192]);
}

#[test]
fn bad_inputs_are_errors_and_zeroed_matches_new() {
    let vit = VisionTransformer::new(small_config(), DType::F32, &mut Rng::new(0), &Cpu).unwrap();
    let x = Var::constant(Tensor::ones(&[1, 3, 10, 8], DType::F32, &Cpu).unwrap());
    let msg = vit.forward(&x).unwrap_err().to_string();
    assert!(
        msg.contains("10x8") && msg.contains("patch size 4"),
        "{msg}"
    );
    let gray = Var::constant(Tensor::ones(&[1, 1, 8, 8], DType::F32, &Cpu).unwrap());
    assert!(vit.forward(&gray).is_err());
    let z = VisionTransformer::<Cpu>::zeroed(small_config(), DType::F32, &Cpu).unwrap();
    let shapes = |sd: StateDict<Cpu>| -> Vec<_> {
        sd.into_iter()
            .map(|(k, t)| (k, t.shape().to_vec()))
            .collect()
    };
    assert_eq!(shapes(z.state_dict()), shapes(vit.state_dict()));
    for bad in [
        VitConfig {
            num_heads: 5,
            ..small_config()
        },
        VitConfig {
            patch_size: 16,
            ..small_config()
        },
        VitConfig {
            drop_path_rate: 1.0,
            ..small_config()
        },
    ] {
        assert!(VisionTransformer::<Cpu>::new(bad, DType::F32, &mut Rng::new(0), &Cpu).is_err());
        assert!(VisionTransformer::<Cpu>::zeroed(bad, DType::F32, &Cpu).is_err());
    }
}

// ------------------------------------------------------------------------------ tiny, f64

fn tiny_config() -> VitConfig {
    VitConfig {
        img_size: 16,
        embed_dim: 48,
        depth: 2,
        num_heads: 3,
        ..VitConfig::tiny(4)
    }
}

fn tiny_model(fx: &StateDict<Cpu>) -> VisionTransformer<Cpu> {
    let mut vit =
        VisionTransformer::new(tiny_config(), DType::F64, &mut Rng::new(9), &Cpu).unwrap();
    let sd = tessera_nn::checkpoint::select_prefix(fx, "param.");
    vit.load_state_dict(&sd)
        .expect("fixture weights load strictly");
    vit
}

#[test]
fn tiny_outputs_at_non_native_size() {
    let fx = fixture("vit_tiny.safetensors");
    let vit = tiny_model(&fx);
    let x = Var::constant(get(&fx, "input.24x20").clone());
    let mut worst = 0.0f64;
    let mut check = |what: &str, got: &Var<Cpu>, key: &str| {
        let e = rel_err(what, got.value(), get(&fx, key));
        eprintln!("{what}: relative error {e:.2e}");
        worst = worst.max(e);
    };
    check("cls 24x20", &vit.forward(&x).unwrap(), "cls.24x20");
    let attn = vit.get_last_selfattention(&x).unwrap();
    check("attention 24x20", &attn, "attn.24x20");
    for (i, o) in vit
        .get_intermediate_layers(&x, 2)
        .unwrap()
        .iter()
        .enumerate()
    {
        check("intermediate", o, &format!("inter.24x20.{i}"));
    }
    let x16 = Var::constant(get(&fx, "input.16").clone());
    check(
        "cls 16x16 (stored grid)",
        &vit.forward(&x16).unwrap(),
        "cls.16",
    );
    assert!(worst < 1e-10, "worst relative error {worst:e}");
}

#[test]
fn tiny_gradients_match_pytorch() {
    let fx = fixture("vit_tiny.safetensors");
    let vit = tiny_model(&fx);
    let x = Var::leaf(get(&fx, "input.24x20").clone());
    let grads = vit
        .forward(&x)
        .unwrap()
        .backward_with(get(&fx, "upstream"))
        .unwrap();
    let by_name = vit.grads_by_name(&grads);
    assert_eq!(
        by_name.len(),
        vit.named_params().len(),
        "every parameter gets a gradient"
    );
    let mut worst = ("grad.input".to_string(), 0.0f64);
    let input = rel_err("grad.input", grads.get(&x).unwrap(), get(&fx, "grad.input"));
    worst.1 = input;
    for (name, g) in &by_name {
        let e = rel_err(name, g, get(&fx, &format!("grad.{name}")));
        assert!(e < 1e-4, "{name}: relative error {e:e}");
        if e > worst.1 {
            worst = (name.clone(), e);
        }
    }
    eprintln!(
        "gradients: worst relative error {:.2e} ({})",
        worst.1, worst.0
    );
    assert!(worst.1 < 1e-4, "{worst:?}");
}

// ------------------------------------------------------------------------- ViT-S/16, f32

/// FNV-1a 64 of the name.
fn fnv1a64(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The script's recipe: `center + scale·(2u − 1)` with `u` from SplitMix64's mix of
/// `fnv1a64(name) + (i + 1)·golden`, rounded to f32 (see scripts/gen_vit_fixtures.py).
fn recipe(name: &str, shape: &[usize], center: f64, scale: f64) -> Tensor<Cpu> {
    let h = fnv1a64(name);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n as u64)
        .map(|i| {
            let mut z = h.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            (center + scale * (2.0 * u - 1.0)) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Cpu).unwrap()
}

/// `(center, scale)` of a ViT-S/16 parameter in the recipe.
fn recipe_params(name: &str) -> (f64, f64) {
    let module = name.rsplit('.').nth(1).unwrap_or("");
    if name == "cls_token" || name == "pos_embed" {
        (0.0, 0.04)
    } else if name.starts_with("patch_embed.proj.") {
        (0.0, 1.0 / ((3 * 16 * 16) as f64).sqrt())
    } else if name.ends_with(".weight") && module.starts_with("norm") {
        (1.0, 0.1)
    } else if name.ends_with(".bias") {
        (0.0, 0.02)
    } else {
        (0.0, 0.1)
    }
}

fn recipe_state_dict(vit: &VisionTransformer<Cpu>) -> StateDict<Cpu> {
    vit.state_dict()
        .into_iter()
        .map(|(k, t)| {
            let (c, s) = recipe_params(&k);
            let r = recipe(&k, t.shape(), c, s);
            (k, r)
        })
        .collect()
}

fn vit_s16() -> VisionTransformer<Cpu> {
    let mut vit = VisionTransformer::zeroed(VitConfig::small(16), DType::F32, &Cpu).unwrap();
    let sd = recipe_state_dict(&vit);
    vit.load_state_dict(&sd).unwrap();
    vit
}

#[test]
fn vit_s16_matches_pytorch_at_224_and_96() {
    let fx = fixture("vit_s16.safetensors");
    let t0 = Instant::now();
    let vit = vit_s16();
    assert_eq!(vit.num_params(), 21_665_664);
    eprintln!("ViT-S/16 built from the recipe in {:.2?}", t0.elapsed());
    for s in [224usize, 96] {
        let img = recipe(&format!("image.{s}"), &[1, 3, s, s], 0.0, 1.0);
        let committed = get(&fx, &format!("image.{s}"));
        assert_eq!(
            img.to_vec::<f32>().unwrap(),
            committed.to_vec::<f32>().unwrap()
        );
        let x = Var::constant(img);
        let t = Instant::now();
        let cls = vit.forward(&x).unwrap();
        eprintln!("ViT-S/16 forward at {s}x{s}: {:.2?}", t.elapsed());
        assert_close_f32(
            &format!("cls {s}"),
            cls.value(),
            get(&fx, &format!("cls.{s}")),
        );
        let attn = vit.get_last_selfattention(&x).unwrap();
        let want = get(&fx, &format!("attn.{s}"));
        assert_close_f32(&format!("last self-attention {s}"), attn.value(), want);
    }
}

/// Loads the ViT-S state dict that the script writes to /tmp (as a user would load a DINO
/// checkpoint converted with `gen_vit_fixtures.py --convert`). Set `TESSERA_VIT_S16` to use
/// another file; skipped when the file is absent.
#[test]
fn vit_s16_checkpoint_file_loads() {
    let path = std::env::var("TESSERA_VIT_S16")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/tmp/tessera_vit_s16_recipe.safetensors"));
    if !path.exists() {
        eprintln!(
            "skipped: {} not found (run scripts/gen_vit_fixtures.py)",
            path.display()
        );
        return;
    }
    let mut vit = VisionTransformer::zeroed(VitConfig::small(16), DType::F32, &Cpu).unwrap();
    vit.load_checkpoint(&path).unwrap();
    for (k, t) in recipe_state_dict(&vit) {
        let got = vit.state_dict()[&k].to_vec::<f32>().unwrap();
        assert!(
            got == t.to_vec::<f32>().unwrap(),
            "{k} differs from the recipe"
        );
    }
}

// ------------------------------------------------------------------------ state dicts

#[test]
fn state_dict_round_trip_and_shape_errors() {
    let cfg = tiny_config();
    let a = VisionTransformer::new(cfg, DType::F32, &mut Rng::new(1), &Cpu).unwrap();
    let dir = std::env::temp_dir().join(format!("tessera-vit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.safetensors");
    Checkpoint::new(tessera_nn::checkpoint::with_prefix(
        &a.state_dict(),
        "backbone.",
    ))
    .save(&path)
    .unwrap();
    let mut b = VisionTransformer::new(cfg, DType::F32, &mut Rng::new(2), &Cpu).unwrap();
    b.load_checkpoint(&path).unwrap();
    let x = Var::constant(Tensor::ones(&[1, 3, 16, 16], DType::F32, &Cpu).unwrap());
    let (ya, yb) = (a.forward(&x).unwrap(), b.forward(&x).unwrap());
    assert_eq!(
        ya.value().to_vec::<f32>().unwrap(),
        yb.value().to_vec::<f32>().unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A pos_embed of another grid: the error names the key and both shapes, nothing changes.
    let mut sd = a.state_dict();
    sd.insert(
        "pos_embed".into(),
        Tensor::zeros(&[1, 10, 48], DType::F32, &Cpu).unwrap(),
    );
    let before = b.state_dict()["pos_embed"].to_vec::<f32>().unwrap();
    let err = b.load_state_dict(&sd).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::StateDict { .. }), "{msg}");
    assert!(
        msg.contains("\"pos_embed\"") && msg.contains("[1, 10, 48]") && msg.contains("[1, 17, 48]"),
        "{msg}"
    );
    assert_eq!(b.state_dict()["pos_embed"].to_vec::<f32>().unwrap(), before);
    sd.remove("pos_embed");
    let msg = b.load_state_dict(&sd).unwrap_err().to_string();
    assert!(
        msg.contains("missing") && msg.contains("pos_embed"),
        "{msg}"
    );
}

#[test]
fn drop_path_only_in_training() {
    let cfg = VitConfig {
        drop_path_rate: 0.5,
        ..tiny_config()
    };
    let mut vit = VisionTransformer::new(cfg, DType::F64, &mut Rng::new(3), &Cpu).unwrap();
    let x = Var::constant(
        Tensor::randn(
            &[8, 3, 16, 16],
            0.0,
            1.0,
            DType::F64,
            &mut Rng::new(4),
            &Cpu,
        )
        .unwrap(),
    );
    let train = vit.forward(&x).unwrap().value().to_vec::<f64>().unwrap();
    vit.set_training(false);
    let eval1 = vit.forward(&x).unwrap().value().to_vec::<f64>().unwrap();
    let eval2 = vit.forward(&x).unwrap().value().to_vec::<f64>().unwrap();
    assert_eq!(eval1, eval2);
    assert_ne!(train, eval1);
}
