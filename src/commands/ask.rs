//! Asking the operator on a terminal before a command changes anything.

use super::Failure;
use std::fmt::Display;
use std::io::{BufRead, IsTerminal, Write};

/// How many names a question shows before "… and N more".
const SHOWN: usize = 50;

/// Fine on a terminal; refused as a usage error otherwise: a script must
/// say `--yes`, it cannot answer.
pub fn on_terminal(command: &str) -> Result<(), Failure> {
    if std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(super::usage(format!(
        "{command} asks for confirmation on a terminal; add --yes to run it from a script"
    )))
}

/// Ask `question`; only `y`, `Y` or `yes` is a yes.
pub fn yes(question: &str) -> bool {
    crate::out!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// The first names of `total`, one a line, then how many more.
pub fn name_some<T: Display>(names: impl IntoIterator<Item = T>, total: usize) {
    for n in names.into_iter().take(SHOWN) {
        crate::outln!("  {n}");
    }
    if total > SHOWN {
        crate::outln!("  … and {} more", total - SHOWN);
    }
}
