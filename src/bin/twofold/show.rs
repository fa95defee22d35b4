//! What `enroll`, `qr` and `codes` show an admin: the QR code with the key and URI, image
//! files, and a batch of backup codes. Everything here holds a secret: files are created new,
//! 0600 (src/secure_file.rs), never written into a path that exists.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pam_twofold::backup::NewCodes;
use pam_twofold::enroll::grouped_secret;
use pam_twofold::otp::{Secret, TotpParams};
use pam_twofold::qr::{Matrix, Screen};
use pam_twofold::secure_file::{Access, CreateError, NewFile};
use zeroize::Zeroizing;

use crate::cli::QrChoice;
use crate::error::CliError;
use crate::out;

pub const PNG_SCALE: usize = 8;

/// Prints the QR code (unless `--qr none`), the key in groups of four and the URI, all at
/// once. The caller judges a failure: `enroll` must not go on with a key nobody saw.
pub fn enrollment(
    heading: &str,
    matrix: &Matrix,
    secret: &Secret,
    params: TotpParams,
    hotp_counter: Option<u64>,
    uri: &str,
    style: QrChoice,
) -> io::Result<()> {
    // One buffer, wiped after: the key is not left behind in a growing copy either.
    let mut text = Zeroizing::new(Vec::with_capacity(16 * 1024));
    let w = &mut *text;
    writeln!(w, "{heading}")?;
    if let QrChoice(Some(style)) = style {
        writeln!(w, "Scan this QR code with an authenticator app:\n")?;
        w.write_all(matrix.to_terminal(style, Screen::Terminal).as_bytes())?;
        writeln!(w)?;
    }
    writeln!(
        w,
        "Or type this key into the app: {}",
        grouped_secret(secret).as_str()
    )?;
    match hotp_counter {
        None => writeln!(
            w,
            "({}, {} digits, new code every {} s, time-based)",
            params.algorithm, params.digits, params.period
        )?,
        Some(counter) => writeln!(
            w,
            "({}, {} digits, counter-based, counter {counter})",
            params.algorithm, params.digits
        )?,
    }
    writeln!(w, "URI: {uri}")?;
    out::essential(&text)
}

/// The `--png` / `--svg` files, claimed before anything changes: a refused path stops the
/// command with nothing written and nothing stored. Written, they are still removed when
/// dropped unless kept, so an enrollment that is not confirmed leaves no image of its secret.
pub struct Images {
    png: Option<NewFile>,
    svg: Option<NewFile>,
}

impl Images {
    pub fn claim(png: Option<&PathBuf>, svg: Option<&PathBuf>) -> Result<Self, CliError> {
        Ok(Self {
            png: png.map(|p| private_file(p)).transpose()?,
            svg: svg.map(|p| private_file(p)).transpose()?,
        })
    }

    pub fn write(&mut self, matrix: &Matrix) -> Result<(), CliError> {
        if let Some(file) = &mut self.png {
            let png = matrix.to_png(PNG_SCALE)?;
            file.fill(&png).map_err(secret_output)?;
        }
        if let Some(file) = &mut self.svg {
            file.fill(matrix.to_svg().as_bytes())
                .map_err(secret_output)?;
        }
        Ok(())
    }

    pub fn keep(self) {
        self.png.into_iter().chain(self.svg).for_each(NewFile::keep);
    }
}

fn secret_output(e: CreateError) -> CliError {
    CliError::output(e, true)
}

/// Claims a new file for a secret: 0600, refused if the path exists in any form.
pub fn private_file(path: &Path) -> Result<NewFile, CliError> {
    NewFile::create(path, Access::Private).map_err(secret_output)
}

/// Shows a new batch of backup codes once, on the terminal or into `output` (claimed with
/// [`private_file`] before the codes were made, so that a refused path loses none).
pub fn backup_codes(user: &str, codes: &NewCodes, output: Option<NewFile>) -> Result<(), CliError> {
    let mut text = Zeroizing::new(format!(
        "Backup codes for {user}. Each works once instead of a code from the app.\n\
         Keep them somewhere safe: they are not shown again.\n"
    ));
    for code in &codes.shown {
        text.push_str("    ");
        text.push_str(code);
        text.push('\n');
    }
    match output {
        Some(file) => {
            let path = file.path().to_owned();
            file.write(text.as_bytes()).map_err(secret_output)?;
            outln!(
                "{} backup codes written to {} (mode 0600).",
                codes.shown.len(),
                path.display()
            )
        }
        None => out::essential(text.as_bytes()).map_err(|source| CliError::CodesNotShown {
            user: user.to_owned(),
            source,
        }),
    }
}
