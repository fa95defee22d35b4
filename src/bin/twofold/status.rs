//! `twofold status USER [--json]`: enrolled or not, state, parameters, times. Never the secret.
#![forbid(unsafe_code)]

use std::time::{Duration, UNIX_EPOCH};

use pam_twofold::Store;
use pam_twofold::record::{Record, State};
use serde_json::json;

use crate::cli::StatusArgs;
use crate::error::CliError;
use crate::{Context, user_arg};

fn timestamp(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(s) => humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string(),
        Err(_) => format!("{secs} (before 1970)"),
    }
}

fn state_name(record: Option<&Record>) -> &'static str {
    match record.map(|r| r.state) {
        None => "not enrolled",
        Some(State::Enabled) => "enabled",
        Some(State::Disabled) => "disabled",
    }
}

pub fn run(context: &Context, args: StatusArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    let record = context.store.load(&user)?;
    // Whether policy requires 2FA is shown, but a lookup failure is not fatal for status.
    let required = context.policy.requires_2fa(&user);

    if args.json {
        let value = json!({
            "user": user.as_str(),
            "enrolled": record.is_some(),
            "state": state_name(record.as_ref()),
            "required": required.as_ref().ok(),
            "required_error": required.as_ref().err().map(ToString::to_string),
            "algorithm": record.as_ref().map(|r| r.algorithm.as_str()),
            "digits": record.as_ref().map(|r| r.digits),
            "period": record.as_ref().map(|r| r.period),
            "issuer": record.as_ref().map(|r| r.issuer.as_str()),
            "created": record.as_ref().map(|r| timestamp(r.created)),
            "last_used": record.as_ref().and_then(|r| r.last_used).map(timestamp),
        });
        println!("{value:#}");
        return Ok(());
    }

    println!("user:      {user}");
    println!("2FA:       {}", state_name(record.as_ref()));
    match &required {
        Ok(true) => println!("required:  yes, by policy"),
        Ok(false) => println!("required:  no"),
        Err(e) => println!("required:  unknown ({e})"),
    }
    if let Some(r) = &record {
        println!(
            "codes:     {}, {} digits, every {} s",
            r.algorithm, r.digits, r.period
        );
        println!("issuer:    {}", r.issuer);
        println!("created:   {}", timestamp(r.created));
        println!(
            "last used: {}",
            r.last_used.map_or_else(|| "never".to_owned(), timestamp)
        );
    }
    Ok(())
}
