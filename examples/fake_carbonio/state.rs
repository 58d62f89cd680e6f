//! The fake carbonio's state file: shared by the fake itself
//! (`examples/fake_carbonio/main.rs`) and the test helpers
//! (`tests/support/fake_carbonio.rs`), so both read the same schema.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Environment variable naming the state file.
pub const STATE_ENV: &str = "FAKE_CARBONIO_STATE";

/// Everything the fake remembers between invocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// The replica module name the fake answers to (`MailReplica` or `ha`).
    pub module: String,
    /// False after `doStopService module`.
    pub module_running: bool,
    pub accounts: Vec<Account>,
    /// What `core getAllOperations` lists.
    pub operations: Vec<serde_json::Value>,
    /// Faults by subcommand (`getAccountStatus`, `promoteAccounts`,
    /// `pauseReplicas`, `restartReplicas`, `doStopService`,
    /// `doStartService`, `getAllOperations`, `setAccountDestination`,
    /// zmprov's `fc`, `ga`, `ma`; a zmprov batch by its first command) or
    /// `*` for any.
    pub faults: BTreeMap<String, Fault>,
    /// Every invocation, in order.
    pub invocations: Vec<Invocation>,
    /// The model's clock, seconds since the Unix epoch: a test freezes it
    /// here and moves it on (`advance`); `None` follows the wall clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<f64>,
    /// The time the model was last brought forward to (at each
    /// invocation, before the command runs); `None`: not yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_time: Option<f64>,
    /// Replication latency of every replica `setAccountDestination`
    /// creates, seconds: a replica applies the source's changes this long
    /// after they happened.
    pub replication_delay: f64,
    /// How long a new replica takes to be seeded, by destination host
    /// (`*`: any other), seconds; default [`DEFAULT_CATCH_UP`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub catch_up: BTreeMap<String, f64>,
    /// What each promotion lost: the gap between the source and the
    /// promoted replica at that moment, per account.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub losses: Vec<Loss>,
    /// Mailstores of many healthy accounts, generated when listed instead
    /// of kept one by one (a state file of 500k accounts would take the
    /// fake longer to read than habeat to list them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bulk: Vec<Bulk>,
}

/// `count` healthy accounts `bulk{i}@example.com` on `mail_host`, each
/// with one available replica on `replica`, in step with its source. Only
/// `getAccountStatus mailHost` lists them, and only in `--json`;
/// `promoteAccounts source_mail_host` moves them all to `replica`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bulk {
    pub mail_host: String,
    pub replica: String,
    pub count: usize,
    /// Every `behind_every`-th account's replica is one `sequence` behind
    /// its source (at risk); `0`: none.
    #[serde(default)]
    pub behind_every: usize,
}

/// Seconds a new replica takes to catch up when [`State::catch_up`] names
/// neither its host nor `*`.
pub const DEFAULT_CATCH_UP: f64 = 10.0;
/// [`State::replication_delay`] by default.
pub const DEFAULT_REPLICATION_DELAY: f64 = 2.0;

impl Default for State {
    fn default() -> Self {
        State {
            module: "MailReplica".into(),
            module_running: true,
            accounts: Vec::new(),
            operations: Vec::new(),
            faults: BTreeMap::new(),
            invocations: Vec::new(),
            clock: None,
            model_time: None,
            replication_delay: DEFAULT_REPLICATION_DELAY,
            catch_up: BTreeMap::new(),
            losses: Vec::new(),
            bulk: Vec::new(),
        }
    }
}

/// One replicated account. `name` is printed verbatim, so a test can plant
/// a hostile one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub mail_host: String,
    pub paused: bool,
    pub replicas: Vec<ReplicaState>,
    /// The source's `sequence` (`None`: 1, as before the survey existed).
    pub sequence: Option<u64>,
    /// The source's `itemId` (`None`: 257).
    pub item_id: Option<u64>,
    /// Print `sequence`, `itemId`, `priority`, `available`,
    /// `canConnectToKafka` and `paused` as strings (`"12"`, `"true"`), as
    /// some releases do.
    pub as_strings: bool,
    /// Fields a newer release prints that habeat does not know, merged
    /// into the account's object (and each replica's, under `replica`).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// `zimbraAccountStatus` (`None`: `active`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Seconds between two mails arriving while the account is not in
    /// `maintenance` (each adds 2 to `sequence` and 1 to `itemId`);
    /// `None`: the source never moves (a planted, static account).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_every: Option<f64>,
    /// The source's recent positions (time, sequence, itemId), which
    /// streaming replicas follow `delay` seconds later. Kept by the fake.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
}

/// The source's position at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub at: f64,
    pub sequence: u64,
    pub item_id: u64,
}

/// A replica being seeded: it goes from nothing to the source's position
/// (as of `delay` ago) over `duration` seconds from `started`, unavailable
/// and without Kafka until then.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Seeding {
    pub started: f64,
    pub duration: f64,
}

/// What one promotion of one account lost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Loss {
    pub account: String,
    /// The mail host the account left (whose copy of the gap is the only one).
    pub from: String,
    /// The replica's host it now lives on.
    pub to: String,
    /// Model time of the promotion.
    pub at: f64,
    /// How far the promoted replica was behind the source.
    pub sequence: u64,
    pub item_id: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub destination: String,
    pub available: bool,
    pub priority: i64,
    /// The replica's `sequence` (`None`: the source's: caught up).
    #[serde(default)]
    pub sequence: Option<u64>,
    /// The replica's `itemId` (`None`: the source's).
    #[serde(default)]
    pub item_id: Option<u64>,
    /// `canConnectToKafka`.
    #[serde(default = "yes")]
    pub can_connect_to_kafka: bool,
    /// `paused` printed per replica (`None`: not printed).
    #[serde(default)]
    pub paused: Option<bool>,
    /// Replication latency, seconds: the replica follows the source's
    /// position as it was this long ago (while the account is not paused,
    /// the replica not paused and reaching Kafka). `None`: it does not
    /// stream; its planted position stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<f64>,
    /// Set while the replica is being seeded (`setAccountDestination`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeding: Option<Seeding>,
}

fn yes() -> bool {
    true
}

impl ReplicaState {
    /// A healthy replica on `destination`, priority 10.
    pub fn on(destination: &str) -> ReplicaState {
        ReplicaState {
            destination: destination.into(),
            available: true,
            priority: 10,
            sequence: None,
            item_id: None,
            can_connect_to_kafka: true,
            paused: None,
            delay: None,
            seeding: None,
        }
    }
}

/// An injected misbehaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Never finish (a grandchild `sleep` is started too, in the same
    /// process group, its pid logged).
    Hang,
    /// Exit with this code after printing an error on stderr.
    Fail { exit_code: i32 },
    /// Print bytes that are not JSON, exit 0.
    Garbage,
    /// Log lines before and after the normal output, exit 0.
    TextAround,
    /// Print the CLI's "Unable to communicate with server" line, exit 0.
    Unreachable,
    /// A JSON object without `response`, exit 0.
    NoResponse,
    /// Sleep this long, then behave normally.
    Slow { seconds: f64 },
    /// Print about `bytes` bytes of progress lines, then `line`, exit 0,
    /// and change nothing (a CLI that fails late but says so only in words).
    ProgressThen { bytes: usize, line: String },
    /// Print exactly this on stdout, exit 0, change nothing.
    Body { stdout: String },
    /// Leave a process that left the process group (`setsid`) holding
    /// stdout and stderr (its pid logged as `child_pid`), then behave
    /// normally.
    Escape,
}

/// One logged run of the fake.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Invocation {
    /// `carbonio` or `zmprov`.
    pub program: String,
    /// The arguments after argv[0], exactly as received.
    pub args: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    pub pgid: i32,
    pub cwd: String,
    /// HOME, USER, LOGNAME, PATH, LANG and any CONSUL_* variable seen.
    pub env: BTreeMap<String, String>,
    /// The grandchild started by a `hang` fault.
    pub child_pid: Option<i32>,
    /// zmprov's batch mode: the command lines read on standard input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stdin: Vec<String>,
    /// The lines of the file named after `input_file`, as it was when the
    /// command started (habeat removes its private copy afterwards).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<String>,
}
