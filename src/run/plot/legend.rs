//! The legend box of a [`Chart`](super::Chart): a line sample (solid or dashed, with the
//! series' marker) and the label of each named series, placed in the corner of the plot
//! area where it hides the fewest data pixels.

use super::chart::{Series, SeriesKind, MARKER_R};
use super::draw::{self, GREY, INK, PAPER};
use super::font::{self, ADVANCE, LINE};
use image::RgbImage;

/// Length of the line sample in the legend.
const SAMPLE: i64 = 24;

/// Draws the legend of `series` (those with a label) inside the plot area `(l, t, r, b)`,
/// in the corner that covers the fewest of the pixel positions `samples`.
pub(super) fn draw_legend(
    img: &mut RgbImage,
    series: &[Series],
    samples: &[(f64, f64)],
    (l, t, r, b): (i64, i64, i64, i64),
    scale: u32,
) {
    let s = i64::from(scale.max(1));
    let th = i64::from(font::text_height(scale));
    let named: Vec<&Series> = series.iter().filter(|s| !s.label.is_empty()).collect();
    if named.is_empty() {
        return;
    }
    let lh = i64::from(LINE) * s + 2;
    let tw = named
        .iter()
        .map(|s| i64::from(font::text_width(&s.label, scale)))
        .max()
        .unwrap_or(0);
    let (bw, bh) = (
        6 + SAMPLE + i64::from(ADVANCE) * s + tw + 6,
        6 + lh * named.len() as i64,
    );
    let inset = 6;
    let corners = [
        (r - inset - bw, t + inset),
        (l + inset, t + inset),
        (r - inset - bw, b - inset - bh),
        (l + inset, b - inset - bh),
    ];
    let covered = |&(cx, cy): &(i64, i64)| {
        samples
            .iter()
            .filter(|(x, y)| {
                *x >= (cx - 4) as f64
                    && *x <= (cx + bw + 4) as f64
                    && *y >= (cy - 4) as f64
                    && *y <= (cy + bh + 4) as f64
            })
            .count()
    };
    let (bx, by) = corners
        .iter()
        .copied()
        .min_by_key(covered)
        .unwrap_or(corners[0]);
    draw::fill_rect(img, bx, by, bw, bh, PAPER);
    draw::outline_rect(img, bx, by, bw, bh, GREY);
    for (i, series) in named.iter().enumerate() {
        let cy = by + 4 + lh * i as i64 + lh / 2;
        let (sx0, sx1) = ((bx + 6) as f64, (bx + 6 + SAMPLE) as f64);
        let mid = (sx0 + sx1) / 2.0;
        match &series.kind {
            SeriesKind::Reference { .. } => draw::line(
                img,
                (sx0, cy as f64),
                (sx1, cy as f64),
                2,
                Some((5, 3)),
                series.color,
            ),
            SeriesKind::Line { marker, dashed, .. } => {
                let dash = dashed.then_some((5, 3));
                draw::line(
                    img,
                    (sx0, cy as f64),
                    (sx1, cy as f64),
                    2,
                    dash,
                    series.color,
                );
                if let Some(m) = marker {
                    draw::marker(img, mid, cy as f64, MARKER_R, *m, series.color);
                }
            }
            SeriesKind::Points { marker, .. } => {
                draw::marker(img, mid, cy as f64, MARKER_R + 1, *marker, series.color)
            }
        }
        let tx = bx + 6 + SAMPLE + i64::from(ADVANCE) * s;
        font::draw_text(img, tx, cy - th / 2, &series.label, scale, INK);
    }
}
