//! Test helpers around the fake carbonio / zmprov
//! (`examples/fake_carbonio`): set up its state, point a
//! [`habeat::config::Carbonio`] at it, and read back what it did.
//!
//! Use from a test file with
//! `#[path = "support/fake_carbonio.rs"] mod fake_carbonio;`.
#![allow(dead_code)]

#[path = "../../examples/fake_carbonio/state.rs"]
pub mod state;

pub use state::{Account, Fault, Invocation, Loss, ReplicaState, STATE_ENV, State};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fake's binary, built by `cargo test` next to the habeat binary:
/// `examples/fake_carbonio` (plain `cargo test`) or
/// `examples/fake_carbonio-<hash>` (`cargo test --all-targets`, which
/// builds examples in test mode; with `harness = false` that is the same
/// program). The newest one is used.
pub fn binary() -> PathBuf {
    let habeat = PathBuf::from(env!("CARGO_BIN_EXE_habeat"));
    let dir = habeat
        .parent()
        .map(|d| d.join("examples"))
        .unwrap_or_default();
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n == "fake_carbonio" || n.starts_with("fake_carbonio-")) && !n.contains('.')
        })
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let exec = m.is_file() && m.permissions().mode() & 0o111 != 0;
            exec.then(|| (m.modified().ok(), e.path()))
        })
        .max();
    let Some((built, fake)) = newest else {
        panic!(
            "no fake_carbonio in {}: run the tests with `cargo test` or `cargo test --all-targets` (or `cargo build --examples` first)",
            dir.display()
        );
    };
    // `cargo test --test X` does not rebuild examples: refuse a stale fake
    // rather than test against old behaviour.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fake_carbonio");
    for f in ["main.rs", "state.rs", "model.rs", "zmprov.rs"] {
        let changed = std::fs::metadata(src.join(f))
            .and_then(|m| m.modified())
            .ok();
        assert!(
            built >= changed,
            "{} is older than its source {f}: run `cargo build --examples` (or `cargo test --all-targets`)",
            fake.display()
        );
    }
    fake
}

/// One fake installation: a directory with `carbonio` and `zmprov`
/// (symlinks to the fake) and its state file.
pub struct FakeCarbonio {
    pub dir: tempfile::TempDir,
    pub state_path: PathBuf,
    pub carbonio: PathBuf,
    pub zmprov: PathBuf,
}

impl FakeCarbonio {
    pub fn new(state: &State) -> FakeCarbonio {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = binary();
        let carbonio = dir.path().join("carbonio");
        let zmprov = dir.path().join("zmprov");
        std::os::unix::fs::symlink(&bin, &carbonio).expect("symlink carbonio");
        std::os::unix::fs::symlink(&bin, &zmprov).expect("symlink zmprov");
        let state_path = dir.path().join("state.json");
        let fake = FakeCarbonio {
            dir,
            state_path,
            carbonio,
            zmprov,
        };
        fake.set_state(state);
        fake
    }

    /// Let any user run the fake and change its state (for `run_as` tests).
    pub fn open_to_everyone(&self) {
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod dir");
        std::fs::set_permissions(&self.state_path, std::fs::Permissions::from_mode(0o666))
            .expect("chmod state");
    }

    /// The state file, locked as the fake locks it for each invocation
    /// (it rewrites the file in place: an unlocked read may see it empty).
    fn locked(&self) -> std::fs::File {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.state_path)
            .expect("open the fake's state");
        f.lock().expect("lock the fake's state");
        f
    }

    fn read_locked(f: &mut std::fs::File) -> State {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.rewind().expect("rewind state");
        f.read_to_string(&mut s).expect("read state");
        serde_json::from_str(&s).expect("parse state")
    }

    fn write_locked(f: &mut std::fs::File, state: &State) {
        use std::io::{Seek, Write};
        let s = serde_json::to_string_pretty(state).expect("serialise state");
        f.set_len(0).expect("truncate state");
        f.rewind().expect("rewind state");
        f.write_all(s.as_bytes()).expect("write state");
    }

    pub fn set_state(&self, state: &State) {
        Self::write_locked(&mut self.locked(), state);
    }

    pub fn state(&self) -> State {
        Self::read_locked(&mut self.locked())
    }

    pub fn update(&self, f: impl FnOnce(&mut State)) {
        let mut file = self.locked();
        let mut st = Self::read_locked(&mut file);
        f(&mut st);
        Self::write_locked(&mut file, &st);
    }

    pub fn set_fault(&self, command: &str, fault: Fault) {
        self.update(|s| {
            s.faults.insert(command.into(), fault);
        });
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.state().invocations
    }

    /// What the promotions so far lost, per account (the gap between the
    /// source and the promoted replica).
    pub fn losses(&self) -> Vec<Loss> {
        self.state().losses
    }

    /// The zmprov processes run so far (a batch is one).
    pub fn zmprov_processes(&self) -> Vec<Invocation> {
        self.invocations()
            .into_iter()
            .filter(|i| i.program == "zmprov")
            .collect()
    }

    /// Stop the model's clock at `at` (seconds since the Unix epoch): from
    /// now on it moves only through [`FakeCarbonio::advance`].
    pub fn freeze_clock(&self, at: f64) {
        self.update(|s| s.clock = Some(at));
    }

    /// Move the model's clock on by `by` (freezing it first at the wall
    /// clock if it follows it). The model catches up at the fake's next
    /// invocation.
    pub fn advance(&self, by: Duration) {
        self.update(|s| {
            let now = s.clock.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0)
            });
            s.clock = Some(now + by.as_secs_f64());
        });
    }

    /// Set a replica's catch-up (seeding) time for the replicas that
    /// `setAccountDestination` creates on `host` (`*`: any host).
    pub fn set_catch_up(&self, host: &str, by: Duration) {
        self.update(|s| {
            s.catch_up.insert(host.into(), by.as_secs_f64());
        });
    }

    /// A `carbonio:` config section pointing at this fake, running as the
    /// current user, with a short command timeout.
    pub fn config(&self) -> habeat::config::Carbonio {
        habeat::config::Carbonio {
            cli: self.carbonio.clone(),
            zmprov: self.zmprov.clone(),
            run_as: None,
            module: "MailReplica".into(),
            command_timeout: Duration::from_secs(20),
            promote_timeout: Duration::from_secs(20),
        }
    }

    /// A driver for `cfg` that tells the fake where its state is.
    pub fn driver_for(&self, cfg: &habeat::config::Carbonio) -> habeat::act::carbonio::Carbonio {
        habeat::act::carbonio::Carbonio::new(cfg)
            .expect("valid carbonio config")
            .with_env(STATE_ENV, &self.state_path)
    }

    pub fn driver(&self) -> habeat::act::carbonio::Carbonio {
        self.driver_for(&self.config())
    }

    /// Accounts currently on `host`, by name, sorted.
    pub fn accounts_on(&self, host: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .state()
            .accounts
            .into_iter()
            .filter(|a| a.mail_host == host)
            .map(|a| a.name)
            .collect();
        v.sort();
        v
    }
}

/// A replicated account on `host` with one replica on `replica`.
pub fn account(name: &str, host: &str, replica: &str) -> Account {
    Account {
        id: format!("id-{name}"),
        name: name.into(),
        mail_host: host.into(),
        replicas: vec![ReplicaState::on(replica)],
        ..Account::default()
    }
}

/// An account in the lifecycle model: on `host`, a mail every `mail_every`
/// while it is not in maintenance, one replica on `replica` that streams
/// the source with `delay` of latency (so it is behind by the mails of
/// the last `delay`).
pub fn live_account(
    name: &str,
    host: &str,
    replica: &str,
    mail_every: Duration,
    delay: Duration,
) -> Account {
    Account {
        sequence: Some(1000),
        item_id: Some(500),
        mail_every: Some(mail_every.as_secs_f64()),
        replicas: vec![ReplicaState {
            delay: Some(delay.as_secs_f64()),
            ..ReplicaState::on(replica)
        }],
        ..account(name, host, replica)
    }
}

/// A state with these accounts, the module running.
pub fn with_accounts(accounts: Vec<Account>) -> State {
    State {
        accounts,
        ..State::default()
    }
}

/// True while any process is in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

/// True while process `pid` exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
