//! `make bench`: Postern measured beside its anchors (Postfix, smtp-sink, the message size) on
//! the machine at hand. Pairs run back to back (A B A B ...), medians are reported, and each
//! ratio is the median of the per-repetition ratios, so slow drift of a noisy machine cancels.
//!
//! Only public tools take part: smtp-source and smtp-sink (from Postfix), a private Postfix
//! (the harness's [`postern_tests::harness::PostfixQueue`]), and /proc.

pub mod backup;
pub mod control;
pub mod machine;
pub mod outbound;
pub mod procfs;
pub mod report;
pub mod rows;
pub mod scratch_fs;
pub mod sinks;

/// What a row aims at.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// Postern / anchor at least this (throughput).
    RatioAtLeast(f64),
    /// Postern / anchor at most this (time).
    RatioAtMost(f64),
    /// Postern's own value at most this, in the row's unit.
    ValueAtMost(f64),
    /// Nothing to aim at (context only).
    None,
}

/// One line of the table plus its raw samples.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub metric: String,
    pub unit: String,
    pub postern: Option<f64>,
    pub anchor_name: String,
    pub anchor: Option<f64>,
    /// Median of the per-repetition ratios Postern / anchor.
    pub ratio: Option<f64>,
    pub goal: Goal,
    /// Set when the row could not be measured: the reason.
    pub not_measured: Option<String>,
    /// Raw samples and remarks, one line each.
    pub samples: Vec<String>,
}

impl Row {
    pub fn new(id: &str, metric: &str, unit: &str, anchor_name: &str, goal: Goal) -> Row {
        Row {
            id: id.into(),
            metric: metric.into(),
            unit: unit.into(),
            postern: None,
            anchor_name: anchor_name.into(),
            anchor: None,
            ratio: None,
            goal,
            not_measured: None,
            samples: Vec::new(),
        }
    }

    pub fn not_measured(mut self, why: impl Into<String>) -> Row {
        self.not_measured = Some(why.into());
        self
    }

    /// Fills the medians and the ratio from paired samples (`anchor` may be empty).
    pub fn with_samples(mut self, postern: &[f64], anchor: &[f64]) -> Row {
        self.postern = median(postern);
        self.anchor = median(anchor);
        let ratios: Vec<f64> = postern
            .iter()
            .zip(anchor)
            .filter(|(_, a)| **a != 0.0)
            .map(|(p, a)| p / a)
            .collect();
        self.ratio = median(&ratios);
        self.samples
            .push(format!("Postern ({}): {}", self.unit, list(postern)));
        if !anchor.is_empty() {
            self.samples.push(format!(
                "{} ({}): {}",
                self.anchor_name,
                self.unit,
                list(anchor)
            ));
            self.samples.push(if ratios.is_empty() {
                format!("no ratio: {} measured 0", self.anchor_name)
            } else {
                format!("ratio per repetition: {}", list(&ratios))
            });
        }
        self
    }

    pub fn note(&mut self, line: impl Into<String>) {
        self.samples.push(line.into());
    }

    /// `Some(true)` when the goal is met, `None` when there is nothing to judge.
    pub fn met(&self) -> Option<bool> {
        if self.not_measured.is_some() {
            return None;
        }
        match self.goal {
            Goal::RatioAtLeast(g) => self.ratio.map(|r| r >= g),
            Goal::RatioAtMost(g) => self.ratio.map(|r| r <= g),
            Goal::ValueAtMost(g) => self.postern.map(|v| v <= g),
            Goal::None => None,
        }
    }

    pub fn goal_text(&self) -> String {
        match self.goal {
            Goal::RatioAtLeast(g) => format!("ratio ≥ {}", fmt_num(g)),
            Goal::RatioAtMost(g) => format!("ratio ≤ {}", fmt_num(g)),
            Goal::ValueAtMost(g) => format!("≤ {} {}", fmt_num(g), self.unit),
            Goal::None => "—".into(),
        }
    }

    /// How far off the goal is, in words (for the closing notes).
    pub fn miss_text(&self) -> Option<String> {
        if self.met() != Some(false) {
            return None;
        }
        let text = match self.goal {
            Goal::RatioAtLeast(g) => {
                let r = self.ratio?;
                format!(
                    "ratio {r:.3} instead of ≥ {}: {:.0} % short (Postern would need {} {})",
                    fmt_num(g),
                    (1.0 - r / g) * 100.0,
                    fmt_num(self.anchor? * g),
                    self.unit
                )
            }
            Goal::RatioAtMost(g) => {
                let r = self.ratio?;
                format!(
                    "ratio {r:.3} instead of ≤ {}: {:.1} % over",
                    fmt_num(g),
                    (r / g - 1.0) * 100.0
                )
            }
            Goal::ValueAtMost(g) => {
                let v = self.postern?;
                format!(
                    "{} {} instead of ≤ {} {}: {:.0} % over",
                    fmt_num(v),
                    self.unit,
                    fmt_num(g),
                    self.unit,
                    (v / g - 1.0) * 100.0
                )
            }
            Goal::None => return None,
        };
        Some(text)
    }
}

/// The median (mean of the middle two for an even count); `None` for no samples.
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// Three significant digits, no exponent.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| fmt_num(*v))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratio_is_the_median_of_per_repetition_ratios() {
        let row = Row::new("1", "m", "msg/s", "Postfix", Goal::RatioAtLeast(2.0))
            .with_samples(&[100.0, 300.0, 200.0], &[100.0, 100.0, 50.0]);

        assert_eq!(row.postern, Some(200.0));
        assert_eq!(row.anchor, Some(100.0));
        assert_eq!(row.ratio, Some(3.0));
        assert_eq!(row.met(), Some(true));
    }

    #[test]
    fn a_missed_goal_says_by_how_much() {
        let row =
            Row::new("4", "RSS", "MB", "", Goal::ValueAtMost(20.0)).with_samples(&[25.0], &[]);

        assert_eq!(row.met(), Some(false));
        assert_eq!(
            row.miss_text().as_deref(),
            Some("25.0 MB instead of ≤ 20.0 MB: 25 % over")
        );
    }
}
