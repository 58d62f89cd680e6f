//! Account lists on their way to the CLI: the private `input_file` copy,
//! the comma-joined argv word and its batches, the operator's account file.

use super::{ACCOUNT_LIST_ARG_MAX, AccountName, CarbonioError};
use crate::act::process::{self, RunAs, TEMP_ROOT};
use std::path::{Path, PathBuf};

/// A private temporary copy of a validated account list, for
/// `promoteAccounts input_file`: a fresh 0700 directory in [`TEMP_ROOT`](process::TEMP_ROOT)
/// (made by `mkdtemp`, so nobody can have prepared it) owned by the user
/// the CLI runs as, removed on drop.
pub(super) struct AccountListCopy {
    dir: PathBuf,
    pub(super) file: PathBuf,
}

impl AccountListCopy {
    pub(super) fn create(
        accounts: &[AccountName],
        owner: Option<&RunAs>,
    ) -> Result<AccountListCopy, String> {
        let template = Path::new(TEMP_ROOT).join("habeat-promote-XXXXXX");
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

pub(super) fn join_lines(accounts: &[AccountName]) -> String {
    accounts
        .iter()
        .map(AccountName::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The length of the comma-separated list [`join`] makes.
pub(super) fn joined_len(accounts: &[AccountName]) -> usize {
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
pub(super) fn pipe_held_reason(holders: &[process::PipeHolder], printed: u64) -> String {
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
pub(super) fn last_bytes(s: &str, n: usize) -> String {
    let mut from = s.len().saturating_sub(n);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    s[from..].to_owned()
}

pub(super) fn join(accounts: &[AccountName]) -> String {
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
