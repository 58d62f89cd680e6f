//! `--dry-run`: a simulation, not a guess (SPEC §1). The read-only calls
//! the real run would make are made for real (the account listing with its
//! at-risk analysis, `core getAllOperations`, the Consul leader and who
//! holds the gate key); every command that would change something is
//! printed with its exact argv and not run, and where its outcome decides
//! what follows, the output says that it cannot be known and what is
//! assumed. Nothing is written (`dry-run-changes-nothing`): no state, no
//! journal, no lock, no temporary account file.

use super::{Executor, accounts, cli_error, failed};
use crate::act::carbonio::{Command, account_batches};
use crate::act::process::display_argv;
use crate::act::{AccountName, MailHost};
use crate::engine::{Action, ActionKind, GateRefusal, Origin, OutcomeResult, PromoteTarget};
use std::sync::atomic::{AtomicBool, Ordering};

/// How many account names a dry run prints without `--verbose`.
pub const PREVIEW: usize = 20;

/// The lines a dry run prints start with this.
const P: &str = "dry run:";

/// With `--json`, stdout is one JSON document for scripts: the
/// simulation's lines go to stderr instead.
static ON_STDERR: AtomicBool = AtomicBool::new(false);

/// Send the simulation's lines to stderr (`--dry-run --json`).
pub fn report_on_stderr() {
    ON_STDERR.store(true, Ordering::Relaxed);
}

/// A line of the simulation, on stdout (or stderr, see [`report_on_stderr`]).
macro_rules! say {
    ($($t:tt)*) => {
        if ON_STDERR.load(Ordering::Relaxed) {
            eprintln!($($t)*)
        } else {
            crate::outln!($($t)*)
        }
    };
}

/// Assumed outcome of a command that is not run.
fn assumed(what: &str) -> OutcomeResult {
    say!("{P}   its outcome cannot be known without running it; assumed: {what}");
    OutcomeResult::Succeeded {
        detail: "dry run: not executed".into(),
    }
}

fn names_preview(names: &[String], verbose: bool) -> String {
    let shown = if verbose {
        names.len()
    } else {
        names.len().min(PREVIEW)
    };
    let mut s = names[..shown].join(", ");
    if shown < names.len() {
        s.push_str(&format!(
            ", … and {} more (--verbose lists all)",
            names.len() - shown
        ));
    }
    s
}

impl Executor {
    /// Simulate `action`: see the module doc.
    pub async fn simulate(&mut self, action: &Action, verbose: bool) -> OutcomeResult {
        match &action.kind {
            ActionKind::ListAccounts { source_mail_host } => {
                let host = match MailHost::parse(source_mail_host) {
                    Ok(h) => h,
                    Err(e) => return failed(format!("source host {source_mail_host:?}: {e}")),
                };
                let cli = match self.cli() {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let cmd = Command::GetAccountStatus {
                    mail_host: host.clone(),
                };
                say!("{P} running the read-only {}", cli.display(&cmd));
                let list = match cli.get_account_status(&host).await {
                    Ok(l) => l,
                    Err(e) => {
                        say!("{P}   it failed, as the real run would: {e}");
                        return cli_error(e);
                    }
                };
                let out = self.listed(&list);
                if let OutcomeResult::Listed { accounts, at_risk } = &out {
                    say!(
                        "{P}   {} replicated account(s) on {host}: {}",
                        accounts.len(),
                        names_preview(accounts, verbose)
                    );
                    if at_risk.is_empty() {
                        say!(
                            "{P}   no account's replica is at risk (this listing against the last survey)"
                        );
                    } else {
                        say!(
                            "{P}   {} account(s) at risk (this listing against the last survey):",
                            at_risk.len()
                        );
                        for r in at_risk {
                            say!("{P}     {}: {r}", r.account);
                        }
                    }
                }
                out
            }
            ActionKind::ListOperations { .. } => {
                let cli = match self.cli() {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                say!(
                    "{P} running the read-only {}",
                    cli.display(&Command::GetAllOperations)
                );
                match cli.get_all_operations().await {
                    Ok(ops) => {
                        let promotions = super::promotions_running(&ops);
                        say!(
                            "{P}   {} operation(s), {} promotion(s) running",
                            ops.len(),
                            promotions.len()
                        );
                        OutcomeResult::Operations { promotions }
                    }
                    Err(e) => cli_error(e),
                }
            }
            ActionKind::AcquireQuorumGate { key } => self.simulate_gate(key).await,
            ActionKind::ReleaseQuorumGate { key } => {
                say!("{P} would release the Consul quorum gate {key} (and destroy its session)");
                OutcomeResult::Succeeded {
                    detail: "dry run: not executed".into(),
                }
            }
            ActionKind::PromoteAccounts {
                target, threads, ..
            } => {
                let cli = match self.cli() {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let cmd = match target {
                    PromoteTarget::SourceMailHost(h) => match MailHost::parse(h) {
                        Ok(source) => Command::PromoteSourceHost {
                            source,
                            threads: *threads,
                        },
                        Err(e) => return failed(format!("source host {h:?}: {e}")),
                    },
                    PromoteTarget::Accounts(a) => {
                        let names = match accounts(a) {
                            Ok(n) => n,
                            Err(r) => return r,
                        };
                        say!(
                            "{P} the accounts to promote ({}): {}",
                            a.len(),
                            names_preview(a, verbose)
                        );
                        if action.origin == Origin::Automatic
                            || crate::act::carbonio::ACCOUNT_LIST_ARG_MAX
                                < a.iter().map(|x| x.len() + 1).sum::<usize>()
                        {
                            Command::PromoteInputFile {
                                path: "<a private copy of those accounts, one per line>".into(),
                                threads: Some(*threads),
                            }
                        } else {
                            Command::PromoteAccounts {
                                accounts: names,
                                threads: Some(*threads),
                            }
                        }
                    }
                };
                say!(
                    "{P} would {}: {}",
                    action.kind.describe(),
                    cli.display(&cmd)
                );
                assumed("the promotion succeeds (the real run then records it)")
            }
            ActionKind::FlushCache {
                accounts: names,
                all_servers,
            } => {
                let cli = match self.cli() {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let shown = if verbose {
                    names.len()
                } else {
                    names.len().min(PREVIEW)
                };
                say!("{P} would flush the cache of {} account(s):", names.len());
                for n in &names[..shown] {
                    if let Ok(account) = AccountName::parse(n) {
                        let cmd = Command::FlushCache {
                            account,
                            all_servers: *all_servers,
                        };
                        say!("{P}   {}", cli.display(&cmd));
                    }
                }
                if shown < names.len() {
                    say!(
                        "{P}   … and {} more (--verbose lists all)",
                        names.len() - shown
                    );
                }
                assumed("every flush succeeds")
            }
            ActionKind::PauseReplicas { accounts: names }
            | ActionKind::RestartReplicas { accounts: names } => {
                let cli = match self.cli() {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let pause = matches!(action.kind, ActionKind::PauseReplicas { .. });
                let valid: Vec<AccountName> = names
                    .iter()
                    .filter_map(|n| AccountName::parse(n).ok())
                    .collect();
                for batch in account_batches(&valid) {
                    let accounts = batch.to_vec();
                    let cmd = if pause {
                        Command::PauseReplicas { accounts }
                    } else {
                        Command::RestartReplicas { accounts }
                    };
                    say!("{P} would run: {}", cli.display(&cmd));
                }
                assumed("it succeeds")
            }
            ActionKind::StopHaModule | ActionKind::StartHaModule => {
                let cli = match self.cli() {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let cmd = if matches!(action.kind, ActionKind::StopHaModule) {
                    Command::StopModule
                } else {
                    Command::StartModule
                };
                say!("{P} would run: {}", cli.display(&cmd));
                assumed("it succeeds")
            }
            ActionKind::RunCommand { purpose, argv, .. } => {
                let words: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
                say!(
                    "{P} would run {} (timeout {}): {}",
                    purpose.as_str(),
                    humantime::format_duration(self.cfg.hooks.timeout),
                    display_argv(&words)
                );
                assumed("it exits 0")
            }
            ActionKind::WriteLocks { locks, .. } => {
                for l in locks {
                    say!(
                        "{P} would write {}",
                        crate::state::lock_path(&self.cfg.local, action.role, *l).display()
                    );
                }
                OutcomeResult::Succeeded {
                    detail: "dry run: not executed".into(),
                }
            }
            ActionKind::RemoveLocks { locks } => {
                for l in locks {
                    say!(
                        "{P} would remove {}",
                        crate::state::lock_path(&self.cfg.local, action.role, *l).display()
                    );
                }
                OutcomeResult::Succeeded {
                    detail: "dry run: not executed".into(),
                }
            }
            ActionKind::Fence {
                component,
                action: fence_action,
                plugs,
            } => self.simulate_fence(*component, *fence_action, plugs).await,
            ActionKind::RaftRecovery { servers } => {
                say!("{P} would {}", action.kind.describe());
                self.simulate_raft(servers).await
            }
            ActionKind::ConfirmLeader => {
                say!("{P} would {}", action.kind.describe());
                assumed("it succeeds")
            }
        }
    }

    /// Raft recovery: the servers as the real run finds them (the
    /// recorded configuration, or `node-id` and this node's address read
    /// for real) and the `peers.json` it would write, printed whole; the
    /// stop and start are only named.
    async fn simulate_raft(&mut self, servers: &[crate::model::RaftServer]) -> OutcomeResult {
        let recovery = crate::act::raft::RaftRecovery::new(&self.cfg.consul);
        let peers = match self.raft_peers(&recovery, servers).await {
            Ok(p) => p,
            Err(reason) => {
                say!("{P}   the real run would fail here: {reason}");
                return failed(reason);
            }
        };
        let text = match crate::act::raft::render_peers_json(&peers) {
            Ok(t) => t,
            Err(e) => {
                say!("{P}   the real run would fail here: {e}");
                return failed(e.to_string());
            }
        };
        let c = &self.cfg.consul;
        say!(
            "{P} would stop service-discover: {}",
            c.service_stop.join(" ")
        );
        say!(
            "{P} would write {} ({} server(s)):",
            recovery.data_dir.join("raft/peers.json").display(),
            peers.len()
        );
        for line in text.lines() {
            say!("{P}   {line}");
        }
        say!(
            "{P} would start service-discover: {}",
            c.service_start.join(" ")
        );
        assumed("service-discover restarts and a leader is elected")
    }

    /// A fence step: the agent's `status` only (it changes nothing),
    /// printed; a node ON with `action: off` is taken as powered off for
    /// the rest of the run (the real run would do it), one ON with
    /// `action: status`, or an agent failure, stops it there as the real
    /// run would stop.
    async fn simulate_fence(
        &self,
        component: crate::model::Component,
        action: crate::model::FenceAction,
        plugs: &[String],
    ) -> OutcomeResult {
        use crate::act::fence::{self, Power};
        use crate::model::{FenceAction, FenceFailure};
        let Some(t) = self.cfg.fencing.target(component) else {
            return OutcomeResult::FenceUnconfirmed {
                failure: FenceFailure::NotRun {
                    reason: format!("fencing.{component} is not configured"),
                },
                calls: Vec::new(),
            };
        };
        let mut calls = Vec::new();
        for plug in plugs {
            say!("{P} asking the fence agent of fencing.{component} for the status of {plug}");
            let call = fence::status(t, plug, self.cfg.fencing.timeout).await;
            let power = call.power();
            calls.push(call);
            let failure = match power {
                Ok(Power::Off) => {
                    say!("{P}   fencing.{component}: {plug} is OFF (status)");
                    continue;
                }
                Ok(Power::On) if action == FenceAction::Off => {
                    say!(
                        "{P}   fencing.{component}: {plug} is ON; would power it off, then ask \
                         status again"
                    );
                    say!("{P}   its outcome cannot be known without running it; assumed: OFF");
                    continue;
                }
                Ok(Power::On) => FenceFailure::On { plug: plug.clone() },
                Err(f) => f,
            };
            say!("{P}   fencing.{component}: no confirmed OFF: {failure}");
            return OutcomeResult::FenceUnconfirmed { failure, calls };
        }
        OutcomeResult::Fenced { calls }
    }

    /// The gate, read and not taken: the Consul leader this side sees, and
    /// who holds the key now. No leader is the refusal the real run would
    /// meet; a key held by another session too. A free key may still be
    /// taken by another habeat before the real run: that is said.
    async fn simulate_gate(&mut self, key: &str) -> OutcomeResult {
        let client = match self.consul.as_ref() {
            Ok(c) => c,
            Err(e) => {
                return OutcomeResult::GateRefused {
                    refusal: GateRefusal::NoClient { detail: e.clone() },
                };
            }
        };
        say!(
            "{P} reading the Consul leader ({}/v1/status/leader) and the gate key {key}",
            client.base_url()
        );
        match client.leader().await {
            Ok(Some(leader)) => say!("{P}   Consul leader: {leader}"),
            Ok(None) => {
                say!("{P}   no Consul leader on this side: the real run would be refused here");
                return OutcomeResult::GateRefused {
                    refusal: GateRefusal::NoQuorum {
                        detail: "no leader (dry run)".into(),
                    },
                };
            }
            Err(e) => {
                say!("{P}   Consul did not answer ({e}): the real run would be refused here");
                return OutcomeResult::GateRefused {
                    refusal: GateRefusal::NoQuorum {
                        detail: e.to_string(),
                    },
                };
            }
        }
        match client.kv_get(key).await {
            Ok(Some(kv)) if kv.session.is_some() => {
                let holder = String::from_utf8_lossy(&kv.value).into_owned();
                say!(
                    "{P}   {key} is held by session {} ({holder}): the real run would be refused, \
                     unless that holder is a dead habeat of this node",
                    kv.session.as_deref().unwrap_or_default()
                );
                OutcomeResult::GateRefused {
                    refusal: GateRefusal::HeldByAnother {
                        host: key.to_owned(),
                        holder: Some(holder),
                    },
                }
            }
            Ok(_) => {
                say!(
                    "{P}   {key} is free; would create a Consul session and acquire it \
                     (PUT /v1/session/create, PUT /v1/kv/{key}?acquire=<session>)"
                );
                assumed("acquired (another habeat may take it first)")
            }
            Err(e) => {
                say!("{P}   cannot read {key} ({e}): the real run would be refused here");
                OutcomeResult::GateRefused {
                    refusal: GateRefusal::Consul {
                        detail: e.to_string(),
                    },
                }
            }
        }
    }
}
