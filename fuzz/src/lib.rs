//! Bodies of the fuzz targets, shared by `fuzz_targets/*.rs` (libFuzzer, nightly) and the root
//! crate's `tests/fuzz_regressions.rs` (stable, CI), which compiles this file through
//! `#[path]`: the committed seeds and regression inputs run through exactly this code.
//!
//! Each body hands its input to a reader the way a user's data reaches it — written to a
//! scratch directory, then opened through the public API — and accepts an `Ok` whose value is
//! consistent or an `Err` with a message. Anything else fails: a panic, an abort, and (under
//! libFuzzer's `-malloc_limit_mb`, README.md) a single allocation above [`BUDGET_MB`].
//!
//! Each body returns whether the input loaded (`Ok`), so that the seed test can check that
//! the seeds are valid. Inputs that carry several files start with a mode byte and `u16` (little-endian) lengths;
//! see [`split`]. `tests/fuzz_regressions.rs` also writes the seeds, with [`pack`].

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};
use tessera::nn::Checkpoint;
use tessera::run::args::{self, Flag, Outcome};
use tessera::run::device::{Device, DEVICE_FLAG};
use tessera::ssl::data::{self, Dataset, FolderOptions, Split};
use tessera::tensor::Cpu;

/// The memory budget every target runs under (`set_memory_limit`); libFuzzer runs with
/// `-malloc_limit_mb` set to the same number, so any single allocation above it is a crash,
/// whether or not the code asked the budget first. Small, so that an input that may
/// legitimately allocate up to the budget (a large declared image) still runs fast.
pub const BUDGET_MB: usize = 64;

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| tessera::tensor::set_memory_limit(Some(BUDGET_MB << 20)));
}

/// An `Err` must explain itself; returns the `Ok` value.
fn clean<T, E: Display>(r: Result<T, E>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(
                !e.to_string().trim().is_empty(),
                "an error without a message"
            );
            None
        }
    }
}

/// A fresh, empty directory for this target and thread (tests run in parallel).
fn scratch(target: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tessera-fuzz-{target}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).expect("write a scratch file");
    path.to_path_buf()
}

/// `[mode, len_0 (u16 LE), part_0, len_1, part_1, ..., last part]`: the mode byte and `n`
/// parts ([`parts`]). `None` for an empty input.
pub fn split(data: &[u8], n: usize) -> Option<(u8, Vec<&[u8]>)> {
    let (&mode, rest) = data.split_first()?;
    Some((mode, parts(rest, n)))
}

/// `[len_0 (u16 LE), part_0, ..., last part]` as `n` parts; a length past the end takes what
/// is left, and the parts after it are empty.
pub fn parts(mut rest: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    for _ in 1..n {
        let len = match rest {
            [a, b, tail @ ..] => {
                rest = tail;
                usize::from(u16::from_le_bytes([*a, *b]))
            }
            _ => rest.len(),
        };
        let (part, tail) = rest.split_at(len.min(rest.len()));
        parts.push(part);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// The inverse of [`split`], for writing seeds.
pub fn pack(mode: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![mode];
    for (i, p) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            let len = u16::try_from(p.len()).expect("a part of at most 65535 bytes");
            out.extend(len.to_le_bytes());
        }
        out.extend_from_slice(p);
    }
    out
}

/// `data` as a valid gzip file of stored (uncompressed) deflate blocks, so that fuzzed content
/// reaches the reader behind the gzip layer without a compressor dependency.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    // Header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(0xffff).collect()
    };
    for (i, b) in blocks.iter().enumerate() {
        let len = b.len() as u16;
        out.push(u8::from(i + 1 == blocks.len())); // BFINAL, BTYPE = stored
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), bitwise: gzip's checksum.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// What every loaded dataset must satisfy.
fn check_dataset(d: &Dataset) {
    let [n, c, h, w] = d.shape;
    assert_eq!(
        Some(d.images.len()),
        n.checked_mul(c * h * w),
        "pixels vs shape"
    );
    assert_eq!(d.labels.len(), n, "one label per image");
    assert!(d.labels.iter().all(|&l| (l as usize) < d.num_classes));
}

/// The safetensors checkpoint loader, `Checkpoint::load`: the input is the file. Whatever
/// loads must also serialize and load again to the same tensors.
pub fn checkpoint(data: &[u8]) -> bool {
    setup();
    let path = write(&scratch("checkpoint").join("c.safetensors"), data);
    let Some(ck) = clean(Checkpoint::<Cpu>::load(&path, &Cpu)) else {
        return false;
    };
    let bytes = ck.to_bytes().expect("a loaded checkpoint serializes");
    let again = Checkpoint::<Cpu>::from_bytes(&bytes, &Cpu).expect("and loads again");
    assert_eq!(again.metadata, ck.metadata);
    assert!(again.tensors.keys().eq(ck.tensors.keys()));
    for (a, b) in again.tensors.values().zip(ck.tensors.values()) {
        assert_eq!(a.shape(), b.shape());
        assert_eq!(a.to_host().ok(), b.to_host().ok());
    }
    true
}

/// The IDX reader: `split(data, 2)` gives the image file and the label file. Mode bits: 1/4
/// name the image/label file `.gz` (the bytes as given: a fuzzed gzip stream), 2/8 gzip the
/// bytes in the harness (a valid stream around fuzzed content; named `.gz`), 16 opens the
/// directory with `Dataset::open_split` (format detection) instead of `read_idx`.
pub fn idx(data: &[u8]) -> bool {
    setup();
    let Some((mode, parts)) = split(data, 2) else {
        return false;
    };
    let dir = scratch("idx");
    let file = |name: &str, bytes: &[u8], named_gz: bool, wrap: bool| {
        let bytes = if wrap {
            gzip_stored(bytes)
        } else {
            bytes.to_vec()
        };
        let gz = if named_gz || wrap { ".gz" } else { "" };
        write(&dir.join(format!("{name}{gz}")), &bytes)
    };
    let images = file(
        "train-images-idx3-ubyte",
        parts[0],
        mode & 1 != 0,
        mode & 2 != 0,
    );
    let labels = file(
        "train-labels-idx1-ubyte",
        parts[1],
        mode & 4 != 0,
        mode & 8 != 0,
    );
    let r = if mode & 16 == 0 {
        data::read_idx(&images, &labels, 10)
    } else {
        Dataset::open_split(&dir, Split::Train)
    };
    let d = clean(r);
    d.iter().for_each(check_dataset);
    d.is_some()
}

/// The CIFAR binary reader: mode bit 1 reads the rest as CIFAR-100's `train.bin` (bit 2: the
/// coarse labels), else as CIFAR-10 batches, `(mode >> 3) % 3 + 1` files of equal parts; bit
/// 32 opens the directory with `Dataset::open` (format detection) instead.
pub fn cifar(data: &[u8]) -> bool {
    setup();
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let dir = scratch("cifar");
    let r = if mode & 1 != 0 {
        write(&dir.join("train.bin"), rest);
        if mode & 32 != 0 {
            Dataset::open(&dir)
        } else {
            data::read_cifar100(&dir, true, mode & 2 != 0)
        }
    } else {
        let files = usize::from(mode >> 3) % 3 + 1;
        let each = rest.len() / files;
        for i in 0..files {
            let end = if i + 1 == files {
                rest.len()
            } else {
                (i + 1) * each
            };
            write(
                &dir.join(format!("data_batch_{}.bin", i + 1)),
                &rest[i * each..end],
            );
        }
        if mode & 32 != 0 {
            Dataset::open(&dir)
        } else {
            data::read_cifar10(&dir, true)
        }
    };
    let d = clean(r);
    d.iter().for_each(check_dataset);
    d.is_some()
}

/// The image-folder loader (decode, resize, crop): `split(data, 2)` after two size bytes
/// `[mode, h, w, ...]` gives one or two image files. Mode bits: 1 loads 1 channel (else 3), 2
/// resizes to `(h % 64 + 1, w % 64 + 1)`, 4 adds the second file, 8 puts it in a second
/// class, 16/32 name the files `.jpg` (else `.png`; decoding goes by content either way).
pub fn image_folder(data: &[u8]) -> bool {
    setup();
    let [mode, h, w, rest @ ..] = data else {
        return false;
    };
    let parts = parts(rest, 2);
    let root = scratch("image_folder");
    let ext = |bit: u8| if mode & bit != 0 { "jpg" } else { "png" };
    std::fs::create_dir_all(root.join("a")).expect("class folder");
    write(&root.join("a").join(format!("0.{}", ext(16))), parts[0]);
    if mode & 4 != 0 {
        let class = if mode & 8 != 0 { "b" } else { "a" };
        std::fs::create_dir_all(root.join(class)).expect("class folder");
        write(&root.join(class).join(format!("1.{}", ext(32))), parts[1]);
    }
    let opts = FolderOptions {
        size: (mode & 2 != 0).then(|| (usize::from(*h) % 64 + 1, usize::from(*w) % 64 + 1)),
        channels: if mode & 1 != 0 { 1 } else { 3 },
    };
    let Some(d) = clean(data::read_image_folder(&root, &opts)) else {
        return false;
    };
    check_dataset(&d);
    assert_eq!(d.shape[1], opts.channels);
    if let Some(size) = opts.size {
        assert_eq!((d.shape[2], d.shape[3]), size);
    }
    true
}

/// The examples, whose flag tables the `args` target parses against.
const EXAMPLES: [(&str, &str); 6] = [
    (
        "dino_vit_s",
        include_str!("../../examples/dino_vit_s/config.rs"),
    ),
    (
        "byol_resnet50",
        include_str!("../../examples/byol_resnet50/config.rs"),
    ),
    ("knn_eval", include_str!("../../examples/knn_eval.rs")),
    (
        "attention_maps",
        include_str!("../../examples/attention_maps.rs"),
    ),
    ("features", include_str!("../../examples/features.rs")),
    ("bench_steps", include_str!("../../examples/bench_steps.rs")),
];

/// The flag table of each example, read from its source (the tables are private consts of
/// the example binaries): each `Flag::value("name", "VALUE", ..)` and `Flag::switch("name",
/// ..)`, plus the shared `DEVICE_FLAG`.
pub fn example_flag_tables() -> &'static [(&'static str, Vec<Flag>)] {
    static TABLES: OnceLock<Vec<(&'static str, Vec<Flag>)>> = OnceLock::new();
    TABLES.get_or_init(|| {
        EXAMPLES
            .iter()
            .map(|&(name, src)| (name, flags_in(src)))
            .collect()
    })
}

fn flags_in(src: &'static str) -> Vec<Flag> {
    // The string literal at the start of `s` (after blanks and a comma) and what follows it.
    fn literal(s: &'static str) -> Option<(&'static str, &'static str)> {
        let s = s.trim_start().trim_start_matches(',').trim_start();
        let s = s.strip_prefix('"')?;
        let end = s.find('"')?;
        Some((&s[..end], &s[end + 1..]))
    }
    let mut flags = vec![DEVICE_FLAG];
    for (i, _) in src.match_indices("Flag::") {
        let rest = &src[i + "Flag::".len()..];
        if let Some(r) = rest.strip_prefix("value(") {
            if let Some((name, r)) = literal(r) {
                let value = literal(r).map_or("V", |(v, _)| v);
                flags.push(Flag::value(name, value, ""));
            }
        } else if let Some(r) = rest.strip_prefix("switch(") {
            if let Some((name, _)) = literal(r) {
                flags.push(Flag::switch(name, ""));
            }
        }
    }
    flags
}

/// The command-line parser, `tessera::run::args::parse`, with the flag table of one example
/// (the first byte picks it); the rest, split at NUL bytes, is the argument list. Every flag's
/// value is then read back as the examples read them.
pub fn args(data: &[u8]) -> bool {
    setup();
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    let tables = example_flag_tables();
    let (program, flags) = &tables[usize::from(which) % tables.len()];
    let argv: Vec<String> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    match clean(args::parse(argv, program, "about", flags)) {
        Some(Outcome::Help(text)) => assert!(text.contains("Usage")),
        Some(Outcome::Run(p)) => {
            let mut ok = true;
            for f in flags {
                let raw = p.raw(f.name);
                assert_eq!(p.switch(f.name), raw.is_some());
                assert_eq!(p.all(f.name).last().copied(), raw);
                clean(p.get::<usize>(f.name));
                clean(p.get::<u64>(f.name));
                clean(p.get::<f64>(f.name));
                clean(p.get::<bool>(f.name));
                clean(p.get_or::<f32>(f.name, 0.0));
            }
            ok &= clean(Device::from_args(&p)).is_some();
            return ok;
        }
        None => return false,
    }
    true
}
