//! What /etc/nsswitch.conf says about the passwd database: whether one enumeration
//! (`getent passwd`) sees every account a lookup by name could find.
//!
//! `files`, `compat`, `db` and `systemd` enumerate everything they can answer for. Directory
//! sources (`sss`, `ldap`, `winbind`, and any source we do not know) may enumerate only part
//! of it or nothing (SSSD's default `enumerate = false`), and `[NOTFOUND=return]`-style
//! actions change which source answers: with any of those, a name missing from the
//! enumeration may still resolve, so it must be looked up by name.
#![forbid(unsafe_code)]

use std::path::Path;

/// Where glibc reads the sources from.
pub const NSSWITCH_CONF: &str = "/etc/nsswitch.conf";

/// Sources whose enumeration lists every account their lookups can find.
const ENUMERATE_FULLY: [&str; 4] = ["files", "compat", "db", "systemd"];

/// Whether enumerating passwd on this host lists every account a lookup by name finds.
/// Anything unclear (no file, no `passwd:` line, two of them) is a "no": lookups by name
/// are slower, never wrong.
pub fn passwd_enumerates_fully() -> bool {
    std::fs::read_to_string(Path::new(NSSWITCH_CONF))
        .is_ok_and(|conf| enumerates_fully(&conf, "passwd"))
}

/// Whether `database`'s line in `conf` names only fully enumerating sources, and no actions.
pub fn enumerates_fully(conf: &str, database: &str) -> bool {
    let lines: Vec<&str> = conf
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter_map(|line| line.trim().strip_prefix(database))
        .filter_map(|rest| rest.trim_start().strip_prefix(':'))
        .collect();
    let [sources] = lines[..] else {
        return false;
    };
    let sources: Vec<&str> = sources.split_whitespace().collect();
    !sources.is_empty() && sources.iter().all(|s| ENUMERATE_FULLY.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_sources_without_actions_enumerate_fully() {
        for conf in [
            "passwd: files\n",
            "passwd:         files systemd\ngroup: files sss\n",
            "# comment\npasswd: compat # trailing\n",
            "passwd:db files\n",
        ] {
            assert!(enumerates_fully(conf, "passwd"), "{conf}");
        }
        for conf in [
            "passwd: sss files systemd\n",
            "passwd: files ldap\n",
            "passwd: files winbind\n",
            "passwd: files [NOTFOUND=return] systemd\n",
            "passwd: files mymachines\n",
            "passwd:\n",
            "group: files\n",
            "passwd: files\npasswd: files\n",
            "",
        ] {
            assert!(!enumerates_fully(conf, "passwd"), "{conf}");
        }
        // Another database whose name starts like it is not it.
        assert!(!enumerates_fully("passwdx: files\n", "passwd"));
    }
}
