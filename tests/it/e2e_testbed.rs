//! The rehearsal stage itself (tests/support/testbed.rs), before habeat is
//! put on it: hosts reachable and cut off for real, Serf following the
//! links after its delay, a partition taking the leader away, the wrapped
//! fake carbonio logging its calls. If these fail, the failover tests
//! would prove nothing.

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::require;
use support::testbed::{self, Binaries, Host, Options, Testbed};

fn bins() -> Binaries {
    Binaries::beside(std::path::Path::new(env!("CARGO_BIN_EXE_habeat")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A plain HTTP GET against the Consul test server: the JSON body.
fn get(tb: &Testbed, path: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(tb.consul().addr()).expect("connect to the Consul test server");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let body = buf.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

fn member_status(tb: &Testbed, h: Host) -> i64 {
    get(tb, "/v1/agent/members")
        .as_array()
        .and_then(|a| a.iter().find(|m| m["Name"] == h.node().as_str()).cloned())
        .and_then(|m| m["Status"].as_i64())
        .unwrap_or(-1)
}

fn ldap_reachable(tb: &Testbed) -> bool {
    let addr = SocketAddr::new(tb.ip(Host::Directory), 389);
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

#[test]
fn a_cut_host_is_unreachable_at_once_and_failed_in_serf_after_the_delay() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(
        Options {
            serf_delay: Duration::from_secs(1),
            ..Options::default()
        },
        bins(),
    );
    assert!(
        ldap_reachable(&tb),
        "slapd in the directory namespace answers"
    );
    assert_eq!(member_status(&tb, Host::Directory), 1);
    tb.kill_host(Host::Directory);
    assert!(!ldap_reachable(&tb), "a cut host does not answer");
    assert_eq!(
        member_status(&tb, Host::Directory),
        1,
        "Serf has not noticed yet"
    );
    assert!(
        testbed::wait_until(Duration::from_secs(10), || member_status(
            &tb,
            Host::Directory
        ) == 4),
        "Serf marks the cut host failed"
    );
    assert_eq!(
        member_status(&tb, Host::Appserver),
        1,
        "the others stay alive"
    );
    tb.restore_host(Host::Directory);
    assert!(testbed::wait_until(Duration::from_secs(10), || {
        ldap_reachable(&tb)
    }));
    assert!(testbed::wait_until(
        Duration::from_secs(5),
        || member_status(&tb, Host::Directory) == 1
    ));
}

#[test]
fn a_partition_takes_the_leader_away_and_a_flap_stays_invisible_to_serf() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(
        Options {
            serf_delay: Duration::from_secs(1),
            ..Options::default()
        },
        bins(),
    );
    assert_ne!(get(&tb, "/v1/status/leader"), "");
    {
        let _f = tb.flap(
            Host::Appserver,
            Duration::from_millis(300),
            Duration::from_millis(300),
        );
        for _ in 0..20 {
            assert_eq!(member_status(&tb, Host::Appserver), 1, "flap seen by Serf");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    tb.partition();
    assert_eq!(get(&tb, "/v1/status/leader"), "");
    assert!(!ldap_reachable(&tb));
    assert!(testbed::wait_until(Duration::from_secs(10), || {
        Host::ALL.iter().all(|h| member_status(&tb, *h) == 4)
    }));
    tb.heal();
    assert_ne!(get(&tb, "/v1/status/leader"), "");
    assert!(testbed::wait_until(Duration::from_secs(10), || {
        ldap_reachable(&tb)
    }));
}

#[test]
fn the_wrapped_fake_carbonio_lists_the_accounts_and_logs_the_call() {
    if !require(testbed::NEEDS) {
        return;
    }
    let tb = Testbed::start(Options::default(), bins());
    let out = std::process::Command::new(tb.dir().join("bin/carbonio"))
        .args([
            "--json",
            "MailReplica",
            "getAccountStatus",
            "mailHost",
            testbed::SOURCE_HOST,
        ])
        .env_clear()
        .output()
        .expect("run the wrapper");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("user1@example.test"), "{text}");
    let calls = tb.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].program, "carbonio");
    assert!(calls[0].at > 0);
    assert_eq!(tb.invocations().len(), 1);
    let cfg = std::fs::read_to_string(&tb.config).expect("habeat.yml");
    let (code, _, err) = tb.run_habeat(&["config", "check"], Duration::from_secs(30));
    assert_eq!(code, Some(0), "generated config is valid: {err}\n{cfg}");
}
