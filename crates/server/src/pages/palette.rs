//! The colours drawn from the branding's primary colour, each readable where it is used (WCAG 2.1:
//! 4.5:1 for text): any colour an operator picks gives pages that pass, because the text colour
//! adapts instead of the colour being refused.

/// The lightest and darkest backgrounds text in the primary colour sits on (`#fff` and `--bg`).
const PAGE_BACKGROUNDS: [Rgb; 2] = [Rgb(0xff, 0xff, 0xff), Rgb(0xf6, 0xf8, 0xfa)];
/// The text colours a filled button may take: white, the pages' ink, or black where neither
/// reads (one of white and black always does: their contrasts multiply to 21).
const WHITE: Rgb = Rgb(0xff, 0xff, 0xff);
const INK: Rgb = Rgb(0x1b, 0x1f, 0x24);
const BLACK: Rgb = Rgb(0, 0, 0);
/// The contrast text needs (WCAG 2.1, 1.4.3, level AA).
pub const TEXT_CONTRAST: f64 = 4.5;

/// A colour as red, green and blue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`, or None.
    pub fn parse(hex: &str) -> Option<Rgb> {
        let digits = hex.strip_prefix('#').filter(|d| d.len() == 6 && d.chars().all(|c| c.is_ascii_hexdigit()))?;
        let byte = |i: usize| u8::from_str_radix(&digits[i..i + 2], 16).ok();
        Some(Rgb(byte(0)?, byte(2)?, byte(4)?))
    }

    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Relative luminance (WCAG 2.1).
    fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * channel(self.0) + 0.7152 * channel(self.1) + 0.0722 * channel(self.2)
    }

    /// This colour moved `step` of 255 toward black.
    fn darker(self, step: u8) -> Rgb {
        Rgb(self.0.saturating_sub(step), self.1.saturating_sub(step), self.2.saturating_sub(step))
    }
}

/// The contrast ratio of two colours, 1 to 21.
pub fn contrast(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (a.luminance(), b.luminance());
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// What the pages draw with, from the primary colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Palette {
    /// The colour itself: filled buttons, bars, the header's rule.
    pub primary: Rgb,
    /// Text on a filled button: white or ink, whichever reads better.
    pub on_primary: Rgb,
    /// Links, secondary buttons and focus rings on the pages' backgrounds: the colour, darkened
    /// until it reads on both.
    pub primary_text: Rgb,
}

impl Palette {
    pub fn of(primary: Rgb) -> Palette {
        let on_primary =
            [WHITE, INK, BLACK].into_iter().find(|text| contrast(*text, primary) >= TEXT_CONTRAST).unwrap_or(BLACK);
        let mut primary_text = primary;
        while PAGE_BACKGROUNDS.iter().any(|bg| contrast(primary_text, *bg) < TEXT_CONTRAST) {
            primary_text = primary_text.darker(4);
        }
        Palette { primary, on_primary, primary_text }
    }

    /// The custom properties of the branding's stylesheet.
    pub fn css(&self) -> String {
        format!(
            ":root {{ --primary: {}; --on-primary: {}; --primary-text: {}; }}\n",
            self.primary.hex(),
            self.on_primary.hex(),
            self.primary_text.hex()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn contrast_matches_the_wcag_figures() {
        assert!((contrast(WHITE, Rgb(0, 0, 0)) - 21.0).abs() < 1e-9);
        // The yellow the issue was seen with, and the default blue on the grey background.
        assert!((contrast(WHITE, Rgb(0xff, 0xd6, 0x0a)) - 1.41).abs() < 0.01);
        assert!((contrast(Rgb(0x1f, 0x6f, 0xeb), Rgb(0xf6, 0xf8, 0xfa)) - 4.35).abs() < 0.01);
    }

    #[test]
    fn a_yellow_gets_dark_text_and_darker_links() {
        let p = Palette::of(Rgb::parse("#ffd60a").unwrap());
        assert_eq!(p.on_primary, INK);
        assert_ne!(p.primary_text, p.primary);
        assert_eq!(p.primary.hex(), "#ffd60a", "the colour itself is kept where nothing is written on it");
    }

    #[test]
    fn parse_takes_only_six_hex_digits() {
        assert_eq!(Rgb::parse("#1F6feb"), Some(Rgb(0x1f, 0x6f, 0xeb)));
        for bad in ["1f6feb", "#1f6fe", "#1f6febb", "#gggggg", "", "#"] {
            assert_eq!(Rgb::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        /// Whatever colour is chosen, every text drawn with it or on it reads at 4.5:1 or more.
        #[test]
        fn every_colour_gives_readable_text(r: u8, g: u8, b: u8) {
            let p = Palette::of(Rgb(r, g, b));
            prop_assert!(contrast(p.on_primary, p.primary) >= TEXT_CONTRAST);
            for bg in PAGE_BACKGROUNDS {
                prop_assert!(contrast(p.primary_text, bg) >= TEXT_CONTRAST);
            }
            prop_assert_eq!(Rgb::parse(&p.primary.hex()), Some(p.primary));
        }
    }
}
