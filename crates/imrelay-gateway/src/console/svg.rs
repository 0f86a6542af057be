//! Charts drawn on the server as inline SVG: one bar per minute.

use maud::{html, Markup};

const W: u32 = 240;
const H: u32 = 48;

/// Bars of `values` (oldest first), scaled to the largest; `label` names the
/// chart for screen readers, with its total.
pub fn bars(values: &[u64], label: &str, class: &str) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let n = values.len().max(1) as u32;
    let step = W / n;
    let bar = step.saturating_sub(1).max(1);
    let total: u64 = values.iter().sum();
    html! {
        svg class={"chart " (class)} viewBox={"0 0 " (W) " " (H)} role="img" aria-label={(label) ": " (total)} preserveAspectRatio="none" {
            title { (label) ": " (total) }
            line.base x1="0" y1=(H - 1) x2=(W) y2=(H - 1) {}
            @for (i, v) in values.iter().enumerate() {
                @if *v > 0 {
                    @let h = ((*v as f64 / max as f64) * (H - 2) as f64).ceil().max(1.0) as u32;
                    rect x=(i as u32 * step) y=(H - 1 - h) width=(bar) height=(h) {
                        title { (v) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_nonzero_minute_scaled_to_the_largest() {
        let svg = bars(&[0, 2, 4, 0], "Delivered per minute", "ok").into_string();
        assert!(svg.contains("class=\"chart ok\""), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(
            svg.contains("aria-label=\"Delivered per minute: 6\""),
            "{svg}"
        );
        // The largest bar fills the height (minus the base line).
        assert!(svg.contains(&format!("height=\"{}\"", H - 2)), "{svg}");
        assert!(!svg.contains("style="), "no inline style (CSP)");
    }
}
