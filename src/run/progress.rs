//! A one-line progress bar on stderr (redrawn with `\r`), showing loss, learning rate and
//! images per second. Plain lines are printed instead when stderr is not a terminal.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Progress through one epoch.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: usize,
    start: Instant,
    tty: bool,
}

impl Progress {
    /// A bar for `total` steps.
    pub fn new(label: impl Into<String>, total: usize) -> Self {
        Progress {
            label: label.into(),
            total,
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Redraws after step `done` (1-based) with the current statistics.
    pub fn update(&self, done: usize, loss: f64, lr: f64, images_per_s: f64) {
        let width = 24;
        let filled = (done * width)
            .checked_div(self.total)
            .unwrap_or(width)
            .min(width);
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
        let line = format!(
            "{} [{bar}] {done}/{} loss {loss:.4} lr {lr:.2e} {images_per_s:.1} img/s {:.0}s",
            self.label,
            self.total,
            self.start.elapsed().as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Ends the line.
    pub fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
