//! Pictures people can read: a small plotting kit for the examples' figures, drawn straight
//! into an [`image::RgbImage`] without any font or plotting crate.
//!
//! - [`font`]: a 5x7 bitmap font for printable ASCII, drawn at an integer scale, also turned
//!   a quarter turn for y-axis labels;
//! - [`draw`]: clipped pixels, rectangles, thick solid or dashed lines, markers, and the
//!   colours the figures share;
//! - [`chart`]: a line chart panel (title, axis labels with units, nice ticks with labels,
//!   grid, several series with colours, markers and dashed horizontal reference lines, and a
//!   legend);
//! - [`ticks`]: nice tick values and their labels;
//! - [`colorbar`]: the viridis map and a colour bar with tick labels for heat maps;
//! - [`attention`]: the figure of `attention_maps` (photo, model input, one labelled heat map
//!   per head with its colour bar, warnings);
//! - [`training`]: the figure of a training run's `metrics.png` (loss and k-NN accuracy per
//!   epoch).
//!
//! Why by hand: the figures need titles, numbers and legends to be read without the code at
//! hand, and a few hundred lines here are cheaper than a plotting stack in the dependency
//! tree. Everything clips at the image edges, so odd data or long labels never panic.

pub mod attention;
pub mod chart;
pub mod colorbar;
pub mod draw;
pub mod font;
mod legend;
pub mod ticks;
pub mod training;

pub use chart::{Chart, Series, SeriesKind};
pub use draw::{Marker, Rgb};
pub use training::{metrics_figure, MetricsLabels};
