//! `state_dir/state.json`: the engine's state between runs.

use super::StateError;
use super::atomic::{remove_leftover_temps, sync_dir, write_atomic};
use crate::engine::{STATE_VERSION, SafeHold, State, UnixMillis};
use std::fs::{self, DirBuilder};
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The state directory and its files.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// A `state.json` that could not be trusted and was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Where the bad file now is (`state.json.corrupt-<unix ms>`).
    pub moved_to: PathBuf,
    /// What was wrong with it.
    pub reason: String,
}

/// The result of [`Store::load`].
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The state to start from.
    pub state: State,
    /// Set when the file was corrupt: the state is then a safe one (no
    /// automatic action until `habeat rearm`); report it loudly.
    pub set_aside: Option<SetAside>,
}

impl Store {
    /// The store in `dir` (created with mode 0700 if missing).
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StateError::io("create the state directory", dir, e))?;
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    /// The store in `dir` without creating anything (for `--dry-run`, which
    /// must change no file): a missing directory reads as a fresh start.
    pub fn at(dir: &Path) -> Store {
        Store {
            dir: dir.to_owned(),
        }
    }

    /// The state directory (also where the state lock lives).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `state_dir/state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// `state_dir/events.jsonl`.
    pub fn journal_path(&self) -> PathBuf {
        super::Journal::in_dir(&self.dir)
    }

    /// `state_dir/hold.json`: the safe hold, kept apart from `state.json`
    /// so that the file it guards cannot erase it. It exists exactly while
    /// automatic action is held for an operator's `habeat rearm`.
    pub fn hold_path(&self) -> PathBuf {
        self.dir.join("hold.json")
    }

    /// The state as saved, changing nothing: the one reader of
    /// `state.json` (with its version check) behind [`Store::load`] and
    /// [`Store::peek`].
    fn read(&self) -> Result<Saved, StateError> {
        let path = self.state_path();
        let bytes = match super::atomic::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Saved::Missing),
            Err(e) => return Err(StateError::io("read", &path, e)),
        };
        Ok(match serde_json::from_slice::<State>(&bytes) {
            Ok(s) if s.version == STATE_VERSION => Saved::Good(Box::new(s)),
            Ok(s) => Saved::Bad(format!(
                "it has layout version {}, this habeat understands {STATE_VERSION}",
                s.version
            )),
            Err(e) => Saved::Bad(format!("it is not valid habeat state ({e})")),
        })
    }

    /// The safe hold on disk, if any. A hold file that cannot be parsed
    /// still holds: it only ever exists to stop automatic action.
    fn read_hold(&self, now: UnixMillis) -> Result<Option<SafeHold>, StateError> {
        let path = self.hold_path();
        match super::atomic::read(&path) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b).unwrap_or_else(|e| {
                SafeHold {
                    since: now,
                    reason: format!("{} is unreadable ({e})", path.display()),
                }
            }))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::io("read", &path, e)),
        }
    }

    fn write_hold(&self, hold: &SafeHold) -> Result<(), StateError> {
        let path = self.hold_path();
        let mut bytes = serde_json::to_vec_pretty(hold).map_err(|e| StateError::Encode {
            path: path.clone(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes)
    }

    /// End the safe hold (`habeat rearm`): called after the state without
    /// it is saved, so a crash in between leaves the hold in place.
    pub fn clear_hold(&self) -> Result<(), StateError> {
        let path = self.hold_path();
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::io("remove", &path, e)),
        }
    }

    /// Read the state to decide from. A missing file is a fresh start. A
    /// file that is not a state habeat wrote (truncated, edited, another
    /// version) is renamed aside with a timestamp, after the safe hold is
    /// written to `hold.json`: the state then holds every automatic action
    /// until `habeat rearm` (the lost file may have recorded a promotion),
    /// in this run and every later one. An I/O error (permissions) is an
    /// error, since guessing would be unsafe.
    pub fn load(&self, now: UnixMillis) -> Result<Loaded, StateError> {
        let path = self.state_path();
        remove_leftover_temps(&path);
        let hold = self.read_hold(now)?;
        let (mut state, set_aside) = match self.read()? {
            Saved::Missing => (State::new(), None),
            Saved::Good(s) => (*s, None),
            Saved::Bad(problem) => {
                let moved_to = path.with_file_name(format!("state.json.corrupt-{}", now.0));
                let reason = format!(
                    "{} could not be used: {problem}; it was kept as {}",
                    path.display(),
                    moved_to.display()
                );
                // The hold first: a crash after the rename must not leave
                // a fresh start behind.
                if hold.is_none() {
                    self.write_hold(&SafeHold {
                        since: now,
                        reason: reason.clone(),
                    })?;
                }
                fs::rename(&path, &moved_to).map_err(|e| {
                    StateError::io("move the unreadable state aside from", &path, e)
                })?;
                (State::new(), Some(SetAside { moved_to, reason }))
            }
        };
        if let Some(h) = hold.or_else(|| {
            set_aside.as_ref().map(|a| SafeHold {
                since: now,
                reason: a.reason.clone(),
            })
        }) {
            state.safe_hold.get_or_insert(h);
        }
        Ok(Loaded { state, set_aside })
    }

    /// The state as [`Store::load`] would find it, changing nothing (for
    /// `status` and `--dry-run`): a corrupt file reads as the safe hold it
    /// will cause, and is left where it is.
    pub fn peek(&self, now: UnixMillis) -> Result<State, StateError> {
        let hold = self.read_hold(now)?;
        let mut state = match self.read()? {
            Saved::Missing => State::new(),
            Saved::Good(s) => *s,
            Saved::Bad(problem) => State::safe(
                now,
                format!(
                    "{} could not be used: {problem}; the next `habeat check` or daemon round sets it aside",
                    self.state_path().display()
                ),
            ),
        };
        if let Some(h) = hold {
            state.safe_hold = Some(h);
        }
        Ok(state)
    }

    /// Write the state atomically (temp, fsync, rename, fsync dir).
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let path = self.state_path();
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Encode {
            path: path.clone(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        // A hold that is only in `state.json` (written by an earlier
        // release) gets its own file before anything else is saved.
        if let Some(h) = &state.safe_hold
            && !self.hold_path().exists()
        {
            self.write_hold(h)?;
        }
        write_atomic(&path, &bytes)
    }
}

/// `state.json` as found on disk.
enum Saved {
    Missing,
    Good(Box<State>),
    Bad(String),
}
