//! The commands, each on the caller's own record and through the library's functions
//! ([`pam_twofold::manage`], [`Enrollment`]): nothing here reads or writes a record itself.
//! A change is checked to make sense first (so a code is not spent for nothing), then the
//! caller authenticates through PAM, then the change runs under the store's lock with the
//! caller's signals held, and is logged.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::path::Path;

use pam_twofold::backup::{KdfCost, NewCodes};
use pam_twofold::enroll::{
    Confirmation, Enrollment, NewSecret, Proof, Unconfirmed, grouped_secret,
};
use pam_twofold::log::{self, Level};
use pam_twofold::login::format_time;
use pam_twofold::manage::{self, Forget};
use pam_twofold::qr::{Matrix, QrStyle, Screen};
use pam_twofold::record::{Record, State};
use pam_twofold::secure_file::{Access, NewFile};
use pam_twofold::self_service::{Action, PAM_SERVICE, permit};
use pam_twofold::store::Replace;
use pam_twofold::{AnyStore, Clock, Policy, Store, SystemClock};
use zeroize::Zeroizing;

use crate::cli::{CodesArgs, Command, TrustArgs};
use crate::error::SelfError;
use crate::harden::{AsCaller, HoldSignals};
use crate::machine::{Event, StatusView, TrustedView, emit, emit_key};
use crate::sys;
use crate::terminal::Terminal;

/// Where libpam reads service files (Debian's Linux-PAM has no vendor directory).
const PAM_DIR: &str = "/etc/pam.d";

/// The caller, resolved from the real uid, with the policy and its store.
pub struct Me {
    pub account: pam_twofold::user::Account,
    pub policy: Policy,
    pub store: AnyStore,
    /// `--json`: output as JSON lines for a program (src/bin/twofold-self/machine.rs).
    pub json: bool,
}

impl Me {
    fn name(&self) -> &pam_twofold::UserName {
        &self.account.name
    }

    /// One line to syslog (authpriv): what the user did to their own enrollment.
    pub fn audit(&self, level: Level, what: &str) {
        let uid = self.account.uid.to_string();
        let fields = log::fields(&[("by", self.name().as_str()), ("uid", &uid)]);
        log::event(
            "twofold-self",
            level,
            &format!("{}: {what}", self.name()),
            &fields,
        );
    }

    /// A line for the caller: text, or a `say` event in machine mode.
    fn say(&self, text: &str) -> Result<(), SelfError> {
        if self.json {
            return emit(&Event::Say(text));
        }
        writeln!(io::stdout(), "{text}").map_err(SelfError::Show)
    }

    fn terminal(&self) -> Terminal {
        Terminal { json: self.json }
    }

    fn record(&self) -> Result<Option<Record>, SelfError> {
        Ok(self.store.load(self.name())?)
    }

    fn enrolled(&self) -> Result<Record, SelfError> {
        self.record()?.ok_or(SelfError::NotEnrolled)
    }

    /// The caller's password and current code (or backup code), through the real PAM stack.
    /// Its service file must exist: without it libpam uses `other`, which may ask less.
    fn authenticate(&self, what: &str) -> Result<(), SelfError> {
        let service = Path::new(PAM_DIR).join(PAM_SERVICE);
        if !service.is_file() {
            self.audit(
                Level::Warning,
                &format!(
                    "self-service {what} refused: {} is missing",
                    service.display()
                ),
            );
            return Err(SelfError::NoPamService);
        }
        let result = sys::authenticate(PAM_SERVICE, self.name().as_str(), &mut self.terminal());
        if let Err(failure) = &result {
            self.audit(
                Level::Warning,
                &format!(
                    "self-service {what} refused: {} failed ({})",
                    failure.call, failure.text
                ),
            );
        }
        Ok(result?)
    }
}

pub fn run(me: &Me, command: Command) -> Result<(), SelfError> {
    match command {
        Command::Status => status(me),
        Command::Enroll => enroll(me),
        Command::NewPhone => new_phone(me),
        Command::Codes(args) => codes(me, &args),
        Command::Trust(args) => trust(me, &args),
        Command::Disable => set_state(me, State::Disabled),
        Command::Enable => set_state(me, State::Enabled),
    }
}

/// Read-only and secret-free, so no re-authentication: a locked-out user can see it too.
fn status(me: &Me) -> Result<(), SelfError> {
    if me.json {
        return status_json(me);
    }
    let required = match me.policy.requires_2fa(&me.account) {
        Ok(true) => "yes",
        Ok(false) => "no",
        Err(_) => "cannot tell (a group lookup failed)",
    };
    let Some(record) = me.record()? else {
        me.say(&format!(
            "2FA for {}: not set up (required by policy: {required}).",
            me.name()
        ))?;
        return me.say("`twofold-self enroll` sets it up.");
    };
    let now = SystemClock.now();
    let state = match record.state {
        State::Enabled => "on",
        State::Disabled => "off (key kept; `twofold-self enable` turns it on)",
        State::Pending => {
            "waiting for its first code (an invitation): log in with a code from the app"
        }
    };
    me.say(&format!("2FA for {}: {state}", me.name()))?;
    me.say(&format!("Required by policy: {required}"))?;
    me.say(&format!(
        "Backup codes left: {}",
        record.backup_codes_left()
    ))?;
    match record.locked_at(now) {
        Some(until) => me.say(&format!(
            "Locked until {} after too many wrong codes: only an administrator can unlock it.",
            format_time(until)
        ))?,
        None => me.say("Locked: no")?,
    }
    list_trusted(me, &record, now)
}

/// `status` for a program: one [`Event::Status`].
fn status_json(me: &Me) -> Result<(), SelfError> {
    let record = me.record()?;
    let now = SystemClock.now();
    let days = me.policy.trust.days;
    let trusted = record.iter().flat_map(|r| &r.trusted);
    let allowed = Action::ALL
        .into_iter()
        .filter(|a| permit(&me.policy, &me.account, *a).is_ok())
        .map(Action::as_str)
        .collect();
    emit(&Event::Status(StatusView {
        user: me.name().as_str(),
        enrolled: record.is_some(),
        state: record.as_ref().map(|r| r.state.as_str()),
        required: me.policy.requires_2fa(&me.account).ok(),
        backup_codes_left: record.as_ref().map_or(0, Record::backup_codes_left),
        locked_until: record
            .as_ref()
            .and_then(|r| r.locked_at(now))
            .map(format_time),
        trusted: trusted
            .filter(|t| t.in_force(now, days))
            .map(|t| TrustedView {
                host: t.host.clone(),
                service: t.service.clone(),
                expires: format_time(t.expires),
            })
            .collect(),
        allowed,
    }))
}

fn list_trusted(me: &Me, record: &Record, now: i64) -> Result<(), SelfError> {
    let days = me.policy.trust.days;
    let live: Vec<_> = record
        .trusted
        .iter()
        .filter(|t| t.in_force(now, days))
        .collect();
    if live.is_empty() {
        return me.say("Trusted computers: none");
    }
    me.say("Trusted computers (they skip the code until the date shown):")?;
    for t in live {
        me.say(&format!(
            "    {} on {}, until {}",
            t.host,
            t.service.as_deref().unwrap_or("-"),
            format_time(t.expires)
        ))?;
    }
    Ok(())
}

fn enroll(me: &Me) -> Result<(), SelfError> {
    if me.record()?.is_some() {
        return Err(SelfError::AlreadyEnrolled);
    }
    me.authenticate("enroll")?;
    // A user whom policy requires is enrolled by the module itself while signing in.
    if me.record()?.is_some() {
        return me.say("2FA was set up while you signed in; `twofold-self status` shows it.");
    }
    let enrollment = Enrollment::for_policy(me.name(), &me.policy, NewSecret::Fresh, None)?;
    show_key(me, &enrollment, "Set up two-factor authentication")?;
    let confirmation = confirm(me, &enrollment, "run twofold-self enroll again")?;
    let _held = HoldSignals::new()?;
    let count = me.policy.backup_codes.count;
    let activated = enrollment.activate(
        &me.store,
        Proof::Confirmed(confirmation),
        Replace::No,
        count,
    )?;
    me.audit(Level::Notice, "enrolled (self-service)");
    me.say("2FA is now on for you.")?;
    match activated.codes {
        Some(codes) => show_codes(me, &codes, None),
        None => Ok(()),
    }
}

fn new_phone(me: &Me) -> Result<(), SelfError> {
    me.enrolled()?;
    me.authenticate("new-phone")?;
    let enrollment = Enrollment::for_policy(me.name(), &me.policy, NewSecret::Fresh, None)?;
    show_key(
        me,
        &enrollment,
        "Move two-factor authentication to a new phone",
    )?;
    me.say("Until you enter a code from the new phone, the old one keeps working.")?;
    let confirmation = confirm(me, &enrollment, "your old phone still works")?;
    let _held = HoldSignals::new()?;
    manage::replace_secret(&me.store, me.name(), enrollment, confirmation)?;
    me.audit(
        Level::Notice,
        "new secret (new phone), old one revoked (self-service)",
    );
    me.say("Done: codes now come from the new phone; the old phone's codes no longer work.")
}

/// The QR code and the key, drawn for the caller's own terminal.
fn show_key(me: &Me, enrollment: &Enrollment, heading: &str) -> Result<(), SelfError> {
    if me.json {
        return emit_key(enrollment);
    }
    let matrix = Matrix::encode(enrollment.uri())?;
    let params = enrollment.params();
    let mut text = Zeroizing::new(format!(
        "{heading} for {} on {}.\nScan this QR code with an authenticator app:\n\n",
        enrollment.user(),
        enrollment.issuer()
    ));
    text.push_str(&matrix.to_terminal(QrStyle::Utf8, Screen::Terminal));
    text.push_str(&format!(
        "\nOr type this key into the app: {}\n({}, {} digits, new code every {} s, time-based)\n",
        grouped_secret(enrollment.secret()).as_str(),
        params.algorithm,
        params.digits,
        params.period
    ));
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(SelfError::Show)
}

fn confirm(me: &Me, enrollment: &Enrollment, start_over: &str) -> Result<Confirmation, SelfError> {
    match enrollment.confirm(&mut me.terminal(), &SystemClock, start_over) {
        Ok(confirmation) => Ok(confirmation),
        Err(Unconfirmed::ClockBeforeEpoch { .. }) => Err(SelfError::Clock),
        Err(Unconfirmed::WrongCodes { .. } | Unconfirmed::NoAnswer(_)) => {
            Err(SelfError::NotConfirmed)
        }
    }
}

fn codes(me: &Me, args: &CodesArgs) -> Result<(), SelfError> {
    let record = me.enrolled()?;
    if !args.regenerate && !args.delete {
        return me.say(&format!(
            "You have {} unused backup codes.",
            record.backup_codes_left()
        ));
    }
    if args.delete {
        me.authenticate("codes --delete")?;
        let _held = HoldSignals::new()?;
        let had = manage::delete_backup_codes(&me.store, me.name())?;
        me.audit(
            Level::Notice,
            &format!("{had} backup codes deleted (self-service)"),
        );
        return me.say(&format!("Deleted your {had} backup codes."));
    }
    let count = me.policy.backup_codes.count;
    if count == 0 {
        return Err(manage::ManageError::NoBackupCodes.into());
    }
    // Claimed before anything changes, as the caller: a refused path costs no old codes.
    let output = args.output.as_deref().map(CallerFile::claim).transpose()?;
    me.authenticate("codes --regenerate")?;
    let _held = HoldSignals::new()?;
    let codes = manage::regenerate_backup_codes(&me.store, me.name(), count, KdfCost::DEFAULT)?;
    me.audit(
        Level::Notice,
        &format!("{count} new backup codes, old ones revoked (self-service)"),
    );
    show_codes(me, &codes, output)
}

/// New backup codes, shown once: on the terminal, or into the caller's new file.
fn show_codes(me: &Me, codes: &NewCodes, output: Option<CallerFile>) -> Result<(), SelfError> {
    if me.json && output.is_none() {
        return emit(&Event::Codes(
            codes.shown.iter().map(|c| c.as_str()).collect(),
        ));
    }
    let mut text = Zeroizing::new(String::from(
        "Your backup codes. Each works once instead of a code from the app.\n\
         Keep them somewhere safe: they are not shown again.\n",
    ));
    for code in &codes.shown {
        text.push_str(&format!("    {}\n", code.as_str()));
    }
    match output {
        Some(file) => {
            let path = file.write(text.as_bytes())?;
            me.say(&format!(
                "{} backup codes written to {path} (mode 0600).",
                codes.shown.len()
            ))
        }
        None => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(SelfError::Show)
        }
    }
}

fn trust(me: &Me, args: &TrustArgs) -> Result<(), SelfError> {
    let record = me.enrolled()?;
    let which = match (&args.forget, args.all) {
        (Some(host), _) => Forget::Host(host),
        (None, true) => Forget::All,
        (None, false) => return list_trusted(me, &record, SystemClock.now()),
    };
    me.authenticate("trust")?;
    let _held = HoldSignals::new()?;
    let gone = manage::forget_trusted(&me.store, me.name(), which)?;
    let what = match which {
        Forget::All => "every trusted computer".to_owned(),
        Forget::Host(host) => format!("trusted computer {host}"),
    };
    me.audit(
        Level::Notice,
        &format!("forgot {what} ({gone} grants; self-service)"),
    );
    me.say(&format!("Forgot {gone} trusted computer grant(s)."))
}

fn set_state(me: &Me, state: State) -> Result<(), SelfError> {
    let (word, verb) = match state {
        // Pending is never asked for: it is what an invitation leaves, not a choice.
        State::Enabled | State::Pending => ("on", "enable"),
        State::Disabled => ("off", "disable"),
    };
    if me.enrolled()?.state == state {
        return me.say(&format!("Your 2FA is already {word}."));
    }
    me.authenticate(verb)?;
    let _held = HoldSignals::new()?;
    let was = manage::set_state(&me.store, me.name(), state)?;
    if was == state {
        return me.say(&format!("Your 2FA is already {word}."));
    }
    me.audit(
        Level::Notice,
        &format!("2FA turned {word}, secret kept (self-service)"),
    );
    me.say(&format!("Your 2FA is now {word}; your key is kept."))
}

/// A file for new backup codes, created, written and (on failure) removed with the caller's
/// own file permissions, never root's: a path into a directory they cannot write, or a link
/// to a file of root's, is refused as it would be for them.
struct CallerFile(Option<NewFile>);

impl CallerFile {
    fn claim(path: &Path) -> Result<Self, SelfError> {
        let _as_caller = AsCaller::enter()?;
        Ok(Self(Some(NewFile::create(path, Access::Private)?)))
    }

    /// Writes and keeps the file; returns its path for the message.
    fn write(mut self, bytes: &[u8]) -> Result<String, SelfError> {
        let _as_caller = AsCaller::enter()?;
        let Some(file) = self.0.take() else {
            return Ok(String::new());
        };
        let path = file.path().display().to_string();
        file.write(bytes)?;
        Ok(path)
    }
}

impl Drop for CallerFile {
    fn drop(&mut self) {
        if let Some(file) = self.0.take() {
            match AsCaller::enter() {
                // Removed as the caller (NewFile's drop): root never unlinks in their tree.
                Ok(_as_caller) => drop(file),
                // Not removed at all rather than as root: an empty file is left.
                Err(_) => file.keep(),
            }
        }
    }
}
