//! `habeat reprotect`: the accounts of a mailstore without a usable
//! replica get one on the other (SPEC §4 "After a failover"). The command
//! reads the live listing and a fresh probe round; the engine decides the
//! batches and leaves diverged accounts out (`no-seed-over-a-diverged-copy`);
//! the session records each batch before it runs.

use super::{Failure, conclude, lock, open, operator_identity, usage};
use crate::act::carbonio::{AccountStatus, Carbonio};
use crate::act::{AccountName, MailHost};
use crate::cli::ReprotectArgs;
use crate::config::Config;
use crate::engine::{self, Discard, Input, OperatorCommand, ReprotectRequest};
use crate::exit;
use crate::model::Component;
use crate::probe::Prober;

/// Whether an account has a replica that could take over: available and
/// reaching Kafka (a release that does not report Kafka is taken at its
/// `available`).
pub fn protected(a: &AccountStatus) -> bool {
    a.replicas
        .iter()
        .any(|r| r.available == Some(true) && r.can_connect_to_kafka != Some(false))
}

/// `habeat reprotect`.
pub async fn reprotect(
    cfg: &Config,
    args: &ReprotectArgs,
    dry_run: bool,
    json_out: bool,
    verbose: bool,
) -> Result<i32, Failure> {
    let own = cfg
        .own()
        .and_then(|d| d.appserver_vmname.clone())
        .ok_or_else(|| {
            usage(format!(
                "{}.appserver_vmname is not set: habeat does not know this DC's mailstore",
                cfg.local.whoami
            ))
        })?;
    let peer = cfg
        .dcs
        .get(&cfg.local.dc_check)
        .and_then(|d| d.appserver_vmname.clone())
        .ok_or_else(|| {
            usage(format!(
                "{}.appserver_vmname is not set: habeat does not know the peer's mailstore",
                cfg.local.dc_check
            ))
        })?;
    let (source, destination) = if args.peer {
        (peer.clone(), own.clone())
    } else {
        (own.clone(), args.to.clone().unwrap_or_else(|| peer.clone()))
    };
    if destination.eq_ignore_ascii_case(&source) {
        return Err(usage(format!(
            "--to {destination}: the accounts to re-protect live there, and a replica cannot be \
             on its own mailstore; for the peer's accounts use --peer"
        )));
    }
    let judged_peer = destination.eq_ignore_ascii_case(&peer);
    if !judged_peer && !destination.eq_ignore_ascii_case(&own) {
        return Err(usage(format!(
            "--to {destination}: habeat can only tell whether the configured mailstores are up \
             ({peer}, {own}); it will not seed replicas onto a host it cannot judge"
        )));
    }
    MailHost::parse(&destination).map_err(|e| usage(format!("--to {destination:?}: {e}")))?;
    let source_host =
        MailHost::parse(&source).map_err(|e| usage(format!("mailstore {source:?}: {e}")))?;
    let discard = match args.discard_diverged.as_deref().map(str::trim) {
        None | Some("") => Discard::None,
        Some("all") => Discard::All,
        Some(list) => Discard::Named(names(list.split(','), "--discard-diverged")?),
    };
    let cli = Carbonio::new(&cfg.carbonio).map_err(|e| usage(e.to_string()))?;

    let _lock = lock(cfg, dry_run)?;
    let mut s = open(cfg, dry_run)?;
    s.verbose = verbose;
    s.operator = Some(operator_identity());
    let resuming = s.state.protection.unfinished_run().is_some();

    let accounts: Vec<String> = if let Some(list) = &args.accounts {
        names(list.iter().map(String::as_str), "--accounts")?
    } else if let Some(path) = &args.input_file {
        crate::act::carbonio::read_account_file(path)
            .map_err(|e| usage(e.to_string()))?
            .into_iter()
            .map(|n| n.to_string())
            .collect()
    } else if resuming {
        Vec::new()
    } else {
        // The live listing, read-only (a dry run makes it too).
        let listed = cli
            .get_account_status(&source_host)
            .await
            .map_err(|e| Failure {
                code: exit::ACTION_FAILED,
                message: format!("cannot list the accounts of {source_host}: {e}"),
            })?;
        listed
            .iter()
            .filter(|a| !protected(a))
            .map(|a| a.account_name.to_string())
            .collect()
    };
    if accounts.is_empty() && !resuming {
        say(
            json_out,
            &format!("every account on {source_host} has a usable replica: nothing to re-protect"),
        );
        if json_out {
            crate::outln!(
                "{}",
                serde_json::json!({"destination": destination, "batches": [], "left_out": []})
            );
        }
        return Ok(exit::OK);
    }
    let preview = engine::split(
        &s.state.protection,
        &destination,
        &accounts,
        &discard,
        args.batch_size,
    );
    // A fresh look at the destination's appserver, as `promote` takes
    // of its source: seeding needs it Up.
    let evidence = if judged_peer {
        let prober = Prober::new(cfg).map_err(Failure::runtime)?;
        let round = prober.round().await;
        Some(
            round
                .observations
                .into_iter()
                .filter(|o| o.witness.component == Component::Appserver)
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    if !args.yes && !dry_run && !resuming {
        super::ask::on_terminal("reprotect")?;
        let n: usize = preview.batches.iter().map(Vec::len).sum();
        crate::outln!(
            "{n} account(s) get a replica on {destination} (priority {}), in {} batch(es):",
            args.priority,
            preview.batches.len()
        );
        super::ask::name_some(preview.batches.iter().flatten(), n);
        for d in &preview.discarded {
            crate::outln!(
                "  {} is diverged ({}): its copy on {destination} will be overwritten",
                d.account,
                d.gap()
            );
        }
        if !super::ask::yes("Go on?") {
            crate::outln!("nothing done");
            return Ok(exit::OK);
        }
    }
    let request = ReprotectRequest {
        destination: destination.clone(),
        priority: args.priority,
        accounts,
        discard,
        batch: args.batch_size.max(1),
        evidence,
    };
    let fed = s
        .feed(Input::Operator(OperatorCommand::Reprotect { request }))
        .await
        .map_err(Failure::runtime)?;
    s.close_hooks().await;
    let mut code = conclude(&fed, json_out);
    let run = s.state.protection.run.clone();
    let left_out = if fed.refusal.is_some() || resuming {
        Vec::new()
    } else {
        s.state.protection.left_out.clone()
    };
    if code == exit::OK && !left_out.is_empty() {
        code = exit::REFUSED;
    }
    if json_out {
        let batches: Vec<serde_json::Value> = run
            .iter()
            .flat_map(|p| &p.steps)
            .map(|st| {
                let accounts = match &st.step {
                    engine::Step::SetDestination { accounts, .. } => accounts.clone(),
                    _ => Vec::new(),
                };
                serde_json::json!({ "accounts": accounts, "status": st.status })
            })
            .collect();
        let left: Vec<serde_json::Value> = left_out
            .iter()
            .map(|d| {
                serde_json::json!({
                    "account": d.account, "mail_host": d.mail_host,
                    "sequence": d.sequence, "item_id": d.item_id, "gap": d.gap(),
                })
            })
            .collect();
        crate::outln!(
            "{}",
            serde_json::json!({
                "destination": destination,
                "dry_run": dry_run,
                "pipeline": run.as_ref().map(|p| p.id),
                "batches": batches,
                "left_out": left,
                "include_command": (!left_out.is_empty())
                    .then(|| engine::include_command(&left_out, &destination)),
                "refusal": fed.refusal.as_ref().map(|r| r.to_string()),
                "exit": code,
            })
        );
    } else {
        if !left_out.is_empty() {
            eprintln!(
                "habeat: {}",
                engine::left_out_sentence(&left_out, &destination)
            );
        }
        if dry_run {
            crate::outln!(
                "dry run: nothing was run that changes anything and nothing was recorded"
            );
        } else if let Some(p) = run.filter(|_| fed.refusal.is_none()) {
            let done = p
                .steps
                .iter()
                .filter(|s| s.status == engine::StepStatus::Done)
                .count();
            crate::outln!(
                "re-protection (pipeline {}): {done} of {} batch(es) done; the new replicas \
                 initialise and catch up by themselves (`habeat status`)",
                p.id,
                p.steps.len()
            );
        }
    }
    Ok(code)
}

fn say(json_out: bool, m: &str) {
    if json_out {
        eprintln!("habeat: {m}");
    } else {
        crate::outln!("{m}");
    }
}

/// Validated account names.
fn names<'a>(list: impl Iterator<Item = &'a str>, flag: &str) -> Result<Vec<String>, Failure> {
    list.map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            AccountName::parse(a)
                .map(|n| n.to_string())
                .map_err(|e| usage(format!("{flag}: {a:?}: {e}")))
        })
        .collect()
}
