//! Fencing through the ClusterLabs fence agents (Debian package
//! `fence-agents`: `fence_vmware_rest`, `fence_redfish`, `fence_ipmilan`,
//! ...), the programs Pacemaker uses. habeat writes no power-control
//! client of its own.
//!
//! An agent is run directly (never through a shell) by [`process::run`]:
//! a timeout after which its process group is killed, bounded output with
//! the tail kept, and a clean environment. Its options go on **stdin**, as
//! the agents' own `stdin` protocol reads them: `key=value` lines, then
//! `action=` and `plug=`; nothing but the program's path is in argv, so a
//! password never shows in `ps`. `status` exits 0 for ON and 2 for OFF;
//! anything else is a failure.
//!
//! [`confirm_off`] is the only way the engine's fence step powers anything
//! off, and it always asks `status` first: a node already OFF is confirmed
//! without a power action, so a step resumed after kill -9 never powers a
//! node off twice without a fresh `status`.

use super::process::{self, Spec, Status};
use crate::config::FenceTarget;
pub use crate::model::{CallEnd, FenceCall, Power};
use crate::model::{FenceAction, FenceFailure};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The tail of an agent's output kept in a [`FenceCall`] (and journaled).
pub const TAIL_BYTES: usize = 2000;
/// What replaces a secret in any output kept.
const MASK: &str = "********";

/// Every call made to confirm one plug OFF, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceReport {
    pub plug: String,
    pub calls: Vec<FenceCall>,
    pub verdict: Result<(), FenceFailure>,
}

impl FenceReport {
    pub fn confirmed(&self) -> bool {
        self.verdict.is_ok()
    }
}

/// What the agent reads on stdin for `action` on `plug`: the options as
/// `key=value` lines, then `action=` and `plug=`.
pub fn stdin_text(t: &FenceTarget, action: FenceAction, plug: &str) -> String {
    let mut text = String::new();
    for (k, v) in &t.options {
        text.push_str(&format!("{k}={v}\n"));
    }
    text.push_str(&format!("action={}\n", action.as_str()));
    // An empty plug: the agent addresses the node itself (fence_ipmilan,
    // fence_redfish: `ip` is the node's BMC), so none is written.
    if !plug.is_empty() {
        text.push_str(&format!("plug={plug}\n"));
    }
    text
}

/// `text` with every secret option value of `t` replaced by `********`
/// (also inside longer words: an agent may echo `password=...` or put it
/// in a URL).
pub fn scrub(t: &FenceTarget, text: &str) -> String {
    let mut out = text.to_owned();
    let mut secrets = t.secrets();
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        out = out.replace(s.as_str(), MASK);
    }
    out
}

/// The last [`TAIL_BYTES`] of an agent's output (`whole`: all of it that
/// was kept), scrubbed *before* it is cut: cutting first could split a
/// secret so that no whole copy is left to mask, and its end would reach
/// the journal and the log.
pub fn journal_tail(t: &FenceTarget, whole: &str) -> String {
    let clean = scrub(t, whole);
    if clean.len() <= TAIL_BYTES {
        return clean;
    }
    let mut start = clean.len() - TAIL_BYTES;
    while !clean.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &clean[start..])
}

/// Run the agent once: `action` for `plug`.
async fn call(t: &FenceTarget, action: FenceAction, plug: &str, timeout: Duration) -> FenceCall {
    let mut spec =
        Spec::new([t.agent.as_os_str()], timeout).stdin(stdin_text(t, action, plug).into_bytes());
    // A clean environment: nothing of habeat's own (CONSUL_HTTP_TOKEN)
    // reaches the agent.
    spec.clear_env = true;
    spec = spec
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        // The units leave /tmp read-only; the agents' Python follows TMPDIR.
        .env("TMPDIR", process::TEMP_ROOT);
    let started = std::time::Instant::now();
    match process::run(&spec).await {
        Ok(out) => FenceCall {
            plug: plug.to_owned(),
            action,
            exit: match out.status {
                Status::Exited(code) => CallEnd::Exited { code },
                Status::Signaled(signal) => CallEnd::Signaled { signal },
                Status::TimedOut => CallEnd::TimedOut,
            },
            tail: journal_tail(t, &out.tail(process::TAIL_KEEP)),
            elapsed: whole_ms(out.duration),
        },
        Err(e) => FenceCall {
            plug: plug.to_owned(),
            action,
            exit: CallEnd::Spawn {
                message: scrub(t, &e.to_string()),
            },
            tail: String::new(),
            elapsed: whole_ms(started.elapsed()),
        },
    }
}

/// The longest an agent may take to print its metadata: it only prints a
/// document, contacting nothing.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// `AGENT -o metadata`, as Pacemaker asks it: the XML that lists the
/// agent's parameters. Bounded like every child (its group killed after
/// [`METADATA_TIMEOUT`]), in a clean environment. Blocking: the config is
/// read before the runtime exists, so this runs on a runtime of its own
/// (`config::LoadEnv::fence_metadata`).
pub fn metadata_blocking(agent: &std::path::Path) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to ask it: {e}"))?;
    let mut spec = Spec::new(
        [agent.as_os_str(), "-o".as_ref(), "metadata".as_ref()],
        METADATA_TIMEOUT,
    );
    spec.clear_env = true;
    spec = spec
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8");
    let out = rt
        .block_on(process::run(&spec))
        .map_err(|e| e.to_string())?;
    match &out.status {
        Status::Exited(0) => Ok(out.stdout.text()),
        Status::TimedOut => Err(format!(
            "gave no answer within {}s and was stopped",
            METADATA_TIMEOUT.as_secs()
        )),
        other => Err(format!("{other:?}: {}", out.tail(300).trim())),
    }
}

/// A duration to the millisecond (journaled as `370ms`, not `370ms 213us 434ns`).
fn whole_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Ask the agent for `plug`'s power state (`action=status`).
pub async fn status(t: &FenceTarget, plug: &str, timeout: Duration) -> FenceCall {
    call(t, FenceAction::Status, plug, timeout).await
}

/// Confirm `plug` OFF: `status` first; OFF is confirmed without any power
/// action. ON with `action: off` powers it off, then `status` must say
/// OFF; ON with `action: status` is not confirmed. Any failure, timeout
/// or unexpected exit is no confirmation.
pub async fn confirm_off(t: &FenceTarget, plug: &str, timeout: Duration) -> FenceReport {
    let mut calls = Vec::new();
    let verdict = async {
        let first = status(t, plug, timeout).await;
        let power = first.power();
        calls.push(first);
        match power? {
            Power::Off => return Ok(()),
            Power::On if t.action == FenceAction::Status => {
                return Err(FenceFailure::On {
                    plug: plug.to_owned(),
                });
            }
            Power::On => {}
        }
        let off = call(t, FenceAction::Off, plug, timeout).await;
        let done = off.power();
        calls.push(off);
        done?;
        let after = status(t, plug, timeout).await;
        let power = after.power();
        calls.push(after);
        match power? {
            Power::Off => Ok(()),
            Power::On => Err(FenceFailure::On {
                plug: plug.to_owned(),
            }),
        }
    }
    .await;
    FenceReport {
        plug: plug.to_owned(),
        calls,
        verdict,
    }
}

/// [`confirm_off`] for each plug in turn; confirmed only when every one
/// is. Stops at the first plug not confirmed (the others do not matter:
/// the step is not confirmed either way, and nothing more is powered off).
pub async fn confirm_all_off(
    t: &FenceTarget,
    plugs: &[String],
    timeout: Duration,
) -> Vec<FenceReport> {
    let mut reports = Vec::new();
    for plug in plugs {
        let r = confirm_off(t, plug, timeout).await;
        let ok = r.confirmed();
        reports.push(r);
        if !ok {
            break;
        }
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn target(options: &[(&str, &str)]) -> FenceTarget {
        FenceTarget {
            agent: "/usr/sbin/fence_dummy".into(),
            action: FenceAction::Off,
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            plugs: vec!["mbox1".into()],
        }
    }

    #[test]
    fn options_go_on_stdin_with_action_and_plug_last() {
        let t = target(&[("ip", "vc.example.com"), ("password", "pw-1234")]);
        assert_eq!(
            stdin_text(&t, FenceAction::Status, "mbox1"),
            "ip=vc.example.com\npassword=pw-1234\naction=status\nplug=mbox1\n"
        );
    }

    #[test]
    fn an_agent_that_addresses_the_node_itself_gets_no_plug_line() {
        let t = target(&[("ip", "bmc.example.com")]);
        assert_eq!(
            stdin_text(&t, FenceAction::Status, ""),
            "ip=bmc.example.com\naction=status\n"
        );
    }

    #[test]
    fn every_secret_value_is_scrubbed_from_output() {
        let t = target(&[
            ("password", "pw-1234"),
            ("snmp_priv_passwd", "pw-1234-long"),
            ("password_script", "/etc/habeat/pw"),
        ]);
        let out = scrub(
            &t,
            "Parse error: Ignoring unknown option 'password=pw-1234'\nauth pw-1234-long via /etc/habeat/pw",
        );
        assert_eq!(
            out,
            "Parse error: Ignoring unknown option 'password=********'\nauth ******** via /etc/habeat/pw"
        );
    }

    #[test]
    fn the_exit_code_protocol_of_status_and_off() {
        let c = |action, exit| FenceCall {
            plug: "p".into(),
            action,
            exit,
            tail: String::new(),
            elapsed: Duration::ZERO,
        };
        use CallEnd::*;
        assert_eq!(
            c(FenceAction::Status, Exited { code: 0 }).power(),
            Ok(Power::On)
        );
        assert_eq!(
            c(FenceAction::Status, Exited { code: 2 }).power(),
            Ok(Power::Off)
        );
        assert!(matches!(
            c(FenceAction::Status, Exited { code: 1 }).power(),
            Err(FenceFailure::AgentFailed { exit: 1, .. })
        ));
        assert!(matches!(
            c(FenceAction::Off, Exited { code: 2 }).power(),
            Err(FenceFailure::AgentFailed { exit: 2, .. })
        ));
        assert!(matches!(
            c(FenceAction::Status, TimedOut).power(),
            Err(FenceFailure::TimedOut { .. })
        ));
    }
}
