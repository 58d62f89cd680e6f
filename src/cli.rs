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

    /// Decide and print every action, execute none, change no file.
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Machine-readable JSON output where a command prints.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

const AFTER_HELP: &str = "\
Exit codes:
  0  done (whatever the verdict)
  1  runtime error
  2  bad configuration or usage
  3  an action failed
  4  refused for safety: an operator command, or an automatic action
     the quorum gate refused (this side cannot prove its Consul majority)
  5  another habeat holds the state lock and the wait ran out
     (30s; set HABEAT_LOCK_WAIT, e.g. HABEAT_LOCK_WAIT=5s, to change it)

Examples:
  habeat config check                      validate /etc/habeat/habeat.yml
  habeat --config /etc/hamon/habeat.yml    one check with the old config
  habeat status                            verdicts, locks, why habeat would act
  habeat pause --for 2h                    maintenance window: watch, don't act
  habeat promote --source-mail-host mbox1.example.com";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Long-running daemon (systemd Type=notify).
    Run,
    /// One confirmed decision and its actions, then exit (timer-driven).
    Check,
    /// Manual promotion of accounts to this DC's replicas.
    Promote(PromoteArgs),
    /// What habeat knows now: verdicts, witnesses, locks, last actions.
    Status,
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Clear the failover locks after an operator has handled a failover
    /// (re-enables automatic action).
    Rearm,
    /// Maintenance: keep watching, take no automatic action.
    Pause(PauseArgs),
    /// End a pause (a pause also ends by itself).
    Resume,
    /// The event journal: detections, decisions, actions (newest first).
    History(HistoryArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective one (defaults
    /// filled in, token masked).
    Check,
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
    /// Promote even while a witness sees the source appserver Up
    /// (risks split brain: only when you know the source is gone).
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// How long the pause lasts (e.g. 30m, 2h).
    #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub duration: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Show at most N events.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 50)]
    pub limit: usize,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30m, 2h, 1h30m)"))
}
