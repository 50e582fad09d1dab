//! Per-epoch metrics: one JSON object per line in `<output-dir>/metrics.jsonl`, and a PNG with
//! the loss and the k-NN accuracy per epoch (two labelled line charts drawn by [`plot`]).

use super::{ctx, plot, Result};
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

/// Writes `<path>` (PNG): the figure of [`plot::metrics_figure`] with words that fit any
/// method (title, loss panel, k-NN panel in % with the accuracy before training at epoch 0).
pub fn plot_png(path: &Path, all: &[EpochMetrics], knn_before: Option<f64>) -> Result<()> {
    plot_png_with(path, all, knn_before, &plot::MetricsLabels::default())
}

/// [`plot_png`] with the method's words and the raw-pixel reference line of `labels`
/// (e.g. [`plot::MetricsLabels::dino`]).
pub fn plot_png_with(
    path: &Path,
    all: &[EpochMetrics],
    knn_before: Option<f64>,
    labels: &plot::MetricsLabels,
) -> Result<()> {
    let img = plot::metrics_figure(all, knn_before, labels);
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
