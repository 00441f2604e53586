//! What a run fetches and deletes: the effective policy, the maildrop's listing with the
//! identity rule (what the state and the Maildir tags know each message by), and the choice of
//! messages to download, to leave (too big) and to delete (delivered by earlier runs).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::config::{Account, DeliveryTarget};
use crate::connect::Connection;
use crate::pop3::{self, MessageNumber, Uid};
use crate::store::deliver::{self, Target};
use crate::store::state::State;
use crate::store::unix_now as now;

use super::{Context, FetchArgs, FetchError, Summary, report};
use crate::commands::shared::top::{HeaderReply, fetch_headers_with_top};

/// The account's effective policy for this run: the config file, overridden by the flags.
pub(super) struct Policy {
    /// Where messages go.
    pub(super) target: Target,
    /// Delete messages from the server once delivered.
    pub(super) delete: bool,
    /// Delete messages delivered this many days ago (0 = never).
    pub(super) keep_days: u32,
    /// Download at most this many messages (`None` = no limit).
    pub(super) max_messages: Option<usize>,
    /// Delete messages bigger than this without downloading them (`None` = never).
    pub(super) delete_larger_than: Option<u64>,
    /// `--keep`: nothing is deleted, not even unread (delete_larger_than, filter exit 1).
    pub(super) keep: bool,
}

impl Policy {
    /// The policy of `account` with the flags in `args`.
    pub(super) fn new(account: &Account, args: &FetchArgs) -> Result<Policy, FetchError> {
        let target = if let Some(dir) = &args.maildir {
            Target::Maildir(dir.clone())
        } else if let Some(file) = &args.mbox {
            Target::Mbox(file.clone())
        } else if let Some(command) = &args.mda {
            Target::Mda(command.split_whitespace().map(str::to_owned).collect())
        } else if args.lmtp.is_some() || args.smtp.is_some() {
            server_from_flags(account, args)?
        } else {
            match &account.target {
                DeliveryTarget::Maildir(dir) => Target::Maildir(dir.clone()),
                DeliveryTarget::Mbox(file) => Target::Mbox(file.clone()),
                DeliveryTarget::Mda(argv) => Target::Mda(argv.clone()),
                DeliveryTarget::Server(server) => Target::Server(server.clone()),
            }
        };
        if matches!(&target, Target::Mda(argv) if argv.is_empty()) {
            return Err(FetchError::MdaWithoutCommand);
        }
        let (delete, keep_days) = if args.keep {
            (false, 0)
        } else {
            (args.delete || account.delete, account.keep_days)
        };
        // `--max-messages 0` lifts the configured limit for this run.
        let max_messages = match args.max_messages {
            Some(n) => Some(n).filter(|&n| n > 0),
            None => account.max_messages,
        };
        Ok(Policy {
            target,
            delete,
            keep_days,
            max_messages,
            delete_larger_than: args.delete_larger_than.or(account.delete_larger_than),
            keep: args.keep,
        })
    }
}

/// `--lmtp`/`--smtp`: the server of the flag, with the account's `recipient` and
/// `delete_rejected` when it delivers to a server too (else the local user, and keep).
fn server_from_flags(account: &Account, args: &FetchArgs) -> Result<Target, FetchError> {
    use crate::store::smtp::settings::{self, SmtpKey};
    let (recipient, delete_rejected) = match &account.target {
        DeliveryTarget::Server(server) => (Some(server.recipient.as_str()), server.delete_rejected),
        _ => (None, false),
    };
    let smtp = args.smtp.clone().map(SmtpKey::Address);
    settings::parse(
        args.lmtp.as_deref(),
        smtp.as_ref(),
        recipient,
        Some(delete_rejected),
        crate::store::smtp::local_user,
    )
    .map_err(|e| FetchError::BadServer(format!("--{}", e.0)))?
    .map(Target::Server)
    .ok_or_else(|| FetchError::BadServer("--lmtp or --smtp needs a server".into()))
}

/// A message to download.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) number: MessageNumber,
    pub(super) size: u64,
    /// The unique-id the server gave it (or its digest form), for people to read.
    pub(super) uid: Uid,
    /// What the state and the Maildir tag know it by (see [`identify`]): its unique-id, unless
    /// an earlier message in the listing holds the same one.
    pub(super) key: Uid,
}

/// What this run will do with the maildrop.
pub(super) struct Plan {
    /// Messages to download, in order of number.
    pub(super) wanted: Vec<Candidate>,
    /// Messages left on the server because they are too big (listed for a dry run only).
    pub(super) too_big: Vec<Candidate>,
    /// Messages delivered by earlier runs that the policy now removes, and messages to delete
    /// unread (recorded as such before their DELE is sent).
    pub(super) old_deletions: Vec<MessageNumber>,
    /// Messages bigger than `delete_larger_than`, new to this run: to record, report and delete
    /// unread (see `filter::delete_unfetched`). Listed only, for a dry run.
    pub(super) unfetched_deletions: Vec<Candidate>,
    /// New messages left for a later run by `max_messages` (see `filter::select`).
    pub(super) deferred: usize,
}

/// Chooses what to download and what to delete. Outside a dry run, messages a Maildir already
/// holds (delivered by a run killed before recording them) are recorded now, not fetched again,
/// and the "too big" report is given once per message.
pub(super) fn plan(
    context: &Context,
    args: &FetchArgs,
    policy: &Policy,
    listing: &[Candidate],
    state: &mut State,
    summary: &mut Summary,
) -> Result<Plan, FetchError> {
    let account = &context.account;
    let too_big_limit = account.max_message_size.unwrap_or(u64::MAX);
    let mut wanted = Vec::new();
    let mut too_big = Vec::new();
    let mut unfetched_deletions = Vec::new();
    // Deleted unread by an earlier run whose QUIT was not confirmed: DELE again, silently.
    let mut pending_deletions = Vec::new();
    for message in listing {
        let entry = state.entry(&message.key).unwrap_or_default();
        if entry.delete_unfetched {
            if !policy.keep {
                pending_deletions.push(message.number);
            }
            continue;
        }
        if !args.all && (entry.first_seen.is_some() || entry.filter_skipped) {
            continue;
        }
        // mpop's order: killsize, then skipsize, then the filter; the first that applies wins.
        if let Some(limit) = policy.delete_larger_than
            && message.size > limit
        {
            if policy.keep {
                // mpop's killsize under `keep`: left on the server, not downloaded.
                summary.too_big += 1;
            } else {
                unfetched_deletions.push(message.clone());
            }
            continue;
        }
        // Refused for good by the delivery server in an earlier run, and reported then.
        if !args.all && !args.retry_rejected && state.is_rejected(&message.key) {
            continue;
        }
        if message.size > too_big_limit {
            summary.too_big += 1;
            let reported = state.entry(&message.key).is_some_and(|e| e.size_reported);
            if args.dry_run {
                too_big.push(message.clone());
            } else if !reported && report::too_big(context, message, too_big_limit) {
                state
                    .record_size_reported(&message.key)
                    .map_err(FetchError::State)?;
            }
            continue;
        }
        wanted.push(message.clone());
    }

    // Exactly once: a message delivered by a run that died before recording it is recognised
    // by the target (a Maildir, by the tag in its file name).
    if !args.all && !wanted.is_empty() && !args.dry_run {
        let keys: Vec<&Uid> = wanted.iter().map(|c| &c.key).collect();
        let known =
            deliver::already_delivered(&policy.target, &recognised_account_keys(account), &keys)
                .map_err(FetchError::Deliver)?;
        let (known, rest): (Vec<_>, Vec<_>) =
            wanted.into_iter().partition(|c| known.contains(&c.key));
        let uids: Vec<Uid> = known.iter().map(|c| c.key.clone()).collect();
        state
            .record_delivered(&uids, now())
            .map_err(FetchError::State)?;
        summary.recognised += known.len();
        wanted = rest;
    }

    let cutoff = now().saturating_sub(u64::from(policy.keep_days) * 86_400);
    let wanted_numbers: HashSet<MessageNumber> = wanted.iter().map(|w| w.number).collect();
    let mut old_deletions: Vec<MessageNumber> = listing
        .iter()
        .filter(|m| {
            !wanted_numbers.contains(&m.number)
                && (state
                    .entry(&m.key)
                    .and_then(|e| e.first_seen)
                    .is_some_and(|seen| policy.delete || (policy.keep_days > 0 && seen <= cutoff))
                    // A rejected message whose DELE did not take effect (QUIT unconfirmed).
                    || (policy.target.delete_rejected() && state.is_rejected(&m.key)))
        })
        .map(|m| m.number)
        .collect();
    old_deletions.extend(pending_deletions);
    old_deletions.sort();
    old_deletions.dedup();
    Ok(Plan {
        wanted,
        too_big,
        old_deletions,
        unfetched_deletions,
        deferred: 0,
    })
}

/// What the Maildir tags of an account's messages are derived from: the mailbox (user and
/// host), like the state, so that another port or TLS mode recognises them too.
pub(super) fn account_key(account: &Account) -> String {
    format!("{}@{}", account.user, account.host.to_ascii_lowercase())
}

/// Every key a Maildir tag of this mailbox may be derived from: [`account_key`], and what older
/// versions used (host as written, port and user) for this port and the two usual ones, so
/// that the files they delivered are still recognised.
pub(super) fn recognised_account_keys(account: &Account) -> Vec<String> {
    let mut keys = vec![account_key(account)];
    for port in [account.port, 995, 110] {
        let legacy = format!("{}:{}:{}", account.host, port, account.user);
        if !keys.contains(&legacy) {
            keys.push(legacy);
        }
    }
    keys
}

/// The state file of an account: one per mailbox (user and host), whatever the port.
pub(crate) fn state_path(account: &Account) -> PathBuf {
    account
        .state_dir
        .join(crate::store::state::file_name(&account.host, &account.user))
}

/// A read-only view of the account's state (see `store::adopt::read_only`).
pub(crate) fn read_state(account: &Account) -> Result<State, crate::store::state::StateError> {
    crate::store::adopt::read_only(&state_path(account), &account.host, &account.user)
}

/// The maildrop as this run sees it.
pub(super) struct Listing {
    /// Every message that could be identified.
    pub(super) messages: Vec<Candidate>,
    /// Messages that could not be identified (their TOP was refused), as report lines. While
    /// there are any, the state forgets nothing: such a message may be one it knows.
    pub(super) unidentified: Vec<String>,
}

/// The maildrop's messages with their unique-ids. Without UIDL, a digest of each message's
/// header block (TOP n 0) stands in for the unique-id. Without TOP as well, nothing identifies
/// a message across runs: only delete mode is safe then (every message fetched is removed), and
/// each message gets an id valid for this run only.
///
/// The server is not trusted to be consistent: a number LIST gives twice is one message, a
/// number UIDL names but LIST lacks is reported, never fetched blindly, and every step is a
/// map lookup (a listing of a million messages costs no more than sorting it).
pub(super) fn listing_with_uids(
    connection: &mut Connection,
    delete: bool,
    context: &Context,
) -> anyhow::Result<Listing> {
    let scan = distinct_numbers(connection.session.list()?);
    let capabilities = connection.capabilities.clone();
    let uids: Option<Vec<pop3::UniqueIdListing>> =
        if capabilities.uidl() || !capabilities.is_known() {
            match connection.session.uidl() {
                Ok(uids) => Some(uids),
                Err(pop3::Error::Server { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
    let numbers: Vec<_> = scan.iter().map(|m| m.number).collect();
    let mut unidentified = Vec::new();
    // Messages already reported as unidentified, so each is reported once.
    let mut reported: HashSet<MessageNumber> = HashSet::new();
    let uid_by_number: HashMap<MessageNumber, Uid> = match uids {
        Some(uids) => {
            let listed: HashSet<MessageNumber> = numbers.iter().copied().collect();
            let mut by_number: HashMap<MessageNumber, Uid> = HashMap::new();
            let mut absent_from_list: Vec<MessageNumber> = Vec::new();
            for u in uids {
                if !listed.contains(&u.number) {
                    absent_from_list.push(u.number);
                    continue;
                }
                match by_number.get(&u.number) {
                    None => {
                        by_number.insert(u.number, u.uid);
                    }
                    Some(first) if *first == u.uid => {}
                    // Two ids for one message: either may be the one recorded last time.
                    Some(first) => {
                        if reported.insert(u.number) {
                            unidentified.push(format!(
                                "message {} (UIDL gives it two unique ids, {first} and {})",
                                u.number, u.uid
                            ));
                        }
                    }
                }
            }
            for number in &reported {
                by_number.remove(number);
            }
            absent_from_list.sort();
            absent_from_list.dedup();
            for number in absent_from_list {
                unidentified.push(format!("message {number} (in UIDL but missing from LIST)"));
            }
            by_number
        }
        None if numbers.is_empty() => HashMap::new(),
        None => match fetch_headers_with_top(connection, &numbers)? {
            Some(headers) => {
                context.note(
                    "the server has no UIDL; identifying messages by a digest of their headers",
                );
                let mut by_number = HashMap::new();
                for (&number, reply) in numbers.iter().zip(headers) {
                    match reply {
                        HeaderReply::Headers(raw) => {
                            by_number.insert(number, digest_uid(&raw));
                        }
                        HeaderReply::Refused(status) => {
                            reported.insert(number);
                            unidentified.push(format!("message {number} (TOP refused: {status})"))
                        }
                    }
                }
                by_number
            }
            None if delete => {
                context
                    .note("the server has neither UIDL nor TOP; fetching and deleting everything");
                let run = format!("N{}.{}", now(), std::process::id());
                numbers
                    .iter()
                    .map(|&n| {
                        (
                            n,
                            Uid::new(&format!("{run}.{n}")).expect("a valid unique-id"),
                        )
                    })
                    .collect()
            }
            None => return Err(FetchError::NoUidlNorTop.into()),
        },
    };
    let mut identified = Vec::with_capacity(scan.len());
    for m in scan {
        match uid_by_number.get(&m.number) {
            Some(uid) => identified.push((m, uid.clone())),
            None if reported.contains(&m.number) => {}
            None => unidentified.push(format!("message {} (missing from UIDL)", m.number)),
        }
    }
    Ok(Listing {
        messages: identify(identified),
        unidentified,
    })
}

/// The scan listing with each message number once (the first line for it wins), in order of
/// number: a server that lists a message twice must not get it delivered twice.
fn distinct_numbers(mut scan: Vec<pop3::ScanListing>) -> Vec<pop3::ScanListing> {
    // A stable sort keeps the first of equal numbers first.
    scan.sort_by_key(|m| m.number);
    scan.dedup_by_key(|m| m.number);
    scan
}

/// The identity rule: what the state and the Maildir tags know each message by. `messages`
/// come in order of message number, which is the maildrop's order (new mail is appended).
///
/// - A message whose unique-id no earlier message holds is known by that unique-id, so the
///   records of earlier versions (plain unique-ids) keep their meaning.
/// - A message whose unique-id an earlier message holds too (popa3d derives ids from the
///   headers, so two copies of a message share one) is known by a digest (`~sha256:` and 64
///   hex digits) of the unique-id, its size and its ordinal among the messages with that same
///   unique-id and size. Copies are thus fetched once each; a copy of a different size never
///   passes for another one.
fn identify(messages: Vec<(pop3::ScanListing, Uid)>) -> Vec<Candidate> {
    let mut holders: HashMap<Uid, u64> = HashMap::new();
    let mut same_size: HashMap<(Uid, u64), u64> = HashMap::new();
    messages
        .into_iter()
        .map(|(m, uid)| {
            let earlier = holders.entry(uid.clone()).or_default();
            *earlier += 1;
            let ordinal = same_size.entry((uid.clone(), m.size)).or_default();
            *ordinal += 1;
            let key = if *earlier == 1 {
                uid.clone()
            } else {
                shared_uid_key(&uid, m.size, *ordinal)
            };
            Candidate {
                number: m.number,
                size: m.size,
                uid,
                key,
            }
        })
        .collect()
}

/// The key of a message whose unique-id an earlier message holds (see [`identify`]). The NUL
/// bytes make it an id no server may send, so it takes the digest form (`~sha256:` and 64 hex
/// digits), which never equals a plain unique-id.
fn shared_uid_key(uid: &Uid, size: u64, ordinal: u64) -> Uid {
    Uid::from_listing(format!("shared\0{uid}\0{size}\0{ordinal}").as_bytes())
}

fn digest_uid(headers: &[u8]) -> Uid {
    let digest = ring::digest::digest(&ring::digest::SHA256, headers);
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Uid::new(&format!("H{hex}")).expect("hex digits are a valid unique-id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(number: u32, size: u64, uid: &str) -> (pop3::ScanListing, Uid) {
        let number = MessageNumber::new(number).unwrap();
        (pop3::ScanListing { number, size }, Uid::new(uid).unwrap())
    }

    fn keys(messages: Vec<(pop3::ScanListing, Uid)>) -> Vec<String> {
        identify(messages)
            .into_iter()
            .map(|c| c.key.as_str().to_owned())
            .collect()
    }

    #[test]
    fn the_first_holder_of_a_unique_id_keeps_it_and_copies_get_distinct_keys() {
        let now = keys(vec![
            listed(1, 100, "dup"),
            listed(2, 50, "solo"),
            listed(3, 100, "dup"),
            listed(4, 200, "dup"),
        ]);
        assert_eq!(&now[..2], ["dup", "solo"], "plain ids keep their meaning");
        assert!(now[2].starts_with("~sha256:") && now[3].starts_with("~sha256:"));
        assert_ne!(now[2], now[3]);
        // The same maildrop renumbered (a message before them was deleted) gives the same keys.
        let later = keys(vec![
            listed(1, 100, "dup"),
            listed(2, 50, "solo"),
            listed(3, 100, "dup"),
            listed(4, 200, "dup"),
            listed(5, 100, "dup"),
        ]);
        assert_eq!(later[..4], now[..], "stable across sessions");
        assert!(!now.contains(&later[4]), "a new copy is new");
    }

    #[test]
    fn a_message_number_listed_twice_is_one_message() {
        let n = |n| MessageNumber::new(n).unwrap();
        let scan = vec![
            pop3::ScanListing {
                number: n(2),
                size: 5,
            },
            pop3::ScanListing {
                number: n(1),
                size: 7,
            },
            pop3::ScanListing {
                number: n(2),
                size: 9,
            },
        ];
        let distinct = distinct_numbers(scan);
        assert_eq!(distinct.len(), 2);
        assert_eq!(
            (distinct[1].number, distinct[1].size),
            (n(2), 5),
            "first line wins"
        );
    }
}
