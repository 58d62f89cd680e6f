//! The carbonio / zmprov driver: one typed function per command habeat
//! runs, so that no other module ever builds a carbonio argv by hand.
//!
//! Why so strict: the output of `getAccountStatus` decides whether habeat
//! promotes a mail host. The Zextras CLI is known to print "Unable to
//! communicate with server" and still exit 0, and to mix log lines with its
//! JSON. An output that is not exactly one JSON object with a `response`
//! is therefore an error with the reason spelled out, never an empty (or
//! partial) account list. Every account name and host the CLI reports is
//! validated ([`AccountName`], [`MailHost`]) before habeat passes it on.
//!
//! Every command runs through [`crate::act::process::run`]: an argv (no
//! shell), as `carbonio.run_as` with a login-like environment, with
//! `command_timeout` (`promote_timeout` for promotions) after which the
//! whole process group is killed, and bounded captured output.

pub use super::names::{AccountName, MailHost, NameError};

use super::process::{self, RunAs, Spec, Status};
use crate::config;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The marker the Zextras CLI prints (often with exit 0) when the mailbox
/// service does not answer.
pub const UNREACHABLE_MARKER: &str = "Unable to communicate with server";

/// PATH given to the CLIs: what a login shell of the `zextras` user has.
pub const LOGIN_PATH: &str =
    "/opt/zextras/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How much of a command's output goes into error messages and reports.
pub const TAIL_BYTES: usize = 2000;

/// Cap on the captured output of JSON commands: `getAccountStatus` lists
/// every account of a mail host (about half a KiB each).
pub const JSON_OUTPUT_LIMIT: usize = 64 * 1024 * 1024;

/// The longest comma-separated account list habeat puts into one argv
/// word. Linux refuses to start a program any of whose arguments is longer
/// than `MAX_ARG_STRLEN` (128 KiB) with E2BIG, so an installation with
/// thousands of accounts could never pause, restart or promote them in one
/// call. A quarter of that limit leaves room for the rest of the argv and
/// the environment. Longer lists are split into several
/// `pauseReplicas`/`restartReplicas` calls, and a manual promotion goes
/// through `promoteAccounts input_file` instead (one promotion stays one
/// call).
pub const ACCOUNT_LIST_ARG_MAX: usize = 32 * 1024;

/// One invocation of a Zextras CLI, as data: what `--dry-run` prints and
/// what the journal records, before (or instead of) running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// `carbonio --json <module> getAccountStatus mailHost <host>`
    GetAccountStatus {
        /// The mailstore whose accounts are listed.
        mail_host: MailHost,
    },
    /// `carbonio --sync <module> promoteAccounts source_mail_host <host> threads <n>`
    PromoteSourceHost {
        /// The lost mailstore.
        source: MailHost,
        /// `local.threads`.
        threads: u32,
    },
    /// `carbonio --sync <module> promoteAccounts accounts a,b [threads <n>]`
    PromoteAccounts {
        /// Never empty.
        accounts: Vec<AccountName>,
        /// `--threads`, when given.
        threads: Option<u32>,
    },
    /// `carbonio --sync <module> promoteAccounts input_file <path> [threads <n>]`
    PromoteInputFile {
        /// The file the CLI reads (habeat's private, validated copy).
        path: PathBuf,
        /// `--threads`, when given.
        threads: Option<u32>,
    },
    /// `carbonio <module> pauseReplicas accounts a,b`
    PauseReplicas {
        /// Never empty.
        accounts: Vec<AccountName>,
    },
    /// `carbonio <module> restartReplicas accounts a,b`
    RestartReplicas {
        /// Never empty.
        accounts: Vec<AccountName>,
    },
    /// `carbonio <module> doStopService module`
    StopModule,
    /// `carbonio <module> doStartService module`
    StartModule,
    /// `carbonio --json core getAllOperations`
    GetAllOperations,
    /// `zmprov fc [-a] account <name>`
    FlushCache {
        /// The account whose cache is flushed.
        account: AccountName,
        /// `-a`: flush on every application server, not only this one.
        all_servers: bool,
    },
}

impl Command {
    /// Promotions get `promote_timeout`; everything else `command_timeout`.
    pub fn is_promotion(&self) -> bool {
        matches!(
            self,
            Command::PromoteSourceHost { .. }
                | Command::PromoteAccounts { .. }
                | Command::PromoteInputFile { .. }
        )
    }

    fn expects_json(&self) -> bool {
        matches!(
            self,
            Command::GetAccountStatus { .. } | Command::GetAllOperations
        )
    }
}

/// One account as `getAccountStatus` reports it (fields of the User Mail
/// Replica documentation; the ones habeat does not use are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountStatus {
    /// `accountId` (a UUID), kept as reported.
    pub account_id: String,
    /// `accountName`, validated.
    pub account_name: AccountName,
    /// `accountMailHost`: always the host that was asked about.
    pub account_mail_host: MailHost,
    /// Replication paused on the source.
    pub paused: bool,
    /// Where the account is replicated (`replicas`).
    pub replicas: Vec<Replica>,
}

/// One replica of an account. Informational only: nothing here is passed
/// to a command, so fields are kept as reported (absent ones are `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replica {
    /// The mailstore holding the replica.
    pub destination: Option<String>,
    /// Whether the replica can be promoted.
    pub available: Option<bool>,
    /// Lower is preferred by promotion.
    pub priority: Option<i64>,
}

/// One running operation of `core getAllOperations` (whose exact fields
/// vary between releases: the whole object is kept in `raw`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// `id` / `operationId`, when present.
    pub id: Option<String>,
    /// `name` / `operationName` / `description`, when present.
    pub name: Option<String>,
    /// The whole entry as printed.
    pub raw: Value,
}

/// What a successful non-JSON command left for the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandReport {
    /// The argv as an operator would type it.
    pub command: String,
    /// How long it ran.
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub duration: Duration,
    /// The last [`TAIL_BYTES`] of stdout+stderr.
    pub tail: String,
}

/// Why a carbonio or zmprov command did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CarbonioError {
    /// `carbonio.module` is not a word.
    #[error(
        "carbonio.module {0:?} is not a module name (expected letters and digits, e.g. MailReplica, or ha before the rename)"
    )]
    BadModule(String),
    /// A command that needs accounts got none.
    #[error("{command}: refusing to run with an empty account list")]
    NoAccounts { command: String },
    /// The `run_as` user is missing, or habeat may not switch to it.
    #[error("{command}: cannot run as user {user:?}: {reason}")]
    RunAs {
        command: String,
        user: String,
        reason: String,
    },
    /// The program could not be started (missing, not executable).
    #[error("{command}: {source}")]
    Start {
        command: String,
        #[source]
        source: process::Error,
    },
    /// Ran over its timeout; its process group was killed.
    #[error(
        "{command} did not finish within {after} and was killed with its process group; check the mailbox service and carbonio.{which}. Last output: {tail:?}"
    )]
    TimedOut {
        command: String,
        after: String,
        which: &'static str,
        tail: String,
    },
    /// The CLI printed "Unable to communicate with server".
    #[error(
        "{command}: the CLI could not reach the mailbox service (\"{UNREACHABLE_MARKER}\"); check that carbonio runs on this node. Output: {tail:?}"
    )]
    Unreachable { command: String, tail: String },
    /// Non-zero exit, or killed by a signal.
    #[error("{command} failed ({status}). Output: {tail:?}")]
    Failed {
        command: String,
        status: String,
        tail: String,
    },
    /// Exit 0, but the output is not what the command must print.
    #[error("{command} printed output habeat cannot trust: {reason}. Output: {tail:?}")]
    BadOutput {
        command: String,
        reason: String,
        tail: String,
    },
    /// A manual promotion's account file is unreadable or invalid.
    #[error("account list {path}: {reason}")]
    InputFile { path: PathBuf, reason: String },
}

impl CarbonioError {
    /// The same error, saying that it ended call `k` of `n` and how many
    /// accounts the calls before it handled.
    fn in_call(mut self, k: usize, n: usize, done: usize) -> CarbonioError {
        let note = format!(
            " (call {k} of {n}; the {done} account(s) of the calls before it were done, the rest were not attempted)"
        );
        match &mut self {
            CarbonioError::NoAccounts { command }
            | CarbonioError::RunAs { command, .. }
            | CarbonioError::Start { command, .. }
            | CarbonioError::TimedOut { command, .. }
            | CarbonioError::Unreachable { command, .. }
            | CarbonioError::Failed { command, .. }
            | CarbonioError::BadOutput { command, .. } => command.push_str(&note),
            CarbonioError::BadModule(_) | CarbonioError::InputFile { .. } => {}
        }
        self
    }

    /// A short stable tag for the journal and metrics: `timeout`,
    /// `unreachable`, `exit`, `bad_output`, `start`, `config`, `input`.
    pub fn kind(&self) -> &'static str {
        match self {
            CarbonioError::BadModule(_) | CarbonioError::RunAs { .. } => "config",
            CarbonioError::NoAccounts { .. } | CarbonioError::InputFile { .. } => "input",
            CarbonioError::Start { .. } => "start",
            CarbonioError::TimedOut { .. } => "timeout",
            CarbonioError::Unreachable { .. } => "unreachable",
            CarbonioError::Failed { .. } => "exit",
            CarbonioError::BadOutput { .. } => "bad_output",
        }
    }
}

/// The driver. Cheap to clone; holds no connection.
#[derive(Debug, Clone)]
pub struct Carbonio {
    cli: PathBuf,
    zmprov: PathBuf,
    module: String,
    run_as: Option<String>,
    command_timeout: Duration,
    promote_timeout: Duration,
    extra_env: BTreeMap<OsString, OsString>,
}

impl Carbonio {
    /// A driver for the `carbonio:` section. Fails only on a module name
    /// that could not be a carbonio module. The `run_as` user is looked up
    /// at each command, so a node without it (a consulserver-only node)
    /// can still build the driver.
    pub fn new(cfg: &config::Carbonio) -> Result<Carbonio, CarbonioError> {
        let m = &cfg.module;
        if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(CarbonioError::BadModule(m.clone()));
        }
        Ok(Carbonio {
            cli: cfg.cli.clone(),
            zmprov: cfg.zmprov.clone(),
            module: m.clone(),
            run_as: cfg.run_as.clone().filter(|u| !u.is_empty()),
            command_timeout: cfg.command_timeout,
            promote_timeout: cfg.promote_timeout,
            extra_env: BTreeMap::new(),
        })
    }

    /// Add an environment variable to every command. The CLIs otherwise get
    /// only a login-like environment (never habeat's own, which may hold
    /// `CONSUL_HTTP_TOKEN`); tests use this to point the fake CLI at its
    /// state file.
    pub fn with_env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Carbonio {
        self.extra_env.insert(k.into(), v.into());
        self
    }

    /// The argv of a command, exactly as it would run.
    pub fn argv(&self, cmd: &Command) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let carbonio = |a: &mut Vec<OsString>, flag: Option<&str>, module: &str| {
            a.push(self.cli.clone().into());
            if let Some(f) = flag {
                a.push(f.into());
            }
            a.push(module.into());
        };
        let m = self.module.as_str();
        let push =
            |a: &mut Vec<OsString>, words: &[&str]| a.extend(words.iter().map(OsString::from));
        match cmd {
            Command::GetAccountStatus { mail_host } => {
                carbonio(&mut a, Some("--json"), m);
                push(
                    &mut a,
                    &["getAccountStatus", "mailHost", mail_host.as_str()],
                );
            }
            Command::PromoteSourceHost { source, threads } => {
                carbonio(&mut a, Some("--sync"), m);
                push(
                    &mut a,
                    &["promoteAccounts", "source_mail_host", source.as_str()],
                );
                push(&mut a, &["threads", &threads.to_string()]);
            }
            Command::PromoteAccounts { accounts, threads } => {
                carbonio(&mut a, Some("--sync"), m);
                push(&mut a, &["promoteAccounts", "accounts", &join(accounts)]);
                if let Some(t) = threads {
                    push(&mut a, &["threads", &t.to_string()]);
                }
            }
            Command::PromoteInputFile { path, threads } => {
                carbonio(&mut a, Some("--sync"), m);
                push(&mut a, &["promoteAccounts", "input_file"]);
                a.push(path.clone().into());
                if let Some(t) = threads {
                    push(&mut a, &["threads", &t.to_string()]);
                }
            }
            Command::PauseReplicas { accounts } => {
                carbonio(&mut a, None, m);
                push(&mut a, &["pauseReplicas", "accounts", &join(accounts)]);
            }
            Command::RestartReplicas { accounts } => {
                carbonio(&mut a, None, m);
                push(&mut a, &["restartReplicas", "accounts", &join(accounts)]);
            }
            Command::StopModule => {
                carbonio(&mut a, None, m);
                push(&mut a, &["doStopService", "module"]);
            }
            Command::StartModule => {
                carbonio(&mut a, None, m);
                push(&mut a, &["doStartService", "module"]);
            }
            Command::GetAllOperations => {
                carbonio(&mut a, Some("--json"), "core");
                push(&mut a, &["getAllOperations"]);
            }
            Command::FlushCache {
                account,
                all_servers,
            } => {
                a.push(self.zmprov.clone().into());
                a.push("fc".into());
                if *all_servers {
                    a.push("-a".into());
                }
                push(&mut a, &["account", account.as_str()]);
            }
        }
        a
    }

    /// The command as an operator would type it (for `--dry-run` and logs).
    pub fn display(&self, cmd: &Command) -> String {
        process::display_argv(&self.argv(cmd))
    }

    /// The full process specification: argv, user, environment, timeout.
    pub fn spec(&self, cmd: &Command) -> Result<Spec, CarbonioError> {
        let argv = self.argv(cmd);
        let (timeout, _) = self.timeout_for(cmd);
        let mut spec = Spec::new(argv, timeout);
        spec.clear_env = true;
        spec.watch_for = vec![UNREACHABLE_MARKER.to_owned()];
        if cmd.expects_json() {
            spec.output_limit = JSON_OUTPUT_LIMIT;
        }
        let (user, name, home) = self.user(cmd)?;
        spec.user = user;
        spec.env.insert("HOME".into(), home.clone().into());
        spec.env.insert("USER".into(), name.clone().into());
        spec.env.insert("LOGNAME".into(), name.into());
        spec.env.insert("PATH".into(), LOGIN_PATH.into());
        spec.env.insert("LANG".into(), "C.UTF-8".into());
        spec.env.insert("SHELL".into(), "/bin/bash".into());
        spec.env.extend(self.extra_env.clone());
        spec.cwd = Some(if home.is_dir() {
            home
        } else {
            PathBuf::from("/")
        });
        Ok(spec)
    }

    fn timeout_for(&self, cmd: &Command) -> (Duration, &'static str) {
        if cmd.is_promotion() {
            (self.promote_timeout, "promote_timeout")
        } else {
            (self.command_timeout, "command_timeout")
        }
    }

    /// Who the command runs as: `(user to switch to, name, home)`. No
    /// switch when `run_as` is empty or already the current user.
    fn user(&self, cmd: &Command) -> Result<(Option<RunAs>, String, PathBuf), CarbonioError> {
        let euid = nix::unistd::geteuid();
        let Some(name) = &self.run_as else {
            return Ok(match nix::unistd::User::from_uid(euid) {
                Ok(Some(u)) => (None, u.name, u.dir),
                _ => (None, euid.to_string(), PathBuf::from("/")),
            });
        };
        let err = |reason: String| CarbonioError::RunAs {
            command: self.display(cmd),
            user: name.clone(),
            reason,
        };
        let ru = RunAs::lookup(name).map_err(|e| err(e.to_string()))?;
        if ru.uid == euid.as_raw() {
            return Ok((None, ru.name, ru.home));
        }
        if !euid.is_root() {
            return Err(err(format!(
                "habeat runs as uid {euid} and only root may switch users; run habeat as root, or set carbonio.run_as to \"\" to run the CLI as habeat's own user"
            )));
        }
        Ok((Some(ru.clone()), ru.name, ru.home))
    }

    /// Run a command and turn its ending into a typed result: the stdout of
    /// a command that exited 0 in time and did not report the server
    /// unreachable (JSON commands: also not truncated).
    async fn exec(&self, cmd: &Command) -> Result<(Vec<u8>, CommandReport), CarbonioError> {
        let spec = self.spec(cmd)?;
        let command = spec.display();
        tracing::info!(%command, "running");
        let out = process::run(&spec)
            .await
            .map_err(|source| CarbonioError::Start {
                command: command.clone(),
                source,
            })?;
        let tail = out.tail(TAIL_BYTES);
        // Looked for in the whole output as it was read, not in what the
        // bounded buffer kept: a promotion that prints megabytes of
        // progress and then this sentence has failed.
        let unreachable = out.seen.iter().any(|s| s == UNREACHABLE_MARKER);
        match out.status {
            Status::TimedOut => {
                let (after, which) = self.timeout_for(cmd);
                return Err(CarbonioError::TimedOut {
                    command,
                    after: humantime::format_duration(after).to_string(),
                    which,
                    tail,
                });
            }
            _ if unreachable => {
                return Err(CarbonioError::Unreachable { command, tail });
            }
            Status::Exited(0) => {}
            Status::Exited(c) => {
                return Err(CarbonioError::Failed {
                    command,
                    status: format!("exit code {c}"),
                    tail,
                });
            }
            Status::Signaled(s) => {
                return Err(CarbonioError::Failed {
                    command,
                    status: format!("killed by signal {s}"),
                    tail,
                });
            }
        }
        if let Some(holders) = &out.pipe_held {
            let reason = pipe_held_reason(holders, out.stdout.len() + out.stderr.len());
            if cmd.expects_json() {
                // The JSON decides what habeat does: one that may lack its
                // end is not an answer.
                return Err(CarbonioError::BadOutput {
                    command,
                    reason,
                    tail,
                });
            }
            // The command itself ended and everything it printed was read;
            // only what the escaped process may print later is missing.
            tracing::warn!(%command, "{reason}; judging the command by its exit code and what it printed");
        }
        if !out.stdout.complete() && cmd.expects_json() {
            return Err(CarbonioError::BadOutput {
                command,
                reason: format!(
                    "the output exceeded {JSON_OUTPUT_LIMIT} bytes ({} were printed)",
                    out.stdout.len()
                ),
                tail,
            });
        }
        tracing::info!(%command, duration = ?out.duration, "done");
        Ok((
            out.stdout.head,
            CommandReport {
                command,
                duration: out.duration,
                tail,
            },
        ))
    }

    async fn exec_text(&self, cmd: Command) -> Result<CommandReport, CarbonioError> {
        Ok(self.exec(&cmd).await?.1)
    }

    async fn exec_json(&self, cmd: &Command) -> Result<(Value, CommandReport), CarbonioError> {
        let (stdout, report) = self.exec(cmd).await?;
        match parse_response(&stdout) {
            Ok(v) => Ok((v, report)),
            Err(reason) => Err(CarbonioError::BadOutput {
                command: report.command,
                reason,
                tail: report.tail,
            }),
        }
    }

    /// The replicated accounts whose mailbox is on `host` (what promotion
    /// of that host would move). An empty list means the CLI answered
    /// properly and there are none; every failure is an error.
    pub async fn get_account_status(
        &self,
        host: &MailHost,
    ) -> Result<Vec<AccountStatus>, CarbonioError> {
        let cmd = Command::GetAccountStatus {
            mail_host: host.clone(),
        };
        let (stdout, report) = self.exec(&cmd).await?;
        parse_account_listing(&stdout, host).map_err(|reason| CarbonioError::BadOutput {
            command: report.command,
            reason,
            tail: report.tail,
        })
    }

    /// Promote every account of `source` (the automatic failover), waiting
    /// for the CLI to finish (`--sync`), within `promote_timeout`.
    pub async fn promote_source_host(
        &self,
        source: &MailHost,
        threads: u32,
    ) -> Result<CommandReport, CarbonioError> {
        self.exec_text(Command::PromoteSourceHost {
            source: source.clone(),
            threads,
        })
        .await
    }

    /// Promote the given accounts (manual promotion).
    pub async fn promote_accounts(
        &self,
        accounts: &[AccountName],
        threads: Option<u32>,
    ) -> Result<CommandReport, CarbonioError> {
        let cmd = Command::PromoteAccounts {
            accounts: accounts.to_vec(),
            threads,
        };
        self.non_empty(accounts, &cmd)?;
        if joined_len(accounts) <= ACCOUNT_LIST_ARG_MAX {
            return self.exec_text(cmd).await;
        }
        // Too long for one argv word: the CLI reads the list from a private
        // copy instead, still in a single promotion.
        let (user, _, _) = self.user(&cmd)?;
        let copy = AccountListCopy::create(accounts, user.as_ref()).map_err(|reason| {
            CarbonioError::InputFile {
                path: std::env::temp_dir(),
                reason,
            }
        })?;
        tracing::info!(
            accounts = accounts.len(),
            "the account list is too long for one argument: promoting through input_file"
        );
        self.exec_text(Command::PromoteInputFile {
            path: copy.file.clone(),
            threads,
        })
        .await
    }

    /// Promote the accounts listed in a file (manual promotion). The file is
    /// read and every line validated first ([`read_account_file`]), so a
    /// bad line stops the promotion before the CLI runs. The CLI then reads
    /// a private copy holding exactly the validated accounts (one per line,
    /// owned by `run_as`, removed afterwards): it never sees comments or
    /// blank lines, a later edit of the file, or a file `run_as` may not
    /// read. Returns the accounts, for the promotion record.
    pub async fn promote_input_file(
        &self,
        path: &Path,
        threads: Option<u32>,
    ) -> Result<(Vec<AccountName>, CommandReport), CarbonioError> {
        let accounts = read_account_file(path)?;
        let probe = Command::PromoteInputFile {
            path: path.to_owned(),
            threads,
        };
        let (user, _, _) = self.user(&probe)?;
        let copy = AccountListCopy::create(&accounts, user.as_ref()).map_err(|reason| {
            CarbonioError::InputFile {
                path: path.to_owned(),
                reason,
            }
        })?;
        let cmd = Command::PromoteInputFile {
            path: copy.file.clone(),
            threads,
        };
        let report = self.exec_text(cmd).await?;
        Ok((accounts, report))
    }

    /// Pause replication of these accounts: one call, or several in order
    /// when the list is longer than [`ACCOUNT_LIST_ARG_MAX`] (stopping at
    /// the first that fails).
    pub async fn pause_replicas(
        &self,
        accounts: &[AccountName],
    ) -> Result<CommandReport, CarbonioError> {
        self.in_batches(accounts, |accounts| Command::PauseReplicas { accounts })
            .await
    }

    /// Restart replication of these accounts, in batches like
    /// [`Carbonio::pause_replicas`].
    pub async fn restart_replicas(
        &self,
        accounts: &[AccountName],
    ) -> Result<CommandReport, CarbonioError> {
        self.in_batches(accounts, |accounts| Command::RestartReplicas { accounts })
            .await
    }

    /// Run `make(batch)` for each batch of [`account_batches`], in order,
    /// stopping at the first failure (whose error says which call it was
    /// and how many accounts the calls before it handled).
    async fn in_batches(
        &self,
        accounts: &[AccountName],
        make: impl Fn(Vec<AccountName>) -> Command,
    ) -> Result<CommandReport, CarbonioError> {
        if accounts.is_empty() {
            return Err(CarbonioError::NoAccounts {
                command: self.display(&make(Vec::new())),
            });
        }
        let batches = account_batches(accounts);
        let n = batches.len();
        let mut done = 0;
        let mut duration = Duration::ZERO;
        let mut tail = String::new();
        let mut last = None;
        for (i, batch) in batches.into_iter().enumerate() {
            let report = self
                .exec_text(make(batch.to_vec()))
                .await
                .map_err(|e| if n > 1 { e.in_call(i + 1, n, done) } else { e })?;
            done += batch.len();
            duration += report.duration;
            tail.push_str(&report.tail);
            last = Some(report);
        }
        let Some(last) = last else {
            // Unreachable: a non-empty list has at least one batch.
            return Err(CarbonioError::NoAccounts {
                command: self.display(&make(Vec::new())),
            });
        };
        if n == 1 {
            return Ok(last);
        }
        // One line for the journal, not the thousands of names again.
        let mut argv = self.argv(&make(Vec::new()));
        argv.pop();
        argv.push(format!("<{} accounts in {n} calls>", accounts.len()).into());
        Ok(CommandReport {
            command: process::display_argv(&argv),
            duration,
            tail: last_bytes(&tail, TAIL_BYTES),
        })
    }

    /// Stop the replica module on this node (primary-DC branch with
    /// `disable_ha_module`).
    pub async fn stop_module(&self) -> Result<CommandReport, CarbonioError> {
        self.exec_text(Command::StopModule).await
    }

    /// Start the replica module again (peer back, `rearm`).
    pub async fn start_module(&self) -> Result<CommandReport, CarbonioError> {
        self.exec_text(Command::StartModule).await
    }

    /// The operations the mailbox service is running (to see whether a
    /// promotion is still in progress after a crash).
    pub async fn get_all_operations(&self) -> Result<Vec<Operation>, CarbonioError> {
        let cmd = Command::GetAllOperations;
        let (response, report) = self.exec_json(&cmd).await?;
        parse_operations(&response).map_err(|reason| CarbonioError::BadOutput {
            command: report.command,
            reason,
            tail: report.tail,
        })
    }

    /// `zmprov fc [-a] account <name>`: flush the account's cache after a
    /// promotion, on this server or (`all_servers`) on every one.
    pub async fn flush_cache(
        &self,
        account: &AccountName,
        all_servers: bool,
    ) -> Result<CommandReport, CarbonioError> {
        self.exec_text(Command::FlushCache {
            account: account.clone(),
            all_servers,
        })
        .await
    }

    fn non_empty(&self, accounts: &[AccountName], cmd: &Command) -> Result<(), CarbonioError> {
        if accounts.is_empty() {
            return Err(CarbonioError::NoAccounts {
                command: self.display(cmd),
            });
        }
        Ok(())
    }
}

/// A private temporary copy of a validated account list, for
/// `promoteAccounts input_file`: a fresh 0700 directory owned by the user
/// the CLI runs as, removed on drop.
struct AccountListCopy {
    dir: PathBuf,
    file: PathBuf,
}

impl AccountListCopy {
    fn create(accounts: &[AccountName], owner: Option<&RunAs>) -> Result<AccountListCopy, String> {
        let template = std::env::temp_dir().join("habeat-promote-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template).map_err(|e| {
            format!(
                "cannot create a temporary copy in {}: {e}",
                template.display()
            )
        })?;
        let copy = AccountListCopy {
            file: dir.join("accounts"),
            dir,
        };
        let mut body = join_lines(accounts);
        body.push('\n');
        std::fs::write(&copy.file, body)
            .map_err(|e| format!("cannot write {}: {e}", copy.file.display()))?;
        if let Some(u) = owner {
            for p in [&copy.dir, &copy.file] {
                std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid))
                    .map_err(|e| format!("cannot give {} to {}: {e}", p.display(), u.name))?;
            }
        }
        Ok(copy)
    }
}

impl Drop for AccountListCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn join_lines(accounts: &[AccountName]) -> String {
    accounts
        .iter()
        .map(AccountName::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The length of the comma-separated list [`join`] makes.
fn joined_len(accounts: &[AccountName]) -> usize {
    accounts.iter().map(|a| a.as_str().len()).sum::<usize>() + accounts.len().saturating_sub(1)
}

/// Consecutive slices of `accounts`, in order, each of whose
/// comma-separated list is at most [`ACCOUNT_LIST_ARG_MAX`] bytes (an
/// account name is at most 254 bytes, so every slice holds at least one).
pub fn account_batches<A: AsRef<str>>(accounts: &[A]) -> Vec<&[A]> {
    let mut out = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (i, a) in accounts.iter().enumerate() {
        let more = a.as_ref().len() + usize::from(i > start);
        if i > start && len + more > ACCOUNT_LIST_ARG_MAX {
            out.push(&accounts[start..i]);
            start = i;
            len = a.as_ref().len();
        } else {
            len += more;
        }
    }
    if start < accounts.len() {
        out.push(&accounts[start..]);
    }
    out
}

/// What happened when a descendant kept a command's output pipe open.
fn pipe_held_reason(holders: &[process::PipeHolder], printed: u64) -> String {
    let who = if holders.is_empty() {
        "a descendant that left the process group".to_owned()
    } else {
        format!(
            "a descendant that left the process group ({})",
            holders
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "{who} kept the output pipe open after the command exited, so habeat stopped reading \
         after {printed} bytes: the output may lack its end (that process was not killed: it \
         is outside the command's process group)"
    )
}

/// The last `n` bytes of `s` (or a little less, at a character boundary).
fn last_bytes(s: &str, n: usize) -> String {
    let mut from = s.len().saturating_sub(n);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    s[from..].to_owned()
}

fn join(accounts: &[AccountName]) -> String {
    accounts
        .iter()
        .map(AccountName::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// Read an account list (one per line; blank lines and `#` comments
/// ignored), validating every line. Errors name the line.
pub fn read_account_file(path: &Path) -> Result<Vec<AccountName>, CarbonioError> {
    let err = |reason: String| CarbonioError::InputFile {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let mut accounts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        accounts.push(AccountName::parse(line).map_err(|e| err(format!("line {}: {e}", i + 1)))?);
    }
    if accounts.is_empty() {
        return Err(err("it lists no accounts".into()));
    }
    Ok(accounts)
}

/// The strict reading of a `--json` output: exactly one JSON object
/// (surrounding whitespace allowed), holding a `response`. Returns the
/// `response` value.
pub fn parse_response(stdout: &[u8]) -> Result<Value, String> {
    let raw = response_raw(stdout)?;
    serde_json::from_str(raw.get()).map_err(|e| format!("the output is not valid JSON ({e})"))
}

/// An object's members, their values left unparsed (borrowed from the
/// output), so that a listing of 100k accounts is never one tree in memory.
type RawObject<'a> = BTreeMap<String, &'a RawValue>;

/// The checks of [`parse_response`]; returns `response` unparsed.
fn response_raw(stdout: &[u8]) -> Result<&RawValue, String> {
    let text = std::str::from_utf8(stdout).map_err(|_| "the output is not UTF-8".to_owned())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the output is empty (expected a JSON object)".into());
    }
    if !trimmed.starts_with('{') {
        let first = trimmed.lines().next().unwrap_or_default();
        return Err(format!(
            "the output does not start with a JSON object (first line: {:?})",
            truncate(first, 200)
        ));
    }
    let mut stream = serde_json::Deserializer::from_str(trimmed).into_iter::<&RawValue>();
    let value = match stream.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(format!("the output is not valid JSON ({e})")),
        None => return Err("the output is empty (expected a JSON object)".into()),
    };
    let end = stream.byte_offset();
    let rest = trimmed[end..].trim();
    if !rest.is_empty() {
        return Err(format!(
            "there is text after the JSON object ({:?})",
            truncate(rest, 200)
        ));
    }
    // serde_json keeps the last of two equal keys: a body with two
    // `response`s (or two `values`) is ambiguous, not an answer.
    crate::json::refuse_duplicate_keys(&trimmed.as_bytes()[..end])
        .map_err(|e| format!("the JSON is ambiguous ({e})"))?;
    let obj: RawObject =
        serde_json::from_str(value.get()).map_err(|_| "the JSON is not an object".to_owned())?;
    refuse_not_ok(&obj, "")?;
    match obj.get("response") {
        None => Err("the JSON object has no \"response\"".into()),
        Some(r) if r.get() == "null" => Err("the JSON object has no \"response\"".into()),
        Some(r) => {
            if let Ok(inner) = serde_json::from_str::<RawObject>(r.get()) {
                refuse_not_ok(&inner, "response.")?;
            }
            Ok(r)
        }
    }
}

/// `getAccountStatus` output read as [`parse_response`] and
/// [`parse_account_status`] read it, one account entry at a time: peak
/// memory is the output and the result, not a JSON tree of the whole
/// listing (263 MiB at 100k accounts).
pub fn parse_account_listing(stdout: &[u8], host: &MailHost) -> Result<Vec<AccountStatus>, String> {
    let response = response_raw(stdout)?;
    let values = serde_json::from_str::<RawObject>(response.get())
        .ok()
        .and_then(|r| r.get("values").copied())
        .ok_or("the response has no \"values\" list")?;
    let entries: Vec<&RawValue> = serde_json::from_str(values.get())
        .map_err(|_| "\"values\" in the response is not a list".to_owned())?;
    entries
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            serde_json::from_str::<Value>(raw.get())
                .map_err(|e| e.to_string())
                .and_then(|v| parse_account(&v, host))
                .map_err(|e| format!("account entry {}: {e}", i + 1))
        })
        .collect()
}

/// The CLI's own verdict: an object saying `"ok": false` reports a
/// failure, whatever else it holds; an `ok` that is not a boolean is not
/// trusted either. (No `ok` at all is fine: not every release prints it.)
fn refuse_not_ok(obj: &RawObject, at: &str) -> Result<(), String> {
    let value = |k: &str| {
        obj.get(k)
            .and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
    };
    match value("ok") {
        None if !obj.contains_key("ok") => Ok(()),
        Some(Value::Bool(true)) => Ok(()),
        Some(Value::Bool(false)) => {
            let why = ["error", "message", "exception", "errors"]
                .iter()
                .find_map(|k| value(k))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .map(|m| format!(": {}", truncate(&m, 300)))
                .unwrap_or_default();
            Err(format!(
                "the CLI reported a failure (\"{at}ok\": false){why}"
            ))
        }
        other => Err(format!(
            "\"{at}ok\" is {}, not true or false",
            truncate(&other.unwrap_or_default().to_string(), 50)
        )),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// `response.values` of `getAccountStatus`, every entry validated and on
/// the host that was asked about.
pub fn parse_account_status(
    response: &Value,
    host: &MailHost,
) -> Result<Vec<AccountStatus>, String> {
    let values = response
        .get("values")
        .ok_or("the response has no \"values\" list")?
        .as_array()
        .ok_or("\"values\" in the response is not a list")?;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| parse_account(v, host).map_err(|e| format!("account entry {}: {e}", i + 1)))
        .collect()
}

fn parse_account(v: &Value, host: &MailHost) -> Result<AccountStatus, String> {
    let obj = v.as_object().ok_or("it is not an object")?;
    let text = |key: &str| -> Result<&str, String> {
        obj.get(key)
            .ok_or(format!("\"{key}\" is missing"))?
            .as_str()
            .ok_or(format!("\"{key}\" is not a string"))
    };
    let account_name = AccountName::parse(text("accountName")?).map_err(|e| e.to_string())?;
    let account_mail_host =
        MailHost::parse(text("accountMailHost")?).map_err(|e| format!("{account_name}: {e}"))?;
    if &account_mail_host != host {
        return Err(format!(
            "{account_name} is reported on mail host {account_mail_host}, not on {host} as asked"
        ));
    }
    let account_id = text("accountId")
        .map_err(|e| format!("{account_name}: {e}"))?
        .to_owned();
    let paused = match obj.get("paused") {
        None | Some(Value::Null) => false,
        Some(p) => {
            loose_bool(p).ok_or(format!("{account_name}: \"paused\" is not true or false"))?
        }
    };
    let replicas = match obj.get("replicas") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(rs)) => rs
            .iter()
            .map(|r| Replica {
                destination: r
                    .get("destination")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                available: r.get("available").and_then(loose_bool),
                priority: r.get("priority").and_then(loose_int),
            })
            .collect(),
        Some(_) => return Err(format!("{account_name}: \"replicas\" is not a list")),
    };
    Ok(AccountStatus {
        account_id,
        account_name,
        account_mail_host,
        paused,
        replicas,
    })
}

/// `true`/`false`, also when the CLI prints them as strings.
fn loose_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn loose_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The operations list of `core getAllOperations`: an `operations` (or
/// `values`) list in the response.
pub fn parse_operations(response: &Value) -> Result<Vec<Operation>, String> {
    let list = ["operations", "values"]
        .iter()
        .find_map(|k| response.get(*k))
        .ok_or("the response has no \"operations\" list")?
        .as_array()
        .ok_or("the operations in the response are not a list")?;
    let field = |v: &Value, keys: &[&str]| {
        keys.iter().find_map(|k| v.get(*k)).map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    Ok(list
        .iter()
        .map(|v| Operation {
            id: field(v, &["id", "operationId"]),
            name: field(v, &["name", "operationName", "description"]),
            raw: v.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> MailHost {
        MailHost::parse("mbox1.example.com").expect("valid")
    }

    #[test]
    fn strict_json_accepts_exactly_one_object_with_a_response() {
        assert!(parse_response(b" {\"response\": {\"values\": []}}\n").is_ok());
        assert!(parse_response(b"{\"ok\": true, \"response\": {\"values\": []}}").is_ok());
        for (bad, why) in [
            (&b""[..], "empty"),
            (
                b"INFO starting\n{\"response\": {}}",
                "does not start with a JSON object",
            ),
            (
                b"{\"response\": {}}\nWARN done",
                "text after the JSON object",
            ),
            (b"{\"response\": {}", "not valid JSON"),
            (b"[1,2]", "does not start with a JSON object"),
            (b"{\"values\": []}", "no \"response\""),
            (b"{\"response\": null}", "no \"response\""),
            (b"\xff\xfe", "not UTF-8"),
            (
                b"{\"response\": {\"values\": []}, \"response\": {\"values\": [1]}}",
                "the key \"response\" appears twice",
            ),
            (
                b"{\"response\": {\"values\": [{\"accountName\": \"a@x\", \"accountName\": \"b@x\"}]}}",
                "appears twice in the object at .response.values[0]",
            ),
            (
                b"{\"ok\": false, \"error\": \"no such module\", \"response\": {\"values\": []}}",
                "reported a failure (\"ok\": false): no such module",
            ),
            (
                b"{\"response\": {\"ok\": false, \"values\": []}}",
                "(\"response.ok\": false)",
            ),
            (b"{\"ok\": \"no\", \"response\": {}}", "not true or false"),
        ] {
            let e = parse_response(bad).expect_err(why);
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn account_entries_are_validated_and_must_be_on_the_asked_host() {
        let ok = serde_json::json!({"values": [{
            "accountId": "9e94", "accountName": "u@example.com",
            "accountMailHost": "MBOX1.example.com", "paused": "false",
            "replicas": [{"destination": "mbox2.example.com", "available": true, "priority": "10"}]
        }]});
        let list = parse_account_status(&ok, &host()).expect("valid");
        assert_eq!(list[0].account_name.as_str(), "u@example.com");
        assert_eq!(list[0].replicas[0].priority, Some(10));
        assert!(!list[0].paused);

        let other = serde_json::json!({"values": [{
            "accountId": "1", "accountName": "u@example.com", "accountMailHost": "mbox2.example.com"
        }]});
        let e = parse_account_status(&other, &host()).expect_err("other host");
        assert!(e.contains("not on mbox1.example.com"), "{e}");

        let missing = serde_json::json!({"values": [{"accountName": "u@example.com"}]});
        let e = parse_account_status(&missing, &host()).expect_err("missing host");
        assert!(e.contains("accountMailHost"), "{e}");

        let e = parse_account_status(&serde_json::json!({}), &host()).expect_err("no values");
        assert!(e.contains("no \"values\""), "{e}");
    }

    #[test]
    fn the_listing_read_entry_by_entry_says_what_the_whole_tree_reading_says() {
        let entry = |name: &str, host: &str| {
            serde_json::json!({"accountId": "9e94", "accountName": name,
                "accountMailHost": host, "paused": "false",
                "replicas": [{"destination": "mbox2.example.com", "available": true, "priority": "10"}]})
        };
        for response in [
            serde_json::json!({"values": [entry("u@example.com", "MBOX1.example.com"),
                                          entry("v@example.com", "mbox1.example.com")]}),
            serde_json::json!({"values": []}),
            serde_json::json!({"values": [entry("u@example.com", "mbox2.example.com")]}),
            serde_json::json!({"values": [{"accountName": "u@example.com"}]}),
            serde_json::json!({"values": [entry("u@example.com", "mbox1.example.com"), 7]}),
            serde_json::json!({"values": null}),
            serde_json::json!({"values": {"a": 1}}),
            serde_json::json!({}),
            serde_json::json!([1, 2]),
            serde_json::json!("text"),
        ] {
            let body = serde_json::json!({ "response": response.clone() }).to_string();
            let whole =
                parse_response(body.as_bytes()).and_then(|r| parse_account_status(&r, &host()));
            let by_entry = parse_account_listing(body.as_bytes(), &host());
            assert_eq!(by_entry, whole, "{body}");
        }
        for bad in [
            &b"{\"response\": null}"[..],
            b"{\"ok\": false, \"response\": {\"values\": []}}",
        ] {
            assert_eq!(
                parse_account_listing(bad, &host()),
                parse_response(bad).map(|_| Vec::new())
            );
        }
    }

    #[test]
    fn argv_never_passes_through_a_shell_and_keeps_each_word_whole() {
        let c = Carbonio::new(&config::Carbonio::default()).expect("default config");
        let acc = AccountName::parse("o'brien@example.com").expect("valid");
        let argv = c.argv(&Command::FlushCache {
            account: acc,
            all_servers: true,
        });
        assert_eq!(
            argv,
            [
                "/opt/zextras/bin/zmprov",
                "fc",
                "-a",
                "account",
                "o'brien@example.com"
            ]
            .map(OsString::from)
        );
        assert_eq!(
            c.display(&Command::PromoteSourceHost {
                source: host(),
                threads: 5
            }),
            "/opt/zextras/bin/carbonio --sync MailReplica promoteAccounts source_mail_host mbox1.example.com threads 5"
        );
    }

    #[test]
    fn a_module_name_that_is_not_a_word_is_refused() {
        let cfg = config::Carbonio {
            module: "Mail Replica".into(),
            ..Default::default()
        };
        assert!(matches!(
            Carbonio::new(&cfg),
            Err(CarbonioError::BadModule(_))
        ));
    }
}
