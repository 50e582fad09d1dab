//! Prints how many times each primitive of the `Backend` trait runs in one DINO training step
//! of a tiny ViT (the conformance kit's whole-step configuration: 16-px images, patch 4,
//! embed 16, depth 2, 2 heads; DINO head 12-6-8; batch 2 with 2 global crops of 16 px and 2
//! local crops of 8 px per image; AdamW, clipping, teacher EMA, centering).
//!
//! ```text
//! cargo run -p tessera-backend-counting --example count_dino_step [-- --step N] [-- --log]
//! ```
//!
//! `--step N` counts the N-th step (1-based, default 2: the first step also creates the
//! optimizer's state, later ones are all alike); `--log` prints every primitive call of that
//! step to stderr with its operands' shapes.

#[path = "../tests/support/tiny_dino.rs"]
mod tiny_dino;

use std::process::ExitCode;
use tessera_backend_counting::CountingBackend;
use tiny_dino::{step, trainer, STEPS};

fn main() -> ExitCode {
    let mut which = 2;
    let mut log = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--log" => log = true,
            "--step" => match args.next().and_then(|v| v.parse::<usize>().ok()) {
                Some(n) if (1..=STEPS).contains(&n) => which = n,
                _ => {
                    eprintln!("--step: expected a step number from 1 to {STEPS}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: count_dino_step [--step N (1..={STEPS}, default 2)] [--log]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    match run(which, log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(which: usize, log: bool) -> Result<(), Box<dyn std::error::Error>> {
    let dev = CountingBackend::new();
    let mut t = trainer(&dev)?;
    let setup = dev.total();
    let mut loss = 0.0;
    for s in 0..which {
        if s + 1 == which {
            dev.reset();
            dev.set_logging(log);
        }
        loss = step(&mut t, &dev, s)?;
    }
    dev.set_logging(false);
    println!(
        "Primitive calls of DINO step {which} (loss {loss:.6}) on CountingBackend: a tiny ViT \
         (16 px, patch 4, embed 16, depth 2, 2 heads), DINO head 12-6-8, batch 2 x (2 global \
         16-px + 2 local 8-px crops), AdamW + clipping + teacher EMA. Every composite \
         (softmax, layer norm, GELU, AdamW, EMA, ...) runs its default composition. \
         Building the trainers took {setup} calls (not counted below); the step's count \
         includes uploading its 2 crop batches (2 from_host).\n"
    );
    print!("{}", dev.table());
    Ok(())
}
