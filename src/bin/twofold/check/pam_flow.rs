//! Every way through an auth stack, as Linux-PAM's dispatcher walks it (`pam_dispatch.c`):
//! each module may return success, a failure or "ignore" (known modules only what they can:
//! pam_deny fails, pam_permit succeeds), and the control decides what follows. For one
//! twofold line (the target) this tells whether it can be reached without a proven first
//! factor, and whether the stack can succeed while the target never ran or failed.
//!
//! Pure: works on a [`super::pam_stack::Stack`].
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use super::pam_stack::{Action, At, Entry, Module};

/// Modules that check a password (or another first factor) against a directory.
const FIRST_FACTORS: &[&str] = &[
    "pam_unix",
    "pam_unix2",
    "pam_sss",
    "pam_ldap",
    "pam_krb5",
    "pam_winbind",
    "pam_pwdb",
    "pam_userdb",
    "pam_radius_auth",
    "pam_tacplus",
    "pam_mysql",
    "pam_pgsql",
    "pam_systemd_home",
];

/// The failures a module may return, by Linux-PAM's names (controls can tell them apart).
const FAILURES: &[&str] = &[
    "auth_err",
    "cred_insufficient",
    "authinfo_unavail",
    "user_unknown",
    "maxtries",
    "perm_denied",
    "service_err",
    "system_err",
    "conv_err",
    "module_unknown",
    "abort",
];

pub fn is_first_factor(module: &Module) -> bool {
    FIRST_FACTORS.contains(&module.name())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Returned {
    Success,
    Ignore,
    Fail(&'static str),
}

impl Returned {
    fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Ignore => "ignore",
            Self::Fail(name) => name,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Impression {
    Undecided,
    Positive,
    Negative,
}

/// What became of the target on one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    NotRun,
    Ran(Returned),
}

/// One path's state between two modules.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct State {
    impression: Impression,
    status: Option<Returned>,
    first_factor_ok: bool,
    first_factor_failed: bool,
    target: Target,
    /// The last line that ended the stack early or jumped, before the target ran; or the
    /// target itself when its failure was not fatal.
    culprit: Option<At>,
}

/// The state of a path as it reaches the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Arrival {
    pub first_factor_ok: bool,
    pub first_factor_failed: bool,
    pub impression: Impression,
}

/// A path on which the whole stack succeeds although the target did not pass.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bypass {
    pub target: Target,
    pub culprit: Option<At>,
}

#[derive(Debug, Default)]
pub struct Paths {
    pub arrivals: BTreeSet<Arrival>,
    pub bypasses: BTreeSet<Bypass>,
}

/// Which returns a module is explored with.
pub type Chooser<'a> = &'a dyn Fn(&Module, bool) -> Vec<Returned>;

/// Everything a module may return (`is_target`: the line under study; `nullok` turns its
/// "not required" ignore into success).
pub fn any_return(module: &Module, is_target: bool) -> Vec<Returned> {
    let fails = FAILURES.iter().map(|f| Returned::Fail(f));
    match module.name() {
        "pam_deny" => vec![Returned::Fail("auth_err")],
        "pam_permit" => vec![Returned::Success],
        _ if is_target && module.has_arg("nullok") => {
            std::iter::once(Returned::Success).chain(fails).collect()
        }
        _ if is_first_factor(module) => std::iter::once(Returned::Success).chain(fails).collect(),
        _ => [Returned::Success, Returned::Ignore]
            .into_iter()
            .chain(fails)
            .collect(),
    }
}

/// The login of a user policy does not require, without 2FA: everything that can succeed
/// does, pam_deny fails, twofold says "not required" (ignore, or success with nullok).
pub fn not_required_user(module: &Module, _is_target: bool) -> Vec<Returned> {
    match module.name() {
        "pam_deny" => vec![Returned::Fail("auth_err")],
        _ if module.is_twofold() && !module.has_arg("nullok") => vec![Returned::Ignore],
        _ => vec![Returned::Success],
    }
}

/// Walks every path of `entries` for the target line `target`. `ssh_first_factor`: sshd
/// proved a method before PAM ran.
pub fn explore(
    entries: &[Entry],
    target: &At,
    ssh_first_factor: bool,
    choose: Chooser<'_>,
) -> (Paths, BTreeSet<bool>) {
    let walker = Walker {
        target,
        choose,
        memo: RefCell::default(),
    };
    let start = State {
        impression: Impression::Undecided,
        status: None,
        first_factor_ok: ssh_first_factor,
        first_factor_failed: false,
        target: Target::NotRun,
        culprit: None,
    };
    let mut paths = Paths::default();
    let mut ends = BTreeSet::new();
    walker.run(entries, 0, start, &mut ends, &mut paths);
    let mut results = BTreeSet::new();
    for end in ends {
        let success =
            end.impression == Impression::Positive && end.status == Some(Returned::Success);
        results.insert(success);
        let passed = matches!(
            end.target,
            Target::Ran(Returned::Success | Returned::Ignore)
        );
        if success && !passed {
            paths.bypasses.insert(Bypass {
                target: end.target,
                culprit: end.culprit,
            });
        }
    }
    (paths, results)
}

struct Walker<'a> {
    target: &'a At,
    choose: Chooser<'a>,
    /// The ends already found from (entries, index, state): paths that meet again are not
    /// walked again, so the walk grows with the stack instead of with its paths (an include
    /// loop or a long stack of optional lines would otherwise never finish).
    memo: RefCell<Memo>,
}

/// (address of the entries, index, state) → the end states reached from there.
type Memo = BTreeMap<(usize, usize, State), BTreeSet<State>>;

enum Next {
    At(usize),
    End,
}

impl Walker<'_> {
    /// The end states reached from `idx` in `entries` with `state`, into `ends`; what the
    /// walk meets on the way (arrivals at the target) into `paths`.
    fn run(
        &self,
        entries: &[Entry],
        idx: usize,
        state: State,
        ends: &mut BTreeSet<State>,
        paths: &mut Paths,
    ) {
        let key = (entries.as_ptr() as usize, idx, state);
        if let Some(known) = self.memo.borrow().get(&key) {
            ends.extend(known.iter().cloned());
            return;
        }
        let mut reached = BTreeSet::new();
        self.walk(entries, idx, key.2.clone(), &mut reached, paths);
        ends.extend(reached.iter().cloned());
        self.memo.borrow_mut().insert(key, reached);
    }

    fn walk(
        &self,
        entries: &[Entry],
        idx: usize,
        state: State,
        ends: &mut BTreeSet<State>,
        paths: &mut Paths,
    ) {
        let Some(entry) = entries.get(idx) else {
            ends.insert(state);
            return;
        };
        let mut nexts = BTreeSet::new();
        match entry {
            Entry::Substack { entries: inner, .. } => {
                let mut inner_ends = BTreeSet::new();
                self.run(inner, 0, state, &mut inner_ends, paths);
                nexts.extend(inner_ends.into_iter().map(|s| (s, Some(idx + 1))));
            }
            Entry::Broken { .. } => {
                let mut s = state;
                bad(&mut s, Returned::Fail("perm_denied"));
                nexts.insert((s, Some(idx + 1)));
            }
            Entry::Module(module) => {
                let is_target = &module.at == self.target;
                if is_target {
                    paths.arrivals.insert(Arrival {
                        first_factor_ok: state.first_factor_ok,
                        first_factor_failed: state.first_factor_failed,
                        impression: state.impression,
                    });
                }
                for returned in (self.choose)(module, is_target) {
                    let (s, next) = self.step(entries, idx, module, returned, state.clone());
                    nexts.insert((
                        s,
                        match next {
                            Next::At(i) => Some(i),
                            Next::End => None,
                        },
                    ));
                }
            }
        }
        for (s, next) in nexts {
            match next {
                Some(i) => self.run(entries, i, s, ends, paths),
                None => {
                    ends.insert(s);
                }
            }
        }
    }

    /// What running `module` tells: twofold ran (and whether a failure of it would be
    /// forgiven), or a first factor passed or failed.
    fn note_result(&self, module: &Module, returned: Returned, action: Action, s: &mut State) {
        let is_target = &module.at == self.target;
        if is_target {
            s.target = Target::Ran(returned);
            s.culprit = None;
        } else if is_first_factor(module) {
            match returned {
                Returned::Success => s.first_factor_ok = true,
                Returned::Fail(_) => s.first_factor_failed = true,
                Returned::Ignore => {}
            }
        }
        if is_target
            && matches!(returned, Returned::Fail(_))
            && !matches!(action, Action::Bad | Action::Die)
        {
            s.culprit = Some(module.at.clone());
        }
    }

    fn step(
        &self,
        entries: &[Entry],
        idx: usize,
        module: &Module,
        returned: Returned,
        mut s: State,
    ) -> (State, Next) {
        let action = module.actions.on(returned.name());
        self.note_result(module, returned, action, &mut s);
        let before_target = s.target == Target::NotRun;
        match action {
            Action::Ignore => (s, Next::At(idx + 1)),
            Action::Ok => {
                positive(&mut s, returned);
                (s, Next::At(idx + 1))
            }
            Action::Done => {
                positive(&mut s, returned);
                if s.impression == Impression::Negative {
                    return (s, Next::At(idx + 1));
                }
                if before_target {
                    s.culprit = Some(module.at.clone());
                }
                (s, Next::End)
            }
            Action::Bad | Action::Die => {
                bad(&mut s, returned);
                let next = if action == Action::Die {
                    Next::End
                } else {
                    Next::At(idx + 1)
                };
                (s, next)
            }
            Action::Reset => {
                s.impression = Impression::Undecided;
                s.status = None;
                if !before_target {
                    s.culprit = Some(module.at.clone());
                }
                (s, Next::At(idx + 1))
            }
            Action::Jump(n) => {
                positive(&mut s, returned);
                let skipped = entries.iter().skip(idx + 1).take(n);
                if before_target && skipped.clone().any(|e| e.holds(self.target)) {
                    s.culprit = Some(module.at.clone());
                }
                (s, Next::At(idx + 1 + n))
            }
        }
    }
}

/// `ok`, `done` and jumps: the first success (or any value while undecided) sets the result.
fn positive(s: &mut State, returned: Returned) {
    let undecided = s.impression == Impression::Undecided;
    let still_good = s.impression == Impression::Positive && s.status == Some(Returned::Success);
    if (undecided || still_good) && returned != Returned::Ignore {
        s.impression = Impression::Positive;
        s.status = Some(returned);
    }
}

/// `bad` and `die`: the first failure is what the stack returns.
fn bad(s: &mut State, returned: Returned) {
    if s.impression != Impression::Negative {
        s.impression = Impression::Negative;
        s.status = Some(returned);
    }
}

#[cfg(test)]
mod tests {
    use super::super::pam_stack::{Stack, auth_stack};
    use super::*;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    const COMMON_AUTH: &str = "auth [success=1 default=ignore] pam_unix.so nullok\n\
        auth requisite pam_deny.so\nauth required pam_permit.so\nauth optional pam_cap.so\n";

    fn stack(svc: &str) -> Stack {
        let map: HashMap<PathBuf, String> = [("svc", svc), ("common-auth", COMMON_AUTH)]
            .iter()
            .map(|(n, t)| (Path::new("/p").join(n), t.to_string()))
            .collect();
        let read = move |p: &Path| map.get(p).cloned();
        auth_stack(Path::new("/p"), Path::new("/p/svc"), &read)
    }

    fn twofold_at(s: &Stack) -> At {
        s.modules()
            .iter()
            .find(|m| m.is_twofold() && !m.has_arg("split_code"))
            .unwrap()
            .at
            .clone()
    }

    fn paths(svc: &str) -> Paths {
        let s = stack(svc);
        explore(&s.entries, &twofold_at(&s), false, &any_return).0
    }

    fn only_after_password(p: &Paths) -> bool {
        p.arrivals
            .iter()
            .all(|a| a.first_factor_ok && a.impression != Impression::Negative)
    }

    #[test]
    fn debians_common_auth_then_twofold_is_clean() {
        let p = paths("@include common-auth\nauth required pam_twofold.so\n");
        assert!(only_after_password(&p), "{p:?}");
        assert!(p.bypasses.is_empty(), "{p:?}");
    }

    #[test]
    fn twofold_before_the_password_is_reached_without_one() {
        let p = paths("auth required pam_twofold.so\n@include common-auth\n");
        assert!(
            p.arrivals
                .iter()
                .any(|a| !a.first_factor_ok && !a.first_factor_failed)
        );
    }

    #[test]
    fn required_password_goes_on_after_a_wrong_one() {
        let p = paths("auth required pam_unix.so\nauth required pam_twofold.so\n");
        assert!(
            p.arrivals
                .iter()
                .any(|a| a.first_factor_failed && a.impression == Impression::Negative)
        );
        assert!(p.bypasses.is_empty());
    }

    #[test]
    fn sufficient_password_skips_twofold() {
        let p = paths("auth sufficient pam_unix.so\nauth required pam_twofold.so\n");
        let culprit = p.bypasses.iter().find_map(|b| b.culprit.clone()).unwrap();
        assert_eq!(culprit.line, 1);
    }

    #[test]
    fn a_jump_over_twofold_skips_it() {
        let p = paths(
            "auth [success=2 default=ignore] pam_unix.so\nauth requisite pam_deny.so\nauth required pam_twofold.so\nauth required pam_permit.so\n",
        );
        let b = p.bypasses.iter().next().unwrap();
        assert_eq!(
            (b.target, b.culprit.as_ref().unwrap().line),
            (Target::NotRun, 1)
        );
    }

    #[test]
    fn optional_twofold_is_bypassed_by_its_own_failure() {
        let p = paths("@include common-auth\nauth optional pam_twofold.so\n");
        let b = p.bypasses.iter().next().unwrap();
        assert!(matches!(b.target, Target::Ran(Returned::Fail(_))));
        assert_eq!(b.culprit.as_ref().unwrap().line, 2);
    }

    #[test]
    fn twofold_alone_refuses_users_not_required_without_nullok() {
        let s = stack("auth required pam_twofold.so\n");
        let (_, results) = explore(&s.entries, &twofold_at(&s), true, &not_required_user);
        assert_eq!(results, BTreeSet::from([false]));
        let s = stack("auth required pam_twofold.so nullok\n");
        let (_, results) = explore(&s.entries, &twofold_at(&s), true, &not_required_user);
        assert_eq!(results, BTreeSet::from([true]));
    }

    #[test]
    fn substack_done_ends_only_the_substack() {
        let map: HashMap<PathBuf, String> = [
            ("svc", "auth substack sub\nauth required pam_twofold.so\n"),
            (
                "sub",
                "auth sufficient pam_unix.so\nauth requisite pam_deny.so\n",
            ),
        ]
        .iter()
        .map(|(n, t)| (Path::new("/p").join(n), t.to_string()))
        .collect();
        let read = move |p: &Path| map.get(p).cloned();
        let s = auth_stack(Path::new("/p"), Path::new("/p/svc"), &read);
        let (p, _) = explore(&s.entries, &twofold_at(&s), false, &any_return);
        assert!(p.bypasses.is_empty(), "{p:?}");
        // `die` in a substack ends only the substack: twofold still runs after a wrong password.
        assert!(
            p.arrivals
                .iter()
                .any(|a| a.first_factor_failed && a.impression == Impression::Negative)
        );
    }
}
