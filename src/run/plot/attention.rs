//! The attention-map figure of `examples/attention_maps.rs`: a title, notes and an optional
//! warning over a grid of labelled tiles: on the left the original photo above the input as
//! the model saw it, on the right one tile per head ("head 1", ...), each heat map with its
//! own colour bar and tick labels (the values of the map, smallest to largest), or in
//! threshold mode the photo with the patches outside the kept set dimmed.

use super::colorbar::{colorbar_width, draw_colorbar, viridis};
use super::draw::{self, INK, PAPER};
use super::font;
use image::RgbImage;

/// Margin around the figure, in pixels.
const MARGIN: i64 = 12;
/// Space between cells.
const GAP: i64 = 14;
/// Width of a colour bar.
const BAR_W: i64 = 12;
/// Dark red, for warnings.
pub const WARN: draw::Rgb = image::Rgb([190, 30, 30]);

/// Everything the figure shows. `photo`, `input` and the heat maps are square tiles of the
/// same side; head `h`'s map is `maps[h]`, `grid x grid` values in row-major order, each
/// patch `cell_px` pixels of a tile.
pub struct AttentionFigure<'a> {
    pub title: String,
    /// Lines of small print under the title (model, image, grid).
    pub notes: Vec<String>,
    /// Drawn in red under the title when set.
    pub warning: Option<String>,
    /// The photo at the tile size, and its caption.
    pub photo: &'a RgbImage,
    pub photo_label: String,
    /// The input as the model saw it, upscaled to the tile size, and its caption.
    pub input: &'a RgbImage,
    pub input_label: String,
    pub maps: &'a [&'a [f32]],
    /// The caption of each head's tile (`head 1`, ... where missing).
    pub head_labels: Vec<String>,
    pub grid: usize,
    pub cell_px: u32,
    /// Threshold mode: per head, the patches kept (the others are dimmed on the photo).
    pub masks: Option<&'a [Vec<bool>]>,
    /// A line under the grid saying what the colours mean.
    pub legend: String,
}

/// The captions of the head tiles: `head 1`, ...; with threshold `masks`, `head 1: k/n`
/// (`k` of the `n = grid x grid` patches kept).
pub fn head_labels(masks: Option<&[Vec<bool>]>, heads: usize, grid: usize) -> Vec<String> {
    (0..heads)
        .map(|h| match masks.and_then(|m| m.get(h)) {
            Some(m) => {
                let k = m.iter().filter(|&&k| k).count();
                format!("head {}: {k}/{}", h + 1, grid * grid)
            }
            None => format!("head {}", h + 1),
        })
        .collect()
}

/// The line under the grid that says what the colours (or, with `threshold`, the bright
/// patches) mean.
pub fn legend(threshold: Option<f32>) -> String {
    match threshold {
        None => "colours: attention probability of the CLS token on each patch (each head on \
                 its own scale: bar = its min..max)"
            .to_string(),
        Some(t) => format!(
            "head N: k/n = the fewest patches (k of n, bright) that hold {:.0}% of each \
             head's attention on the patches; the rest dimmed",
            100.0 * t
        ),
    }
}

/// Smallest and largest finite value of `map`.
fn min_max(map: &[f32]) -> (f64, f64) {
    let f = map.iter().copied().filter(|v| v.is_finite());
    let lo = f.clone().fold(f32::INFINITY, f32::min);
    let hi = f.fold(f32::NEG_INFINITY, f32::max);
    if lo > hi {
        (0.0, 0.0)
    } else {
        (f64::from(lo), f64::from(hi))
    }
}

impl AttentionFigure<'_> {
    /// Tiles per row of the head grid.
    pub const MAX_COLS: usize = 3;

    /// Draws the figure.
    pub fn draw(&self) -> RgbImage {
        let tile = i64::from(self.photo.width());
        let heads = self.maps.len();
        let cols = heads.clamp(1, Self::MAX_COLS) as i64;
        let rows = heads.div_ceil(cols as usize).max(1) as i64;
        let ls = if tile >= 96 { 2 } else { 1 };
        let cap_h = i64::from(font::text_height(ls)) + 8;
        let cell_h = cap_h + tile;
        let ranges: Vec<(f64, f64)> = self.maps.iter().map(|m| min_max(m)).collect();
        let bar = if self.masks.is_none() {
            8 + ranges
                .iter()
                .map(|&r| colorbar_width(BAR_W, r, 1))
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        let caption_w = |t: &str| i64::from(font::text_width(t, ls));
        let col0_w = tile
            .max(caption_w(&self.photo_label))
            .max(caption_w(&self.input_label));
        let labels: Vec<String> = (0..heads)
            .map(|h| {
                self.head_labels
                    .get(h)
                    .cloned()
                    .unwrap_or_else(|| format!("head {}", h + 1))
            })
            .collect();
        let head_w = labels
            .iter()
            .map(|l| caption_w(l))
            .fold(tile + bar, i64::max);
        let body_w = col0_w + 2 * GAP + cols * head_w + (cols - 1) * GAP;
        // Notes, warning and legend wrap to the width of the grid (at least 480 px).
        let width = body_w
            .max(i64::from(font::text_width(&self.title, 2)))
            .max(480);
        let wrap1 = |t: &str| font::wrap(t, 1, width as u32);
        let notes: Vec<String> = self.notes.iter().flat_map(|n| wrap1(n)).collect();
        let legend = wrap1(&self.legend);
        // The warning in large print, over as many lines as it takes.
        let warning = self
            .warning
            .as_ref()
            .map_or_else(Vec::new, |w| font::wrap(w, 2, width as u32));
        let line = |s: u32| i64::from(font::LINE * s) + 3;
        let mut head_h = line(2) + 6 + notes.len() as i64 * line(1);
        head_h += warning.len() as i64 * line(2) + 4 * i64::from(!warning.is_empty());
        let body_h = rows.max(2) * cell_h + (rows.max(2) - 1) * GAP;
        let height = MARGIN + head_h + 8 + body_h + 10 + legend.len() as i64 * line(1) + MARGIN;
        let width = width + 2 * MARGIN;
        let mut img = RgbImage::from_pixel(width as u32, height as u32, PAPER);

        // Header.
        let mut y = MARGIN;
        font::draw_text(&mut img, MARGIN, y, &self.title, 2, INK);
        y += line(2) + 6;
        for w in &warning {
            font::draw_text(&mut img, MARGIN, y, w, 2, WARN);
            y += line(2);
        }
        y += 4 * i64::from(!warning.is_empty());
        for n in &notes {
            font::draw_text(&mut img, MARGIN, y, n, 1, INK);
            y += line(1);
        }
        let top = y + 8;

        // The photo and the model's input.
        for (i, (pic, cap)) in [
            (self.photo, &self.photo_label),
            (self.input, &self.input_label),
        ]
        .into_iter()
        .enumerate()
        {
            let y0 = top + i as i64 * (cell_h + GAP);
            font::draw_text(&mut img, MARGIN, y0, cap, ls, INK);
            blit(&mut img, pic, MARGIN, y0 + cap_h);
        }

        // The heads.
        let x_heads = MARGIN + col0_w + 2 * GAP;
        for (h, map) in self.maps.iter().enumerate() {
            let (c, r) = ((h as i64) % cols, (h as i64) / cols);
            let (x0, y0) = (x_heads + c * (head_w + GAP), top + r * (cell_h + GAP));
            font::draw_text(&mut img, x0, y0, &labels[h], ls, INK);
            let ty = y0 + cap_h;
            let (lo, hi) = ranges[h];
            let cell = self.cell_px.max(1) as usize;
            for yy in 0..tile as usize {
                for xx in 0..tile as usize {
                    let k = (yy / cell) * self.grid + xx / cell;
                    let v = map.get(k).copied().unwrap_or(f32::NAN);
                    let rgb = match self.masks.and_then(|m| m.get(h)) {
                        None if hi > lo => viridis(((f64::from(v) - lo) / (hi - lo)) as f32),
                        None => viridis(0.0),
                        Some(m) => {
                            let p = self.photo.get_pixel(xx as u32, yy as u32).0;
                            if m.get(k).copied().unwrap_or(false) {
                                p
                            } else {
                                p.map(|c| (f32::from(c) * 0.2) as u8)
                            }
                        }
                    };
                    draw::put(&mut img, x0 + xx as i64, ty + yy as i64, image::Rgb(rgb));
                }
            }
            if self.masks.is_none() {
                draw_colorbar(
                    &mut img,
                    x0 + tile + 8,
                    ty,
                    BAR_W,
                    tile,
                    (lo, hi),
                    1,
                    viridis,
                );
            }
        }
        let fy = top + body_h + 10;
        for (i, t) in legend.iter().enumerate() {
            font::draw_text(&mut img, MARGIN, fy + i as i64 * line(1), t, 1, draw::GREY);
        }
        img
    }
}

/// Copies `src` onto `dst` with its top-left corner at `(x, y)` (clipped).
fn blit(dst: &mut RgbImage, src: &RgbImage, x: i64, y: i64) {
    for (sx, sy, p) in src.enumerate_pixels() {
        draw::put(dst, x + i64::from(sx), y + i64::from(sy), *p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure<'a>(
        tile: u32,
        maps: &'a [&'a [f32]],
        masks: Option<&'a [Vec<bool>]>,
        pics: &'a RgbImage,
    ) -> AttentionFigure<'a> {
        AttentionFigure {
            title: "CLS attention".into(),
            notes: vec!["a note".into()],
            warning: Some("patch grid 2x2: too coarse for the maps to show much".into()),
            photo: pics,
            photo_label: "photo".into(),
            input: pics,
            input_label: "model input".into(),
            maps,
            head_labels: vec!["first head".into()],
            grid: 2,
            cell_px: tile / 2,
            masks,
            legend: "colours: attention probability".into(),
        }
    }

    #[test]
    fn figures_draw_heads_bars_and_odd_maps() {
        let pics = RgbImage::from_pixel(8, 8, image::Rgb([200, 100, 50]));
        let flat = [0.25f32; 4];
        let odd = [f32::NAN, 0.5, f32::INFINITY, 0.1];
        let short = [0.3f32];
        let maps: [&[f32]; 4] = [&[0.1, 0.2, 0.3, 0.4], &flat, &odd, &short];
        let img = figure(8, &maps, None, &pics).draw();
        // The top-right patch of head 1 is the second-smallest value.
        assert!(img.width() > 4 * 8 && img.height() > 2 * 8);
        let masks = vec![vec![true, false, true, false]; 4];
        let img = figure(8, &maps, Some(&masks), &pics).draw();
        assert!(img.pixels().any(|p| p.0 == [40, 20, 10]), "dimmed patches");
        let none: [&[f32]; 0] = [];
        figure(8, &none, None, &pics).draw();
    }
}
