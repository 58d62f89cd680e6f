//! `state_dir/survey.json`: the last complete survey, replaced atomically
//! (temp file, fsync, rename) and only by another complete one. A survey
//! whose listing failed, was cut short or made no sense is never written,
//! so a kill -9 or a bad answer during a survey leaves the earlier one.
//! Kept apart from `state.json` so that a survey of 100k accounts does not
//! make every save of the engine's state (each round) rewrite megabytes.

use super::{SURVEY_VERSION, Survey};
use crate::state::{StateError, read_nofollow, write_atomic};
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

/// The last survey, `None` when there has been none.
pub fn load(state_dir: &Path) -> Result<Option<Survey>, SurveyError> {
    let p = path(state_dir);
    let Some(bytes) = read_nofollow(&p)? else {
        return Ok(None);
    };
    let s: Survey = crate::json::from_slice(&bytes).map_err(|e| SurveyError::Corrupt {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    if s.version != SURVEY_VERSION {
        return Err(SurveyError::Corrupt {
            path: p,
            reason: format!("layout version {}, expected {SURVEY_VERSION}", s.version),
        });
    }
    Ok(Some(s))
}

/// Replace the last survey with `s` (complete, by construction).
pub fn save(state_dir: &Path, s: &Survey) -> Result<(), StateError> {
    let p = path(state_dir);
    let bytes = serde_json::to_vec(s).map_err(|e| StateError::Encode {
        path: p.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&p, &bytes)
}
