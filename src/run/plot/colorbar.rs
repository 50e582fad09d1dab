//! The viridis colour map and a vertical colour bar with tick labels, so that a heat map says
//! which value each colour stands for.

use super::draw::{self, INK};
use super::font;
use super::ticks::{nice_step, tick_label, ticks_in};
use image::RgbImage;

/// Viridis, 5 stops, linearly interpolated; `t` in `[0, 1]` (clamped; NaN is the low end).
pub fn viridis(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f32;
    let mut c = [0u8; 3];
    for (k, v) in c.iter_mut().enumerate() {
        *v = (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f).round() as u8;
    }
    c
}

/// The labels of a colour bar from `lo` to `hi`: `(value, text)`, the nice ticks inside the
/// range, or both ends printed with 3 significant digits when fewer than two ticks fall
/// inside (a narrow range). One label when `lo == hi`.
pub fn bar_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    if !(lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    if hi <= lo {
        return vec![(lo, sig3(lo))];
    }
    let step = nice_step(hi - lo, 4, false);
    let t = ticks_in(lo, hi, step);
    if t.len() >= 2 {
        t.into_iter().map(|v| (v, tick_label(v, step))).collect()
    } else {
        vec![(lo, sig3(lo)), (hi, sig3(hi))]
    }
}

/// `v` with 3 significant digits.
fn sig3(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let e = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&e) {
        return format!("{v:.2e}");
    }
    let d = (2 - e).max(0) as usize;
    format!("{v:.d$}")
}

/// Draws a vertical colour bar `w x h` at `(x, y)` (low values at the bottom) with a tick and
/// a label for each of [`bar_ticks`] to its right (as many as fit one text line apart);
/// returns the width used by bar and labels.
#[allow(clippy::too_many_arguments)]
pub fn draw_colorbar(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    (lo, hi): (f64, f64),
    scale: u32,
    map: impl Fn(f32) -> [u8; 3],
) -> i64 {
    if h < 2 || w < 1 {
        return 0;
    }
    for row in 0..h {
        let t = 1.0 - row as f32 / (h - 1) as f32;
        draw::fill_rect(img, x, y + row, w, 1, image::Rgb(map(t)));
    }
    draw::outline_rect(img, x - 1, y - 1, w + 2, h + 2, INK);
    let s = i64::from(scale.max(1));
    let th = i64::from(font::text_height(scale));
    let mut used = w + 1;
    // Labels closer than a line of text to the previous one are left out (short bars).
    let mut last: Option<i64> = None;
    for (v, text) in bar_ticks(lo, hi) {
        let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        let ty = y + h - 1 - (f * (h - 1) as f64).round() as i64;
        if last.is_some_and(|l| (l - ty).abs() < th + 2) {
            continue;
        }
        last = Some(ty);
        draw::fill_rect(img, x + w, ty, 3 * s, 1, INK);
        font::draw_text(img, x + w + 4 * s, ty - th / 2, &text, scale, INK);
        used = used.max(w + 4 * s + i64::from(font::text_width(&text, scale)));
    }
    used
}

/// Width a colour bar of width `w` and its labels for `range` take at `scale`.
pub fn colorbar_width(w: i64, range: (f64, f64), scale: u32) -> i64 {
    let s = i64::from(scale.max(1));
    bar_ticks(range.0, range.1)
        .iter()
        .map(|(_, t)| w + 4 * s + i64::from(font::text_width(t, scale)))
        .fold(w + 1, i64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_wide_narrow_and_flat_ranges() {
        let t = bar_ticks(0.0, 1.0);
        assert_eq!(t.first().unwrap().1, "0.0");
        assert_eq!(t.last().unwrap().1, "1.0");
        for (lo, hi) in [(0.0123, 0.0125), (1.0, 1.0 + 1e-9), (0.004, 0.0051)] {
            let t = bar_ticks(lo, hi);
            assert!(t.len() >= 2, "{t:?}");
            let names: std::collections::HashSet<_> = t.iter().map(|x| &x.1).collect();
            assert_eq!(names.len(), t.len(), "{t:?}");
            assert!(t.iter().all(|x| x.0 >= lo && x.0 <= hi), "{t:?}");
        }
        assert_eq!(bar_ticks(0.5, 0.5), [(0.5, "0.500".to_string())]);
        assert!(bar_ticks(f64::NAN, 1.0).is_empty());
    }

    #[test]
    fn bar_draws_inside_and_off_the_image() {
        let mut img = RgbImage::from_pixel(60, 60, draw::PAPER);
        let used = draw_colorbar(&mut img, 5, 5, 10, 50, (0.0, 0.02), 1, viridis);
        assert_eq!(used, colorbar_width(10, (0.0, 0.02), 1));
        assert_eq!(img.get_pixel(8, 5).0, viridis(1.0));
        assert_eq!(img.get_pixel(8, 54).0, viridis(0.0));
        draw_colorbar(&mut img, 50, -20, 30, 100, (1.0, 1.0), 2, viridis);
        // A short bar keeps its labels a line apart: no more than fit.
        let mut short = RgbImage::from_pixel(80, 20, draw::PAPER);
        draw_colorbar(&mut short, 2, 2, 6, 16, (0.0, 1.0), 1, viridis);
        let rows_with_text = (0..20)
            .filter(|&y| (20..80).any(|x| *short.get_pixel(x, y) == INK))
            .count();
        assert!(rows_with_text <= 2 * 7 + 2, "{rows_with_text}");
        assert_eq!(viridis(f32::NAN), viridis(0.0));
    }
}
