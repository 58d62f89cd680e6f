//! Network witnesses of a peer component: TCP connect, HTTP(S) GET and an
//! LDAP rootDSE search. Each takes every address of the component and says
//! Up as soon as one answers, so a component with several IPs is one witness.
//!
//! A missing answer within the deadline is Down (the peer did not show it is
//! alive); a failure that is this host's own problem (out of file
//! descriptors, no local port, a name this host cannot resolve, a request
//! that cannot be built) is Unknown, because it proves nothing about the
//! peer.

use super::{Finding, ms};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Largest part of an HTTP body read to look for the expected text.
pub const HTTP_BODY_LIMIT: usize = 64 * 1024;

/// Run `one` for every address concurrently; the first Up wins, otherwise
/// the answers are combined (Unknown if any address could not be asked at
/// all and none answered, else Down).
async fn any_address<F, Fut>(addrs: &[IpAddr], deadline: Instant, what: &str, one: F) -> Finding
where
    F: Fn(IpAddr) -> Fut,
    Fut: std::future::Future<Output = Finding> + Send + 'static,
{
    if addrs.is_empty() {
        return Finding::unknown(format!("no address configured for the {what} probe"));
    }
    let mut set = JoinSet::new();
    for &a in addrs {
        set.spawn(one(a));
    }
    let mut downs = Vec::new();
    let mut unknowns = Vec::new();
    let collected = tokio::time::timeout_at(deadline + Duration::from_millis(20), async {
        while let Some(j) = set.join_next().await {
            match j {
                Ok(f) if f.vote == crate::model::Vote::Up => return Some(f),
                Ok(f) if f.vote == crate::model::Vote::Down => downs.push(f.reason),
                Ok(f) => unknowns.push(f.reason),
                Err(e) => unknowns.push(format!("probe task failed: {e}")),
            }
        }
        None
    })
    .await;
    set.abort_all();
    match collected {
        Ok(Some(up)) => up,
        Ok(None) if downs.is_empty() => Finding::unknown(unknowns.join("; ")),
        Ok(None) => {
            downs.extend(unknowns);
            Finding::down(downs.join("; "))
        }
        Err(_) => {
            downs.push(format!("{what}: no answer in time"));
            Finding::down(downs.join("; "))
        }
    }
}

/// Whether an I/O error says something about the peer (Down) or only about
/// this host (Unknown).
fn io_is_peer(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::TimedOut
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NetworkDown
            | ErrorKind::UnexpectedEof
            | ErrorKind::BrokenPipe
    )
}

/// TCP connect to `port` on any of `addrs`.
pub async fn tcp(addrs: &[IpAddr], port: u16, deadline: Instant) -> Finding {
    any_address(addrs, deadline, "tcp", move |ip| async move {
        let sa = SocketAddr::new(ip, port);
        let budget = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, TcpStream::connect(sa)).await {
            Ok(Ok(_stream)) => Finding::up(format!("{sa} accepts TCP connections")),
            Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => Finding::down(format!(
                "{sa} refused the connection (nothing listens on port {port})"
            )),
            Ok(Err(e)) if io_is_peer(&e) => Finding::down(format!("cannot connect to {sa}: {e}")),
            Ok(Err(e)) => Finding::unknown(format!("cannot try {sa} from this host: {e}")),
            Err(_) => Finding::down(format!("no answer from {sa} within {}", ms(budget))),
        }
    })
    .await
}

/// HTTP(S) GET of `url`: Up on a 2xx or 3xx status (redirects are not
/// followed) whose body, if `expect` is given, contains that text.
///
/// Certificates are not verified: this is a liveness probe that sends no
/// secret, and an expired or self-signed certificate is not an outage.
pub async fn http(
    client: &reqwest::Client,
    url: &str,
    expect: Option<&str>,
    deadline: Instant,
) -> Finding {
    let budget = deadline.saturating_duration_since(Instant::now());
    let attempt = async {
        let mut resp = match client.get(url).timeout(budget).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Finding::down(format!("no HTTP answer from {url} within {}", ms(budget)));
            }
            Err(e) if let Some(why) = http_local_problem(&e) => {
                return Finding::unknown(format!(
                    "cannot try GET {url} from this host: {why} ({})",
                    crate::consul::chain(&e)
                ));
            }
            Err(e) => {
                return Finding::down(format!("GET {url} failed: {}", crate::consul::chain(&e)));
            }
        };
        let status = resp.status();
        if !(status.is_success() || status.is_redirection()) {
            return Finding::down(format!("GET {url} answered HTTP {}", status.as_u16()));
        }
        let Some(expect) = expect else {
            return Finding::up(format!("GET {url} answered HTTP {}", status.as_u16()));
        };
        let mut body = Vec::new();
        while body.len() < HTTP_BODY_LIMIT {
            match resp.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                Ok(None) => break,
                Err(e) => {
                    return Finding::down(format!(
                        "GET {url}: the body was cut short ({})",
                        crate::consul::chain(&e)
                    ));
                }
            }
        }
        if String::from_utf8_lossy(&body).contains(expect) {
            Finding::up(format!(
                "GET {url} answered HTTP {} containing {expect:?}",
                status.as_u16()
            ))
        } else {
            Finding::down(format!(
                "GET {url} answered HTTP {} but the body does not contain {expect:?}",
                status.as_u16()
            ))
        }
    };
    match tokio::time::timeout_at(deadline, attempt).await {
        Ok(f) => f,
        Err(_) => Finding::down(format!(
            "no complete HTTP answer from {url} within {}",
            ms(budget)
        )),
    }
}

/// Why a failed HTTP request is this host's own problem, if it is: the
/// name does not resolve here, no socket could be opened or bound (out of
/// file descriptors, buffers or local ports), or the request could not be
/// built from the URL. Refused, reset, unreachable, timed out and TLS
/// handshake failures are the peer's answer and stay Down. (The probes'
/// TLS client verifies no certificate and is built once, at start: a TLS
/// setup problem stops habeat there rather than reaching a round.)
fn http_local_problem(e: &reqwest::Error) -> Option<&'static str> {
    if e.is_builder() {
        return Some("the request cannot be built (check the probe URL)");
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        // hyper-util's connector names the step that failed.
        let text = err.to_string();
        if text.starts_with("dns error") {
            return Some("the name does not resolve from this host (DNS)");
        }
        if ["tcp open error", "tcp set_nonblocking error", "tcp bind"]
            .iter()
            .any(|step| text.starts_with(step))
        {
            return Some("this host cannot open a socket");
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io_is_local(io)
        {
            return Some("this host is out of a resource it needs to connect");
        }
        cur = err.source();
    }
    None
}

/// An I/O error that only this host's own limits explain.
fn io_is_local(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().is_some_and(|code| {
        matches!(
            Errno::from_raw(code),
            Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM | Errno::EADDRNOTAVAIL
        )
    })
}

/// Anonymous search of the rootDSE on `port` of any of `addrs`: proves an
/// LDAP server answers, not merely that a port is open.
pub async fn ldap(addrs: &[IpAddr], port: u16, deadline: Instant) -> Finding {
    any_address(addrs, deadline, "ldap", move |ip| async move {
        let sa = SocketAddr::new(ip, port);
        let budget = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout_at(deadline, ldap_one(sa, budget)).await {
            Ok(f) => f,
            Err(_) => Finding::down(format!("no LDAP answer from {sa} within {}", ms(budget))),
        }
    })
    .await
}

async fn ldap_one(sa: SocketAddr, budget: Duration) -> Finding {
    let url = format!("ldap://{sa}");
    let settings = LdapConnSettings::new().set_conn_timeout(budget);
    let (conn, mut ldap) = match LdapConnAsync::with_settings(settings, &url).await {
        Ok(c) => c,
        Err(ldap3::LdapError::Io { source }) if !io_is_peer(&source) => {
            return Finding::unknown(format!("cannot try {sa} from this host: {source}"));
        }
        Err(ldap3::LdapError::Io { source }) if source.kind() == ErrorKind::ConnectionRefused => {
            return Finding::down(format!(
                "{sa} refused the connection (no LDAP server listens on port {})",
                sa.port()
            ));
        }
        Err(ldap3::LdapError::Timeout { .. }) => {
            return Finding::down(format!("no answer from {sa} within {}", ms(budget)));
        }
        Err(e) => return Finding::down(format!("cannot connect to LDAP at {sa}: {e}")),
    };
    // The connection driver must die with this probe, whatever happens.
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _driver = Abort(tokio::spawn(async move {
        let _ = conn.drive().await;
    }));
    let result = ldap
        .with_timeout(budget)
        .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
        .await;
    match result {
        Ok(res) => {
            let rc = res.1.rc;
            match rc {
                0 => Finding::up(format!("LDAP server at {sa} answered the rootDSE search")),
                // busy, unavailable, unwilling to perform, other
                51 | 52 | 53 | 80 => Finding::down(format!(
                    "LDAP server at {sa} answered result code {rc} ({}): not serving",
                    res.1.text
                )),
                _ => Finding::up(format!(
                    "LDAP server at {sa} answered (result code {rc}: anonymous search refused, but it speaks LDAP)"
                )),
            }
        }
        Err(ldap3::LdapError::Timeout { .. }) => Finding::down(format!(
            "{sa} accepts TCP but gave no LDAP answer within {}",
            ms(budget)
        )),
        Err(e) => Finding::down(format!("{sa} did not answer as an LDAP server: {e}")),
    }
}
