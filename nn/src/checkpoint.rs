//! Checkpoints as safetensors files (PyTorch: `model.state_dict()`, `torch.save`,
//! `load_state_dict`, with the `safetensors` format instead of pickle).
//!
//! A [`StateDict`] is an ordered map from PyTorch's dotted names (`"layer1.0.conv1.weight"`)
//! to tensors; a [`Checkpoint`] adds a string [`Metadata`] map for training state (epoch,
//! schedule position, arguments as JSON...). F16, BF16, F32, F64, I64 and U8 round-trip bit
//! for bit; a `BOOL` tensor written by PyTorch loads as U8.
//!
//! Tensors are written sorted by dtype alignment, then name (the `safetensors` crate's order),
//! so equal state dicts give equal bytes; the metadata map is written in the crate's hash-map
//! order, which may vary between runs.
//!
//! Serialization to and from bytes works without `std`; [`Checkpoint::save`] and
//! [`Checkpoint::load`] need the `std` feature. Saving is atomic: the bytes go to
//! `<path>.tmp` in the same directory, which is flushed to disk (`fsync`) and then renamed over
//! `path`, so a crash leaves either the old file or the new one, never a torn one.
//!
//! [`load_state_dict`] matches a loaded state dict against the one a model expects, reporting
//! every missing key, unexpected key and shape mismatch at once (as PyTorch's
//! `load_state_dict` does).

use crate::{Error, Result};
use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use half::{bf16, f16};
use safetensors::{Dtype, View};
use tessera_tensor::{Backend, HostBuffer, Tensor};

/// Parameter or state name → tensor, ordered by name (PyTorch: `state_dict()`).
pub type StateDict<B> = BTreeMap<String, Tensor<B>>;

/// Free-form string metadata stored in the safetensors header (`__metadata__`).
pub type Metadata = BTreeMap<String, String>;

/// Tensors and metadata of one safetensors file.
#[derive(Clone, Debug)]
pub struct Checkpoint<B: Backend> {
    pub tensors: StateDict<B>,
    pub metadata: Metadata,
}

/// One tensor's bytes, for `safetensors::serialize`.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn le_bytes(buf: &HostBuffer) -> (Dtype, Vec<u8>) {
    macro_rules! bytes {
        ($v:expr) => {
            $v.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
    }
    match buf {
        HostBuffer::F16(v) => (Dtype::F16, bytes!(v)),
        HostBuffer::BF16(v) => (Dtype::BF16, bytes!(v)),
        HostBuffer::F32(v) => (Dtype::F32, bytes!(v)),
        HostBuffer::F64(v) => (Dtype::F64, bytes!(v)),
        HostBuffer::I64(v) => (Dtype::I64, bytes!(v)),
        HostBuffer::U8(v) => (Dtype::U8, v.clone()),
    }
}

fn from_le_bytes(key: &str, dtype: Dtype, data: &[u8]) -> Result<HostBuffer> {
    macro_rules! parse {
        ($t:ty, $n:expr) => {
            data.chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    <$t>::from_le_bytes(a)
                })
                .collect()
        };
    }
    Ok(match dtype {
        Dtype::F16 => HostBuffer::F16(parse!(f16, 2)),
        Dtype::BF16 => HostBuffer::BF16(parse!(bf16, 2)),
        Dtype::F32 => HostBuffer::F32(parse!(f32, 4)),
        Dtype::F64 => HostBuffer::F64(parse!(f64, 8)),
        Dtype::I64 => HostBuffer::I64(parse!(i64, 8)),
        Dtype::U8 | Dtype::BOOL => HostBuffer::U8(data.to_vec()),
        other => {
            return Err(Error::UnsupportedDType {
                key: key.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

/// The largest header accepted: the `safetensors` crate's own limit.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The flat index and value of the first NaN or infinity of a float buffer.
fn first_non_finite(buf: &HostBuffer) -> Option<(usize, f64)> {
    fn find<T: Copy>(v: &[T], to_f64: impl Fn(T) -> f64) -> Option<(usize, f64)> {
        v.iter()
            .map(|&x| to_f64(x))
            .enumerate()
            .find(|(_, x)| !x.is_finite())
    }
    match buf {
        HostBuffer::F16(v) => find(v, f64::from),
        HostBuffer::BF16(v) => find(v, f64::from),
        HostBuffer::F32(v) => find(v, f64::from),
        HostBuffer::F64(v) => find(v, |x| x),
        HostBuffer::I64(_) | HostBuffer::U8(_) => None,
    }
}

fn format_err(e: safetensors::SafeTensorError) -> Error {
    Error::Format { msg: e.to_string() }
}

impl<B: Backend> Checkpoint<B> {
    /// A checkpoint of `tensors` without metadata.
    pub fn new(tensors: StateDict<B>) -> Self {
        Checkpoint {
            tensors,
            metadata: Metadata::new(),
        }
    }

    /// Serializes to the bytes of a safetensors file (tensors copied to the host).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut raws = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            let (dtype, data) = le_bytes(&t.to_host()?);
            let shape = t.shape().to_vec();
            raws.push((name.as_str(), Raw { dtype, shape, data }));
        }
        let meta = if self.metadata.is_empty() {
            None
        } else {
            Some(
                self.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        };
        safetensors::serialize(raws, meta).map_err(format_err)
    }

    /// Parses the bytes of a safetensors file, creating the tensors on `backend`.
    ///
    /// Everything the header declares is checked against the bytes before it is used: the
    /// header length against the file (and the `safetensors` crate's 100 MB header limit),
    /// each tensor's dtype × shape against its byte range, the ranges against each other
    /// (contiguous, in order, no overlap) and against the data section. Every float tensor must
    /// be finite: a NaN or an infinity is an error naming the tensor and the first bad
    /// element, since weights like that make everything computed from them garbage.
    pub fn from_bytes(bytes: &[u8], backend: &B) -> Result<Self> {
        let bad = |msg: String| Error::Format { msg };
        let Some((len8, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(bad(format!(
                "the file has {} bytes, fewer than the 8 of the header length",
                bytes.len()
            )));
        };
        let n = u64::from_le_bytes(*len8);
        if n > rest.len() as u64 {
            return Err(bad(format!(
                "the header length says {n} bytes but only {} follow it",
                rest.len()
            )));
        }
        if n > MAX_HEADER_BYTES {
            return Err(bad(format!(
                "the header is {n} bytes, more than the limit of {MAX_HEADER_BYTES}"
            )));
        }
        let (head, data) = rest.split_at(n as usize);
        let head =
            core::str::from_utf8(head).map_err(|e| bad(format!("the header is not UTF-8: {e}")))?;
        // Parsed here rather than by `SafeTensors::deserialize`, whose final size check adds
        // the declared data length without overflow checking (a panic in debug builds for
        // offsets near usize::MAX). The crate's `Metadata` still checks, while parsing, that
        // the byte ranges are contiguous and in order and that each one is exactly dtype ×
        // shape bytes (with overflow-checked products).
        let header: safetensors::tensor::Metadata =
            serde_json::from_str(head).map_err(|e| bad(format!("header: {e}")))?;
        let declared = header.data_len();
        if declared != data.len() {
            return Err(bad(format!(
                "the header's tensors cover {declared} bytes of data but the file has {} after \
                 the header",
                data.len()
            )));
        }
        let metadata: Metadata = match header.metadata() {
            Some(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => Metadata::new(),
        };
        let mut tensors = StateDict::new();
        for (name, info) in header.tensors() {
            let (start, end) = info.data_offsets;
            let raw = data.get(start..end).ok_or_else(|| {
                bad(format!(
                    "tensor \"{name}\": data_offsets [{start}, {end}] are outside the {} bytes \
                     of data",
                    data.len()
                ))
            })?;
            let host = from_le_bytes(&name, info.dtype, raw)?;
            if let Some((index, value)) = first_non_finite(&host) {
                return Err(bad(format!(
                    "tensor \"{name}\" (shape {:?}) holds {value} at flat index {index}; \
                     a checkpoint with non-finite weights is refused",
                    info.shape
                )));
            }
            let t = Tensor::from_host(host, &info.shape, backend)?;
            tensors.insert(name, t);
        }
        Ok(Checkpoint { tensors, metadata })
    }

    /// Writes a safetensors file atomically: `<path>.tmp` in the same directory, `fsync`,
    /// rename over `path`, then `fsync` of the directory (Unix).
    #[cfg(feature = "std")]
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads a safetensors file, creating the tensors on `backend`.
    #[cfg(feature = "std")]
    pub fn load(path: impl AsRef<std::path::Path>, backend: &B) -> Result<Self> {
        let path = path.as_ref();
        // The whole file is read into memory: ask the memory budget first, so that a huge
        // file is an error rather than an allocation failure.
        let len = std::fs::metadata(path).map_err(io_err("read", path))?.len();
        tessera_tensor::check_bytes(
            &format!("reading the checkpoint {}", path.display()),
            usize::try_from(len).ok(),
        )?;
        let bytes = std::fs::read(path).map_err(io_err("read", path))?;
        Self::from_bytes(&bytes, backend)
    }
}

#[cfg(feature = "std")]
fn io_err(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// Writes `bytes` to `path` atomically (see [`Checkpoint::save`]); on failure `path` is left
/// as it was and the temporary file is removed.
#[cfg(feature = "std")]
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let write = || -> Result<()> {
        let mut f = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io_err("replace", path))
    };
    if let Err(e) = write() {
        if tmp.is_file() {
            let _ = std::fs::remove_file(&tmp);
        }
        return Err(e);
    }
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        let d = std::fs::File::open(dir).map_err(io_err("open the directory", dir))?;
        d.sync_all().map_err(io_err("fsync the directory", dir))?;
    }
    Ok(())
}

/// Checks a loaded state dict against expected names and shapes (PyTorch's
/// `load_state_dict` checks). Shape mismatches are always errors; missing and unexpected keys
/// are errors when `strict`. The error lists every problem at once.
pub fn check_state_dict<'a, B: Backend>(
    loaded: &StateDict<B>,
    expected: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    strict: bool,
) -> Result<()> {
    let expected: BTreeMap<&str, &[usize]> = expected.into_iter().collect();
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for (&key, &shape) in &expected {
        match loaded.get(key) {
            None => missing.push(key.to_string()),
            Some(t) if t.shape() != shape => {
                mismatched.push((key.to_string(), t.shape().to_vec(), shape.to_vec()))
            }
            Some(_) => {}
        }
    }
    let unexpected: Vec<String> = loaded
        .keys()
        .filter(|k| !expected.contains_key(k.as_str()))
        .cloned()
        .collect();
    if !strict {
        missing.clear();
    }
    let unexpected = if strict { unexpected } else { Vec::new() };
    if missing.is_empty() && unexpected.is_empty() && mismatched.is_empty() {
        return Ok(());
    }
    Err(Error::StateDict {
        missing,
        unexpected,
        mismatched,
    })
}

/// Loads `loaded` into a model whose current state is `current` (PyTorch:
/// `model.load_state_dict(sd, strict)`): checks names and shapes with [`check_state_dict`],
/// then returns, for every key of `current`, the loaded tensor cast to the current tensor's
/// dtype (or the current tensor itself when not `strict` and the key is missing).
pub fn load_state_dict<B: Backend>(
    current: &StateDict<B>,
    loaded: &StateDict<B>,
    strict: bool,
) -> Result<StateDict<B>> {
    check_state_dict(
        loaded,
        current.iter().map(|(k, t)| (k.as_str(), t.shape())),
        strict,
    )?;
    let mut out = StateDict::new();
    for (key, cur) in current {
        let t = match loaded.get(key) {
            Some(t) => t.to_dtype(cur.dtype())?,
            None => cur.clone(),
        };
        out.insert(key.clone(), t);
    }
    Ok(out)
}

/// The same tensors with `prefix` prepended to every name (to store several state dicts in
/// one file, e.g. `"student."`, `"teacher."`, `"optimizer."`).
pub fn with_prefix<B: Backend>(sd: &StateDict<B>, prefix: &str) -> StateDict<B> {
    sd.iter()
        .map(|(k, t)| (format!("{prefix}{k}"), t.clone()))
        .collect()
}

/// The entries whose name starts with `prefix`, with the prefix removed (the inverse of
/// [`with_prefix`]; also strips DistributedDataParallel's `"module."`).
pub fn select_prefix<B: Backend>(sd: &StateDict<B>, prefix: &str) -> StateDict<B> {
    sd.iter()
        .filter_map(|(k, t)| Some((k.strip_prefix(prefix)?.to_string(), t.clone())))
        .collect()
}
