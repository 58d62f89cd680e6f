//! The one-pass reading against the reference reading, on generated
//! outputs, held whole and read from a pipe.

use super::super::entry::Fields;
use super::super::listing::parse_listing_whole;
use super::super::survey::{Destinations, survey_entry};
use super::super::{AccountStatus, MailHost};
use super::{fast, listing, listing_from_reader, listing_serde};
use crate::survey::Surveyed;
use proptest::prelude::*;

fn host() -> MailHost {
    MailHost::parse("mbox1.example.com").expect("valid")
}

/// Values a field may hold, from the plausible to the absurd.
const ODD: &[&str] = &[
    "null",
    "true",
    "false",
    r#""true""#,
    r#""FALSE""#,
    r#""\u0074rue""#,
    r#""abc""#,
    r#""12""#,
    r#"" 7 ""#,
    r#""NaN""#,
    r#""-5""#,
    r#""1.5""#,
    "12",
    "0",
    "-3",
    "1.5",
    "12.0",
    "1e300",
    "-0.0",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "9007199254740993.0",
    "[]",
    "{}",
    r#"[1, {"a": 1, "a": 2}]"#,
    r#"{"x": [1], "y": {"z": null}}"#,
    r#""mbox2.example.com""#,
    r#""mbox\u0032.example.com""#,
];

fn value(usual: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(usual.to_owned()),
        1 => prop::sample::select(ODD).prop_map(str::to_owned),
    ]
}

/// An object of `pairs`, sometimes missing one, sometimes with one
/// twice, in any order.
fn object(pairs: Vec<(String, String)>) -> impl Strategy<Value = String> {
    let n = pairs.len();
    (Just(pairs), 0..n * 8, 0..n * 8, any::<bool>())
        .prop_flat_map(|(mut pairs, drop, twice, escaped)| {
            if twice < pairs.len() {
                let (k, _) = pairs[twice].clone();
                pairs.push((k, "1".into()));
            }
            if drop < pairs.len() {
                pairs.remove(drop);
            }
            if escaped && !pairs.is_empty() {
                // The same key spelled with an escape.
                let k = pairs[0].0.clone();
                if let Some(c) = k.chars().next() {
                    pairs[0].0 = format!("\\u{:04x}{}", c as u32, &k[c.len_utf8()..]);
                }
            }
            Just(pairs).prop_shuffle()
        })
        .prop_map(|pairs| {
            let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", body.join(", "))
        })
}

fn replica() -> impl Strategy<Value = String> {
    (
        value(r#""mbox2.example.com""#),
        value("true"),
        value("10"),
        value("1000"),
        value(r#""257""#),
        value("true"),
        value("false"),
    )
        .prop_flat_map(|(d, a, p, s, i, k, z)| {
            object(vec![
                ("destination".into(), d),
                ("available".into(), a),
                ("priority".into(), p),
                ("sequence".into(), s),
                ("itemId".into(), i),
                ("canConnectToKafka".into(), k),
                ("paused".into(), z),
                ("mailboxId".into(), "7".into()),
            ])
        })
}

fn replicas() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(
            prop_oneof![8 => replica(), 1 => prop::sample::select(ODD).prop_map(str::to_owned)],
            0..3
        )
        .prop_map(|rs| format!("[{}]", rs.join(", "))),
        1 => prop::sample::select(ODD).prop_map(str::to_owned),
    ]
}

fn entry() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            6 => Just(r#""u@example.com""#),
            1 => prop::sample::select(&[
                r#""-u@example.com""#,
                r#""no-at""#,
                r#""u\u0040example.com""#,
                "7",
                "null",
            ][..]),
        ],
        prop_oneof![
            6 => Just(r#""mbox1.example.com""#),
            1 => prop::sample::select(&[
                r#""MBOX1.Example.COM""#,
                r#""mbox2.example.com""#,
                r#""-mbox1""#,
                r#""mbox1..example.com""#,
                r#""mbox1.example.com ""#,
                "1",
            ][..]),
        ],
        value(r#""9e94""#),
        value("false"),
        value("1000"),
        value(r#""257""#),
        replicas(),
    )
        .prop_flat_map(|(n, h, id, p, s, i, r)| {
            object(vec![
                ("accountName".into(), n.to_owned()),
                ("accountMailHost".into(), h.to_owned()),
                ("accountId".into(), id),
                ("paused".into(), p),
                ("sequence".into(), s),
                ("itemId".into(), i),
                ("replicas".into(), r),
                ("mailboxId".into(), "3".into()),
            ])
        })
}

/// Whole outputs: the listing, sometimes wrapped in something else.
fn output() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(entry(), 0..4),
        prop::sample::select(
            &[
                r#"{"response": {"values": [@]}}"#,
                r#" {"ok": true, "response": {"ok": true, "values": [@], "more": {"k": 1}}}
"#,
                r#"{"response": {"values": [@]}, "ok": false}"#,
                r#"{"response": {"ok": "yes", "values": [@]}}"#,
                r#"{"response": {"values": [@], "values": []}}"#,
                r#"{"response": {"values": [@]}, "response": null}"#,
                r#"{"response": {"values": [@]}, "x": {"a": 1, "a": 1}}"#,
                r#"{"response": {"values": [@]}} trailing"#,
                r#"INFO {"response": {"values": [@]}}"#,
                "\u{a0}{\"response\": {\"values\": [@]}}\u{2028}",
                r#"{"response": {"values": {"a": [@]}}}"#,
                r#"{"response": [@]}"#,
                r#"{"response": {"values": [@]}"#,
                r#"[{"response": {"values": [@]}}]"#,
            ][..],
        ),
    )
        .prop_map(|(es, wrap)| wrap.replace('@', &es.join(", ")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// What the one-pass reading takes, the reference reading takes
    /// too, with the same accounts; what it does not take is read the
    /// reference way (which words the error).
    #[test]
    fn the_one_pass_reading_never_takes_what_the_reference_refuses(out in output()) {
        let host = host();
        for fields in [Fields::Lenient, Fields::Strict] {
            let whole = parse_listing_whole(out.as_bytes(), &host, fields);
            let fast = listing(out.as_bytes(), |e| AccountStatus::check(e, &host, fields).ok());
            match fast {
                Some(fast) => prop_assert_eq!(Ok(fast), whole, "{}", out),
                // Only output wrapped in whitespace JSON does not know
                // is valid yet not taken in one pass.
                None => prop_assert!(whole.is_err() || out.contains('\u{a0}'), "{}", out),
            }
        }
        let mut destinations = Destinations::default();
        let fast = listing(out.as_bytes(), |e| survey_entry(e, &host, &mut destinations));
        if let Some(fast) = fast {
            let whole: Vec<Surveyed> = parse_listing_whole(out.as_bytes(), &host, Fields::Strict)
                .map_err(TestCaseError::fail)?
                .iter()
                .map(Surveyed::from)
                .collect();
            prop_assert_eq!(fast, whole);
        }
    }

    /// Read from a pipe (a few bytes at a time), the listing is taken
    /// exactly when it is taken held whole, with the same accounts.
    #[test]
    fn the_listing_read_as_it_comes_is_the_listing_read_whole(out in output(), step in 1usize..64) {
        struct Trickle<'a>(&'a [u8], usize);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.1).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let host = host();
        for fields in [Fields::Lenient, Fields::Strict] {
            let held = listing(out.as_bytes(), |e| AccountStatus::check(e, &host, fields).ok());
            let piped = listing_from_reader(Trickle(out.as_bytes(), step), |e| {
                AccountStatus::check(e, &host, fields).ok()
            })
            .ok();
            prop_assert_eq!(piped, held, "{}", out);
        }
    }
}

/// Bytes that change what JSON means, for [`edited`].
const EDITS: &[u8] = b" \t\n\r\x0b\x01\"\\,:{}[]0123456789.-+eEtrufalsn@x";

/// An output of `outputs`, with a byte or two changed, put in or taken
/// out: most no longer JSON, or JSON of another shape.
fn edited(outputs: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (
        outputs,
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0u8..3,
                prop::sample::select(EDITS),
            ),
            0..3,
        ),
    )
        .prop_map(|(out, edits)| {
            let mut b = out.into_bytes();
            for (at, kind, byte) in edits {
                let i = at.index(b.len() + 1);
                match kind {
                    0 => b.insert(i, byte),
                    1 if i < b.len() => {
                        b.remove(i);
                    }
                    _ if i < b.len() => b[i] = byte,
                    _ => {}
                }
            }
            String::from_utf8_lossy(&b).into_owned()
        })
}

/// An entry as the CLI prints it, give or take a field's form.
fn usual_entry() -> impl Strategy<Value = String> {
    (
        0usize..100_000,
        any::<bool>(),
        prop::sample::select(&["true", "false", r#""false""#, "null"][..]),
        prop::sample::select(&["10", r#""10""#, "null", "0"][..]),
        prop::sample::select(&["true", "false", r#""true""#, "null"][..]),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(i, as_text, paused, priority, available, n, null)| {
            let seq = if as_text {
                format!("\"{i}\"")
            } else {
                i.to_string()
            };
            let replicas: Vec<String> = (0..n)
                .map(|j| {
                    format!(
                        r#"{{"accountId":"x","destination":"mbox{j}.example.com","available":{available},"priority":{priority},"sequence":{seq},"itemId":{i},"canConnectToKafka":true,"paused":{paused},"mailboxId":7}}"#
                    )
                })
                .collect();
            let replicas = if null && n == 0 {
                "null".to_owned()
            } else {
                format!("[{}]", replicas.join(","))
            };
            format!(
                r#"{{"accountName":"u{i}@example.com","accountMailHost":"mbox1.example.com","accountId":"id-{i}","paused":{paused},"sequence":{seq},"itemId":"{i}","mailboxId":{i},"replicas":{replicas}}}"#
            )
        })
}

/// Listings as the CLI prints them: most are valid.
fn usual() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(usual_entry(), 0..4),
        prop::sample::select(
            &[
                r#"{"response":{"values":[@]}}"#,
                "{\"ok\":true,\"response\":{\"ok\":true,\"values\":[@],\"n\":3}}\n",
                "\r\n{ \"response\" : {\t\"values\" : [ @ ] } } ",
            ][..],
        ),
    )
        .prop_map(|(es, wrap)| wrap.replace('@', &es.join(" ,\n ")))
}

/// Each entry as the reading hands it over, in words.
fn shown(e: &super::Entry<'_>) -> Option<String> {
    Some(format!("{e:?}"))
}

/// A listing of `n` accounts as the CLI prints it.
fn printed(n: usize) -> String {
    let entries: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"accountId":"9e94-{i}","accountName":"user{i}@example.com","accountMailHost":"mbox1.example.com","paused":false,"mailboxId":{i},"sequence":1000,"itemId":"{item}","replicas":[{{"accountId":"9e94-{i}","itemId":{item},"sequence":1000,"mailboxId":7,"destination":"mbox2.example.com","available":true,"priority":10,"canConnectToKafka":true}}]}}"#,
                item = 257 + i
            )
        })
        .collect();
    format!(r#"{{"response":{{"values":[{}]}}}}"#, entries.join(","))
}

#[test]
fn the_listing_as_printed_is_read_by_hand_and_as_serde_reads_it() {
    for out in [
        printed(0),
        printed(3),
        // Indented, as `--json` may print it, and `ok` at both levels.
        printed(2)
            .replacen('{', "{\n  \"ok\": true,\n  ", 2)
            .replace(',', ",\n    ")
            .replace(':', ": "),
    ] {
        let by_hand = fast::listing(&out, &mut shown, 0);
        assert!(by_hand.is_ok(), "not read by hand: {out}");
        assert_eq!(by_hand.ok(), listing_serde(&out, shown, 0), "{out}");
    }
}

#[test]
fn what_the_reading_by_hand_is_not_sure_of_is_left_to_serde() {
    for (from, to) in [
        ("user1@", r"user1\u0040"),
        (r#""sequence":1000"#, r#""sequence":1000.0"#),
        (r#""sequence":1000"#, r#""sequence":1e3"#),
        (r#""priority":10"#, r#""priority":-10"#),
        (r#""mailboxId":7"#, r#""mailboxId":[7]"#),
        (r#""mailboxId":7"#, r#""mailboxId":18446744073709551616"#),
    ] {
        let out = printed(3).replacen(from, to, 1);
        assert_ne!(out, printed(3));
        assert_eq!(
            fast::listing(&out, &mut shown, 0).err(),
            Some(fast::Stop::Unsupported),
            "{out}"
        );
        assert!(listing_serde(&out, shown, 0).is_some(), "{out}");
        assert_eq!(
            listing(out.as_bytes(), shown),
            listing_serde(&out, shown, 0)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The reading by hand takes nothing serde's pass refuses, and hands
    /// on the same entries; with serde after it where it gives up, the
    /// listing reads exactly as serde's pass alone read it.
    #[test]
    fn the_reading_by_hand_is_serde_s_reading(
        out in prop_oneof![output(), edited(output()), usual(), edited(usual())]
    ) {
        let serde = listing_serde(&out, shown, 0);
        if let Ok(by_hand) = fast::listing(&out, &mut shown, 0) {
            prop_assert_eq!(Some(by_hand), serde.clone(), "{}", out);
        }
        prop_assert_eq!(listing(out.as_bytes(), shown), serde, "{}", out);
    }
}

/// A value nobody reads is still JSON: a `\u` escape of half a
/// surrogate pair, or a number beyond what a float holds, makes the
/// reference reading refuse the output, and so must the pass held whole
/// (as the pass from a pipe does).
#[test]
fn a_value_nobody_reads_that_json_refuses_refuses_the_listing() {
    let host = host();
    for odd in [
        r#""\ud800x""#,
        r#""\udc00""#,
        "1e400",
        "-1e400",
        &"9".repeat(400),
    ] {
        for out in [
            printed(2).replacen(r#""mailboxId":0"#, &format!(r#""mailboxId":{odd}"#), 1),
            printed(2).replacen(r#""mailboxId":7"#, &format!(r#""mailboxId":{odd}"#), 1),
            printed(2).replacen('{', &format!(r#"{{"note":{odd},"#), 1),
        ] {
            let whole = parse_listing_whole(out.as_bytes(), &host, Fields::Strict);
            assert!(whole.is_err(), "{out}");
            let piped = listing_from_reader(out.as_bytes(), |e| {
                AccountStatus::check(e, &host, Fields::Strict).ok()
            });
            assert!(piped.is_err(), "{out}");
            let held = listing(out.as_bytes(), |e| {
                AccountStatus::check(e, &host, Fields::Strict).ok()
            });
            assert_eq!(held, None, "{out}");
        }
    }
}

mod adversarial;
