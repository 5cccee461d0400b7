//! The dashboard's charts as SVG, drawn by our own small code: bars by
//! hour with a scale, sized for a 16:9 panel, no script and no outside
//! resource. Text is escaped; the page inserts the document as is.

use std::fmt::Write;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 300;
const LEFT: u32 = 56;
const RIGHT: u32 = 12;
const TOP: u32 = 40;
const BOTTOM: u32 = 36;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A scale's step: 1, 2 or 5 times a power of ten, so about four lines
/// cover `max`.
fn step(max: f64) -> f64 {
    let raw = (max / 4.0).max(1.0);
    let pow = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow)
}

/// A bar chart: one bar per label (`None`: no bar, as for an hour with no
/// waits), the value written above each bar that has one.
pub fn bars(title: &str, unit: &str, labels: &[String], values: &[Option<f64>]) -> String {
    let max = values.iter().flatten().copied().fold(0.0, f64::max);
    let step = step(max);
    let top = (max / step).ceil().max(1.0) * step;
    let plot_w = f64::from(WIDTH - LEFT - RIGHT);
    let plot_h = f64::from(HEIGHT - TOP - BOTTOM);
    let n = labels.len().max(1) as f64;
    let slot = plot_w / n;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}" font-family="sans-serif">"##,
        t = escape(title)
    );
    let _ = write!(
        s,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/><text x="{LEFT}" y="24" font-size="18" fill="#1b2a3a">{t} <tspan font-size="13" fill="#5b6b7b">({u})</tspan></text>"##,
        t = escape(title),
        u = escape(unit)
    );
    let mut v = 0.0;
    while v <= top + f64::EPSILON {
        let y = f64::from(TOP) + plot_h - v / top * plot_h;
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#dde3ea"/><text x="{lx}" y="{ty:.1}" font-size="11" text-anchor="end" fill="#5b6b7b">{v}</text>"##,
            x2 = WIDTH - RIGHT,
            lx = LEFT - 6,
            ty = y + 4.0,
        );
        v += step;
    }
    for (i, label) in labels.iter().enumerate() {
        let x = f64::from(LEFT) + slot * i as f64;
        if let Some(value) = values.get(i).copied().flatten() {
            let h = value / top * plot_h;
            let y = f64::from(TOP) + plot_h - h;
            let _ = write!(
                s,
                r##"<rect x="{bx:.1}" y="{y:.1}" width="{bw:.1}" height="{h:.1}" fill="#1f6feb"><title>{l}: {value}</title></rect>"##,
                bx = x + slot * 0.15,
                bw = slot * 0.7,
                l = escape(label),
            );
            if value > 0.0 {
                let _ = write!(
                    s,
                    r##"<text x="{cx:.1}" y="{ty:.1}" font-size="10" text-anchor="middle" fill="#1b2a3a">{value}</text>"##,
                    cx = x + slot / 2.0,
                    ty = y - 3.0,
                );
            }
        }
        let _ = write!(
            s,
            r##"<text class="label" x="{cx:.1}" y="{ly}" font-size="11" text-anchor="middle" fill="#5b6b7b">{l}</text>"##,
            cx = x + slot / 2.0,
            ly = HEIGHT - BOTTOM + 16,
            l = escape(label),
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{x2}" y1="{y}" y2="{y}" stroke="#5b6b7b"/></svg>"##,
        x2 = WIDTH - RIGHT,
        y = HEIGHT - BOTTOM,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_bar_per_value_escaped_text_and_a_round_scale() {
        let labels: Vec<String> = (0..3).map(|h| format!("{h:02}")).collect();
        let svg = bars("A<B", "人", &labels, &[Some(3.0), None, Some(14.0)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 2, "no bar for None");
        assert!(svg.contains("A&lt;B") && !svg.contains("A<B"));
        assert!(
            svg.contains(">15</text>"),
            "the scale reaches 15 in steps of 5"
        );
        assert_eq!(step(14.0), 5.0);
        assert_eq!(step(0.0), 1.0);
        assert_eq!(step(1800.0), 500.0);
    }
}
