//! Validated names that reach the carbonio CLI's argv: account names and
//! mail hosts.
//!
//! They come from the operator (`promote --accounts`), from the config
//! (`appserver_vmname`) and from the CLI's own output (`getAccountStatus`).
//! Nothing goes to a shell, but a name is still an argument of a program
//! that parses its argv: a leading `-` would be an option, a `,` would split
//! an `accounts a,b` list, a newline would split an `input_file`. So every
//! name is checked once, at the edge, and the rest of habeat only ever holds
//! these types.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a name was refused, in words an administrator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {shown} is not valid: {reason}")]
pub struct NameError {
    /// "account name" or "mail host".
    pub kind: &'static str,
    /// The refused input, escaped so control characters stay visible.
    pub shown: String,
    /// What is wrong with it.
    pub reason: String,
}

impl NameError {
    fn new(kind: &'static str, raw: &str, reason: impl Into<String>) -> NameError {
        NameError {
            kind,
            shown: format!("{:?}", truncate_for_display(raw)),
            reason: reason.into(),
        }
    }
}

fn truncate_for_display(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

/// A mailbox account name (`user@example.com`): an e-mail address in
/// dot-atom form, as Carbonio stores them.
///
/// Accepted: a local part of RFC 5322 `atext` characters (letters, digits,
/// ``!#$%&'*+/=?^_`{|}~-``, non-ASCII letters) separated by single dots, an
/// `@`, and a domain of letter/digit/hyphen labels. Refused: anything else,
/// in particular whitespace, control characters, quotes `"`, parentheses,
/// `,` (it separates `accounts a,b`), a leading `-` (it would read as an
/// option) and quoted local parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

impl AccountName {
    const KIND: &'static str = "account name";

    /// Validate an account name.
    pub fn parse(raw: &str) -> Result<AccountName, NameError> {
        // The ordinary name (ASCII) in one pass over its bytes; anything
        // else, and every refusal with its reason, the long way.
        if plain_ascii_account_name(raw) {
            return Ok(AccountName(raw.to_owned()));
        }
        Self::parse_long(raw)
    }

    /// The rules of [`Self::parse`] as written, one after the other:
    /// these say why a name is refused.
    fn parse_long(raw: &str) -> Result<AccountName, NameError> {
        let err = |reason: &str| NameError::new(Self::KIND, raw, reason);
        if raw.is_empty() {
            return Err(err("it is empty"));
        }
        if raw.len() > 254 {
            return Err(err("it is longer than 254 bytes"));
        }
        if raw.chars().any(char::is_control) {
            return Err(err("it contains a control character (newline, tab, ...)"));
        }
        if raw.chars().any(char::is_whitespace) {
            return Err(err("it contains whitespace"));
        }
        if raw.starts_with('-') {
            return Err(err(
                "it starts with '-', which a command would read as an option",
            ));
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return Err(err("it has no '@' (expected user@domain)"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(err("the part before '@' must be 1 to 64 bytes long"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(err(
                "the part before '@' has a leading, trailing or doubled '.'",
            ));
        }
        if let Some(c) = local.chars().find(|&c| !is_atext(c) && c != '.') {
            return Err(err(&format!(
                "the part before '@' contains {c:?}, which is not allowed in an account name"
            )));
        }
        check_domain(domain, true).map_err(|r| err(&format!("the domain {r}")))?;
        Ok(AccountName(raw.to_owned()))
    }

    /// The validated name, for an argv word.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What each ASCII byte may be in an account name: bit 0 in the part
/// before `@` (`atext` or `.`), bit 1 in the domain (letter, digit, `-`
/// or `.`).
const NAME_BYTES: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut atext = alnum || b == b'.';
        let specials = b"!#$%&'*+/=?^_`{|}~-";
        let mut i = 0;
        while i < specials.len() {
            atext |= specials[i] == b;
            i += 1;
        }
        t[c] = (atext as u8) | (((alnum || b == b'-' || b == b'.') as u8) << 1);
        c += 1;
    }
    t
};

/// Whether `c` has `bit` in [`NAME_BYTES`] (never a non-ASCII byte).
fn name_byte(c: u8, bit: u8) -> bool {
    NAME_BYTES.get(usize::from(c)).is_some_and(|t| t & bit != 0)
}

/// Whether `raw` is an ASCII account name [`AccountName::parse_long`]
/// accepts, in one pass: `false` for any other name (non-ASCII ones
/// included), which the long way then judges. A survey validates every
/// account of a mailstore.
fn plain_ascii_account_name(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.is_empty() || b.len() > 254 || b[0] == b'-' {
        return false;
    }
    let Some(at) = b.iter().rposition(|&c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&b[..at], &b[at + 1..]);
    // Before '@': 1 to 64 bytes of atext, dots single and inside.
    if local.is_empty() || local.len() > 64 || local[0] == b'.' || local[local.len() - 1] == b'.' {
        return false;
    }
    let mut prev = 0u8;
    for &c in local {
        if !name_byte(c, 1) || (c == b'.' && prev == b'.') {
            return false;
        }
        prev = c;
    }
    if domain.is_empty() || domain.len() > 253 {
        return false;
    }
    // The domain: labels of 1 to 63 bytes between dots, no '-' at either
    // end of one.
    let (mut len, mut prev) = (0usize, b'.');
    for &c in domain {
        if c == b'.' {
            if len == 0 || prev == b'-' {
                return false;
            }
            len = 0;
        } else {
            if !name_byte(c, 2) || (len == 0 && c == b'-') {
                return false;
            }
            len += 1;
            if len > 63 {
                return false;
            }
        }
        prev = c;
    }
    len != 0 && prev != b'-'
}

/// RFC 5322 `atext`, plus non-ASCII letters and digits (SMTPUTF8).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+/=?^_`{|}~-".contains(c)
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// Check a dot-separated name of letter/digit/hyphen labels. `unicode`
/// also admits non-ASCII letters (internationalised mail domains).
fn check_domain(d: &str, unicode: bool) -> Result<(), String> {
    if d.is_empty() {
        return Err("is empty".into());
    }
    if d.len() > 253 {
        return Err("is longer than 253 bytes".into());
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err("has an empty label (leading, trailing or doubled '.')".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 bytes"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
        let ok = |c: char| {
            c.is_ascii_alphanumeric()
                || c == '-'
                || (unicode && !c.is_ascii() && c.is_alphanumeric())
        };
        if let Some(c) = label.chars().find(|&c| !ok(c)) {
            return Err(format!(
                "contains {c:?} (only letters, digits, '-' and '.' are allowed)"
            ));
        }
    }
    Ok(())
}

impl AsRef<str> for AccountName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AccountName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountName::parse(s)
    }
}

impl TryFrom<String> for AccountName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AccountName::parse(&s)
    }
}

impl From<AccountName> for String {
    fn from(a: AccountName) -> String {
        a.0
    }
}

/// A mailstore's hostname (`mbox1.example.com`), as Carbonio names mail
/// hosts: ASCII letters, digits and hyphens in dot-separated labels.
/// Stored in lower case, since host names compare case-insensitively and
/// the engine compares them (the host in the config against the host the
/// CLI reports).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MailHost(String);

impl MailHost {
    const KIND: &'static str = "mail host";

    /// Validate a host name.
    pub fn parse(raw: &str) -> Result<MailHost, NameError> {
        if raw.starts_with('-') {
            return Err(NameError::new(
                Self::KIND,
                raw,
                "it starts with '-', which a command would read as an option",
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(NameError::new(
                Self::KIND,
                raw,
                "it contains a control character (newline, tab, ...)",
            ));
        }
        check_domain(raw, false).map_err(|r| NameError::new(Self::KIND, raw, format!("it {r}")))?;
        Ok(MailHost(raw.to_ascii_lowercase()))
    }

    /// The validated name, for an argv word.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MailHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MailHost {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MailHost::parse(s)
    }
}

impl TryFrom<String> for MailHost {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        MailHost::parse(&s)
    }
}

impl From<MailHost> for String {
    fn from(h: MailHost) -> String {
        h.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_account_names_are_accepted() {
        for ok in [
            "user@example.com",
            "first.last@mail.example.co.uk",
            "o'brien@example.com",
            "a+tag@example.com",
            "x_y-z@sub-domain.example",
            "jürgen@exämple.de",
        ] {
            assert_eq!(AccountName::parse(ok).map(|a| a.to_string()), Ok(ok.into()));
        }
    }

    #[test]
    fn hostile_account_names_are_refused_with_a_reason() {
        for (bad, why) in [
            ("$(touch /tmp/x)@example.com", "whitespace"),
            ("$(touch)@example.com", "'('"),
            ("\"quoted\"@example.com", "'\"'"),
            ("a\nb@example.com", "control character"),
            ("a b@example.com", "whitespace"),
            ("-rf@example.com", "starts with '-'"),
            ("a,b@example.com", "','"),
            ("user", "no '@'"),
            ("user@", "domain is empty"),
            ("user@exa_mple.com", "domain contains '_'"),
            ("user@-example.com", "starts or ends with '-'"),
            (".user@example.com", "leading, trailing or doubled '.'"),
            ("", "empty"),
        ] {
            let e = AccountName::parse(bad).expect_err(bad);
            let msg = e.to_string();
            assert!(msg.contains(why), "{bad:?}: {msg}");
            assert!(
                !msg.contains('\n'),
                "message must keep control chars escaped: {msg}"
            );
        }
    }

    #[test]
    fn mail_hosts_are_hostnames_in_lower_case() {
        assert_eq!(
            MailHost::parse("MBOX1.Example.com").map(|h| h.to_string()),
            Ok("mbox1.example.com".into())
        );
        for bad in [
            "",
            "-x",
            "a..b",
            "a b",
            "a;b",
            "host\n",
            "a_b.example",
            "ümlaut.de",
        ] {
            assert!(MailHost::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_round_trip_through_json_and_are_validated_on_the_way_in() {
        let a: AccountName = serde_json::from_str("\"u@example.com\"").expect("valid");
        assert_eq!(serde_json::to_string(&a).expect("ser"), "\"u@example.com\"");
        assert!(serde_json::from_str::<AccountName>("\"-u@example.com\"").is_err());
        assert!(serde_json::from_str::<MailHost>("\"a b\"").is_err());
    }

    /// Names at and around each rule's edge.
    fn edge_names() -> Vec<String> {
        let mut v: Vec<String> = [
            "u@example.com",
            "u@x",
            "u@1",
            "@example.com",
            "u@",
            "u@@example.com",
            "a@b@example.com",
            "u@.example.com",
            "u@example.com.",
            "u@example..com",
            "u@-a.com",
            "u@a-.com",
            "u@a-b.com",
            "u@a_b.com",
            ".u@x",
            "u.@x",
            "u..v@x",
            "u.v@x",
            "-u@x",
            "u-@x",
            " u@x",
            "u@x ",
            "u\tv@x",
            "u\u{7f}@x",
            "u\u{b}@x",
            "u\u{c}@x",
            "!#$%&'*+/=?^_`{|}~-@x",
            "\"u\"@x",
            "u(x)@x",
            "u,v@x",
            "u;v@x",
            "u[v]@x",
            "u\\v@x",
            "jürgen@exämple.de",
            "u@exämple.de",
            "ü@x",
            "u\u{a0}@x",
            "u\u{2028}@x",
            "",
            "@",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [63, 64, 65] {
            v.push(format!("{}@x", "a".repeat(n)));
            v.push(format!("u@{}.com", "a".repeat(n)));
        }
        for n in [252, 253, 254] {
            let mut d = "a.".repeat(n / 2);
            d.truncate(n - 1);
            d.push('b');
            v.push(format!("u@{d}"));
            // 254 bytes in all, then 255.
            v.push(format!(
                "{}@{d}",
                "u".repeat(253_usize.saturating_sub(n).max(1))
            ));
            v.push(format!(
                "{}@{d}",
                "u".repeat(254_usize.saturating_sub(n).max(1))
            ));
        }
        v
    }

    #[test]
    fn the_one_pass_check_of_a_name_is_the_long_one_at_every_edge() {
        for s in edge_names() {
            assert_eq!(AccountName::parse(&s), AccountName::parse_long(&s), "{s:?}");
            if s.is_ascii() {
                assert_eq!(
                    plain_ascii_account_name(&s),
                    AccountName::parse_long(&s).is_ok(),
                    "{s:?}"
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// The one pass accepts exactly the ASCII names the rules written
        /// out accept (any other name goes the long way), so a name is
        /// taken, or refused with the same reason, either way.
        #[test]
        fn the_one_pass_check_of_a_name_is_the_long_one(
            s in proptest::prop_oneof![
                "[a-z0-9.@_+-]{0,12}@[a-z0-9._+-]{0,12}",
                "[ -~]{0,20}",
                "[a-zA-Z0-9.@!#$%&'*+/=?^_`{|}~ ,()\\\"\t\n-]{0,30}",
                "[a-z.]{60,70}@[a-z.-]{1,8}",
                "[a-z]{1,3}@[a-z-]{58,66}(\\.[a-z]{1,3})?",
                "[a-z]{1,4}@([a-z]{60,63}\\.){3,4}[a-z]{1,20}",
                "\\PC{0,30}",
                "[a-zü\u{a0}\u{7f}\u{1f}@.]{0,12}",
            ]
        ) {
            proptest::prop_assert_eq!(AccountName::parse(&s), AccountName::parse_long(&s), "{:?}", s);
            if s.is_ascii() {
                proptest::prop_assert_eq!(
                    plain_ascii_account_name(&s),
                    AccountName::parse_long(&s).is_ok(),
                    "{:?}", s
                );
            }
        }

        /// Whatever is accepted can never be an option, split a list or a
        /// line, or carry shell quoting.
        #[test]
        fn accepted_names_are_argv_safe(s in "\\PC{0,40}") {
            if let Ok(a) = AccountName::parse(&s) {
                let t = a.as_str();
                proptest::prop_assert!(!t.starts_with('-'));
                proptest::prop_assert!(!t.contains([',', '\n', '\r', ' ', '"', '(', ')', '\\', ';', '<', '>']));
            }
            if let Ok(h) = MailHost::parse(&s) {
                proptest::prop_assert!(h.as_str().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
            }
        }
    }
}

/// Every short ASCII name and names at each length limit.
#[cfg(test)]
mod one_pass_against_long {
    use super::*;

    #[test]
    fn every_short_ascii_name_is_judged_alike() {
        let alpha: &[u8] = b"a-.@_!A0\" ,";
        let mut n = 0;
        for len in 0..=5u32 {
            let total = alpha.len().pow(len);
            for mut k in 0..total {
                let mut s = Vec::new();
                for _ in 0..len {
                    s.push(alpha[k % alpha.len()]);
                    k /= alpha.len();
                }
                let s = String::from_utf8(s).expect("ascii");
                assert_eq!(
                    plain_ascii_account_name(&s),
                    AccountName::parse_long(&s).is_ok(),
                    "{s:?}"
                );
                assert_eq!(AccountName::parse(&s), AccountName::parse_long(&s), "{s:?}");
                n += 1;
            }
        }
        // Lengths at each limit, with dots and hyphens at label edges.
        for local in [1usize, 63, 64, 65] {
            for label in [1usize, 62, 63, 64] {
                for labels in 1..=5usize {
                    for tail in ["", "-", ".", "a-", "-a"] {
                        let d = vec!["b".repeat(label); labels].join(".");
                        let s = format!("{}@{d}{tail}", "a".repeat(local));
                        assert_eq!(
                            plain_ascii_account_name(&s),
                            AccountName::parse_long(&s).is_ok(),
                            "{s:?}"
                        );
                        assert_eq!(AccountName::parse(&s), AccountName::parse_long(&s), "{s:?}");
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 100_000);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5_000))]
        #[test]
        fn any_name_is_judged_alike(s in proptest::prop_oneof![
            "[a-zA-Z0-9.@!#$%&'*+/=?^_`{|}~\u{0}-\u{7f}-]{0,80}",
            "[a-z.-]{0,70}@[a-z0-9.-]{0,260}",
            "\\PC{0,40}@\\PC{0,10}",
        ]) {
            proptest::prop_assert_eq!(AccountName::parse(&s), AccountName::parse_long(&s), "{:?}", s);
            if s.is_ascii() {
                proptest::prop_assert_eq!(plain_ascii_account_name(&s), AccountName::parse_long(&s).is_ok(), "{:?}", s);
            }
        }
    }
}
