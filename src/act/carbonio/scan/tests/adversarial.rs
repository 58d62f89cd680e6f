//! Hostile outputs (escaped keys, keys twice, NUL and surrogates, odd
//! numbers, trailing commas, nested shapes, text around the object,
//! strings across the 8-byte steps): the reading by hand takes nothing
//! serde's pass reads otherwise, and what is taken is what the reference
//! reading takes.

use super::super::super::entry::Fields;
use super::super::super::listing::parse_listing_whole;
use super::super::super::survey::{Destinations, parse_survey, parse_survey_into, survey_entry};
use super::super::super::{AccountStatus, MailHost, SurveySink};
use super::super::{fast, listing, listing_serde};
use super::shown;
use crate::survey::Surveyed;
use proptest::prelude::*;

fn host() -> MailHost {
    MailHost::parse("mbox1.example.com").expect("valid")
}

/// Which way `out` went: "hand", "serde" (hand unsure), "refused".
fn agree(out: &str) -> &'static str {
    let serde = listing_serde(out, shown, 0);
    let hand = fast::listing(out, &mut shown, 0);
    let way = match &hand {
        Ok(h) => {
            assert_eq!(Some(h.clone()), serde, "hand took it differently: {out:?}");
            "hand"
        }
        Err(fast::Stop::Refused) => "refused",
        Err(fast::Stop::Unsupported) => "serde",
    };
    assert_eq!(listing(out.as_bytes(), shown), serde, "{out:?}");
    let host = host();
    for fields in [Fields::Lenient, Fields::Strict] {
        let whole = parse_listing_whole(out.as_bytes(), &host, fields);
        let scanned = listing(out.as_bytes(), |e| {
            AccountStatus::check(e, &host, fields).ok()
        });
        if let Some(s) = scanned {
            assert_eq!(
                Ok(s),
                whole,
                "taken ({way}) as the reference did not: {out:?}"
            );
        }
    }
    let mut d = Destinations::default();
    if let Some(s) = listing(out.as_bytes(), |e| survey_entry(e, &host, &mut d)) {
        let whole: Vec<Surveyed> = parse_listing_whole(out.as_bytes(), &host, Fields::Strict)
            .expect("reference (survey)")
            .iter()
            .map(Surveyed::from)
            .collect();
        assert_eq!(s, whole, "{out:?}");
    }
    way
}

fn entry_with(name: &str, rest: &str) -> String {
    format!(
        r#"{{"accountId":"id1","accountName":"{name}","accountMailHost":"mbox1.example.com","sequence":5,"itemId":7{rest},"replicas":[{{"destination":"mbox2.example.com","priority":10,"sequence":5,"itemId":7,"available":true}}]}}"#
    )
}

fn wrap(entries: &[String]) -> String {
    format!(r#"{{"response":{{"values":[{}]}}}}"#, entries.join(","))
}

#[test]
fn hostile_listings_read_the_same_every_way() {
    let base = entry_with("u@example.com", "");
    let mut cases: Vec<String> = vec![
        wrap(std::slice::from_ref(&base)),
        // Keys spelled with escapes, alone and next to the plain one.
        wrap(&[base.replace("\"accountName\"", r#""accoun\u0074Name""#)]),
        wrap(&[entry_with(
            "u@example.com",
            r#","accoun\u0074Name":"v@example.com""#,
        )]),
        wrap(&[entry_with(
            "u@example.com",
            r#","accountName":"v@example.com""#,
        )]),
        wrap(&[entry_with("u@example.com", r#","x":1,"x":2"#)]),
        wrap(&[entry_with("u@example.com", r#","x":1,"\u0078":2"#)]),
        wrap(&[entry_with("u@example.com", r#","replicas":null"#)]),
        wrap(&[entry_with("u@example.com", r#","sequence":6"#)]),
        wrap(&[base.replace("\"priority\":10", r#""priority":10,"priority":1"#)]),
        wrap(&[base.replace("\"priority\":10", r#""priority":10,"\u0070riority":1"#)]),
        wrap(&[base.replace("\"priority\":10", r#""q":10,"q":1"#)]),
        // Names with escapes, NUL, surrogates.
        wrap(&[entry_with(r"u\u0000@example.com", "")]),
        wrap(&[entry_with("u\u{0}@example.com", "")]),
        wrap(&[entry_with("u\u{1f}@example.com", "")]),
        wrap(&[entry_with("u\u{7f}@example.com", "")]),
        wrap(&[entry_with(r"\ud83d\ude00@example.com", "")]),
        wrap(&[entry_with(r"u\ud800@example.com", "")]),
        wrap(&[entry_with("😀@example.com", "")]),
        wrap(&[entry_with("jürgen@exämple.de", "")]),
        wrap(&[entry_with("U@EXAMPLE.COM", "")]),
        wrap(&[entry_with(r"u\/v@example.com", "")]),
        wrap(&[entry_with(r#"\"u\"@example.com"#, "")]),
        // Trailing commas.
        wrap(&[entry_with("u@example.com", ",")]),
        wrap(&[base.clone(), String::new()]),
        format!(r#"{{"response":{{"values":[{base}],}}}}"#),
        format!(r#"{{"response":{{"values":[{base}]}},}}"#),
        wrap(&[base.replace("\"available\":true}", "\"available\":true,}")]),
        wrap(&[base.replace("\"available\":true}]", "\"available\":true},]")]),
        // Nested shapes.
        format!(r#"{{"response":{{"response":{{"values":[{base}]}}}}}}"#),
        format!(r#"{{"response":{{"values":[{base}]}},"response":{{"values":[]}}}}"#),
        format!(r#"{{"response":{{"values":[]}},"respons\u0065":{{"values":[{base}]}}}}"#),
        format!(r#"{{"response":{{"values":[{base}],"values":[]}}}}"#),
        format!(r#"{{"response":{{"values":[{base}],"valu\u0065s":[]}}}}"#),
        format!(r#"{{"values":[{base}],"response":{{"values":[]}}}}"#),
        format!(r#"{{"response":{{"values":[[{base}]]}}}}"#),
        format!(r#"{{"response":{{"values":[{base}]}},"ok":true,"ok":true}}"#),
        format!(r#"{{"ok":tru,"response":{{"values":[{base}]}}}}"#),
        format!(r#"{{"ok":True,"response":{{"values":[{base}]}}}}"#),
        format!(r#"{{"ok":"true","response":{{"values":[{base}]}}}}"#),
        format!(r#"{{"ok":1,"response":{{"values":[{base}]}}}}"#),
        format!(r#"{{"ok":false,"response":{{"values":[{base}]}}}}"#),
        format!(r#"{{"ok":truee,"response":{{"values":[{base}]}}}}"#),
        format!(r#"{{"response":{{"ok":null,"values":[{base}]}}}}"#),
        format!(r#"{{"response":{{"values":[{base}]}},"n":nul}}"#),
        format!(r#"{{"response":{{"values":[{base}]}},"n":nulll}}"#),
        // Around the object.
        format!("\u{feff}{}", wrap(std::slice::from_ref(&base))),
        format!("{}\u{0}", wrap(std::slice::from_ref(&base))),
        format!("{}}}", wrap(std::slice::from_ref(&base))),
        format!("{} x", wrap(std::slice::from_ref(&base))),
        format!("\x0b{}", wrap(std::slice::from_ref(&base))),
        format!("\x0c{}", wrap(std::slice::from_ref(&base))),
        format!("\u{a0}{}", wrap(std::slice::from_ref(&base))),
        format!(
            "{}{}",
            wrap(std::slice::from_ref(&base)),
            wrap(std::slice::from_ref(&base))
        ),
        String::new(),
        " ".into(),
        "{".into(),
        "{\"".into(),
        "{\"response\"".into(),
        "{\"response\":".into(),
        "{\"response\":{\"values\":[".into(),
        "{\"response\":{\"values\":[{\"a\":t".into(),
        "{\"response\":{\"values\":[{\"a\":1".into(),
        "{\"response\":{\"values\":[{\"a\":\"abcdefghijklmnop".into(),
        "{\"response\":{\"values\":[{\"a\":\"abcdefghijklmnop\\".into(),
        // Deep nesting where nobody reads.
        format!(
            r#"{{"response":{{"values":[{base}]}},"x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        ),
        format!(
            r#"{{"response":{{"values":[{base}]}},"x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
    ];
    // Numbers in every counter and in a field nobody reads.
    for n in [
        "01",
        "00",
        "-0",
        "0",
        "-1",
        "1e2",
        "1E2",
        "1.0",
        "1.",
        ".5",
        "+1",
        "0x1",
        "1-2",
        "0-",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999999",
        "9007199254740993",
        "1e400",
        "-",
        "0e",
        "0.0e0",
        "Infinity",
        "NaN",
        "1 2",
    ] {
        cases.push(wrap(&[
            base.replace("\"sequence\":5,", &format!("\"sequence\":{n},"))
        ]));
        cases.push(wrap(&[
            base.replace("\"priority\":10", &format!("\"priority\":{n}"))
        ]));
        cases.push(wrap(&[entry_with("u@example.com", &format!(",\"m\":{n}"))]));
        cases.push(format!(r#"{{"n":{n},"response":{{"values":[{base}]}}}}"#));
    }
    // Strings at every length around the 8-byte steps, with a quote,
    // backslash or control byte at every place.
    for len in 0..20 {
        for at in 0..=len {
            for c in [
                "\"", "\\", "\u{1}", "\u{1f}", " ", "\u{7f}", "é", "\\\"", "\\u0022", "\u{1} ",
            ] {
                let mut s: String = "a".repeat(len);
                s.insert_str(at, c);
                cases.push(wrap(&[entry_with(
                    "u@example.com",
                    &format!(",\"m\":\"{s}\""),
                )]));
                cases.push(wrap(&[base.replace("id1", &s)]));
                let key = s.clone();
                cases.push(wrap(&[entry_with(
                    "u@example.com",
                    &format!(",\"{key}\":1"),
                )]));
            }
        }
    }
    let mut ways = std::collections::BTreeMap::new();
    for c in &cases {
        *ways.entry(agree(c)).or_insert(0) += 1;
    }
    // Both ways are exercised.
    assert!(ways.get("hand").is_some_and(|n| *n > 1000), "{ways:?}");
    assert!(ways.get("serde").is_some_and(|n| *n > 1000), "{ways:?}");
}

/// Bytes to put in: JSON's own, non-ASCII, escapes.
const BYTES: &[&str] = &[
    " ",
    "\t",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\x00",
    "\x01",
    "\x1f",
    "\x7f",
    "\"",
    "\\",
    ",",
    ":",
    "{",
    "}",
    "[",
    "]",
    "0",
    "1",
    "9",
    ".",
    "-",
    "+",
    "e",
    "E",
    "t",
    "r",
    "u",
    "f",
    "a",
    "l",
    "s",
    "n",
    "@",
    "x",
    "é",
    "\u{a0}",
    "\u{feff}",
    "\u{2028}",
    "😀",
    "\\u0000",
    "\\u0041",
    "\\ud83d\\ude00",
    "\\ud800",
    "\\n",
    "\\\"",
    "\\/",
    "true",
    "null",
    "false",
    "01",
    "-0",
    "1e2",
    "\"ok\":true,",
    "\"a\":1,",
    "\"accountName\":\"v@x.com\",",
];

fn base_listing() -> impl Strategy<Value = String> {
    (1usize..4, 0usize..40).prop_map(|(n, pad)| {
        let long = "y".repeat(pad);
        let entries: Vec<String> = (0..n)
            .map(|i| {
                entry_with(
                    &format!("u{i}{long}@example.com"),
                    &format!(r#","mailboxId":{i},"note":"{long}","x{long}":true"#),
                )
            })
            .collect();
        format!(
            r#"{{"ok":true,"response":{{"ok":true,"values":[{}]}}}}"#,
            entries.join(",\n ")
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    #[test]
    fn hostile_edits_read_the_same_every_way(
        out in (base_listing(), prop::collection::vec(
            (any::<prop::sample::Index>(), 0u8..3, prop::sample::select(BYTES)), 1..5))
            .prop_map(|(out, edits)| {
                let mut s = out;
                for (at, kind, ins) in edits {
                    let bounds: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
                    let i = bounds[at.index(bounds.len())];
                    match kind {
                        0 => s.insert_str(i, ins),
                        1 if i < s.len() => { s.remove(i); }
                        _ if i < s.len() => { s.remove(i); s.insert_str(i, ins); }
                        _ => {}
                    }
                }
                s
            })
    ) {
        agree(&out);
    }
}

#[test]
fn a_survey_restarted_after_the_hand_gives_up_hands_each_account_once() {
    struct Kept(Vec<String>, usize);
    impl SurveySink for Kept {
        fn account(&mut self, a: Surveyed) -> Result<(), String> {
            self.0.push(a.account);
            Ok(())
        }
        fn clear(&mut self) {
            self.0.clear();
            self.1 += 1;
        }
    }
    let host = host();
    let good: Vec<String> = (0..4)
        .map(|i| entry_with(&format!("u{i}@example.com"), ""))
        .collect();
    for bad_at in 0..4 {
        for how in [
            (r#""sequence":5"#, r#""sequence":5.0"#),
            ("u@", r"u\u0040"),
            (r#""itemId":7"#, r#""itemId":7,"itemId":7"#),
            (r#""sequence":5"#, r#""sequence":"x""#),
            (r#""accountMailHost":"mbox1"#, r#""accountMailHost":"mbox3"#),
        ] {
            let mut es = good.clone();
            es[bad_at] = es[bad_at].replacen(how.0, how.1, 1);
            let out = wrap(&es);
            let kept = parse_survey_into(out.as_bytes(), &host, Kept(Vec::new(), 0));
            let whole = parse_survey(out.as_bytes(), &host)
                .map(|l| l.into_iter().map(|a| a.account).collect::<Vec<_>>());
            assert_eq!(kept.map(|k| k.0), whole, "{out}");
        }
    }
}
