//! A stand-in for Zextras's `carbonio` and `zmprov` CLIs, for tests only
//! (SPEC 7): same argv, same `{"response": {...}}` JSON, state kept in the
//! JSON file named by `FAKE_CARBONIO_STATE`, so that a promotion really
//! moves accounts from one mail host to another and every invocation is
//! logged with its argv, uid and environment.
//!
//! It behaves as `zmprov` when invoked under a name containing "zmprov"
//! (tests symlink it), as `carbonio` otherwise. Faults (hang, fail,
//! garbage, text around the JSON, "Unable to communicate with server", a
//! JSON without `response`, slow) are injected through the state file.
//!
//! The mailbox lifecycle (SPEC 7; `model.rs`), which the re-protection
//! and switchover features are tested against:
//! - **Clock.** The model's time is `clock` in the state (seconds since
//!   the Unix epoch) when a test froze it there (`FakeCarbonio::
//!   freeze_clock`, `advance`), else the wall clock. Each invocation first
//!   brings the model from `model_time` to now, then runs its command, so
//!   a frozen clock gives the same answers however often the fake runs.
//! - **Mail arrives.** An account with `mail_every` gets a mail at every
//!   multiple of it (sequence + 2, itemId + 1) unless its
//!   `zimbraAccountStatus` is `maintenance` (the MTA defers its mail). An
//!   account without it is static, as planted (older tests rely on that).
//! - **Replicas stream** with a latency (`delay`): a replica is where the
//!   source was `delay` seconds ago, so an active account's replica is
//!   always a little behind, and one in maintenance reaches the source
//!   `delay` after its last mail. A paused account or replica, or one
//!   that cannot reach Kafka, does not move. A replica without `delay`
//!   keeps its planted position (`None`: the source's).
//! - **`setAccountDestination HOST PRIORITY (accounts a,b | input_file
//!   F)`** adds a replica that starts at 0, unavailable, without Kafka,
//!   and is seeded linearly over its host's catch-up time (`catch_up` by
//!   host, `*`, default 10 s); then it is available, reaches Kafka and
//!   streams with `replication_delay` (default 2 s).
//! - **`promoteAccounts`** (`source_mail_host`, `accounts`, `input_file`,
//!   optionally `destination HOST`, else the lowest priority number) moves
//!   the account to that replica's host at the replica's position and
//!   removes that replica: the account has no replica left there. What the
//!   replica lacked (sequence and itemId gap) is appended to `losses`.
//! - **`getAccountStatus`** filters by `mailHost`, `replicaServer`,
//!   `accounts`/`input_file`, `domains`, `accountStatus` and
//!   `replicaStatus` (all that are given); another parameter is an error.
//! - **zmprov**: `ga ACCOUNT [ATTR...]` prints `# name ACCOUNT` and
//!   `zimbraAccountStatus: VALUE` (default `active`), `ma ACCOUNT
//!   zimbraAccountStatus VALUE` sets it (zmprov's six values), `fc [-a]
//!   account NAME`; with no arguments it reads such commands on standard
//!   input, one a line, all in this one process (logged as one invocation
//!   with its `stdin`), going on after a failed one and exiting with the
//!   last failure's code.
//!
//! Built by `cargo test` and `cargo test --all-targets` (it is an example
//! with `harness = false`, so both build it as a plain executable); tests
//! find it in `target/<profile>/examples/` (see
//! `tests/support/fake_carbonio.rs`).

mod model;
mod state;
mod zmprov;

use state::{Account, Fault, Invocation, STATE_ENV, State};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// What one run ends with: stdout, stderr, exit code.
struct Reply {
    out: String,
    err: String,
    code: u8,
}

impl Reply {
    fn ok(out: impl Into<String>) -> Reply {
        Reply {
            out: out.into(),
            err: String::new(),
            code: 0,
        }
    }
    fn fail(code: u8, err: impl Into<String>) -> Reply {
        Reply {
            out: String::new(),
            err: err.into(),
            code,
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let program = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let program = if program.contains("zmprov") {
        "zmprov"
    } else {
        "carbonio"
    };
    let args: Vec<String> = argv.iter().skip(1).cloned().collect();
    // The real habeat runs the CLI with a clean login environment, so the
    // state file may also be found beside the symlink that invoked us.
    let beside = argv
        .first()
        .map(|a| Path::new(a).with_file_name("state.json"))
        .filter(|p| p.is_file());
    let Some(path) = std::env::var_os(STATE_ENV).map(PathBuf::from).or(beside) else {
        // `cargo test --all-targets` runs this example (harness = false) as
        // a test of its own: there is nothing to do then.
        eprintln!("fake {program}: {STATE_ENV} is not set; nothing to do");
        return ExitCode::SUCCESS;
    };
    let reply = match run(program, &args, &path) {
        Ok(r) => r,
        Err(e) => Reply::fail(3, format!("fake {program}: {e}\n")),
    };
    print!("{}", reply.out);
    eprint!("{}", reply.err);
    let _ = std::io::stdout().flush();
    ExitCode::from(reply.code)
}

/// The state file, locked for one read-modify-write.
struct Locked {
    file: File,
}

impl Locked {
    fn open(path: &Path) -> Result<Locked, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        file.lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(Locked { file })
    }

    fn read(&mut self) -> Result<State, String> {
        let mut s = String::new();
        self.file.rewind().map_err(|e| e.to_string())?;
        self.file
            .read_to_string(&mut s)
            .map_err(|e| e.to_string())?;
        if s.trim().is_empty() {
            return Ok(State::default());
        }
        serde_json::from_str(&s).map_err(|e| format!("bad state file: {e}"))
    }

    /// Written in place (no rename), so only the file needs to be writable
    /// by whatever user the fake runs as.
    fn write(&mut self, st: &State) -> Result<(), String> {
        let s = serde_json::to_string_pretty(st).map_err(|e| e.to_string())?;
        self.file.set_len(0).map_err(|e| e.to_string())?;
        self.file.rewind().map_err(|e| e.to_string())?;
        self.file
            .write_all(s.as_bytes())
            .map_err(|e| e.to_string())?;
        self.file.sync_all().map_err(|e| e.to_string())
    }
}

fn update<T>(path: &Path, f: impl FnOnce(&mut State) -> T) -> Result<T, String> {
    let mut l = Locked::open(path)?;
    let mut st = l.read()?;
    let t = f(&mut st);
    l.write(&st)?;
    Ok(t)
}

/// The subcommand name faults are keyed by.
fn subcommand(program: &str, args: &[String]) -> String {
    if program == "zmprov" {
        return args.first().cloned().unwrap_or_default();
    }
    args.iter()
        .skip_while(|a| a.starts_with("--"))
        .nth(1)
        .cloned()
        .unwrap_or_default()
}

fn run(program: &str, args: &[String], path: &Path) -> Result<Reply, String> {
    // zmprov without a command is its batch mode: one command per line on
    // standard input, all run by this one process.
    let batch = if program == "zmprov" && args.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Some(zmprov::lines(&text))
    } else {
        None
    };
    // Faults of a batch are keyed by its first command's name.
    let sub = match &batch {
        Some(lines) => lines
            .first()
            .and_then(|l| l.first())
            .cloned()
            .unwrap_or_default(),
        None => subcommand(program, args),
    };
    // A hang leaves a grandchild in our process group, so that tests can
    // check that the whole group dies.
    let mut child_pid = None;
    let fault = update(path, |st| {
        st.faults.get(&sub).or_else(|| st.faults.get("*")).cloned()
    })?;
    if matches!(fault, Some(Fault::Hang)) {
        let child = std::process::Command::new("sleep").arg("3600").spawn();
        child_pid = child.ok().and_then(|c| i32::try_from(c.id()).ok());
    }
    if matches!(fault, Some(Fault::Escape)) {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("120");
        // SAFETY: setsid is a plain system call; nothing is allocated.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        child_pid = cmd.spawn().ok().and_then(|c| i32::try_from(c.id()).ok());
    }
    let mut inv = invocation(program, args, child_pid);
    inv.stdin = batch
        .iter()
        .flatten()
        .map(|words| words.join(" "))
        .collect();
    if let Some(file) = args
        .iter()
        .position(|a| a == "input_file")
        .and_then(|i| args.get(i + 1))
    {
        inv.input = std::fs::read_to_string(file)
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default();
    }
    // A promotion is an operation of the mailbox server: `core
    // getAllOperations` lists it while it runs (here: while this process
    // lives, so a killed client does not leave a ghost behind).
    let operation = (sub == "promoteAccounts").then(|| {
        serde_json::json!({
            "id": format!("op-{}", std::process::id()),
            "name": "PromoteAccounts",
            "description": args.join(" "),
            "pid": std::process::id(),
        })
    });
    update(path, |st| {
        st.invocations.push(inv);
        st.operations.extend(operation.clone());
    })?;
    let reply = run_command(program, args, batch.as_deref(), path, fault);
    if let Some(op) = &operation {
        update(path, |st| st.operations.retain(|o| o != op))?;
    }
    reply
}

fn run_command(
    program: &str,
    args: &[String],
    batch: Option<&[Vec<String>]>,
    path: &Path,
    fault: Option<Fault>,
) -> Result<Reply, String> {
    match fault {
        Some(Fault::Hang) => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        Some(Fault::Fail { exit_code }) => {
            return Ok(Reply::fail(
                u8::try_from(exit_code).unwrap_or(1),
                "ERROR: injected failure\n",
            ));
        }
        Some(Fault::Garbage) => return Ok(Reply::ok("\u{1b}[31m<<garbage>> {{{ not json ]]\n")),
        Some(Fault::Unreachable) => {
            return Ok(Reply::ok(
                "Unable to communicate with server. Check whether the server is running.\n",
            ));
        }
        Some(Fault::NoResponse) => return Ok(Reply::ok("{\"values\": []}\n")),
        Some(Fault::Slow { seconds }) => {
            std::thread::sleep(Duration::from_secs_f64(seconds.max(0.0)));
        }
        Some(Fault::ProgressThen { bytes, line }) => {
            let mut out = String::with_capacity(bytes + line.len() + 1);
            let mut i = 0u64;
            while out.len() < bytes {
                i += 1;
                out.push_str(&format!(
                    "promoting account {i}: replica in sync, switching\n"
                ));
            }
            out.push_str(&line);
            out.push('\n');
            return Ok(Reply::ok(out));
        }
        Some(Fault::Body { stdout }) => return Ok(Reply::ok(stdout)),
        Some(Fault::TextAround) | Some(Fault::Escape) | None => {}
    }
    let mut reply = update(path, |st| {
        let now = model::now(st);
        model::evolve(st, now);
        if let Some(lines) = batch {
            zmprov::batch(st, lines)
        } else if program == "zmprov" {
            zmprov::command(st, args)
        } else {
            carbonio(st, args)
        }
    })?;
    if matches!(fault, Some(Fault::TextAround)) && reply.code == 0 {
        reply.out = format!(
            "INFO  Connecting to mailbox service...\n{}Operation completed.\n",
            reply.out
        );
    }
    Ok(reply)
}

fn invocation(program: &str, args: &[String], child_pid: Option<i32>) -> Invocation {
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| {
            ["HOME", "USER", "LOGNAME", "PATH", "LANG"].contains(&k.as_str())
                || k.starts_with("CONSUL")
        })
        .collect();
    Invocation {
        program: program.into(),
        args: args.to_vec(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        pid: nix::unistd::getpid().as_raw(),
        pgid: nix::unistd::getpgrp().as_raw(),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        env,
        child_pid,
        stdin: Vec::new(),
        input: Vec::new(),
    }
}

/// An operation a test planted (no `pid`) runs until removed; one of a
/// promoteAccounts of this fake runs while that process lives (a zombie
/// nobody reaped, as under a container's init, has ended).
fn operation_alive(op: &serde_json::Value) -> bool {
    let Some(pid) = op.get("pid").and_then(serde_json::Value::as_i64) else {
        return true;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// `key value` pairs after a subcommand.
fn pairs(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    if !args.len().is_multiple_of(2) {
        return Err(format!("odd number of parameters: {args:?}"));
    }
    Ok(args
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect())
}

fn carbonio(st: &mut State, args: &[String]) -> Reply {
    let mut json = false;
    let mut rest = args;
    while let Some(flag) = rest.first().filter(|a| a.starts_with("--")) {
        match flag.as_str() {
            "--json" => json = true,
            "--sync" => {}
            other => return Reply::fail(2, format!("Unknown option {other}\n")),
        }
        rest = &rest[1..];
    }
    let (Some(module), Some(cmd)) = (rest.first(), rest.get(1)) else {
        return Reply::fail(
            1,
            "Usage: carbonio [--json] [--sync] <module> <command> ...\n",
        );
    };
    let params = &rest[2..];
    if module == "core" {
        return match cmd.as_str() {
            "getAllOperations" => {
                st.operations.retain(operation_alive);
                respond(
                    json,
                    serde_json::json!({"operations": st.operations}),
                    format!("{} operations running\n", st.operations.len()),
                )
            }
            _ => Reply::fail(1, format!("Unknown command core {cmd}\n")),
        };
    }
    if *module != st.module {
        return Reply::fail(1, format!("Unknown module {module}\n"));
    }
    if cmd == "doStopService" || cmd == "doStartService" {
        if params != ["module"] {
            return Reply::fail(1, format!("{cmd}: unknown service {params:?}\n"));
        }
        st.module_running = cmd == "doStartService";
        let word = if st.module_running {
            "started"
        } else {
            "stopped"
        };
        return respond(
            json,
            serde_json::json!({ "running": st.module_running }),
            format!("service module {word}\n"),
        );
    }
    let kv = match pairs(params) {
        Ok(kv) => kv,
        Err(e) => return Reply::fail(1, format!("{cmd}: {e}\n")),
    };
    match cmd.as_str() {
        "getAccountStatus" => account_status(st, &kv, json),
        "setAccountDestination" => set_destination(st, params, json),
        "promoteAccounts" => promote(st, &kv, json),
        "pauseReplicas" | "restartReplicas" => {
            let Some(list) = kv.get("accounts") else {
                return Reply::fail(1, format!("{cmd}: missing parameter accounts\n"));
            };
            let names: Vec<&str> = list.split(',').collect();
            if let Some(missing) = names
                .iter()
                .find(|n| !st.accounts.iter().any(|a| a.name == **n))
            {
                return Reply::fail(1, format!("{cmd}: account {missing} not found\n"));
            }
            let pause = cmd == "pauseReplicas";
            for a in st
                .accounts
                .iter_mut()
                .filter(|a| names.contains(&a.name.as_str()))
            {
                a.paused = pause;
            }
            respond(
                json,
                serde_json::json!({ "accounts": names }),
                format!("{cmd}: {} accounts\n", names.len()),
            )
        }
        _ => Reply::fail(1, format!("Unknown command {module} {cmd}\n")),
    }
}

fn respond(json: bool, response: serde_json::Value, text: String) -> Reply {
    if json {
        Reply::ok(format!("{}\n", serde_json::json!({ "response": response })))
    } else {
        Reply::ok(text)
    }
}

fn account_json(a: &Account) -> serde_json::Value {
    use serde_json::Value;
    // A number or a boolean, or its text when the account asks for strings.
    let v = |x: Value| match x {
        Value::Number(_) | Value::Bool(_) if a.as_strings => Value::String(x.to_string()),
        other => other,
    };
    let seq = a.sequence.unwrap_or(1);
    let item = a.item_id.unwrap_or(257);
    let mut obj = serde_json::json!({
        "accountId": a.id,
        "accountName": a.name,
        "accountMailHost": a.mail_host,
        "paused": v(a.paused.into()),
        "mailboxId": 1,
        "sequence": v(seq.into()),
        "itemId": v(item.into()),
        "replicas": a.replicas.iter().map(|r| {
            let mut rep = serde_json::json!({
                "accountId": a.id,
                "itemId": v(r.item_id.unwrap_or(item).into()),
                "sequence": v(r.sequence.unwrap_or(seq).into()),
                "mailboxId": 7,
                "destination": r.destination,
                "available": v(r.available.into()),
                "priority": v(r.priority.into()),
                "canConnectToKafka": v(r.can_connect_to_kafka.into()),
            });
            if let Some(p) = r.paused {
                rep["paused"] = v(p.into());
            }
            if let (Some(Value::Object(extra)), Some(o)) = (a.extra.get("replica"), rep.as_object_mut()) {
                o.extend(extra.clone());
            }
            rep
        }).collect::<Vec<_>>(),
    });
    if let Some(o) = obj.as_object_mut() {
        o.extend(
            a.extra
                .iter()
                .filter(|(k, _)| *k != "replica")
                .map(|(k, x)| (k.clone(), x.clone())),
        );
    }
    obj
}

/// Account names from `accounts a,b` or `input_file FILE` (one a line).
fn named(kv: &BTreeMap<String, String>, cmd: &str) -> Result<Option<Vec<String>>, Reply> {
    match (kv.get("accounts"), kv.get("input_file")) {
        (None, None) => Ok(None),
        (Some(list), None) => Ok(Some(
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(text) => Ok(Some(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Err(e) => Err(Reply::fail(1, format!("{cmd}: cannot read {file}: {e}\n"))),
        },
        (Some(_), Some(_)) => Err(Reply::fail(
            1,
            format!("{cmd}: give accounts or input_file, not both\n"),
        )),
    }
}

/// `getAccountStatus [mailHost H] [replicaServer H] [accounts a,b |
/// input_file F] [domains d,e] [accountStatus active|paused]
/// [replicaStatus available|unavailable]`: the filters given, all of them.
fn account_status(st: &State, kv: &BTreeMap<String, String>, json: bool) -> Reply {
    if let Some(k) = kv.keys().find(|k| {
        ![
            "mailHost",
            "replicaServer",
            "accounts",
            "input_file",
            "domains",
            "accountStatus",
            "replicaStatus",
        ]
        .contains(&k.as_str())
    }) {
        return Reply::fail(1, format!("getAccountStatus: unknown parameter {k}\n"));
    }
    let names = match named(kv, "getAccountStatus") {
        Ok(n) => n,
        Err(r) => return r,
    };
    let host = kv.get("mailHost");
    let replica = kv.get("replicaServer");
    let domains: Option<Vec<&str>> = kv.get("domains").map(|d| d.split(',').collect());
    let values: Vec<serde_json::Value> = st
        .accounts
        .iter()
        .filter(|a| host.is_none_or(|h| a.mail_host.eq_ignore_ascii_case(h)))
        .filter(|a| {
            replica.is_none_or(|h| {
                a.replicas
                    .iter()
                    .any(|r| r.destination.eq_ignore_ascii_case(h))
            })
        })
        .filter(|a| names.as_ref().is_none_or(|n| n.contains(&a.name)))
        .filter(|a| {
            domains.as_ref().is_none_or(|d| {
                a.name
                    .rsplit_once('@')
                    .is_some_and(|(_, dom)| d.iter().any(|x| x.eq_ignore_ascii_case(dom)))
            })
        })
        // `active` or `paused`: the replication on the source.
        .filter(|a| {
            kv.get("accountStatus")
                .is_none_or(|s| (s == "paused") == a.paused)
        })
        // `available` or `unavailable`: any of its replicas.
        .filter(|a| {
            kv.get("replicaStatus")
                .is_none_or(|s| a.replicas.iter().any(|r| r.available == (s == "available")))
        })
        .map(account_json)
        .collect();
    let bulk: Vec<&state::Bulk> = st
        .bulk
        .iter()
        .filter(|b| host.is_some_and(|h| b.mail_host.eq_ignore_ascii_case(h)))
        .filter(|_| kv.len() == 1)
        .collect();
    if json && !bulk.is_empty() {
        return Reply::ok(with_bulk(&values, &bulk));
    }
    let text = values.iter().map(|v| format!("{v}\n")).collect::<String>();
    respond(json, serde_json::json!({ "values": values }), text)
}

/// The `--json` listing of `values` and the generated accounts of `bulk`,
/// written as text (a tree of 500k accounts would be gigabytes).
fn with_bulk(values: &[serde_json::Value], bulk: &[&state::Bulk]) -> String {
    use std::fmt::Write;
    let mut out = String::from(r#"{"response":{"values":["#);
    let mut first = true;
    for v in values {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{v}");
    }
    for b in bulk {
        for i in 0..b.count {
            if !first {
                out.push(',');
            }
            first = false;
            let behind = b.behind_every > 0 && i % b.behind_every == 0;
            let _ = write!(
                out,
                r#"{{"accountId":"bulk-{i}","accountName":"bulk{i}@example.com","accountMailHost":"{h}","paused":false,"mailboxId":1,"sequence":2,"itemId":257,"replicas":[{{"accountId":"bulk-{i}","itemId":257,"sequence":{s},"mailboxId":7,"destination":"{r}","available":true,"priority":1,"canConnectToKafka":true}}]}}"#,
                h = b.mail_host,
                r = b.replica,
                s = if behind { 1 } else { 2 }
            );
        }
    }
    out.push_str("]}}\n");
    out
}

/// `setAccountDestination HOST PRIORITY (accounts a,b | input_file F)`:
/// each account gets a replica on HOST that starts unavailable, without
/// Kafka, and is seeded over the host's catch-up time. An account that
/// already has a replica there keeps it (its priority is updated).
fn set_destination(st: &mut State, params: &[String], json: bool) -> Reply {
    const CMD: &str = "setAccountDestination";
    let (Some(host), Some(priority)) = (params.first(), params.get(1)) else {
        return Reply::fail(
            1,
            format!("Usage: {CMD} <destination> <priority> (accounts a,b | input_file FILE)\n"),
        );
    };
    let Ok(priority) = priority.parse::<i64>() else {
        return Reply::fail(1, format!("{CMD}: priority {priority:?} is not a number\n"));
    };
    let kv = match pairs(&params[2..]) {
        Ok(kv) => kv,
        Err(e) => return Reply::fail(1, format!("{CMD}: {e}\n")),
    };
    let names = match named(&kv, CMD) {
        Ok(Some(n)) if !n.is_empty() => n,
        Ok(_) => return Reply::fail(1, format!("{CMD}: give accounts or input_file\n")),
        Err(r) => return r,
    };
    let idx = match by_name(st, CMD, names.iter().map(String::as_str)) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(&i) = idx
        .iter()
        .find(|&&i| st.accounts[i].mail_host.eq_ignore_ascii_case(host))
    {
        return Reply::fail(
            1,
            format!(
                "{CMD}: account {} lives on {host}: a replica cannot be on its own mailstore\n",
                st.accounts[i].name
            ),
        );
    }
    let now = model::now(st);
    for i in idx {
        let fresh = model::new_replica(st, host, priority, now);
        let a = &mut st.accounts[i];
        match a
            .replicas
            .iter_mut()
            .find(|r| r.destination.eq_ignore_ascii_case(host))
        {
            Some(r) => r.priority = priority,
            None => a.replicas.push(fresh),
        }
    }
    respond(
        json,
        serde_json::json!({ "destination": host, "priority": priority, "accounts": names }),
        format!(
            "Replica initialisation of {} accounts on {host} started\n",
            names.len()
        ),
    )
}

/// Move each chosen account to its replica on `destination`, or its best
/// one (lowest priority number): the account lives there now, with that
/// replica gone (it was the copy promoted); whatever that replica lacked
/// is recorded in [`State::losses`].
fn promote(st: &mut State, kv: &BTreeMap<String, String>, json: bool) -> Reply {
    const CMD: &str = "promoteAccounts";
    if let Some(t) = kv.get("threads")
        && t.parse::<u32>().is_err()
    {
        return Reply::fail(1, format!("{CMD}: threads {t:?} is not a number\n"));
    }
    let chosen: Vec<usize> = match (kv.get("source_mail_host"), named(kv, CMD)) {
        (_, Err(r)) => return r,
        (Some(host), Ok(None)) => st
            .accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.mail_host.eq_ignore_ascii_case(host))
            .map(|(i, _)| i)
            .collect(),
        (None, Ok(Some(names))) => match by_name(st, CMD, names.iter().map(String::as_str)) {
            Ok(v) => v,
            Err(r) => return r,
        },
        _ => {
            return Reply::fail(
                1,
                format!("{CMD}: give exactly one of source_mail_host, accounts, input_file\n"),
            );
        }
    };
    let destination = kv.get("destination");
    // Which replica each account is promoted to, decided before anything
    // moves: a destination one of them lacks refuses the whole command.
    let mut plan = Vec::new();
    for i in chosen {
        let a = &st.accounts[i];
        let pick = match destination {
            Some(h) => a
                .replicas
                .iter()
                .position(|r| r.destination.eq_ignore_ascii_case(h)),
            None => a
                .replicas
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.priority)
                .map(|(j, _)| j),
        };
        match (pick, destination) {
            (Some(j), _) => plan.push((i, j)),
            (None, Some(h)) => {
                return Reply::fail(
                    1,
                    format!("{CMD}: account {} has no replica on {h}\n", a.name),
                );
            }
            (None, None) => {}
        }
    }
    let now = model::now(st);
    let mut moved = Vec::new();
    for (i, j) in plan {
        let a = &mut st.accounts[i];
        if let Some(loss) = model::promote_to(a, j, now) {
            st.losses.push(loss);
        }
        moved.push(a.name.clone());
    }
    if let Some(host) = kv.get("source_mail_host") {
        for b in st
            .bulk
            .iter_mut()
            .filter(|b| b.mail_host.eq_ignore_ascii_case(host))
        {
            b.mail_host = b.replica.clone();
            moved.extend((0..b.count).map(|i| format!("bulk{i}@example.com")));
        }
    }
    let text = format!(
        "Promotion completed: {} accounts promoted\n{}",
        moved.len(),
        moved.iter().map(|n| format!("  {n}\n")).collect::<String>()
    );
    respond(json, serde_json::json!({ "promoted": moved }), text)
}

fn by_name<'a>(
    st: &State,
    cmd: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<Vec<usize>, Reply> {
    names
        .map(|n| {
            st.accounts
                .iter()
                .position(|a| a.name == n)
                .ok_or_else(|| Reply::fail(1, format!("{cmd}: account {n} not found\n")))
        })
        .collect()
}
