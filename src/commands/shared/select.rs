//! Naming messages on the command line: numbers (`3`), ranges (`3-7`) or, with `--uid`, unique
//! ids. Numbers are resolved against the scan listing and UIDs against the unique-id listing of
//! the same session, so a renumbered maildrop can never make a command act on the wrong message.

use std::collections::{HashMap, HashSet};

use clap::Args;

use crate::connect::Connection;
use crate::exit::{ExitCode, Failure};
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

fn usage(message: String) -> Failure {
    Failure::new(ExitCode::Usage, message)
}

fn parse_number(text: &str) -> Result<u32, Failure> {
    match text.parse::<u32>() {
        Ok(0) => Err(usage(
            "invalid message number \"0\": messages are numbered from 1".into(),
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(usage(format!(
            "invalid message number {text:?}: give a number like 3, a range like 3-7, or use --uid for unique ids"
        ))),
    }
}

/// Parses the command line's message names.
pub fn parse_specs(args: &MessageArgs) -> Result<Vec<MessageSpec>, Failure> {
    args.messages
        .iter()
        .map(|text| {
            if args.uid {
                return Uid::parse(text)
                    .map(|_| MessageSpec::Uid(text.clone()))
                    .ok_or_else(|| usage(format!("invalid unique id {text:?}")));
            }
            match text.split_once('-') {
                Some((first, last)) => {
                    let bad_range = |why: &str| usage(format!("invalid range {text:?}: {why}"));
                    let bound = |part: &str| {
                        part.parse::<u32>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| bad_range("write it like 3-7"))
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

/// Resolves `specs` (all messages when empty) in this session, in the order given, without
/// duplicates. `want_uids` also fetches unique ids when the server has them.
/// The commands [`resolve`] will send first, to pipeline behind the login.
pub fn prefetch(specs: &[MessageSpec], want_uids: bool) -> Vec<Command<'static>> {
    let by_uid = specs.iter().any(|s| matches!(s, MessageSpec::Uid(_)));
    let mut commands = vec![Command::List(None)];
    if by_uid || want_uids {
        commands.push(Command::Uidl(None));
    }
    commands
}

pub fn resolve(
    connection: &mut Connection,
    specs: &[MessageSpec],
    want_uids: bool,
) -> anyhow::Result<Vec<Selected>> {
    let by_uid = specs.iter().any(|s| matches!(s, MessageSpec::Uid(_)));
    let has_uidl = connection.capabilities.uidl() || !connection.capabilities.is_known();
    if by_uid && connection.capabilities.is_known() && !connection.capabilities.uidl() {
        return Err(Failure::new(
            ExitCode::Unavailable,
            "the server does not support unique ids (UIDL), so --uid cannot be used; name messages by number",
        )
        .into());
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
    let no_such = |n: u32| {
        let has = match count {
            0 => "the mailbox is empty".to_owned(),
            1 => "the mailbox has 1 message".to_owned(),
            _ => format!("the mailbox has messages 1 to {count}"),
        };
        Failure::new(ExitCode::NoSuchMessage, format!("no message {n}: {has}"))
    };
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
) -> Result<MessageNumber, Failure> {
    let no_such = |why: String| Failure::new(ExitCode::NoSuchMessage, why);
    match numbers_by_uid.get(text).map(Vec::as_slice) {
        None | Some([]) => Err(no_such(format!(
            "no message with unique id {text:?} on the server"
        ))),
        Some([number]) if size_by_number.contains_key(number) => Ok(*number),
        Some([number]) => Err(no_such(format!(
            "the server's unique-id listing gives {text:?} to message {number}, which its scan listing (LIST) lacks; try again later, or name the message by number"
        ))),
        Some(numbers) => {
            let listed: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
            Err(no_such(format!(
                "unique id {text:?} is shared by messages {}; name one by number",
                listed.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &[&str], uid: bool) -> Result<Vec<MessageSpec>, Failure> {
        parse_specs(&MessageArgs {
            messages: list.iter().map(|s| s.to_string()).collect(),
            uid,
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
    fn bad_numbers_are_usage_errors() {
        for bad in ["0", "abc", "-1", "7-3", "3-", "1.5", "99999999999"] {
            let err = specs(&[bad], false).unwrap_err();
            assert_eq!(err.code, ExitCode::Usage, "{bad}");
            assert!(err.message.contains(bad), "{bad}: {}", err.message);
        }
        assert!(specs(&["has space"], true).is_err());
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
        assert_eq!(shared.code, ExitCode::NoSuchMessage);
        assert!(
            shared.message.contains("shared by messages 1, 3"),
            "{}",
            shared.message
        );
        let dangling = by_unique_id("dangling", &numbers_by_uid, &sizes).unwrap_err();
        assert_eq!(dangling.code, ExitCode::NoSuchMessage);
        assert!(
            dangling.message.contains("message 9"),
            "{}",
            dangling.message
        );
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
