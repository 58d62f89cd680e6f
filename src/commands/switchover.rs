//! `habeat switchover`: preflight, confirmation, the quorum gate, then the
//! waves ([`crate::switchover::drive`]) with the state lock held for the
//! whole run, and the fail-back's re-arm when the accounts are home.

use super::{Failure, Outcome, lock, usage};
use crate::act::carbonio::Carbonio;
use crate::act::{AccountName, MailHost};
use crate::cli::SwitchoverArgs;
use crate::config::Config;
use crate::engine::Severity;
use crate::exit;
use crate::switchover::drive::{self, Driver, positions};
use crate::switchover::machine::{self, End, Input, Record};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How many accounts a listing names before "and N more".
const SHOWN: usize = 20;

fn refused(m: impl Into<String>) -> Failure {
    Failure {
        code: exit::REFUSED,
        message: m.into(),
    }
}

/// The other configured mailstore than `to`.
fn other_mailstore(cfg: &Config, to: &MailHost) -> Result<MailHost, Failure> {
    let hosts: Vec<MailHost> = cfg
        .dcs
        .values()
        .filter_map(|d| d.appserver_vmname.as_deref())
        .filter_map(|h| MailHost::parse(h).ok())
        .filter(|h| h != to)
        .collect();
    match hosts.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(usage(format!(
            "cannot tell which mailstore the accounts leave (the appserver_vmname of the \
             datacenters other than {to}): name it with --from HOST"
        ))),
    }
}

fn preview(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// `habeat switchover`.
pub async fn switchover(
    cfg: &Config,
    args: &SwitchoverArgs,
    dry_run: bool,
    json_out: bool,
    verbose: bool,
) -> Outcome {
    let cli = Carbonio::new(&cfg.carbonio).map_err(|e| usage(e.to_string()))?;
    if args.wave == 0 {
        return Err(usage("--wave 0: a wave holds at least one account"));
    }
    // Held until the end: the daemon and the timer's `check` take no
    // decision meanwhile (they find the lock busy), another operator
    // command waits or gives up.
    let _lock = lock(cfg, dry_run)?;
    let dir = cfg.local.state_dir.clone();
    let recorded = crate::switchover::load(&dir).map_err(Failure::runtime)?;
    let (mut rec, first) = match (args.resume, recorded) {
        (true, None) => return Err(usage("--resume: no switchover is recorded")),
        (true, Some(r)) if !crate::switchover::unfinished(&r) => {
            return Err(usage(format!(
                "--resume: the last switchover ({} to {}) has ended; start a new one with --to",
                r.from, r.to
            )));
        }
        (true, Some(mut r)) => {
            machine::take_up(&mut r);
            (r, Input::Start)
        }
        (false, Some(r)) if crate::switchover::unfinished(&r) => {
            return Err(refused(format!(
                "a switchover from {} to {} is unfinished ({}): go on with `habeat switchover \
                 --resume`",
                r.from,
                r.to,
                crate::switchover::path(&dir).display()
            )));
        }
        (false, _) => (plan(cfg, &cli, args, verbose).await?, Input::Start),
    };
    if dry_run {
        print_dry_run(&cli, &rec);
        return Ok(exit::OK);
    }
    if !args.yes && !confirm(&rec)? {
        crate::outln!("nothing done");
        return Ok(exit::OK);
    }
    // The quorum gate for both mailstores: no other habeat promotes either
    // while accounts move between them.
    let mut gates = Vec::new();
    if cfg.safety.quorum_gate {
        let client = crate::consul::Client::new(&cfg.consul, std::time::Duration::from_secs(10))
            .map_err(|e| refused(format!("the quorum gate: {e}")))?;
        for host in [&rec.from, &rec.to] {
            match crate::exec::acquire_gate(
                &client,
                host,
                "switchover",
                crate::consul::gate::DEFAULT_TTL,
            )
            .await
            {
                Ok(l) => gates.push(l),
                Err(r) => {
                    for g in gates {
                        let _ = g.release().await;
                    }
                    return Err(refused(format!(
                        "the quorum gate for {host} was not taken: {r}; nothing changed"
                    )));
                }
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let signals = listen(stop.clone());
    let events = crate::sink::EventSink::open(cfg, false);
    rec.pid = Some(std::process::id());
    let p = machine::progress(&rec);
    drive::journal(
        &events,
        &rec,
        if args.resume { "resumed" } else { "started" },
        None,
        Vec::new(),
        Severity::Info,
        format!(
            "switchover {} from {} to {} {}: {} account(s) in {} wave(s) of up to {}; catch-up \
             timeout {}{}",
            rec.id,
            rec.from,
            rec.to,
            if args.resume { "resumed" } else { "started" },
            p.accounts,
            p.waves,
            rec.waves.first().map_or(0, |w| w.accounts.len()),
            humantime::format_duration(std::time::Duration::from_millis(rec.catch_up_timeout_ms)),
            if rec.reprotect {
                String::new()
            } else {
                "; no re-protection".into()
            }
        ),
    );
    let driver = Driver {
        cli,
        events: events.clone(),
        state_dir: dir.clone(),
        stop: stop.clone(),
        poll: std::time::Duration::from_millis(machine::POLL_MS),
    };
    let end = driver.run(&mut rec, first).await;
    signals.abort();
    for g in gates {
        let _ = g.release().await;
    }
    let end = end.map_err(Failure::runtime)?;
    let mut code = match &end {
        End::Done => exit::OK,
        End::Failed { .. } | End::Stopped => exit::ACTION_FAILED,
    };
    if end == End::Done {
        let failed: Vec<&String> = rec
            .waves
            .iter()
            .filter_map(|w| w.reprotect_failure.as_ref())
            .collect();
        if let Some(f) = failed.first() {
            eprintln!(
                "habeat: the accounts moved, but giving them a replica back on {} failed: {f}",
                rec.from
            );
            code = exit::ACTION_FAILED;
        }
    }
    events.close(cfg.hooks.timeout).await;
    report(&rec, &end, json_out);
    if end == End::Done {
        code = code.max(fail_back(cfg, &rec, json_out, verbose).await?);
    }
    Ok(code)
}

/// A new record: the accounts, checked ready on `--to` (else exit 4).
async fn plan(
    cfg: &Config,
    cli: &Carbonio,
    args: &SwitchoverArgs,
    verbose: bool,
) -> Result<Record, Failure> {
    let to_arg = args
        .to
        .as_deref()
        .ok_or_else(|| usage("say where to: --to HOST"))?;
    let to = MailHost::parse(to_arg).map_err(|e| usage(format!("--to {to_arg:?}: {e}")))?;
    let from = match &args.from {
        Some(f) => MailHost::parse(f).map_err(|e| usage(format!("--from {f:?}: {e}")))?,
        None => other_mailstore(cfg, &to)?,
    };
    if from == to {
        return Err(usage(format!("--from and --to are both {to}")));
    }
    let failed = |what: String| Failure {
        code: exit::ACTION_FAILED,
        message: what,
    };
    let accounts: Vec<AccountName> = if let Some(list) = &args.accounts {
        list.iter()
            .map(|a| {
                AccountName::parse(a.trim()).map_err(|e| usage(format!("--accounts: {a:?}: {e}")))
            })
            .collect::<Result<_, _>>()?
    } else if let Some(path) = &args.input_file {
        crate::act::carbonio::read_account_file(path).map_err(|e| usage(e.to_string()))?
    } else {
        cli.get_account_status(&from)
            .await
            .map_err(|e| failed(format!("cannot list the accounts of {from}: {e}")))?
            .into_iter()
            .map(|a| a.account_name)
            .collect()
    };
    let mut accounts = accounts;
    accounts.sort();
    accounts.dedup();
    if accounts.is_empty() {
        return Err(usage(format!("no accounts to move from {from}")));
    }
    // Preflight: one read of every account, nothing changed.
    let read = cli
        .account_positions(&accounts)
        .await
        .map_err(|e| failed(format!("cannot read the accounts to move: {e}")))?;
    let seen = positions(&read, to.as_str());
    let mut not_ready: Vec<String> = Vec::new();
    for a in &accounts {
        let why = match seen.iter().find(|p| p.account == a.as_str()) {
            None => Some("not found".to_owned()),
            Some(p) if p.mail_host != from.as_str() => {
                Some(format!("lives on {}, not on {from}", p.mail_host))
            }
            Some(p) => machine::not_ready(p),
        };
        if let Some(why) = why {
            not_ready.push(format!("{a} ({why})"));
        }
    }
    if !not_ready.is_empty() {
        let shown = if verbose {
            not_ready.join(", ")
        } else {
            preview(&not_ready)
        };
        return Err(refused(format!(
            "{} of {} account(s) have no replica on {to} that is available and reaches Kafka: \
             {shown}; nothing changed. Give them one (`habeat reprotect`, or carbonio {} \
             setAccountDestination {to} 10 accounts ...) and wait for it to catch up, or leave \
             them out (--accounts / --input-file)",
            not_ready.len(),
            accounts.len(),
            cfg.carbonio.module
        )));
    }
    let names: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
    Ok(machine::plan(
        drive::now_ms(),
        from.as_str(),
        to.as_str(),
        &names,
        machine::Settings {
            wave: args.wave,
            catch_up_timeout_ms: u64::try_from(args.catch_up_timeout.as_millis())
                .unwrap_or(u64::MAX),
            reprotect: !args.no_reprotect,
            threads: cfg.local.threads,
        },
    ))
}

fn confirm(rec: &Record) -> Result<bool, Failure> {
    super::ask::on_terminal("switchover")?;
    let p = machine::progress(rec);
    crate::outln!(
        "Move {} account(s) from {} to {} in {} wave(s); each wave's users are in maintenance \
         (logins refused, mail deferred by the MTA) until their replica has caught up and is \
         promoted.",
        p.accounts,
        rec.from,
        rec.to,
        p.waves
    );
    Ok(super::ask::yes("Go ahead?"))
}

fn print_dry_run(cli: &Carbonio, rec: &Record) {
    use crate::act::carbonio::Command;
    let file = std::path::PathBuf::from("<a private copy of the wave's accounts>");
    let (Ok(to), Ok(from)) = (MailHost::parse(&rec.to), MailHost::parse(&rec.from)) else {
        return;
    };
    crate::outln!(
        "dry run: every account has a replica on {} that is available and reaches Kafka",
        rec.to
    );
    for (i, w) in rec.waves.iter().enumerate() {
        crate::outln!(
            "dry run: wave {} of {} ({} account(s)): {}",
            i + 1,
            rec.waves.len(),
            w.accounts.len(),
            preview(&w.accounts)
        );
        let zmprov = cli.display(&Command::ZmprovBatch { lines: 0 });
        crate::outln!(
            "dry run:   would run {zmprov} with on stdin: ga ACCOUNT zimbraAccountStatus (each)"
        );
        crate::outln!(
            "dry run:   would run {zmprov} with on stdin: ma ACCOUNT zimbraAccountStatus maintenance (each)"
        );
        crate::outln!(
            "dry run:   would read until caught up: {}",
            cli.display(&Command::GetAccountStatusOf { path: file.clone() })
        );
        crate::outln!(
            "dry run:   would run: {}",
            cli.display(&Command::PromoteTo {
                path: file.clone(),
                destination: to.clone(),
                threads: rec.threads,
            })
        );
        crate::outln!(
            "dry run:   would run {zmprov} with on stdin: ma ACCOUNT zimbraAccountStatus RECORDED (each)"
        );
        if rec.reprotect {
            crate::outln!(
                "dry run:   would run: {}",
                cli.display(&Command::SetAccountDestination {
                    destination: from.clone(),
                    priority: drive::REPROTECT_PRIORITY,
                    path: file.clone(),
                })
            );
        }
    }
    crate::outln!("dry run: nothing was run that changes anything and nothing was recorded");
}

/// What the run did, in words or JSON.
fn report(rec: &Record, end: &End, json_out: bool) {
    let p = machine::progress(rec);
    if json_out {
        let v = serde_json::json!({
            "switchover": rec,
            "progress": p,
        });
        crate::outln!("{v}");
        return;
    }
    let moved: Vec<String> = rec.waves.iter().flat_map(|w| w.moved.clone()).collect();
    match end {
        End::Done => crate::outln!(
            "switchover done: {} account(s) moved from {} to {}",
            p.moved,
            rec.from,
            rec.to
        ),
        End::Failed { reason } => {
            crate::outln!(
                "switchover FAILED: {reason}; {} account(s) moved to {} ({}), the rest still live \
                 on {} with their statuses restored; fix the cause and run `habeat switchover \
                 --resume`",
                p.moved,
                rec.to,
                preview(&moved),
                rec.from
            );
        }
        End::Stopped => crate::outln!(
            "switchover stopped (SIGTERM) at a safe point: {} account(s) moved to {}, none left \
             in maintenance; `habeat switchover --resume` goes on",
            p.moved,
            rec.to
        ),
    }
}

/// The accounts are home again on a mailstore a promotion moved them
/// from: re-arm that promotion and run the proxy switch's `deactivate`,
/// as the engine's re-arm does.
async fn fail_back(cfg: &Config, rec: &Record, json_out: bool, verbose: bool) -> Outcome {
    let armed = {
        let s = crate::session::Session::open(cfg, false).map_err(Failure::runtime)?;
        crate::engine::promoted_from(&s.state, &rec.to)
    };
    if !armed {
        return Ok(exit::OK);
    }
    let mut s = crate::session::Session::open(cfg, false).map_err(Failure::runtime)?;
    s.verbose = verbose;
    s.operator = Some(super::operator_identity());
    let fed = s
        .feed(crate::engine::Input::Operator(
            crate::engine::OperatorCommand::FailBack {
                mail_host: rec.to.clone(),
            },
        ))
        .await
        .map_err(Failure::runtime)?;
    s.close_hooks().await;
    let code = super::conclude(&fed, json_out);
    if !json_out && code == exit::OK {
        crate::outln!(
            "fail-back: the accounts are home on {}: its promotion is re-armed (automatic \
             failover possible again) and the proxy switch deactivate commands ran",
            rec.to
        );
    }
    Ok(code)
}

/// SIGTERM and SIGINT ask the run to stop at the next safe point.
fn listen(stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!(
                "switchover: stopping at the next safe point (the current wave is finished or \
                 rolled back; no account is left in maintenance)"
            );
            stop.store(true, Ordering::SeqCst);
        }
    })
}
