//! A line chart in one panel of a picture: a frame, a title, x and y axis labels, "nice" tick
//! values (1, 2 or 5 times a power of ten) with their labels and light grid lines, any number
//! of series, each with a colour, a legend label, a line and/or markers, and horizontal
//! reference lines (e.g. "raw pixels 83.2%"), and a legend box in the corner where it hides
//! the fewest points.
//!
//! Non-finite values are missing points: they are skipped (the line joins the finite points
//! around them). A chart without any finite value says "no data"; one point or values that
//! are all equal get an axis range padded around them.

use super::draw::{self, Marker, Rgb, GREY, GRID, INK, PAPER};
use super::font;
use super::legend;
use super::ticks::{nice_step, padded_range, tick_label, ticks_in};
use image::RgbImage;

/// How a series is drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesKind {
    /// `(x, y)` points joined in order by a solid (or dashed) line, with a marker on each
    /// point when `marker` is set.
    Line {
        points: Vec<(f64, f64)>,
        marker: Option<Marker>,
        dashed: bool,
    },
    /// `(x, y)` points drawn as markers only.
    Points {
        points: Vec<(f64, f64)>,
        marker: Marker,
    },
    /// A dashed horizontal line at `y` across the whole panel: a baseline or target.
    Reference { y: f64 },
}

/// One series: what it draws, its colour and its name in the legend.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub color: Rgb,
    pub kind: SeriesKind,
}

impl Series {
    /// A solid line through `points`, without markers.
    pub fn line(label: impl Into<String>, color: Rgb, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            color,
            kind: SeriesKind::Line {
                points,
                marker: None,
                dashed: false,
            },
        }
    }

    /// Markers only.
    pub fn points(
        label: impl Into<String>,
        color: Rgb,
        points: Vec<(f64, f64)>,
        marker: Marker,
    ) -> Self {
        Series {
            label: label.into(),
            color,
            kind: SeriesKind::Points { points, marker },
        }
    }

    /// A horizontal reference line at `y`.
    pub fn reference(label: impl Into<String>, color: Rgb, y: f64) -> Self {
        Series {
            label: label.into(),
            color,
            kind: SeriesKind::Reference { y },
        }
    }

    /// This line with `m` on every point (no effect on other kinds).
    pub fn with_marker(mut self, m: Marker) -> Self {
        if let SeriesKind::Line { marker, .. } = &mut self.kind {
            *marker = Some(m);
        }
        self
    }

    /// This line dashed (no effect on other kinds).
    pub fn dashed(mut self) -> Self {
        if let SeriesKind::Line { dashed, .. } = &mut self.kind {
            *dashed = true;
        }
        self
    }

    /// The finite points of the series (a reference line has none).
    fn finite_points(&self) -> Vec<(f64, f64)> {
        match &self.kind {
            SeriesKind::Line { points, .. } | SeriesKind::Points { points, .. } => points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect(),
            SeriesKind::Reference { .. } => Vec::new(),
        }
    }
}

/// A chart: titles, axis labels (with units) and series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Ticks of the x axis on whole numbers only (epochs, steps).
    pub integer_x: bool,
}

/// Dash pattern of reference lines and dashed series: 6 pixels on, 4 off.
const DASH: (u32, u32) = (6, 4);
/// Marker radius in pixels.
pub(super) const MARKER_R: i64 = 3;

/// The range of the finite values of `v`, or `None`.
fn range(v: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    v.filter(|x| x.is_finite()).fold(None, |r, x| match r {
        None => Some((x, x)),
        Some((a, b)) => Some((a.min(x), b.max(x))),
    })
}

impl Chart {
    /// Draws the chart into the `w x h` panel whose top-left corner is `(x0, y0)` of `img`,
    /// with text at `scale` (titles at twice it).
    pub fn draw(&self, img: &mut RgbImage, x0: i64, y0: i64, w: i64, h: i64, scale: u32) {
        let s = i64::from(scale.max(1));
        let pts: Vec<Vec<(f64, f64)>> = self.series.iter().map(Series::finite_points).collect();
        let xr = range(pts.iter().flatten().map(|p| p.0));
        let refs = self.series.iter().filter_map(|s| match s.kind {
            SeriesKind::Reference { y } => Some(y),
            _ => None,
        });
        let yr = range(pts.iter().flatten().map(|p| p.1).chain(refs));
        let empty = yr.is_none();
        let (xlo, xhi) = xr.map_or((0.0, 1.0), |(a, b)| padded_range(a, b, self.integer_x));
        let (ylo, yhi) = yr.map_or((0.0, 1.0), |(a, b)| padded_range(a, b, false));
        let xstep = nice_step(xhi - xlo, 6, self.integer_x);
        let ystep = nice_step(yhi - ylo, 5, false);
        let xt = ticks_in(xlo, xhi, xstep);
        let yt = ticks_in(ylo, yhi, ystep);
        let ylabels: Vec<String> = yt.iter().map(|&v| tick_label(v, ystep)).collect();
        let label_w = ylabels
            .iter()
            .map(|l| i64::from(font::text_width(l, scale)))
            .max()
            .unwrap_or(0);

        // The plot area inside the panel.
        let th = i64::from(font::text_height(scale));
        let title_h = if self.title.is_empty() {
            4 * s
        } else {
            2 * th + 6 * s
        };
        let l = x0 + 4 * s + th + 4 * s + label_w + 6 * s;
        let r = x0 + w - 8 * s;
        let t = y0 + title_h;
        let b = y0 + h - (6 * s + th + 6 * s + th + 4 * s);
        if r - l < 10 || b - t < 10 {
            return;
        }
        let px = |x: f64| l as f64 + (r - l) as f64 * (x - xlo) / (xhi - xlo);
        let py = |y: f64| b as f64 - (b - t) as f64 * (y - ylo) / (yhi - ylo);

        draw::fill_rect(img, l, t, r - l + 1, b - t + 1, PAPER);
        for &v in &xt {
            let x = px(v).round() as i64;
            draw::fill_rect(img, x, t, 1, b - t, GRID);
            draw::fill_rect(img, x, b, 1, 4 * s / 2 + 2, INK);
            let lab = tick_label(v, xstep);
            font::draw_text_centered(img, x, b + 4 * s, &lab, scale, INK);
        }
        for (&v, lab) in yt.iter().zip(&ylabels) {
            let y = py(v).round() as i64;
            draw::fill_rect(img, l, y, r - l, 1, GRID);
            draw::fill_rect(img, l - 2 * s - 2, y, 2 * s + 2, 1, INK);
            let lw = i64::from(font::text_width(lab, scale));
            font::draw_text(img, l - 4 * s - lw - 2, y - th / 2, lab, scale, INK);
        }

        for (series, p) in self.series.iter().zip(&pts) {
            let c = series.color;
            match &series.kind {
                SeriesKind::Reference { y } => {
                    let yy = py(*y);
                    draw::line(img, (l as f64, yy), (r as f64, yy), 2, Some(DASH), c);
                }
                SeriesKind::Line { marker, dashed, .. } => {
                    let dash = dashed.then_some(DASH);
                    for pair in p.windows(2) {
                        let a = (px(pair[0].0), py(pair[0].1));
                        let e = (px(pair[1].0), py(pair[1].1));
                        draw::line(img, a, e, 2, dash, c);
                    }
                    if let Some(m) = marker {
                        for &(x, y) in p {
                            draw::marker(img, px(x), py(y), MARKER_R, *m, c);
                        }
                    }
                }
                SeriesKind::Points { marker, .. } => {
                    for &(x, y) in p {
                        draw::marker(img, px(x), py(y), MARKER_R + 1, *marker, c);
                    }
                }
            }
        }
        draw::outline_rect(img, l, t, r - l + 1, b - t + 1, INK);
        if empty {
            font::draw_text_centered(
                img,
                (l + r) / 2,
                (t + b) / 2 - th / 2,
                "no data",
                scale,
                GREY,
            );
        }

        // Titles and axis labels.
        if !self.title.is_empty() {
            font::draw_text_centered(img, (l + r) / 2, y0 + 2 * s, &self.title, scale * 2, INK);
        }
        let xl_y = b + 4 * s + th + 6 * s;
        font::draw_text_centered(img, (l + r) / 2, xl_y, &self.x_label, scale, INK);
        font::draw_text_vertical(img, x0 + 4 * s, (t + b) / 2, &self.y_label, scale, INK);

        // The legend, in the corner over the fewest data pixels.
        let mut samples: Vec<(f64, f64)> = Vec::new();
        for (series, p) in self.series.iter().zip(&pts) {
            if let SeriesKind::Reference { y } = series.kind {
                let yy = py(y);
                samples.extend((0..=20).map(|k| (l as f64 + (r - l) as f64 * k as f64 / 20.0, yy)));
            }
            // A data point weighs as much as a whole reference line: hiding a measured
            // value is worse than hiding part of a dashed line.
            for &(x, y) in p {
                samples.extend(core::iter::repeat_n((px(x), py(y)), 32));
            }
            for pair in p.windows(2) {
                let (a, e) = (
                    (px(pair[0].0), py(pair[0].1)),
                    (px(pair[1].0), py(pair[1].1)),
                );
                samples.extend((1..8).map(|k| {
                    let f = k as f64 / 8.0;
                    (a.0 + (e.0 - a.0) * f, a.1 + (e.1 - a.1) * f)
                }));
            }
        }
        legend::draw_legend(img, &self.series, &samples, (l, t, r, b), scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::plot::draw::PALETTE;

    fn drawn(chart: &Chart) -> RgbImage {
        let mut img = RgbImage::from_pixel(420, 300, PAPER);
        chart.draw(&mut img, 0, 0, 420, 300, 1);
        img
    }

    #[test]
    fn odd_data_draws_without_panicking() {
        let nan = f64::NAN;
        let cases: Vec<Vec<(f64, f64)>> = vec![
            vec![],
            vec![(nan, nan)],
            vec![(1.0, 5.0)],
            vec![(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)],
            vec![(0.0, nan), (1.0, 0.5), (2.0, f64::INFINITY), (3.0, 0.7)],
            vec![(0.0, -1e300), (1.0, 1e300)],
            vec![(0.0, 1e-12), (1.0, 2e-12)],
        ];
        for pts in cases {
            let chart = Chart {
                title: "t".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                integer_x: true,
                series: vec![
                    Series::line("a", PALETTE[0], pts.clone()).with_marker(Marker::Circle),
                    Series::points("b", PALETTE[1], pts.clone(), Marker::Square),
                ],
            };
            let img = drawn(&chart);
            assert!(img.pixels().any(|p| *p == INK), "{pts:?}");
        }
        // A panel too small for a plot area draws nothing, and no panic off the image.
        let mut img = RgbImage::from_pixel(30, 30, PAPER);
        Chart::default().draw(&mut img, -100, -100, 50, 50, 2);
        Chart::default().draw(&mut img, 10, 10, 400, 400, 1);
    }

    #[test]
    fn series_show_in_their_colours_with_a_legend() {
        let chart = Chart {
            title: "k-NN".into(),
            x_label: "epoch".into(),
            y_label: "k-NN top-1 (%)".into(),
            integer_x: true,
            series: vec![
                Series::line("student", PALETTE[0], vec![(0.0, 10.0), (1.0, 20.0)])
                    .with_marker(Marker::Circle),
                Series::line("teacher", PALETTE[1], vec![(0.0, 12.0), (1.0, 25.0)]).dashed(),
                Series::reference("raw pixels 83.2%", PALETTE[2], 15.0),
            ],
        };
        let img = drawn(&chart);
        for c in &PALETTE[..3] {
            let n = img.pixels().filter(|p| *p == c).count();
            assert!(n > 30, "{c:?}: {n} pixels");
        }
    }
}
