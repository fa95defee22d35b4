//! `twofold status USER [--json]`: one user's 2FA state. Never the secret. The same summary
//! feeds `twofold list`.
#![forbid(unsafe_code)]

use pam_twofold::deadline::{Deadline, days_text};
use pam_twofold::login::format_time;
use pam_twofold::policy::PolicyError;
use pam_twofold::printable::printable;
use pam_twofold::record::{Kind, Record, State};
use pam_twofold::user::{Account, AccountError, Nss};
use pam_twofold::{Clock, Policy, Store, SystemClock, UserName};
use serde_json::{Value, json};

use crate::Context;
use crate::cli::StatusArgs;
use crate::error::CliError;
use crate::user_arg;

/// What status and list say about one user.
pub struct Summary {
    pub user: UserName,
    pub record: Option<Record>,
    pub required: Result<bool, PolicyError>,
    pub now: i64,
    pub trust_days: u32,
    pub deadline: Option<Deadline>,
}

impl Summary {
    pub fn new(context: &Context, user: UserName, record: Option<Record>) -> Self {
        let required = crate::required(context, &user);
        Self::with_required(&context.policy, user, record, required)
    }

    /// The summary when whether policy requires 2FA of the user is already known (`list`
    /// resolves it for many users at once).
    pub fn with_required(
        policy: &Policy,
        user: UserName,
        record: Option<Record>,
        required: Result<bool, PolicyError>,
    ) -> Self {
        Self {
            user,
            record,
            required,
            now: SystemClock.now(),
            trust_days: policy.trust.days,
            deadline: policy.policy.enroll_deadline.clone(),
        }
    }

    /// Whether the user has no enrollment that counts: no record, or a pending one that
    /// expired.
    fn missing(&self) -> bool {
        self.record
            .as_ref()
            .is_none_or(|r| r.is_expired_pending(self.now))
    }

    /// For a required user without 2FA: days left before `[policy] enroll_deadline` (None
    /// when there is no deadline, or it has come: then logins are denied or enroll).
    pub fn days_left(&self) -> Option<u32> {
        let required = matches!(self.required, Ok(true));
        (required && self.missing())
            .then(|| self.deadline.as_ref()?.days_left(self.now))
            .flatten()
    }

    /// "not enrolled, 12 days left" / "not enrolled, deadline 2030-01-31 passed".
    fn missing_text(&self, what: &str) -> String {
        match (&self.deadline, self.days_left()) {
            (_, Some(days)) => format!("{what}, {} left", days_text(days)),
            (Some(d), None) if matches!(self.required, Ok(true)) => {
                format!("{what}, deadline {d} passed")
            }
            _ => what.to_owned(),
        }
    }

    /// "enabled", "disabled", "not enrolled", with ", locked until …" when locked.
    pub fn state(&self) -> String {
        let Some(record) = &self.record else {
            return self.missing_text("not enrolled");
        };
        let state = match (record.state, record.pending_until) {
            (State::Enabled, _) => "enabled",
            (State::Disabled, _) => "disabled",
            (State::Pending, Some(until)) if until > self.now => {
                return format!("pending (expires {})", format_time(until));
            }
            (State::Pending, _) => return self.missing_text("not enrolled (invitation expired)"),
        };
        match record.locked_at(self.now) {
            Some(until) => format!("{state}, locked until {}", format_time(until)),
            None => state.to_owned(),
        }
    }

    fn trusted_hosts(&self) -> Vec<Value> {
        let Some(r) = &self.record else {
            return Vec::new();
        };
        r.trusted
            .iter()
            .filter(|t| t.in_force(self.now, self.trust_days))
            .map(|t| json!({ "host": t.host, "service": t.service, "expires": format_time(t.expires) }))
            .collect()
    }

    /// Trusted hosts still in force.
    pub fn trusted_count(&self) -> usize {
        self.record.as_ref().map_or(0, |r| {
            r.trusted
                .iter()
                .filter(|t| t.in_force(self.now, self.trust_days))
                .count()
        })
    }

    pub fn required_text(&self) -> String {
        match &self.required {
            Ok(true) => "yes".into(),
            Ok(false) => "no".into(),
            Err(e) => format!("unknown ({e})"),
        }
    }

    pub fn to_json(&self) -> Value {
        let r = self.record.as_ref();
        json!({
            "user": self.user.as_str(),
            "enrolled": r.is_some(),
            "state": r.filter(|_| !self.missing()).map_or("not enrolled", |r| r.state.as_str()),
            "pending_expires": r.filter(|r| r.is_pending_at(self.now)).and_then(|r| r.pending_until).map(format_time),
            "enroll_deadline": self.deadline.as_ref().map(Deadline::day),
            "days_left": self.days_left(),
            "locked": r.and_then(|r| r.locked_at(self.now)).is_some(),
            "locked_until": r.and_then(|r| r.locked_at(self.now)).map(format_time),
            "failures": r.map(|r| r.failures),
            "required": self.required.as_ref().ok(),
            "required_error": self.required.as_ref().err().map(ToString::to_string),
            "kind": r.map(|r| r.kind.as_str()),
            "counter": r.and_then(|r| r.counter),
            "window": r.and_then(|r| r.window),
            "drift_steps": r.map(|r| r.drift_steps),
            "drift_seconds": r.map(|r| r.drift_steps * i64::from(r.period)),
            "algorithm": r.map(|r| r.algorithm.as_str()),
            "digits": r.map(|r| r.digits),
            "period": r.map(|r| r.period),
            "issuer": r.map(|r| r.issuer.as_str()),
            "created": r.map(|r| format_time(r.created)),
            "last_used": r.and_then(|r| r.last_used).map(format_time),
            "backup_codes_left": r.map(Record::backup_codes_left),
            "trusted_hosts": self.trusted_hosts(),
        })
    }
}

pub fn run(context: &Context, args: StatusArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    let record = context.store.load(&user)?;
    if let Err(AccountError::Unknown { .. }) = Account::resolve(&Nss, user.as_str()) {
        return Err(CliError::NoSuchAccount {
            name: user.to_string(),
            has_record: record.is_some(),
        });
    }
    let summary = Summary::new(context, user, record);
    if args.json {
        outln!("{:#}", summary.to_json())?;
        return Ok(());
    }
    outln!("user:         {}", summary.user)?;
    outln!("2FA:          {}", summary.state())?;
    outln!("required:     {}", summary.required_text())?;
    if let Some(r) = &summary.record {
        print_codes(r, &summary.user)?;
        print_record(r, &summary)?;
    }
    Ok(())
}

/// How the user's codes are made: kind, parameters, window, learned clock drift.
fn print_codes(r: &Record, user: &UserName) -> Result<(), CliError> {
    match r.kind {
        Kind::Totp => outln!(
            "codes:        TOTP, {}, {} digits, every {} s",
            r.algorithm,
            r.digits,
            r.period
        )?,
        Kind::Hotp => outln!(
            "codes:        HOTP (counter-based), {}, {} digits, next counter {}",
            r.algorithm,
            r.digits,
            r.counter.unwrap_or(0)
        )?,
    }
    if let Some(window) = r.window {
        outln!("window:       {window} (this user's; the policy's does not apply)")?;
    }
    if r.kind == Kind::Totp {
        let drift = match r.drift_steps {
            0 => "none learned".to_owned(),
            steps => format!(
                "{} learned (twofold unlock {user} --reset-drift clears it)",
                pam_twofold::drift::describe(steps, r.period)
            ),
        };
        outln!("clock drift:  {drift}")?;
    }
    Ok(())
}

/// The record's history: issuer, times, failures, backup codes, trusted hosts.
fn print_record(r: &Record, summary: &Summary) -> Result<(), CliError> {
    outln!("issuer:       {}", printable(&r.issuer))?;
    outln!("created:      {}", format_time(r.created))?;
    outln!(
        "last used:    {}",
        r.last_used.map_or_else(|| "never".to_owned(), format_time)
    )?;
    outln!("failures:     {}", r.failures)?;
    outln!("backup codes: {} left", r.backup_codes_left())?;
    let hosts = summary.trusted_hosts();
    let names: Vec<&str> = hosts.iter().filter_map(|h| h["host"].as_str()).collect();
    let trusted = if names.is_empty() {
        "none".to_owned()
    } else {
        printable(&names.join(", ")).into_owned()
    };
    outln!("trusted:      {trusted}")
}
