//! Per-epoch metrics: one JSON object per line in `<output-dir>/metrics.jsonl`, and a PNG with
//! the loss and the k-NN accuracy per epoch (two line charts, no text).

use super::{ctx, Result};
use std::io::Write;
use std::path::Path;

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Learning rate at the last step of the epoch.
    pub lr: f64,
    /// k-NN top-1 accuracy (fraction) after the epoch, if evaluated.
    pub knn_top1: Option<f64>,
    pub images_per_s: f64,
    /// Wall time since the run (first start) began.
    pub elapsed_s: f64,
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

impl EpochMetrics {
    /// The JSON object, one line, numbers printed so that they parse back exactly.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"epoch\": {}, \"loss\": {}, \"lr\": {}, \"knn_top1\": {}, \"images_per_s\": {}, \
             \"elapsed_s\": {}}}",
            self.epoch,
            num(self.loss),
            num(self.lr),
            self.knn_top1.map_or("null".into(), num),
            num(self.images_per_s),
            num(self.elapsed_s)
        )
    }

    /// Parses a line written by [`EpochMetrics::to_json`].
    pub fn from_json(line: &str) -> Option<Self> {
        let field = |name: &str| -> Option<Option<f64>> {
            let key = format!("\"{name}\": ");
            let rest = &line[line.find(&key)? + key.len()..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            let v = rest[..end].trim();
            if v == "null" {
                Some(None)
            } else {
                v.parse().ok().map(Some)
            }
        };
        Some(EpochMetrics {
            epoch: field("epoch")??.round() as usize,
            loss: field("loss")?.unwrap_or(f64::NAN),
            lr: field("lr")?.unwrap_or(f64::NAN),
            knn_top1: field("knn_top1")?,
            images_per_s: field("images_per_s")?.unwrap_or(f64::NAN),
            elapsed_s: field("elapsed_s")?.unwrap_or(f64::NAN),
        })
    }
}

/// Reads `metrics.jsonl` (missing file: empty).
pub fn read_jsonl(path: &Path) -> Result<Vec<EpochMetrics>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.lines().filter_map(EpochMetrics::from_json).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ctx(&path.display().to_string())(e)),
    }
}

/// Rewrites `metrics.jsonl` with `all` (used on start and resume, so the file holds exactly
/// the epochs of the checkpointed state).
pub fn write_jsonl(path: &Path, all: &[EpochMetrics]) -> Result<()> {
    let mut s = String::new();
    for m in all {
        s.push_str(&m.to_json());
        s.push('\n');
    }
    tessera_nn::checkpoint::write_atomic(path, s.as_bytes())
        .map_err(ctx(&path.display().to_string()))
}

/// On `--resume`: the metrics of the epochs a checkpoint at `epoch` completed, rewriting the
/// file without the lines a killed run logged after that checkpoint.
pub fn resume_history(path: &Path, epoch: usize) -> Result<Vec<EpochMetrics>> {
    let mut history = read_jsonl(path)?;
    history.retain(|m| m.epoch <= epoch);
    write_jsonl(path, &history)?;
    Ok(history)
}

/// Appends one epoch to `metrics.jsonl`.
pub fn append_jsonl(path: &Path, m: &EpochMetrics) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(ctx(&path.display().to_string()))?;
    writeln!(f, "{}", m.to_json()).map_err(ctx(&path.display().to_string()))
}

type Rgb = image::Rgb<u8>;

/// Draws a line chart of `ys` (x = index) into the `w x h` panel at `(x0, y0)`: a frame, a
/// zero-free axis range from the data, the line and a dot per point.
fn chart(img: &mut image::RgbImage, x0: u32, y0: u32, w: u32, h: u32, ys: &[f64], color: Rgb) {
    let axis = image::Rgb([90, 90, 90]);
    let (l, t, r, b) = (x0 + 30, y0 + 20, x0 + w - 15, y0 + h - 30);
    for x in l..=r {
        img.put_pixel(x, b, axis);
        img.put_pixel(x, t, image::Rgb([220, 220, 220]));
    }
    for y in t..=b {
        img.put_pixel(l, y, axis);
    }
    let pts: Vec<(usize, f64)> = ys
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, y)| y.is_finite())
        .collect();
    if pts.is_empty() {
        return;
    }
    let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let nx = ys.len().max(2) - 1;
    let px = |i: usize| l as f64 + (r - l) as f64 * i as f64 / nx as f64;
    let py = |v: f64| b as f64 - (b - t) as f64 * (0.05 + 0.9 * (v - lo) / span);
    // Ticks on the x axis, one per point.
    for (i, _) in ys.iter().enumerate() {
        let x = px(i).round() as u32;
        for y in b..b + 4 {
            img.put_pixel(x, y, axis);
        }
    }
    let dot = |img: &mut image::RgbImage, x: f64, y: f64, rad: i64| {
        for dy in -rad..=rad {
            for dx in -rad..=rad {
                let (xx, yy) = (x.round() as i64 + dx, y.round() as i64 + dy);
                if xx >= 0 && yy >= 0 && (xx as u32) < img.width() && (yy as u32) < img.height() {
                    img.put_pixel(xx as u32, yy as u32, color);
                }
            }
        }
    };
    for pair in pts.windows(2) {
        let (a, c) = (
            (px(pair[0].0), py(pair[0].1)),
            (px(pair[1].0), py(pair[1].1)),
        );
        let steps = ((c.0 - a.0).abs().max((c.1 - a.1).abs()).ceil() as usize).max(1);
        for s in 0..=steps {
            let f = s as f64 / steps as f64;
            dot(img, a.0 + (c.0 - a.0) * f, a.1 + (c.1 - a.1) * f, 0);
        }
    }
    for &(i, v) in &pts {
        dot(img, px(i), py(v), 2);
    }
}

/// Writes `<path>` (PNG): left panel the training loss per epoch (blue), right panel the k-NN
/// top-1 accuracy (red; the first point is the accuracy before training when given).
pub fn plot_png(path: &Path, all: &[EpochMetrics], knn_before: Option<f64>) -> Result<()> {
    let (w, h) = (640u32, 320u32);
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let losses: Vec<f64> = all.iter().map(|m| m.loss).collect();
    let mut acc: Vec<f64> = knn_before.into_iter().collect();
    acc.extend(all.iter().map(|m| m.knn_top1.unwrap_or(f64::NAN)));
    chart(
        &mut img,
        0,
        0,
        w / 2,
        h,
        &losses,
        image::Rgb([31, 119, 180]),
    );
    chart(
        &mut img,
        w / 2,
        0,
        w / 2,
        h,
        &acc,
        image::Rgb([214, 39, 40]),
    );
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(ctx("encoding the plot"))?;
    tessera_nn::checkpoint::write_atomic(path, &bytes).map_err(ctx(&path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_exactly() {
        let m = EpochMetrics {
            epoch: 3,
            loss: 0.1 + 0.2,
            lr: 1.25e-5,
            knn_top1: Some(0.7345),
            images_per_s: 12.5,
            elapsed_s: 99.0,
        };
        assert_eq!(EpochMetrics::from_json(&m.to_json()), Some(m.clone()));
        let n = EpochMetrics {
            knn_top1: None,
            ..m
        };
        assert_eq!(EpochMetrics::from_json(&n.to_json()), Some(n));
    }
}
