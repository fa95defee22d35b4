//! One mail: composed as MIME (a text part, optionally one attachment) and handed to the
//! system's sendmail interface (`sendmail -t -oi`, message on standard input), which every
//! MTA provides (exim, postfix, OpenSMTPD, msmtp…).
//!
//! Headers carry only checked text: addresses pass `mail::check_address` (no display names,
//! no spaces), every other value is refused if it holds a control character, so nothing a
//! caller passes can start a header (`Bcc:`) or a part of its own. Recipients are read by
//! the MTA from the To: header (`-t`): no address ever reaches its command line.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pam_twofold::login::format_time;
use pam_twofold::mail::check_address;
use zeroize::Zeroizing;

/// Base64 lines of an attachment (RFC 2045: at most 76 characters).
const BASE64_LINE: usize = 76;

pub struct Attachment {
    pub filename: String,
    pub content_type: &'static str,
    pub bytes: Zeroizing<Vec<u8>>,
}

pub struct Mail<'a> {
    pub to: &'a str,
    pub from: Option<&'a str>,
    pub subject: &'a str,
    pub text: &'a str,
    pub attachment: Option<&'a Attachment>,
}

#[derive(Debug)]
pub enum MailError {
    BadAddress {
        address: String,
        why: String,
    },
    BadHeader {
        name: &'static str,
    },
    NoSendmail {
        program: PathBuf,
    },
    Run {
        program: PathBuf,
        source: io::Error,
    },
    Refused {
        program: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress { address, why } => write!(
                f,
                "refusing mail address {:?}: {why}; give a plain address like alice@example.org",
                address.escape_debug().to_string()
            ),
            Self::BadHeader { name } => write!(
                f,
                "refusing to write the {name} header: it holds a line break or control character"
            ),
            Self::NoSendmail { program } => write!(
                f,
                "{} does not exist: install a mail server that provides it (apt-get install \
                 exim4-daemon-light, or postfix), or set [mail] sendmail to your MTA's sendmail",
                program.display()
            ),
            Self::Run { program, source } => {
                write!(f, "cannot run {}: {source}", program.display())
            }
            Self::Refused {
                program,
                status,
                stderr,
            } => write!(
                f,
                "{} refused the mail ({status}){}{}; check the MTA's log (e.g. /var/log/exim4/mainlog) and [mail] in the policy",
                program.display(),
                if stderr.is_empty() { "" } else { ": " },
                stderr
            ),
        }
    }
}

impl std::error::Error for MailError {}

/// Checks `address` for a header; the error quotes it escaped.
pub fn address(address: &str) -> Result<&str, MailError> {
    check_address(address).map_err(|why| MailError::BadAddress {
        address: address.to_owned(),
        why,
    })?;
    Ok(address)
}

fn header_text<'a>(name: &'static str, value: &'a str) -> Result<&'a str, MailError> {
    if value.chars().any(char::is_control) {
        return Err(MailError::BadHeader { name });
    }
    Ok(value)
}

/// A header value as-is when ASCII, else as an RFC 2047 encoded word.
fn encoded(value: &str) -> String {
    if value.is_ascii() {
        value.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(value))
    }
}

/// RFC 5322's date: `Tue, 26 Nov 2024 14:26:00 +0000` (UTC).
pub fn rfc5322_date(now: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = now.clamp(0, 253_402_300_799);
    let iso = format_time(now); // 2024-11-26T14:26:00Z
    let weekday = DAYS[usize::try_from((now.div_euclid(86_400) + 4) % 7).unwrap_or(0)];
    let month: usize = iso[5..7].parse().unwrap_or(1);
    format!(
        "{weekday}, {} {} {} {} +0000",
        iso[8..10].trim_start_matches('0'),
        MONTHS[month.clamp(1, 12) - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

fn random_hex() -> String {
    let mut bytes = [0u8; 12];
    // Uniqueness, not secrecy: on failure the time and process id still tell mails apart.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The whole message, headers and body, with LF line ends (sendmail's local convention).
pub fn compose(mail: &Mail<'_>, now: i64, host: &str) -> Result<Zeroizing<String>, MailError> {
    let to = address(mail.to)?;
    let from = mail.from.map(address).transpose()?;
    let subject = header_text("Subject", mail.subject)?;
    let host = if check_address(&format!("x@{host}")).is_ok() {
        host
    } else {
        "localhost"
    };
    let unique = format!("{now}.{}.{}", std::process::id(), random_hex());
    let mut out = Zeroizing::new(String::new());
    if let Some(from) = from {
        out.push_str(&format!("From: {from}\n"));
    }
    out.push_str(&format!(
        "To: {to}\nSubject: {}\nDate: {}\nMessage-ID: <{unique}@{host}>\nMIME-Version: 1.0\n\
         Auto-Submitted: auto-generated\n",
        encoded(subject),
        rfc5322_date(now)
    ));
    let text_part = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n";
    let Some(attachment) = mail.attachment else {
        out.push_str(text_part);
        out.push('\n');
        out.push_str(&body_text(mail.text));
        return Ok(out);
    };
    let filename = header_text("attachment file name", &attachment.filename)?;
    if filename.contains(['"', '\\']) {
        return Err(MailError::BadHeader {
            name: "attachment file name",
        });
    }
    let boundary = format!("=_twofold_{unique}");
    out.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\n\n\
         This is a MIME message.\n\n--{boundary}\n{text_part}\n"
    ));
    out.push_str(&body_text(mail.text));
    out.push_str(&format!(
        "\n--{boundary}\nContent-Type: {}; name=\"{filename}\"\n\
         Content-Disposition: attachment; filename=\"{filename}\"\n\
         Content-Transfer-Encoding: base64\n\n",
        attachment.content_type
    ));
    let encoded = Zeroizing::new(STANDARD.encode(&attachment.bytes[..]));
    for line in encoded.as_bytes().chunks(BASE64_LINE) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("--{boundary}--\n"));
    Ok(out)
}

/// The text with LF line ends and a final newline.
fn body_text(text: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(text.replace("\r\n", "\n"));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Hands `message` to `program -t -oi` and waits for it: exit status 0 means the MTA took it
/// (delivery itself may come later; failures then come back as a bounce).
pub fn send(program: &Path, message: &str) -> Result<(), MailError> {
    let run_error = |source: io::Error| MailError::Run {
        program: program.to_owned(),
        source,
    };
    let mut child = Command::new(program)
        .args(["-t", "-oi"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => MailError::NoSendmail {
                program: program.to_owned(),
            },
            _ => run_error(source),
        })?;
    let written = child
        .stdin
        .take()
        .map_or(Ok(()), |mut stdin| stdin.write_all(message.as_bytes()));
    let output = child.wait_with_output().map_err(run_error)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: String = stderr.trim().chars().take(500).collect();
        return Err(MailError::Refused {
            program: program.to_owned(),
            status: output.status,
            stderr: stderr.escape_debug().to_string(),
        });
    }
    written.map_err(run_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail<'a>(to: &'a str, subject: &'a str, attachment: Option<&'a Attachment>) -> Mail<'a> {
        Mail {
            to,
            from: Some("root@host.example"),
            subject,
            text: "Hello.\nStep 1.",
            attachment,
        }
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_732_631_160),
            "Tue, 26 Nov 2024 14:26:00 +0000"
        );
    }

    #[test]
    fn a_plain_mail_has_its_headers_and_text() {
        let text = compose(&mail("alice@example.org", "Set up 2FA", None), 0, "h").unwrap();
        let (head, body) = text.split_once("\n\n").unwrap();
        for header in [
            "From: root@host.example",
            "To: alice@example.org",
            "Subject: Set up 2FA",
            "Date: Thu, 1 Jan 1970 00:00:00 +0000",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
        ] {
            assert!(head.lines().any(|l| l == header), "{header} in {head}");
        }
        assert!(
            head.lines()
                .any(|l| l.starts_with("Message-ID: <0.") && l.ends_with("@h>"))
        );
        assert_eq!(body, "Hello.\nStep 1.\n");
        let utf8 = compose(&mail("a", "Zwei Faktoren für dich", None), 0, "h").unwrap();
        assert!(utf8.contains("Subject: =?UTF-8?B?"), "{}", *utf8);
    }

    #[test]
    fn an_attachment_is_base64_in_76_character_lines() {
        let png = Attachment {
            filename: "twofold-alice.png".into(),
            content_type: "image/png",
            bytes: Zeroizing::new((0..=255u8).cycle().take(1000).collect()),
        };
        let text = compose(&mail("alice", "s", Some(&png)), 0, "h").unwrap();
        assert!(text.contains("Content-Type: multipart/mixed; boundary=\"=_twofold_"));
        assert!(text.contains(
            "Content-Disposition: attachment; filename=\"twofold-alice.png\"\n\
             Content-Transfer-Encoding: base64\n\n"
        ));
        let b64: Vec<&str> = text
            .split("base64\n\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| !l.starts_with("--"))
            .collect();
        assert!(b64.iter().all(|l| l.len() <= 76) && b64[0].len() == 76);
        assert_eq!(STANDARD.decode(b64.concat()).unwrap(), *png.bytes);
        assert!(text.trim_end().ends_with("--"));
    }

    #[test]
    fn header_injection_is_refused() {
        for to in [
            "alice@example.org\nBcc: eve@evil.example",
            "alice\r\nSubject: x",
            "Alice <alice@example.org>",
            "alice,eve",
        ] {
            let err = compose(&mail(to, "s", None), 0, "h").unwrap_err();
            assert!(matches!(err, MailError::BadAddress { .. }), "{to:?}: {err}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        let err = compose(&mail("alice", "a\nBcc: eve", None), 0, "h").unwrap_err();
        assert!(matches!(err, MailError::BadHeader { name: "Subject" }));
    }

    #[test]
    fn sendmail_is_run_and_its_failure_reported() {
        let err = send(Path::new("/nonexistent/sendmail"), "x").unwrap_err();
        assert!(err.to_string().contains("exim4-daemon-light"), "{err}");
        let err = send(Path::new("/bin/false"), "To: a\n\nx\n").unwrap_err();
        assert!(matches!(err, MailError::Refused { .. }), "{err}");
        // A stand-in MTA that checks its arguments and keeps the message.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("sendmail");
        let kept = dir.path().join("message");
        let script = format!(
            "#!/bin/sh\n[ \"$*\" = \"-t -oi\" ] || exit 9\ncat > '{}'\n",
            kept.display()
        );
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        send(&fake, "To: a\n\nx\n").unwrap();
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "To: a\n\nx\n");
    }
}
