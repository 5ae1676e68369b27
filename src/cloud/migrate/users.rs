//! Step 1 of a migration (docs/reference.md §11.7): the Cloud account of each
//! user the source's user map names, found by asking Cloud for the user's
//! verified emails (`GET /rest/api/3/user/search?query=<email>`) through the
//! target's credentials. Reads only, before anything is written: a failed call
//! fails the migration with nothing changed.

use std::collections::HashMap;

use serde::Serialize;

use super::MigrateError;
use super::store::SourceMapping;
use crate::db::DbPool;
use crate::integration::Integration;
use crate::jira::user_search::CloudUser;

/// Every this many searches, a line of progress.
const PROGRESS_EVERY: usize = 50;

/// Why a source mapping has no Cloud account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Cloud has no user with the email (the weakest reason: others win).
    NotFound,
    /// Cloud found users but hides their emails, so none can be told to be it.
    EmailHidden,
    /// More than one Cloud user has exactly the email.
    Ambiguous,
    /// The user has no verified email (unverified ones are never used).
    NoVerifiedEmail,
}

/// A source mapping and what Cloud said about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The source's mapping.
    pub mapping: SourceMapping,
    /// The Cloud account, or why there is none.
    pub account: Result<String, Reason>,
}

/// The Cloud account of each of `mappings`' users: the one Cloud user whose
/// email equals (ignoring case) one of the user's verified emails, tried lowest
/// id first. When no email gives one, the strongest reason any gave.
pub async fn resolve(
    pool: &DbPool,
    target: &Integration,
    mappings: &[SourceMapping],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<Resolved>, MigrateError> {
    let mut emails: Vec<String> = Vec::new();
    for email in mappings.iter().flat_map(|m| &m.emails) {
        let email = normalized(email);
        if !emails.contains(&email) {
            emails.push(email);
        }
    }
    let found = search(pool, target, &emails, progress).await?;
    Ok(mappings
        .iter()
        .map(|mapping| Resolved {
            mapping: mapping.clone(),
            account: account(&mapping.emails, &found),
        })
        .collect())
}

/// Cloud's answer for each of `emails`, asked one by one with the target's
/// credentials (a Cloud client waits out a `429` in the call, docs/reference.md
/// §11.6; a longer wait fails the run with nothing changed).
async fn search(
    pool: &DbPool,
    target: &Integration,
    emails: &[String],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<HashMap<String, Vec<CloudUser>>, MigrateError> {
    if emails.is_empty() {
        return Ok(HashMap::new());
    }
    let total = emails.len();
    let answers = target
        .with_jira(pool, |jira| async move {
            let mut answers = HashMap::with_capacity(total);
            for (done, email) in emails.iter().enumerate() {
                answers.insert(email.clone(), jira.search_cloud_users(email).await?);
                if (done + 1) % PROGRESS_EVERY == 0 {
                    progress(&format!(
                        "searched Jira Cloud for {} of {total} emails",
                        done + 1
                    ));
                }
            }
            Ok(answers)
        })
        .await
        .map_err(|source| MigrateError::Cloud {
            base_url: target.metadata.base_url.clone(),
            source,
        })?;
    answers.ok_or(MigrateError::CannotCall(target.id))
}

/// The account `found` gives one of `emails`, tried in order, or the strongest
/// reason why none does.
fn account(emails: &[String], found: &HashMap<String, Vec<CloudUser>>) -> Result<String, Reason> {
    let mut reason = Reason::NoVerifiedEmail;
    for (i, email) in emails.iter().enumerate() {
        let email = normalized(email);
        let users = found.get(&email).map(Vec::as_slice).unwrap_or_default();
        let this = match classify(&email, users) {
            Ok(account_id) => return Ok(account_id),
            Err(this) => this,
        };
        reason = if i == 0 { this } else { reason.max(this) };
    }
    Err(reason)
}

/// The one user of `users` whose email is `email`, or why there is none.
fn classify(email: &str, users: &[CloudUser]) -> Result<String, Reason> {
    let mut same = users
        .iter()
        .filter(|user| user.email().is_some_and(|e| normalized(e) == email));
    match (same.next(), same.next()) {
        (Some(user), None) => Ok(user.account_id.clone()),
        (Some(_), Some(_)) => Err(Reason::Ambiguous),
        (None, _) if users.iter().any(|user| user.email().is_none()) => Err(Reason::EmailHidden),
        (None, _) => Err(Reason::NotFound),
    }
}

/// An email as compared: trimmed, lower case.
fn normalized(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(account_id: &str, email: Option<&str>) -> CloudUser {
        CloudUser {
            account_id: account_id.to_owned(),
            email_address: email.map(str::to_owned),
            display_name: None,
        }
    }

    #[test]
    fn one_user_with_the_email_in_any_case_is_the_account() {
        let users = [
            user("a", Some("Jane@Corp.example")),
            user("b", Some("jane.doe@corp.example")),
        ];
        assert_eq!(classify("jane@corp.example", &users), Ok("a".to_owned()));
    }

    #[test]
    fn each_reason_is_told_apart() {
        let cases = [
            ("nobody", vec![], Reason::NotFound),
            (
                "a prefix match only",
                vec![user("b", Some("jane.doe@corp.example"))],
                Reason::NotFound,
            ),
            (
                "hidden",
                vec![user("a", None), user("b", Some(""))],
                Reason::EmailHidden,
            ),
            (
                "two with the email",
                vec![
                    user("a", Some("jane@corp.example")),
                    user("b", Some("JANE@corp.example")),
                ],
                Reason::Ambiguous,
            ),
        ];
        for (name, users, expected) in cases {
            assert_eq!(
                classify("jane@corp.example", &users),
                Err(expected),
                "{name}"
            );
        }
    }

    #[test]
    fn the_first_email_that_gives_an_account_wins_else_the_strongest_reason() {
        let found = HashMap::from([
            ("old@corp.example".to_owned(), vec![user("h", None)]),
            (
                "new@corp.example".to_owned(),
                vec![user("n", Some("new@corp.example"))],
            ),
            ("gone@corp.example".to_owned(), vec![]),
        ]);
        let emails = |list: &[&str]| list.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            account(&emails(&["gone@corp.example", "New@corp.example"]), &found),
            Ok("n".to_owned())
        );
        assert_eq!(
            account(&emails(&["gone@corp.example", "old@corp.example"]), &found),
            Err(Reason::EmailHidden)
        );
        assert_eq!(account(&[], &found), Err(Reason::NoVerifiedEmail));
    }
}
