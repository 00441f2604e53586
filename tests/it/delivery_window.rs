//! Pipelining across messages (`Deliverer::submit`): with CHUNKING each message goes out as
//! `BDAT n LAST` behind its envelope, without it the next envelope goes out before the previous
//! message's final answer. Against the real Dovecot LMTP and Postfix: verdicts come back in
//! order, never more than the window is in flight, and a refusal in the middle touches only its
//! own message.

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use pop3::store::smtp::{Deliverer, Endpoint, Options, Protocol, Target, Verdict, WINDOW};

use crate::support::dovecot::dovecot;
use crate::support::postfix::{DOMAIN, postfix};

/// A message carrying `tag` and its number, with lines that need byte-stuffing under DATA.
fn message(tag: &str, i: usize) -> Vec<u8> {
    format!("Return-Path: <w@example.org>\nSubject: {tag} {i}\n\n.\n..{tag}-{i}\nend {tag}-{i}\n")
        .into_bytes()
}

/// Sends `count` messages to `good`, the one at `refused_at` to `bad`, all through `submit`,
/// and returns every verdict in order.
fn submit_all(
    deliverer: &mut Deliverer<pop3::store::smtp::Stream>,
    tag: &str,
    count: usize,
    good: &str,
    bad: &str,
    refused_at: usize,
) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for i in 0..count {
        let rcpt = if i == refused_at { bad } else { good };
        deliverer
            .submit(
                Cursor::new(message(tag, i)),
                &[rcpt.to_owned()],
                &mut verdicts,
            )
            .unwrap();
        assert!(
            deliverer.in_flight() <= WINDOW,
            "more than the window in flight"
        );
    }
    deliverer.settle(&mut verdicts).unwrap();
    assert_eq!(deliverer.in_flight(), 0);
    verdicts
}

fn assert_in_order(verdicts: &[Verdict], count: usize, refused_at: usize, code: u16) {
    assert_eq!(
        verdicts.len(),
        count,
        "one verdict per message: {verdicts:?}"
    );
    for (i, verdict) in verdicts.iter().enumerate() {
        if i == refused_at {
            match verdict {
                // A refused recipient is the envelope's fault, not the message's.
                Verdict::EnvelopeRefused {
                    sender: false,
                    reply,
                } => assert_eq!(reply.code, code, "{reply}"),
                other => panic!("message {i}: expected {code}, got {other:?}"),
            }
        } else {
            assert_eq!(*verdict, Verdict::Delivered, "message {i}");
        }
    }
}

/// The message files under `maildir` (new/ and cur/) that contain `needle`, waiting up to 20 s
/// for `count` of them.
fn wait_for(maildir: &Path, needle: &str, count: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Vec<u8>> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
            .flat_map(|dir| dir.flatten().map(|e| e.path()))
            .filter_map(|path| std::fs::read(path).ok())
            .filter(|bytes| String::from_utf8_lossy(bytes).contains(needle))
            .collect();
        if found.len() >= count || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn lmtp_window_with_and_without_chunking_keeps_verdicts_in_order() {
    let lmtp = dovecot().lmtp();
    let target = Target {
        protocol: Protocol::Lmtp,
        endpoint: Endpoint::Unix(lmtp.socket.clone()),
    };
    for chunking in [true, false] {
        let user = dovecot().add_user(&[]);
        let options = Options {
            timeout: Duration::from_secs(20),
            chunking,
            ..Options::default()
        };
        let mut deliverer = Deliverer::connect(&target, &options).unwrap();
        assert!(
            deliverer.extensions().chunking == chunking,
            "Dovecot's LMTP offers CHUNKING"
        );
        let tag = format!("lmtp-window-{chunking}");
        let verdicts = submit_all(&mut deliverer, &tag, 12, &user.name, "no-such-user", 5);
        assert_in_order(&verdicts, 12, 5, 550);
        deliverer.quit().unwrap();
        let copies = wait_for(&user.maildir, &tag, 11);
        assert_eq!(copies.len(), 11, "every accepted message once");
        for i in (0..12).filter(|&i| i != 5) {
            let body = format!("\n.\n..{tag}-{i}\nend {tag}-{i}\n");
            let n = copies
                .iter()
                .filter(|c| {
                    String::from_utf8_lossy(c)
                        .replace("\r\n", "\n")
                        .ends_with(&body)
                })
                .count();
            assert_eq!(n, 1, "message {i} delivered once, byte-exact");
        }
    }
}

#[test]
fn smtp_window_with_and_without_chunking_keeps_verdicts_in_order() {
    let pf = postfix();
    let target = Target {
        protocol: Protocol::Smtp,
        endpoint: Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: pf.port,
        },
    };
    for chunking in [true, false] {
        let options = Options {
            timeout: Duration::from_secs(20),
            chunking,
            ..Options::default()
        };
        let mut deliverer = Deliverer::connect(&target, &options).unwrap();
        assert!(deliverer.is_pipelining());
        assert!(
            deliverer.extensions().chunking == chunking,
            "Postfix offers CHUNKING"
        );
        let tag = format!("smtp-window-{chunking}-{}", std::process::id());
        let verdicts = submit_all(
            &mut deliverer,
            &tag,
            10,
            &format!("bob@{DOMAIN}"),
            &format!("nobody@{DOMAIN}"),
            0,
        );
        assert_in_order(&verdicts, 10, 0, 550);
        deliverer.quit().unwrap();
        let copies = wait_for(&pf.maildir("bob"), &tag, 9);
        assert_eq!(copies.len(), 9, "every accepted message once");
    }
}
