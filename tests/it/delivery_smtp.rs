//! The SMTP side of the delivery client (`pop3::store::smtp`) against a real Postfix started by
//! the tests, whose virtual(8) agent writes into Maildirs the tests read back.

use std::io::Cursor;
use std::time::Duration;

use pop3::store::smtp::{Deliverer, Endpoint, Options, Protocol, Target, Verdict};

use crate::support::postfix::{DOMAIN, REJECTED_SUBJECT, postfix};

fn target(port: u16) -> Target {
    Target {
        protocol: Protocol::Smtp,
        endpoint: Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
    }
}

fn options() -> Options {
    Options {
        timeout: Duration::from_secs(20),
        ..Options::default()
    }
}

fn lf(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .into_bytes()
}

#[test]
fn smtp_delivers_through_postfix_with_the_return_path_sender_and_dots_intact() {
    let pf = postfix();
    let message = b"Return-Path: <list-bounces@example.org>\r\nSubject: to postfix\r\n\r\n.\r\n..two\r\n.one\r\nend\r\n";
    let mut deliverer = Deliverer::connect(&target(pf.port), &options()).unwrap();
    assert!(deliverer.is_pipelining());
    assert!(deliverer.extensions().size.is_some(), "Postfix offers SIZE");
    let rcpt = [format!("alice@{DOMAIN}")];
    let verdict = deliverer.deliver(Cursor::new(&message[..]), &rcpt).unwrap();
    assert_eq!(verdict, Verdict::Delivered);
    deliverer.quit().unwrap();

    let delivered = pf.wait_for_messages("alice", 1).remove(0);
    assert!(
        delivered.starts_with(b"Return-Path: <list-bounces@example.org>\n"),
        "{}",
        String::from_utf8_lossy(&delivered)
    );
    // Postfix stores LF line endings and adds the headers the message lacks (Date, From,
    // Message-ID); the body and its dot lines arrive unchanged.
    assert!(
        delivered.ends_with(&lf(b"\r\n\r\n.\r\n..two\r\n.one\r\nend\r\n")),
        "{}",
        String::from_utf8_lossy(&delivered)
    );
}

#[test]
fn smtp_450_is_temporary_550_refuses_the_envelope_and_the_connection_goes_on() {
    let pf = postfix();
    for (port, pipelined, mailbox) in [
        (pf.port, true, "bob"),
        (pf.port_no_pipelining, false, "carol"),
    ] {
        let mut deliverer = Deliverer::connect(&target(port), &options()).unwrap();
        assert_eq!(deliverer.is_pipelining(), pipelined, "port {port}");
        let message = b"Subject: refused\r\n\r\nbody\r\n";

        let verdict = deliverer
            .deliver(Cursor::new(&message[..]), &[format!("tempfail@{DOMAIN}")])
            .unwrap();
        let Verdict::Temporary(reply) = verdict else {
            panic!("expected 450, got {verdict:?}");
        };
        assert_eq!(reply.code, 450);
        assert!(reply.to_string().contains("try again later"), "{reply}");

        let verdict = deliverer
            .deliver(Cursor::new(&message[..]), &[format!("nobody@{DOMAIN}")])
            .unwrap();
        let Verdict::EnvelopeRefused {
            sender: false,
            reply,
        } = verdict
        else {
            panic!("expected 550 to RCPT, got {verdict:?}");
        };
        assert_eq!(reply.code, 550);
        assert_eq!(
            reply.enhanced.map(|e| e.to_string()).as_deref(),
            Some("5.1.1")
        );

        // Refused after DATA: the message's own verdict.
        let refused = format!("Subject: {REJECTED_SUBJECT}\r\n\r\nbody\r\n");
        let verdict = deliverer
            .deliver(Cursor::new(refused), &[format!("{mailbox}@{DOMAIN}")])
            .unwrap();
        let Verdict::Permanent(reply) = verdict else {
            panic!("expected 550 after DATA, got {verdict:?}");
        };
        assert_eq!(reply.to_string(), "550 5.7.1 refused by header_checks");

        for i in 0..3 {
            let body = format!("Subject: ok {i}\r\n\r\nbody {i}\r\n");
            let verdict = deliverer
                .deliver(Cursor::new(body), &[format!("{mailbox}@{DOMAIN}")])
                .unwrap();
            assert_eq!(verdict, Verdict::Delivered, "message {i} on port {port}");
        }
        deliverer.quit().unwrap();
        let delivered = pf.wait_for_messages(mailbox, 3);
        assert_eq!(delivered.len(), 3);
        let log = std::fs::read_to_string(pf.dir.join("postfix.log")).unwrap();
        assert!(
            !log.contains("improper command pipelining"),
            "Postfix saw commands before it offered PIPELINING\n{}",
            pf.log_tail()
        );
    }
}

#[test]
fn smtp_eight_bit_body_is_delivered_and_no_return_path_means_the_null_sender() {
    let pf = postfix();
    let message = "Subject: caf\u{e9}\r\n\r\nna\u{ef}ve r\u{e9}sum\u{e9}\r\n".as_bytes();
    let mut deliverer = Deliverer::connect(&target(pf.port), &options()).unwrap();
    assert!(deliverer.extensions().eight_bit_mime);
    let verdict = deliverer
        .deliver(Cursor::new(message), &[format!("dave@{DOMAIN}")])
        .unwrap();
    assert_eq!(verdict, Verdict::Delivered);
    let delivered = pf.wait_for_messages("dave", 1).remove(0);
    assert!(
        delivered.starts_with(b"Return-Path: <>\n"),
        "{}",
        String::from_utf8_lossy(&delivered)
    );
    assert!(
        delivered.ends_with("\n\nna\u{ef}ve r\u{e9}sum\u{e9}\n".as_bytes()),
        "{}",
        String::from_utf8_lossy(&delivered)
    );
    assert!(
        delivered
            .windows(14)
            .any(|w| w == "Subject: caf\u{e9}".as_bytes())
    );
    let log = std::fs::read_to_string(pf.dir.join("postfix.log")).unwrap();
    assert!(log.contains("from=<>"), "{}", pf.log_tail());
}
