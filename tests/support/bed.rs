//! The shared test bed of the binary rehearsals: a peer ("primary") DC
//! whose hosts answer from one network namespace, the in-test Consul
//! server (`consul_api`) whose Serf view lists them, the fake carbonio
//! (`examples/fake_carbonio`) with its accounts, a scratch directory (state
//! dir, lock files, hook output) and a `habeat.yml` built from a base plus
//! overlays; helpers to run `habeat`, read `state.json` and the journal,
//! and count what the fake CLI was asked.
//!
//! Each rehearsal module used to write all of this again; the details in
//! which those copies differed (lock-file names, `carbonio` timeouts, the
//! full failover's `local` switches, the environment a command runs with)
//! are explicit here: a builder method or a call's argument, never a
//! silent default.
//!
//! Not part of `support/mod.rs`: it uses `CARGO_BIN_EXE_habeat`, which
//! `examples/demo.rs` (which includes `support/mod.rs`) does not have.
#![allow(dead_code)]

use crate::fake_carbonio::{self, Account, FakeCarbonio, Invocation, State, with_accounts};
use crate::support::consul_api::ConsulApi;
use crate::support::netns::Netns;
use habeat::engine::{Action, ActionId, ActionKind, Origin, PromoteTarget};
use habeat::model::Role;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The peer's mailstore (`primary.appserver_vmname`).
pub const SOURCE: &str = "mbox1.example.com";
/// This DC's mailstore (`secondary.appserver_vmname`).
pub const REPLICA: &str = "mbox2.example.com";
/// The peer mailstore's Consul node.
pub const NODE: &str = "agent-mbox1-example-com";
/// The peer proxy (with [`Builder::peer_proxy`]).
pub const PROXY: &str = "proxy1.example.com";
/// The peer proxy's Consul node (with [`Builder::peer_proxy`]).
pub const PROXY_NODE: &str = "agent-proxy1-example-com";
/// The Consul leader the stand-in reports while there is one.
pub const LEADER: &str = "127.0.0.1:8300";

/// One top-level section of `habeat.yml`: its lines, without the
/// section's own two-space indent.
#[derive(Clone)]
struct Section {
    name: String,
    lines: Vec<String>,
}

/// A `habeat.yml` as sections in order, each a list of lines, so that a
/// module can set one key (replacing the base's) or add a whole block.
/// Placeholders filled in when the bed is built: `{d}` the scratch
/// directory, `{ip}` the peer's address, `{port}` Consul's port, `{cli}`
/// and `{zmprov}` the fake's programs, `{hooks}` `{d}/hooks.log`.
#[derive(Clone)]
pub struct Yaml {
    sections: Vec<Section>,
}

impl Yaml {
    fn empty() -> Yaml {
        Yaml {
            sections: Vec::new(),
        }
    }

    fn section(&mut self, name: &str) -> &mut Vec<String> {
        let i = match self.sections.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.sections.push(Section {
                    name: name.into(),
                    lines: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        &mut self.sections[i].lines
    }

    /// Set `key: value` in `section` (one line, at the section's first
    /// level): replaces the line of that key, or is added at the end.
    pub fn set(&mut self, section: &str, line: &str) {
        let key = line.split(':').next().unwrap_or_default().to_owned();
        let lines = self.section(section);
        match lines
            .iter()
            .position(|l| l.split(':').next() == Some(key.as_str()) && !l.starts_with(' '))
        {
            Some(i) => lines[i] = line.to_owned(),
            None => lines.push(line.to_owned()),
        }
    }

    /// Append `block` (lines already indented relative to the section) to
    /// `section`.
    pub fn add(&mut self, section: &str, block: &str) {
        let lines = self.section(section);
        lines.extend(block.lines().map(str::to_owned));
    }

    /// Append `text` verbatim after the last section (a raw tail, e.g. a
    /// whole section given as text by the test).
    pub fn tail(&mut self, text: &str) {
        self.section("").extend(text.lines().map(str::to_owned));
    }

    fn render(&self, fill: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        for s in &self.sections {
            if !s.name.is_empty() {
                out.push_str(&s.name);
                out.push_str(":\n");
            }
            for l in &s.lines {
                if !s.name.is_empty() && !l.is_empty() {
                    out.push_str("  ");
                }
                out.push_str(&fill(l));
                out.push('\n');
            }
        }
        out
    }
}

/// Which lock-file names `local:` uses: the copies used two sets.
#[derive(Clone, Copy)]
pub enum LockNames {
    /// `appserverdown-habeat`, `appserverprom-habeat`, `appserverrstopha`
    /// (the names of the legacy script's installations).
    Legacy,
    /// `down`, `prom`, `rstopha`.
    Short,
}

/// How to build a [`Bed`].
pub struct Builder {
    accounts: Vec<Account>,
    peer_proxy: bool,
    yaml: Yaml,
}

impl Builder {
    /// The peer's mailstore only, Consul with a leader, no accounts, the
    /// base config: this node in `secondary` holding `appserver`, watching
    /// `primary`, legacy lock-file names, the fast detection of the
    /// rehearsals (300ms/250ms, fall 2, rise 1), the state in `{d}/state`, and the fake CLI run as the
    /// current user. No `carbonio` timeouts: set them
    /// ([`Builder::carbonio_timeouts`]); the copies differed there.
    fn new() -> Builder {
        let mut y = Yaml::empty();
        for l in ["whoami: secondary", "dc_check: primary", "role: appserver"] {
            y.set("local", l);
        }
        let mut b = Builder {
            accounts: Vec::new(),
            peer_proxy: false,
            yaml: y,
        };
        b = b.lock_names(LockNames::Legacy);
        b.yaml.set("local", "state_dir: {d}/state");
        for (s, l) in [
            ("primary", "appserver_ip: {ip}"),
            ("primary", "appserver_vmname: mbox1.example.com"),
            ("secondary", "appserver_vmname: mbox2.example.com"),
            ("consul", "hostname: 127.0.0.1"),
            ("consul", "port: {port}"),
            ("detection", "interval: 300ms"),
            ("detection", "timeout: 250ms"),
            ("detection", "fall: 2"),
            ("detection", "rise: 1"),
            ("carbonio", "cli: {cli}"),
            ("carbonio", "zmprov: {zmprov}"),
            ("carbonio", "run_as: \"\""),
        ] {
            b.yaml.set(s, l);
        }
        b
    }

    /// The fake's accounts.
    pub fn accounts(mut self, accounts: Vec<Account>) -> Builder {
        self.accounts = accounts;
        self
    }

    /// `alice@example.com` and `bob@example.com`, on [`SOURCE`], each with a
    /// replica on [`REPLICA`].
    pub fn alice_and_bob(self) -> Builder {
        self.accounts(vec![
            fake_carbonio::account("alice@example.com", SOURCE, REPLICA),
            fake_carbonio::account("bob@example.com", SOURCE, REPLICA),
        ])
    }

    /// `local:`'s lock files, in the scratch directory, by these names.
    pub fn lock_names(mut self, names: LockNames) -> Builder {
        let (down, prom, rstop) = match names {
            LockNames::Legacy => (
                "appserverdown-habeat",
                "appserverprom-habeat",
                "appserverrstopha",
            ),
            LockNames::Short => ("down", "prom", "rstopha"),
        };
        self.yaml
            .set("local", &format!("checkDownFile: {{d}}/{down}"));
        self.yaml
            .set("local", &format!("checkPromotionFile: {{d}}/{prom}"));
        self.yaml
            .set("local", &format!("checkRestartReplicaFile: {{d}}/{rstop}"));
        self
    }

    /// `local.provider: consul` and `local.threads: 3`.
    pub fn consul_provider_threads_3(mut self) -> Builder {
        self.yaml.set("local", "provider: consul");
        self.yaml.set("local", "threads: 3");
        self
    }

    /// The whole failover after the promotion: `proxy_switch: bgp` with
    /// `proxy_enable_activate`, `flush_cache`, `restart_replica`, and the
    /// bgp switch's commands appending to `{hooks}`. The deactivate key is
    /// spelt `deativate` as in the copies this replaces (cli_check,
    /// crash_promotion, daemon_binary); see [`Builder::bgp_hooks`].
    pub fn full_failover(mut self) -> Builder {
        self.yaml.set("local", "proxy_switch: bgp");
        self.yaml.set("local", "proxy_enable_activate: true");
        self.yaml.set("local", "flush_cache: true");
        self.yaml.set("local", "restart_replica: true");
        self.bgp_hooks("deativate")
    }

    /// `secondary.proxy_switch.bgp`: `activate` and `<deactivate_key>`
    /// append their name to `{hooks}`.
    pub fn bgp_hooks(mut self, deactivate_key: &str) -> Builder {
        self.yaml.add(
            "secondary",
            &format!(
                "proxy_switch:\n  bgp:\n    activate: [\"echo activate >> {{hooks}}\"]\n    {deactivate_key}: [\"echo deactivate >> {{hooks}}\"]"
            ),
        );
        self
    }

    /// `carbonio.command_timeout` and `carbonio.promote_timeout`.
    pub fn carbonio_timeouts(mut self, command: &str, promote: &str) -> Builder {
        self.yaml
            .set("carbonio", &format!("command_timeout: {command}"));
        self.yaml
            .set("carbonio", &format!("promote_timeout: {promote}"));
        self
    }

    /// The peer DC has a proxy too, at the same address, with its own
    /// Consul node ([`PROXY_NODE`]): `primary.proxy_ip` and
    /// `primary.proxyserver_vmname`.
    pub fn peer_proxy(mut self) -> Builder {
        self.peer_proxy = true;
        self.yaml.set("primary", "proxy_ip: {ip}");
        self.yaml
            .set("primary", &format!("proxyserver_vmname: {PROXY}"));
        self
    }

    /// Set one key of a section (replacing the base's line for it).
    pub fn set(mut self, section: &str, line: &str) -> Builder {
        self.yaml.set(section, line);
        self
    }

    /// Add indented lines to a section.
    pub fn add(mut self, section: &str, block: &str) -> Builder {
        self.yaml.add(section, block);
        self
    }

    /// Text appended after the last section, as given.
    pub fn tail(mut self, text: &str) -> Builder {
        self.yaml.tail(text);
        self
    }

    /// Create the namespace, Consul, the fake and the scratch directory,
    /// and write `habeat.yml`.
    pub async fn start(self) -> Bed {
        let ns = Netns::create();
        let ip = ns.ip().to_string();
        let mut nodes = vec![NODE];
        if self.peer_proxy {
            nodes.push(PROXY_NODE);
        }
        let mut consul = ConsulApi::builder();
        for n in &nodes {
            consul = consul.node(n, &ip, 1).check(n, "serfHealth", "passing");
        }
        let consul = consul.leader(Some(LEADER)).start().await;
        let fake = FakeCarbonio::new(&with_accounts(self.accounts));
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("habeat.yml");
        let fill = vec![
            ("{d}", dir.path().display().to_string()),
            ("{ip}", ip),
            ("{port}", consul.addr().port().to_string()),
            ("{cli}", fake.carbonio.display().to_string()),
            ("{zmprov}", fake.zmprov.display().to_string()),
            (
                "{hooks}",
                dir.path().join("hooks.log").display().to_string(),
            ),
        ];
        let bed = Bed {
            ns,
            consul,
            fake,
            dir,
            config,
            nodes: nodes.into_iter().map(str::to_owned).collect(),
            yaml: self.yaml,
            fill,
        };
        bed.write_config(&bed.yaml);
        bed
    }
}

/// One rehearsal's stage. Everything is removed on drop.
pub struct Bed {
    pub ns: Netns,
    pub consul: ConsulApi,
    pub fake: FakeCarbonio,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    nodes: Vec<String>,
    /// The config as built, and the placeholders' values.
    yaml: Yaml,
    fill: Vec<(&'static str, String)>,
}

impl Bed {
    /// See [`Builder::new`] for the base.
    pub fn builder() -> Builder {
        Builder::new()
    }

    fn write_config(&self, yaml: &Yaml) {
        let text = yaml.render(&|l: &str| {
            self.fill
                .iter()
                .fold(l.to_owned(), |l, (k, v)| l.replace(k, v))
        });
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Write `habeat.yml` again: the config the bed was built with,
    /// changed by `f` (as an operator edits it before a reload).
    pub fn rewrite_config(&self, f: impl FnOnce(&mut Yaml)) {
        let mut yaml = self.yaml.clone();
        f(&mut yaml);
        self.write_config(&yaml);
    }

    /// A file in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file of the scratch directory as text; empty while absent.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Change `habeat.yml` as text (as an operator edits it).
    pub fn edit_config(&self, f: impl FnOnce(String) -> String) {
        let yaml = std::fs::read_to_string(&self.config).expect("read config");
        std::fs::write(&self.config, f(yaml)).expect("write config");
    }

    /// Cut the peer DC off, as Serf would see it: link down, every peer
    /// node `failed` and its serfHealth critical.
    pub fn kill_peer(&self) {
        self.ns.set_link(false);
        for n in &self.nodes {
            self.consul.set_member_status(n, 4);
            self.consul.set_check(n, "serfHealth", "critical");
        }
    }

    /// The peer is back: link up, Serf sees it alive.
    pub fn revive_peer(&self) {
        self.ns.set_link(true);
        for n in &self.nodes {
            self.consul.set_member_status(n, 1);
            self.consul.set_check(n, "serfHealth", "passing");
        }
    }

    /// `habeat --config <config> <args>`, stdin closed, the test's own
    /// environment (its `CONSUL_HTTP_TOKEN` and `HABEAT_LOCK_WAIT`, if any).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_habeat"));
        c.arg("--config").arg(&self.config).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// [`Bed::command`] run to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run habeat")
    }

    /// As an operator beside the daemon: no token from the test's
    /// environment, the state lock waited for at most `lock_wait`.
    pub fn operator(&self, args: &[&str], lock_wait: &str) -> Output {
        self.command(args)
            .env("HABEAT_LOCK_WAIT", lock_wait)
            .env_remove("CONSUL_HTTP_TOKEN")
            .output()
            .expect("run habeat")
    }

    /// [`Bed::command`] in the background, its stdout and stderr to
    /// `<tag>.out` and `<tag>.err` in the scratch directory.
    pub fn spawn(&self, mut c: Command, tag: &str) -> Child {
        let out = std::fs::File::create(self.path(&format!("{tag}.out"))).expect("out");
        let err = std::fs::File::create(self.path(&format!("{tag}.err"))).expect("err");
        c.stdout(out).stderr(err).spawn().expect("spawn habeat")
    }

    /// What a process from [`Bed::spawn`] printed.
    pub fn output_of(&self, tag: &str) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.read(&format!("{tag}.out")),
            self.read(&format!("{tag}.err"))
        )
    }

    /// state.json as last saved (Null while there is none or it is being
    /// replaced: it is written atomically, so a read sees old or new).
    pub fn state(&self) -> Value {
        std::fs::read(self.path("state/state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// The journal as text.
    pub fn journal_text(&self) -> String {
        self.read("state/events.jsonl")
    }

    /// The journal's events.
    pub fn journal(&self) -> Vec<Value> {
        self.journal_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The fake's state (read under its file lock).
    pub fn fake_state(&self) -> State {
        self.fake.state()
    }

    /// The fake's invocations whose arguments include `sub`.
    pub fn calls(&self, sub: &str) -> Vec<Invocation> {
        self.fake
            .invocations()
            .into_iter()
            .filter(|i| i.args.iter().any(|a| a == sub))
            .collect()
    }

    /// How many `promoteAccounts` the fake was asked for.
    pub fn promotions(&self) -> usize {
        self.calls("promoteAccounts").len()
    }

    /// What the bgp switch and the hooks appended to `{hooks}`.
    pub fn hooks_log(&self) -> String {
        self.read("hooks.log")
    }

    /// A lock file of `local:` (in the scratch directory).
    pub fn lock(&self, name: &str) -> PathBuf {
        self.path(name)
    }
}

/// The executor's stage (no binary, no namespace): the Consul stand-in
/// with no nodes, the fake with one account `alice@example.com` on
/// [`SOURCE`], a scratch directory, and a config naming an address that is
/// never probed.
pub struct ExecBed {
    pub api: ConsulApi,
    pub fake: FakeCarbonio,
    pub dir: tempfile::TempDir,
}

impl ExecBed {
    pub async fn start() -> ExecBed {
        let api = ConsulApi::builder().start().await;
        let fake = FakeCarbonio::new(&with_accounts(vec![fake_carbonio::account(
            "alice@example.com",
            SOURCE,
            REPLICA,
        )]));
        let dir = tempfile::tempdir().expect("tempdir");
        ExecBed { api, fake, dir }
    }

    /// An executor for the bed's config plus `extra` (whole YAML
    /// sections, e.g. `safety:\n  require_peer_lease: auto\n`).
    pub fn executor(&self, extra: &str) -> habeat::exec::Executor {
        let dir = self.dir.path();
        let yaml = format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  state_dir: {d}/state\n  \
             checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  checkRestartReplicaFile: {d}/rstop\n\
             primary:\n  appserver_ip: 192.0.2.1\n  appserver_vmname: {SOURCE}\n\
             secondary:\n  appserver_vmname: {REPLICA}\n\
             consul:\n  hostname: 127.0.0.1\n  port: {port}\n\
             carbonio:\n  cli: {cli}\n  zmprov: {zmprov}\n  run_as: \"\"\n  promote_timeout: 30s\n{extra}",
            d = dir.display(),
            port = self.api.addr().port(),
            cli = self.fake.carbonio.display(),
            zmprov = self.fake.zmprov.display(),
        );
        let cfg = habeat::config::load_str(&yaml, &dir.join("habeat.yml")).expect("config");
        habeat::exec::Executor::new(&cfg, habeat::sink::EventSink::open(&cfg, false))
    }

    /// Whether the fake was asked for `promoteAccounts`.
    pub fn promoted(&self) -> bool {
        self.fake
            .invocations()
            .iter()
            .any(|i| i.args.iter().any(|a| a == "promoteAccounts"))
    }
}

/// An automatic action of the appserver role, with the checks the engine
/// hands out with it under the bed's config (quorum gate on, the peer
/// mailstore [`SOURCE`]).
pub fn automatic(id: u64, kind: ActionKind) -> Action {
    automatic_gated(id, kind, true)
}

/// [`automatic`] with `safety.quorum_gate` as given.
pub fn automatic_gated(id: u64, kind: ActionKind, quorum_gate: bool) -> Action {
    let mut cfg = habeat::engine::EngineConfig::new("secondary", "primary", &[Role::Appserver]);
    cfg.quorum_gate = quorum_gate;
    cfg.source_mail_host = Some(SOURCE.into());
    let checks = habeat::engine::PreStepCheck::for_action(Origin::Automatic, &kind, &cfg);
    Action {
        id: ActionId(id),
        role: Role::Appserver,
        origin: Origin::Automatic,
        step: None,
        kind,
        checks,
    }
}

/// `promoteAccounts source_mail_host <SOURCE> threads 2`.
pub fn promote_source() -> ActionKind {
    ActionKind::PromoteAccounts {
        source_mail_host: SOURCE.into(),
        target: PromoteTarget::SourceMailHost(SOURCE.into()),
        threads: 2,
        input_file: false,
    }
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    crate::bin::text(o)
}

/// A directory's files and their bytes, sorted (to show a dry run wrote
/// nothing).
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}
