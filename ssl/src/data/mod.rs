//! Dataset readers (needs the `std` feature): IDX (MNIST, Fashion-MNIST), CIFAR-10/100
//! binaries and image folders, all loaded into one in-memory [`Dataset`] of `u8` pixels
//! (torchvision: `datasets.MNIST`, `FashionMNIST`, `CIFAR10`, `CIFAR100`, `ImageFolder`;
//! these read the original files, not torchvision's pickled caches).
//!
//! [`Dataset::open`] detects the format of a directory; the `read_*` functions read one
//! format explicitly. Every failure is an [`Error`] naming the file.

mod cifar;
mod folder;
mod idx;

pub use cifar::{read_cifar10, read_cifar100, read_cifar_files};
pub use folder::{read_image_folder, FolderOptions};
pub use idx::{read_idx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};

use crate::augment::Image;
use crate::error::{config_err, Error, Result};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::io::Read;
use std::path::Path;
use tessera_tensor::Rng;

/// Which file format a dataset came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Idx,
    Cifar10,
    Cifar100,
    ImageFolder,
}

/// The training or the test split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Images and labels in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Pixels, row-major `[n, c, h, w]` (channel planes, not PIL's interleaved `[h, w, c]`).
    pub images: Vec<u8>,
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
    /// One label per image, each `< num_classes`.
    pub labels: Vec<u32>,
    pub num_classes: usize,
    /// Class names when the format has them (image folders, CIFAR's meta files), else empty.
    pub class_names: Vec<String>,
    pub format: Format,
}

/// What [`Dataset::open`] looks for, for its error message.
const LOOKED_FOR: &str = "IDX files (*-images-idx3-ubyte[.gz] with *-labels-idx1-ubyte[.gz]), \
     CIFAR-10 binaries (data_batch_*.bin / test_batch.bin, also in cifar-10-batches-bin/), \
     CIFAR-100 binaries (train.bin / test.bin, also in cifar-100-binary/), \
     or an image folder (one subfolder per class of PNG/JPEG files, or train/ and test/ or \
     val/ folders of those)";

impl Dataset {
    /// The training split of the dataset in directory `path`, format detected.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_split(path, Split::Train)
    }

    /// One split of the dataset in directory `path`. Detection, in order: IDX files (`train*`
    /// or `t10k*`/`test*`, 10 classes); CIFAR-10 batches; CIFAR-100 `train.bin`/`test.bin`
    /// (fine labels); each also inside `cifar-10-batches-bin/` or `cifar-100-binary/`;
    /// otherwise an image folder at `path/train` (or `path/test`, `path/val`) if present,
    /// else at `path` itself for the training split (RGB, uniform sizes required; use
    /// [`Dataset::open_split_with`] to resize).
    pub fn open_split(path: impl AsRef<Path>, split: Split) -> Result<Self> {
        Self::open_split_with(path, split, &FolderOptions::default())
    }

    /// [`Dataset::open_split`] with the options an image folder is read with (e.g. a resize
    /// to one size, torchvision's `Resize` + `CenterCrop`, for folders of mixed sizes). IDX
    /// and CIFAR data have a fixed size and ignore `folder`.
    pub fn open_split_with(
        path: impl AsRef<Path>,
        split: Split,
        folder: &FolderOptions,
    ) -> Result<Self> {
        let dir = path.as_ref();
        if !dir.exists() {
            return Err(Error::NotFound {
                path: dir.display().to_string(),
            });
        }
        let train = split == Split::Train;
        for sub in ["cifar-10-batches-bin", "cifar-100-binary"] {
            if dir.join(sub).is_dir() {
                return Self::open_split_with(dir.join(sub), split, folder);
            }
        }
        let unknown = || Error::UnknownFormat {
            path: dir.display().to_string(),
            looked_for: LOOKED_FOR.into(),
        };
        if !dir.is_dir() {
            return Err(unknown());
        }
        let names = file_names(dir)?;
        if idx::looks_like_idx(&names) {
            let prefixes: &[&str] = if train { &["train"] } else { &["t10k", "test"] };
            let (img, lab) = idx::find_split(dir, prefixes)?.ok_or_else(|| Error::NotFound {
                path: dir
                    .join(alloc::format!("{}-images-idx3-ubyte[.gz]", prefixes[0]))
                    .display()
                    .to_string(),
            })?;
            return read_idx(&img, &lab, 10);
        }
        let has = |n: &str| names.iter().any(|x| x == n);
        if has("test_batch.bin") || names.iter().any(|n| n.starts_with("data_batch_")) {
            return read_cifar10(dir, train);
        }
        if has("train.bin") || has("test.bin") {
            return read_cifar100(dir, train, false);
        }
        let subdirs = folder::class_dirs(dir)?;
        if subdirs.is_empty() {
            return Err(unknown());
        }
        let split_dirs: &[&str] = if train { &["train"] } else { &["test", "val"] };
        if let Some(s) = split_dirs.iter().find(|s| subdirs.iter().any(|d| d == *s)) {
            return read_image_folder(&dir.join(s), folder);
        }
        if !train {
            return Err(Error::NotFound {
                path: dir.join("test (or val)").display().to_string(),
            });
        }
        read_image_folder(dir, folder)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.shape[0]
    }
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }
    /// `[c, h, w]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.shape[1], self.shape[2], self.shape[3]]
    }
    fn image_len(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }
    /// The bytes of image `i`, `[c, h, w]`; `None` past the end.
    pub fn image_bytes(&self, i: usize) -> Option<&[u8]> {
        let n = self.image_len();
        let start = i.checked_mul(n)?;
        self.images.get(start..start.checked_add(n)?)
    }
    /// Image `i` as `f32` in `[0, 1]`, ready for the augmentations.
    pub fn image(&self, i: usize) -> Result<Image> {
        let b = self
            .image_bytes(i)
            .ok_or_else(|| config_err!("image index {i} is out of range for {}", self.len()))?;
        let [c, h, w] = self.image_shape();
        Image::from_u8(c, h, w, b)
    }

    /// Per-channel mean and standard deviation of the pixel values in `[0, 1]` over every
    /// image: the statistics of a `Normalize` for this data (torchvision recipes hard-code
    /// them per dataset, e.g. Fashion-MNIST's 0.2860 / 0.3530). `None` for an empty dataset.
    pub fn channel_stats(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let [c, h, w] = self.image_shape();
        let (plane, n) = (h * w, self.len() * h * w);
        if n == 0 {
            return None;
        }
        let (mut sum, mut sq) = (alloc::vec![0f64; c], alloc::vec![0f64; c]);
        for img in self.images.chunks_exact(c * plane) {
            for (ch, px) in img.chunks_exact(plane).enumerate() {
                for &b in px {
                    let v = b as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| libm::sqrt((q / n as f64 - m * m).max(0.0)) as f32)
            .collect();
        Some((mean.into_iter().map(|m| m as f32).collect(), std))
    }

    /// The images at `indices`, in that order (repeats allowed).
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let b = self.image_bytes(i).ok_or_else(|| {
                config_err!("subset index {i} is out of range for {}", self.len())
            })?;
            images.extend_from_slice(b);
            labels.push(self.labels[i]);
        }
        Ok(Dataset {
            images,
            shape: [indices.len(), self.shape[1], self.shape[2], self.shape[3]],
            labels,
            num_classes: self.num_classes,
            class_names: self.class_names.clone(),
            format: self.format,
        })
    }

    /// Indices of `k` images per class chosen at random (one [`Rng`] seeded with `seed`
    /// permutes each class's indices in class order), returned in ascending order. Fails if
    /// a class has fewer than `k` images.
    pub fn balanced_indices(&self, k: usize, seed: u64) -> Result<Vec<usize>> {
        let mut by_class = alloc::vec![Vec::new(); self.num_classes];
        for (i, &l) in self.labels.iter().enumerate() {
            if let Some(v) = by_class.get_mut(l as usize) {
                v.push(i);
            }
        }
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for (c, idx) in by_class.iter().enumerate() {
            if idx.len() < k {
                return Err(config_err!(
                    "balanced subset: class {c} has {} images, fewer than {k}",
                    idx.len()
                ));
            }
            let perm = rng.permutation(idx.len());
            out.extend(perm[..k].iter().map(|&p| idx[p]));
        }
        out.sort_unstable();
        Ok(out)
    }

    /// A subset with `k` images per class ([`Dataset::balanced_indices`]), deterministic
    /// given `seed`: e.g. the 5k/1k Fashion-MNIST subsets are `k = 500` and `k = 100`.
    pub fn balanced_subset(&self, k: usize, seed: u64) -> Result<Dataset> {
        self.subset(&self.balanced_indices(k, seed)?)
    }
}

/// The error of an I/O failure on `path` (a missing file is [`Error::NotFound`]).
pub(crate) fn io_err(path: &Path, e: std::io::Error) -> Error {
    let path = path.display().to_string();
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::NotFound { path }
    } else {
        Error::Io {
            path,
            msg: e.to_string(),
        }
    }
}

/// Whether `path` is read as gzip (its name ends in `.gz`).
pub(crate) fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Checks a buffer of `bytes` (`None`: the size overflowed) for `what`, read from `path`,
/// against the memory budget (`tessera_tensor::set_memory_limit`); returns the size. The error
/// names the file.
pub(crate) fn budget(path: &Path, what: &str, bytes: Option<usize>) -> Result<usize> {
    tessera_tensor::check_bytes(what, bytes).map_err(|e| Error::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    Ok(bytes.unwrap_or(0))
}

/// Makes room for `additional` more bytes in `v`, which holds data read from `path`: growth
/// stays geometric (amortized), but neither the contents nor the buffer may pass the memory
/// budget; the error names `what`.
pub(crate) fn grow(path: &Path, what: &str, v: &mut Vec<u8>, additional: usize) -> Result<()> {
    let want = budget(path, what, v.len().checked_add(additional))?;
    if want > v.capacity() {
        let limit = tessera_tensor::memory::allocation_bound();
        let cap = want
            .max(v.capacity().saturating_mul(2))
            .min(limit.max(want));
        v.reserve_exact(cap - v.len());
    }
    Ok(())
}

/// Reads a whole file, gunzipping it if its name ends in `.gz`. The file, or what it
/// decompresses to, must fit the memory budget: decompression stops at the first chunk past
/// it, so a gzip bomb is an error, not an allocation.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let len = file.metadata().map_err(|e| io_err(path, e))?.len();
    if !is_gz(path) {
        let len = budget(path, "reading the file", usize::try_from(len).ok())?;
        let mut out = Vec::with_capacity(len);
        std::io::BufReader::new(file)
            .read_to_end(&mut out)
            .map_err(|e| io_err(path, e))?;
        return Ok(out);
    }
    let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let gz_err = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        msg: alloc::format!("gzip: {e}"),
    };
    let (mut out, mut chunk) = (Vec::new(), alloc::vec![0u8; 1 << 16]);
    loop {
        let k = match gz.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(gz_err(e)),
        };
        grow(path, "decompressing the file", &mut out, k)?;
        out.extend_from_slice(&chunk[..k]);
    }
}

/// Names of the regular files in `dir`, sorted.
pub(crate) fn file_names(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Io {
        path: dir.display().to_string(),
        msg: e.to_string(),
    })?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Fails on the first label `>= num_classes`.
pub(crate) fn check_labels(labels: &[u32], num_classes: usize, path: &Path) -> Result<()> {
    match labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= num_classes)
    {
        Some((index, &label)) => Err(Error::LabelOutOfRange {
            path: path.display().to_string(),
            index,
            label,
            num_classes,
        }),
        None => Ok(()),
    }
}
