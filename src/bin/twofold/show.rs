//! What `enroll`, `qr` and `codes` show an admin: the QR code with the key and URI, image
//! files, and a batch of backup codes. Everything here holds a secret: files are 0600.
#![forbid(unsafe_code)]

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use pam_twofold::backup::NewCodes;
use pam_twofold::enroll::grouped_secret;
use pam_twofold::otp::{Secret, TotpParams};
use pam_twofold::qr::{Matrix, TerminalStyle};

use crate::cli::QrStyle;
use crate::error::CliError;

const PNG_SCALE: usize = 8;

fn stdout_error(source: io::Error) -> CliError {
    CliError::Io {
        what: "write to standard output".into(),
        source,
    }
}

/// Prints the QR code (unless `--qr none`), the key in groups of four and the URI.
pub fn enrollment(
    heading: &str,
    matrix: &Matrix,
    secret: &Secret,
    params: TotpParams,
    hotp_counter: Option<u64>,
    uri: &str,
    style: QrStyle,
) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    let style = match style {
        QrStyle::Utf8 => Some(TerminalStyle::Utf8Ansi),
        QrStyle::Ascii => Some(TerminalStyle::Ascii),
        QrStyle::None => None,
    };
    (|| -> io::Result<()> {
        writeln!(out, "{heading}")?;
        if let Some(style) = style {
            writeln!(out, "Scan this QR code with an authenticator app:\n")?;
            out.write_all(matrix.to_terminal(style).as_bytes())?;
            writeln!(out)?;
        }
        writeln!(
            out,
            "Or type this key into the app: {}",
            grouped_secret(secret).as_str()
        )?;
        match hotp_counter {
            None => writeln!(
                out,
                "({}, {} digits, new code every {} s, time-based)",
                params.algorithm, params.digits, params.period
            )?,
            Some(counter) => writeln!(
                out,
                "({}, {} digits, counter-based, counter {counter})",
                params.algorithm, params.digits
            )?,
        }
        writeln!(out, "URI: {uri}")?;
        out.flush()
    })()
    .map_err(stdout_error)
}

/// Writes `--png` / `--svg` if asked.
pub fn images(
    matrix: &Matrix,
    png: Option<&PathBuf>,
    svg: Option<&PathBuf>,
) -> Result<(), CliError> {
    if let Some(path) = png {
        write_private(path, &matrix.to_png(PNG_SCALE)?)?;
    }
    if let Some(path) = svg {
        write_private(path, matrix.to_svg().as_bytes())?;
    }
    Ok(())
}

/// Shows a new batch of backup codes once, on the terminal or into `output`.
pub fn backup_codes(user: &str, codes: &NewCodes, output: Option<&Path>) -> Result<(), CliError> {
    let mut text = zeroize::Zeroizing::new(format!(
        "Backup codes for {user}. Each works once instead of a code from the app.\n\
         Keep them somewhere safe: they are not shown again.\n"
    ));
    for code in &codes.shown {
        text.push_str("    ");
        text.push_str(code);
        text.push('\n');
    }
    match output {
        Some(path) => {
            write_private(path, text.as_bytes())?;
            println!(
                "{} backup codes written to {} (mode 0600).",
                codes.shown.len(),
                path.display()
            );
            Ok(())
        }
        None => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(stdout_error)
        }
    }
}

/// Writes a file that holds a secret: mode 0600, never through a symlink.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.is_file() {
            return Err(CliError::ImageExists {
                path: path.to_owned(),
            });
        }
    }
    let io_err = |source| CliError::Io {
        what: format!("write {}", path.display()),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err)
}
