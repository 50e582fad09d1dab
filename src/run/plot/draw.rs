//! Drawing primitives on an [`RgbImage`] with signed coordinates: pixels, filled and outlined
//! rectangles, thick solid or dashed lines and point markers. Everything off the image is
//! clipped, so callers never check bounds and a stray coordinate is never a panic.

use image::RgbImage;

/// A colour.
pub type Rgb = image::Rgb<u8>;

/// Black, for text and axes.
pub const INK: Rgb = image::Rgb([25, 25, 25]);
/// White, the background.
pub const PAPER: Rgb = image::Rgb([255, 255, 255]);
/// Light grey, for grid lines.
pub const GRID: Rgb = image::Rgb([225, 225, 225]);
/// Mid grey, for notes and reference lines.
pub const GREY: Rgb = image::Rgb([110, 110, 110]);

/// Series colours that stay apart from each other and from the grey of the grid
/// (the "tab10" hues: blue, orange, green, red, purple, brown).
pub const PALETTE: [Rgb; 6] = [
    image::Rgb([31, 119, 180]),
    image::Rgb([255, 127, 14]),
    image::Rgb([44, 160, 44]),
    image::Rgb([214, 39, 40]),
    image::Rgb([148, 103, 189]),
    image::Rgb([140, 86, 75]),
];

/// Sets the pixel `(x, y)` if it is on the image.
pub fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb) {
    if x >= 0 && y >= 0 && x < i64::from(img.width()) && y < i64::from(img.height()) {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// Fills the `w x h` rectangle whose top-left corner is `(x, y)`.
pub fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
    let (x0, y0) = (x.max(0), y.max(0));
    let x1 = x.saturating_add(w).min(i64::from(img.width()));
    let y1 = y.saturating_add(h).min(i64::from(img.height()));
    for yy in y0..y1 {
        for xx in x0..x1 {
            img.put_pixel(xx as u32, yy as u32, c);
        }
    }
}

/// The 1-pixel outline of the `w x h` rectangle at `(x, y)`.
pub fn outline_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
    fill_rect(img, x, y, w, 1, c);
    fill_rect(img, x, y + h - 1, w, 1, c);
    fill_rect(img, x, y, 1, h, c);
    fill_rect(img, x + w - 1, y, 1, h, c);
}

/// A line from `a` to `b`, `width` pixels thick; with `dash = Some((on, off))` drawn in
/// dashes of `on` pixels separated by `off`. Non-finite ends draw nothing.
pub fn line(
    img: &mut RgbImage,
    a: (f64, f64),
    b: (f64, f64),
    width: u32,
    dash: Option<(u32, u32)>,
    c: Rgb,
) {
    if ![a.0, a.1, b.0, b.1].iter().all(|v| v.is_finite()) {
        return;
    }
    // Clamp far-away ends so that the step count stays bounded.
    let lim = 4.0 * f64::from(img.width().max(img.height())) + 16.0;
    let cl = |v: f64| v.clamp(-lim, lim);
    let (a, b) = ((cl(a.0), cl(a.1)), (cl(b.0), cl(b.1)));
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    let half = i64::from(width.max(1) - 1) / 2;
    let extra = i64::from(width.max(1) - 1) - half;
    for s in 0..=steps {
        if let Some((on, off)) = dash {
            let period = (on + off).max(1) as usize;
            if s % period >= on as usize {
                continue;
            }
        }
        let f = s as f64 / steps as f64;
        let (x, y) = (
            (a.0 + (b.0 - a.0) * f).round() as i64,
            (a.1 + (b.1 - a.1) * f).round() as i64,
        );
        fill_rect(
            img,
            x - half,
            y - half,
            1 + half + extra,
            1 + half + extra,
            c,
        );
    }
}

/// The shape of a point marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// A filled disc.
    Circle,
    /// A filled square.
    Square,
    /// A filled diamond.
    Diamond,
}

/// Draws `marker` of radius `r` centred on `(x, y)`, with a white rim one pixel wide so that
/// markers stay visible over lines of the same colour.
pub fn marker(img: &mut RgbImage, x: f64, y: f64, r: i64, m: Marker, c: Rgb) {
    if !(x.is_finite() && y.is_finite()) {
        return;
    }
    let (cx, cy) = (x.round() as i64, y.round() as i64);
    let inside = |dx: i64, dy: i64, r: i64| match m {
        Marker::Circle => dx * dx + dy * dy <= r * r + r / 2,
        Marker::Square => dx.abs() <= r && dy.abs() <= r,
        Marker::Diamond => dx.abs() + dy.abs() <= r + r / 3,
    };
    let rr = r + 1;
    for dy in -rr - 1..=rr + 1 {
        for dx in -rr - 1..=rr + 1 {
            if inside(dx, dy, r) {
                put(img, cx + dx, cy + dy, c);
            } else if inside(dx, dy, rr) {
                put(img, cx + dx, cy + dy, PAPER);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_off_the_image_are_clipped() {
        let mut img = RgbImage::from_pixel(10, 10, PAPER);
        fill_rect(&mut img, -5, -5, i64::MAX, i64::MAX, INK);
        assert!(img.pixels().all(|p| *p == INK));
        line(&mut img, (-1e300, 3.0), (1e300, 3.0), 3, Some((2, 2)), GRID);
        line(&mut img, (f64::NAN, 0.0), (1.0, 1.0), 1, None, GRID);
        marker(&mut img, 100.0, -100.0, 4, Marker::Diamond, GRID);
        marker(&mut img, 0.0, 0.0, 3, Marker::Circle, PALETTE[0]);
        outline_rect(&mut img, -1, -1, 30, 30, GREY);
        assert_eq!(*img.get_pixel(0, 0), PALETTE[0]);
    }

    #[test]
    fn dashes_leave_gaps() {
        let mut img = RgbImage::from_pixel(40, 3, PAPER);
        line(&mut img, (0.0, 1.0), (39.0, 1.0), 1, Some((4, 4)), INK);
        let inked = (0..40).filter(|&x| *img.get_pixel(x, 1) == INK).count();
        assert_eq!(inked, 20);
    }
}
