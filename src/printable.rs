//! Text from records and PAM items made safe to print on a terminal. Records already refuse
//! control characters when parsed (`src/record.rs`); printing escapes them again, so that no
//! path — a future field, a PAM item, a value from the database — can send a terminal escape
//! to an admin's or a user's screen.
#![forbid(unsafe_code)]

use std::borrow::Cow;

/// `text` with control characters (escape sequences, line breaks) and the invisible bidi and
/// zero-width marks that make text read differently than it is written as Rust escapes
/// (`\u{1b}`, `\n`, `\u{202e}`); anything else unchanged.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escapes_terminal_controls_and_bidi_marks_only() {
        assert_eq!(printable("host.example"), "host.example");
        assert_eq!(printable("Ünïcode 例"), "Ünïcode 例");
        assert_eq!(
            printable("evil\u{1b}]0;owned\u{7}\r\nx"),
            "evil\\u{1b}]0;owned\\u{7}\\r\\nx"
        );
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m", "C1 CSI");
    }
}
