//! Property tests over every parser that reads what a server or a config file says (issue 8):
//! whatever the input, each returns a value or a typed error, and never panics. Where a parser
//! has an inverse (byte-stuffing, command encoding, listings), the round trip is checked too.

use std::path::Path;

use pop3::config::{self, LoadedConfig, Settings};
use pop3::pop3::capability::Capabilities;
use pop3::pop3::multiline::{Line, MultilineDecoder, take_line, unstuff_line};
use pop3::pop3::response::{
    parse_auth_reply, parse_scan_listing, parse_stat, parse_status_line, parse_unique_id_listing,
};
use pop3::pop3::{Command, MessageNumber};
use proptest::prelude::*;

use crate::support::hostile::stuff;

/// Bytes that tend to matter to POP3 parsers, mixed with anything at all.
fn wire_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            4 => any::<u8>(),
            2 => proptest::sample::select(b"\r\n. +-[]<>0123456789OKER".to_vec()),
        ],
        0..max,
    )
}

/// Decodes `wire` fed in pieces whose sizes come from `cuts` (cycled); returns the data, how
/// much was consumed and whether the terminator was seen.
fn decode_chunked(wire: &[u8], cuts: &[usize]) -> (Vec<u8>, usize, bool) {
    let mut decoder = MultilineDecoder::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut at = 0;
    let mut cut = cuts.iter().cycle();
    while at < wire.len() && !decoder.is_done() {
        let size = cut.next().copied().unwrap_or(wire.len()).max(1);
        let piece = &wire[at..wire.len().min(at + size)];
        let used = decoder
            .decode(piece, &mut |data| {
                out.extend_from_slice(data);
                Ok(())
            })
            .expect("a sink that never fails");
        assert!(used <= piece.len());
        consumed += used;
        at += piece.len();
        if used < piece.len() {
            assert!(
                decoder.is_done(),
                "input left over only after the terminator"
            );
        }
    }
    (out, consumed, decoder.is_done())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn status_lines_never_panic(line in wire_bytes(700)) {
        let _ = parse_status_line(&line);
        let _ = parse_auth_reply(&line);
        let _ = take_line(&line, 512);
        let _ = unstuff_line(&line);
    }

    #[test]
    fn ok_lines_keep_their_text(text in "[^\r\n]{0,100}") {
        let status = parse_status_line(format!("+OK {text}").as_bytes()).unwrap();
        prop_assert!(status.ok);
        prop_assert!(text.contains(status.text.trim()));
        let status = parse_status_line(format!("-ERR {text}").as_bytes()).unwrap();
        prop_assert!(!status.ok);
    }

    #[test]
    fn stat_replies_never_panic(text in any::<String>()) {
        let _ = parse_stat(&text);
    }

    #[test]
    fn listings_never_panic(line in wire_bytes(200)) {
        let _ = parse_scan_listing(&line);
        let _ = parse_unique_id_listing(&line);
    }

    #[test]
    fn listings_round_trip(number in 1u32.., size in any::<u64>(), uid in "[!-~]{1,70}") {
        let scan = parse_scan_listing(format!("{number} {size}").as_bytes()).unwrap();
        prop_assert_eq!(scan.number.get(), number);
        prop_assert_eq!(scan.size, size);
        let listing = parse_unique_id_listing(format!("{number} {uid}").as_bytes()).unwrap();
        prop_assert_eq!(listing.uid.as_str(), uid.as_str());
    }

    #[test]
    fn capabilities_never_panic(lines in proptest::collection::vec(any::<String>(), 0..20),
                                tag in any::<String>()) {
        let capabilities = Capabilities::from_lines(lines);
        let _ = capabilities.has(&tag);
        let _ = capabilities.arguments(&tag);
        let _ = capabilities.sasl(&tag);
        let _ = capabilities.implementation();
        let _ = (capabilities.top(), capabilities.uidl(), capabilities.pipelining());
    }

    #[test]
    fn multiline_decoding_never_panics_and_ignores_chunking(
        wire in wire_bytes(400),
        cuts in proptest::collection::vec(1usize..50, 1..8),
    ) {
        let whole = decode_chunked(&wire, &[wire.len().max(1)]);
        let chunked = decode_chunked(&wire, &cuts);
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn dot_unstuffing_undoes_byte_stuffing(
        lines in proptest::collection::vec("[^\r\n]{0,20}", 0..10),
        bare_lf in any::<bool>(),
        cuts in proptest::collection::vec(1usize..20, 1..8),
        trailing in wire_bytes(20),
    ) {
        let ending = if bare_lf { "\n" } else { "\r\n" };
        let message: String = lines.iter().map(|l| format!("{l}{ending}")).collect();
        let mut wire = stuff(message.as_bytes());
        wire.extend_from_slice(format!(".{ending}").as_bytes());
        let body = wire.len();
        wire.extend_from_slice(&trailing);
        let (data, consumed, done) = decode_chunked(&wire, &cuts);
        prop_assert!(done);
        prop_assert_eq!(consumed, body, "the next response starts right after the terminator");
        prop_assert_eq!(data, message.as_bytes());
        // Line by line, as listings are read.
        for line in message.split_inclusive('\n') {
            let stuffed = stuff(line.trim_end_matches(['\r', '\n']).as_bytes());
            prop_assert_eq!(
                unstuff_line(&stuffed),
                Line::Data(line.trim_end_matches(['\r', '\n']).as_bytes())
            );
        }
    }

    #[test]
    fn commands_encode_to_one_line_or_refuse(argument in any::<String>(), number in any::<u32>(),
                                             lines in any::<u32>()) {
        let smuggles = argument.contains(['\r', '\n', '\0']);
        for command in [
            Command::User(&argument),
            Command::Pass(&argument),
            Command::Apop { user: &argument, digest: "d" },
            Command::Auth { mechanism: "PLAIN", initial_response: Some(&argument) },
            Command::SaslResponse(&argument),
        ] {
            match command.encode() {
                Ok(bytes) => {
                    prop_assert!(!smuggles);
                    prop_assert!(bytes.ends_with(b"\r\n"));
                    prop_assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
                }
                Err(_) => prop_assert!(smuggles),
            }
            prop_assert!(!command.redacted().contains(['\r', '\n']) || smuggles);
        }
        if let Some(n) = MessageNumber::new(number) {
            for command in [Command::Retr(n), Command::Dele(n), Command::Top(n, lines),
                            Command::List(Some(n)), Command::Uidl(Some(n))] {
                let bytes = command.encode().unwrap();
                prop_assert!(String::from_utf8(bytes).unwrap().contains(&number.to_string()));
            }
        }
    }

    #[test]
    fn config_text_never_panics(text in any::<String>()) {
        resolve_everything(&text);
    }

    #[test]
    fn config_files_resolve_or_fail_with_a_typed_error(
        defaults in proptest::collection::vec((key(), value()), 0..6),
        accounts in proptest::collection::vec(
            ("[a-z]{1,3}", proptest::collection::vec((key(), value()), 0..8)), 0..3),
        default_account in proptest::option::of("[a-z]{1,3}"),
    ) {
        let mut text = String::new();
        if let Some(name) = default_account {
            text += &format!("default_account = \"{name}\"\n");
        }
        text += "[defaults]\n";
        for (key, value) in &defaults {
            text += &format!("{key} = {value}\n");
        }
        for (name, settings) in &accounts {
            text += &format!("[accounts.{name}]\n");
            for (key, value) in settings {
                text += &format!("{key} = {value}\n");
            }
        }
        resolve_everything(&text);
    }

    #[test]
    fn size_and_fingerprint_settings_never_panic(text in any::<String>()) {
        let _ = config::ByteSize::parse(&text);
        let _ = config::parse_fingerprint(&text);
    }
}

/// A key of the config file (every one, from the config's own list), or a misspelt one.
fn key() -> impl Strategy<Value = &'static str> {
    let mut keys = config::keys().to_vec();
    keys.push("hots");
    proptest::sample::select(keys)
}

/// A TOML value of any type, with the awkward ones (huge, negative, empty) well represented.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        proptest::sample::select(vec![
            "0",
            "-1",
            "65536",
            "4294967296",
            "18446744073709551615",
            "1e400",
            "true",
            "false",
            "\"\"",
            "\"~\"",
            "\"~/x\"",
            "\"/\"",
            "\"10M\"",
            "\"0\"",
            "\"99999999999999T\"",
            "\"implicit\"",
            "\"starttls\"",
            "\"none\"",
            "\"auto\"",
            "\"user\"",
            "\"apop\"",
            "\"plain\"",
            "\"xoauth2\"",
            "[]",
            "[\"\"]",
            "[\"pass\", \"x\"]",
            "{}",
            "\"sha256:00\"",
            "\"1.3\"",
            "\"1.2\"",
            "\"socks5h://127.0.0.1:9050\"",
            "\"socks5://[::1]\"",
            "\"unix:/run/lmtp\"",
            "\"localhost:25\"",
            "[\"notmuch\", \"new\"]",
        ])
        .prop_map(String::from),
        "[ -~]{0,20}".prop_map(|s| format!("{s:?}")),
    ]
}

fn resolve_everything(text: &str) {
    let Ok(file) = config::parse(text, Path::new("/fuzz/config.toml")) else {
        return;
    };
    let names: Vec<String> = file.accounts.keys().cloned().collect();
    let loaded = LoadedConfig {
        file,
        path: Some("/fuzz/config.toml".into()),
        warnings: Vec::new(),
    };
    let _ = loaded.resolve(None, Settings::default());
    let _ = loaded.resolve(Some("missing"), Settings::default());
    for name in names {
        let _ = loaded.resolve(Some(&name), Settings::default());
    }
}
