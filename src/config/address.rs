//! Syntax checks for the addresses and hostnames in habeat.yml.
//!
//! A typo in an address (`10.0.0.256`, `mbox1..example.com`) would otherwise
//! surface hours later as a witness that always votes Down; it is cheaper to
//! refuse it when the file is loaded. Nothing here resolves names: DNS may be
//! exactly what is down when habeat starts.

use std::net::IpAddr;

/// Why `s` is not usable as an address (an IP or a hostname), or `None`.
pub fn address_problem(s: &str) -> Option<String> {
    if s.parse::<IpAddr>().is_ok() {
        return None;
    }
    if s.starts_with('[') && s.ends_with(']') {
        return Some(
            "is written with brackets; write an IPv6 address without them (e.g. fd00::5)".into(),
        );
    }
    // `127.0.0.1:8500`, `consul.local:8500`: an address with a port, not
    // an IPv6 address. The port is a key of its own.
    if let Some((host, port)) = s.rsplit_once(':')
        && !host.contains(':')
        && !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
        && (host.parse::<IpAddr>().is_ok() || hostname_problem(host).is_none())
    {
        return Some(format!(
            "has a port (`:{port}`), but no port is written here; write `{host}` and the \
             port in its own key (consul.port for the Consul agent)"
        ));
    }
    if looks_like_ipv4(s) {
        return Some("is not a valid IPv4 address (four numbers 0-255 separated by dots)".into());
    }
    if s.contains(':')
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    {
        return Some("is not a valid IPv6 address".into());
    }
    hostname_problem(s).map(|why| format!("is neither an IP address nor a valid hostname ({why})"))
}

/// Why `s` is not a valid hostname (RFC 1123 syntax), or `None`.
pub fn hostname_problem(s: &str) -> Option<String> {
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > 253 {
        return Some("longer than 253 characters".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Some("two dots in a row, or a dot at the start".into());
        }
        if label.len() > 63 {
            return Some(format!("the part `{label}` is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "the character {c:?} is not allowed; use letters, digits, `-` and `.`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("the part `{label}` starts or ends with `-`"));
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Some("its last part is all digits".into());
    }
    None
}

fn looks_like_ipv4(s: &str) -> bool {
    !s.is_empty() && s.contains('.') && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_addresses_pass() {
        for a in [
            "10.0.0.5",
            "fd00::5",
            "::1",
            "mbox1.example.com",
            "localhost",
            "svc-1.example.com.",
        ] {
            assert_eq!(address_problem(a), None, "{a}");
        }
    }

    #[test]
    fn bad_addresses_say_why() {
        assert!(address_problem("10.0.0.256").unwrap().contains("IPv4"));
        assert!(address_problem("[fd00::5]").unwrap().contains("brackets"));
        assert!(
            address_problem("mbox1..example.com")
                .unwrap()
                .contains("two dots")
        );
        assert!(
            address_problem("mbox_1.example.com")
                .unwrap()
                .contains("'_'")
        );
        assert!(
            address_problem("-bad.example.com")
                .unwrap()
                .contains("starts or ends")
        );
        assert!(address_problem("http://mbox1").is_some());
    }
}
