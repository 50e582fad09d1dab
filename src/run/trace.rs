//! `--trace DIR`: a record of a training run that PyTorch can replay step by step.
//!
//! Training is chaotic: two correct implementations of the same recipe, started from
//! different random draws, can end several k-NN points apart. To tell such seed-to-seed spread
//! from a real difference, the trace pins everything random: it holds the trainer's initial
//! state, every input batch the steps consumed (after augmentation and standardisation) and
//! the scheduled values and loss of every step, and the replay scripts
//! (`scripts/dino_trace_torch.py`, `scripts/byol_trace_torch.py`) run the same steps in
//! PyTorch from the same weights on the same inputs. Equal steps then agree to rounding,
//! which grows slowly and stays at the size that PyTorch's own f32 and f64 replays differ by;
//! a step that computes something else parts at once.
//!
//! The files, in `DIR`:
//! - `init.safetensors`, `final.safetensors`: the trainer's state dict before the first and
//!   after the last traced step (the checkpoint's names);
//! - `inputs.f32`: per step, each input tensor in order, little-endian f32, C order;
//! - `inputs.txt`: the shapes of one step's input tensors, one per line;
//! - `steps.tsv`: one row per step, with a header naming the columns.

use super::args::Flag;
use super::{Result, RunError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use tessera_nn::checkpoint::{Checkpoint, StateDict};
use tessera_tensor::{Backend, DType, HostBuffer, Tensor};

/// The `--trace` flag of the training examples.
pub const TRACE_FLAG: Flag = Flag::value(
    "trace",
    "DIR",
    "Record the initial state, every step's inputs and values, and the final state in DIR, for a step-by-step replay in PyTorch (scripts/*_trace_torch.py; a fresh run only, ~1 MB per step)",
)
.default_note("none: no trace");

/// An open trace (see the module docs).
#[derive(Debug)]
pub struct Trace {
    dir: PathBuf,
    inputs: BufWriter<File>,
    steps: BufWriter<File>,
    shapes: Option<Vec<Vec<usize>>>,
}

fn io_err(path: &Path, e: std::io::Error) -> RunError {
    RunError::new(format!("--trace: {}: {e}", path.display()))
}

fn save<B: Backend>(path: &Path, state: StateDict<B>) -> Result<()> {
    Checkpoint::new(state)
        .save(path)
        .map_err(|e| RunError::new(format!("--trace: {}: {e}", path.display())))
}

impl Trace {
    /// Creates `dir`, writes `init.safetensors` from `state` and the header of `steps.tsv`.
    pub fn start<B: Backend>(dir: &Path, state: StateDict<B>, columns: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        save(&dir.join("init.safetensors"), state)?;
        let open = |name: &str| {
            let path = dir.join(name);
            File::create(&path)
                .map(BufWriter::new)
                .map_err(|e| io_err(&path, e))
        };
        let mut steps = open("steps.tsv")?;
        writeln!(steps, "{}", columns.join("\t")).map_err(|e| io_err(dir, e))?;
        Ok(Trace {
            dir: dir.to_path_buf(),
            inputs: open("inputs.f32")?,
            steps,
            shapes: None,
        })
    }

    /// Appends one step's input tensors (read back to the host as f32). Every step must have
    /// the shapes of the first.
    pub fn inputs<B: Backend>(&mut self, tensors: &[&Tensor<B>]) -> Result<()> {
        let shapes: Vec<Vec<usize>> = tensors.iter().map(|t| t.shape().to_vec()).collect();
        match &self.shapes {
            None => {
                let text: String = shapes.iter().map(|s| format!("{s:?}\n")).collect();
                let path = self.dir.join("inputs.txt");
                std::fs::write(&path, text).map_err(|e| io_err(&path, e))?;
                self.shapes = Some(shapes);
            }
            Some(first) if *first != shapes => {
                return Err(RunError::new(format!(
                    "--trace: a step's inputs changed shape from {first:?} to {shapes:?}"
                )))
            }
            Some(_) => {}
        }
        for t in tensors {
            let host = t
                .to_dtype(DType::F32)
                .and_then(|t| t.to_host())
                .map_err(|e| RunError::new(format!("--trace: reading an input: {e}")))?;
            let HostBuffer::F32(values) = host else {
                return Err(RunError::new("--trace: an input did not read back as f32"));
            };
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.inputs
                .write_all(&bytes)
                .map_err(|e| io_err(&self.dir, e))?;
        }
        Ok(())
    }

    /// Appends one row of `steps.tsv`.
    pub fn step(&mut self, values: &[f64]) -> Result<()> {
        let row: Vec<String> = values.iter().map(|v| format!("{v:.9e}")).collect();
        writeln!(self.steps, "{}", row.join("\t")).map_err(|e| io_err(&self.dir, e))
    }

    /// Flushes the files and writes `final.safetensors` from `state`.
    pub fn finish<B: Backend>(mut self, state: StateDict<B>) -> Result<()> {
        self.inputs.flush().map_err(|e| io_err(&self.dir, e))?;
        self.steps.flush().map_err(|e| io_err(&self.dir, e))?;
        save(&self.dir.join("final.safetensors"), state)?;
        println!("trace: {}", self.dir.display());
        Ok(())
    }
}

/// `--trace DIR`, refused with `--resume` (a trace starts from the initial state).
pub fn from_args(
    p: &super::args::Parsed,
    run: &super::options::RunOptions,
) -> Result<Option<PathBuf>> {
    let dir = p.path("trace");
    if dir.is_some() && run.resume {
        return Err(RunError::usage(
            "--trace records a run from its initial state: it cannot be combined with --resume",
        ));
    }
    Ok(dir)
}
