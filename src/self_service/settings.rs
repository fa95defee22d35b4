//! The `[self_service]` policy section: which actions `twofold-self` offers, and to whom.
//! The policy holds it and checks it ([`check_settings`]); the decision that uses it is
//! [`super::permit`].
#![forbid(unsafe_code)]

use std::fmt;

use serde::Deserialize;

/// What a user can do to their own enrollment with `twofold-self`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// See their own state (read-only, no re-authentication).
    Status,
    /// Enroll when not enrolled.
    Enroll,
    /// Replace the secret with a new one (a new phone), confirmed by its first code.
    NewPhone,
    /// Regenerate or delete their backup codes (and count them).
    Codes,
    /// Forget trusted computers (and list them).
    Trust,
    /// Stop being asked for a code, keeping the secret. Never for a user policy requires.
    Disable,
    /// Be asked for codes again after `disable`.
    Enable,
}

impl Action {
    /// Every action, in the order the policy's default lists them.
    pub const ALL: [Action; 7] = [
        Self::Status,
        Self::Enroll,
        Self::NewPhone,
        Self::Codes,
        Self::Trust,
        Self::Disable,
        Self::Enable,
    ];

    /// The name in the policy, in logs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Enroll => "enroll",
            Self::NewPhone => "new-phone",
            Self::Codes => "codes",
            Self::Trust => "trust",
            Self::Disable => "disable",
            Self::Enable => "enable",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfServiceSection {
    /// The actions users may take on their own enrollment; `[]` turns `twofold-self` off.
    pub allow: Vec<Action>,
    /// Only members of these groups (NSS) may use it; `[]`: every user.
    pub groups: Vec<String>,
}

impl Default for SelfServiceSection {
    fn default() -> Self {
        Self {
            allow: Action::ALL.to_vec(),
            groups: Vec::new(),
        }
    }
}

impl SelfServiceSection {
    pub fn allows(&self, action: Action) -> bool {
        self.allow.contains(&action)
    }
}

/// Values the types allow but the policy does not; the message names the key.
pub fn check_settings(section: &SelfServiceSection) -> Result<(), String> {
    for (i, action) in section.allow.iter().enumerate() {
        if section.allow[..i].contains(action) {
            return Err(format!("allow names \"{action}\" twice"));
        }
    }
    if section
        .groups
        .iter()
        .any(|g| g.is_empty() || g.chars().any(|c| c.is_control() || c == ':'))
    {
        return Err("groups must be group names (not empty, no ':' or control characters)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allows_every_action_to_everyone() {
        let section = SelfServiceSection::default();
        assert!(Action::ALL.iter().all(|a| section.allows(*a)));
        assert!(section.groups.is_empty());
        assert_eq!(check_settings(&section), Ok(()));
    }

    #[test]
    fn names_round_trip_and_mistakes_are_refused() {
        for action in Action::ALL {
            let parsed: SelfServiceSection =
                toml::from_str(&format!("allow = [\"{action}\"]")).unwrap();
            assert_eq!(parsed.allow, vec![action]);
        }
        assert!(toml::from_str::<SelfServiceSection>("allow = [\"unlock\"]").is_err());
        assert!(toml::from_str::<SelfServiceSection>("alow = []").is_err());
        let twice: SelfServiceSection = toml::from_str("allow = [\"codes\", \"codes\"]").unwrap();
        assert!(check_settings(&twice).unwrap_err().contains("twice"));
        let empty_group: SelfServiceSection = toml::from_str("groups = [\"\"]").unwrap();
        assert!(check_settings(&empty_group).is_err());
    }
}
