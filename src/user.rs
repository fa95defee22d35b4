//! User names as they reach us from PAM or the command line, checked before they name a file.
#![forbid(unsafe_code)]

use std::fmt;

/// Longest user name accepted. Linux itself allows 32 bytes locally; directory services allow
/// more, but a record path (`<name>.toml`, its temp file) must stay far below NAME_MAX (255).
pub const MAX_LEN: usize = 128;

/// A user name that is safe to use as a file name in the store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserNameError {
    Empty,
    TooLong {
        len: usize,
    },
    /// `/`, NUL, a control character: would escape or confuse a path or a log line.
    ForbiddenChar {
        what: &'static str,
    },
    /// Starts with `.` (hidden/temporary files, `..`) or `-` (looks like an option).
    ForbiddenStart,
}

impl fmt::Display for UserNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the user name is empty"),
            Self::TooLong { len } => {
                write!(
                    f,
                    "the user name is {len} bytes long; at most {MAX_LEN} are accepted"
                )
            }
            Self::ForbiddenChar { what } => write!(f, "the user name contains {what}"),
            Self::ForbiddenStart => write!(f, "the user name starts with '.' or '-'"),
        }
    }
}

impl std::error::Error for UserNameError {}

impl UserName {
    pub fn parse(name: &str) -> Result<Self, UserNameError> {
        if name.is_empty() {
            return Err(UserNameError::Empty);
        }
        if name.len() > MAX_LEN {
            return Err(UserNameError::TooLong { len: name.len() });
        }
        if name.starts_with('.') || name.starts_with('-') {
            return Err(UserNameError::ForbiddenStart);
        }
        for c in name.chars() {
            let what = match c {
                '/' => "'/'",
                '\0' => "a NUL byte",
                c if c.is_control() => "a control character",
                _ => continue,
            };
            return Err(UserNameError::ForbiddenChar { what });
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_directory_names() {
        for ok in [
            "alice",
            "bob.smith",
            "svc_backup",
            "alice@example.com",
            "EXAMPLE\\bob",
            "a..b",
        ] {
            assert_eq!(UserName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_names_that_could_escape_the_store() {
        assert_eq!(UserName::parse(""), Err(UserNameError::Empty));
        assert_eq!(UserName::parse(".."), Err(UserNameError::ForbiddenStart));
        assert_eq!(
            UserName::parse(".hidden"),
            Err(UserNameError::ForbiddenStart)
        );
        assert_eq!(UserName::parse("-rf"), Err(UserNameError::ForbiddenStart));
        assert!(matches!(
            UserName::parse("../etc/x"),
            Err(UserNameError::ForbiddenStart)
        ));
        assert!(matches!(
            UserName::parse("a/b"),
            Err(UserNameError::ForbiddenChar { .. })
        ));
        assert!(matches!(
            UserName::parse("a\0b"),
            Err(UserNameError::ForbiddenChar { .. })
        ));
        assert!(matches!(
            UserName::parse("a\nb"),
            Err(UserNameError::ForbiddenChar { .. })
        ));
        let long = "x".repeat(300);
        assert_eq!(
            UserName::parse(&long),
            Err(UserNameError::TooLong { len: 300 })
        );
        assert!(UserName::parse(&"x".repeat(MAX_LEN)).is_ok());
    }
}
