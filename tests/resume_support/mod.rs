//! The machinery of `resume_signals.rs`: running the tiny examples, reading what a run left
//! behind (its final metrics, checkpoint metadata and tensors, bit for bit), the
//! uninterrupted reference run, and a watched child process that is signalled once its
//! stderr shows it is in the phase a test wants to interrupt.

use super::cli_support::{self, named_example};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tessera::nn::checkpoint::Checkpoint;
use tessera::tensor::Cpu;

pub fn temp_dir(name: &str) -> PathBuf {
    cli_support::temp_dir("resume", name)
}

/// `--preset tiny --output-dir DIR` and `extra`.
pub fn tiny(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["--preset", "tiny", "--output-dir"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push(dir.display().to_string());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub fn run(example: &str, args: &[String]) -> Output {
    Command::new(named_example(example))
        .args(args)
        .output()
        .expect("running the example")
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts exit code `code` with a one-line `error:` message containing each of `needles`.
pub fn assert_fails(out: &Output, code: i32, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    for n in needles {
        assert!(line.contains(n), "{line:?} lacks {n:?}");
    }
}

/// What a finished run leaves: each epoch's (loss, lr, k-NN) as written in `metrics.jsonl`
/// (exact decimal strings), the checkpoint's metadata but the recorded wall time, and every
/// checkpoint tensor's dtype, shape and values as bit patterns. (The file's bytes are not
/// compared as such: the safetensors header lists its entries in hash order.)
#[derive(PartialEq)]
pub struct Final {
    pub metrics: Vec<[String; 3]>,
    metadata: BTreeMap<String, String>,
    tensors: BTreeMap<String, (String, Vec<usize>, Vec<u64>)>,
}

impl std::fmt::Debug for Final {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Final {{ metrics: {:?}, metadata: {:?}, {} tensors }}",
            self.metrics,
            self.metadata,
            self.tensors.len()
        )
    }
}

pub fn final_of(dir: &Path) -> Final {
    let s = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let field = |line: &str, key: &str| -> String {
        let k = format!("\"{key}\": ");
        let rest = &line[line.find(&k).unwrap() + k.len()..];
        rest[..rest.find([',', '}']).unwrap()].to_string()
    };
    let metrics = s
        .lines()
        .map(|l| [field(l, "loss"), field(l, "lr"), field(l, "knn_top1")])
        .collect();
    let ck = Checkpoint::load(dir.join("checkpoint.safetensors"), &Cpu).unwrap();
    let mut metadata = ck.metadata;
    metadata
        .remove("elapsed_s")
        .expect("elapsed_s in the metadata");
    let tensors = ck
        .tensors
        .iter()
        .map(|(k, t)| {
            let bits = t
                .to_f64_vec()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            (
                k.clone(),
                (format!("{:?}", t.dtype()), t.shape().to_vec(), bits),
            )
        })
        .collect();
    Final {
        metrics,
        metadata,
        tensors,
    }
}

/// Asserts that two runs ended the same, naming what differs.
pub fn assert_same(got: &Final, want: &Final) {
    assert_eq!(got.metrics, want.metrics, "metrics.jsonl differs");
    assert_eq!(got.metadata, want.metadata, "checkpoint metadata differs");
    let differ: Vec<&String> = want
        .tensors
        .iter()
        .filter(|(k, v)| got.tensors.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(differ.is_empty(), "checkpoint tensors differ: {differ:?}");
    assert_eq!(got.tensors.len(), want.tensors.len(), "tensor names differ");
}

/// The checkpoint's metadata value `key`.
pub fn meta(dir: &Path, key: &str) -> String {
    let ck = Checkpoint::load(dir.join("checkpoint.safetensors"), &Cpu).unwrap();
    ck.metadata[key].clone()
}

/// Rewrites metadata values of the run's checkpoint (as a hand-edited or damaged file).
pub fn edit_meta(dir: &Path, edits: &[(&str, &str)]) {
    let path = dir.join("checkpoint.safetensors");
    let mut ck = Checkpoint::load(&path, &Cpu).unwrap();
    for (k, v) in edits {
        ck.metadata.insert(k.to_string(), v.to_string());
    }
    ck.save(&path).unwrap();
}

/// The uninterrupted tiny DINO run (3 epochs of 5 steps, k-NN after each), computed once.
pub fn reference() -> &'static Final {
    static REF: OnceLock<Final> = OnceLock::new();
    REF.get_or_init(|| {
        let d = temp_dir("reference");
        assert_ok(&run("dino_vit_s", &tiny(&d, &[])));
        let f = final_of(&d);
        assert_eq!(f.metrics.len(), 3);
        f
    })
}

/// A running example whose stderr lines are watched.
pub struct Watched {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

pub fn spawn(example: &str, args: &[String], pause: &str) -> Watched {
    let mut child = Command::new(named_example(example))
        .args(args)
        .env("TESSERA_TEST_PAUSE", pause)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Watched {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Watched {
    /// Waits for a stderr line satisfying `pred`; panics if the process ends first.
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(300)) {
                Ok(l) => {
                    let hit = pred(&l);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!("the awaited line never came; stderr:\n{}", self.log()),
            }
        }
    }

    /// Waits until `cond` holds (polled every 2 ms).
    pub fn wait_until(&mut self, what: &str, cond: impl Fn() -> bool) {
        let t = Instant::now();
        while !cond() {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "ended before {what}"
            );
            assert!(t.elapsed() < Duration::from_secs(300), "no {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn signal(&mut self, sig: Sig) {
        match sig {
            Sig::Kill => self.child.kill().unwrap(),
            Sig::Int | Sig::Term => {
                let flag = if sig == Sig::Int { "-INT" } else { "-TERM" };
                let sent = Command::new("kill")
                    .args([flag, &self.child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(sent.success());
            }
        }
    }

    /// Waits for the exit; returns the status and the whole stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status, self.log())
    }

    pub fn log(&self) -> String {
        self.seen.join("\n")
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sig {
    Kill,
    Int,
    Term,
}

/// Checks how the interrupted process ended: killed, or exit 130 / 143 with the message.
pub fn check_stop(sig: Sig, status: ExitStatus, stderr: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    match sig {
        Sig::Kill => assert_eq!(status.code(), None, "not killed: {stderr}"),
        Sig::Int | Sig::Term => {
            let (code, name) = if sig == Sig::Int {
                (130, "SIGINT")
            } else {
                (143, "SIGTERM")
            };
            assert_eq!(status.code(), Some(code), "{stderr}");
            let want = format!("interrupted ({name}): checkpoint written");
            assert!(stderr.contains(&want), "{want:?} not in: {stderr}");
        }
    }
}

/// Resumes the run in `dir` with `args` + `--resume` and checks it ends as `want`.
pub fn resume_matches(example: &str, dir: &Path, args: &[String], want: &Final) {
    let mut a = args.to_vec();
    a.push("--resume".into());
    assert_ok(&run(example, &a));
    assert!(
        !dir.join("checkpoint.safetensors.tmp").exists(),
        "a stale temporary file was left"
    );
    assert_same(&final_of(dir), want);
}
