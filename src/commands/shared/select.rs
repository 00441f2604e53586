//! Naming messages on the command line: numbers (`3`), ranges (`3-7`) or, with `--uid`, unique
//! ids. Numbers are resolved against the scan listing and UIDs against the unique-id listing of
//! the same session, so a renumbered maildrop can never make a command act on the wrong message.

use std::collections::{HashMap, HashSet};

use clap::Args;

use crate::connect::Connection;
use crate::pop3::{Command, MessageNumber, Uid};

/// Which messages a command acts on.
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    /// Message numbers (3), ranges (3-7), or unique ids with --uid
    #[arg(value_name = "MSG")]
    pub messages: Vec<String>,
    /// Name messages by unique id (UIDL) instead of number
    #[arg(long)]
    pub uid: bool,
    /// The N newest messages (the highest numbers), instead of naming them
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        conflicts_with_all = ["messages", "uid"]
    )]
    pub last: Option<u32>,
}

/// One message as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageSpec {
    /// A message number.
    Number(u32),
    /// An inclusive range of message numbers.
    Range(u32, u32),
    /// A unique id.
    Uid(String),
    /// The newest messages: this many of the highest numbers.
    Last(u32),
}

/// A message resolved in the current session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Its number in this session.
    pub number: MessageNumber,
    /// Its size in octets.
    pub size: u64,
    /// Its unique id, when the server has UIDL and it was asked for.
    pub uid: Option<Uid>,
}

/// Why messages named on the command line cannot be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Message numbers start at 1.
    #[error("invalid message number \"0\": messages are numbered from 1")]
    ZeroNumber,
    /// Not a number at all.
    #[error(
        "invalid message number {0:?}: give a number like 3, a range like 3-7, or use --uid for unique ids"
    )]
    InvalidNumber(String),
    /// A malformed or backwards range.
    #[error("invalid range {text:?}: {why}")]
    InvalidRange {
        /// The range as given.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Not a unique id (RFC 1939 §7: 1 to 70 printable characters).
    #[error("invalid unique id {0:?}")]
    InvalidUid(String),
    /// `--uid` on a server without UIDL.
    #[error(
        "the server does not support unique ids (UIDL), so --uid cannot be used; name messages by number"
    )]
    NoUidl,
    /// A number the scan listing lacks.
    #[error("no message {number}: {}", match .count {
        0 => "the mailbox is empty".to_owned(),
        1 => "the mailbox has 1 message".to_owned(),
        n => format!("the mailbox has messages 1 to {n}"),
    })]
    NoSuchNumber {
        /// The number asked for.
        number: u32,
        /// How many messages the mailbox has.
        count: usize,
    },
    /// A unique id the unique-id listing lacks.
    #[error("no message with unique id {0:?} on the server")]
    NoSuchUid(String),
    /// A unique id whose message the scan listing lacks.
    #[error(
        "the server's unique-id listing gives {uid:?} to message {number}, which its scan listing (LIST) lacks; try again later, or name the message by number"
    )]
    DanglingUid {
        /// The unique id.
        uid: String,
        /// The message UIDL gives it to.
        number: MessageNumber,
    },
    /// A unique id several messages share.
    #[error("unique id {uid:?} is shared by messages {}; name one by number", list(.numbers))]
    AmbiguousUid {
        /// The unique id.
        uid: String,
        /// Every message that holds it.
        numbers: Vec<MessageNumber>,
    },
}

impl SelectError {
    /// Whether the command line itself is wrong (rather than the mailbox lacking a message).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SelectError::ZeroNumber
                | SelectError::InvalidNumber(_)
                | SelectError::InvalidRange { .. }
                | SelectError::InvalidUid(_)
        )
    }
}

fn list(numbers: &[MessageNumber]) -> String {
    let listed: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
    listed.join(", ")
}

fn parse_number(text: &str) -> Result<u32, SelectError> {
    match text.parse::<u32>() {
        Ok(0) => Err(SelectError::ZeroNumber),
        Ok(n) => Ok(n),
        Err(_) => Err(SelectError::InvalidNumber(text.to_owned())),
    }
}

/// Parses the command line's message names.
pub fn parse_specs(args: &MessageArgs) -> Result<Vec<MessageSpec>, SelectError> {
    if let Some(count) = args.last {
        return Ok(vec![MessageSpec::Last(count)]);
    }
    args.messages
        .iter()
        .map(|text| {
            if args.uid {
                return Uid::parse(text)
                    .map(|_| MessageSpec::Uid(text.clone()))
                    .ok_or_else(|| SelectError::InvalidUid(text.clone()));
            }
            match text.split_once('-') {
                Some((first, last)) => {
                    let bad_range = |why| SelectError::InvalidRange {
                        text: text.clone(),
                        why,
                    };
                    let bound = |part: &str| match part.parse::<u32>() {
                        // `0-2`: the range's form is right, its start is not.
                        Ok(0) => Err(bad_range("messages are numbered from 1")),
                        Ok(n) => Ok(n),
                        Err(_) => Err(bad_range("write it like 3-7")),
                    };
                    let (first, last) = (bound(first)?, bound(last)?);
                    if first > last {
                        return Err(bad_range("the first number must not exceed the last"));
                    }
                    Ok(MessageSpec::Range(first, last))
                }
                None => parse_number(text).map(MessageSpec::Number),
            }
        })
        .collect()
}

/// The commands [`resolve`] will send first, to pipeline behind the login.
pub fn prefetch(specs: &[MessageSpec], want_uids: bool) -> Vec<Command<'static>> {
    let by_uid = specs.iter().any(|s| matches!(s, MessageSpec::Uid(_)));
    let mut commands = vec![Command::List(None)];
    if by_uid || want_uids {
        commands.push(Command::Uidl(None));
    }
    commands
}

/// Resolves `specs` (all messages when empty) in this session, in the order given, without
/// duplicates. `want_uids` also fetches unique ids when the server has them.
pub fn resolve(
    connection: &mut Connection,
    specs: &[MessageSpec],
    want_uids: bool,
) -> anyhow::Result<Vec<Selected>> {
    let by_uid = specs.iter().any(|s| matches!(s, MessageSpec::Uid(_)));
    let has_uidl = connection.capabilities.uidl() || !connection.capabilities.is_known();
    if by_uid && connection.capabilities.is_known() && !connection.capabilities.uidl() {
        return Err(SelectError::NoUidl.into());
    }
    let scan = connection.session.list()?;
    let uids = if by_uid || (want_uids && has_uidl) {
        match connection.session.uidl() {
            Ok(uids) => uids,
            Err(crate::pop3::Error::Server { .. }) if !by_uid => Vec::new(),
            Err(e) => return Err(e.into()),
        }
    } else {
        Vec::new()
    };
    // The server is not trusted to be consistent: a number LIST gives twice is one message
    // (its first line counts), and only numbers LIST has are ever selected.
    let mut size_by_number: HashMap<MessageNumber, u64> = HashMap::with_capacity(scan.len());
    let mut in_order = Vec::with_capacity(scan.len());
    for m in &scan {
        if let std::collections::hash_map::Entry::Vacant(slot) = size_by_number.entry(m.number) {
            slot.insert(m.size);
            in_order.push(m.number);
        }
    }
    let mut uid_by_number: HashMap<MessageNumber, &Uid> = HashMap::with_capacity(uids.len());
    // Every message number that holds each unique-id, in the order UIDL gave them.
    let mut numbers_by_uid: HashMap<&str, Vec<MessageNumber>> = HashMap::new();
    let mut pairs: HashSet<(MessageNumber, &str)> = HashSet::with_capacity(uids.len());
    for u in &uids {
        uid_by_number.entry(u.number).or_insert(&u.uid);
        // A line given twice is one holder; a map, not a scan, keeps this linear.
        if pairs.insert((u.number, u.uid.as_str())) {
            numbers_by_uid
                .entry(u.uid.as_str())
                .or_default()
                .push(u.number);
        }
    }
    let selected = |number: MessageNumber, size: u64| Selected {
        number,
        size,
        uid: uid_by_number.get(&number).map(|u| (*u).clone()),
    };
    if specs.is_empty() {
        return Ok(in_order
            .iter()
            .map(|n| selected(*n, size_by_number[n]))
            .collect());
    }
    let count = in_order.len();
    let highest = in_order.iter().map(|n| n.get()).max().unwrap_or(0);
    let no_such = |number: u32| SelectError::NoSuchNumber { number, count };
    let lookup = |n: u32| {
        MessageNumber::new(n)
            .filter(|number| size_by_number.contains_key(number))
            .ok_or_else(|| no_such(n))
    };
    let mut seen = HashSet::new();
    let mut result = Vec::new();
    for spec in specs {
        let numbers: Vec<MessageNumber> = match spec {
            MessageSpec::Number(n) => vec![lookup(*n)?],
            // A range is cut to the mailbox (`5-99` on 6 messages is 5-6), as long as it
            // starts inside it; a single number beyond it stays an error.
            MessageSpec::Range(first, last) => {
                lookup(*first)?;
                let end = (*last).min(highest);
                (*first..=end).map(lookup).collect::<Result<_, _>>()?
            }
            MessageSpec::Uid(text) => vec![by_unique_id(text, &numbers_by_uid, &size_by_number)?],
            MessageSpec::Last(wanted) => {
                let mut numbers = in_order.clone();
                numbers.sort_unstable();
                let from = numbers.len().saturating_sub(*wanted as usize);
                numbers.split_off(from)
            }
        };
        for number in numbers {
            if seen.insert(number) {
                result.push(selected(number, size_by_number[&number]));
            }
        }
    }
    Ok(result)
}

/// The one message that holds the unique-id `text`. RFC 1939 §7 says an id names one message,
/// but servers such as popa3d derive ids from the headers, so copies share one: acting on the
/// first of them could read or delete the wrong message, so an ambiguous id is refused with
/// the candidates' numbers. A number only UIDL gives (LIST lacks it) is refused too.
fn by_unique_id(
    text: &str,
    numbers_by_uid: &HashMap<&str, Vec<MessageNumber>>,
    size_by_number: &HashMap<MessageNumber, u64>,
) -> Result<MessageNumber, SelectError> {
    match numbers_by_uid.get(text).map(Vec::as_slice) {
        None | Some([]) => Err(SelectError::NoSuchUid(text.to_owned())),
        Some([number]) if size_by_number.contains_key(number) => Ok(*number),
        Some([number]) => Err(SelectError::DanglingUid {
            uid: text.to_owned(),
            number: *number,
        }),
        Some(numbers) => Err(SelectError::AmbiguousUid {
            uid: text.to_owned(),
            numbers: numbers.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &[&str], uid: bool) -> Result<Vec<MessageSpec>, SelectError> {
        parse_specs(&MessageArgs {
            messages: list.iter().map(|s| s.to_string()).collect(),
            uid,
            last: None,
        })
    }

    #[test]
    fn numbers_ranges_and_uids() {
        assert_eq!(
            specs(&["3", "5-7"], false).unwrap(),
            [MessageSpec::Number(3), MessageSpec::Range(5, 7)]
        );
        assert_eq!(
            specs(&["000000016b021e3a"], true).unwrap(),
            [MessageSpec::Uid("000000016b021e3a".into())]
        );
    }

    #[test]
    fn last_replaces_the_names() {
        let args = MessageArgs {
            messages: Vec::new(),
            uid: false,
            last: Some(3),
        };
        assert_eq!(parse_specs(&args).unwrap(), [MessageSpec::Last(3)]);
    }

    #[test]
    fn bad_numbers_are_usage_errors() {
        for bad in ["0", "abc", "-1", "7-3", "3-", "1.5", "99999999999"] {
            let err = specs(&[bad], false).unwrap_err();
            assert!(err.is_usage(), "{bad}");
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
        assert!(specs(&["has space"], true).is_err());
    }

    #[test]
    fn range_from_zero_says_messages_are_numbered_from_1() {
        for bad in ["0-2", "2-0"] {
            let err = specs(&[bad], false).unwrap_err();
            assert!(err.is_usage(), "{bad}");
            assert_eq!(
                err.to_string(),
                format!("invalid range \"{bad}\": messages are numbered from 1")
            );
        }
        // Other malformed ranges keep the example of the right form.
        assert!(
            specs(&["3-x"], false)
                .unwrap_err()
                .to_string()
                .ends_with("write it like 3-7")
        );
    }

    #[test]
    fn ambiguous_and_dangling_unique_ids_are_refused_with_the_numbers() {
        let n = |n| MessageNumber::new(n).unwrap();
        let numbers_by_uid: HashMap<&str, Vec<MessageNumber>> = [
            ("dup", vec![n(1), n(3)]),
            ("one", vec![n(2)]),
            ("dangling", vec![n(9)]),
        ]
        .into();
        let sizes: HashMap<MessageNumber, u64> = [(n(1), 10), (n(2), 20), (n(3), 30)].into();
        assert_eq!(by_unique_id("one", &numbers_by_uid, &sizes).unwrap(), n(2));
        let shared = by_unique_id("dup", &numbers_by_uid, &sizes).unwrap_err();
        assert!(!shared.is_usage());
        assert!(
            shared.to_string().contains("shared by messages 1, 3"),
            "{shared}"
        );
        let dangling = by_unique_id("dangling", &numbers_by_uid, &sizes).unwrap_err();
        assert!(!dangling.is_usage());
        assert!(dangling.to_string().contains("message 9"), "{dangling}");
        assert!(by_unique_id("none", &numbers_by_uid, &sizes).is_err());
    }

    #[test]
    fn the_digest_form_of_an_odd_unique_id_can_be_named() {
        let digest = Uid::from_listing(&[b'x'; 71]);
        assert_eq!(
            specs(&[digest.as_str()], true).unwrap(),
            [MessageSpec::Uid(digest.as_str().to_owned())]
        );
    }
}
