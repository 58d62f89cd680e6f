//! `state_dir/survey.json`: the last complete survey, replaced atomically
//! (temp file, fsync, rename) and only by another complete one. A survey
//! whose listing failed, was cut short or made no sense is never written,
//! so a kill -9 or a bad answer during a survey leaves the earlier one.
//! Kept apart from `state.json` so that a survey of 100k accounts does not
//! make every save of the engine's state (each round) rewrite megabytes.

use super::{SURVEY_VERSION, Survey};
use crate::state::{Pending, StateError, read_nofollow, write_atomic};
use std::path::{Path, PathBuf};

/// The file name inside `state_dir`.
pub const FILE: &str = "survey.json";

/// Where the survey of `state_dir` lives.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Why the last survey could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "{path} is not a survey habeat wrote ({reason}); it is ignored and the next survey replaces it"
    )]
    Corrupt { path: PathBuf, reason: String },
}

/// The last survey an account listing is judged against: a survey file
/// that cannot be read is reported, and the accounts at risk are then
/// judged from the listing alone.
pub fn load_for_listing(state_dir: &Path) -> Option<Survey> {
    load(state_dir).unwrap_or_else(|e| {
        tracing::warn!("{e}; the accounts at risk are judged from the listing alone");
        None
    })
}

/// The last survey, `None` when there has been none.
pub fn load(state_dir: &Path) -> Result<Option<Survey>, SurveyError> {
    load_file(path(state_dir))
}

/// The survey kept in `p` (this file's rules, for the peer's survey and
/// for this DC's own mailstore's).
pub fn load_file(p: PathBuf) -> Result<Option<Survey>, SurveyError> {
    let Some(bytes) = read_nofollow(&p)? else {
        return Ok(None);
    };
    let corrupt = |e: serde_json::Error| SurveyError::Corrupt {
        path: p.clone(),
        reason: e.to_string(),
    };
    #[derive(serde::Deserialize)]
    struct Version {
        version: u32,
    }
    let v: Version = serde_json::from_slice(&bytes).map_err(corrupt)?;
    match v.version {
        SURVEY_VERSION => {
            let mut s: Survey = crate::json::from_slice(&bytes).map_err(corrupt)?;
            s.reindex();
            Ok(Some(s))
        }
        // Written by an earlier habeat: every account whole. Read once,
        // the next survey replaces it with the compact layout.
        1 => {
            let old: V1 = crate::json::from_slice(&bytes).map_err(corrupt)?;
            Ok(Some(Survey::new(old.host, old.at, old.accounts)))
        }
        n => Err(SurveyError::Corrupt {
            path: p,
            reason: format!("layout version {n}, expected {SURVEY_VERSION}"),
        }),
    }
}

/// `survey.json` as layout version 1 wrote it.
#[derive(serde::Deserialize)]
struct V1 {
    host: String,
    at: crate::engine::UnixMillis,
    accounts: Vec<crate::survey::Surveyed>,
}

/// Replace the last survey with `s` (complete, by construction).
pub fn save(state_dir: &Path, s: &Survey) -> Result<(), StateError> {
    save_file(path(state_dir), s)
}

/// Replace the survey kept in `p` with `s`, atomically.
pub fn save_file(p: PathBuf, s: &Survey) -> Result<(), StateError> {
    write_atomic(&p, &encode(&p, s)?)
}

/// Write `s` beside `survey.json`, ready to rename into place
/// ([`crate::survey::job::Staged`]).
pub fn stage(state_dir: &Path, s: &Survey) -> Result<Pending, StateError> {
    let p = path(state_dir);
    Pending::write(&p, &encode(&p, s)?)
}

/// `s` as the bytes of the file `p`.
pub fn encode(p: &Path, s: &Survey) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(s).map_err(|e| StateError::Encode {
        path: p.to_path_buf(),
        message: e.to_string(),
    })
}

/// The file that records the last failed survey, inside `state_dir`.
pub const FAILED_FILE: &str = "survey-failed.json";

/// The last survey that failed, kept until a survey succeeds: `status`,
/// `/status` and `/metrics` show it beside the last good one (which a
/// failure never replaces).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// The mailstore that was asked.
    pub host: String,
    /// When the survey failed.
    pub at: crate::engine::UnixMillis,
    /// Why, as logged.
    pub reason: String,
}

/// Record a failed survey in place of any earlier failure.
pub fn save_failure(state_dir: &Path, f: &Failure) -> Result<(), StateError> {
    save_small(&state_dir.join(FAILED_FILE), f)
}

/// A small record beside the state, replaced atomically.
pub fn save_small<T: serde::Serialize>(p: &Path, f: &T) -> Result<(), StateError> {
    let p = p.to_path_buf();
    let bytes = serde_json::to_vec(f).map_err(|e| StateError::Encode {
        path: p.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&p, &bytes)
}

/// The last failed survey, if it was not followed by a good one. An
/// unreadable record counts as none (the next survey rewrites or removes
/// it).
pub fn load_failure(state_dir: &Path) -> Option<Failure> {
    let bytes = read_nofollow(&state_dir.join(FAILED_FILE)).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Forget the failure: a survey succeeded.
pub fn clear_failure(state_dir: &Path) -> Result<(), StateError> {
    match std::fs::remove_file(state_dir.join(FAILED_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StateError::io("remove", &state_dir.join(FAILED_FILE), e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_survey_an_earlier_habeat_wrote_is_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v1 = r#"{"version":1,"host":"mbox1.example.com","at":5,"accounts":[
            {"account":"ok@x","source_sequence":10,"source_item_id":5,"source_paused":false,
             "replica":{"destination":"mbox2.example.com","available":true,"can_connect_to_kafka":true,
                        "paused":false,"sequence":10,"item_id":5,"priority":1},"replicas":1},
            {"account":"none@x","source_sequence":10,"source_item_id":5,"source_paused":false,
             "replica":null,"replicas":0}]}"#;
        std::fs::write(path(dir.path()), v1).expect("write");
        let s = load(dir.path()).expect("readable").expect("a survey");
        assert_eq!((s.len(), s.at_risk.len()), (2, 1));
        assert_eq!(s.source_of("ok@x"), Some((Some(10), Some(5), false)));
        save(dir.path(), &s).expect("save");
        let again = load(dir.path()).expect("readable").expect("a survey");
        assert_eq!((again.version, again), (SURVEY_VERSION, s));
    }
}
