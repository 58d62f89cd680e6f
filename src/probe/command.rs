//! The operator's external witness (`witnesses.command`): a program that
//! knows something habeat cannot see (the hypervisor, the monitoring).
//!
//! It runs once per watched component, with an argv (never a shell built
//! by habeat) and the component described in environment variables:
//! `HABEAT_COMPONENT`, `HABEAT_DC`, `HABEAT_ADDRESSES` and
//! `HABEAT_HOSTNAMES` (space-separated). Exit 0 is Up, 1 is Down; any other
//! exit, a signal, a timeout (its process group is killed) or a failure to
//! start is Unknown.
//!
//! Its environment is a short allow-list of the daemon's (`PATH`, `HOME`,
//! the user and locale), as fence agents get a clean one: nothing of
//! habeat's own, such as `CONSUL_HTTP_TOKEN`, reaches a program that may
//! forward its environment to a third location. The vote is the exit
//! status: once the program has exited, its output is read for a moment
//! only, so a descendant that left its group (`setsid`) holding the pipe
//! costs the round no time; the reason names that holder.

pub use crate::config::witness_plan::Subject;

use super::{Finding, ms};
use crate::act::process::{self, Spec, Status};
use std::time::Duration;

/// Run the witness command for one component within `timeout`.
pub async fn run(argv: &[String], subject: &Subject, timeout: Duration) -> Finding {
    let Some(program) = argv.first() else {
        return Finding::unknown("witnesses.command is empty");
    };
    let mut spec = Spec::new(argv.iter().cloned(), timeout)
        .env("HABEAT_COMPONENT", subject.component.as_str())
        .env("HABEAT_DC", subject.dc.clone())
        .env("HABEAT_ADDRESSES", subject.addresses.join(" "))
        .env("HABEAT_HOSTNAMES", subject.hostnames.join(" "));
    spec.output_limit = 16 * 1024;
    spec.clear_env = true;
    for k in PASSED_ENV {
        if let Some(v) = std::env::var_os(k) {
            spec = spec.env(k, v);
        }
    }
    if std::env::var_os("PATH").is_none() {
        spec = spec.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    }
    spec.drain = process::Drain {
        before_kill: Duration::from_millis(50),
        after_kill: Duration::from_millis(100),
    };
    let out = match process::run(&spec).await {
        Ok(o) => o,
        Err(e) => return Finding::unknown(format!("witness command: {e}")),
    };
    let tail = last_line(&out.tail(400));
    let mut said = if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    };
    if let Some(holders) = &out.pipe_held {
        let who = if holders.is_empty() {
            "a descendant that left its process group".to_owned()
        } else {
            holders
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        said.push_str(&format!(
            " ({who} kept its output pipe open after it exited: its output may be cut; the \
             exit status counts)"
        ));
    }
    match out.status {
        Status::Exited(0) => Finding::up(format!("{program} exited 0{said}")),
        Status::Exited(1) => Finding::down(format!("{program} exited 1{said}")),
        Status::Exited(c) => Finding::unknown(format!(
            "{program} exited {c} (only 0 = up and 1 = down count){said}"
        )),
        Status::Signaled(s) => {
            Finding::unknown(format!("{program} was killed by signal {s}{said}"))
        }
        Status::TimedOut => Finding::unknown(format!(
            "{program} did not finish within {} and was killed",
            ms(timeout)
        )),
    }
}

/// What the witness command inherits of habeat's environment.
const PASSED_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}
