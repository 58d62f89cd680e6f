//! `habeat config check` as an operator runs it: the real binary, real
//! files, exit codes and the exact lines on stderr.

use clap::Parser;
use habeat::cli::{Cli, Command, ConfigCommand};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Output};

const BIN: &str = env!("CARGO_BIN_EXE_habeat");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/config").join(name)
}

/// Run `habeat --config <path> [--json] config check --file-only` without
/// any CONSUL_HTTP_TOKEN from the test's environment: the files here name
/// Carbonio's programs, which this machine has not (the host's side is
/// [`check_here`]'s).
fn check(path: &Path, json: bool) -> Output {
    let mut cmd = Proc::new(BIN);
    cmd.arg("--config").arg(path);
    if json {
        cmd.arg("--json");
    }
    cmd.args(["config", "check", "--file-only"])
        .env_remove("CONSUL_HTTP_TOKEN");
    cmd.output().expect("run habeat")
}

/// `habeat --config <path> config check`, looking on this host too.
fn check_here(path: &Path) -> Output {
    Proc::new(BIN)
        .arg("--config")
        .arg(path)
        .args(["config", "check"])
        .env_remove("CONSUL_HTTP_TOKEN")
        .output()
        .expect("run habeat")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit 2, nothing on stdout, and stderr is exactly `expected` (one
/// `habeat: ` line each).
#[track_caller]
fn refused(out: &Output, expected: &[String]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(text(&out.stdout), "", "nothing on stdout when refused");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn both_example_configs_pass_and_print_the_effective_config() {
    for name in ["habeat.yml", "legacy-habeat.yml"] {
        let path = root().join("config").join(name);
        let out = check(&path, false);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{name}: no warnings expected");
        assert!(
            stdout.starts_with("# Effective configuration of "),
            "{stdout}"
        );
        assert!(stdout.contains("\n  whoami: secondary\n"), "{stdout}");
        assert!(stdout.contains("\n  roles:\n    - appserver\n"), "{stdout}");
        // Defaults the file does not mention are filled in.
        assert!(stdout.contains("\n  recovery_grace: 1m\n"), "{stdout}");
        assert!(
            stdout.contains("\n  state_dir: /var/lib/habeat\n"),
            "{stdout}"
        );
    }
}

#[test]
fn json_output_is_json_with_the_effective_values() {
    let out = check(&root().join("config/legacy-habeat.yml"), true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["local"]["whoami"], "secondary");
    assert_eq!(v["local"]["roles"], serde_json::json!(["appserver"]));
    assert_eq!(v["primary"]["appserver_vmname"], "mbox1.example.com");
    assert_eq!(
        v["secondary"]["proxy_switch"]["bgp"]["deactivate"],
        serde_json::json!(["/usr/local/sbin/bgp-withdraw secondary"]),
        "the legacy `deativate` shows as deactivate"
    );
    assert_eq!(v["detection"]["quorum"], "all");
    assert_eq!(v["consul"]["port"], 8500);
    assert!(v["consul"].get("token").is_none(), "no token configured");
}

#[test]
fn every_mistake_in_a_file_is_reported_with_its_place() {
    let p = fixture("typos.yml");
    let d = p.display();
    refused(
        &check(&p, false),
        &[
            format!("habeat: {d}:5:3: local: unknown key `rol`; did you mean `role`?"),
            format!("habeat: {d}:6:12: local.threads: expected a whole number (1-256), found text"),
            format!(
                "habeat: {d}:8:17: primary.appserver_ip: `192.0.2.256` is not a valid IPv4 \
                 address (four numbers 0-255 separated by dots)"
            ),
            format!(
                "habeat: {d}:11:13: detection.interval: `5 sekonds` is not a duration (unknown \
                 time unit \"sekonds\", supported units: ns, us/µs, ms, sec, min, hours, days, \
                 weeks, months, years (and few variations)); write e.g. 2s, 500ms, 1m30s or 1h"
            ),
        ],
    );
}

#[test]
fn whoami_equal_to_dc_check_exits_2() {
    let p = fixture("same-dc.yml");
    refused(
        &check(&p, false),
        &[format!(
            "habeat: {}:3:13: local.dc_check is `primary`, the same as local.whoami: a node \
             watches the other datacenter; set dc_check to the peer's name",
            p.display()
        )],
    );
}

#[test]
fn empty_non_yaml_and_alias_bomb_files_exit_2() {
    let p = fixture("empty.yml");
    refused(
        &check(&p, false),
        &[format!(
            "habeat: {}:1:1: the file is empty (only blank lines or comments); start from the \
             example config/habeat.yml and set at least local.whoami and local.dc_check",
            p.display()
        )],
    );
    let p = fixture("not-yaml.ini");
    refused(
        &check(&p, false),
        &[format!(
            "habeat: {}:2:1: not valid YAML: did not find expected <document start>; check the \
             indentation (spaces, not tabs) and the quoting around this place",
            p.display()
        )],
    );
    let p = fixture("alias-bomb.yml");
    let out = check(&p, false);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("habeat: {}:", p.display())),
        "{err}"
    );
    assert!(err.contains("an alias bomb or runaway nesting"), "{err}");
}

#[test]
fn a_directory_or_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    refused(
        &check(dir.path(), false),
        &[format!(
            "habeat: {d}: is a directory, not a file; give the path of the YAML file itself \
             (e.g. --config {d}/habeat.yml)"
        )],
    );
    refused(
        &check(&dir.path().join("habeat.yml"), false),
        &[format!(
            "habeat: {d}/habeat.yml: no such file; pass the right path with --config (the \
             default is /etc/habeat/habeat.yml; the old one was /etc/hamon/habeat.yml)"
        )],
    );
}

#[test]
fn an_unreadable_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = dir.path().join("habeat.yml");
    std::fs::copy(root().join("config/habeat.yml"), &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = Proc::new(BIN);
    cmd.arg("--config").arg(&p).args(["config", "check"]);
    if nix::unistd::Uid::effective().is_root() {
        // root reads anything: run as nobody to see a real EACCES.
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("run habeat");
    refused(
        &out,
        &[format!(
            "habeat: {}: cannot be read: permission denied; run habeat as root, or let its user \
             read the file",
            p.display()
        )],
    );
}

const SECRET: &str = "9f3c2b1a-5d4e-4f60-8a7b-c0ffee123456";

#[test]
fn the_token_appears_in_no_output_text_json_warning_or_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(root().join("config/habeat.yml")).unwrap();
    let inline = dir.path().join("inline.yml");
    // World-readable with a token: must warn, and still not show it.
    std::fs::write(
        &inline,
        base.replace("  token_file: ~", &format!("  token: \"{SECRET}\"")),
    )
    .unwrap();
    std::fs::set_permissions(&inline, std::fs::Permissions::from_mode(0o644)).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{SECRET}\n")).unwrap();
    let via_file = dir.path().join("file.yml");
    std::fs::write(
        &via_file,
        base.replace(
            "  token_file: ~",
            &format!("  token_file: {}", token_file.display()),
        ),
    )
    .unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        base.replace(
            "  token_file: ~",
            &format!("  token: \"{SECRET}\"\n  port: eighty"),
        ),
    )
    .unwrap();
    let bad_token = dir.path().join("bad-token.yml");
    std::fs::write(
        &bad_token,
        base.replace(
            "  token_file: ~",
            &format!("  token: \"{SECRET} {SECRET}\""),
        ),
    )
    .unwrap();
    let mut warned = false;
    for (path, env, want) in [
        (&inline, false, 0),
        (&via_file, false, 0),
        (&root().join("config/habeat.yml"), true, 0),
        (&broken, true, 2),
        (&bad_token, false, 2),
    ] {
        for json in [false, true] {
            let mut cmd = Proc::new(BIN);
            cmd.arg("--config").arg(path);
            if json {
                cmd.arg("--json");
            }
            cmd.args(["config", "check", "--file-only"])
                .env_remove("CONSUL_HTTP_TOKEN");
            if env {
                cmd.env("CONSUL_HTTP_TOKEN", SECRET);
            }
            let out = cmd.output().expect("run habeat");
            let (o, e) = (text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(want), "{}: {e}", path.display());
            assert!(!o.contains(SECRET), "stdout shows the token:\n{o}");
            assert!(!e.contains(SECRET), "stderr shows the token:\n{e}");
            if want == 0 {
                if json {
                    assert!(o.contains("\"token\": \"********\""), "{o}");
                } else {
                    assert!(o.contains("# token: ******** (from "), "{o}");
                }
            }
            warned |= e.contains("habeat: warning: ")
                && e.contains("consul.token is in a file every local user can read (mode 0644)");
        }
    }
    assert!(
        warned,
        "a world-readable config holding a token must be warned about"
    );
}

#[test]
fn warnings_go_to_stderr_and_do_not_fail_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("habeat.yml");
    let base = std::fs::read_to_string(root().join("config/habeat.yml")).unwrap();
    std::fs::write(
        &p,
        base.replace("  quorum_gate: true ", "  quorum_gate: false"),
    )
    .unwrap();
    let out = check(&p, false);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.starts_with(&format!("habeat: warning: {}:", p.display()))
            && err.contains("safety.quorum_gate is false"),
        "{err}"
    );
    assert!(text(&out.stdout).contains("\n  quorum_gate: false\n"));
}

#[test]
fn bare_legacy_invocation_parses_as_check() {
    let cli = Cli::try_parse_from([
        "habeat",
        "--config",
        "/etc/hamon/habeat.yml",
        "--log",
        "/var/log/habeat.log",
    ])
    .expect("the old unit line must parse");
    assert!(cli.command.is_none(), "no command means check");
    assert_eq!(cli.config, Path::new("/etc/hamon/habeat.yml"));
    assert_eq!(cli.log.as_deref(), Some(Path::new("/var/log/habeat.log")));

    // Global flags also work after the subcommand.
    let cli = Cli::try_parse_from(["habeat", "config", "check", "--json", "--config", "/x.yml"])
        .expect("config check with flags after it");
    assert!(matches!(
        cli.command,
        Some(Command::Config(ConfigCommand::Check { .. }))
    ));
    assert!(cli.json);
    assert_eq!(cli.config, Path::new("/x.yml"));
}

#[test]
fn an_undefined_peer_dc_and_a_role_without_its_addresses_exit_2_with_their_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let undefined = dir.path().join("undefined-dc.yml");
    std::fs::write(
        &undefined,
        "local:\n  whoami: secondary\n  dc_check: primray\nprimary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\n",
    )
    .expect("write");
    refused(
        &check(&undefined, false),
        &[
            format!(
                "habeat: {}:3:13: local.dc_check names `primray`, but the file has no `primray:` \
                 section; did you mean `primary`? (the file defines `primary:`)",
                undefined.display()
            ),
            format!(
                "habeat: {}:4:1: unknown top-level key `primary`; did you mean `primray`?",
                undefined.display()
            ),
        ],
    );
    let no_ip = dir.path().join("no-appserver-ip.yml");
    std::fs::write(
        &no_ip,
        "local:\n  whoami: secondary\n  dc_check: primary\nprimary:\n  appserver_vmname: mbox1.example.com\n",
    )
    .expect("write");
    let out = check(&no_ip, false);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!(
            "habeat: {}:4:1: primary.appserver_ip is not set, but the appserver role",
            no_ip.display()
        )),
        "{err}"
    );
}

#[test]
fn an_interval_or_timeout_below_its_floor_exits_2_with_its_place() {
    // `interval: 1ns` was accepted with a warning: the daemon then spent a
    // quarter of a core on rounds and flooded systemd with WATCHDOG.
    let p = fixture("too-fast.yml");
    let d = p.display();
    refused(
        &check(&p, false),
        &[
            format!(
                "habeat: {d}:10:13: detection.interval: 1ns is below the floor of 100ms; write \
                 at least 100ms (e.g. 2s)"
            ),
            format!(
                "habeat: {d}:11:12: detection.timeout: 1us is below the floor of 10ms; write at \
                 least 10ms (e.g. 1s)"
            ),
        ],
    );
}

#[test]
fn a_quorum_the_prober_cannot_reach_is_refused_with_the_witnesses_it_has() {
    // The check used to count ICMP and both Consul witnesses for every
    // component, whether or not the prober could run them: here it saw 3
    // witnesses where the prober runs 1, and said nothing of the quorum.
    let p = fixture("quorum-unreachable.yml");
    let d = p.display();
    refused(
        &check(&p, false),
        &[
            format!(
                "habeat: {d}:8:1: primary.proxyserver_vmname is not set, but the proxyserver role \
                 (local.roles, line 7) needs it (the proxy's node name for the Consul \
                 witnesses); add it under `primary:`"
            ),
            format!(
                "habeat: {d}:11:11: detection.quorum is 3, but the proxy component has only 1 \
                 independent vote(s): icmp; it could never be judged Down; ICMP needs its \
                 address, the Consul witnesses its hostname (vmname); lower the quorum, write \
                 `all`, or add probes"
            ),
        ],
    );
}

#[test]
fn a_quorum_that_counted_the_two_serf_witnesses_as_two_votes_is_refused_at_its_place() {
    // ICMP, consul_members and consul_health: three witnesses, but the two
    // Consul ones report the same Serf gossip, so two votes. `quorum: 3`
    // was accepted when witnesses were counted; no round could ever bring
    // three independent Down votes.
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("habeat.yml");
    std::fs::write(
        &p,
        "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n\
         primary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\n\
         detection:\n  fall: 3\n  quorum: 3\n",
    )
    .expect("write config");
    let d = p.display();
    refused(
        &check(&p, false),
        &[format!(
            "habeat: {d}:10:11: detection.quorum is 3, but the appserver component has only 2 \
             independent vote(s): icmp; serf (consul_members + consul_health) (consul_members \
             and consul_health both report the local Consul agent's Serf gossip: one source, \
             one vote); it could never be judged Down; ICMP needs its address, the Consul \
             witnesses its hostname (vmname); lower the quorum, write `all`, or add probes"
        )],
    );
    // A third independent source makes the same quorum reachable.
    std::fs::write(
        &p,
        "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n\
         primary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\n\
         detection:\n  fall: 3\n  quorum: 3\nprobes:\n  appserver: [ { tcp: 7071 } ]\n",
    )
    .expect("write config");
    let out = check(&p, false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn status_lists_every_planned_witness_before_any_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("habeat.yml");
    std::fs::write(
        &config,
        format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  state_dir: {}\n\
             primary:\n  appserver_ip: 192.0.2.10\n  appserver_vmname: mbox1.example.com\n\
             probes:\n  appserver: [ {{ tcp: 7071 }} ]\n",
            dir.path().join("state").display()
        ),
    )
    .expect("write config");
    let out = Proc::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("status")
        .env_remove("CONSUL_HTTP_TOKEN")
        .output()
        .expect("run habeat");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for w in [
        "appserver/icmp",
        "appserver/tcp:7071",
        "appserver/consul_members",
        "appserver/consul_health",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(w) && l.contains("not heard from yet")),
            "{w} missing:\n{stdout}"
        );
    }
}

#[test]
fn status_shows_the_votes_and_which_witnesses_make_one_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("habeat.yml");
    std::fs::write(
        &config,
        format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  role: appserver\n  state_dir: {}\n\
             primary:\n  appserver_ip: 192.0.2.10\n  appserver_vmname: mbox1.example.com\n\
             probes:\n  appserver: [ {{ tcp: 7071 }} ]\ndetection:\n  quorum: 2\n",
            dir.path().join("state").display()
        ),
    )
    .expect("write config");
    let status = |json: bool| {
        let mut cmd = Proc::new(BIN);
        cmd.arg("--config").arg(&config);
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .arg("status")
            .env_remove("CONSUL_HTTP_TOKEN")
            .output()
            .expect("run habeat");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let stdout = status(false);
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("appserver")
            && l.contains("3 vote(s), 2 Down needed: icmp -; tcp:7071 -; serf (consul_members + consul_health) -")),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(&status(true)).expect("status --json");
    let app = &v["votes"]["appserver"];
    assert_eq!(app["count"], 3, "{app}");
    assert_eq!(app["needed"], 2, "{app}");
    assert_eq!(
        app["sources"],
        serde_json::json!([
            { "source": "icmp", "witnesses": ["appserver/icmp"], "vote": null },
            { "source": "tcp:7071", "witnesses": ["appserver/tcp:7071"], "vote": null },
            { "source": "serf",
              "witnesses": ["appserver/consul_members", "appserver/consul_health"],
              "vote": null },
        ])
    );
    // The directory is watched too, and has its own votes.
    assert!(v["votes"]["directory"]["count"].is_number(), "{v}");
}

#[test]
fn journal_rotation_sizes_need_a_unit_and_a_sane_range() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("habeat.yml");
    let base = "local:\n  whoami: secondary\n  dc_check: primary\nprimary:\n  \
                appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\njournal:\n";
    std::fs::write(&p, format!("{base}  max_size: 10\n  keep: 0\n")).unwrap();
    let d = p.display();
    refused(
        &check(&p, false),
        &[
            format!(
                "habeat: {d}:8:13: journal.max_size: 10 has no unit; write a size with a unit, \
                 e.g. 512KiB, 10MiB or 1GiB"
            ),
            format!("habeat: {d}:9:9: journal.keep: 0 is out of range: must be at least 1"),
        ],
    );
    std::fs::write(&p, format!("{base}  max_size: 1KiB\n")).unwrap();
    refused(
        &check(&p, false),
        &[format!(
            "habeat: {d}:8:13: journal.max_size: `1KiB` is out of range: it must be between \
             64KiB and 1TiB"
        )],
    );
    std::fs::write(&p, format!("{base}  max_size: ten megs\n")).unwrap();
    refused(
        &check(&p, false),
        &[format!(
            "habeat: {d}:8:13: journal.max_size: `ten megs` is not a size; write a size with a \
             unit, e.g. 512KiB, 10MiB or 1GiB"
        )],
    );
    std::fs::write(&p, format!("{base}  max_size: 512 k\n  keep: 12\n")).unwrap();
    let out = check(&p, false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("journal:\n  max_size: 512KiB\n  keep: 12\n"),
        "{}",
        text(&out.stdout)
    );
}

/// Run `habeat <args>` with stdout a pipe whose reader is already gone, as
/// `habeat … | true` often is by the time habeat writes.
fn into_a_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Proc::new(BIN)
        .args(args)
        .env_remove("CONSUL_HTTP_TOKEN")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run habeat")
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_without_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let config = dir.path().join("habeat.yml");
    std::fs::write(
        &config,
        format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  state_dir: {d}/state\n  \
             checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  \
             checkRestartReplicaFile: {d}/rstop\n\
             primary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\n"
        ),
    )
    .expect("write config");
    // A journal with something in it, for `history`.
    std::fs::write(
        state.join("events.jsonl"),
        "{\"at\":1700000000000,\"severity\":\"info\",\"kind\":\"paused\",\"message\":\"x\"}\n",
    )
    .expect("journal");
    let c = config.to_str().expect("utf-8 path");
    let runs: [&[&str]; 7] = [
        &["--config", c, "config", "check", "--file-only"],
        &["--config", c, "--json", "config", "check", "--file-only"],
        &["--config", c, "status"],
        &["--config", c, "--json", "status"],
        &["--config", c, "history"],
        &["--config", c, "--json", "history"],
        &["completions", "bash"],
    ];
    for args in runs {
        let out = into_a_closed_pipe(args);
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// A node's minimal file in `dir`, with `extra` appended.
fn minimal_config(dir: &Path, extra: &str) -> PathBuf {
    let d = dir.display();
    let path = dir.join("habeat.yml");
    std::fs::write(
        &path,
        format!(
            "local:\n  whoami: secondary\n  dc_check: primary\n  state_dir: {d}/state\n  \
             checkDownFile: {d}/down\n  checkPromotionFile: {d}/prom\n  \
             checkRestartReplicaFile: {d}/rstop\n\
             primary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: mbox1.example.com\n{extra}"
        ),
    )
    .expect("write config");
    path
}

#[test]
fn config_check_refuses_programs_and_a_run_as_user_this_host_lacks_at_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    // A program root may not run (no x bit at all) and one only its owner
    // (root) may: `nobody` may not.
    let no_x = dir.path().join("no-x");
    std::fs::write(&no_x, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&no_x, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let root_only = dir.path().join("root-only");
    std::fs::write(&root_only, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let bad = minimal_config(
        dir.path(),
        &format!(
            "carbonio:\n  cli: /opt/zextras/bin/carbonioo\n  zmprov: /nonexistent\n  run_as: zextra\n\
             hooks:\n  after_promotion:\n    - [\"{d}/no-x\", \"--now\"]\n    - \"{d}/no-x --shell-is-not-looked-into\"\n\
             witnesses:\n  command: [\"no-such-witness-program\"]\n"
        ),
    );
    let out = check_here(&bad);
    let p = bad.display();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 5, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "habeat: {p}:12:8: carbonio.cli: cannot use /opt/zextras/bin/carbonioo: No such file"
        )),
        "{err}"
    );
    assert!(
        lines[0].ends_with("correct the path, or install the program"),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "habeat: {p}:13:11: carbonio.zmprov: cannot use /nonexistent: No such file"
        )),
        "{err}"
    );
    assert_eq!(
        lines[2],
        format!(
            "habeat: {p}:14:11: carbonio.run_as: no user `zextra` on this host; the Carbonio \
             CLIs run as the user that owns the installation (zextras): correct the name, or \
             write `run_as: \"\"` to run them as habeat's own user"
        ),
        "{err}"
    );
    assert!(
        lines[3].starts_with(&format!(
            "habeat: {p}:17:5: hooks.after_promotion: {d}/no-x is not executable by root"
        )),
        "{err}"
    );
    assert!(
        lines[4].starts_with(&format!(
            "habeat: {p}:20:12: witnesses.command: no program `no-such-witness-program` in PATH"
        )),
        "{err}"
    );
    // The same file passes when only the file is checked.
    let file_only = check(&bad, false);
    assert_eq!(
        file_only.status.code(),
        Some(0),
        "{}",
        text(&file_only.stderr)
    );

    // The user exists but the permission bits keep it out.
    let nobody = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(nobody.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = minimal_config(
        nobody.path(),
        &format!(
            "carbonio:\n  cli: {}\n  zmprov: /bin/true\n  run_as: nobody\n",
            root_only.display()
        ),
    );
    let out = check_here(&cfg);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "carbonio.cli: {} is not executable by nobody",
            root_only.display()
        )),
        "{err}"
    );
    // Executable by all: it passes.
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = check_here(&cfg);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn fencing_is_held_against_each_real_agents_own_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fencing = |body: &str| {
        minimal_config(
            dir.path(),
            &format!(
                "carbonio:\n  cli: /bin/true\n  zmprov: /bin/true\n  run_as: \"\"\nfencing:\n{body}"
            ),
        )
    };
    // fence_redfish addresses the node itself: `ip` is its BMC, and its
    // metadata marks `plug` optional. No plug is a valid fencing.appserver.
    let ok = fencing(
        "  appserver:\n    agent: /usr/sbin/fence_redfish\n    options:\n      ip: 192.0.2.99\n      username: admin\n      password_script: /bin/true\n",
    );
    let out = check_here(&ok);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A typo in an option name and a required parameter missing, each
    // at its line with the agent's own words.
    let bad = fencing(
        "  appserver:\n    agent: /usr/sbin/fence_redfish\n    options:\n      ip: 192.0.2.99\n      ssl_insecur: true\n",
    );
    let out = check_here(&bad);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let p = bad.display();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "habeat: {p}:19:7: fencing.appserver.options: /usr/sbin/fence_redfish requires \
                 `username` (Login name); add `username: ...` under fencing.appserver.options"
            ),
            format!(
                "habeat: {p}:20:7: fencing.appserver.options.ssl_insecur: /usr/sbin/fence_redfish \
                 has no parameter `ssl_insecur` (its metadata, `/usr/sbin/fence_redfish -o \
                 metadata`, lists them); did you mean `ssl_insecure` (Use SSL connection without \
                 verifying certificate)?"
            ),
        ]
    );
    // A program that is no fence agent says nothing useful for metadata.
    let not_agent = fencing("  appserver:\n    agent: /bin/false\n");
    let out = check_here(&not_agent);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "fencing.appserver.agent: `/bin/false -o metadata` did not describe the agent"
        ),
        "{err}"
    );
    // fence_dummy takes options of its own: one it lacks is named.
    let dummy = fencing(
        "  appserver:\n    agent: /usr/sbin/fence_dummy\n    options:\n      type: file\n      status_fil: /tmp/x\n",
    );
    let out = check_here(&dummy);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("did you mean `status_file`"), "{err}");
}

#[test]
fn a_port_in_an_address_a_bare_number_and_a_case_slip_say_what_was_meant_also_in_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("habeat.yml");
    std::fs::write(
        &path,
        "local:\n  whoami: Secondary\n  dc_check: primary\nprimary:\n  appserver_ip: 192.0.2.20\n  \
         appserver_vmname: m.example.com\nsecondary:\n  appserver_ip: 192.0.2.21\nconsul:\n  \
         hostname: 127.0.0.1:8500\ndetection:\n  timeout: 1500\n",
    )
    .expect("write");
    let p = path.display();
    refused(
        &check(&path, false),
        &[
            format!(
                "habeat: {p}:7:1: unknown top-level key `secondary`; datacenter names are \
                 case-sensitive: local.whoami is `Secondary`; did you mean `whoami: secondary`?"
            ),
            format!(
                "habeat: {p}:10:13: consul.hostname: `127.0.0.1:8500` has a port (`:8500`), but \
                 no port is written here; write `127.0.0.1` and the port in its own key \
                 (consul.port for the Consul agent)"
            ),
            format!(
                "habeat: {p}:12:12: detection.timeout: 1500 has no unit; write 1500ms \
                 (milliseconds, most likely meant) or 1500s"
            ),
        ],
    );
    // --json: the same problems on stdout, as data.
    let out = check(&path, true);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(v["valid"], false);
    let problems = v["problems"].as_array().expect("a list");
    assert_eq!(problems.len(), 3, "{v:#}");
    assert_eq!(problems[1]["file"], p.to_string());
    assert_eq!(problems[1]["line"], 10);
    assert_eq!(problems[1]["column"], 13);
    assert_eq!(problems[1]["key"], "consul.hostname");
    assert_eq!(problems[2]["key"], "detection.timeout");
    assert!(
        problems[2]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1500ms"),
        "{v:#}"
    );
}
