// build/nvcc.rs: the GPU half of cuda/build.rs (feature `cuda`).
//
// For every `kernels/<stem>.cu` (headers are skipped) runs nvcc once:
//
//   nvcc -fatbin -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
//        -gencode arch=compute_80,code=compute_80 -O3 -std=c++17 --expt-relaxed-constexpr
//        -I <kernel dir> --resource-usage <stem>.cu -o $OUT_DIR/<stem>.fatbin
//
// SASS for sm_80 (A100) and sm_90 (H100/H200), plus compute_80 PTX that the driver JIT-compiles
// for any newer GPU. Files compile in parallel (one nvcc per core). `--resource-usage` makes
// ptxas print each kernel's registers, spills, shared memory and stack; those lines become
// `$OUT_DIR/kernel_resources.md` (scripts/cuda_resources.sh copies it into the committed
// cuda/KERNEL_RESOURCES.md). `$OUT_DIR/fatbins.rs` embeds the fatbins:
//
//   pub static FATBINS: &[(&str, &[u8])] = &[("softmax", include_bytes!(...)), ...];
//
// nvcc must be CUDA 13.0 (scripts/setup_cuda.sh installs it): the GPU machines' driver 580
// rejects PTX from a newer nvcc.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The SASS targets; the PTX target is compute_80.
const SASS_ARCHES: [&str; 2] = ["sm_80", "sm_90"];

/// Compiles every kernel file of `kernel_dir` into `out_dir/<stem>.fatbin`, writes
/// `out_dir/fatbins.rs` and `out_dir/kernel_resources.md`, and returns the module stems
/// (sorted). Prints the `cargo:rerun-if-*` lines itself.
pub fn build(out_dir: &Path, kernel_dir: &Path) -> Result<Vec<String>, String> {
    let kernel_dir = kernel_dir
        .canonicalize()
        .map_err(|e| format!("kernel dir {}: {e}", kernel_dir.display()))?;
    println!("cargo:rerun-if-changed={}", kernel_dir.display());
    for var in ["NVCC", "CUDA_PATH", "PATH", "TESSERA_NVCC_JOBS"] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let mut sources = Vec::new();
    let entries = std::fs::read_dir(&kernel_dir)
        .map_err(|e| format!("reading {}: {e}", kernel_dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if !path.is_file() {
            continue;
        }
        // Headers too: a change to common.cuh must rebuild every module.
        println!("cargo:rerun-if-changed={}", path.display());
        if path.extension().is_some_and(|e| e == "cu") {
            sources.push(path);
        }
    }
    sources.sort();

    let nvcc = find_nvcc()?;
    check_version(&nvcc)?;

    let jobs = std::env::var("TESSERA_NVCC_JOBS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .min(sources.len().max(1));

    // A small work queue: each worker takes the next file until none are left.
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Compiled, String>>>> =
        Mutex::new((0..sources.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(src) = sources.get(i) else { break };
                let r = compile(&nvcc, &kernel_dir, src, out_dir);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });

    let mut stems = Vec::new();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for r in results.into_inner().unwrap().into_iter().flatten() {
        match r {
            Ok(c) => {
                // Visible with `cargo build -vv`.
                println!("nvcc: {}.cu in {:.2} s", c.stem, c.seconds);
                rows.extend(c.rows);
                stems.push(c.stem);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n\n"));
    }

    write_if_changed(&out_dir.join("fatbins.rs"), fatbins_rs(&stems).as_bytes())?;
    write_if_changed(
        &out_dir.join("kernel_resources.md"),
        resources_md(&rows).as_bytes(),
    )?;
    Ok(stems)
}

/// One ptxas report: a kernel compiled for one SASS arch.
#[derive(Clone, Debug, Default)]
struct Resources {
    module: String,
    kernel: String,
    arch: String,
    registers: u32,
    spill_stores: u32,
    spill_loads: u32,
    /// Static shared memory in bytes (dynamic shared memory is set at launch).
    smem: u32,
    /// Stack frame in bytes (local arrays, spills, calls).
    stack: u32,
    barriers: u32,
}

struct Compiled {
    stem: String,
    seconds: f64,
    rows: Vec<Resources>,
}

/// nvcc from `$NVCC`, `$CUDA_PATH/bin/nvcc`, or `PATH`, in that order.
fn find_nvcc() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("NVCC").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "NVCC={} does not exist.\n{}",
                p.display(),
                SETUP_HINT
            ))
        };
    }
    if let Some(root) = std::env::var_os("CUDA_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(root).join("bin/nvcc");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("nvcc");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "nvcc not found (looked at $NVCC, $CUDA_PATH/bin/nvcc and PATH); the `cuda` feature \
         compiles the kernels with nvcc 13.0.\n{SETUP_HINT}"
    ))
}

const SETUP_HINT: &str =
    "Install the pinned toolchain with `bash scripts/setup_cuda.sh` (no root, no GPU \
     needed; ~5 s after the first download) and then `source .cuda/cuda-env.sh`, or build without \
     `--features cuda`.";

/// Refuses nvcc newer than 13.0 (driver 580 rejects its PTX); older is accepted.
fn check_version(nvcc: &Path) -> Result<(), String> {
    let out = Command::new(nvcc)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {} --version: {e}\n{SETUP_HINT}", nvcc.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "Cuda compilation tools, release 13.0, V13.0.88"
    let release = text
        .split("release ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map(str::trim);
    let Some(release) = release else {
        println!(
            "cargo:warning=could not read the version of {}; expected CUDA 13.0",
            nvcc.display()
        );
        return Ok(());
    };
    let mut parts = release.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) > (13, 0) {
        return Err(format!(
            "{} is CUDA {release}; the GPU driver (580) only accepts PTX from CUDA <= 13.0.\n{}",
            nvcc.display(),
            SETUP_HINT
        ));
    }
    if major < 12 {
        println!(
            "cargo:warning={} is CUDA {release}; the kernels are tested with CUDA 13.0",
            nvcc.display()
        );
    }
    Ok(())
}

fn compile(nvcc: &Path, kernel_dir: &Path, src: &Path, out_dir: &Path) -> Result<Compiled, String> {
    let stem = src
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| format!("kernel file name is not UTF-8: {}", src.display()))?
        .to_string();
    let out = out_dir.join(format!("{stem}.fatbin"));
    let mut cmd = Command::new(nvcc);
    cmd.arg("-fatbin");
    for arch in SASS_ARCHES {
        let num = &arch[3..];
        cmd.arg("-gencode")
            .arg(format!("arch=compute_{num},code=sm_{num}"));
    }
    cmd.args(["-gencode", "arch=compute_80,code=compute_80"])
        .args([
            "-O3",
            "-std=c++17",
            "--expt-relaxed-constexpr",
            "--resource-usage",
        ])
        .arg("-I")
        .arg(kernel_dir)
        .arg(src)
        .arg("-o")
        .arg(&out);
    let start = Instant::now();
    let output = cmd
        .output()
        .map_err(|e| format!("running {}: {e}\n{SETUP_HINT}", nvcc.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "nvcc failed on {} ({}):\n{:?}\n{stdout}{stderr}",
            src.display(),
            output.status,
            cmd
        ));
    }
    // Compiler warnings are worth seeing; the ptxas info lines are not.
    for line in stderr.lines().chain(stdout.lines()) {
        if line.contains("warning") && !line.starts_with("ptxas info") {
            println!("cargo:warning={stem}.cu: {line}");
        }
    }
    let rows = parse_resources(&stem, &format!("{stdout}\n{stderr}"));
    Ok(Compiled {
        stem,
        seconds,
        rows,
    })
}

/// Parses ptxas `-v` output:
///
/// ```text
/// ptxas info    : Compiling entry function 'ts_x_f32' for 'sm_80'
/// ptxas info    : Function properties for ts_x_f32
///     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 15 registers, used 1 barriers, 128 bytes smem, 384 bytes cmem[0]
/// ```
fn parse_resources(module: &str, text: &str) -> Vec<Resources> {
    let mut rows: Vec<Resources> = Vec::new();
    let mut current: Option<Resources> = None;
    // "Function properties for X" may name a non-entry (device) function; only the entry's
    // own properties count.
    let mut props_for: Option<String> = None;
    let number_before = |s: &str, unit: &str| -> Option<u32> {
        let i = s.find(unit)?;
        s[..i]
            .split([' ', ','])
            .rfind(|w| !w.is_empty())?
            .parse()
            .ok()
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            if let Some(done) = current.take() {
                rows.push(done);
            }
            let mut parts = rest.split('\'');
            let kernel = parts.next().unwrap_or("").to_string();
            let arch = parts.nth(1).unwrap_or("").to_string();
            current = Some(Resources {
                module: module.to_string(),
                kernel,
                arch,
                ..Default::default()
            });
            props_for = None;
        } else if let Some(name) = line.split("Function properties for ").nth(1) {
            props_for = Some(name.trim().to_string());
        } else if line.contains("bytes stack frame") {
            if let Some(cur) = current.as_mut() {
                if props_for.as_deref() == Some(cur.kernel.as_str()) {
                    cur.stack = number_before(line, "bytes stack frame").unwrap_or(0);
                    cur.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
                    cur.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
                }
            }
        } else if line.contains("Used ") && line.contains("registers") {
            if let Some(cur) = current.as_mut() {
                cur.registers = number_before(line, "registers").unwrap_or(0);
                cur.barriers = number_before(line, "barriers").unwrap_or(0);
                cur.smem = number_before(line, "bytes smem").unwrap_or(0);
            }
        }
    }
    rows.extend(current);
    rows
}

fn resources_md(rows: &[Resources]) -> String {
    let mut sorted: BTreeMap<(&str, &str, &str), &Resources> = BTreeMap::new();
    for r in rows {
        sorted.insert((&r.module, &r.kernel, &r.arch), r);
    }
    let mut s = String::new();
    s.push_str(
        "# Kernel resources (ptxas)\n\
         \n\
         Generated by cuda/build/nvcc.rs from `nvcc --resource-usage` (CUDA 13.0, `-O3`), one row\n\
         per kernel and SASS arch. Do not edit by hand: after changing a kernel run\n\
         `bash scripts/cuda_resources.sh` (needs the toolchain from `bash scripts/setup_cuda.sh`)\n\
         and commit the result; CI runs `bash scripts/cuda_resources.sh --check`, which fails\n\
         when this table is stale.\n\
         \n\
         Registers are per thread (sm_80/sm_90 have 64K per SM: 64 registers per thread allow\n\
         1024 resident threads per SM). Spill stores/loads and stack are bytes per thread of\n\
         local memory; a spill in a hot kernel is worth a look. Shared memory is the static\n\
         `__shared__` bytes per block (dynamic shared memory is added at launch; 48 KiB in all\n\
         without opt-in).\n\
         \n\
         | module | kernel | arch | registers | spill stores | spill loads | shared (B) | stack (B) | barriers |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in sorted.values() {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
            r.module,
            r.kernel,
            r.arch,
            r.registers,
            r.spill_stores,
            r.spill_loads,
            r.smem,
            r.stack,
            r.barriers
        );
    }
    s
}

fn fatbins_rs(stems: &[String]) -> String {
    let mut s = String::from(
        "// Generated by cuda/build/nvcc.rs: the kernel modules, one fatbin per kernels/<stem>.cu\n\
         // (sm_80 + sm_90 SASS, compute_80 PTX).\n\
         /// The kernel modules built into this library: `(stem of kernels/<stem>.cu, fatbin)`.\n\
         pub static FATBINS: &[(&str, &[u8])] = &[\n",
    );
    for stem in stems {
        let _ = writeln!(
            s,
            "    ({stem:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{stem}.fatbin\"))),"
        );
    }
    s.push_str("];\n");
    s
}

/// Leaves the file (and its mtime) alone when the content is unchanged.
fn write_if_changed(path: &Path, content: &[u8]) -> Result<(), String> {
    if std::fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    std::fs::write(path, content).map_err(|e| format!("writing {}: {e}", path.display()))
}
