//! Whatever text an operator (or a broken editor, or a truncated copy)
//! puts in habeat.yml, the loader answers with a config or an error: it
//! never panics. And whatever it accepts, it prints as a config that loads
//! back with the same meaning.

use habeat::config::{LoadEnv, load_str_with};
use proptest::prelude::*;
use std::path::Path;

const EXAMPLE: &str = include_str!("../../config/habeat.yml");
const LEGACY: &str = include_str!("../../config/legacy-habeat.yml");

fn load(text: &str) -> Result<habeat::config::Config, habeat::config::ConfigError> {
    load_str_with(text, Path::new("fuzz.yml"), &LoadEnv::default())
}

/// Accepted text must render to a config that loads and renders the same
/// (comments aside: the token line is one).
fn check_round_trip(text: &str) {
    if let Ok(cfg) = load(text) {
        let shown = cfg.render_text();
        let again = match load(&shown) {
            Ok(c) => c,
            Err(e) => panic!("accepted config renders to an invalid one:\n{e}\n---\n{shown}"),
        };
        let body = |t: &str| {
            t.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(body(&shown), body(&again.render_text()));
    }
}

/// Fragments that make YAML interesting: indicators, anchors, tags, keys
/// of the schema, and values of every type.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(": ".to_string()),
        Just("\n".to_string()),
        Just("\n  ".to_string()),
        Just("- ".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(", ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: ".to_string()),
        Just("!!str ".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("|\n".to_string()),
        Just("#".to_string()),
        Just("\t".to_string()),
        Just("~".to_string()),
        Just("---\n".to_string()),
        prop::sample::select(vec![
            "local",
            "whoami",
            "dc_check",
            "primary",
            "secondary",
            "roles",
            "role",
            "consul",
            "token",
            "token_file",
            "detection",
            "quorum",
            "probes",
            "tcp",
            "icmp",
            "proxy_switch",
            "bgp",
            "deativate",
            "activate",
            "hooks",
            "metrics",
            "listen",
            "interval",
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec![
            "yes",
            "no",
            "0",
            "-1",
            "1e999",
            "2s",
            "all",
            "10.0.0.256",
            "::1",
            "127.0.0.1:9873",
            "appserver",
            "/tmp",
            "",
            "null",
            "0x1F",
            ".inf",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z0-9_. /-]{0,12}",
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    SwapLines { a: usize, b: usize },
    DuplicateLine { at: usize },
    Indent { at: usize, by: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), fragment()).prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        any::<usize>().prop_map(|at| Mutation::DuplicateLine { at }),
        (any::<usize>(), 1usize..4).prop_map(|(at, by)| Mutation::Indent { at, by }),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::Delete { at, len } => {
            let at = at % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            chars[..at].iter().chain(&chars[end..]).collect()
        }
        Mutation::Insert { at, text: t } => {
            let at = at % (chars.len() + 1);
            let mut s: String = chars[..at].iter().collect();
            s.push_str(t);
            s.extend(&chars[at..]);
            s
        }
        Mutation::SwapLines { a, b } => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
            lines.join("\n")
        }
        Mutation::DuplicateLine { at } => {
            if !lines.is_empty() {
                let l = lines[at % n].clone();
                lines.insert(at % n, l);
            }
            lines.join("\n")
        }
        Mutation::Indent { at, by } => {
            if !lines.is_empty() {
                let i = at % n;
                lines[i] = format!("{}{}", " ".repeat(*by), lines[i]);
            }
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_yaml_never_panics_the_loader(parts in prop::collection::vec(fragment(), 0..60)) {
        check_round_trip(&parts.concat());
    }

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in "\\PC{0,300}") {
        check_round_trip(&text);
    }

    #[test]
    fn mutated_example_configs_never_panic_the_loader(
        legacy in any::<bool>(),
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut text = if legacy { LEGACY } else { EXAMPLE }.to_string();
        for m in &muts {
            text = apply(&text, m);
        }
        check_round_trip(&text);
    }
}
