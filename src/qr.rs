//! QR codes of an `otpauth://` URI: for a terminal (Unicode half blocks, or plain ASCII), PNG
//! and SVG. Error correction L keeps an otpauth URI with a 160-bit secret and every parameter
//! at version 5 or 6 (37 or 41 modules). In the terminal the quiet zone shrinks from 4 modules
//! to 2 where needed (the forced white background makes those modules light whatever the
//! theme); images keep 4. Half blocks draw a version-5 code in at most 22 lines × 43 columns,
//! which leaves an 80×24 screen one line above the code and one for the prompt below it
//! ([`Matrix::fits`] tells; src/login/enroll.rs makes the URI shorter until it does).
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use qrcode::{Color, EcLevel, QrCode};
use serde::Deserialize;
use zeroize::Zeroizing;

/// Light modules around the code that scanners need to find it (the standard asks for 4).
const QUIET_ZONE: usize = 4;
/// Smallest quiet zone used in a terminal; phone scanners read 2 reliably.
const MIN_TERMINAL_QUIET_ZONE: usize = 2;
/// Module rows that fit 22 terminal lines in half blocks: an 80×24 screen keeps one line
/// above the code (ssh clients prefix the first line with "(user@host) ") and one for the
/// prompt below it.
const TERMINAL_MODULE_ROWS: usize = 44;
/// The smallest screen a login may have: a Linux console, most terminals' default size.
pub const SCREEN_COLUMNS: usize = 80;
pub const SCREEN_LINES: usize = 24;

#[derive(Debug)]
pub struct QrError(String);

impl fmt::Display for QrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot draw the QR code: {}", self.0)
    }
}

impl std::error::Error for QrError {}

/// How a QR code is drawn in a terminal: the one list of styles, read from the same words
/// wherever a style is chosen — the policy's `[policy] qr`, the module argument `qr=` and the
/// CLI's `--qr` ([`QrStyle::from_str`], [`QrStyle::NAMES`]). Half blocks draw two modules per
/// character cell (▀ ▄ █) in the terminal's foreground colour, so where colour codes cannot be
/// sent (see [`Screen`]) the polarity depends on the theme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum QrStyle {
    /// Unicode half blocks: forced black on white where colour codes work, else painted for
    /// dark backgrounds (most terminals' default).
    #[default]
    Utf8,
    /// Unicode half blocks without colour codes, for light backgrounds.
    Utf8Light,
    /// `##` per dark module, one line per module row: needs about 90×45 characters, so only
    /// a terminal that large, or one with scrollback, shows it whole.
    Ascii,
}

impl QrStyle {
    /// Every style with its name, in the order help texts list them.
    pub const NAMES: [(&'static str, Self); 3] = [
        ("utf8", Self::Utf8),
        ("utf8-light", Self::Utf8Light),
        ("ascii", Self::Ascii),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "utf8",
            Self::Utf8Light => "utf8-light",
            Self::Ascii => "ascii",
        }
    }
}

impl fmt::Display for QrStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A QR style name that is not one of [`QrStyle::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStyle(pub String);

impl fmt::Display for UnknownStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown QR style '{}' (known: utf8, utf8-light, ascii)",
            self.0
        )
    }
}

impl std::error::Error for UnknownStyle {}

impl FromStr for QrStyle {
    type Err = UnknownStyle;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, style)| *style)
            .ok_or_else(|| UnknownStyle(text.to_owned()))
    }
}

impl TryFrom<String> for QrStyle {
    type Error = UnknownStyle;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// Where the drawing goes, which decides whether colour codes may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// The CLI writes to the admin's terminal itself: `utf8` is forced black on white with
    /// ANSI colours, right on every theme.
    Terminal,
    /// Text relayed by the PAM conversation: ssh clients print escape codes as text
    /// (`\033[30;47m`), so none are sent and `utf8` paints the light modules.
    PamText,
}

/// The modules of a QR code without its quiet zone: `true` is dark.
pub struct Matrix {
    inner: usize,
    dark: Vec<bool>,
}

impl Matrix {
    pub fn encode(text: &str) -> Result<Self, QrError> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
            .map_err(|e| QrError(e.to_string()))?;
        let inner = code.width();
        let dark = code
            .to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect();
        Ok(Self { inner, dark })
    }

    /// Modules per side of the code itself (21 for version 1, +4 per version).
    pub fn modules(&self) -> usize {
        self.inner
    }

    /// Whether the module at (x, y), counted from the outer corner of a `quiet`-wide
    /// margin, is dark.
    fn is_dark(&self, quiet: usize, x: usize, y: usize) -> bool {
        let (Some(x), Some(y)) = (x.checked_sub(quiet), y.checked_sub(quiet)) else {
            return false;
        };
        x < self.inner && y < self.inner && self.dark[y * self.inner + x]
    }

    fn terminal_quiet_zone(&self) -> usize {
        (TERMINAL_MODULE_ROWS.saturating_sub(self.inner) / 2)
            .clamp(MIN_TERMINAL_QUIET_ZONE, QUIET_ZONE)
    }

    /// Columns × lines of [`Matrix::to_terminal`]'s drawing in `style`.
    pub fn terminal_size(&self, style: QrStyle) -> (usize, usize) {
        let side = self.inner + 2 * self.terminal_quiet_zone();
        match style {
            QrStyle::Ascii => (2 * side, side),
            QrStyle::Utf8 | QrStyle::Utf8Light => (side, side.div_ceil(2)),
        }
    }

    /// Whether the drawing in `style` fits `columns` × `lines`.
    pub fn fits(&self, style: QrStyle, columns: usize, lines: usize) -> bool {
        let (width, height) = self.terminal_size(style);
        width <= columns && height <= lines
    }

    /// Lines of text, each ending in `\n`. Holds the secret (it encodes the URI): wiped on drop.
    pub fn to_terminal(&self, style: QrStyle, screen: Screen) -> Zeroizing<String> {
        match style {
            QrStyle::Ascii => self.ascii(),
            QrStyle::Utf8 if screen == Screen::Terminal => self.half_blocks(true, true),
            QrStyle::Utf8 => self.half_blocks(false, false),
            QrStyle::Utf8Light => self.half_blocks(false, true),
        }
    }

    /// Half blocks, two module rows per line; `paint_dark` says which modules the foreground
    /// colour paints, `ansi` forces it black on white.
    fn half_blocks(&self, ansi: bool, paint_dark: bool) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        let quiet = self.terminal_quiet_zone();
        let width = self.inner + 2 * quiet;
        for y in (0..width).step_by(2) {
            if ansi {
                out.push_str("\x1b[30;47m");
            }
            for x in 0..width {
                let top = self.is_dark(quiet, x, y) == paint_dark;
                // Below the last row is the terminal's own background.
                let below = y + 1 < width && self.is_dark(quiet, x, y + 1) == paint_dark;
                out.push(match (top, below) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            if ansi {
                out.push_str("\x1b[0m");
            }
            out.push('\n');
        }
        out
    }

    /// `##` per dark module, one line per module row.
    fn ascii(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        let quiet = self.terminal_quiet_zone();
        let width = self.inner + 2 * quiet;
        for y in 0..width {
            for x in 0..width {
                out.push_str(if self.is_dark(quiet, x, y) {
                    "##"
                } else {
                    "  "
                });
            }
            out.push('\n');
        }
        out
    }

    /// An 8-bit greyscale PNG, `scale` pixels per module.
    pub fn to_png(&self, scale: usize) -> Result<Zeroizing<Vec<u8>>, QrError> {
        let scale = scale.max(1);
        let side = (self.inner + 2 * QUIET_ZONE) * scale;
        let side_u32 = u32::try_from(side).map_err(|_| QrError("image too large".into()))?;
        let mut pixels = Zeroizing::new(Vec::with_capacity(side * side));
        for py in 0..side {
            for px in 0..side {
                let dark = self.is_dark(QUIET_ZONE, px / scale, py / scale);
                pixels.push(if dark { 0u8 } else { 255u8 });
            }
        }
        let mut out = Zeroizing::new(Vec::new());
        {
            let mut encoder = png::Encoder::new(&mut *out, side_u32, side_u32);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(|e| QrError(e.to_string()))?;
            writer
                .write_image_data(&pixels)
                .map_err(|e| QrError(e.to_string()))?;
            writer.finish().map_err(|e| QrError(e.to_string()))?;
        }
        Ok(out)
    }

    /// A standalone SVG, one square per dark module, black on white.
    pub fn to_svg(&self) -> Zeroizing<String> {
        let w = self.inner + 2 * QUIET_ZONE;
        let mut out = Zeroizing::new(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             viewBox=\"0 0 {w} {w}\" width=\"{px}\" height=\"{px}\" shape-rendering=\"crispEdges\">\n\
             <rect width=\"{w}\" height=\"{w}\" fill=\"#fff\"/>\n<path fill=\"#000\" d=\"",
            px = w * 8
        ));
        for y in 0..w {
            for x in 0..w {
                if self.is_dark(QUIET_ZONE, x, y) {
                    out.push_str(&format!("M{x} {y}h1v1h-1z"));
                }
            }
        }
        out.push_str("\"/>\n</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/build-01:alice.smith?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=build-01&algorithm=SHA1&digits=6&period=30";

    #[test]
    fn typical_uri_fits_an_80x24_terminal() {
        let m = Matrix::encode(URI).unwrap();
        let text = m.to_terminal(QrStyle::Utf8, Screen::Terminal);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() <= 23, "{} lines", lines.len());
        for line in &lines {
            let visible = line.replace("\x1b[30;47m", "").replace("\x1b[0m", "");
            assert!(visible.chars().count() <= 45, "{}", visible.chars().count());
        }
        // Quiet zone: the first line is blank modules only.
        assert!(
            lines[0]
                .replace("\x1b[30;47m", "")
                .replace("\x1b[0m", "")
                .trim()
                .is_empty()
        );
    }

    #[test]
    fn drawings_are_as_large_as_terminal_size_says() {
        for uri in [
            URI,
            "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&issuer=b",
            &"x".repeat(300),
        ] {
            let m = Matrix::encode(uri).unwrap();
            for (_, style) in QrStyle::NAMES {
                let text = m.to_terminal(style, Screen::PamText);
                let lines: Vec<&str> = text.lines().collect();
                let widest = lines.iter().map(|l| l.chars().count()).max().unwrap();
                assert_eq!(m.terminal_size(style), (widest, lines.len()), "{style}");
            }
        }
        // A version-5 code (37 modules) takes 22 lines with a quiet zone of 3, version 6 does
        // not fit 22 lines even with the smallest quiet zone.
        let v5 = Matrix::encode(&"x".repeat(100)).unwrap();
        assert_eq!(
            (v5.modules(), v5.terminal_size(QrStyle::Utf8)),
            (37, (43, 22))
        );
        assert!(v5.fits(QrStyle::Utf8, 80, 22) && !v5.fits(QrStyle::Ascii, 80, 22));
        let v6 = Matrix::encode(&"x".repeat(120)).unwrap();
        assert_eq!(v6.modules(), 41);
        assert!(!v6.fits(QrStyle::Utf8Light, 80, 22) && v6.fits(QrStyle::Utf8Light, 80, 23));
    }

    #[test]
    fn plain_styles_paint_opposite_modules_and_no_escapes() {
        let m = Matrix::encode(URI).unwrap();
        let dark = m.to_terminal(QrStyle::Utf8, Screen::PamText);
        let light = m.to_terminal(QrStyle::Utf8Light, Screen::PamText);
        assert!(!dark.contains('\x1b') && !light.contains('\x1b'));
        // The quiet zone is light: painted on a dark background, blank on a light one.
        assert!(dark.lines().next().unwrap().chars().all(|c| c == '█'));
        assert!(light.lines().next().unwrap().chars().all(|c| c == ' '));
        let ansi = m.to_terminal(QrStyle::Utf8, Screen::Terminal);
        let stripped = ansi.replace("\x1b[30;47m", "").replace("\x1b[0m", "");
        assert_eq!(stripped, *light);
    }

    #[test]
    fn styles_are_read_from_the_same_words_everywhere() {
        for (name, style) in QrStyle::NAMES {
            assert_eq!(name.parse::<QrStyle>(), Ok(style));
            assert_eq!(style.to_string(), name);
            assert_eq!(QrStyle::try_from(name.to_owned()), Ok(style));
        }
        assert_eq!(QrStyle::default(), QrStyle::Utf8);
        let err = "UTF8".parse::<QrStyle>().unwrap_err();
        assert!(err.to_string().contains("utf8, utf8-light, ascii"), "{err}");
        // utf8-light draws the same on both screens; ascii too.
        let m = Matrix::encode(URI).unwrap();
        for style in [QrStyle::Utf8Light, QrStyle::Ascii] {
            assert_eq!(
                *m.to_terminal(style, Screen::Terminal),
                *m.to_terminal(style, Screen::PamText)
            );
        }
    }

    #[test]
    fn ascii_and_images_cover_every_module() {
        let m = Matrix::encode(URI).unwrap();
        let ascii = m.to_terminal(QrStyle::Ascii, Screen::PamText);
        assert_eq!(ascii.lines().count(), m.modules() + 4);
        assert!(ascii.is_ascii());
        let png = m.to_png(4).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(m.to_svg().contains("<svg"));
    }
}
