//! Photos as model inputs (for `attention_maps` and `features`): PNG/JPEG decoding, resize and
//! center crop, RGB or grayscale planes in `[0, 1]`; an input drawn back as a picture; and
//! pictures written in the format their file name asks for.

use super::{Result, RunError};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, RgbImage};
use std::path::{Path, PathBuf};
use tessera_ssl::augment::Image;

/// The shipped CC0 photos (`data/photos`, see its README), located at compile time.
pub fn photos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/photos")
}

/// File extensions read as images (case-insensitive).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Whether `p` has an image file extension.
pub fn is_image_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The image files named by `paths`: each a file, or a folder whose PNG/JPEG files (not
/// hidden, sorted by name) are taken. Fails on a missing path or when nothing is found.
pub fn expand_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let path = p.as_ref().to_path_buf();
        if path.is_dir() {
            let rd = std::fs::read_dir(&path)
                .map_err(|e| RunError::new(format!("cannot list {}: {e}", path.display())))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && is_image_file(f)
                        && !f
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            if files.is_empty() {
                return Err(RunError::new(format!(
                    "no PNG or JPEG files in {}",
                    path.display()
                )));
            }
            files.sort();
            out.extend(files);
        } else if path.is_file() {
            out.push(path);
        } else {
            return Err(RunError::new(format!("no image at {}", path.display())));
        }
    }
    if out.is_empty() {
        return Err(RunError::usage("no images given"));
    }
    Ok(out)
}

/// Decodes a PNG or JPEG file (format from its content), resizes it so that it covers
/// `size x size` (shorter side scaled, triangle filter) and center-crops it: torchvision's
/// `Resize(size) + CenterCrop(size)`.
pub fn load_square(path: &Path, size: usize) -> Result<RgbImage> {
    if !path.is_file() {
        return Err(RunError::new(format!("no image at {}", path.display())));
    }
    let fail = |e: &dyn std::fmt::Display| {
        RunError::new(format!("cannot decode the image {}: {e}", path.display()))
    };
    let img = image::ImageReader::open(path)
        .map_err(|e| fail(&e))?
        .with_guessed_format()
        .map_err(|e| fail(&e))?
        .decode()
        .map_err(|e| fail(&e))?;
    // An empty picture (possible in some formats) would be scaled by an infinite factor.
    if img.width() == 0 || img.height() == 0 {
        return Err(RunError::new(format!(
            "the image {} is {}x{} px: empty",
            path.display(),
            img.width(),
            img.height()
        )));
    }
    let s = size as u32;
    let (iw, ih) = (f64::from(img.width()), f64::from(img.height()));
    let k = (size as f64 / ih).max(size as f64 / iw);
    let nw = ((iw * k).round() as u32).max(s);
    let nh = ((ih * k).round() as u32).max(s);
    let r = img.resize_exact(nw, nh, FilterType::Triangle);
    Ok(r.crop_imm((nw - s) / 2, (nh - s) / 2, s, s).into_rgb8())
}

/// `[channels, h, w]` planes in `[0, 1]` (`/ 255`, torchvision's `ToTensor`): RGB for 3
/// channels, luma (the `image` crate's Rec. 601 weights, as the image-folder reader) for 1.
pub fn to_input(rgb: &RgbImage, channels: usize) -> Result<Image> {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let hwc: Vec<u8> = match channels {
        3 => rgb.as_raw().clone(),
        1 => DynamicImage::ImageRgb8(rgb.clone()).into_luma8().into_raw(),
        c => {
            return Err(RunError::new(format!(
                "images can feed a model of 1 or 3 channels, not {c}"
            )))
        }
    };
    let mut chw = vec![0u8; hwc.len()];
    for (i, px) in hwc.chunks_exact(channels).enumerate() {
        for (k, &v) in px.iter().enumerate() {
            chw[k * h * w + i] = v;
        }
    }
    Image::from_u8(channels, h, w, &chw).map_err(|e| RunError::new(e.to_string()))
}

/// The input `img` as the model sees it, as a picture `zoom` times larger (nearest neighbour,
/// so each input pixel stays a visible square): grey for 1 channel, RGB for 3, `[0, 1]`
/// mapped to `0..=255`.
pub fn input_picture(img: &Image, zoom: u32) -> RgbImage {
    let (c, h, w) = (img.channels(), img.height(), img.width());
    let z = zoom.max(1) as usize;
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    RgbImage::from_fn((w * z) as u32, (h * z) as u32, |x, y| {
        let (x, y) = (x as usize / z, y as usize / z);
        let k = |ch: usize| byte(img.at(ch.min(c - 1), y, x));
        image::Rgb([k(0), k(1), k(2)])
    })
}

/// Fails unless `size` is a positive multiple of `patch`.
pub fn check_patch_multiple(what: &str, h: usize, w: usize, patch: usize) -> Result<()> {
    if h == 0 || w == 0 || patch == 0 || h % patch != 0 || w % patch != 0 {
        return Err(RunError::new(format!(
            "{what} {h}x{w} is not a multiple of the patch size {patch}"
        )));
    }
    Ok(())
}

/// Fails unless `size`, the value of `flag`, is a positive multiple of `patch`; the message
/// names the flag, the value typed and the nearest multiples.
pub fn check_size_flag(flag: &str, size: usize, patch: usize) -> Result<()> {
    if patch == 0 || (size > 0 && size % patch == 0) {
        return Ok(());
    }
    let below = size / patch * patch;
    let nearest = if below == 0 {
        format!("{patch}")
    } else {
        format!("{below} or {}", below + patch)
    };
    Err(RunError::usage(format!(
        "{flag} {size}: not a multiple of the patch size {patch} (try {nearest})"
    )))
}

/// The format `flag`'s picture file is written in, from its extension (case-insensitive):
/// PNG for `.png`, JPEG for `.jpg` and `.jpeg`; any other name is refused rather than
/// written as a PNG under the wrong name.
pub fn picture_format(path: &Path, flag: &str) -> Result<ImageFormat> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => Ok(ImageFormat::Png),
        Some("jpg" | "jpeg") => Ok(ImageFormat::Jpeg),
        other => Err(RunError::usage(format!(
            "{flag} {}: {}; name a .png, .jpg or .jpeg file",
            path.display(),
            match other {
                Some(e) => format!("cannot write .{e} pictures"),
                None => "no file extension".to_string(),
            }
        ))),
    }
}

/// JPEG quality of [`save_picture`]: high enough that patch edges of attention maps stay
/// sharp.
pub const JPEG_QUALITY: u8 = 90;

/// `img` encoded as `format` (PNG, or JPEG at [`JPEG_QUALITY`]).
pub fn encode_picture(img: &RgbImage, format: ImageFormat) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let done = match format {
        ImageFormat::Jpeg => {
            img.write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY))
        }
        f => img.write_to(&mut std::io::Cursor::new(&mut bytes), f),
    };
    done.map_err(|e| RunError::new(format!("encoding the picture: {e}")))?;
    Ok(bytes)
}

/// Writes `img` to `path`, atomically, in the format its extension names
/// ([`picture_format`]; `flag` names the option in errors).
pub fn save_picture(img: &RgbImage, path: &Path, flag: &str) -> Result<()> {
    let bytes = encode_picture(img, picture_format(path, flag)?)?;
    // The error names the file ("cannot write <path>: ...").
    tessera_nn::checkpoint::write_atomic(path, &bytes).map_err(|e| RunError::new(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_extensions_choose_the_format_or_are_refused() {
        let f = |p: &str| picture_format(Path::new(p), "--output");
        assert_eq!(f("a/b.PNG").unwrap(), ImageFormat::Png);
        assert_eq!(f("x.jpg").unwrap(), ImageFormat::Jpeg);
        assert_eq!(f("x.Jpeg").unwrap(), ImageFormat::Jpeg);
        let e = f("x.gif").unwrap_err();
        assert_eq!(
            e.message,
            "--output x.gif: cannot write .gif pictures; name a .png, .jpg or .jpeg file"
        );
        assert!(f("x").unwrap_err().message.contains("no file extension"));
    }

    #[test]
    fn inputs_draw_back_grey_or_rgb_and_zoomed() {
        let grey = Image::from_u8(1, 1, 2, &[0, 255]).unwrap();
        let p = input_picture(&grey, 3);
        assert_eq!(p.dimensions(), (6, 3));
        assert_eq!(p.get_pixel(2, 2).0, [0, 0, 0]);
        assert_eq!(p.get_pixel(3, 0).0, [255, 255, 255]);
        let rgb = Image::from_u8(3, 1, 1, &[10, 20, 30]).unwrap();
        assert_eq!(input_picture(&rgb, 0).get_pixel(0, 0).0, [10, 20, 30]);
    }

    #[test]
    fn size_flags_name_the_value_and_the_nearest_multiples() {
        assert!(check_size_flag("--img-size", 28, 7).is_ok());
        let e = check_size_flag("--img-size", 30, 7).unwrap_err();
        assert_eq!(
            e.message,
            "--img-size 30: not a multiple of the patch size 7 (try 28 or 35)"
        );
        let e = check_size_flag("--img-size", 0, 16).unwrap_err();
        assert!(e.message.contains("(try 16)"), "{e}");
    }
}
