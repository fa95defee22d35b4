//! The text of an invitation mail (`twofold invite`): which apps work, what the next login
//! will show, backup codes, the deadline. Without a key it holds no secret at all; with one
//! (`--with-qr`) it says how long the setup waits and to keep the mail private.
#![forbid(unsafe_code)]

use std::fmt::Write;

use zeroize::Zeroizing;

/// The secret part of a `--with-qr` invitation.
pub struct KeyPart<'a> {
    /// The QR code's file name in the mail.
    pub attachment: &'a str,
    /// The key in groups of four, for typing it in.
    pub grouped_key: &'a str,
    /// "time-based, SHA1, 6 digits, every 30 s".
    pub params: String,
    /// When the pending enrollment expires.
    pub expires: &'a str,
}

pub struct Letter<'a> {
    pub user: &'a str,
    pub issuer: &'a str,
    pub deadline: Option<&'a str>,
    pub key: Option<KeyPart<'a>>,
}

pub const APPS: &str = "  - Google Authenticator (Android, iPhone)\n\
  - Microsoft Authenticator (Android, iPhone)\n\
  - Duo Mobile (Android, iPhone)\n\
  - Authy (Android, iPhone)\n\
  - FreeOTP or FreeOTP+ (Android, iPhone)\n\
  - password managers with one-time codes: 1Password, Bitwarden, KeePassXC\n";

impl Letter<'_> {
    pub fn subject(&self) -> String {
        format!(
            "Set up two-factor authentication for {} on {}",
            self.user, self.issuer
        )
    }

    /// The whole text.
    pub fn text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::new());
        let _ = write!(
            text,
            "Hello {user},\n\n\
             logins to your account {user} on {issuer} are getting a second factor: after your \
             password (or SSH key) you will type a 6-digit code from an app on your phone.\n",
            user = self.user,
            issuer = self.issuer
        );
        if let Some(day) = self.deadline {
            let _ = write!(
                text,
                "\nDeadline: from {day} on you cannot log in without it. Until then a login \
                 offers the setup and lets you put it off.\n"
            );
        }
        let _ = write!(
            text,
            "\nYou need an authenticator app for time-based codes (TOTP). Any of these works:\n{APPS}"
        );
        match &self.key {
            Some(key) => self.with_key(&mut text, key),
            None => self.without_key(&mut text),
        }
        text.push_str(
            "\nBackup codes: the login that finishes the setup shows a few backup codes, once. \
             Write them down or keep them in a safe place: each works once instead of a code \
             if you lose your phone.\n\n\
             Questions? Ask your administrator (a reply to this mail may reach them).\n",
        );
        text
    }

    fn without_key(&self, text: &mut String) {
        let _ = write!(
            text,
            "\nWhat your next login will show:\n\
             1. After your password (or SSH key): that two-factor authentication is not set up \
             yet{offer}, then a QR code in your terminal.\n\
             2. In the app, add an account (\"+\", \"Add account\", \"Scan a QR code\") and scan \
             the code on the screen. If you cannot scan, the login also shows a key to type in.\n\
             3. Type the 6-digit code the app now shows: that finishes the setup.\n\
             From then on every login asks \"Verification code:\" after the password.\n\n\
             This mail holds no secret: the QR code only appears in your own login.\n",
            offer = if self.deadline.is_some() {
                " and whether to set it up now (answer y)"
            } else {
                ""
            }
        );
    }

    fn with_key(&self, text: &mut String, key: &KeyPart<'_>) {
        let _ = write!(
            text,
            "\nSetup, before your next login:\n\
             1. Open the attached picture {file} on your computer's screen.\n\
             2. In the app, add an account (\"+\", \"Add account\", \"Scan a QR code\") and scan it.\n\
             \x20  Cannot scan? Add the account by hand with this key:\n\
             \x20      {grouped}\n\
             \x20  ({params}; account {user} at {issuer})\n\
             3. Log in as usual: after your password, \"Verification code:\" asks for the \
             6-digit code the app shows. The first right code turns two-factor authentication \
             on.\n\n\
             This setup waits until {expires}; after that it no longer works: ask your \
             administrator for a new invitation.\n\n\
             Keep this mail private: anyone who has the picture or the key can make your codes. \
             Delete it once your first login with a code worked.\n",
            file = key.attachment,
            grouped = key.grouped_key,
            params = key.params,
            user = self.user,
            issuer = self.issuer,
            expires = key.expires,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_without_key_names_apps_steps_and_deadline() {
        let letter = Letter {
            user: "alice",
            issuer: "host",
            deadline: Some("2030-01-31"),
            key: None,
        };
        let text = letter.text();
        for needle in [
            "Google Authenticator",
            "Microsoft Authenticator",
            "Duo Mobile",
            "Authy",
            "FreeOTP",
            "Backup codes",
            "2030-01-31",
            "holds no secret",
            "Verification code:",
        ] {
            assert!(text.contains(needle), "{needle} missing from {}", *text);
        }
        assert!(letter.subject().contains("alice on host"));
    }

    #[test]
    fn a_letter_with_key_has_it_and_the_expiry() {
        let letter = Letter {
            user: "alice",
            issuer: "host",
            deadline: None,
            key: Some(KeyPart {
                attachment: "twofold-alice.png",
                grouped_key: "ABCD EFGH",
                params: "time-based, SHA1, 6 digits, every 30 s".into(),
                expires: "2030-01-07T00:00:00Z",
            }),
        };
        let text = letter.text();
        for needle in ["ABCD EFGH", "twofold-alice.png", "2030-01-07", "private"] {
            assert!(text.contains(needle), "{needle} missing from {}", *text);
        }
        assert!(!text.contains("Deadline"));
    }
}
