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
    /// `doStartService`, `getAllOperations`, `fc`) or `*` for any.
    pub faults: BTreeMap<String, Fault>,
    /// Every invocation, in order.
    pub invocations: Vec<Invocation>,
}

impl Default for State {
    fn default() -> Self {
        State {
            module: "MailReplica".into(),
            module_running: true,
            accounts: Vec::new(),
            operations: Vec::new(),
            faults: BTreeMap::new(),
            invocations: Vec::new(),
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
}
