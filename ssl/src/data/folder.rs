//! Image folders as torchvision's `datasets.ImageFolder`: one subfolder per class, classes
//! numbered in sorted name order, PNG and JPEG files (by extension, case-insensitive; other
//! files and hidden entries are skipped), sorted by name within a class.
//!
//! **Sizes.** Decoded images are converted to RGB (or to luma when 1 channel is asked for).
//! With [`FolderOptions::size`] set, each image is resized so that it covers the size
//! (shorter side scaled, bilinear/triangle filter with antialiasing) and center-cropped,
//! i.e. torchvision's `Resize(size) + CenterCrop(size)`. Without it every image must already
//! have the first image's size, and a different one is an [`Error::ImageSize`].

use super::{budget, io_err, Dataset, Format};
use crate::error::{Error, Result};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use image::imageops::FilterType;
use image::DynamicImage;
use std::path::{Path, PathBuf};

/// How to load an image folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Output `(height, width)`: resize + center crop to it; `None` requires uniform images.
    pub size: Option<(usize, usize)>,
    /// 3 (RGB, default) or 1 (grayscale).
    pub channels: usize,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            size: None,
            channels: 3,
        }
    }
}

/// File extensions read as images.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Sorted names of the non-hidden entries of `dir` that satisfy `keep`.
fn entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && keep(&e.path()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The class subfolders of `dir`, sorted.
pub(crate) fn class_dirs(dir: &Path) -> Result<Vec<String>> {
    entries(dir, Path::is_dir)
}

fn is_image(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The largest image side decoded (JPEG's own limit): larger ones are refused before any
/// pixel is allocated, whatever the memory budget.
const MAX_SIDE: u32 = 1 << 16;

/// Decodes one file (format guessed from its content) and converts it to `[c, h, w]` bytes
/// of the requested size.
fn load_one(path: &Path, opts: &FolderOptions) -> Result<(usize, usize, Vec<u8>)> {
    decode(&super::read_bytes(path)?, path, opts)
}

/// [`load_one`] on the bytes of the file at `path`. Every buffer is checked against the memory
/// budget before it is made: the decoder's (through `image::Limits`, from the header's
/// declared size), the resize's and the conversions'.
fn decode(bytes: &[u8], path: &Path, opts: &FolderOptions) -> Result<(usize, usize, Vec<u8>)> {
    let decode_err = |msg: String| Error::Decode {
        path: path.display().to_string(),
        msg,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| io_err(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(tessera_tensor::memory::allocation_bound() as u64);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| decode_err(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(decode_err(alloc::format!(
            "the image is {}x{} pixels (h x w)",
            img.height(),
            img.width()
        )));
    }
    let img = match opts.size {
        Some((h, w)) => cover_and_crop(img, h, w, path)?,
        None => img,
    };
    let (w, h, c) = (img.width() as usize, img.height() as usize, opts.channels);
    let n = budget(
        path,
        &alloc::format!("the {h}x{w} image with {c} channels"),
        h.checked_mul(w).and_then(|p| p.checked_mul(c)),
    )?;
    let hwc: Vec<u8> = if c == 1 {
        img.into_luma8().into_raw()
    } else {
        img.into_rgb8().into_raw()
    };
    // [h, w, c] -> [c, h, w]
    let mut chw = alloc::vec![0u8; n];
    for (i, px) in hwc.chunks_exact(c).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            chw[k * h * w + i] = v;
        }
    }
    Ok((h, w, chw))
}

/// torchvision `Resize` (shorter side) + `CenterCrop` to `h x w`. The resize covers `h x w`
/// at the image's aspect ratio, so a very long, thin image asks for a very large one: both
/// buffers of the resize (its `f32` RGBA intermediate and its output) are checked against the
/// memory budget first.
fn cover_and_crop(img: DynamicImage, h: usize, w: usize, path: &Path) -> Result<DynamicImage> {
    let (iw, ih) = (f64::from(img.width()), f64::from(img.height()));
    let s = (h as f64 / ih).max(w as f64 / iw);
    let nw = ((iw * s).round() as u32).max(w as u32);
    let nh = ((ih * s).round() as u32).max(h as u32);
    let (nw_, nh_) = (nw as usize, nh as usize);
    let what = alloc::format!(
        "resizing the {}x{} image to {nh}x{nw} (h x w) to crop {h}x{w}",
        img.height(),
        img.width()
    );
    let intermediate = (img.width() as usize)
        .checked_mul(nh_)
        .and_then(|p| p.checked_mul(4 * core::mem::size_of::<f32>()));
    let output = nw_
        .checked_mul(nh_)
        .and_then(|p| p.checked_mul(usize::from(img.color().bytes_per_pixel())));
    budget(path, &what, intermediate)?;
    budget(path, &what, output)?;
    let r = img.resize_exact(nw, nh, FilterType::Triangle);
    Ok(r.crop_imm((nw - w as u32) / 2, (nh - h as u32) / 2, w as u32, h as u32))
}

/// Reads an image folder rooted at `root` (one subfolder per class).
pub fn read_image_folder(root: &Path, opts: &FolderOptions) -> Result<Dataset> {
    if opts.channels != 1 && opts.channels != 3 {
        return Err(Error::Config(alloc::format!(
            "image folders load 1 or 3 channels, got {}",
            opts.channels
        )));
    }
    if let Some((h, w)) = opts.size {
        if h == 0 || w == 0 || h > 1 << 15 || w > 1 << 15 {
            return Err(Error::Config(alloc::format!(
                "image folder size {h}x{w} must be in 1..=32768"
            )));
        }
    }
    if !root.is_dir() {
        return Err(Error::NotFound {
            path: root.display().to_string(),
        });
    }
    let classes = class_dirs(root)?;
    if classes.is_empty() {
        return Err(Error::UnknownFormat {
            path: root.display().to_string(),
            looked_for: "one subfolder per class".into(),
        });
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut size: Option<(usize, usize)> = None;
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let files: Vec<PathBuf> = entries(&dir, is_image)?
            .into_iter()
            .map(|f| dir.join(f))
            .collect();
        if files.is_empty() {
            return Err(Error::EmptyClass {
                path: dir.display().to_string(),
            });
        }
        for f in files {
            let (h, w, chw) = load_one(&f, opts)?;
            match size {
                Some(expected) if expected != (h, w) => {
                    return Err(Error::ImageSize {
                        path: f.display().to_string(),
                        expected,
                        found: (h, w),
                    })
                }
                _ => size = Some((h, w)),
            }
            super::grow(&f, "the images of the folder", &mut images, chw.len())?;
            images.extend_from_slice(&chw);
            labels.push(label as u32);
        }
    }
    let (h, w) = size.unwrap_or((0, 0));
    Ok(Dataset {
        shape: [labels.len(), opts.channels, h, w],
        images,
        labels,
        num_classes: classes.len(),
        class_names: classes,
        format: Format::ImageFolder,
    })
}
