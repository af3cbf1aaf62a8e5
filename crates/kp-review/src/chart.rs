//! A self-contained SVG chart of a participant's exports against production plus imports.

use crate::stats::Stats;
use kp_domain::ParticipantId;
use std::fmt::Write;

const WIDTH: u64 = 760;
const HEIGHT: u64 = 460;
const LEFT: u64 = 110;
const RIGHT: u64 = 740;
const TOP: u64 = 110;
const BOTTOM: u64 = 390;

/// Escapes text for SVG (XML) content and attribute values.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Whole carats with thousands separators: 123456789 hundredths → `1,234,567`.
fn grouped_carats(hundredths: u64) -> String {
    let digits = (hundredths / 100).to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The smallest "round" scale top at or above `hundredths`: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6
/// or 8 × 10^k whole carats (at least 1 ct), in hundredths; four ticks divide it evenly
/// enough for whole-carat labels.
fn nice_max(hundredths: u64) -> u64 {
    let mut power: u64 = 1;
    loop {
        for m in [100, 120, 150, 200, 250, 300, 400, 500, 600, 800] {
            let candidate = power.saturating_mul(m);
            if candidate >= hundredths || candidate == u64::MAX {
                return candidate;
            }
        }
        if power > u64::MAX / 10 {
            return u64::MAX;
        }
        power *= 10;
    }
}

/// The y coordinate of `value` on a scale whose top is `max` (both hundredths of a carat).
fn y_of(value: u64, max: u64) -> u64 {
    let h = u128::from(BOTTOM - TOP) * u128::from(value.min(max)) / u128::from(max.max(1));
    BOTTOM - u64::try_from(h).unwrap_or(0)
}

/// An SVG bar chart of `participant`'s year in `stats`: per quarter, its exports (carats) as
/// one bar, and beside it production (each half-year's report split evenly over its two
/// quarters) stacked with imports. Quarters where exports exceed production plus imports are
/// shaded red and labelled. Self-contained (no script, no external resource); every text is
/// escaped. A participant missing from `stats` gives a chart that says so.
pub fn chart_svg(stats: &Stats, participant: ParticipantId) -> String {
    let mut svg = String::new();
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    svg.push('\n');
    let _ = writeln!(svg, r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let Some(p) = stats.participant(participant) else {
        let _ = writeln!(
            svg,
            r#"<text x="20" y="40" font-size="16">No statistics for {} in {}</text>"#,
            escape_xml(participant.as_str()),
            stats.year
        );
        svg.push_str("</svg>\n");
        return svg;
    };
    let name = p.name.as_deref().unwrap_or(participant.as_str());
    // Per quarter: exports, production share, imports (hundredths of a carat).
    let rows: Vec<(String, u64, u64, u64)> = p
        .quarters
        .iter()
        .map(|q| {
            let half = p.production.iter().find(|h| h.period == q.quarter.half()).map_or(0, |h| h.carats.0);
            // Split evenly; the first quarter takes the odd hundredth.
            let share = if q.quarter.quarter % 2 == 1 { half - half / 2 } else { half / 2 };
            (format!("Q{}", q.quarter.quarter), q.exports.total.carats.0, share, q.imports.total.carats.0)
        })
        .collect();
    let top = rows.iter().map(|(_, e, s, i)| (*e).max(s.saturating_add(*i))).max().unwrap_or(0);
    let max = nice_max(top);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="28" font-size="16" font-weight="bold" text-anchor="middle">{} ({}): exports against production + imports, {}</text>"#,
        WIDTH / 2,
        escape_xml(name),
        escape_xml(participant.as_str()),
        stats.year
    );
    // Legend.
    let legend = [
        ("#1f4e9c", "Exports"),
        ("#3a9d5d", "Production (half-year report ÷ 2)"),
        ("#f0a030", "Imports"),
        ("#f8d0d0", "Exports exceed production + imports"),
    ];
    for (i, (colour, label)) in (0u64..).zip(legend) {
        let (x, y) = (LEFT + (i % 2) * 220, 50 + (i / 2) * 20);
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            x + 16,
            y + 10,
            escape_xml(label)
        );
    }
    // Axes, grid and y labels.
    let _ = writeln!(svg, r##"<g id="axes" stroke="#333">"##);
    let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}"/>"#);
    let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}"/>"#);
    svg.push_str("</g>\n");
    for tick in 0..=4u64 {
        let value = max / 4 * tick;
        let y = y_of(value, max);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y}" x2="{RIGHT}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT - 6,
            y + 4,
            grouped_carats(value)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="24" y="{mid}" text-anchor="middle" transform="rotate(-90 24 {mid})">Carats</text>"#,
        mid = (TOP + BOTTOM) / 2
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">Quarter of {}</text>"#,
        (LEFT + RIGHT) / 2,
        BOTTOM + 45,
        stats.year
    );
    let group = (RIGHT - LEFT) / 4;
    let mut exports_series = String::new();
    let mut production_series = String::new();
    let mut imports_series = String::new();
    for (i, (label, exports, share, imports)) in (0u64..).zip(&rows) {
        let gx = LEFT + i * group;
        let supply = share.saturating_add(*imports);
        if exports > &supply {
            let _ = writeln!(
                svg,
                r##"<rect class="exceeds" x="{}" y="{TOP}" width="{}" height="{}" fill="#f8d0d0"/><text x="{}" y="{}" fill="#b00000" text-anchor="middle">exports exceed supply</text>"##,
                gx + 4,
                group - 8,
                BOTTOM - TOP,
                gx + group / 2,
                TOP - 6
            );
        }
        let _ =
            writeln!(svg, r#"<text x="{}" y="{}" text-anchor="middle">{label}</text>"#, gx + group / 2, BOTTOM + 18);
        let bar = |out: &mut String, x: u64, from: u64, to: u64, colour: &str, what: &str, value: u64| {
            let (y_top, y_bottom) = (y_of(to, max), y_of(from, max));
            let _ = writeln!(
                out,
                r#"<rect x="{x}" y="{y_top}" width="44" height="{}" fill="{colour}"><title>{label} {what}: {} ct</title></rect>"#,
                y_bottom - y_top,
                grouped_carats(value)
            );
        };
        bar(&mut exports_series, gx + 28, 0, *exports, "#1f4e9c", "exports", *exports);
        bar(&mut production_series, gx + 88, 0, *share, "#3a9d5d", "production (half-year ÷ 2)", *share);
        bar(&mut imports_series, gx + 88, *share, supply, "#f0a030", "imports", *imports);
    }
    for (id, series) in [("exports", exports_series), ("production", production_series), ("imports", imports_series)] {
        let _ = writeln!(svg, r#"<g id="{id}">"#);
        svg.push_str(&series);
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(escape_xml(r#"a<&>"'b"#), "a&lt;&amp;&gt;&quot;&apos;b");
        assert_eq!(grouped_carats(123_456_789), "1,234,567");
        assert_eq!(grouped_carats(99), "0");
        assert_eq!(nice_max(0), 100);
        assert_eq!(nice_max(100), 100);
        assert_eq!(nice_max(101), 120);
        assert_eq!(nice_max(150_000), 150_000);
        assert_eq!(nice_max(20_550_000), 25_000_000);
        assert_eq!(nice_max(600_001), 800_000);
        assert_eq!(nice_max(800_001), 1_000_000);
        assert_eq!(nice_max(u64::MAX), u64::MAX);
        assert_eq!(y_of(0, 100), BOTTOM);
        assert_eq!(y_of(100, 100), TOP);
    }
}
