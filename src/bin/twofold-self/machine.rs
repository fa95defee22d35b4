//! `twofold-self --json`: the same commands and the same authentication for a program (the
//! Cockpit page, cockpit/twofold/) instead of a person at a terminal. Every line on standard
//! output is one JSON object, an [`Event`]; a `prompt` event is answered by one line on
//! standard input, exactly as in a terminal (PAM's password and code questions, the
//! enrollment's confirming code). Errors still go to standard error as text, with the exit
//! status. Nothing here reaches the store: only how things are shown changes.
#![forbid(unsafe_code)]

use std::io::{self, Write};

use pam_twofold::enroll::{Enrollment, grouped_secret};
use pam_twofold::qr::Matrix;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::SelfError;

/// One line of output in machine mode.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event<'a> {
    /// A message a terminal would print as a line.
    Say(&'a str),
    /// PAM_TEXT_INFO / PAM_ERROR_MSG from the stack, or a wrong confirming code.
    Info(&'a str),
    Error(&'a str),
    /// A question: answer with one line on standard input.
    Prompt {
        text: &'a str,
        hidden: bool,
    },
    /// A new key to scan: the QR code as SVG and the key typed by hand. Shown once.
    Key(KeyView<'a>),
    /// New backup codes, shown once.
    Codes(Vec<&'a str>),
    /// `status`: the caller's own state and the actions the policy lets them take.
    Status(StatusView<'a>),
}

#[derive(Serialize)]
pub struct KeyView<'a> {
    pub user: &'a str,
    pub issuer: &'a str,
    pub svg: &'a str,
    pub secret: &'a str,
    pub algorithm: &'static str,
    pub digits: u8,
    pub period: u32,
}

#[derive(Serialize)]
pub struct StatusView<'a> {
    pub user: &'a str,
    pub enrolled: bool,
    /// "enabled", "disabled" or "pending"; none when not enrolled.
    pub state: Option<&'a str>,
    /// None when a group lookup failed.
    pub required: Option<bool>,
    pub backup_codes_left: usize,
    pub locked_until: Option<String>,
    pub trusted: Vec<TrustedView>,
    /// The `[self_service]` actions this caller may take.
    pub allowed: Vec<&'static str>,
}

#[derive(Serialize)]
pub struct TrustedView {
    pub host: String,
    pub service: Option<String>,
    pub expires: String,
}

/// Writes one event as one line; the buffer is wiped (a key or codes may be in it).
pub fn emit(event: &Event) -> Result<(), SelfError> {
    let mut line = Zeroizing::new(Vec::new());
    serde_json::to_writer(&mut *line, event).map_err(|e| SelfError::Show(io::Error::other(e)))?;
    line.push(b'\n');
    let mut out = io::stdout().lock();
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(SelfError::Show)
}

/// The new key of `enrollment` as a [`Event::Key`].
pub fn emit_key(enrollment: &Enrollment) -> Result<(), SelfError> {
    let svg = Matrix::encode(enrollment.uri())?.to_svg();
    let secret = grouped_secret(enrollment.secret());
    let params = enrollment.params();
    emit(&Event::Key(KeyView {
        user: enrollment.user().as_str(),
        issuer: enrollment.issuer(),
        svg: &svg,
        secret: &secret,
        algorithm: params.algorithm.as_str(),
        digits: params.digits,
        period: params.period,
    }))
}
