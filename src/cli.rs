//! The command line (clap derive).
//!
//! With no command, habeat behaves as `check`, so the old unit line
//! `habeat --config /etc/hamon/habeat.yml --log /var/log/habeat.log`
//! keeps working.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// habeat watches the other datacenter of a two-datacenter Carbonio
/// installation and, when a part of it is really gone, fails over: promotes
/// the mailbox replicas, switches proxy traffic, recovers the Consul quorum.
///
/// With no COMMAND it runs `check` (one confirmed decision, then exit), as
/// the old Python habeat did from its systemd timer.
#[derive(Debug, Parser)]
#[command(name = "habeat", version, about, long_about = None, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "/etc/habeat/habeat.yml"
    )]
    pub config: PathBuf,

    /// Also append logs to FILE (reopened on SIGHUP, for logrotate).
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Decide and print every action, execute none, change no file. The
    /// read-only calls are made for real (the listing, the Consul leader).
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Machine-readable JSON output where a command prints: stdout is one
    /// JSON document (with --dry-run, the simulation's lines go to stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// `status`: also list the accounts whose replica is healthy;
    /// `--dry-run`: list every account, not only the first 20.
    #[arg(long, short, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

const AFTER_HELP: &str = "\
Exit codes:
  0  done (whatever the verdict)
  1  runtime error
  2  bad configuration or usage
  3  an action failed
  4  refused for safety: an operator command, an automatic action the
     quorum gate refused (this side cannot prove its Consul majority) or
     a fence did not confirm, or a promotion that replicas.at_risk: hold
     left with nothing to promote
  5  another habeat holds the state lock and the wait ran out
     (30s; set HABEAT_LOCK_WAIT, e.g. HABEAT_LOCK_WAIT=5s, to change it)

Examples:
  habeat config check                      validate /etc/habeat/habeat.yml
  habeat --config /etc/hamon/habeat.yml    one check with the old config
  habeat status                            verdicts, locks, why habeat would act
  habeat pause --for 2h                    maintenance window: watch, don't act
  habeat promote --source-mail-host mbox1.example.com
  habeat recover --peer-dc-lost            the peer DC is lost: recover Consul";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Long-running daemon (systemd Type=notify).
    Run,
    /// One confirmed decision and its actions, then exit (timer-driven).
    Check,
    /// Manual promotion of accounts to this DC's replicas.
    Promote(PromoteArgs),
    /// What habeat knows now: verdicts, witnesses, locks, last actions.
    Status(StatusArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Clear the failover locks after an operator has handled a failover
    /// (re-enables automatic action).
    Rearm,
    /// Operator-confirmed raft recovery after a whole peer DC is lost
    /// (the failover then goes on through the quorum gate).
    #[command(after_long_help = RECOVER_HELP)]
    Recover(RecoverArgs),
    /// Give the accounts living on a mailstore without a usable replica a
    /// new one (after a failover: onto the returned primary).
    #[command(after_long_help = REPROTECT_HELP)]
    Reprotect(ReprotectArgs),
    /// Maintenance: keep watching, take no automatic action.
    Pause(PauseArgs),
    /// End a pause (a pause also ends by itself).
    Resume,
    /// The event journal: detections, decisions, actions (newest first).
    #[command(after_long_help = HISTORY_HELP)]
    History(HistoryArgs),
    /// Planned, zero-loss move of accounts to the mailstore --to, in
    /// waves: fail-back after a failover, or emptying a mailstore before
    /// maintenance.
    #[command(after_long_help = SWITCHOVER_HELP)]
    Switchover(SwitchoverArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args, Default)]
pub struct StatusArgs {
    /// Which accounts of the last replica survey `--json` lists in
    /// `replicas.accounts`: `at-risk` leaves the key out (the accounts at
    /// risk are in `replicas.survey.at_risk`, the rest counted), `all`
    /// lists every account (tens of MiB for 100k accounts). The daemon's
    /// `/status` takes the same as `?accounts=all`.
    #[arg(long, value_name = "WHICH", value_enum, default_value_t = AccountsShown::AtRisk)]
    pub accounts: AccountsShown,
}

/// See [`StatusArgs::accounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AccountsShown {
    #[default]
    AtRisk,
    All,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective one (defaults
    /// filled in, token masked). It also looks on this host for the
    /// programs the file names (carbonio.cli, zmprov, argv hooks, the proxy
    /// switch, witnesses.command, consul.service_stop/start) and the
    /// carbonio.run_as user, and refuses what is missing or not executable
    /// by the user that runs it.
    Check {
        /// Check the file alone, not this host: for a build host, CI or a
        /// template, where Carbonio is not installed.
        #[arg(long)]
        file_only: bool,
    },
}

const REPROTECT_HELP: &str = "\
By default the unprotected accounts of this DC's mailstore (read live with
getAccountStatus: no replica that is available and reaches Kafka) get a
replica on the peer DC's mailstore, through
  carbonio <module> setAccountDestination HOST N input_file FILE
in batches, each recorded before it runs: after a crash, run the same
command again; it goes on with the first unfinished batch.

It refuses (exit 4) while no witness sees HOST's appserver Up. An account
that was at risk when it was promoted (`habeat status` names it diverged)
is left out of a re-protection onto its old mailstore, which may hold the
only copy of mail its replica never received: the run names it with its
gap and exits 4. Recover what you need from that mailstore first, then
name it in --discard-diverged.

Examples:
  habeat reprotect --dry-run               the batches and their argv
  habeat reprotect --yes
  habeat reprotect --accounts a@x --discard-diverged a@x
  habeat reprotect --peer                  the peer's accounts, onto this DC";

/// `habeat reprotect`.
#[derive(Debug, Args)]
pub struct ReprotectArgs {
    /// The mailstore that gets the replicas (default: the peer DC's
    /// appserver_vmname).
    #[arg(long, value_name = "HOST", conflicts_with = "peer")]
    pub to: Option<String>,
    /// The other way: the accounts of the peer's mailstore get a replica
    /// on this DC's mailstore.
    #[arg(long)]
    pub peer: bool,
    /// The replicas' priority (lower is preferred by a promotion).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub priority: u32,
    /// Only these accounts (comma separated), instead of every
    /// unprotected one.
    #[arg(
        long,
        value_name = "A@X,B@Y",
        value_delimiter = ',',
        conflicts_with = "input_file"
    )]
    pub accounts: Option<Vec<String>>,
    /// Only the accounts listed in FILE, one per line.
    #[arg(long, value_name = "FILE")]
    pub input_file: Option<PathBuf>,
    /// Include these diverged accounts (comma separated, or `all`),
    /// giving up the copy of their lost tail on the destination.
    #[arg(long, value_name = "A@X,B@Y|all")]
    pub discard_diverged: Option<String>,
    /// Accounts per setAccountDestination call.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub batch_size: usize,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PromoteSource {
    /// Promote every account hosted on this mailstore.
    #[arg(long, value_name = "HOST")]
    pub source_mail_host: Option<String>,
    /// Promote these accounts (comma separated).
    #[arg(long, value_name = "A@X,B@Y", value_delimiter = ',')]
    pub accounts: Option<Vec<String>>,
    /// Promote the accounts listed in FILE, one per line.
    #[arg(long, value_name = "FILE")]
    pub input_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub source: PromoteSource,
    /// Promotion threads (default: local.threads).
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
    /// Promote even while a witness sees the source appserver Up, or its
    /// primary still holds its serving lease (without it, habeat waits
    /// for the lease to lapse: exit 4, the promotion recorded for the
    /// daemon to finish). Risks split brain: only when you know the
    /// source cannot serve mail.
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Promote, write the lock files, flush caches and restart replicas,
    /// but skip the operator's follow-up commands: the proxy switch
    /// `activate` commands (local.proxy_enable_activate) and the
    /// hooks.after_promotion hooks. Each one skipped is named with its
    /// command, to run by hand when ready. Without it, `promote` runs them
    /// as an automatic failover does.
    #[arg(long)]
    pub no_follow_ups: bool,
}

const RECOVER_HELP: &str = "\
With the Consul servers placed two in the primary DC and one in the
secondary, a cut of the inter-DC link and the loss of the whole primary
look the same from the secondary: every peer server Down, no leader.
habeat then recovers raft by itself only when a third vantage point
confirms the loss (an arbiter in witnesses.command, or fencing.consul);
without one, `habeat status` says so and names this command.

recover --peer-dc-lost probes the peer Consul servers once more and
refuses (exit 4) while any witness sees one Up: that is a partition, and
recovering would split Consul. It also refuses while the local Consul
agent still reports a leader: raft has its quorum (a third site's server
keeps it through a partition), and peers.json would drop voters from it.
Otherwise, after your confirmation (or
--yes), it stops service-discover, writes raft/peers.json with this DC's
servers, starts it, waits for a leader and writes the locks, journaled as
yours. The failover (promotion, proxy switch) then goes on at the next
round of the daemon or of `habeat check`, through the quorum gate, without
waiting out retry timers.

When the old primary's Consul servers come back, wipe and rejoin them
(docs/install.md): they must not rejoin with their old raft data.

Examples:
  habeat --dry-run recover --peer-dc-lost   what it would do, changing nothing
  habeat recover --peer-dc-lost             asks before acting
  habeat recover --peer-dc-lost --yes       from a script or runbook";

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The whole peer datacenter is lost (not merely cut off): recover
    /// the Consul raft quorum with this DC's servers.
    #[arg(long, required = true)]
    pub peer_dc_lost: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

const SWITCHOVER_HELP: &str = "\
Both mailstores stay alive. Before the first wave every account must have
a replica on --to that is available and reaches Kafka (else exit 4, the
accounts named, nothing changed); the quorum gate is taken for --from and
--to, and this habeat holds the state lock until the end, so no automatic
action runs meanwhile. Per wave, each step recorded before it runs:
  1. zimbraAccountStatus of each account recorded (zmprov ga), then set
     to maintenance (zmprov ma): users are asked to wait, the MTA defers
     their mail; one zmprov process per wave (batch mode on stdin);
  2. wait until each replica on --to has the source's sequence and itemId
     (one getAccountStatus per read); past --catch-up-timeout the wave's
     statuses are restored and the switchover stops (exit 3), nothing of
     that wave promoted;
  3. promoteAccounts input_file FILE destination --to, then confirm where
     each account lives;
  4. each account's recorded status back, exactly (locked stays locked);
  5. unless --no-reprotect, a replica back on --from (setAccountDestination).
After a kill -9 the next habeat to start restores the statuses it had set;
`habeat switchover --resume` goes on at the first unfinished step. SIGTERM
finishes or rolls back the current wave. When the accounts are home again
on the mailstore a promotion moved them from, that promotion is re-armed
and the proxy switch deactivate commands run, as on a re-arm.

Exit codes: 0 done, 3 a wave failed or timed out (or SIGTERM stopped it),
4 refused (a replica not ready, the quorum gate, an unfinished switchover
without --resume).

Examples:
  habeat --dry-run switchover --to mbox1.example.com    the waves and argv
  habeat switchover --to mbox1.example.com --wave 200 --yes
  habeat switchover --resume --yes";

#[derive(Debug, Args)]
pub struct SwitchoverArgs {
    /// The mailstore the accounts move to.
    #[arg(long, value_name = "HOST", required_unless_present = "resume")]
    pub to: Option<String>,
    /// The mailstore they leave (default: the other configured one).
    #[arg(long, value_name = "HOST")]
    pub from: Option<String>,
    /// Move these accounts (comma separated; default: every account on --from).
    #[arg(
        long,
        value_name = "A@X,B@Y",
        value_delimiter = ',',
        conflicts_with = "input_file"
    )]
    pub accounts: Option<Vec<String>>,
    /// Move the accounts listed in FILE, one per line.
    #[arg(long, value_name = "FILE")]
    pub input_file: Option<PathBuf>,
    /// Accounts per wave.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub wave: usize,
    /// How long a wave in maintenance may wait for its replicas.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub catch_up_timeout: std::time::Duration,
    /// Do not give the moved accounts a replica back on --from.
    #[arg(long)]
    pub no_reprotect: bool,
    /// Go on with the recorded switchover where it stopped.
    #[arg(long)]
    pub resume: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// How long the pause lasts (e.g. 30m, 2h). Not 0 (to end a pause,
    /// `habeat resume`); over 24h is warned about and over 30 days refused:
    /// a forgotten pause silently disables failover.
    #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub duration: std::time::Duration,
}

/// How many events `history` shows without `--limit` or `--since`.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

const HISTORY_HELP: &str = "\
The journal is state_dir/events.jsonl with its rotated files
(events.jsonl.1, the newest, to events.jsonl.<journal.keep>); history reads
them all, from the newest event backwards, and stops at --limit or at the
first event older than --since, in little memory however large they are.

Examples:
  habeat history                              the last 50 events, newest first
  habeat history --since 2h                   every event of the last two hours
  habeat history --since 2026-01-31T08:00:00Z -n 20
                                              at most 20 events since then (UTC)
  habeat history --since 2026-01-31T09:00:00+01:00
                                              the same instant, with an offset
  habeat history --follow                     the last 50 events oldest first,
                                              then each new one as it is written
  habeat history -f -n 0                      only what comes next
  habeat --json history -f | jq .message      one JSON event per line";

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Show at most N events (default: 50, or every event --since allows).
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<usize>,
    /// Only events since WHEN: a duration ago (30m, 2h, 1d) or an RFC 3339
    /// timestamp (2026-01-31T08:00:00Z, or with an offset: +01:00).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<std::time::SystemTime>,
    /// Keep printing events as they are written, like `tail -f`, also
    /// across journal rotations. The events shown first are then printed
    /// oldest first. Stop with Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

impl HistoryArgs {
    /// The most events to show before following (or at all).
    pub fn effective_limit(&self) -> usize {
        match (self.limit, self.since) {
            (Some(n), _) => n,
            (None, Some(_)) => usize::MAX,
            (None, None) => DEFAULT_HISTORY_LIMIT,
        }
    }
}

/// `--since`: a duration ago, or an RFC 3339 timestamp (`Z` or an offset
/// such as `+01:00`; a space instead of `T` and fractions of a second are
/// accepted).
pub fn parse_since(s: &str) -> Result<std::time::SystemTime, String> {
    let s = s.trim();
    let usage = "write a duration ago (30m, 2h, 1d) or an RFC 3339 timestamp such as \
                 2026-01-31T08:00:00Z or 2026-01-31T09:00:00+01:00";
    if let Ok(d) = humantime::parse_duration(s) {
        return std::time::SystemTime::now()
            .checked_sub(d)
            .ok_or_else(|| format!("{s} ago is before 1970; {usage}"));
    }
    // humantime reads UTC (`Z`) only: take a numeric offset off first.
    let split = s
        .len()
        .checked_sub(6)
        .filter(|i| s.is_char_boundary(*i))
        .map(|i| s.split_at(i));
    let (stamp, offset_secs) = match split {
        Some((rest, off))
            if off.is_ascii()
                && (off.starts_with('+') || off.starts_with('-'))
                && off.as_bytes().get(3) == Some(&b':') =>
        {
            let h: u64 = off[1..3].parse().map_err(|_| usage.to_owned())?;
            let m: u64 = off[4..6].parse().map_err(|_| usage.to_owned())?;
            if h > 23 || m > 59 {
                return Err(format!("{off} is not a UTC offset; {usage}"));
            }
            let secs = (h * 3600 + m * 60) as i64;
            (rest, if off.starts_with('-') { -secs } else { secs })
        }
        _ => (s, 0),
    };
    let local = humantime::parse_rfc3339_weak(stamp)
        .map_err(|e| format!("`{s}` is neither a duration nor a timestamp ({e}); {usage}"))?;
    // 09:00+01:00 is 08:00 UTC.
    let shift = std::time::Duration::from_secs(offset_secs.unsigned_abs());
    if offset_secs >= 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
    .ok_or_else(|| format!("`{s}` is out of range; {usage}"))
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30m, 2h, 1h30m)"))
}
