//! The configuration loader as a library: the example files load with the
//! meaning an operator expects, every kind of bad input gets its one-line
//! message at the right line and column, and the Consul token stays secret.

use habeat::config::{
    Config, ConfigError, HookCommand, LoadEnv, ProbeSpec, Quorum, Secret, TokenSource,
    load_file_with, load_str_with,
};
use habeat::model::Role;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A small valid file: a secondary-DC appserver watching primary.
const BASE: &str = "\
local:
  whoami: secondary
  dc_check: primary
primary:
  appserver_ip: 192.0.2.20
  appserver_vmname: mbox1.example.com
";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

fn no_env() -> LoadEnv {
    LoadEnv::default()
}

fn load(text: &str) -> Result<Config, ConfigError> {
    load_str_with(text, Path::new("t.yml"), &no_env())
}

fn ok(text: &str) -> Config {
    match load(text) {
        Ok(c) => c,
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    }
}

/// The error lines for `text` (panics if it loads).
fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.lines(),
    }
}

/// Exactly one error, starting with `t.yml:<at>: ` and containing `what`.
#[track_caller]
fn one_error(text: &str, at: &str, what: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let prefix = format!("t.yml:{at}: ");
    assert!(
        errs[0].starts_with(&prefix) && errs[0].contains(what),
        "expected `{prefix}...{what}...`, got `{}`",
        errs[0]
    );
}

// -- the example files ------------------------------------------------------

#[test]
fn new_example_loads_with_its_documented_meaning() {
    let cfg = load_file_with(&example("habeat.yml"), &no_env()).expect("config/habeat.yml");
    assert_eq!(cfg.local.whoami, "secondary");
    assert_eq!(cfg.local.dc_check, "primary");
    assert_eq!(cfg.local.roles, vec![Role::Appserver]);
    assert!(!cfg.is_primary());
    assert_eq!(
        cfg.peer().appserver_vmname.as_deref(),
        Some("mbox1.example.com")
    );
    assert_eq!(cfg.peer().consul_ips, vec!["192.0.2.41", "192.0.2.43"]);
    let bgp = &cfg.own().expect("own DC").proxy_switch["bgp"];
    assert_eq!(
        bgp.activate,
        vec![HookCommand::Argv(vec![
            "/usr/local/sbin/bgp-switch".into(),
            "announce".into(),
            "secondary".into()
        ])]
    );
    assert_eq!(
        bgp.deactivate[0].argv(),
        vec![
            "/bin/sh",
            "-c",
            "/usr/local/sbin/bgp-switch withdraw secondary"
        ]
    );
    assert_eq!(cfg.probes.appserver, vec![ProbeSpec::Tcp(7071)]);
    assert_eq!(cfg.probes.directory, vec![ProbeSpec::Ldap(389)]);
    assert_eq!(cfg.detection.interval, Duration::from_secs(2));
    assert_eq!(cfg.detection.quorum, Quorum::All);
    assert_eq!(cfg.safety.recovery_grace, Duration::from_secs(60));
    assert_eq!(cfg.carbonio.run_as.as_deref(), Some("zextras"));
    assert!(cfg.consul.token.is_none());
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn legacy_example_keeps_every_old_meaning() {
    let cfg = load_file_with(&example("legacy-habeat.yml"), &no_env()).expect("legacy file");
    // `role:` (single) becomes roles; `deativate` is deactivate.
    assert_eq!(cfg.local.roles, vec![Role::Appserver]);
    let bgp = &cfg.dcs["secondary"].proxy_switch["bgp"];
    assert_eq!(
        bgp.deactivate,
        vec![HookCommand::Shell(
            "/usr/local/sbin/bgp-withdraw secondary".into()
        )]
    );
    assert_eq!(cfg.local.proxy_switch, "bgp");
    assert_eq!(cfg.local.threads, 5);
    assert_eq!(
        cfg.local.down_file(Role::Appserver),
        Path::new("/var/tmp/appserverdown-habeat-appserver")
    );
    assert_eq!(
        cfg.local.check_restart_replica_file,
        Path::new("/var/tmp/appserverrstopha")
    );
    assert_eq!(cfg.consul.base_url(), "http://127.0.0.1:8500");
    assert!(
        cfg.consul.token.is_none(),
        "`token:` left empty means no token"
    );
    // Keys the old file never had get their defaults.
    assert_eq!(cfg.detection.fall, 3);
    assert!(cfg.safety.quorum_gate);
}

#[test]
fn effective_config_is_itself_a_valid_config_with_the_same_meaning() {
    for name in ["habeat.yml", "legacy-habeat.yml"] {
        let cfg = load_file_with(&example(name), &no_env()).expect(name);
        let text = cfg.render_text();
        let again = load_str_with(&text, Path::new("effective.yml"), &no_env())
            .unwrap_or_else(|e| panic!("{name}: effective config does not load:\n{e}\n{text}"));
        let body = |t: &str| t.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&text), body(&again.render_text()), "{name}");
    }
}

#[test]
fn defaults_fill_a_minimal_file() {
    let cfg = ok(BASE);
    assert_eq!(cfg.local.roles, vec![Role::Appserver]);
    assert_eq!(cfg.local.state_dir, Path::new("/var/lib/habeat"));
    assert_eq!(cfg.consul.port, 8500);
    assert_eq!(cfg.carbonio.module, "MailReplica");
    assert_eq!(cfg.hooks.timeout, Duration::from_secs(60));
    assert!(cfg.metrics.listen.is_none());
    assert!(
        cfg.own().is_none(),
        "secondary: is not defined and not needed"
    );
}

#[test]
fn hook_commands_are_strings_or_argv_lists() {
    let cfg = ok(&format!(
        "{BASE}hooks:\n  after_promotion:\n    - echo done\n    - [/usr/bin/logger, -t, habeat, 5]\n"
    ));
    assert_eq!(
        cfg.hooks.after_promotion,
        vec![
            HookCommand::Shell("echo done".into()),
            HookCommand::Argv(vec![
                "/usr/bin/logger".into(),
                "-t".into(),
                "habeat".into(),
                "5".into()
            ])
        ]
    );
}

#[test]
fn run_as_empty_means_current_user() {
    assert_eq!(
        ok(&format!("{BASE}carbonio:\n  run_as:\n")).carbonio.run_as,
        None
    );
    assert_eq!(
        ok(&format!("{BASE}carbonio:\n  run_as: \"\"\n"))
            .carbonio
            .run_as,
        None
    );
}

#[test]
fn ipv6_metrics_listen_and_quorum_number_are_accepted() {
    let cfg = ok(&format!(
        "{BASE}metrics:\n  listen: \"[::1]:9873\"\ndetection:\n  quorum: 2\n"
    ));
    assert_eq!(cfg.metrics.listen, Some("[::1]:9873".parse().unwrap()));
    assert_eq!(cfg.detection.quorum, Quorum::AtLeast(2));
}

// -- bad input: one message each, at the right place -------------------------

#[test]
fn unknown_key_is_named_with_the_nearest_valid_one() {
    one_error(
        &format!("{BASE}detection:\n  intervall: 2s\n"),
        "8:3",
        "detection: unknown key `intervall`; did you mean `interval`?",
    );
    one_error(
        &BASE.replace(
            "  dc_check: primary\n",
            "  dc_check: primary\n  check_down_file: /x\n",
        ),
        "4:3",
        "did you mean `checkDownFile`?",
    );
}

#[test]
fn misspelt_deactivate_suggests_the_right_spelling_not_the_legacy_one() {
    one_error(
        &format!("{BASE}secondary:\n  proxy_switch:\n    bgp:\n      deactvate: [x]\n"),
        "10:7",
        "secondary.proxy_switch.bgp: unknown key `deactvate`; did you mean `deactivate`?",
    );
}

#[test]
fn unknown_top_level_key_suggests_a_section_or_datacenter() {
    one_error(
        &format!("{BASE}detecton:\n  fall: 2\n"),
        "7:1",
        "unknown top-level key `detecton`; did you mean `detection`?",
    );
    one_error(
        &format!("{BASE}tertiary:\n  proxy_ip: 10.0.0.1\n"),
        "7:1",
        "datacenter named by local.whoami (`secondary`) or local.dc_check (`primary`)",
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    one_error(
        &format!("{BASE}detection:\n  fall: three\n"),
        "8:9",
        "detection.fall: expected a whole number (1-1000), found text",
    );
    one_error(
        &format!("{BASE}witnesses:\n  consul_members: \"yes\"\n"),
        "8:19",
        "witnesses.consul_members: expected true or false, found text",
    );
    one_error(
        &BASE.replace("appserver_ip: 192.0.2.20", "appserver_ip: [192.0.2.20]"),
        "5:17",
        "primary.appserver_ip: expected an IP address or hostname, found a list",
    );
    one_error(
        &format!("{BASE}  consul_ips: 192.0.2.41\n"),
        "7:15",
        "primary.consul_ips: expected a list of IP addresses or hostnames",
    );
    one_error(
        &format!("{BASE}probes: [tcp]\n"),
        "7:9",
        "probes: expected a mapping of `key: value` lines, found a list",
    );
}

#[test]
fn unparseable_durations_are_refused() {
    one_error(
        &format!("{BASE}detection:\n  interval: 5 sekonds\n"),
        "8:13",
        "detection.interval: `5 sekonds` is not a duration",
    );
    one_error(
        &format!("{BASE}hooks:\n  timeout: 30\n"),
        "8:12",
        "hooks.timeout: 30 has no unit; write 30s or 30ms",
    );
    one_error(
        &format!("{BASE}safety:\n  recovery_grace: 0s\n"),
        "8:19",
        "safety.recovery_grace: must be longer than zero",
    );
}

#[test]
fn bad_addresses_are_refused() {
    one_error(
        &BASE.replace("192.0.2.20", "192.0.2.256"),
        "5:17",
        "primary.appserver_ip: `192.0.2.256` is not a valid IPv4 address",
    );
    one_error(
        &BASE.replace("mbox1.example.com", "mbox1..example.com"),
        "6:21",
        "primary.appserver_vmname: `mbox1..example.com` is not a valid hostname",
    );
    one_error(
        &format!("{BASE}  proxy_ip: \"http://proxy1\"\n"),
        "7:13",
        "primary.proxy_ip: `http://proxy1` is neither an IP address nor a valid hostname",
    );
    one_error(
        &format!("{BASE}consul:\n  hostname: bad_host\n"),
        "8:13",
        "consul.hostname: `bad_host` is neither an IP address nor a valid hostname",
    );
}

#[test]
fn whoami_equal_to_dc_check_is_refused() {
    one_error(
        &BASE.replace("whoami: secondary", "whoami: primary"),
        "3:13",
        "local.dc_check is `primary`, the same as local.whoami",
    );
}

#[test]
fn dc_check_naming_an_undefined_datacenter_is_refused() {
    let errs = errors(&BASE.replace("dc_check: primary", "dc_check: primray"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "t.yml:3:13: local.dc_check names `primray`, but the file has no `primray:` section"
        ),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("t.yml:4:1: unknown top-level key `primary`; did you mean `primray`?"),
        "{}",
        errs[1]
    );
}

#[test]
fn whoami_and_dc_check_are_required() {
    one_error(
        "local:\n  dc_check: primary\nprimary:\n  appserver_ip: 192.0.2.20\n  appserver_vmname: m.example.com\n",
        "1:1",
        "local.whoami is missing",
    );
    one_error(
        "primary:\n  proxy_ip: 10.0.0.1\n",
        "1:1",
        "there is no `local:` section",
    );
}

#[test]
fn each_role_needs_its_addresses() {
    one_error(
        "local:\n  whoami: secondary\n  dc_check: primary\nprimary:\n  appserver_vmname: mbox1.example.com\n",
        "4:1",
        "primary.appserver_ip is not set, but the appserver role (the default when local.roles is not set) needs it",
    );
    one_error(
        &BASE.replace("  appserver_ip: 192.0.2.20\n", ""),
        "4:1",
        "primary.appserver_ip is not set",
    );
    let errs = errors(
        "local:\n  whoami: secondary\n  dc_check: primary\n  roles: [proxyserver]\nprimary:\n  appserver_ip: 192.0.2.20\n",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].contains(
            "primary.proxy_ip is not set, but the proxyserver role (local.roles, line 4)"
        )
    );
    assert!(errs[1].contains("primary.proxyserver_vmname is not set"));
    // Without Consul witnesses the proxy's node name is not needed.
    ok(
        "local:\n  whoami: secondary\n  dc_check: primary\n  roles: [proxyserver]\nprimary:\n  proxy_ip: 192.0.2.10\nwitnesses:\n  consul_members: false\n  consul_health: false\n",
    );

    let errs = errors(&format!("{BASE}  consul_ips: [192.0.2.41]\n").replace(
        "  dc_check: primary\n",
        "  dc_check: primary\n  roles: [appserver, consulserver]\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].contains("secondary.consul_vmnames is not set, but the consulserver role"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].contains("primary.consul_vmnames is not set"),
        "{}",
        errs[1]
    );
}

#[test]
fn unknown_role_and_role_with_roles_are_refused() {
    one_error(
        &BASE.replace(
            "  dc_check: primary\n",
            "  dc_check: primary\n  role: appsrever\n",
        ),
        "4:9",
        "local.role: unknown role `appsrever`; did you mean `appserver`?",
    );
    one_error(
        &BASE.replace(
            "  dc_check: primary\n",
            "  dc_check: primary\n  role: appserver\n  roles: [appserver]\n",
        ),
        "5:10",
        "local.role and local.roles are both set",
    );
}

#[test]
fn enabled_proxy_switch_needs_its_commands() {
    one_error(
        &BASE.replace(
            "  dc_check: primary\n",
            "  dc_check: primary\n  proxy_enable_activate: true\n",
        ),
        "4:26",
        "local.proxy_enable_activate is true, but `secondary:` has no proxy_switch.bgp",
    );
    one_error(
        &format!("{BASE}secondary:\n  proxy_switch:\n    bgp:\n      activate: [\"announce\"]\n")
            .replace(
                "  dc_check: primary\n",
                "  dc_check: primary\n  proxy_enable_deactivate: true\n",
            ),
        "4:28",
        "secondary.proxy_switch.bgp.deactivate lists no command",
    );
}

#[test]
fn zero_counts_and_bad_quorum_are_refused() {
    for (key, at) in [("fall", "8:9"), ("rise", "8:9")] {
        one_error(
            &format!("{BASE}detection:\n  {key}: 0\n"),
            at,
            &format!("detection.{key}: 0 is out of range: must be at least 1"),
        );
    }
    one_error(
        &BASE.replace(
            "  dc_check: primary\n",
            "  dc_check: primary\n  threads: 0\n",
        ),
        "4:12",
        "local.threads: 0 is out of range: must be at least 1",
    );
    one_error(
        &format!("{BASE}detection:\n  quorum: 0\n"),
        "8:11",
        "detection.quorum: 0 is out of range",
    );
    one_error(
        &format!("{BASE}detection:\n  quorum: most\n"),
        "8:11",
        "detection.quorum: expected `all` or a number of Down votes",
    );
    one_error(
        &format!("{BASE}detection:\n  quorum: 4\n"),
        "8:11",
        "detection.quorum is 4, but the appserver component has only 2 independent vote(s): \
         icmp; serf (consul_members + consul_health)",
    );
}

#[test]
fn quorum_counts_the_two_serf_witnesses_as_one_vote() {
    // Three witnesses (ICMP and the two that read Serf), two votes.
    one_error(
        &format!("{BASE}detection:\n  quorum: 3\n"),
        "8:11",
        "detection.quorum is 3, but the appserver component has only 2 independent vote(s)",
    );
    assert_eq!(
        ok(&format!("{BASE}detection:\n  quorum: 2\n"))
            .detection
            .quorum,
        Quorum::AtLeast(2)
    );
    // Without one of them, Serf is still one vote.
    assert_eq!(
        ok(&format!(
            "{BASE}witnesses:\n  consul_health: false\ndetection:\n  quorum: 2\n"
        ))
        .detection
        .quorum,
        Quorum::AtLeast(2)
    );
    // `all` is every witness, whatever the sources: always reachable.
    assert_eq!(
        ok(&format!("{BASE}detection:\n  quorum: all\n"))
            .detection
            .quorum,
        Quorum::All
    );
}

#[test]
fn metrics_listen_must_be_ip_and_port() {
    one_error(
        &format!("{BASE}metrics:\n  listen: localhost:9873\n"),
        "8:11",
        "metrics.listen: `localhost:9873` is not ip:port",
    );
    one_error(
        &format!("{BASE}metrics:\n  listen: 127.0.0.1\n"),
        "8:11",
        "is not ip:port",
    );
}

#[test]
fn only_the_consul_provider_is_supported() {
    one_error(
        &BASE.replace(
            "  dc_check: primary\n",
            "  dc_check: primary\n  provider: hetrix\n",
        ),
        "4:13",
        "local.provider: `hetrix` is not supported",
    );
}

#[test]
fn bad_probes_are_refused() {
    one_error(
        &format!("{BASE}probes:\n  appserver: [{{ tpc: 7071 }}]\n"),
        "8:17",
        "probes.appserver: unknown probe kind `tpc`; did you mean `tcp`?",
    );
    one_error(
        &format!("{BASE}probes:\n  directory: [{{ ldap: 70000 }}]\n"),
        "8:23",
        "`ldap` needs a port number (1-65535)",
    );
    one_error(
        &format!("{BASE}probes:\n  proxy: [{{ http: \"ftp://x\" }}]\n"),
        "8:19",
        "`ftp://x` is not an http:// or https:// URL",
    );
}

#[test]
fn empty_and_comment_only_files_are_refused() {
    for text in ["", "\n\n", "# only a comment\n"] {
        one_error(text, "1:1", "the file is empty");
    }
}

#[test]
fn files_that_are_not_yaml_or_not_a_config_are_refused() {
    one_error("[section]\nkey=value\n", "2:1", "not valid YAML");
    one_error(
        "just some words\n",
        "1:1",
        "the file holds text where habeat expects sections",
    );
    one_error("- a\n- b\n", "1:1", "the file holds a list");
    one_error("local:\n\twhoami: x\n", "2:2", "not valid YAML: tabs");
    one_error("local: [\n", "1:8", "not valid YAML");
}

#[test]
fn duplicate_keys_and_several_documents_are_refused() {
    one_error(
        &BASE.replace(
            "  dc_check: primary\n",
            "  dc_check: primary\n  whoami: primary\n",
        ),
        "4:3",
        "key `whoami` appears twice in the same section",
    );
    one_error(
        &format!("{BASE}---\n{BASE}"),
        "7:1",
        "more than one YAML document",
    );
}

#[test]
fn alias_bombs_and_runaway_nesting_are_refused() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12u8 {
        let (p, c) = ((b'a' + i - 1) as char, (b'a' + i) as char);
        bomb.push_str(&format!(
            "{c}: &{c} [{}]\n",
            vec![format!("*{p}"); 10].join(", ")
        ));
    }
    let errs = errors(&bomb);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("t.yml:"), "{}", errs[0]);
    assert!(errs[0].contains("alias bomb"), "{}", errs[0]);
    let deep = format!("local: {}{}\n", "[".repeat(100), "]".repeat(100));
    let errs = errors(&deep);
    assert!(errs[0].contains("runaway nesting"), "{}", errs[0]);
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let errs = errors(
        "local:\n  whoami: secondary\n  dc_check: primary\n  threads: 0\nprimary:\n  appserver_ip: 10.0.0.999\n  appserver_vmname: mbox1.example.com\ndetection:\n  fall: x\n",
    );
    let lines: Vec<&str> = errs
        .iter()
        .map(|e| e.split(':').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(lines, vec!["4", "6", "9"], "{errs:#?}");
}

#[test]
fn empty_list_entries_from_the_old_template_are_ignored_with_a_warning() {
    let cfg = ok(&format!("{BASE}  consul_ips:\n  -\n  - 192.0.2.41\n"));
    assert_eq!(cfg.peer().consul_ips, vec!["192.0.2.41"]);
    assert_eq!(cfg.warnings.len(), 1);
    assert!(
        cfg.warnings[0]
            .starts_with("t.yml:8:4: primary.consul_ips: an empty list entry is ignored"),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn disabling_the_quorum_gate_is_a_warning() {
    let cfg = ok(&format!("{BASE}safety:\n  quorum_gate: false\n"));
    assert!(!cfg.safety.quorum_gate);
    assert_eq!(cfg.warnings.len(), 1);
    assert!(cfg.warnings[0].starts_with("t.yml:8:16: safety.quorum_gate is false"));
    assert!(cfg.warnings[0].contains("split brain"));
}

const CONSULSERVER: &str = "\
local:
  whoami: secondary
  dc_check: primary
  roles: [appserver, consulserver]
primary:
  appserver_ip: 192.0.2.20
  appserver_vmname: mbox1.example.com
  consul_ips: [192.0.2.31, 192.0.2.33]
  consul_vmnames: [svc1.example.com, svc3.example.com]
secondary:
  consul_vmnames: [svc2.example.com]
";

#[test]
fn raft_recovery_is_confirmed_by_default_and_the_timer_rule_is_a_warning() {
    let cfg = ok(CONSULSERVER);
    assert_eq!(
        cfg.safety.raft_recovery,
        habeat::model::RaftRecoveryPolicy::Confirmed
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let cfg = ok(&format!("{CONSULSERVER}safety:\n  raft_recovery: timer\n"));
    assert_eq!(
        cfg.safety.raft_recovery,
        habeat::model::RaftRecoveryPolicy::Timer
    );
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings[0].starts_with("t.yml:13:18: safety.raft_recovery is timer"),
        "{:?}",
        cfg.warnings
    );
    assert!(cfg.warnings[0].contains("split brain"));
    let cfg = ok(&format!(
        "{CONSULSERVER}safety:\n  raft_recovery: operator\n"
    ));
    assert_eq!(
        cfg.safety.raft_recovery,
        habeat::model::RaftRecoveryPolicy::Operator
    );
    let errs = errors(&format!(
        "{CONSULSERVER}safety:\n  raft_recovery: sometimes\n"
    ));
    assert!(errs[0].contains("raft_recovery"), "{errs:?}");
}

#[test]
fn consul_service_commands_are_argv_lists_and_never_empty() {
    let cfg = ok(&format!(
        "{CONSULSERVER}consul:\n  service_stop: [/usr/local/bin/sd, stop]\n  service_discover_user: consul\n"
    ));
    assert_eq!(cfg.consul.service_stop, ["/usr/local/bin/sd", "stop"]);
    assert_eq!(
        cfg.consul.service_start,
        ["systemctl", "start", "service-discover"]
    );
    assert_eq!(cfg.consul.service_discover_user, "consul");
    let errs = errors(&format!("{CONSULSERVER}consul:\n  service_start: []\n"));
    assert!(errs[0].contains("consul.service_start"), "{errs:?}");
}

// -- files on disk ------------------------------------------------------------

#[test]
fn a_directory_a_missing_file_and_a_device_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_file_with(dir.path(), &no_env())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "{}: is a directory, not a file",
            dir.path().display()
        )),
        "{e}"
    );
    let missing = dir.path().join("nope.yml");
    let e = load_file_with(&missing, &no_env()).unwrap_err().to_string();
    assert!(
        e.contains("nope.yml: no such file; pass the right path with --config"),
        "{e}"
    );
    let e = load_file_with(Path::new("/dev/null"), &no_env())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/dev/null: is not a regular file"), "{e}");
}

#[test]
fn binary_and_oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin.yml");
    std::fs::write(&bin, b"local:\n  whoami: \xff\xfe\n").unwrap();
    let e = load_file_with(&bin, &no_env()).unwrap_err().to_string();
    assert!(e.ends_with("bin.yml:2:11: the file is not UTF-8 text (binary data here); is this really habeat.yml? save it as UTF-8"), "{e}");
    let big = dir.path().join("big.yml");
    std::fs::write(&big, "#".repeat(2 * 1024 * 1024)).unwrap();
    let e = load_file_with(&big, &no_env()).unwrap_err().to_string();
    assert!(
        e.contains("is 2097152 bytes; a habeat configuration is a few KiB"),
        "{e}"
    );
}

// -- the Consul token ---------------------------------------------------------

const TOKEN_INLINE: &str = "11111111-aaaa-4bbb-8ccc-inline000000";
const TOKEN_FILE: &str = "22222222-aaaa-4bbb-8ccc-file00000000";
const TOKEN_ENV: &str = "33333333-aaaa-4bbb-8ccc-env000000000";

fn env_token() -> LoadEnv {
    LoadEnv {
        consul_http_token: Some(Secret::new(TOKEN_ENV)),
        ..LoadEnv::default()
    }
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn token_precedence_is_inline_then_file_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    write_mode(&tf, &format!("{TOKEN_FILE}\n"), 0o600);

    let cfg = load_str_with(BASE, Path::new("t.yml"), &env_token()).unwrap();
    assert_eq!(
        cfg.consul.token.as_ref().map(Secret::expose),
        Some(TOKEN_ENV)
    );
    assert_eq!(cfg.consul.token_source, Some(TokenSource::Environment));

    let with_file = format!("{BASE}consul:\n  token_file: {}\n", tf.display());
    let cfg = load_str_with(&with_file, Path::new("t.yml"), &env_token()).unwrap();
    assert_eq!(
        cfg.consul.token.as_ref().map(Secret::expose),
        Some(TOKEN_FILE)
    );
    assert_eq!(cfg.consul.token_source, Some(TokenSource::File));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);

    let inline = format!("{BASE}consul:\n  token: \"{TOKEN_INLINE}\"\n");
    let cfg = load_str_with(&inline, Path::new("t.yml"), &env_token()).unwrap();
    assert_eq!(
        cfg.consul.token.as_ref().map(Secret::expose),
        Some(TOKEN_INLINE)
    );
    assert_eq!(cfg.consul.token_source, Some(TokenSource::Config));

    let both = format!(
        "{BASE}consul:\n  token: \"{TOKEN_INLINE}\"\n  token_file: {}\n",
        tf.display()
    );
    let e = load_str_with(&both, Path::new("t.yml"), &no_env())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.yml:9:15: consul.token and consul.token_file are both set"),
        "{e}"
    );
}

#[test]
fn bad_token_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    write_mode(&empty, "\n", 0o600);
    one_error(
        &format!("{BASE}consul:\n  token_file: {}\n", empty.display()),
        "8:15",
        "is empty; put the Consul ACL token in it",
    );
    one_error(
        &format!(
            "{BASE}consul:\n  token_file: {}/missing\n",
            dir.path().display()
        ),
        "8:15",
        "missing no such file",
    );
    one_error(
        &format!("{BASE}consul:\n  token_file: relative/token\n"),
        "8:15",
        "consul.token_file: `relative/token` is a relative path",
    );
}

#[test]
fn world_readable_token_files_and_configs_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    write_mode(&tf, TOKEN_FILE, 0o644);
    let cfg = load_str_with(
        &format!("{BASE}consul:\n  token_file: {}\n", tf.display()),
        Path::new("t.yml"),
        &no_env(),
    )
    .unwrap();
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].contains("can be read by every local user (mode 0644)"));

    let file = dir.path().join("habeat.yml");
    write_mode(
        &file,
        &format!("{BASE}consul:\n  token: \"{TOKEN_INLINE}\"\n"),
        0o644,
    );
    let cfg = load_file_with(&file, &no_env()).unwrap();
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(
        cfg.warnings[0]
            .contains(":8:10: consul.token is in a file every local user can read (mode 0644)")
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        load_file_with(&file, &no_env())
            .unwrap()
            .warnings
            .is_empty()
    );
    // A world-readable file without a token is fine.
    write_mode(&file, BASE, 0o644);
    assert!(
        load_file_with(&file, &no_env())
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn the_token_never_appears_in_output_errors_or_debug() {
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    write_mode(&tf, TOKEN_FILE, 0o644);
    let secrets = [TOKEN_INLINE, TOKEN_FILE, TOKEN_ENV];
    let check = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows a token:\n{text}");
        }
    };
    for cfg_text in [
        format!("{BASE}consul:\n  token: \"{TOKEN_INLINE}\"\n"),
        format!("{BASE}consul:\n  token_file: {}\n", tf.display()),
        BASE.to_owned(),
    ] {
        let cfg = load_str_with(&cfg_text, Path::new("t.yml"), &env_token()).unwrap();
        assert!(cfg.consul.token.is_some());
        check("render_text", &cfg.render_text());
        check("render_json", &cfg.render_json());
        check("Debug", &format!("{cfg:?}"));
        check("warnings", &cfg.warnings.join("\n"));
    }
    // Errors next to a token, and errors about the token itself.
    for bad in [
        format!("{BASE}consul:\n  token: \"{TOKEN_INLINE}\"\n  port: http\n"),
        format!("{BASE}consul:\n  token: \"{TOKEN_INLINE} x\"\n"),
        format!("{BASE}consul:\n  tokn: \"{TOKEN_INLINE}\"\n"),
        format!(
            "{BASE}consul:\n  token: \"{TOKEN_INLINE}\"\n  token_file: {}\n",
            tf.display()
        ),
        format!("{BASE}consul:\n  token: \"{TOKEN_INLINE}\n"),
        format!("{BASE}consul:\n  token: {TOKEN_ENV}\n  hostname: 999.1.1.1\n"),
        format!("{BASE}consul:\n  token: 123456789012\n"),
    ] {
        let e = load_str_with(&bad, Path::new("t.yml"), &env_token()).unwrap_err();
        check("error", &e.to_string());
        check("error Debug", &format!("{e:?}"));
    }
    let e = load(&format!("{BASE}consul:\n  token: 123456789012\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("consul.token: expected text, found a number; put the token in quotes"),
        "{e}"
    );
    assert!(!e.contains("123456789012"), "{e}");
}

#[test]
fn the_serf_witnesses_take_one_round_by_default_and_rise_like_the_others() {
    let cfg = ok(&format!("{BASE}detection:\n  fall: 4\n  rise: 3\n"));
    let e = habeat::engine::EngineConfig::from(&cfg);
    assert_eq!((e.fall, e.rise), (4, 3));
    assert_eq!((e.serf_fall, e.serf_rise), (1, 3), "serf_rise follows rise");
    let cfg = ok(&format!(
        "{BASE}detection:\n  fall: 4\n  serf_fall: 4\n  serf_rise: 5\n"
    ));
    let e = habeat::engine::EngineConfig::from(&cfg);
    assert_eq!((e.serf_fall, e.serf_rise), (4, 5));
    one_error(
        &format!("{BASE}detection:\n  serf_fall: 0\n"),
        "8:14",
        "detection.serf_fall: 0 is out of range: must be at least 1",
    );
    one_error(
        &format!("{BASE}detection:\n  serf_rise: often\n"),
        "8:14",
        "detection.serf_rise: expected a whole number (1-1000), found text",
    );
}
