//! `state_dir/state.json`: the engine's state between runs.

use super::StateError;
use super::atomic::{remove_leftover_temps, write_atomic};
use crate::engine::{STATE_VERSION, State, UnixMillis};
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
        self.dir.join("events.jsonl")
    }

    /// Read the state. A missing file is a fresh start. A file that is not
    /// a state habeat wrote (truncated, edited, another version) is renamed
    /// aside with a timestamp and replaced by a safe state; an I/O error
    /// (permissions) is an error, since guessing would be unsafe.
    pub fn load(&self, now: UnixMillis) -> Result<Loaded, StateError> {
        let path = self.state_path();
        remove_leftover_temps(&path);
        let bytes = match super::atomic::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Loaded {
                    state: State::new(),
                    set_aside: None,
                });
            }
            Err(e) => return Err(StateError::io("read", &path, e)),
        };
        let problem = match serde_json::from_slice::<State>(&bytes) {
            Ok(s) if s.version == STATE_VERSION => {
                return Ok(Loaded {
                    state: s,
                    set_aside: None,
                });
            }
            Ok(s) => format!(
                "it has layout version {}, this habeat understands {STATE_VERSION}",
                s.version
            ),
            Err(e) => format!("it is not valid habeat state ({e})"),
        };
        let moved_to = path.with_file_name(format!("state.json.corrupt-{}", now.0));
        fs::rename(&path, &moved_to)
            .map_err(|e| StateError::io("move the unreadable state aside from", &path, e))?;
        let reason = format!(
            "{} could not be used: {problem}; it was kept as {}",
            path.display(),
            moved_to.display()
        );
        Ok(Loaded {
            state: State::safe(now, reason.clone()),
            set_aside: Some(SetAside { moved_to, reason }),
        })
    }

    /// Write the state atomically (temp, fsync, rename, fsync dir).
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let path = self.state_path();
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Encode {
            path: path.clone(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes)
    }
}
