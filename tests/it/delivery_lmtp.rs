//! The LMTP/SMTP delivery client (`pop3::store::smtp`) against Dovecot's real LMTP service,
//! delivering into test users' maildrops that are read back over POP3.

use std::io::Cursor;
use std::net::TcpStream;
use std::time::Duration;

use pop3::pop3::{Client, MessageNumber};
use pop3::store::smtp::{Deliverer, Endpoint, Options, Protocol, Target, Verdict};

use crate::support::dovecot::{User, dovecot};

fn options() -> Options {
    Options {
        timeout: Duration::from_secs(20),
        ..Options::default()
    }
}

fn unix_target() -> Target {
    Target {
        protocol: Protocol::Lmtp,
        endpoint: Endpoint::Unix(dovecot().lmtp().socket.clone()),
    }
}

fn tcp_target() -> Target {
    Target {
        protocol: Protocol::Lmtp,
        endpoint: Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: dovecot().lmtp().port,
        },
    }
}

/// Every message of `user`'s maildrop, as RETR gives it (CRLF, unstuffed).
fn retrieve_all(user: &User) -> Vec<Vec<u8>> {
    let tcp = TcpStream::connect(("127.0.0.1", dovecot().pop3_port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (client, _) = Client::connect(tcp, None).unwrap();
    let mut session = client.login_user(&user.name, &user.password).unwrap();
    let count = session.stat().unwrap().messages;
    let mut messages = Vec::new();
    for n in 1..=count {
        let mut bytes = Vec::new();
        let mut sink = |chunk: &[u8]| {
            bytes.extend_from_slice(chunk);
            Ok(())
        };
        session
            .retr(MessageNumber::new(n).unwrap(), &mut sink)
            .unwrap();
        messages.push(bytes);
    }
    session.quit().unwrap();
    messages
}

/// The bytes after the headers Dovecot prepends (Return-Path, Delivered-To, Received), which
/// must be the message exactly as it was sent.
fn assert_ends_with(delivered: &[u8], original: &[u8]) {
    assert!(
        delivered.ends_with(original),
        "delivered message does not end with the original\n--- delivered ---\n{}\n--- original ---\n{}",
        String::from_utf8_lossy(delivered),
        String::from_utf8_lossy(original)
    );
}

const DOTTY: &[u8] = b"Return-Path: <sender@example.org>\r\nFrom: a@example.org\r\nSubject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\nmiddle . dot\r\n...\r\n. \r\n.\r\nlast line\r\n";

#[test]
fn lmtp_unix_socket_delivers_byte_exact_with_dot_stuffing_and_the_return_path_sender() {
    let user = dovecot().add_user(&[]);
    let mut deliverer = Deliverer::connect(&unix_target(), &options()).unwrap();
    assert!(
        deliverer.extensions().pipelining,
        "Dovecot offers PIPELINING"
    );
    let verdict = deliverer
        .deliver(Cursor::new(DOTTY), std::slice::from_ref(&user.name))
        .unwrap();
    assert_eq!(verdict, Verdict::Delivered);
    deliverer.quit().unwrap();

    let messages = retrieve_all(&user);
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].starts_with(b"Return-Path: <sender@example.org>\r\n"),
        "the envelope sender is the message's Return-Path:\n{}",
        String::from_utf8_lossy(&messages[0])
    );
    assert_ends_with(&messages[0], DOTTY);
}

#[test]
fn lmtp_without_return_path_uses_the_null_sender_and_lf_becomes_crlf() {
    let user = dovecot().add_user(&[]);
    let mut deliverer = Deliverer::connect(&tcp_target(), &options()).unwrap();
    let lf = b"Subject: lf\n\n.dot\nno final newline";
    let verdict = deliverer
        .deliver(Cursor::new(&lf[..]), std::slice::from_ref(&user.name))
        .unwrap();
    assert_eq!(verdict, Verdict::Delivered);
    let messages = retrieve_all(&user);
    assert!(
        messages[0].starts_with(b"Return-Path: <>\r\n"),
        "{}",
        String::from_utf8_lossy(&messages[0])
    );
    assert_ends_with(
        &messages[0],
        b"Subject: lf\r\n\r\n.dot\r\nno final newline\r\n",
    );
}

#[test]
fn lmtp_reuses_one_connection_for_many_messages_pipelined_or_not() {
    for pipelining in [true, false] {
        let user = dovecot().add_user(&[]);
        let opts = Options {
            pipelining,
            ..options()
        };
        let mut deliverer = Deliverer::connect(&tcp_target(), &opts).unwrap();
        assert_eq!(deliverer.is_pipelining(), pipelining);
        let originals: Vec<Vec<u8>> = (1..=5)
            .map(|i| format!("Subject: message {i}\r\n\r\nbody {i}\r\n").into_bytes())
            .collect();
        for original in &originals {
            let verdict = deliverer
                .deliver(Cursor::new(original), std::slice::from_ref(&user.name))
                .unwrap();
            assert_eq!(verdict, Verdict::Delivered);
        }
        deliverer.quit().unwrap();
        let messages = retrieve_all(&user);
        assert_eq!(messages.len(), 5, "pipelining {pipelining}");
        for (got, original) in messages.iter().zip(&originals) {
            assert_ends_with(got, original);
        }
        // Dovecot logs one connection per session: all five came over one.
        let log = std::fs::read_to_string(dovecot().dir.join("dovecot.log")).unwrap();
        let saved = log
            .lines()
            .filter(|l| l.contains(&format!("lmtp({})", user.name)) && l.contains("saved mail"))
            .map(|l| l.split('<').nth(1).unwrap_or_default().to_owned())
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(saved.len(), 1, "one LMTP process and connection: {saved:?}");
    }
}

#[test]
fn lmtp_unknown_recipient_refuses_the_envelope_and_the_next_message_still_goes_through() {
    let user = dovecot().add_user(&[]);
    for pipelining in [true, false] {
        let opts = Options {
            pipelining,
            ..options()
        };
        let mut deliverer = Deliverer::connect(&unix_target(), &opts).unwrap();
        let verdict = deliverer
            .deliver(Cursor::new(DOTTY), &["no-such-user".to_owned()])
            .unwrap();
        // Not the message's verdict: every message to that recipient would get it.
        let Verdict::EnvelopeRefused {
            sender: false,
            reply,
        } = verdict
        else {
            panic!("expected the envelope refused, got {verdict:?}");
        };
        assert_eq!(reply.code, 550, "{reply}");
        assert_eq!(
            reply.enhanced.map(|e| e.to_string()).as_deref(),
            Some("5.1.1")
        );
        // The failed transaction is reset; the connection delivers the next message.
        let verdict = deliverer
            .deliver(Cursor::new(DOTTY), std::slice::from_ref(&user.name))
            .unwrap();
        assert_eq!(verdict, Verdict::Delivered);
        deliverer.quit().unwrap();
    }
    assert_eq!(retrieve_all(&user).len(), 2);
}

/// Of two recipients, one unknown: the message goes to the other (once), the unknown one is
/// reported, and the message is not held refused; the answers stay in step for the next one.
#[test]
fn lmtp_partly_refused_recipients_deliver_to_the_accepted_and_report_the_refused() {
    let user = dovecot().add_user(&[]);
    for pipelining in [true, false] {
        let opts = Options {
            pipelining,
            ..options()
        };
        let mut deliverer = Deliverer::connect(&unix_target(), &opts).unwrap();
        for recipients in [
            [user.name.clone(), "no-such-user".to_owned()],
            ["no-such-user".to_owned(), user.name.clone()],
        ] {
            let verdict = deliverer.deliver(Cursor::new(DOTTY), &recipients).unwrap();
            let Verdict::PartlyDelivered { refused } = verdict else {
                panic!("pipelining {pipelining}: expected partly delivered, got {verdict:?}");
            };
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].0, "no-such-user");
            assert_eq!(refused[0].1.code, 550, "{}", refused[0].1);
        }
        let verdict = deliverer
            .deliver(Cursor::new(DOTTY), std::slice::from_ref(&user.name))
            .unwrap();
        assert_eq!(verdict, Verdict::Delivered);
        deliverer.quit().unwrap();
    }
    assert_eq!(retrieve_all(&user).len(), 6);
}

#[test]
fn lmtp_full_quota_is_temporary_after_the_data() {
    let full = dovecot().add_user(&[]);
    dovecot().set_quota(&full, "1K");
    let other = dovecot().add_user(&[]);
    let mut big = b"Subject: too big for the quota\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b"0123456789abcdef\r\n".as_slice(), 200).flatten());

    let mut deliverer = Deliverer::connect(&unix_target(), &options()).unwrap();
    let verdict = deliverer
        .deliver(Cursor::new(&big), std::slice::from_ref(&full.name))
        .unwrap();
    let Verdict::Temporary(reply) = verdict else {
        panic!(
            "expected a temporary failure, got {verdict:?}\n{}",
            dovecot().log_tail()
        );
    };
    assert_eq!(reply.code, 452, "{reply}");
    assert!(reply.to_string().contains("Quota"), "{reply}");
    let verdict = deliverer
        .deliver(Cursor::new(&big), std::slice::from_ref(&other.name))
        .unwrap();
    assert_eq!(verdict, Verdict::Delivered);
    assert_eq!(retrieve_all(&full).len(), 0);
    assert_eq!(retrieve_all(&other).len(), 1);
}

#[test]
fn lmtp_large_message_is_streamed_from_a_file() {
    let user = dovecot().add_user(&[]);
    // 24 MiB with a dot-led line every 64 lines, written to a file and streamed from it.
    let mut file = tempfile::tempfile().unwrap();
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(&mut file);
        w.write_all(b"Subject: large\r\n\r\n").unwrap();
        for i in 0..(24 * 1024 * 1024 / 64) {
            if i % 64 == 0 {
                write!(w, ".{i:062}\r\n").unwrap();
            } else {
                write!(w, "{i:062}\r\n").unwrap();
            }
        }
    }
    let size = file.metadata().unwrap().len();
    let mut deliverer = Deliverer::connect(&unix_target(), &options()).unwrap();
    let verdict = deliverer
        .deliver(&mut file, std::slice::from_ref(&user.name))
        .unwrap();
    assert_eq!(verdict, Verdict::Delivered);
    let messages = retrieve_all(&user);
    use std::io::{Read, Seek};
    let mut original = Vec::new();
    file.rewind().unwrap();
    file.read_to_end(&mut original).unwrap();
    assert_eq!(original.len() as u64, size);
    assert_ends_with(&messages[0], &original);
}
