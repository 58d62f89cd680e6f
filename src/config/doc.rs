//! The key tables of `docs/configuration.md`, generated from the
//! declarations in `keys.rs`, so that the reference cannot drift from
//! what habeat accepts.
//!
//! In the Markdown file each table sits between two comments, which the
//! reader does not see:
//!
//! ```text
//! <!-- keys: detection -->
//! | key | type | default | what it changes |
//! ...
//! <!-- /keys -->
//! ```
//!
//! Everything outside the markers is prose, written by hand. The test
//! below fails when a table in the file differs from its declaration;
//! `HABEAT_UPDATE_DOCS=1 cargo test --lib config::doc` rewrites the
//! tables in place.

use super::keys::{self, Key, Kind, Table};
use super::render::{self, Out};

/// Where a generated table starts (`<!-- keys: NAME -->`) and ends.
const START: &str = "<!-- keys: ";
const END: &str = "<!-- /keys -->";

/// Every key table, by the name its marker uses, in file order.
pub fn tables() -> Vec<(&'static str, String)> {
    vec![
        table(&keys::LOCAL),
        table(&keys::DATACENTER),
        table(&keys::SWITCH),
        table(&keys::CONSUL),
        table(&keys::DETECTION),
        table(&keys::PROBES),
        table(&keys::WITNESSES),
        table(&keys::CARBONIO),
        table(&keys::SAFETY),
        table(&keys::REPLICAS),
        table(&keys::LEASE),
        table(&keys::HOOKS),
        table(&keys::METRICS),
        table(&keys::JOURNAL),
        table(&keys::FENCING),
        table(&keys::FENCE_TARGET),
    ]
}

/// `markdown` with every marked table replaced by the generated one; an
/// error names a table without its markers, or markers without a table.
pub fn update(markdown: &str) -> Result<String, String> {
    let tables = tables();
    let mut out = String::new();
    let mut rest = markdown;
    let mut seen = Vec::new();
    while let Some(at) = rest.find(START) {
        let after = &rest[at + START.len()..];
        let Some(close) = after.find("-->") else {
            return Err(format!("`{START}` without its closing `-->`"));
        };
        let name = after[..close].trim();
        let Some((_, body)) = tables.iter().find(|(n, _)| *n == name) else {
            return Err(format!("`{START}{name} -->` names no key table"));
        };
        let Some(end) = after.find(END) else {
            return Err(format!("`{START}{name} -->` has no `{END}`"));
        };
        out.push_str(&rest[..at]);
        out.push_str(&format!("{START}{name} -->\n{body}{END}"));
        rest = &after[end + END.len()..];
        seen.push(name.to_owned());
    }
    out.push_str(rest);
    match tables.iter().find(|(n, _)| !seen.iter().any(|s| s == n)) {
        Some((name, _)) => Err(format!(
            "the key table `{name}` has no `{START}{name} -->` ... `{END}` in the file"
        )),
        None => Ok(out),
    }
}

/// One table: a row per key, in declaration order (old spellings that are
/// never suggested are left out; the doc of the key they stand for names
/// them).
fn table<S: Default>(t: &Table<S>) -> (&'static str, String) {
    let defaults = S::default();
    let mut md = String::from("| key | type | default | what it changes |\n|---|---|---|---|\n");
    for key in t.keys.iter().filter(|k| k.suggested()) {
        md.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            key.name,
            type_text(key),
            default_text(key, &defaults),
            key.doc
        ));
    }
    (t.name, md)
}

/// What the value is, in the operator's words.
fn type_text<S>(key: &Key<S>) -> String {
    match &key.kind {
        Kind::DcName { .. } => "datacenter name".into(),
        Kind::Bool(_) => "boolean".into(),
        Kind::Count { min, max, .. } => format!("number {min}-{max}"),
        Kind::Port(_) => "port".into(),
        Kind::Duration { floor: None, .. } => "duration".into(),
        Kind::Duration { floor: Some(f), .. } => {
            format!("duration, at least `{}`", humantime::format_duration(*f))
        }
        Kind::Text { .. } => "text".into(),
        Kind::Path(_) => "absolute path".into(),
        Kind::Address(_) => "address".into(),
        Kind::Addresses(_) => "list of addresses".into(),
        Kind::Hostname(_) => "hostname".into(),
        Kind::Hostnames(_) => "list of hostnames".into(),
        Kind::Commands(_) => "list of commands".into(),
        Kind::Probes(_) => "list of probes".into(),
        Kind::Tools(_) => "tools".into(),
        Kind::FenceTarget { ty, .. } => (*ty).into(),
        Kind::Alias { of, .. } => format!("old form of `{of}`"),
        Kind::Custom { ty, .. } => (*ty).into(),
    }
}

/// The default as `config check` prints it.
fn default_text<S>(key: &Key<S>, defaults: &S) -> String {
    match (&key.kind, key.show(defaults)) {
        (Kind::DcName { .. }, _) => "required".into(),
        (Kind::Alias { .. }, _) => "—".into(),
        (_, None | Some(Out::Null)) => "none".into(),
        (_, Some(v)) => format!("`{}`", render::flow(&v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_key_tables_of_docs_configuration_md_are_the_declared_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let text = std::fs::read_to_string(&path).expect("docs/configuration.md is readable");
        let fresh = match update(&text) {
            Ok(t) => t,
            Err(e) => panic!("docs/configuration.md: {e}"),
        };
        if fresh == text {
            return;
        }
        if std::env::var_os("HABEAT_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &fresh).expect("docs/configuration.md is writable");
            return;
        }
        panic!(
            "the key tables of docs/configuration.md differ from src/config/keys/; \
             run `HABEAT_UPDATE_DOCS=1 cargo test --lib config::doc` and review the diff"
        );
    }

    #[test]
    fn a_table_without_its_markers_is_an_error() {
        let text = "# Configuration\n<!-- keys: local -->\nold\n<!-- /keys -->\n";
        let e = update(text).expect_err("the other tables are missing");
        assert!(e.starts_with("the key table `<dc>` has no"), "{e}");
        assert!(update("<!-- keys: nonsense -->\n<!-- /keys -->").is_err());
    }

    #[test]
    fn a_table_lists_type_and_default_of_each_key() {
        let (_, md) = table(&keys::DETECTION);
        assert!(
            md.contains(
                "| `interval` | duration, at least `100ms` | `2s` | time between probe rounds"
            ),
            "{md}"
        );
        let (_, md) = table(&keys::LOCAL);
        assert!(
            md.contains("| `whoami` | datacenter name | required |"),
            "{md}"
        );
        assert!(md.contains("| `role` | old form of `roles` | — |"), "{md}");
        let (_, md) = table(&keys::SWITCH);
        assert!(
            !md.contains("`deativate` |"),
            "never suggested, never listed: {md}"
        );
    }
}
