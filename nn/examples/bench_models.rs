//! Whole-model training throughput on the CPU backend: forward + backward + AdamW step of
//! DINO ViT-S/16 or torchvision ResNet-50, f32, on a fixed random batch.
//!
//! ```sh
//! cargo run -p tessera-nn --release --example bench_models -- \
//!     --model vit_s16 --batch 8 --size 224 --steps 3 --warmup 1 --threads 2 [--profile]
//! ```
//!
//! Each step: `loss = mean(model(x))` (ViT: the CLS features; ResNet-50: cross-entropy of
//! the 1000 logits against fixed random labels), `loss.backward()`, then AdamW (lr 1e-4,
//! weight decay 0.04 on weights, 0 on biases and norms, as DINO's parameter groups) through
//! `named_params` → `grads_by_name` → `step_named` → `assign`. Prints the per-step times,
//! the median images/s over the measured steps, and the peak resident memory (`VmHWM`).
//! The last line is machine-readable (`RESULT ...`); `scripts/bench_models.sh` parses it.
//!
//! `--threads T` sets `MATMUL_NUM_THREADS` before the first GEMM (matrixmultiply reads it
//! once); only the GEMMs are threaded in Tessera, everything else runs on one core.
//! `--precision bf16` rounds every GEMM's inputs to bf16 with f32 sums (PyTorch's
//! `set_float32_matmul_precision("medium")`; Intel AMX tiles where the CPU has them); the
//! weights, activations and optimizer stay f32.
//! `--profile` adds a forward/backward timing of each op of one ViT block (or of the first
//! ResNet-50 bottleneck) at the benchmark's shapes, to show where the time goes.

use std::time::Instant;
use tessera_autograd::{cross_entropy, Var};
use tessera_nn::models::resnet::{resnet50, ResNet};
use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_nn::optim::{split_decay_groups, AdamW, AdamWConfig, Optimizer};
use tessera_nn::{Module, ModuleExt, StateDict};
use tessera_tensor::{Cpu, DType, Rng, Tensor};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    model: String,
    batch: usize,
    size: usize,
    steps: usize,
    warmup: usize,
    threads: usize,
    profile: bool,
    bf16: bool,
}

fn parse_args() -> BoxResult<Args> {
    let mut a = Args {
        model: "vit_s16".into(),
        batch: 8,
        size: 224,
        steps: 3,
        warmup: 1,
        threads: 1,
        profile: false,
        bf16: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--profile" {
            a.profile = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--model" => a.model = value,
            "--batch" => a.batch = value.parse()?,
            "--size" => a.size = value.parse()?,
            "--steps" => a.steps = value.parse()?,
            "--warmup" => a.warmup = value.parse()?,
            "--threads" => a.threads = value.parse()?,
            "--precision" => {
                a.bf16 = match value.as_str() {
                    "f32" => false,
                    "bf16" => true,
                    other => return Err(format!("--precision: f32 or bf16, not {other}").into()),
                }
            }
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    if a.steps == 0 || a.batch == 0 || a.threads == 0 {
        return Err("--steps, --batch and --threads must be > 0".into());
    }
    Ok(a)
}

enum Model {
    Vit(Box<VisionTransformer<Cpu>>),
    ResNet(Box<ResNet<Cpu>>),
}

impl Model {
    fn module(&self) -> &dyn Module<Cpu> {
        match self {
            Model::Vit(m) => m.as_ref(),
            Model::ResNet(m) => m.as_ref(),
        }
    }

    fn module_mut(&mut self) -> &mut dyn Module<Cpu> {
        match self {
            Model::Vit(m) => m.as_mut(),
            Model::ResNet(m) => m.as_mut(),
        }
    }

    /// The scalar loss of one forward pass.
    fn loss(&mut self, x: &Var<Cpu>, labels: &Tensor<Cpu>) -> tessera_tensor::Result<Var<Cpu>> {
        match self {
            Model::Vit(m) => m.forward(x)?.mean(&[], false),
            Model::ResNet(m) => cross_entropy(&m.forward(x)?, labels),
        }
    }
}

/// Peak resident set size (`VmHWM` of `/proc/self/status`), e.g. `"1234 MiB"`, or `"n/a"`.
fn peak_memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or_else(|| "n/a".into(), |kb| format!("{} MiB", kb / 1024))
}

/// CPU seconds (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (clock ticks, assumed 100 Hz); 0 where that file does not exist.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Times `f`'s forward and the backward of its output against a random output gradient;
/// prints one line and returns `(forward, backward)` seconds.
fn time_op(
    name: &str,
    x: &Tensor<Cpu>,
    rng: &mut Rng,
    mut f: impl FnMut(&Var<Cpu>) -> tessera_tensor::Result<Var<Cpu>>,
) -> BoxResult<(f64, f64)> {
    let x = Var::leaf(x.clone());
    let t = Instant::now();
    let y = f(&x)?;
    let fwd = secs(t);
    let g = Tensor::randn(y.shape(), 0.0, 1.0, DType::F32, rng, &Cpu)?;
    let t = Instant::now();
    let grads = y.backward_with(&g)?;
    let bwd = secs(t);
    drop(grads);
    println!(
        "  {name:<44} fwd {:8.1} ms  bwd {:8.1} ms",
        fwd * 1e3,
        bwd * 1e3
    );
    Ok((fwd, bwd))
}

/// Per-op forward/backward times of one ViT block at `[batch, tokens, dim]`.
fn profile_vit(m: &VisionTransformer<Cpu>, a: &Args, rng: &mut Rng) -> BoxResult<()> {
    let c = &m.config;
    let n = (a.size / c.patch_size).pow(2) + 1;
    let (b, d, h) = (a.batch, c.embed_dim, c.num_heads);
    let blk = &m.blocks[0];
    let x = Tensor::randn(&[b, n, d], 0.0, 1.0, DType::F32, rng, &Cpu)?;
    let xh = Tensor::randn(&[b, n, c.mlp_hidden()], 0.0, 1.0, DType::F32, rng, &Cpu)?;
    let img = Tensor::randn(
        &[b, c.in_chans, a.size, a.size],
        0.0,
        1.0,
        DType::F32,
        rng,
        &Cpu,
    )?;
    let heads = |v: &Var<Cpu>| v.reshape(&[b, n, h, d / h])?.permute(&[0, 2, 1, 3]);
    let scores = Tensor::randn(&[b, h, n, n], 0.0, 1.0, DType::F32, rng, &Cpu)?;
    println!(
        "profile: one ViT block at [{b}, {n}, {d}] ({} blocks per step), ms:",
        m.blocks.len()
    );
    let mut rows = Vec::new();
    rows.push(time_op(
        "patch_embed (conv 16x16/16, once per step)",
        &img,
        rng,
        |v| m.patch_embed.forward(v),
    )?);
    let block_start = rows.len();
    rows.push(time_op("norm1 (layer_norm)", &x, rng, |v| {
        blk.norm1.forward(v)
    })?);
    rows.push(time_op("attn.qkv (linear D->3D)", &x, rng, |v| {
        blk.attn.qkv.forward(v)
    })?);
    rows.push(time_op(
        "q @ k^T (batched matmul, incl. permutes)",
        &x,
        rng,
        |v| {
            let q = heads(v)?;
            q.matmul(&q.transpose(-2, -1)?)
        },
    )?);
    rows.push(time_op("scale + softmax [b,h,n,n]", &scores, rng, |v| {
        v.mul_scalar(blk.attn.scale)?.softmax(-1)
    })?);
    rows.push(time_op(
        "attn @ v + transpose/reshape",
        &scores,
        rng,
        |v| {
            let val = Var::constant(x.clone());
            let val = heads(&val)?;
            v.matmul(&val)?.transpose(1, 2)?.reshape(&[b, n, d])
        },
    )?);
    rows.push(time_op("attn.proj (linear D->D)", &x, rng, |v| {
        blk.attn.proj.forward(v)
    })?);
    rows.push(time_op("residual add", &x, rng, |v| v.add(v))?);
    rows.push(time_op("norm2 (layer_norm)", &x, rng, |v| {
        blk.norm2.forward(v)
    })?);
    rows.push(time_op("mlp.fc1 (linear D->4D)", &x, rng, |v| {
        blk.mlp.fc1.forward(v)
    })?);
    rows.push(time_op("gelu [b,n,4D]", &xh, rng, |v| v.gelu())?);
    rows.push(time_op("mlp.fc2 (linear 4D->D)", &xh, rng, |v| {
        blk.mlp.fc2.forward(v)
    })?);
    rows.push(time_op("residual add", &x, rng, |v| v.add(v))?);
    let (f, bw): (f64, f64) = rows[block_start..]
        .iter()
        .fold((0.0, 0.0), |(f, b), r| (f + r.0, b + r.1));
    println!(
        "  one block total: fwd {:.1} ms, bwd {:.1} ms; x{} blocks = {:.2} s",
        f * 1e3,
        bw * 1e3,
        m.blocks.len(),
        (f + bw) * m.blocks.len() as f64
    );
    Ok(())
}

/// Per-op forward/backward times of the stem and the first bottleneck of ResNet-50.
fn profile_resnet(m: &mut ResNet<Cpu>, a: &Args, rng: &mut Rng) -> BoxResult<()> {
    let b = a.batch;
    let img = Tensor::randn(&[b, 3, a.size, a.size], 0.0, 1.0, DType::F32, rng, &Cpu)?;
    let s = a.size / 4;
    let x64 = Tensor::randn(&[b, 64, s, s], 0.0, 1.0, DType::F32, rng, &Cpu)?;
    let x256 = Tensor::randn(&[b, 256, s, s], 0.0, 1.0, DType::F32, rng, &Cpu)?;
    let s2 = a.size / 2;
    let xs = Tensor::randn(&[b, 64, s2, s2], 0.0, 1.0, DType::F32, rng, &Cpu)?;
    println!("profile: ResNet-50 stem and layer1.0 at batch {b}, ms:");
    time_op("conv1 7x7/2 3->64", &img, rng, |v| m.conv1.forward(v))?;
    time_op("bn1 (train) [b,64,H/2,W/2]", &xs, rng, |v| m.bn1.forward(v))?;
    time_op("relu [b,64,H/2,W/2]", &xs, rng, |v| v.relu())?;
    if let Some(p) = &m.maxpool {
        time_op("maxpool 3x3/2", &xs, rng, |v| p.forward(v))?;
    }
    let blk = &mut m.layers[0][0];
    time_op("layer1.0.conv1 1x1 64->64", &x64, rng, |v| {
        blk.convs[0].forward(v)
    })?;
    time_op("layer1.0.conv2 3x3 64->64", &x64, rng, |v| {
        blk.convs[1].forward(v)
    })?;
    time_op("layer1.0.bn2 (train) [b,64,H/4,W/4]", &x64, rng, |v| {
        blk.bns[1].forward(v)
    })?;
    time_op("relu [b,64,H/4,W/4]", &x64, rng, |v| v.relu())?;
    time_op("layer1.0.conv3 1x1 64->256", &x64, rng, |v| {
        blk.convs[2].forward(v)
    })?;
    time_op("layer1.0.bn3 (train) [b,256,H/4,W/4]", &x256, rng, |v| {
        blk.bns[2].forward(v)
    })?;
    time_op("residual add + relu [b,256,H/4,W/4]", &x256, rng, |v| {
        v.add(v)?.relu()
    })?;
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let k = s.len();
    if k % 2 == 1 {
        s[k / 2]
    } else {
        (s[k / 2 - 1] + s[k / 2]) / 2.0
    }
}

fn main() -> BoxResult<()> {
    let a = parse_args()?;
    // matrixmultiply reads this once, at the first threaded GEMM: set it before any GEMM.
    std::env::set_var("MATMUL_NUM_THREADS", a.threads.to_string());
    if a.bf16 {
        tessera_tensor::set_float32_matmul_precision(tessera_tensor::MatmulPrecision::Bf16);
    }
    let mut rng = Rng::new(0);

    let t = Instant::now();
    let mut model = match a.model.as_str() {
        "vit_s16" => {
            let cfg = VitConfig {
                img_size: a.size,
                ..VitConfig::small(16)
            };
            Model::Vit(Box::new(VisionTransformer::new(
                cfg,
                DType::F32,
                &mut rng,
                &Cpu,
            )?))
        }
        "resnet50" => Model::ResNet(Box::new(resnet50(1000, DType::F32, &mut rng, &Cpu)?)),
        other => return Err(format!("unknown model {other} (vit_s16 | resnet50)").into()),
    };
    model.module_mut().set_training(true);
    let named = model.module().named_params();
    let n_params: usize = named.iter().map(|(_, p)| p.value().numel()).sum();
    let shapes: Vec<(String, Vec<usize>)> = named
        .iter()
        .map(|(n, p)| (n.clone(), p.value().shape().to_vec()))
        .collect();
    drop(named);
    let groups = split_decay_groups(
        shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())),
        1e-4,
        0.04,
    );
    let mut opt = AdamW::new(groups.to_vec(), AdamWConfig::default())?;
    println!(
        "bench_models: {} ({n_params} params), batch {}, {}x{}, f32 (GEMM inputs {}), \
         MATMUL_NUM_THREADS={}, built in {:.2} s",
        a.model,
        a.batch,
        a.size,
        a.size,
        if a.bf16 { "bf16" } else { "f32" },
        a.threads,
        secs(t)
    );

    let x = Var::constant(Tensor::randn(
        &[a.batch, 3, a.size, a.size],
        0.0,
        1.0,
        DType::F32,
        &mut rng,
        &Cpu,
    )?);
    let labels: Vec<i64> = (0..a.batch).map(|_| rng.below(1000) as i64).collect();
    let labels = Tensor::from_vec(labels, &[a.batch], &Cpu)?;

    let mut measured = Vec::new();
    let mut measured_cpu = Vec::new();
    for step in 0..a.warmup + a.steps {
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let loss = model.loss(&x, &labels)?;
        let t_fwd = secs(t0);
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t_bwd = secs(t1);
        let t2 = Instant::now();
        let g = model.module().grads_by_name(&grads);
        drop(grads);
        let mut params: StateDict<Cpu> = model
            .module()
            .named_params()
            .into_iter()
            .map(|(n, p)| (n, p.value().clone()))
            .collect();
        opt.step_named(&mut params, &g)?;
        model.module_mut().assign(&params)?;
        let t_opt = secs(t2);
        let total = secs(t0);
        let cpu = cpu_seconds() - cpu0;
        let kind = if step < a.warmup { "warm-up" } else { "step" };
        println!(
            "{kind} {step}: {total:.3} s (forward {t_fwd:.3}, backward {t_bwd:.3}, \
             optimizer {t_opt:.3}), CPU time {cpu:.2} s, loss {:.5}, {:.2} img/s",
            loss.value().item()?,
            a.batch as f64 / total
        );
        if step >= a.warmup {
            measured.push(total);
            measured_cpu.push(cpu);
        }
    }
    let med = median(&measured);
    let med_cpu = median(&measured_cpu);
    let peak = peak_memory();
    println!(
        "median step {med:.3} s (CPU time {med_cpu:.2} s) over {} steps -> {:.3} images/s; \
         peak memory (VmHWM) {peak}",
        measured.len(),
        a.batch as f64 / med
    );
    println!(
        "RESULT model={} images_per_s={:.4} median_step_s={med:.4} cpu_step_s={med_cpu:.3} \
         peak_mem={} precision={}",
        a.model,
        a.batch as f64 / med,
        peak.replace(' ', ""),
        if a.bf16 { "bf16" } else { "f32" }
    );

    if a.profile {
        match &mut model {
            Model::Vit(m) => profile_vit(m, &a, &mut rng)?,
            Model::ResNet(m) => profile_resnet(m, &a, &mut rng)?,
        }
    }
    Ok(())
}
