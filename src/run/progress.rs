//! The training progress bar (`indicatif`) on stderr: steps done, loss, learning rate and
//! images per second; and [`Phase`], the progress of a phase without training statistics
//! (the k-NN evaluation's batches) that also polls for SIGINT/SIGTERM between its units.
//! When stderr is not a terminal (CI, `2> log`), one plain line per step is printed instead,
//! so logs and tests still see every step.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Progress through one epoch.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: usize,
    start: Instant,
    /// `None` when stderr is not a terminal.
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar for `total` steps.
    pub fn new(label: impl Into<String>, total: usize) -> Self {
        let label = label.into();
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:20.cyan/blue}] {pos}/{len} {msg} eta {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.clone());
            bar
        });
        Progress {
            label,
            total,
            start: Instant::now(),
            bar,
        }
    }

    /// Redraws after step `done` (1-based) with the current statistics.
    pub fn update(&self, done: usize, loss: f64, lr: f64, images_per_s: f64) {
        let stats = format!("loss {loss:.4} lr {lr:.2e} {images_per_s:.1} img/s");
        match &self.bar {
            Some(bar) => {
                bar.set_message(stats);
                bar.set_position(done as u64);
            }
            None => eprintln!(
                "{} {done}/{} {stats} {:.0}s",
                self.label,
                self.total,
                self.start.elapsed().as_secs_f64()
            ),
        }
    }

    /// Redraws after `done` (1-based) units of a phase without training statistics.
    pub fn tick(&self, done: usize) {
        match &self.bar {
            Some(bar) => bar.set_position(done as u64),
            None => eprintln!(
                "{} {done}/{} {:.0}s",
                self.label,
                self.total,
                self.start.elapsed().as_secs_f64()
            ),
        }
    }

    /// Leaves the finished bar on screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// A phase of `total` units (batches) that stops early on SIGINT/SIGTERM: each unit is
/// followed by [`Phase::advance`], which shows the progress and polls the signal flag.
#[derive(Debug)]
pub struct Phase {
    bar: Progress,
    done: usize,
}

impl Phase {
    /// A phase named `label` of `total` units.
    pub fn new(label: impl Into<String>, total: usize) -> Self {
        Phase {
            bar: Progress::new(label, total),
            done: 0,
        }
    }

    /// Marks one more unit done; `true` when a signal asks the program to stop.
    pub fn advance(&mut self) -> bool {
        self.done += 1;
        self.bar.tick(self.done);
        super::signal::test_pause("knn");
        super::signal::interrupted()
    }

    /// Leaves the finished bar on screen.
    pub fn finish(&self) {
        self.bar.finish();
    }
}
