//! Self-service: what `twofold-self` (a small setuid helper) lets a user do to their own
//! enrollment, decided here so that the rule is unit-tested and the helper stays small.
//!
//! - [`caller`]: the one account a real uid names (never a name from an argument or the
//!   environment);
//! - [`permit`]: whether the policy's `[self_service]` section lets that account take an
//!   action; disabling is never allowed for a user the policy requires.
//!
//! The changes themselves are [`crate::manage`]'s, shared with the admin CLI.
#![forbid(unsafe_code)]

pub mod settings;

use std::fmt;

use crate::policy::{Policy, PolicyError, in_any_group};
use crate::rules;
use crate::user::{Account, AccountError, Directory};
pub use settings::{Action, SelfServiceSection};

/// The PAM service `twofold-self` authenticates its caller through (`/etc/pam.d/twofold-self`).
pub const PAM_SERVICE: &str = "twofold-self";

/// Why the policy refuses an action. `Display` is what the user is told.
#[derive(Debug)]
pub enum Refusal {
    /// `[self_service] allow` does not list it.
    NotAllowed { action: Action },
    /// `[self_service] groups` does not include the user.
    NotInGroups,
    /// Policy requires 2FA of this user: they cannot turn it off.
    Required,
    /// "trust this host" would let this very service skip the code it exists to ask for.
    TrustCoversSelfService,
    /// A `[[rule]]` with `action = "skip"` matches this service for the user: the password
    /// alone would change an enrollment that guards every other login.
    RuleSkipsSelfService { rule: String },
    /// A group or account lookup failed: refused, never guessed.
    Policy(PolicyError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAllowed { action } => write!(
                f,
                "your administrator does not let users {what} themselves ([self_service] allow in \
                 /etc/twofold/twofold.toml); ask them",
                what = match action {
                    Action::Status => "see their 2FA status",
                    Action::Enroll => "set up 2FA",
                    Action::NewPhone => "move 2FA to a new phone",
                    Action::Codes => "manage their backup codes",
                    Action::Trust => "manage their trusted computers",
                    Action::Disable => "turn 2FA off",
                    Action::Enable => "turn 2FA back on",
                }
            ),
            Self::NotInGroups => f.write_str(
                "self-service is only for members of the groups in [self_service] groups; ask \
                 your administrator",
            ),
            Self::Required => f.write_str(
                "the policy requires 2FA for you, so you cannot turn it off; to move it to a new \
                 phone use `twofold-self new-phone`",
            ),
            Self::TrustCoversSelfService => write!(
                f,
                "the policy's [trust] services lists \"{PAM_SERVICE}\": a trusted computer would \
                 skip the very code self-service asks for; ask your administrator to remove it"
            ),
            Self::RuleSkipsSelfService { rule } => write!(
                f,
                "the policy's rule \"{rule}\" skips the code on the \"{PAM_SERVICE}\" service \
                 for you, so changing your 2FA would need only your password; ask your \
                 administrator to give that rule a `service` list without \"{PAM_SERVICE}\""
            ),
            Self::Policy(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Refusal {}

/// The canonical account of `uid`: NSS's name for it, which must resolve back to this very
/// uid as the one canonical account (no alias, no second name on the uid).
pub fn caller(directory: &impl Directory, uid: u32) -> Result<Account, AccountError> {
    let lookup = |error| AccountError::Lookup {
        given: format!("uid {uid}"),
        error,
    };
    let entry = directory
        .by_uid(uid)
        .map_err(lookup)?
        .ok_or_else(|| AccountError::Unknown {
            given: format!("uid {uid}"),
        })?;
    let account = Account::resolve(directory, &entry.name)?;
    if account.uid != uid {
        return Err(lookup(format!(
            "its name '{}' resolves to uid {}",
            entry.name, account.uid
        )));
    }
    Ok(account)
}

/// Whether the policy lets `account` take `action` on their own enrollment.
pub fn permit(policy: &Policy, account: &Account, action: Action) -> Result<(), Refusal> {
    let section = &policy.self_service;
    if !section.allows(action) {
        return Err(Refusal::NotAllowed { action });
    }
    if policy.trust.covers(PAM_SERVICE) {
        return Err(Refusal::TrustCoversSelfService);
    }
    if !section.groups.is_empty()
        && !in_any_group(account, &section.groups).map_err(Refusal::Policy)?
    {
        return Err(Refusal::NotInGroups);
    }
    if changes_an_enrollment(action) {
        if let Some(rule) = skipping_rule(policy, account).map_err(Refusal::Policy)? {
            return Err(Refusal::RuleSkipsSelfService { rule });
        }
    }
    if action == Action::Disable && policy.requires_2fa(account).map_err(Refusal::Policy)? {
        return Err(Refusal::Required);
    }
    Ok(())
}

/// Actions on an enrollment that already guards the user's logins: they must cost the code
/// itself. (`status` changes nothing; `enroll` starts from no enrollment.)
fn changes_an_enrollment(action: Action) -> bool {
    !matches!(action, Action::Status | Action::Enroll)
}

/// The `[[rule]]` that would skip the code when `account` authenticates to this service, if
/// any: the login facts of `twofold-self` (a local service: no remote host, no SSH methods).
fn skipping_rule(policy: &Policy, account: &Account) -> Result<Option<String>, PolicyError> {
    let none = rules::ssh::parse(None);
    let facts = rules::Facts {
        service: PAM_SERVICE,
        user: account.name.as_str(),
        rhost: None,
        auth_info: &none,
        network_service: false,
    };
    let mut in_group = |groups: &[String]| in_any_group(account, groups);
    let decision = rules::decide(&policy.rule, &facts, &mut in_group)?;
    Ok(decision
        .filter(|d| d.action == rules::Action::Skip)
        .map(|d| d.rule_name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::tests::Table;
    use crate::user::{Entry, UserName};
    use std::path::Path;

    fn policy(text: &str) -> Policy {
        Policy::parse(text, Path::new("/test/twofold.toml")).unwrap()
    }

    /// An account in no group (gid of a group that need not exist): `require = "all"` and
    /// `allow` decide without any NSS group lookup.
    fn someone() -> Account {
        Account {
            name: UserName::parse("someone").unwrap(),
            uid: 4242,
            gid: 4242,
        }
    }

    #[test]
    fn the_caller_is_the_canonical_account_of_the_uid() {
        let table = Table::with(&["alice", "bob"]);
        let alice_uid = table.by_name("alice").unwrap().unwrap().uid;
        assert_eq!(caller(&table, alice_uid).unwrap().name.as_str(), "alice");
        assert!(matches!(
            caller(&table, 99_999),
            Err(AccountError::Unknown { .. })
        ));
    }

    /// A directory whose uid lookup names an account that resolves to another uid.
    struct Crossed;
    impl Directory for Crossed {
        fn by_name(&self, name: &str) -> Result<Option<Entry>, String> {
            Ok(Some(Entry {
                name: name.to_owned(),
                uid: 2000,
                gid: 2000,
            }))
        }
        fn by_uid(&self, uid: u32) -> Result<Option<Entry>, String> {
            Ok(Some(Entry {
                name: if uid == 2000 { "bob" } else { "alice" }.to_owned(),
                uid,
                gid: uid,
            }))
        }
    }

    #[test]
    fn a_uid_whose_name_points_elsewhere_is_refused() {
        assert!(caller(&Crossed, 1000).is_err());
    }

    #[test]
    fn by_default_everything_is_allowed_to_whoever_is_not_required() {
        let open = policy("");
        for action in Action::ALL {
            assert!(permit(&open, &someone(), action).is_ok(), "{action}");
        }
    }

    #[test]
    fn a_required_user_cannot_disable_but_can_do_the_rest() {
        let strict = policy("[policy]\nrequire = \"all\"\n");
        assert!(matches!(
            permit(&strict, &someone(), Action::Disable),
            Err(Refusal::Required)
        ));
        assert!(permit(&strict, &someone(), Action::NewPhone).is_ok());
        assert!(permit(&strict, &someone(), Action::Enable).is_ok());
    }

    #[test]
    fn the_allow_list_is_obeyed() {
        let narrow = policy("[self_service]\nallow = [\"status\", \"codes\"]\n");
        assert!(permit(&narrow, &someone(), Action::Codes).is_ok());
        for action in [Action::Enroll, Action::NewPhone, Action::Disable] {
            assert!(matches!(
                permit(&narrow, &someone(), action),
                Err(Refusal::NotAllowed { .. })
            ));
        }
        let off = policy("[self_service]\nallow = []\n");
        assert!(permit(&off, &someone(), Action::Status).is_err());
    }

    #[test]
    fn an_unknown_group_refuses_instead_of_letting_through() {
        let grouped = policy("[self_service]\ngroups = [\"twofold-no-such-group-xyz\"]\n");
        assert!(matches!(
            permit(&grouped, &someone(), Action::Status),
            Err(Refusal::Policy(PolicyError::UnknownGroup { .. }))
        ));
    }

    #[test]
    fn a_skip_rule_on_the_self_service_stack_refuses_changes_but_not_status_or_enroll() {
        let skipping = policy(
            "[[rule]]\nname = \"everyone-local\"\naction = \"skip\"\nuser = [\"someone\"]\n",
        );
        for action in [
            Action::NewPhone,
            Action::Codes,
            Action::Trust,
            Action::Disable,
            Action::Enable,
        ] {
            assert!(
                matches!(
                    permit(&skipping, &someone(), action),
                    Err(Refusal::RuleSkipsSelfService { ref rule }) if rule == "everyone-local"
                ),
                "{action}"
            );
        }
        assert!(permit(&skipping, &someone(), Action::Status).is_ok());
        assert!(permit(&skipping, &someone(), Action::Enroll).is_ok());
        // A rule kept off the self-service stack, or one that requires, changes nothing.
        for text in [
            "[[rule]]\nname = \"ssh-only\"\naction = \"skip\"\nservice = [\"sshd\"]\n",
            "[[rule]]\nname = \"from-lan\"\naction = \"skip\"\nservice = [\"sshd\"]\nfrom = [\"10.0.0.0/8\"]\n",
            "[[rule]]\nname = \"strict\"\naction = \"require\"\nuser = [\"someone\"]\n",
        ] {
            assert!(
                permit(&policy(text), &someone(), Action::NewPhone).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn trust_on_the_self_service_stack_is_refused() {
        let trusting = policy("[trust]\ndays = 7\nservices = [\"sshd\", \"twofold-self\"]\n");
        assert!(matches!(
            permit(&trusting, &someone(), Action::Codes),
            Err(Refusal::TrustCoversSelfService)
        ));
    }
}
