//! The figure of a training run (`metrics.png`): a title over two panels, the mean training
//! loss per epoch on the left and the k-NN top-1 accuracy (%) on the right, with the
//! accuracy before training at epoch 0, a marker on every measured point, an optional dashed
//! raw-pixel reference line and a legend.
//!
//! [`metrics_charts`] returns the two panels as [`Chart`]s, so that a caller can add series
//! (say "teacher CLS" or "student patch mean") before [`figure`] draws them.

use super::chart::{Chart, Series};
use super::draw::{self, Marker, GREY, INK, PALETTE, PAPER};
use super::font;
use crate::run::metrics::EpochMetrics;
use image::RgbImage;

/// Size of [`metrics_figure`]'s picture, in pixels.
pub const FIGURE_SIZE: (u32, u32) = (1000, 420);

/// The words of a training figure.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsLabels {
    /// Over both panels.
    pub title: String,
    /// The y axis of the loss panel, with its unit.
    pub loss_axis: String,
    /// The k-NN top-1 accuracy of raw pixels (fraction), drawn as a dashed reference line.
    pub knn_raw: Option<f64>,
}

impl Default for MetricsLabels {
    /// Words that fit any method.
    fn default() -> Self {
        MetricsLabels {
            title: "Training: loss and k-NN accuracy".into(),
            loss_axis: "training loss (mean per epoch)".into(),
            knn_raw: None,
        }
    }
}

impl MetricsLabels {
    /// DINO: the loss is a cross-entropy between teacher and student, in nats.
    pub fn dino() -> Self {
        MetricsLabels {
            title: "DINO training: loss and k-NN accuracy".into(),
            loss_axis: "loss (cross-entropy, nats)".into(),
            knn_raw: None,
        }
    }

    /// BYOL: the loss is `2 - 2 cos` per view, summed over the two views.
    pub fn byol() -> Self {
        MetricsLabels {
            title: "BYOL training: loss and k-NN accuracy".into(),
            loss_axis: "loss (2 - 2 cos, both views)".into(),
            knn_raw: None,
        }
    }
}

/// The loss panel and the k-NN panel of the run `all` (accuracies in %; `knn_before`, the
/// fraction before training, at epoch 0).
pub fn metrics_charts(
    all: &[EpochMetrics],
    knn_before: Option<f64>,
    labels: &MetricsLabels,
) -> (Chart, Chart) {
    let loss: Vec<(f64, f64)> = all.iter().map(|m| (m.epoch as f64, m.loss)).collect();
    let mut loss_line = Series::line("mean loss per epoch", PALETTE[0], loss);
    if all.len() <= 60 {
        loss_line = loss_line.with_marker(Marker::Circle);
    }
    let loss_chart = Chart {
        title: "Training loss".into(),
        x_label: "epoch".into(),
        y_label: labels.loss_axis.clone(),
        series: vec![loss_line],
        integer_x: true,
    };

    let before = knn_before.filter(|v| v.is_finite());
    let mut acc: Vec<(f64, f64)> = before.map(|v| (0.0, 100.0 * v)).into_iter().collect();
    acc.extend(
        all.iter()
            .filter_map(|m| m.knn_top1.map(|v| (m.epoch as f64, 100.0 * v))),
    );
    let last = acc.iter().rev().find(|p| p.1.is_finite()).map(|p| p.1);
    let name = match last {
        Some(v) => format!("k-NN top-1 (last {v:.1}%)"),
        None => "k-NN top-1".to_string(),
    };
    let mut series = vec![Series::line(name, PALETTE[3], acc).with_marker(Marker::Circle)];
    if let Some(v) = before {
        series.push(Series::points(
            format!("before training ({:.1}%)", 100.0 * v),
            GREY,
            vec![(0.0, 100.0 * v)],
            Marker::Square,
        ));
    }
    if let Some(raw) = labels.knn_raw.filter(|v| v.is_finite()) {
        series.push(Series::reference(
            format!("raw pixels {:.1}%", 100.0 * raw),
            PALETTE[2],
            100.0 * raw,
        ));
    }
    let knn_chart = Chart {
        title: "k-NN accuracy".into(),
        x_label: "epoch".into(),
        y_label: "k-NN top-1 (%)".into(),
        series,
        integer_x: true,
    };
    (loss_chart, knn_chart)
}

/// A `w x h` picture with `title` (font scale 2) over `charts` side by side.
pub fn figure(w: u32, h: u32, title: &str, charts: &[Chart]) -> RgbImage {
    let mut img = RgbImage::from_pixel(w, h, PAPER);
    font::draw_text_centered(&mut img, i64::from(w) / 2, 10, title, 2, INK);
    let top = 10 + i64::from(font::text_height(2)) + 12;
    draw::fill_rect(&mut img, 16, top - 6, i64::from(w) - 32, 1, draw::GRID);
    let n = charts.len().max(1) as i64;
    let pw = i64::from(w) / n;
    for (i, c) in charts.iter().enumerate() {
        c.draw(&mut img, i as i64 * pw, top, pw, i64::from(h) - top, 1);
    }
    img
}

/// The whole training figure, [`FIGURE_SIZE`].
pub fn metrics_figure(
    all: &[EpochMetrics],
    knn_before: Option<f64>,
    labels: &MetricsLabels,
) -> RgbImage {
    let (loss, knn) = metrics_charts(all, knn_before, labels);
    let (w, h) = FIGURE_SIZE;
    figure(w, h, &labels.title, &[loss, knn])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(e: usize, loss: f64, knn: Option<f64>) -> EpochMetrics {
        EpochMetrics {
            epoch: e,
            loss,
            lr: 1e-3,
            knn_top1: knn,
            images_per_s: 1.0,
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn figures_of_odd_runs_draw() {
        let runs = [
            vec![],
            vec![epoch(1, f64::NAN, None)],
            vec![epoch(1, 2.0, Some(0.5))],
            vec![epoch(1, 2.0, Some(0.5)), epoch(2, 2.0, Some(0.5))],
            vec![epoch(1, 9.0, None), epoch(2, f64::INFINITY, Some(0.1))],
        ];
        for run in &runs {
            for before in [None, Some(0.25), Some(f64::NAN)] {
                let labels = MetricsLabels {
                    knn_raw: Some(0.832),
                    ..MetricsLabels::dino()
                };
                let img = metrics_figure(run, before, &labels);
                assert_eq!(img.dimensions(), FIGURE_SIZE);
            }
        }
    }

    #[test]
    fn the_knn_panel_starts_at_epoch_zero_before_training() {
        let run = [epoch(1, 3.0, Some(0.4)), epoch(2, 2.5, Some(0.45))];
        let (_, knn) = metrics_charts(&run, Some(0.3), &MetricsLabels::default());
        match &knn.series[0].kind {
            crate::run::plot::SeriesKind::Line { points, marker, .. } => {
                assert_eq!(points[0], (0.0, 30.0));
                assert_eq!(points.len(), 3);
                assert!(marker.is_some());
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(knn.series[0].label, "k-NN top-1 (last 45.0%)");
        assert_eq!(knn.series[1].label, "before training (30.0%)");
    }

    /// Writes the sample figure when `TESSERA_PLOT_SAMPLE` names a file (to look at it).
    #[test]
    fn sample_figure() {
        let Some(path) = std::env::var_os("TESSERA_PLOT_SAMPLE") else {
            return;
        };
        let run: Vec<EpochMetrics> = (1..=12)
            .map(|e| {
                let x = e as f64;
                let knn = (e % 3 == 0 || e == 12).then(|| 0.2 + 0.5 * (1.0 - (-x / 5.0).exp()));
                epoch(e, 9.5 * (-x / 4.0).exp() + 1.2, knn)
            })
            .collect();
        let labels = MetricsLabels {
            knn_raw: Some(0.352),
            ..MetricsLabels::dino()
        };
        metrics_figure(&run, Some(0.18), &labels)
            .save(path)
            .unwrap();
    }
}
