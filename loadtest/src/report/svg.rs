//! Small inline SVG charts: lines with markers over linear or log axes, with ticks and a
//! legend. Enough for recall–QPS curves, latency histograms and throughput timelines
//! without a plotting library or any script in the page.

use std::fmt::Write;

/// Distinct colours for series (colour-blind-safe palette).
const COLOURS: [&str; 6] = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9"];

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 50.0;

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log,
}

#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_scale: Scale,
    pub y_scale: Scale,
    /// Draw markers at points (curves with few points) or only lines (timelines).
    pub markers: bool,
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A linear axis' tick: as many decimals as the step between ticks needs.
fn fmt_step_tick(v: f64, step: f64) -> String {
    if step >= 1.0 || step <= 0.0 {
        return fmt_tick(v);
    }
    let decimals = (-step.log10()).ceil().max(0.0) as usize;
    format!("{v:.decimals$}")
}

fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}").trim_end_matches(".0").to_string()
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Axis mapping and tick values for one axis.
struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(scale: Scale, values: impl Iterator<Item = f64>) -> Axis {
        let vals: Vec<f64> = values.filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0)).collect();
        let (mut lo, mut hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        if !lo.is_finite() {
            (lo, hi) = if scale == Scale::Log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        match scale {
            Scale::Log => {
                lo = 10f64.powf(lo.log10().floor());
                hi = 10f64.powf(hi.log10().ceil());
                if hi <= lo {
                    hi = lo * 10.0;
                }
            }
            Scale::Linear => {
                // Start throughput-like axes at zero; keep tight ranges (recall) tight.
                if lo > 0.0 && lo < 0.5 * hi {
                    lo = 0.0;
                }
                if hi <= lo {
                    hi = lo + 1.0;
                }
                let pad = (hi - lo) * 0.05;
                hi += pad;
                if lo != 0.0 {
                    lo -= pad;
                }
            }
        }
        Axis { scale, lo, hi }
    }

    fn frac(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => (v - self.lo) / (self.hi - self.lo),
            Scale::Log => (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10()),
        }
    }

    /// Tick labels: powers of ten on log axes, step-aware decimals on linear ones.
    fn labels(&self) -> Vec<(f64, String)> {
        let ticks = self.ticks();
        let step = if ticks.len() > 1 { ticks[1] - ticks[0] } else { 1.0 };
        ticks
            .into_iter()
            .map(|t| (t, if self.scale == Scale::Linear { fmt_step_tick(t, step) } else { fmt_tick(t) }))
            .collect()
    }

    fn ticks(&self) -> Vec<f64> {
        match self.scale {
            Scale::Log => {
                let (lo, hi) = (self.lo.log10().round() as i32, self.hi.log10().round() as i32);
                (lo..=hi).map(|e| 10f64.powi(e)).collect()
            }
            Scale::Linear => {
                let raw = (self.hi - self.lo) / 5.0;
                let mag = 10f64.powf(raw.log10().floor());
                let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
                let mut v = (self.lo / step).ceil() * step;
                let mut t = vec![];
                while v <= self.hi + step * 1e-9 && t.len() < 20 {
                    t.push(v);
                    v += step;
                }
                t
            }
        }
    }
}

/// Renders `series` as an SVG element.
pub fn line_chart(chart: &Chart<'_>, series: &[Series]) -> String {
    let xs = Axis::new(chart.x_scale, series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let ys = Axis::new(chart.y_scale, series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let pw = WIDTH - LEFT - RIGHT;
    let ph = HEIGHT - TOP - BOTTOM;
    let px = |v: f64| LEFT + xs.frac(v) * pw;
    let py = |v: f64| TOP + ph - ys.frac(v) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{t}"><title>{t}</title><rect width="100%" height="100%" fill="white"/><text x="{cx}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{t}</text>"#,
        t = escape(chart.title),
        cx = WIDTH / 2.0
    );
    for (t, label) in xs.labels() {
        let x = px(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{b:.1}" stroke="#eee"/><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" font-size="11">{l}</text>"##,
            b = TOP + ph,
            ty = TOP + ph + 16.0,
            l = label
        );
    }
    for (t, label) in ys.labels() {
        let y = py(t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{r:.1}" y2="{y:.1}" stroke="#eee"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end" font-size="11">{l}</text>"##,
            r = LEFT + pw,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            l = label
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/><text x="{cx:.1}" y="{xl:.1}" text-anchor="middle" font-size="12">{xlab}</text><text transform="translate(16 {cy:.1}) rotate(-90)" text-anchor="middle" font-size="12">{ylab}</text>"##,
        cx = LEFT + pw / 2.0,
        xl = HEIGHT - 10.0,
        xlab = escape(chart.x_label),
        cy = TOP + ph / 2.0,
        ylab = escape(chart.y_label)
    );
    for (i, ser) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<(f64, f64)> = ser
            .points
            .iter()
            .copied()
            .filter(|(x, y)| {
                x.is_finite()
                    && y.is_finite()
                    && (chart.x_scale == Scale::Linear || *x > 0.0)
                    && (chart.y_scale == Scale::Linear || *y > 0.0)
            })
            .collect();
        if pts.len() > 1 {
            let path: Vec<String> = pts.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
            let _ =
                write!(s, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, path.join(" "));
        }
        if chart.markers || pts.len() == 1 {
            for &(x, y) in &pts {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{}: ({}, {})</title></circle>"#,
                    px(x),
                    py(y),
                    escape(&ser.name),
                    fmt_tick(x),
                    fmt_tick(y)
                );
            }
        }
        let ly = TOP + 14.0 + 16.0 * i as f64;
        let lx = LEFT + pw - 150.0;
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="4" fill="{colour}"/><text x="{:.1}" y="{ly:.1}" font-size="11">{}</text>"#,
            ly - 5.0,
            lx + 16.0,
            escape(&ser.name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_series_and_escapes_text() {
        let chart = Chart {
            title: "Recall <vs> QPS",
            x_label: "recall",
            y_label: "QPS",
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            markers: true,
        };
        let svg = line_chart(
            &chart,
            &[
                Series { name: "a&b".into(), points: vec![(0.8, 1000.0), (0.9, 500.0), (0.99, 100.0)] },
                Series { name: "empty".into(), points: vec![] },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Recall &lt;vs&gt; QPS") && svg.contains("a&amp;b"));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn ticks_cover_the_range() {
        let a = Axis::new(Scale::Linear, [3.0, 97.0].into_iter());
        let t = a.ticks();
        assert!(t.first().unwrap() >= &a.lo && t.last().unwrap() <= &a.hi && t.len() >= 4);
        let l = Axis::new(Scale::Log, [0.3, 42.0].into_iter());
        assert_eq!(l.ticks(), vec![0.1, 1.0, 10.0, 100.0]);
        assert_eq!(fmt_tick(0.25), "0.25");
        assert_eq!(fmt_tick(25_000.0), "25k");
        // A narrow recall range still gets distinct labels.
        let narrow = Axis::new(Scale::Linear, [0.9991, 0.9999].into_iter());
        let labels: Vec<String> = narrow.labels().into_iter().map(|l| l.1).collect();
        let mut distinct = labels.clone();
        distinct.dedup();
        assert_eq!(labels, distinct, "{labels:?}");
    }
}
