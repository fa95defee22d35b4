//! Whether this host's clock is synchronized, asked of whatever can tell: systemd-timesyncd
//! through `timedatectl` (when systemd runs), `chronyc`, `ntpq`, `adjtimex`. When none can,
//! that is said as information, not as a fault.
#![forbid(unsafe_code)]

use std::path::Path;

use super::command;
use super::finding::{Area, Finding, Severity};

/// `timedatectl show -p NTPSynchronized --value`: `yes` or `no`.
pub fn from_timedatectl(text: &str) -> Option<bool> {
    match text.trim() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// `chronyc -n tracking`: `Leap status     : Normal` when synchronized.
pub fn from_chronyc(text: &str) -> Option<bool> {
    let status = text
        .lines()
        .find_map(|l| l.strip_prefix("Leap status"))?
        .trim_start_matches([' ', ':'])
        .trim();
    Some(status != "Not synchronised" && !status.is_empty())
}

/// `ntpq -c rv`: `leap=11` (or `leap_alarm`) means not synchronized.
pub fn from_ntpq(text: &str) -> Option<bool> {
    let leap = text
        .split([',', ' ', '\n'])
        .find_map(|w| w.trim().strip_prefix("leap="))?;
    Some(leap != "11" && leap != "leap_alarm")
}

/// `adjtimex -p`: the kernel's status word; bit 0x40 is STA_UNSYNC.
pub fn from_adjtimex(text: &str) -> Option<bool> {
    let status: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("status:"))?
        .trim()
        .parse()
        .ok()?;
    Some(status & 0x40 == 0)
}

type Parser = fn(&str) -> Option<bool>;

/// (tool, arguments, parser, whether it applies on this host)
fn sources() -> Vec<(&'static str, &'static [&'static str], Parser, bool)> {
    let systemd = Path::new("/run/systemd/system").is_dir();
    vec![
        (
            "timedatectl",
            &["show", "-p", "NTPSynchronized", "--value"],
            from_timedatectl,
            systemd,
        ),
        ("chronyc", &["-n", "tracking"], from_chronyc, true),
        ("ntpq", &["-c", "rv"], from_ntpq, true),
        ("adjtimex", &["-p"], from_adjtimex, true),
    ]
}

pub fn check() -> Finding {
    for (tool, args, parse, applies) in sources() {
        if !applies || !command::exists(tool) {
            continue;
        }
        let Ok(out) = command::run(tool, args) else {
            continue;
        };
        match out
            .status
            .success()
            .then(|| parse(&String::from_utf8_lossy(&out.stdout)))
            .flatten()
        {
            Some(true) => {
                return Finding::new(
                    Area::Clock,
                    Severity::Info,
                    "clock-synchronized",
                    format!("the clock is synchronized (says {tool})"),
                    "",
                );
            }
            Some(false) => {
                return Finding::new(
                    Area::Clock,
                    Severity::Warning,
                    "clock-unsynchronized",
                    format!(
                        "{tool} says the clock is not synchronized: codes are judged against this clock, and once it is off by more than the window (window × period seconds) every code is refused"
                    ),
                    "synchronize the clock (systemd-timesyncd, chrony or ntpd) and keep it so",
                );
            }
            None => continue,
        }
    }
    Finding::new(
        Area::Clock,
        Severity::Info,
        "clock-unknown",
        "cannot tell whether the clock is synchronized (no systemd, chronyc, ntpq or adjtimex answered)",
        "make sure something keeps the clock in time: codes depend on it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tool_is_read() {
        assert_eq!(from_timedatectl("yes\n"), Some(true));
        assert_eq!(from_timedatectl("no\n"), Some(false));
        assert_eq!(from_timedatectl(""), None);
        assert_eq!(
            from_chronyc("Reference ID    : 0\nLeap status     : Normal\n"),
            Some(true)
        );
        assert_eq!(
            from_chronyc("Leap status     : Not synchronised\n"),
            Some(false)
        );
        assert_eq!(
            from_ntpq(
                "associd=0 status=0615 leap_none, sync_ntp,\nversion=\"x\", leap=00, stratum=2"
            ),
            Some(true)
        );
        assert_eq!(
            from_ntpq("associd=0 status=c016, leap=11, stratum=16"),
            Some(false)
        );
        // 0x2001: PLL, nano; 0x2041: the same with STA_UNSYNC.
        assert_eq!(from_adjtimex("    mode: 0\n  status: 8193\n"), Some(true));
        assert_eq!(from_adjtimex("  status: 8257\n"), Some(false));
    }
}
