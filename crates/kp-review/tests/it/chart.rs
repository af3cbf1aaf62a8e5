//! The SVG chart: well-formed, with its series and highlights, text escaped.

use crate::common::*;
use crate::world;
use kp_domain::HsCode;
use kp_review::chart_svg;

/// Checks that every element is closed in order (the chart writes no `<` in text: it is
/// escaped), and returns the number of elements.
fn check_well_formed(svg: &str) -> usize {
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("an unclosed tag") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "a '<' inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else {
            elements += 1;
            if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap().to_owned());
            }
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    elements
}

#[test]
fn chart_shows_the_series_and_highlights_the_excess() {
    let g = genesis(&[("CG", "Congo <&> \"Rep\""), ("EU", "European Union")]);
    let mut l = Ledger::default();
    // H1 production 100 ct: 50 ct per quarter. Q1 exports 300 ct (exceeds), Q2 40 ct (does not).
    l.push(at("2026-07-01", 9), production("CG", 2026, 1, 0, vec![line(HsCode::Unsorted, 10_000, 1_000_000)]));
    for (num, exp, imp, day, hundredths) in [
        ("CG-1", "CG", "EU", "2026-02-01", 30_000),
        ("CG-2", "CG", "EU", "2026-05-01", 4_000),
        ("EU-1", "EU", "CG", "2026-08-01", 10_000),
        ("CG-3", "CG", "EU", "2026-08-15", 5_000),
    ] {
        let c =
            certificate(num, exp, imp, date(day), 30, 1, vec![line(HsCode::Unsorted, hundredths, hundredths * 100)]);
        l.push(at(day, 9), issued(&c));
    }
    let review = review_of(&g, &l.committed());
    let stats = review.stats(2026, None);
    let svg = chart_svg(&stats, pid("CG"));
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(check_well_formed(&svg) > 20);
    for series in ["<g id=\"exports\">", "<g id=\"production\">", "<g id=\"imports\">"] {
        assert!(svg.contains(series), "{series} missing");
    }
    assert_eq!(svg.matches("fill=\"#1f4e9c\"><title>").count(), 4, "one export bar per quarter");
    assert!(svg.contains("Q1 exports: 300 ct"));
    assert!(svg.contains("Q1 production (half-year ÷ 2): 50 ct"));
    assert!(svg.contains("Q3 imports: 100 ct"));
    assert!(svg.contains("Congo &lt;&amp;&gt; &quot;Rep&quot; (CG)"), "{svg}");
    assert!(!svg.contains("<&"));
    assert!(
        svg.contains("Carats")
            && svg.contains("Quarter of 2026")
            && svg.contains("Exports exceed production + imports")
    );
    // Exactly Q1 is highlighted (the first quarter's group starts at x = 110).
    assert_eq!(svg.matches("class=\"exceeds\"").count(), 1);
    assert!(svg.contains("<rect class=\"exceeds\" x=\"114\""));

    // A participant without statistics gives a chart that says so.
    let none = chart_svg(&review.stats(2026, Some(pid("EU"))), pid("CG"));
    assert!(none.starts_with("<svg") && none.contains("No statistics for CG in 2026"));
    check_well_formed(&none);
}

#[test]
fn chart_of_the_congo_pattern_in_the_synthetic_year() {
    let w = world();
    let review = review_of(&w.genesis, &w.entries);
    let stats = review.stats(2026, Some(pid("CG")));
    let svg = chart_svg(&stats, pid("CG"));
    check_well_formed(&svg);
    // Every quarter of the planted Republic of the Congo pattern exceeds.
    assert_eq!(svg.matches("class=\"exceeds\"").count(), 4, "{svg}");
    assert!(svg.contains("Republic of the Congo (CG)"));
}
