//! "Nice" axis ticks: spacings of 1, 2 or 5 times a power of ten, the ticks inside a range,
//! their labels with just the decimals the spacing needs, and padded axis ranges (also for
//! a single value or values that are all equal).

/// The tick spacing for about `target` intervals over `span`: 1, 2 or 5 times a power of
/// ten (at least 1 when `integer`). A span that is zero or not finite gives 1.
pub fn nice_step(span: f64, target: usize, integer: bool) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    let step = m * mag;
    if integer {
        step.max(1.0).round()
    } else {
        step
    }
}

/// The multiples of `step` in `[lo, hi]` (at most 1000 of them).
pub fn ticks_in(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && step > 0.0 && hi >= lo) {
        return Vec::new();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last.min(first.saturating_add(999)))
        .map(|k| k as f64 * step)
        .collect()
}

/// `v` printed with the decimals that `step` needs (scientific notation for very large or
/// very small values), without a minus sign on zero.
pub fn tick_label(v: f64, step: f64) -> String {
    let a = v.abs().max(step.abs());
    let d = if step > 0.0 && step < 1.0 {
        (-step.log10().floor()) as usize
    } else {
        0
    };
    let s = if a >= 1e6 || d > 6 {
        let digits = (a.log10().floor() - step.log10().floor()).clamp(1.0, 12.0) as usize;
        format!("{v:.digits$e}")
    } else {
        format!("{v:.d$}")
    };
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

/// The axis range for values in `[lo, hi]`: padded by 5% of the span on each side, or
/// around a single value by 10% of it (1 when it is zero; 1 for whole-number axes).
pub fn padded_range(lo: f64, hi: f64, integer: bool) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi > lo {
        let p = 0.05 * (hi - lo);
        (lo - p, hi + p)
    } else {
        let p = if integer || lo == 0.0 {
            1.0
        } else {
            0.1 * lo.abs()
        };
        (lo - p, hi + p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(10.0, 5, false), 2.0);
        assert_eq!(nice_step(1.0, 5, false), 0.2);
        assert_eq!(nice_step(0.3, 5, false), 0.05);
        assert_eq!(nice_step(0.37, 5, false), 0.1);
        assert_eq!(nice_step(700.0, 6, false), 100.0);
        assert_eq!(nice_step(3.0, 6, true), 1.0);
        assert_eq!(nice_step(0.0, 5, false), 1.0);
        assert_eq!(nice_step(f64::NAN, 5, false), 1.0);
        assert_eq!(ticks_in(-0.3, 10.3, 2.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert!(ticks_in(f64::NAN, 1.0, 0.1).is_empty());
        assert_eq!(ticks_in(0.0, 1e300, 1.0).len(), 1000);
    }

    #[test]
    fn tick_labels_have_the_decimals_the_step_needs() {
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(-0.0, 0.5), "0.0");
        assert_eq!(tick_label(-1e-17, 0.05), "0.00");
        assert_eq!(tick_label(20.0, 5.0), "20");
        assert_eq!(tick_label(2.5e7, 5e6), "2.5e7");
        assert_eq!(tick_label(1.25e-8, 5e-10), "1.25e-8");
        assert_eq!(tick_label(0.01235, 5e-5), "0.01235");
        assert_eq!(padded_range(3.0, 3.0, true), (2.0, 4.0));
        assert_eq!(padded_range(0.0, 0.0, false), (-1.0, 1.0));
        assert_eq!(padded_range(0.0, 10.0, false), (-0.5, 10.5));
    }
}
