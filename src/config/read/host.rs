//! The programs and the user the file names, looked for on this host: a
//! `carbonio.cli` with a typo, a missing `zmprov` or a `run_as` user that
//! does not exist would otherwise pass `config check` and fail only when a
//! failover runs them.
//!
//! How strict depends on who asks (`LoadEnv::host`): `config check` refuses
//! (the administrator asks whether this host can run the file), `check`,
//! `run`, `promote` and `recover` warn and start (detection and the other
//! steps still work, and a daemon that refused to start would watch
//! nothing), and `config check --file-only` and the read-only commands do
//! not look: a build host, CI or a template has no Carbonio installed.
//!
//! Fence agents: `read/fence.rs` checks the program at every load, and
//! `read/fence_meta.rs` holds the options against its metadata here.

use super::super::problem::HostCheck;
use super::super::yaml::Pos;
use super::super::{Config, HookCommand};
use super::Walker;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Who a program runs as, for its permission bits.
struct Runner {
    name: String,
    uid: u32,
    gids: Vec<u32>,
}

impl Runner {
    fn of(name: &str) -> Result<Option<Runner>, String> {
        let user = match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => u,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let gids = std::ffi::CString::new(name)
            .ok()
            .and_then(|c| nix::unistd::getgrouplist(&c, user.gid).ok())
            .unwrap_or_else(|| vec![user.gid]);
        Ok(Some(Runner {
            name: user.name,
            uid: user.uid.as_raw(),
            gids: gids.into_iter().map(|g| g.as_raw()).collect(),
        }))
    }

    fn this_process() -> Runner {
        let uid = nix::unistd::geteuid();
        let mut gids: Vec<u32> = nix::unistd::getgroups()
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        gids.push(nix::unistd::getegid().as_raw());
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {uid}"), |u| u.name);
        Runner {
            name,
            uid: uid.as_raw(),
            gids,
        }
    }

    /// Whether the permission bits let this user use `bit` (1: execute or
    /// search) on a file of that owner and mode. Root needs one x bit for a
    /// file, none for a directory, as the kernel has it.
    fn may(&self, meta: &std::fs::Metadata, bit: u32) -> bool {
        let mode = meta.permissions().mode();
        if self.uid == 0 {
            return meta.is_dir() || mode & 0o111 != 0;
        }
        if meta.uid() == self.uid {
            mode & (bit << 6) != 0
        } else if self.gids.contains(&meta.gid()) {
            mode & (bit << 3) != 0
        } else {
            mode & bit != 0
        }
    }
}

impl Walker<'_> {
    pub(in crate::config) fn host_checks(&mut self, cfg: &Config) {
        if self.env.host == HostCheck::Off {
            return;
        }
        self.fence_metadata_checks(cfg);
        let carbonio_pos = self.place(&["carbonio.run_as", "carbonio"]);
        let cli_runner = match &cfg.carbonio.run_as {
            None => Some(Runner::this_process()),
            Some(name) => match Runner::of(name) {
                Ok(Some(r)) => Some(r),
                Ok(None) => {
                    self.host_problem(
                        carbonio_pos,
                        format!(
                            "carbonio.run_as: no user `{name}` on this host; the Carbonio CLIs \
                             run as the user that owns the installation (zextras): correct the \
                             name, or write `run_as: \"\"` to run them as habeat's own user"
                        ),
                    );
                    None
                }
                Err(e) => {
                    self.host_problem(
                        carbonio_pos,
                        format!("carbonio.run_as: cannot look up the user `{name}`: {e}"),
                    );
                    None
                }
            },
        };
        let own = Runner::this_process();
        // Without the user, whether the programs are there at all.
        let r = cli_runner.as_ref().unwrap_or(&own);
        for (key, path) in [("cli", &cfg.carbonio.cli), ("zmprov", &cfg.carbonio.zmprov)] {
            let path_key = format!("carbonio.{key}");
            self.program(&[&path_key, "carbonio"], &path_key, path, r);
        }
        let hooks = [
            ("after_promotion", &cfg.hooks.after_promotion),
            ("on_peer_recovered", &cfg.hooks.on_peer_recovered),
            ("on_event", &cfg.hooks.on_event),
            ("on_fence", &cfg.hooks.on_fence),
            ("on_unfence", &cfg.hooks.on_unfence),
        ];
        for (key, cmds) in hooks {
            let key = format!("hooks.{key}");
            self.host_commands(&key, &["hooks"], cmds, &own);
        }
        let whoami = cfg.local.whoami.clone();
        if let Some(dc) = cfg.dcs.get(&whoami) {
            for (tool, c) in &dc.proxy_switch {
                for (what, cmds) in [("activate", &c.activate), ("deactivate", &c.deactivate)] {
                    let tool_key = format!("{whoami}.proxy_switch.{tool}");
                    let key = format!("{tool_key}.{what}");
                    let switch = format!("{whoami}.proxy_switch");
                    self.host_commands(&key, &[&tool_key, &switch], cmds, &own);
                }
            }
        }
        if let Some(program) = cfg.witnesses.command.first() {
            self.program_argv0(
                &["witnesses.command", "witnesses"],
                "witnesses.command",
                program,
                &own,
            );
        }
        if cfg.local.roles.contains(&crate::model::Role::Consulserver) {
            for (key, argv) in [
                ("service_stop", &cfg.consul.service_stop),
                ("service_start", &cfg.consul.service_start),
            ] {
                if let Some(program) = argv.first() {
                    let k = format!("consul.{key}");
                    self.program_argv0(&[&k, "consul"], &k, program, &own);
                }
            }
        }
    }

    /// Where a problem about the first of `paths` written goes.
    fn place(&self, paths: &[&str]) -> Pos {
        paths
            .iter()
            .find_map(|p| self.marks.given(p))
            .unwrap_or(Pos::START)
    }

    fn host_problem(&mut self, pos: Pos, message: String) {
        if self.env.host == HostCheck::Refuse {
            self.error(pos, message);
        } else {
            self.warn(pos, message);
        }
    }

    /// Each argv command's program (a shell string is the shell's business:
    /// its words are not habeat's to parse).
    fn host_commands(&mut self, key: &str, more: &[&str], cmds: &[HookCommand], runner: &Runner) {
        for c in cmds {
            if let HookCommand::Argv(argv) = c
                && let Some(program) = argv.first()
            {
                let mut places = vec![key];
                places.extend_from_slice(more);
                self.program_argv0(&places, key, program, runner);
            }
        }
    }

    /// An argv[0]: a path, or a name looked up in PATH as the child's exec
    /// would.
    fn program_argv0(&mut self, places: &[&str], key: &str, program: &str, runner: &Runner) {
        if program.contains('/') {
            self.program(places, key, Path::new(program), runner);
            return;
        }
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        match std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
        {
            Some(found) => self.program(places, key, &found, runner),
            None => {
                let pos = self.place(places);
                self.host_problem(
                    pos,
                    format!(
                        "{key}: no program `{program}` in PATH ({}); install it or write its \
                         full path",
                        path.to_string_lossy()
                    ),
                );
            }
        }
    }

    /// `path` exists, is a file, and `runner` may execute it and search
    /// every directory on the way to it.
    fn program(&mut self, places: &[&str], key: &str, path: &Path, runner: &Runner) {
        let pos = self.place(places);
        let shown = path.display();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                let fix = match e.kind() {
                    std::io::ErrorKind::NotFound => "correct the path, or install the program",
                    _ => "check the path and its permissions",
                };
                self.host_problem(pos, format!("{key}: cannot use {shown}: {e}; {fix}"));
                return;
            }
        };
        if !meta.is_file() {
            self.host_problem(
                pos,
                format!("{key}: {shown} is not a file; name the program"),
            );
            return;
        }
        let mut dirs: Vec<PathBuf> = path.ancestors().skip(1).map(Path::to_path_buf).collect();
        dirs.retain(|d| !d.as_os_str().is_empty());
        for d in dirs.iter().rev() {
            if let Ok(m) = std::fs::metadata(d)
                && !runner.may(&m, 0o1)
            {
                self.host_problem(
                    pos,
                    format!(
                        "{key}: {shown}: the user {} may not enter {} (mode {:o}); fix the \
                         directory's permissions",
                        runner.name,
                        d.display(),
                        m.permissions().mode() & 0o7777
                    ),
                );
                return;
            }
        }
        if !runner.may(&meta, 0o1) {
            self.host_problem(
                pos,
                format!(
                    "{key}: {shown} is not executable by {} (owner uid {}, group gid {}, mode \
                     {:o}); fix its mode (chmod) or owner",
                    runner.name,
                    meta.uid(),
                    meta.gid(),
                    meta.permissions().mode() & 0o7777
                ),
            );
        }
    }
}
