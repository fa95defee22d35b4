//! QR codes of an `otpauth://` URI: for a terminal (Unicode half blocks, or plain ASCII), PNG
//! and SVG. Error correction L keeps an otpauth URI with a 160-bit secret and every parameter
//! at version 5 or 6 (37 or 41 modules). In the terminal the quiet zone shrinks from 4 modules
//! to 2 where needed so the code stays within 45 columns × 23 lines of an 80×24 terminal (the
//! forced white background makes those modules light whatever the theme); images keep 4.
#![forbid(unsafe_code)]

use std::fmt;

use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

/// Light modules around the code that scanners need to find it (the standard asks for 4).
const QUIET_ZONE: usize = 4;
/// Smallest quiet zone used in a terminal; phone scanners read 2 reliably.
const MIN_TERMINAL_QUIET_ZONE: usize = 2;
/// Module rows that fit 23 terminal lines in half blocks (one line is left for the prompt).
const TERMINAL_MODULE_ROWS: usize = 46;

#[derive(Debug)]
pub struct QrError(String);

impl fmt::Display for QrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot draw the QR code: {}", self.0)
    }
}

impl std::error::Error for QrError {}

/// Terminal drawing styles. Half blocks draw two modules per character cell (▀ ▄ █) in the
/// terminal's foreground colour, so without colour codes the polarity depends on the theme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerminalStyle {
    /// Half blocks forced black on white with ANSI colours: right on every theme. For the
    /// CLI, which writes to the terminal itself.
    Utf8Ansi,
    /// Half blocks, no escape codes, light modules drawn: right on dark backgrounds. For the
    /// PAM conversation: ssh clients print escape codes as text (`\033[30;47m`).
    Utf8Dark,
    /// Half blocks, no escape codes, dark modules drawn: right on light backgrounds.
    Utf8Light,
    /// `##` per dark module, one line per module row: needs about 90×45 characters.
    Ascii,
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

    /// Lines of text, each ending in `\n`. Holds the secret (it encodes the URI): wiped on drop.
    pub fn to_terminal(&self, style: TerminalStyle) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        let quiet = self.terminal_quiet_zone();
        let width = self.inner + 2 * quiet;
        // Which modules the foreground colour paints.
        let (ansi, paint_dark) = match style {
            TerminalStyle::Utf8Ansi => (true, true),
            TerminalStyle::Utf8Dark => (false, false),
            TerminalStyle::Utf8Light | TerminalStyle::Ascii => (false, true),
        };
        match style {
            TerminalStyle::Utf8Ansi | TerminalStyle::Utf8Dark | TerminalStyle::Utf8Light => {
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
            }
            TerminalStyle::Ascii => {
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
            }
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
        let text = m.to_terminal(TerminalStyle::Utf8Ansi);
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
    fn plain_styles_paint_opposite_modules_and_no_escapes() {
        let m = Matrix::encode(URI).unwrap();
        let dark = m.to_terminal(TerminalStyle::Utf8Dark);
        let light = m.to_terminal(TerminalStyle::Utf8Light);
        assert!(!dark.contains('\x1b') && !light.contains('\x1b'));
        // The quiet zone is light: painted on a dark background, blank on a light one.
        assert!(dark.lines().next().unwrap().chars().all(|c| c == '█'));
        assert!(light.lines().next().unwrap().chars().all(|c| c == ' '));
        let ansi = m.to_terminal(TerminalStyle::Utf8Ansi);
        let stripped = ansi.replace("\x1b[30;47m", "").replace("\x1b[0m", "");
        assert_eq!(stripped, *light);
    }

    #[test]
    fn ascii_and_images_cover_every_module() {
        let m = Matrix::encode(URI).unwrap();
        let ascii = m.to_terminal(TerminalStyle::Ascii);
        assert_eq!(ascii.lines().count(), m.modules() + 4);
        assert!(ascii.is_ascii());
        let png = m.to_png(4).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(m.to_svg().contains("<svg"));
    }
}
