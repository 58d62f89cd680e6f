//! The operator commands (README, "Commands"), each a thin driver of
//! [`Session`]: they differ only in what they feed the engine.

use crate::cli::{HistoryArgs, PauseArgs, PromoteArgs, RecoverArgs};

use crate::config::Config;
use crate::engine::{self, Input, OperatorCommand, PromoteTarget};
use crate::exit;
use crate::model::Component;
use crate::probe::Prober;
use crate::session::{Fed, Session, now};
use crate::state::{Journal, StateLock};
use crate::view::StatusView;
use std::io::Write;
use std::time::Duration;

mod ask;
mod reprotect;
mod status;
mod switchover;
use crate::view::human_time;
pub use reprotect::reprotect;
use status::print_verdicts;
pub use status::status;
pub use switchover::switchover;

/// How long a command waits for another habeat holding the state lock: a
/// timer-driven `check` should outlast a short `status`/`rearm` of an
/// operator, but not pile up behind a daemon forever.
pub const OPERATOR_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Environment variable overriding [`OPERATOR_LOCK_WAIT`] (a humantime duration such
/// as `5s` or `2m`), for scripts that would rather fail fast, and for tests.
pub const LOCK_WAIT_ENV: &str = "HABEAT_LOCK_WAIT";

/// The state-lock wait: [`LOCK_WAIT_ENV`] when set, else [`OPERATOR_LOCK_WAIT`].
/// A value that is not a duration is a usage error (exit 2), not a silent
/// fallback: the administrator asked for something habeat cannot honour.
fn lock_wait() -> Result<Duration, Failure> {
    match std::env::var(LOCK_WAIT_ENV) {
        Ok(v) => humantime::parse_duration(v.trim()).map_err(|e| Failure {
            code: exit::USAGE,
            message: format!(
                "{LOCK_WAIT_ENV}={v:?} is not a duration ({e}); use e.g. 5s, 2m or unset it"
            ),
        }),
        Err(_) => Ok(OPERATOR_LOCK_WAIT),
    }
}

/// A command's failure: the sentence to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    fn runtime(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: exit::RUNTIME,
            message: message.to_string(),
        }
    }
}

/// Bad input from the operator (exit 2), saying what to do instead.
fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE,
        message: message.into(),
    }
}

type Outcome = Result<i32, Failure>;

/// Take the state lock (one actor at a time), unless `--dry-run`, which
/// changes nothing and so needs none.
fn lock(cfg: &Config, dry_run: bool) -> Result<Option<StateLock>, Failure> {
    if dry_run {
        return Ok(None);
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.local.state_dir)
        .map_err(|e| {
            Failure::runtime(format!(
                "cannot create the state directory {}: {e}",
                cfg.local.state_dir.display()
            ))
        })?;
    StateLock::acquire(&cfg.local.state_dir, lock_wait()?)
        .map(Some)
        .map_err(|e| Failure {
            code: e.exit_code(),
            message: e.to_string(),
        })
}

fn open(cfg: &Config, dry_run: bool) -> Result<Session, Failure> {
    Session::open(cfg, dry_run).map_err(Failure::runtime)
}

/// Print what a feed did and turn it into an exit code.
fn conclude(fed: &Fed, json_out: bool) -> i32 {
    if !json_out {
        for (action, result) in &fed.actions {
            if let Some(r) = result {
                crate::outln!("{}: {}", action.kind.describe(), describe_result(r));
            }
        }
        if let Some(r) = &fed.refusal {
            eprintln!("habeat: {r}");
        }
    }
    // A failed action outranks a refused gate: something was done and
    // went wrong. A refused gate is a refusal for safety (docs/decisions.md,
    // "Exit codes"): a timer unit then shows up in `systemctl --failed`.
    if fed.refusal.is_some() {
        exit::REFUSED
    } else if fed.failed() {
        exit::ACTION_FAILED
    } else if fed.gate_refused() {
        exit::REFUSED
    } else {
        exit::OK
    }
}

fn describe_result(r: &engine::OutcomeResult) -> String {
    use engine::OutcomeResult::*;
    match r {
        Succeeded { detail } => format!("done ({detail})"),
        Listed { accounts, .. } => format!("{} account(s)", accounts.len()),
        Operations { promotions } if promotions.is_empty() => "no promotion running".into(),
        Operations { promotions } => format!("still running: {}", promotions.join("; ")),
        Failed { reason } => format!("FAILED: {reason}"),
        TimedOut { reason } => format!("TIMED OUT: {reason}"),
        GateRefused { refusal } => format!("REFUSED by the quorum gate: {refusal}"),
        PeerLeaseWait { wait } => format!("WAITING: {wait}"),
        Fenced { calls } => format!("confirmed OFF ({} agent call(s))", calls.len()),
        FenceUnconfirmed { failure, .. } => format!("NOT CONFIRMED OFF: {failure}"),
    }
}

/// `habeat check`: probe in rounds until every witness has settled, decide
/// once, act, exit.
pub async fn check(cfg: &Config, dry_run: bool, json_out: bool, verbose: bool) -> Outcome {
    let prober = Prober::new(cfg).map_err(Failure::runtime)?;
    let _lock = lock(cfg, dry_run)?;
    let mut s = open(cfg, dry_run)?;
    s.verbose = verbose;
    let mut all = s.feed_lock_files().await.map_err(Failure::runtime)?;
    // fall (or rise) rounds settle every witness; a little more for the
    // witnesses that answered Unknown at first.
    let max_rounds = cfg.detection.longest_streak().saturating_add(2);
    for i in 0..max_rounds {
        if i > 0 {
            tokio::time::sleep(cfg.detection.interval).await;
        }
        let round = prober.round().await;
        let fed = s
            .feed(Input::Round(round))
            .await
            .map_err(Failure::runtime)?;
        // The dry run shows the plan of the round that led to its first
        // step, or of the last round when it took none.
        if all.actions.is_empty() {
            all.plan = fed.plan;
        }
        all.actions.extend(fed.actions);
        all.events.extend(fed.events);
        if !engine::wants_more_rounds(&s.state, &s.ecfg, crate::session::clock()) {
            break;
        }
    }
    s.release_gates().await;
    // Beside the decision, never inside a round: the peer is Up (or the
    // survey is not due) when nothing was done above.
    if all.actions.is_empty() {
        s.survey_if_due().await.map_err(Failure::runtime)?;
        s.survey_own_if_due().await.map_err(Failure::runtime)?;
    }
    s.close_hooks().await;
    let mut code = conclude(&all, json_out);
    // A promotion that the hold left with nothing to promote was decided
    // in this run: mail for those accounts stays down until the operator
    // acts, which is a refusal for safety like a refused gate (exit 4).
    let held_everything = all.events.iter().any(|e| {
        matches!(e.kind, engine::EventKind::PipelineFinished { pipeline }
        if s.state.roles.values().any(|r| {
            r.failover.as_ref().is_some_and(|p| p.id == pipeline && p.held_everything())
        }))
    });
    if code == exit::OK && held_everything {
        code = exit::REFUSED;
    }
    // A refused gate goes on refusing while its wait lasts and the peer
    // is still Down: a run that only waits for the retry is refused for
    // safety as much as the run that was refused, and a dry run says the
    // same (docs/decisions.md, "Exit codes of habeat check").
    if code == exit::OK && crate::view::head::refused_while_down(&s.state) {
        code = exit::REFUSED;
    }
    if json_out {
        // The dry run's `why` is the plan asked before its simulated steps,
        // as in the text output, not the simulated state's.
        let clock = crate::session::clock();
        let plan = match all.plan.take().filter(|_| dry_run) {
            Some(plan) => plan,
            None => engine::plan(&s.state, &s.ecfg, clock),
        };
        let view = StatusView::read(&s.state, cfg, plan, clock.wall);
        crate::outln!("{}", view.to_json());
    } else {
        print_verdicts(&s.state, cfg);
        if dry_run {
            // The plan asked before the simulated steps: it speaks of the
            // records as they are, not of the ones the simulation made.
            for r in all.plan.iter().flat_map(|p| &p.roles) {
                crate::outln!("dry run: {}: {}", r.role, r.text());
            }
            crate::outln!(
                "dry run: nothing was run that changes anything and nothing was recorded or \
                 written (no state, journal, lock or log file){}",
                if all.actions.is_empty() {
                    "; a real run would do nothing now".to_owned()
                } else {
                    format!(
                        "; a real run would take the {} step(s) above and record them",
                        all.actions.len()
                    )
                }
            );
        } else {
            for r in engine::plan(&s.state, &s.ecfg, crate::session::clock()).roles {
                crate::outln!("{}: {}", r.role, r.text());
            }
        }
    }
    Ok(code)
}

/// `habeat rearm`, `pause`, `resume`: an operator command to the engine.
pub async fn operator(
    cfg: &Config,
    cmd: OperatorCommand,
    dry_run: bool,
    json_out: bool,
    verbose: bool,
) -> Outcome {
    let _lock = lock(cfg, dry_run)?;
    let mut s = open(cfg, dry_run)?;
    s.verbose = verbose;
    s.operator = Some(operator_identity());
    // Nothing to undo is said so, not "resumed"/"re-armed" (exit 0 all
    // the same: the wanted end holds).
    let was_paused = s.state.paused_at(now());
    let before = s.state.clone();
    let (is_resume, is_rearm, is_promote) = (
        matches!(cmd, OperatorCommand::Resume),
        matches!(cmd, OperatorCommand::Rearm),
        matches!(cmd, OperatorCommand::Promote { .. }),
    );
    let label = match &cmd {
        OperatorCommand::Rearm => "re-armed: automatic action is enabled again",
        OperatorCommand::Pause { .. } => {
            "paused: habeat keeps watching and takes no automatic action"
        }
        OperatorCommand::Resume => "resumed: automatic action is enabled again",
        OperatorCommand::Promote { .. } => "promotion recorded",
        OperatorCommand::Reprotect { .. } => "re-protection done",
        OperatorCommand::FailBack { .. } => "fail-back: the promotion re-armed",
        OperatorCommand::RecoverPeerDcLost { .. } => {
            "raft recovered: the failover goes on through the quorum gate at the next round \
             (of the daemon, or of `habeat check`)"
        }
    };
    let fed = s
        .feed(Input::Operator(cmd))
        .await
        .map_err(Failure::runtime)?;
    s.close_hooks().await;
    let mut after = s.state.clone();
    after.last_operator.clone_from(&before.last_operator);
    let label = if is_resume && !was_paused {
        "nothing to resume: not paused"
    } else if is_rearm && after == before {
        "nothing to re-arm: no failover lock, promotion record or safe hold was set"
    } else {
        label
    };
    let mut code = conclude(&fed, json_out);
    // A promotion waiting for the primary's serving lease has not
    // happened: the command did not do what it was asked, for safety.
    let lease_wait = fed.actions.iter().find_map(|(_, r)| match r {
        Some(engine::OutcomeResult::PeerLeaseWait { wait }) => Some(wait),
        _ => None,
    });
    if let (true, exit::OK, Some(wait)) = (is_promote, code, lease_wait) {
        // The text output has just said why (the step's WAITING line);
        // with --json stdout is the document, so stderr says it.
        let why = if json_out {
            wait.to_string()
        } else {
            "it waits for the primary's serving lease (above)".to_owned()
        };
        eprintln!(
            "habeat: nothing promoted yet: {why}. The promotion is recorded: the daemon (or the \
             next `habeat check`) promotes once that lease lapses, and `habeat status` says what \
             it waits for."
        );
        code = exit::REFUSED;
    }
    if code == exit::OK && !json_out && dry_run {
        crate::outln!("dry run: nothing was recorded or changed; the real run would end: {label}");
    } else if code == exit::OK && !json_out {
        crate::outln!("{label}");
        if let Some(p) = s.state.pause.as_ref().filter(|_| s.state.paused_at(now())) {
            crate::outln!("pause ends at {}", human_time(p.until));
        }
    }
    if json_out {
        // The text output says why on stderr; the JSON must too.
        let view = StatusView::planned(&s.state, cfg, crate::session::clock())
            .with_refusal(fed.refusal.as_ref());
        crate::outln!("{}", view.to_json());
    }
    Ok(code)
}

/// `habeat pause --for D`.
/// A pause longer than this is warned about (`pause --help` says so).
pub const PAUSE_WARNED_OVER: Duration = Duration::from_secs(24 * 3600);
/// A pause longer than this is refused.
pub const PAUSE_REFUSED_OVER: Duration = Duration::from_secs(30 * 24 * 3600);

/// A long duration as people say it: `31d`, `25h`, else humantime's.
fn days(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3_600) {
        format!("{}h", s / 3_600)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Who gives an operator command: the user behind `sudo` (`SUDO_USER`),
/// else the user this process runs as, and the terminal on stdin
/// (`alice on /dev/pts/3`, `root on no terminal`).
pub fn operator_identity() -> String {
    let user = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()));
    use std::io::IsTerminal;
    let tty = if std::io::stdin().is_terminal() {
        std::fs::read_link("/proc/self/fd/0")
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "a terminal".into())
    } else {
        "no terminal".into()
    };
    format!("{user} on {tty}")
}

pub async fn pause(
    cfg: &Config,
    args: &PauseArgs,
    dry_run: bool,
    json_out: bool,
    verbose: bool,
) -> Outcome {
    if args.duration.is_zero() {
        return Err(Failure {
            code: exit::USAGE,
            message: "pause --for 0s would end at once; to resume, use habeat resume".into(),
        });
    }
    if args.duration > PAUSE_REFUSED_OVER {
        return Err(Failure {
            code: exit::USAGE,
            message: format!(
                "pause --for {}: longer than {} is refused (a forgotten pause disables \
                 failover for good); pause for less and pause again when it ends",
                days(args.duration),
                days(PAUSE_REFUSED_OVER)
            ),
        });
    }
    if args.duration > PAUSE_WARNED_OVER {
        tracing::warn!(
            "pause --for {}: no automatic failover for more than {}; `habeat resume` ends it \
             earlier",
            days(args.duration),
            days(PAUSE_WARNED_OVER)
        );
    }
    let until = now().plus(args.duration);
    let reason = format!(
        "paused by an operator for {}",
        humantime::format_duration(args.duration)
    );
    operator(
        cfg,
        OperatorCommand::Pause { until, reason },
        dry_run,
        json_out,
        verbose,
    )
    .await
}

/// `habeat promote`: a manual promotion, recorded like an automatic one.
pub async fn promote(
    cfg: &Config,
    args: &PromoteArgs,
    dry_run: bool,
    json_out: bool,
    verbose: bool,
) -> Outcome {
    let exec =
        crate::act::carbonio::Carbonio::new(&cfg.carbonio).map_err(|e| usage(e.to_string()))?;
    let (target, shown) = if let Some(host) = &args.source.source_mail_host {
        let h = crate::act::MailHost::parse(host)
            .map_err(|e| usage(format!("--source-mail-host {host:?}: {e}")))?;
        let names = exec
            .each_account(&h, |a| Some(a.account_name.to_string()))
            .await
            .map_err(|e| Failure {
                code: exit::ACTION_FAILED,
                message: format!("cannot list the accounts of {h}: {e}"),
            })?;
        (PromoteTarget::SourceMailHost(h.to_string()), names)
    } else {
        let names: Vec<String> = if let Some(list) = &args.source.accounts {
            list.iter()
                .map(|a| {
                    crate::act::AccountName::parse(a.trim())
                        .map(|n| n.to_string())
                        .map_err(|e| usage(format!("--accounts: {a:?}: {e}")))
                })
                .collect::<Result<_, _>>()?
        } else if let Some(path) = &args.source.input_file {
            crate::act::carbonio::read_account_file(path)
                .map_err(|e| usage(e.to_string()))?
                .into_iter()
                .map(|n| n.to_string())
                .collect()
        } else {
            return Err(usage(
                "say what to promote: --source-mail-host, --accounts or --input-file",
            ));
        };
        (PromoteTarget::Accounts(names.clone()), names)
    };
    if shown.is_empty() {
        crate::outln!("no accounts to promote");
        return Ok(exit::OK);
    }
    // Fresh evidence about the source appserver: the engine refuses while
    // any witness sees it Up, unless --force.
    let prober = Prober::new(cfg).map_err(Failure::runtime)?;
    let round = prober.round().await;
    let evidence: Vec<_> = round
        .observations
        .into_iter()
        .filter(|o| o.witness.component == Component::Appserver)
        .collect();
    if !args.yes && !dry_run {
        ask::on_terminal("promote")?;
        crate::outln!("Accounts to promote to this datacenter ({}):", shown.len());
        ask::name_some(&shown, shown.len());
        for o in &evidence {
            crate::outln!("  witness {}: {:?} ({})", o.witness, o.vote, o.reason);
        }
        if !ask::yes("Promote them?") {
            crate::outln!("nothing done");
            return Ok(exit::OK);
        }
    }
    let host = match &target {
        PromoteTarget::SourceMailHost(h) => h.clone(),
        PromoteTarget::Accounts(_) => "the source mailstore".to_owned(),
    };
    let cmd = OperatorCommand::Promote {
        target,
        accounts: shown,
        threads: args.threads,
        force: args.force,
        evidence,
        follow_ups: !args.no_follow_ups,
    };
    let code = operator(cfg, cmd, dry_run, json_out, verbose).await?;
    if code == exit::OK {
        promote_notes(cfg, &host, args.no_follow_ups, json_out);
    }
    if code == exit::REFUSED && !args.force {
        eprintln!("habeat: if you are certain the source mailstore is gone, repeat with --force");
    }
    Ok(code)
}

/// What a manual promotion did not do, said once after it: it has no
/// fence step, and with `--no-follow-ups` which commands it skipped. On
/// stderr with `--json`, so stdout stays one JSON document.
fn promote_notes(cfg: &Config, host: &str, no_follow_ups: bool, json_out: bool) {
    let mut notes = vec![format!(
        "no fence step: `habeat promote` does not power off {host} (its fence device may be in \
         the datacenter that was lost); make sure it cannot come back serving mail, or fence it \
         by hand"
    )];
    if no_follow_ups {
        let skipped = engine::follow_up_commands(&engine::EngineConfig::from(cfg));
        if skipped.is_empty() {
            notes.push(
                "--no-follow-ups: no proxy switch activate command or after_promotion hook is \
                 configured, none skipped"
                    .into(),
            );
        }
        for step in skipped {
            notes.push(format!(
                "skipped (--no-follow-ups), run it by hand when ready: {}",
                step.name()
            ));
        }
    }
    for n in notes {
        if json_out {
            eprintln!("habeat: {n}");
        } else {
            crate::outln!("{n}");
        }
    }
}

/// `habeat recover --peer-dc-lost`: the operator confirms the peer DC is
/// lost; raft recovery now, as the operator's. Like `promote`, it takes
/// a fresh probe round as evidence (the engine refuses while any witness
/// sees a peer Consul server Up) and asks on a terminal unless `--yes`.
pub async fn recover(
    cfg: &Config,
    args: &RecoverArgs,
    dry_run: bool,
    json_out: bool,
    verbose: bool,
) -> Outcome {
    if !args.peer_dc_lost {
        return Err(usage("say what was lost: --peer-dc-lost"));
    }
    if !cfg.local.roles.contains(&crate::model::Role::Consulserver) {
        return Err(usage(format!(
            "recover --peer-dc-lost recovers raft on a Consul server, and this node has no \
             consulserver role (local.roles): run it on {}. Habeat here fails over by itself \
             once Consul has a leader again",
            crate::view::head::recover_host(cfg)
        )));
    }
    let prober = Prober::new(cfg).map_err(Failure::runtime)?;
    let round = prober.round().await;
    let local_leader = round.local_leader;
    let evidence: Vec<_> = round
        .observations
        .into_iter()
        .filter(|o| o.witness.component == Component::Consul)
        .collect();
    let up = evidence.iter().any(|o| o.vote == crate::model::Vote::Up);
    if !args.yes && !dry_run && !up && local_leader != Some(true) && !evidence.is_empty() {
        ask::on_terminal("recover")?;
        crate::outln!(
            "The peer Consul servers ({}) as seen now:",
            cfg.dcs
                .get(&cfg.local.dc_check)
                .map(|d| d.consul_vmnames.join(", "))
                .unwrap_or_default()
        );
        for o in &evidence {
            crate::outln!("  witness {}: {:?} ({})", o.witness, o.vote, o.reason);
        }
        crate::outln!(
            "This stops service-discover, writes {}/raft/peers.json with this datacenter's \
             servers and starts it again. If the peer datacenter is only cut off, this splits \
             Consul and mail.",
            cfg.consul.service_discover_data.display()
        );
        if !ask::yes("Is the peer datacenter lost? Recover raft now?") {
            crate::outln!("nothing done");
            return Ok(exit::OK);
        }
    }
    operator(
        cfg,
        OperatorCommand::RecoverPeerDcLost {
            evidence,
            local_leader,
        },
        dry_run,
        json_out,
        verbose,
    )
    .await
}

/// How often `history --follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// `habeat history`: the journal, newest first, or (`--follow`) oldest
/// first and then each event as it is written. Every file of the journal
/// is read, backwards and in bounded memory; reading stops at the limit or
/// at the first event older than `--since`.
pub fn history(cfg: &Config, args: &HistoryArgs, json_out: bool) -> Outcome {
    crate::state::check_state_dir(&cfg.local.state_dir).map_err(Failure::runtime)?;
    let journal = Journal::of(cfg);
    let snap = journal.snapshot().map_err(Failure::runtime)?;
    let limit = args.effective_limit();
    let since = args.since.map(engine::UnixMillis::from_system_time);
    let mut out = Printer::new(json_out);
    // Newest first, as far as the limit and --since allow.
    let mut back = snap.newest_first();
    let mut earliest = None;
    let mut shown = 0;
    while shown < limit {
        let Some(found) = back.next() else {
            break;
        };
        let found = found.map_err(Failure::runtime)?;
        if since.is_some_and(|s| found.event.at < s) {
            break;
        }
        shown += 1;
        if args.follow {
            earliest = Some((found.file, found.offset));
        } else if let Err(e) = out.event(&found.event) {
            return stopped(e);
        }
    }
    let skipped = back.skipped;
    if !args.follow {
        warn_skipped(skipped);
        return out.flush().map_or_else(stopped, |()| Ok(exit::OK));
    }
    // Follow: the same events oldest first, then what comes.
    let (file, offset) = earliest.unwrap_or_else(|| snap.newest_end());
    let end = match snap.forward_from(file, offset, |e| out.event(&e)) {
        Ok(end) => end,
        Err(e) => return stopped(e),
    };
    warn_skipped(skipped);
    let mut follower = snap.follow(end);
    loop {
        if let Err(e) = out.flush() {
            return stopped(e);
        }
        std::thread::sleep(FOLLOW_POLL);
        for e in follower.poll().map_err(Failure::runtime)? {
            if let Err(e) = out.event(&e) {
                return stopped(e);
            }
        }
        warn_skipped(std::mem::take(&mut follower.skipped));
    }
}

/// Output could not be written (or the journal read): a reader that went
/// away (`history | head`) ends the command quietly, anything else is an
/// error.
fn stopped(e: std::io::Error) -> Outcome {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(exit::OK)
    } else {
        Err(Failure::runtime(format!("habeat history: {e}")))
    }
}

fn warn_skipped(n: usize) {
    if n > 0 {
        eprintln!("habeat: {n} unreadable journal line(s) skipped");
    }
}

/// Events to stdout, as text or JSON lines. A write error (the reader of
/// a pipe went away) ends the command quietly rather than in a panic.
struct Printer {
    json: bool,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Printer {
    fn new(json: bool) -> Printer {
        Printer {
            json,
            out: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    fn event(&mut self, e: &engine::Event) -> std::io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, e)?;
            writeln!(self.out)
        } else {
            writeln!(
                self.out,
                "{}  {:?}  {}",
                human_time(e.at),
                e.severity,
                e.message
            )
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
