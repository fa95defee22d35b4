//! Before `[policy] enroll_deadline`: a required user without 2FA is offered the enrollment
//! and may put it off, told how many days are left. Putting it off lets the login go on
//! without a second factor, as for a user policy does not require (and it is logged).
#![forbid(unsafe_code)]

use crate::conversation::Conversation;
use crate::deadline::days_text;
use crate::policy::Policy;

use super::{FirstFactor, Request};

pub const LATER_PROMPT: &str = "Set it up now? [Y/n] ";

/// What the user chose before the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Go through the enrollment now (it is then required to finish this login).
    EnrollNow,
    /// Not now: the login goes on without a second factor.
    Later,
}

/// The announcement: "required from DAY (N days left)".
pub fn announcement(policy: &Policy, days_left: u32) -> String {
    let day = policy
        .policy
        .enroll_deadline
        .as_ref()
        .map_or("", |d| d.day());
    format!(
        "Two-factor authentication becomes mandatory for this account on {day} \
         ({} left); after that you cannot log in without it.",
        days_text(days_left)
    )
}

/// Offers the enrollment when this login can run one; otherwise (enroll-at-login off, no
/// first factor seen, PAM_SILENT) only says when it becomes mandatory. A question that cannot
/// be asked (no terminal) counts as "later": before the deadline nobody is locked out.
pub fn offer(
    request: &Request<'_>,
    policy: &Policy,
    days_left: u32,
    conversation: &mut impl Conversation,
) -> Choice {
    if request.silent {
        return Choice::Later;
    }
    let text = announcement(policy, days_left);
    let can_enroll = policy.policy.enroll_at_login && request.first_factor != FirstFactor::Unseen;
    if !can_enroll {
        let _ = conversation.info(&format!("{text}\nAsk your administrator how to set it up."));
        return Choice::Later;
    }
    let _ = conversation.info(&format!(
        "{text}\nIt takes a minute with an authenticator app on your phone \
         (Google Authenticator, Microsoft Authenticator, Duo Mobile, FreeOTP, ...)."
    ));
    match conversation.ask_visible(LATER_PROMPT) {
        Ok(answer) => {
            let answer = String::from_utf8_lossy(&answer).trim().to_ascii_lowercase();
            if matches!(answer.as_str(), "n" | "no" | "later" | "skip") {
                Choice::Later
            } else {
                Choice::EnrollNow
            }
        }
        Err(_) => Choice::Later,
    }
}
