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

mod accounts;
mod entry;
mod error;
mod listing;
mod scan;
mod stream;
mod survey;
mod switch;

pub use super::names::{AccountName, MailHost, NameError};
pub use accounts::{account_batches, read_account_file};
pub use error::CarbonioError;
pub use listing::{
    AccountStatus, Operation, Replica, parse_account_listing, parse_account_status,
    parse_operations, parse_response, parse_survey_listing,
};
pub use survey::{SurveySink, parse_survey, parse_survey_into};
pub use switch::{Located, ReplicaPosition, parse_located, parse_statuses};

use super::process::{self, RunAs, Spec, Status, TEMP_ROOT};
use crate::config;
use accounts::{AccountListCopy, join, joined_len, last_bytes, pipe_held_reason};
use serde::Serialize;
use serde_json::Value;
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
    /// `carbonio --json <module> getAccountStatus input_file <path>`: the
    /// named accounts, wherever they live.
    GetAccountStatusOf {
        /// habeat's private copy of the account list.
        path: PathBuf,
    },
    /// `carbonio --sync <module> promoteAccounts input_file <path>
    /// destination <host> threads <n>`: a planned move to `destination`.
    PromoteTo {
        /// habeat's private copy of the account list.
        path: PathBuf,
        /// The mailstore the accounts move to.
        destination: MailHost,
        threads: u32,
    },
    /// `carbonio <module> setAccountDestination <destination> <priority>
    /// input_file <path>`: a new replica of each account on `destination`.
    SetAccountDestination {
        destination: MailHost,
        priority: u32,
        /// habeat's private copy of the account list.
        path: PathBuf,
    },
    /// `zmprov` reading `lines` commands on its standard input (batch
    /// mode): one process for a whole wave.
    ZmprovBatch {
        /// How many commands it is given (the commands go to stdin).
        lines: usize,
    },
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
                | Command::PromoteTo { .. }
        )
    }

    fn expects_json(&self) -> bool {
        matches!(
            self,
            Command::GetAccountStatus { .. }
                | Command::GetAccountStatusOf { .. }
                | Command::GetAllOperations
        )
    }
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
            Command::SetAccountDestination {
                destination,
                priority,
                path,
            } => {
                carbonio(&mut a, None, m);
                push(
                    &mut a,
                    &[
                        "setAccountDestination",
                        destination.as_str(),
                        &priority.to_string(),
                        "input_file",
                    ],
                );
                a.push(path.clone().into());
            }
            Command::GetAllOperations => {
                carbonio(&mut a, Some("--json"), "core");
                push(&mut a, &["getAllOperations"]);
            }
            Command::GetAccountStatusOf { path } => {
                carbonio(&mut a, Some("--json"), m);
                push(&mut a, &["getAccountStatus", "input_file"]);
                a.push(path.clone().into());
            }
            Command::PromoteTo {
                path,
                destination,
                threads,
            } => {
                carbonio(&mut a, Some("--sync"), m);
                push(&mut a, &["promoteAccounts", "input_file"]);
                a.push(path.clone().into());
                push(&mut a, &["destination", destination.as_str()]);
                push(&mut a, &["threads", &threads.to_string()]);
            }
            Command::ZmprovBatch { .. } => a.push(self.zmprov.clone().into()),
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
        spec.env.insert("TMPDIR".into(), TEMP_ROOT.into());
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
        self.exec_with(cmd, None).await
    }

    /// [`Carbonio::exec`] with `stdin` written to the command's standard
    /// input (zmprov's batch mode).
    async fn exec_with(
        &self,
        cmd: &Command,
        stdin: Option<Vec<u8>>,
    ) -> Result<(Vec<u8>, CommandReport), CarbonioError> {
        let mut spec = self.spec(cmd)?;
        spec.stdin = stdin;
        let command = spec.display();
        tracing::info!(%command, "running");
        let out = process::run(&spec)
            .await
            .map_err(|source| CarbonioError::Start {
                command: command.clone(),
                source,
            })?;
        let report = self.judge(cmd, command, &out)?;
        if !out.stdout.complete() && cmd.expects_json() {
            return Err(CarbonioError::BadOutput {
                command: report.command,
                reason: format!(
                    "the output exceeded {JSON_OUTPUT_LIMIT} bytes ({} were printed)",
                    out.stdout.len()
                ),
                tail: report.tail,
            });
        }
        tracing::info!(command = %report.command, duration = ?out.duration, "done");
        Ok((out.stdout.head, report))
    }

    /// How a command ended, as a typed result: an error unless it exited 0
    /// in time, did not report the server unreachable, and (JSON commands)
    /// left no doubt that its output was read to its end.
    fn judge(
        &self,
        cmd: &Command,
        command: String,
        out: &process::Output,
    ) -> Result<CommandReport, CarbonioError> {
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
        Ok(CommandReport {
            command,
            duration: out.duration,
            tail,
        })
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
                path: PathBuf::from(TEMP_ROOT),
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

    /// Promote exactly these accounts through `promoteAccounts input_file`
    /// (a private copy, as [`Carbonio::promote_input_file`] makes), one
    /// call whatever their number: `replicas.at_risk: hold`.
    pub async fn promote_accounts_file(
        &self,
        accounts: &[AccountName],
        threads: Option<u32>,
    ) -> Result<CommandReport, CarbonioError> {
        let probe = Command::PromoteInputFile {
            path: PathBuf::from(TEMP_ROOT),
            threads,
        };
        let copy = self.list_copy(accounts, &probe)?;
        self.exec_text(Command::PromoteInputFile {
            path: copy.file.clone(),
            threads,
        })
        .await
    }

    /// Give each of these accounts a replica on `destination`
    /// (`setAccountDestination ... input_file`, a private copy as
    /// [`Carbonio::promote_accounts_file`] makes), one call whatever their
    /// number. The CLI starts the replicas' initialisation and returns.
    pub async fn set_account_destination(
        &self,
        destination: &MailHost,
        priority: u32,
        accounts: &[AccountName],
    ) -> Result<CommandReport, CarbonioError> {
        let probe = Command::SetAccountDestination {
            destination: destination.clone(),
            priority,
            path: PathBuf::from(TEMP_ROOT),
        };
        let copy = self.list_copy(accounts, &probe)?;
        self.exec_text(Command::SetAccountDestination {
            destination: destination.clone(),
            priority,
            path: copy.file.clone(),
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

#[cfg(test)]
mod tests;
