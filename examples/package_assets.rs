//! The files the .deb and .rpm carry that are generated from the code, not
//! kept in the tree: run by `.ci/package` before `cargo deb` and `cargo
//! generate-rpm` (Cargo.toml `[package.metadata.deb]` and
//! `[package.metadata.generate-rpm]` name them).
//!
//! ```sh
//! cargo run --example package_assets -- target/assets
//! ```
//!
//! writes into the given directory:
//!
//! - `man/habeat.8`, `man/habeat-run.8`, ... one page per subcommand
//!   (clap_mangen, from the same `Cli` that `--help` prints, so the pages
//!   cannot drift from the binary), section 8: system administration;
//! - `completions/habeat.bash`, `_habeat` (zsh), `habeat.fish`
//!   (clap_complete, what `habeat completions SHELL` prints);
//! - `systemd/habeat.service`, `habeat.habeat-check.service`,
//!   `habeat.habeat-check.timer`: the units of `systemd/` with the
//!   packaged binary's path, `/usr/sbin/habeat`, where the tree's units
//!   (for a hand install, docs/install.md) say `/usr/local/sbin/habeat`.
//!   The names are debhelper's (`<package>.<unit>`), which cargo-deb's
//!   `systemd-units` reads.
//!
//! An example rather than a build.rs: only packaging pays for it, not
//! every build.

use clap::CommandFactory;
use habeat::cli::Cli;
use std::path::{Path, PathBuf};

/// Where the tree's units point, and where the package puts the binary.
const HAND_INSTALLED: &str = "/usr/local/sbin/habeat";
const PACKAGED: &str = "/usr/sbin/habeat";

/// The tree's unit files and the name each gets for cargo-deb.
const UNITS: [(&str, &str); 3] = [
    ("habeat.service", "habeat.service"),
    ("habeat-check.service", "habeat.habeat-check.service"),
    ("habeat-check.timer", "habeat.habeat-check.timer"),
];

fn main() {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example package_assets -- OUT_DIR");
        std::process::exit(2);
    };
    if let Err(e) = generate(&out) {
        eprintln!("package_assets: {e}");
        std::process::exit(1);
    }
}

fn generate(out: &Path) -> Result<(), String> {
    let man = out.join("man");
    let completions = out.join("completions");
    let units = out.join("systemd");
    for d in [&man, &completions, &units] {
        // Start from empty: a page of a subcommand that no longer exists
        // must not be packaged.
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| format!("remove {}: {e}", d.display()))?;
        }
        std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }

    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = 0;
    man_pages(&cmd, &man, &mut pages)?;

    for (shell, name) in [
        (clap_complete::Shell::Bash, "habeat.bash"),
        (clap_complete::Shell::Zsh, "_habeat"),
        (clap_complete::Shell::Fish, "habeat.fish"),
    ] {
        let path = completions.join(name);
        let mut f =
            std::fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        clap_complete::generate(shell, &mut Cli::command(), "habeat", &mut f);
    }

    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    for (src, dest) in UNITS {
        let from = tree.join(src);
        let text =
            std::fs::read_to_string(&from).map_err(|e| format!("read {}: {e}", from.display()))?;
        if src.ends_with(".service") && !text.contains(HAND_INSTALLED) {
            return Err(format!(
                "{} does not run {HAND_INSTALLED}: update package_assets to the unit's new path",
                from.display()
            ));
        }
        let to = units.join(dest);
        std::fs::write(&to, text.replace(HAND_INSTALLED, PACKAGED))
            .map_err(|e| format!("write {}: {e}", to.display()))?;
    }
    println!(
        "{}: {pages} man pages, 3 completions, 3 units",
        out.display()
    );
    Ok(())
}

/// One page for the command and one for each subcommand, recursively
/// (`habeat-config-check.8`).
fn man_pages(cmd: &clap::Command, dir: &Path, pages: &mut usize) -> Result<(), String> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, dir, pages)?;
    }
    let page = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration")
        .source(format!("habeat {}", env!("CARGO_PKG_VERSION")));
    page.generate_to(dir)
        .map_err(|e| format!("write a man page into {}: {e}", dir.display()))?;
    *pages += 1;
    Ok(())
}
