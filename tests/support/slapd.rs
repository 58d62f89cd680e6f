#![allow(dead_code)]
//! A real OpenLDAP server (Debian's `slapd`) for the LDAP witness: a minimal
//! `slapd.conf` in a temporary directory (core schema, one empty mdb
//! database), listening on the address given, stopped (SIGKILL) on drop.
//! A test that starts one requires `Need::SLAPD` (`super::need`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs it.
pub const SLAPD: &str = "/usr/sbin/slapd";

/// A running slapd.
pub struct Slapd {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Slapd {
    /// On a free loopback port.
    pub fn start() -> Slapd {
        let port = super::free_port();
        Slapd::start_at(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port), &[])
    }

    /// On `addr`, started through `prefix` (e.g. `ip netns exec NAME`, to
    /// run inside a namespace; empty for this namespace).
    pub fn start_at(addr: SocketAddr, prefix: &[String]) -> Slapd {
        let dir = tempfile::tempdir().expect("temporary directory for slapd");
        let d = dir.path();
        std::fs::create_dir(d.join("db")).expect("slapd db directory");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             suffix \"dc=habeat,dc=test\"\n\
             rootdn \"cn=admin,dc=habeat,dc=test\"\n\
             directory {d}/db\n",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).expect("write slapd.conf");
        let log = std::fs::File::create(d.join("slapd.log")).expect("slapd log file");
        let url = format!("ldap://{addr}/");
        let mut argv: Vec<String> = prefix.to_vec();
        argv.extend([
            SLAPD.into(),
            "-d".into(),
            "0".into(),
            "-h".into(),
            url,
            "-f".into(),
            d.join("slapd.conf").display().to_string(),
        ]);
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        let mut s = Slapd { child, addr, dir };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "slapd exited ({status}) before listening on {}: {}",
                    self.addr,
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "slapd did not listen on {} within 15s: {}",
            self.addr,
            self.log()
        );
    }

    /// slapd's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
