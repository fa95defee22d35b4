//! The `[mail]` settings of `twofold invite` and the one check of a mail address. The policy
//! holds and checks them; the CLI composes and sends the mail (src/bin/twofold/mail.rs). The
//! module never sends mail.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use serde::Deserialize;

/// Longest address accepted (RFC 5321's limit on a forward path).
const MAX_ADDRESS: usize = 254;
/// Longest pending enrollment: a secret that waits in a mailbox longer is a liability.
pub const MAX_PENDING_DAYS: u32 = 90;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSection {
    /// Invitations go to USER@domain; without it, to the local account USER.
    pub domain: Option<String>,
    /// The From: address; without it the MTA writes the invoking user's (root@host).
    pub from: Option<String>,
    /// The sendmail interface every MTA provides; run as `sendmail -t -oi`.
    pub sendmail: PathBuf,
    /// Days a pending enrollment (`invite --with-qr`) waits for its first code.
    pub pending_days: u32,
}

impl Default for MailSection {
    fn default() -> Self {
        Self {
            domain: None,
            from: None,
            sendmail: PathBuf::from("/usr/sbin/sendmail"),
            pending_days: 7,
        }
    }
}

impl MailSection {
    /// The values a key's type allows but mail does not; messages name the key.
    pub fn check(&self) -> Result<(), String> {
        if let Some(domain) = &self.domain {
            check_domain(domain).map_err(|m| format!("domain {domain:?}: {m}"))?;
        }
        if let Some(from) = &self.from {
            check_address(from).map_err(|m| format!("from {from:?}: {m}"))?;
        }
        if !self.sendmail.is_absolute() {
            return Err("sendmail must be an absolute path (\"/usr/sbin/sendmail\")".into());
        }
        if !(1..=MAX_PENDING_DAYS).contains(&self.pending_days) {
            return Err(format!("pending_days must be 1 to {MAX_PENDING_DAYS}"));
        }
        Ok(())
    }

    /// Where `user`'s invitation goes: USER@domain, or the local account.
    pub fn address_of(&self, user: &str) -> String {
        match &self.domain {
            Some(domain) => format!("{user}@{domain}"),
            None => user.to_owned(),
        }
    }
}

/// A plain address: `local@domain`, or a bare local account name (local delivery). No display
/// names, comments, quoting, spaces or control characters: what goes into a header is exactly
/// this text, so nothing can be smuggled into the mail's headers or the MTA's command line.
pub fn check_address(address: &str) -> Result<(), String> {
    if address.is_empty() || address.len() > MAX_ADDRESS {
        return Err(format!("an address has 1 to {MAX_ADDRESS} characters"));
    }
    if let Some(bad) = address.chars().find(|c| c.is_control()) {
        return Err(format!(
            "control character {bad:?} (a line break would start a header of its own)"
        ));
    }
    let (local, domain) = match address.split_once('@') {
        Some((local, domain)) => (local, Some(domain)),
        None => (address, None),
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    if local.is_empty()
        || local.starts_with(['.', '-'])
        || local.ends_with('.')
        || local.contains("..")
        || !local.chars().all(atext)
    {
        return Err(
            "the part before @ may hold letters, digits and !#$%&'*+-/=?^_`{|}~. only \
                    (not first or last, no spaces, quotes or brackets)"
                .into(),
        );
    }
    domain.map_or(Ok(()), check_domain)
}

/// A host name: dot-separated labels of letters, digits and inner hyphens.
fn check_domain(domain: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err("a domain is labels of letters, digits and hyphens separated by dots".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_plain_or_refused() {
        for good in [
            "alice",
            "alice@example.org",
            "a.b+tag@mail.example-corp.com",
            "tf123x4",
        ] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "alice@example.org\nBcc: eve@evil.example",
            "alice@example.org\r\n",
            "alice\u{0}",
            "Alice <alice@example.org>",
            "alice@example.org, eve@evil.example",
            "-oQ/tmp/x",
            "alice@-bad.example",
            "alice@exa_mple.org",
            "alice@",
            "@example.org",
            "a..b@example.org",
            "\"quoted\"@example.org",
            "älice@example.org",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_address(&format!("{}@x.org", "a".repeat(260))).is_err());
    }

    #[test]
    fn settings_are_checked() {
        let mut s = MailSection::default();
        assert_eq!(s.check(), Ok(()));
        assert_eq!(s.address_of("bob"), "bob");
        s.domain = Some("example.org".into());
        assert_eq!(s.address_of("bob"), "bob@example.org");
        s.pending_days = 0;
        assert!(s.check().unwrap_err().contains("pending_days"));
        s.pending_days = 7;
        s.sendmail = PathBuf::from("sendmail");
        assert!(s.check().unwrap_err().contains("absolute"));
        s.sendmail = PathBuf::from("/usr/sbin/sendmail");
        s.domain = Some("example.org\nBcc: x".into());
        assert!(s.check().unwrap_err().contains("domain"));
    }
}
