//! The operator's external witness (`witnesses.command`): a program that
//! knows something habeat cannot see (the hypervisor, the monitoring).
//!
//! It runs once per watched component, with an argv (never a shell built
//! by habeat) and the component described in environment variables:
//! `HABEAT_COMPONENT`, `HABEAT_DC`, `HABEAT_ADDRESSES` and
//! `HABEAT_HOSTNAMES` (space-separated). Exit 0 is Up, 1 is Down; any other
//! exit, a signal, a timeout (its process group is killed) or a failure to
//! start is Unknown.

use super::{Finding, ms};
use crate::act::process::{self, Spec, Status};
use crate::model::Component;
use std::time::Duration;

/// What the command is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub component: Component,
    pub dc: String,
    pub addresses: Vec<String>,
    pub hostnames: Vec<String>,
}

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
    let out = match process::run(&spec).await {
        Ok(o) => o,
        Err(e) => return Finding::unknown(format!("witness command: {e}")),
    };
    let tail = last_line(&out.tail(400));
    let said = if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    };
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
