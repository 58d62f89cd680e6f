//! `habeat check`, `promote`, `status`, `rearm`, `history` and `--dry-run`,
//! run as the real binary against a real dead host (a network namespace
//! whose link is cut), the Consul API test server and the fake carbonio.

use crate::bed::{Bed, Builder, NODE, REPLICA, SOURCE, text, tree};
use crate::fake_carbonio;
use crate::support;

use fake_carbonio::{Fault, account};
use std::path::Path;
use support::{Need, require};

/// One rehearsal: a primary appserver in a namespace, Consul, the fake CLI
/// with two accounts, the whole failover (flush, restart, bgp switch, an
/// `after_promotion` hook, all logged to hooks.log), short CLI timeouts.
fn bed() -> Builder {
    Bed::builder()
        .alice_and_bob()
        .consul_provider_threads_3()
        .full_failover()
        .carbonio_timeouts("5s", "3s")
        .add(
            "hooks",
            r#"after_promotion: ["echo after_promotion >> {hooks}"]"#,
        )
}

#[tokio::test(flavor = "multi_thread")]
async fn appserver_gone_promotes_once_then_flushes_restarts_switches_and_hooks_in_order() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    let healthy = bed.run(&["check"]);
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy));
    assert_eq!(bed.promotions(), 0, "a healthy peer was promoted");

    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
    assert_eq!(
        bed.fake.accounts_on(REPLICA),
        ["alice@example.com", "bob@example.com"]
    );
    assert!(bed.fake.accounts_on(SOURCE).is_empty());
    let calls: Vec<String> = bed
        .fake
        .invocations()
        .iter()
        .map(|i| format!("{} {}", i.program, i.args.join(" ")))
        .collect();
    let promote = calls
        .iter()
        .position(|c| {
            c.contains(&format!(
                "promoteAccounts source_mail_host {SOURCE} threads 3"
            ))
        })
        .unwrap_or_else(|| panic!("no promoteAccounts in {calls:#?}"));
    assert!(calls[promote].contains("--sync"), "{calls:#?}");
    let flushes = calls.iter().filter(|c| c.starts_with("zmprov fc")).count();
    assert_eq!(flushes, 2, "{calls:#?}");
    assert!(
        calls.iter().any(|c| c.contains("restartReplicas")),
        "{calls:#?}"
    );
    assert_eq!(bed.hooks_log(), "activate\nafter_promotion\n");
    assert!(bed.lock("appserverdown-habeat-appserver").exists());
    assert!(bed.lock("appserverprom-habeat-appserver").exists());
    assert_eq!(
        bed.consul.lock_holder("habeat/failover/mbox1.example.com"),
        None,
        "gate not released"
    );

    // The peer is still gone: the next runs do nothing more.
    let again = bed.run(&["check"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(bed.promotions(), 1, "promoted twice: {}", text(&again));

    let history = bed.run(&["history", "--json"]);
    assert_eq!(history.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&history.stdout).lines().count() > 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn consul_without_leader_blocks_the_promotion_and_status_says_why() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    bed.kill_peer();
    bed.consul.set_leader(None);
    let out = bed.run(&["check"]);
    assert_eq!(
        bed.promotions(),
        0,
        "promoted without a quorum: {}",
        text(&out)
    );
    // Refused for safety: exit 4, so a timer unit shows as failed.
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(!bed.lock("appserverprom-habeat-appserver").exists());
    let status = bed.run(&["status"]);
    let s = String::from_utf8_lossy(&status.stdout).to_lowercase();
    assert!(
        s.contains("quorum"),
        "status does not explain: {}",
        text(&status)
    );
    // Each clause once: the reason used to wrap itself ("cannot prove the
    // peer is gone: ... (quorum gate refused: cannot prove the peer is
    // gone: ...)").
    for clause in ["cannot prove the peer is gone", "no consul quorum"] {
        assert!(
            s.lines().all(|l| l.matches(clause).count() <= 1),
            "{clause:?} said twice:\n{s}"
        );
    }
    let json = bed.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status --json");
    assert_eq!(v["why"][0]["kind"], "step_waiting", "{v:#}");
    assert_eq!(
        v["why"][0]["reason"]["waiting"]["refusal"]["kind"], "no_quorum",
        "{v:#}"
    );
}

/// An operator's way out of a stuck gate: the gate refused for want of a
/// leader, then `safety.quorum_gate: false` (the emergency switch): status
/// shows no wait for a gate no longer asked for, and `check` acts.
#[tokio::test(flavor = "multi_thread")]
async fn turning_the_gate_off_ends_the_wait_for_it_and_check_acts_at_once() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    bed.kill_peer();
    bed.consul.set_leader(None);
    let refused = bed.run(&["check"]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert_eq!(bed.promotions(), 0);
    let mut yaml = std::fs::read_to_string(&bed.config).expect("read config");
    yaml.push_str("safety:\n  quorum_gate: false\n");
    std::fs::write(&bed.config, yaml).expect("write config");
    let status = bed.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json");
    for stale in ["step_waiting", "retry_wait"] {
        assert_ne!(v["why"][0]["kind"], stale, "a stale wait: {v:#}");
    }
    let human = bed.run(&["status"]);
    let s = String::from_utf8_lossy(&human.stdout).to_lowercase();
    assert!(!s.contains("no consul quorum"), "a stale wait:\n{s}");
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
}

/// The leader is back after a refusal: the next `check` takes the gate and
/// promotes, without waiting out the refusal's retry delay.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_back_after_a_refusal_promotes_on_the_next_check() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    bed.kill_peer();
    bed.consul.set_leader(None);
    let refused = bed.run(&["check"]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert_eq!(bed.promotions(), 0);
    bed.consul.set_leader(Some("127.0.0.1:8300"));
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn consul_api_down_is_unknown_and_never_promotes() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    bed.kill_peer();
    bed.consul
        .set_fault(Some(support::consul_api::Fault::ServerError));
    let out = bed.run(&["check"]);
    assert_eq!(bed.promotions(), 0, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_promote_refuses_while_the_source_answers_and_force_overrides() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    let refused = bed.run(&["promote", "--source-mail-host", SOURCE, "--yes"]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert_eq!(bed.promotions(), 0);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let why = stderr
        .lines()
        .find_map(|l| l.strip_prefix("habeat: refused: witness "))
        .unwrap_or_else(|| panic!("no reason on stderr: {}", text(&refused)))
        .to_owned();

    // The same refusal in JSON says why too, for scripts.
    let json = bed.run(&["promote", "--source-mail-host", SOURCE, "--yes", "--json"]);
    assert_eq!(json.status.code(), Some(4), "{}", text(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&json)));
    // (The same words as the text output's, but for the witness's latency,
    // which differs between the two runs.)
    let json_why = v["refused"].as_str().unwrap_or_default();
    let stem = |s: &str| s.split(" (").next().unwrap_or_default().to_owned();
    assert_eq!(
        stem(json_why.trim_start_matches("refused: witness ")),
        stem(&why),
        "{}",
        text(&json)
    );
    assert!(json_why.contains("--force"), "{}", text(&json));
    assert_eq!(bed.promotions(), 0);

    let no_yes = bed.run(&["promote", "--accounts", "alice@example.com", "--force"]);
    assert_eq!(
        no_yes.status.code(),
        Some(2),
        "non-terminal without --yes: {}",
        text(&no_yes)
    );

    let forced = bed.run(&[
        "promote",
        "--accounts",
        "alice@example.com",
        "--force",
        "--yes",
    ]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert_eq!(bed.fake.accounts_on(REPLICA), ["alice@example.com"]);
    assert!(
        bed.lock("appserverprom-habeat-appserver").exists(),
        "{}",
        text(&forced)
    );

    // Recorded like an automatic promotion: the daemon will not promote again.
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_promotion_is_killed_at_its_timeout_and_check_exits_3() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    bed.fake.set_fault("promoteAccounts", Fault::Hang);
    bed.kill_peer();
    let started = std::time::Instant::now();
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "did not stop at the timeout"
    );
    let hung = bed
        .fake
        .invocations()
        .into_iter()
        .find(|i| i.args.iter().any(|a| a == "promoteAccounts"))
        .expect("promoteAccounts was invoked");
    assert!(
        !fake_carbonio::process_alive(hung.pid),
        "the hung CLI survived its timeout"
    );
    if let Some(g) = hung.child_pid {
        assert!(
            !fake_carbonio::process_alive(g),
            "the hung CLI's grandchild survived"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_prints_the_plan_and_touches_nothing() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    // On a node where habeat never ran, --dry-run creates no state directory.
    let first = bed.run(&["--dry-run", "check"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(
        !bed.dir.path().join("state").exists(),
        "--dry-run created the state directory"
    );
    // A first real run creates the state directory, as on a live node.
    assert_eq!(bed.run(&["check"]).status.code(), Some(0));
    bed.kill_peer();
    let before = tree(bed.dir.path());
    let accounts_before = bed.fake.state().accounts;
    let calls_before = bed.fake.invocations().len();
    let out = bed.run(&["--dry-run", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A simulation, not a guess: the real listing, the real
    // account names, the exact argv of the promotion and of the switch.
    for name in ["alice@example.com", "bob@example.com"] {
        assert!(stdout.contains(name), "{name} not named: {}", text(&out));
    }
    assert!(
        stdout.contains(&format!(
            "promoteAccounts source_mail_host {SOURCE} threads 3"
        )),
        "promoteAccounts' argv not shown: {}",
        text(&out)
    );
    assert!(
        stdout.contains("echo activate"),
        "argv of the switch not shown: {}",
        text(&out)
    );
    assert!(
        stdout.contains("cannot be known"),
        "the dry run does not say where it cannot know: {}",
        text(&out)
    );
    assert!(
        !stdout.contains("dry-run-account") && !stdout.contains("promotion recorded"),
        "the dry run guessed or claimed a record: {}",
        text(&out)
    );
    assert_eq!(
        tree(bed.dir.path()),
        before,
        "--dry-run changed habeat's files"
    );
    assert_eq!(
        bed.fake.state().accounts,
        accounts_before,
        "--dry-run moved accounts"
    );
    // Only the read-only calls the real run would make reached the CLI.
    let during: Vec<String> = bed.fake.invocations()[calls_before..]
        .iter()
        .map(|i| i.args.join(" "))
        .collect();
    assert!(!during.is_empty(), "--dry-run made no listing");
    for c in &during {
        assert!(
            c.contains("getAccountStatus") || c.contains("getAllOperations"),
            "--dry-run ran a command that changes something: {c}"
        );
    }
    // The engine's plan for the round, asked before the simulated steps:
    // it would act, and says on what.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("dry run: appserver: would act now: ")),
        "the dry run does not give the plan: {}",
        text(&out)
    );
    // The JSON says the same: the plan asked before the simulated steps,
    // not the simulation's own records.
    let json = bed.run(&["--dry-run", "--json", "check"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&json)));
    assert_eq!(v["why"][0]["kind"], "would_act", "{v:#}");
    // Paused, the plan says why it would not act, and nothing is simulated.
    assert_eq!(bed.run(&["pause", "--for", "1h"]).status.code(), Some(0));
    let out = bed.run(&["--dry-run", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("dry run: appserver: ") && l.contains("paused")),
        "a paused dry run does not say why it would not act: {}",
        text(&out)
    );
    assert!(
        stdout.contains("a real run would do nothing now"),
        "a paused dry run simulated steps: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_logs_to_stderr_and_leaves_the_log_file_alone() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    bed.kill_peer();
    let log = bed.dir.path().join("habeat.log");
    let logarg = log.to_str().expect("utf-8 path");
    let out = bed.run(&["--dry-run", "--log", logarg, "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!log.exists(), "--dry-run created the --log file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notice: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("--dry-run: logging to stderr only"))
        .collect();
    assert_eq!(notice.len(), 1, "one line says so: {}", text(&out));
    assert!(notice[0].contains(logarg), "{}", notice[0]);

    // An existing log file is not appended to either.
    std::fs::write(&log, "earlier line\n").expect("write log");
    let out = bed.run(&["--dry-run", "--log", logarg, "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&log).expect("read log"),
        "earlier line\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_event_hooks_get_every_journaled_event_as_json_and_dry_run_runs_none() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed()
        .add(
            "hooks",
            r#"on_event:
  - "cat >> \"$HABEAT_OUT/on_event.jsonl\""
  - ["/bin/sh", "-c", "echo \"$HABEAT_EVENT $HABEAT_SEVERITY $HABEAT_WHOAMI\" >> \"$HABEAT_OUT/on_event.env\""]"#,
        )
        .start()
        .await;
    let dir = bed.dir.path();
    // The hooks find their output directory through a variable they do not
    // get from habeat: only HABEAT_* variables reach them, so write it in.
    let yaml = std::fs::read_to_string(&bed.config)
        .expect("read config")
        .replace("$HABEAT_OUT", &dir.display().to_string());
    std::fs::write(&bed.config, yaml).expect("write config");
    let hook_out = dir.join("on_event.jsonl");
    let journal = dir.join("state").join("events.jsonl");
    let lines = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    };

    bed.kill_peer();
    let dry = bed.run(&["--dry-run", "check"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(
        !hook_out.exists(),
        "--dry-run ran an on_event hook: {}",
        text(&dry)
    );

    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.promotions(), 1, "{}", text(&out));
    // Every event the run journaled reached the hook once, in order, as
    // one line of the same JSON - before `check` exited.
    let journaled = lines(&journal);
    let delivered = lines(&hook_out);
    assert!(!journaled.is_empty());
    assert_eq!(delivered, journaled, "{}", text(&out));
    let kinds: Vec<&str> = delivered
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    for kind in ["verdict_changed", "promotion_intent", "action_succeeded"] {
        assert!(kinds.contains(&kind), "no {kind} event: {kinds:?}");
    }
    assert!(
        delivered
            .iter()
            .any(|e| e["event"] == "verdict_changed" && e["to"] == "down"),
        "{delivered:#?}"
    );
    let env = std::fs::read_to_string(dir.join("on_event.env")).unwrap_or_default();
    assert_eq!(env.lines().count(), delivered.len(), "{env}");
    assert!(env.contains("verdict_changed warning secondary"), "{env}");

    // An operator command delivers its events before it exits too.
    let rearm = bed.run(&["rearm"]);
    assert_eq!(rearm.status.code(), Some(0), "{}", text(&rearm));
    let delivered = lines(&hook_out);
    assert_eq!(delivered, lines(&journal), "{}", text(&rearm));
    assert!(
        delivered.iter().any(|e| e["event"] == "rearmed"),
        "{delivered:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn primary_dc_with_disable_ha_module_stops_the_module_once_and_never_promotes() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().set("local", "disable_ha_module: true").start().await;
    let yaml = std::fs::read_to_string(&bed.config)
        .expect("read")
        .replace("whoami: secondary", "whoami: tertiary_tmp")
        .replace("dc_check: primary", "dc_check: secondary_tmp")
        .replace("primary:\n", "secondary_tmp:\n")
        .replace("secondary:\n", "primary:\n")
        .replace("secondary_tmp:", "secondary:")
        .replace("whoami: tertiary_tmp", "whoami: primary")
        .replace("dc_check: secondary_tmp", "dc_check: secondary");
    std::fs::write(&bed.config, yaml).expect("write");
    // The peer (now `secondary`) holds the namespace's address.
    let cfg = bed.run(&["config", "check"]);
    assert_eq!(cfg.status.code(), Some(0), "{}", text(&cfg));
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let _ = bed.run(&["check"]);
    assert_eq!(bed.promotions(), 0, "the primary DC promoted");
    let stops = bed
        .fake
        .invocations()
        .iter()
        .filter(|i| i.args.iter().any(|a| a == "doStopService"))
        .count();
    assert_eq!(stops, 1, "{}", text(&out));
    assert!(bed.lock("appserverrstopha").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn proxyserver_switches_when_the_peer_proxy_dies_and_switches_back_when_it_returns() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed()
        .set("local", "proxy_enable_deactivate: true")
        .start()
        .await;
    let yaml = std::fs::read_to_string(&bed.config)
        .expect("read")
        .replace("  role: appserver\n", "  role: proxyserver\n")
        .replace(
            "primary:\n",
            &format!(
                "primary:\n  proxy_ip: {}\n  proxyserver_vmname: proxy1.example.com\n",
                bed.ns.ip()
            ),
        )
        .replace(
            "consul:\n",
            "witnesses:\n  consul_members: false\n  consul_health: false\nconsul:\n",
        );
    std::fs::write(&bed.config, yaml).expect("write");
    let cfg = bed.run(&["config", "check"]);
    assert_eq!(cfg.status.code(), Some(0), "{}", text(&cfg));

    assert_eq!(bed.run(&["check"]).status.code(), Some(0));
    assert_eq!(bed.hooks_log(), "", "switched while the peer proxy is up");

    bed.ns.set_link(false);
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(bed.hooks_log(), "activate\n", "{}", text(&out));
    assert!(bed.lock("appserverdown-habeat-proxyserver").exists());
    assert!(bed.lock("appserverprom-habeat-proxyserver").exists());
    assert_eq!(
        bed.promotions(),
        0,
        "the proxyserver role promoted accounts"
    );

    bed.ns.set_link(true);
    let back = bed.run(&["check"]);
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    assert_eq!(bed.hooks_log(), "activate\ndeactivate\n", "{}", text(&back));
    assert!(!bed.lock("appserverdown-habeat-proxyserver").exists());
    assert!(!bed.lock("appserverprom-habeat-proxyserver").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_back_rearms_automatically_without_failing_back() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    bed.kill_peer();
    assert_eq!(bed.run(&["check"]).status.code(), Some(0));
    assert_eq!(bed.promotions(), 1);
    assert!(bed.lock("appserverprom-habeat-appserver").exists());

    bed.ns.set_link(true);
    bed.consul.set_member_status(NODE, 1);
    bed.consul.set_check(NODE, "serfHealth", "passing");
    let out = bed.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !bed.lock("appserverprom-habeat-appserver").exists(),
        "not re-armed: {}",
        text(&out)
    );
    assert!(!bed.lock("appserverdown-habeat-appserver").exists());
    assert_eq!(
        bed.fake.accounts_on(REPLICA).len(),
        2,
        "accounts failed back automatically"
    );

    // A second outage within promotion_block (default 1h) is not promoted.
    bed.fake.update(|s| {
        for a in &mut s.accounts {
            a.mail_host = SOURCE.into();
        }
    });
    bed.kill_peer();
    let out = bed.run(&["check"]);
    assert_eq!(
        bed.promotions(),
        1,
        "promoted again within promotion_block: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_account_names_in_the_listing_reach_no_shell_and_promote_nothing() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    let marker = bed.dir.path().join("pwned");
    let m = marker.display();
    let hostile = [
        format!("$(touch {m})@example.com"),
        format!("`touch {m}`@example.com"),
        format!("x'; touch {m}; '@example.com"),
        format!("a\ntouch {m}\n@example.com"),
        "with space@example.com".to_string(),
        // No whitespace: refused for its shell characters, not by luck.
        "$(reboot)@example.com".to_string(),
        "a;reboot@example.com".to_string(),
        "--force@example.com".to_string(),
    ];
    for name in &hostile {
        bed.fake
            .update(|s| s.accounts.push(account(name, SOURCE, REPLICA)));
        bed.kill_peer();
        let out = bed.run(&["check"]);
        // Output that is not a list of valid accounts is a failed listing:
        // an error, no promotion, retried later (SPEC 4).
        assert_eq!(out.status.code(), Some(3), "{name:?}: {}", text(&out));
        assert!(!marker.exists(), "{name:?} reached a shell");
        assert_eq!(bed.promotions(), 0, "{name:?}: {}", text(&out));
        assert_eq!(bed.hooks_log(), "", "{name:?}");
        bed.fake.update(|s| {
            s.accounts
                .retain(|a| a.mail_host != SOURCE || &a.name != name)
        });
        // Start the next name from a clean slate (no retry wait).
        let _ = std::fs::remove_dir_all(bed.dir.path().join("state"));
    }
}

/// A `state.json` found corrupt when habeat starts must
/// hold every automatic action until `habeat rearm`, durably. Before the
/// fix the hold lived only in memory: the first round re-read the state
/// directory, found the file moved aside, took that for a fresh start and
/// promoted a second time inside `promotion_block`.
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_state_found_at_start_holds_every_automatic_action_until_rearm() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = bed().start().await;
    bed.kill_peer();
    let first = bed.run(&["check"]);
    assert_eq!(bed.promotions(), 1, "{}", text(&first));

    let state_dir = bed.dir.path().join("state");
    let corruptions: [(&str, &[u8]); 5] = [
        ("empty", b""),
        ("random bytes", b"\x8f\x00\xffgarbage\x01"),
        ("null", b"null"),
        ("an array", b"[]"),
        ("an unknown version", br#"{"version": 99}"#),
    ];
    for (what, bytes) in corruptions {
        // What a clean-up of /var/tmp and a damaged disk leave behind: the
        // promotion forgotten everywhere, the accounts back on the source,
        // the peer dead again. Only the corrupt file says habeat ran here.
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).expect("state dir");
        std::fs::write(state_dir.join("state.json"), bytes).expect("corrupt state");
        for lock in [
            "appserverdown-habeat-appserver",
            "appserverprom-habeat-appserver",
        ] {
            let _ = std::fs::remove_file(bed.lock(lock));
        }
        bed.fake.update(|s| {
            for a in &mut s.accounts {
                a.mail_host = SOURCE.into();
            }
        });

        for run in ["first", "second"] {
            let out = bed.run(&["check"]);
            assert_eq!(
                bed.promotions(),
                1,
                "{what}, {run} check after it: promoted again\n{}",
                text(&out)
            );
            let status = bed.run(&["status", "--json"]);
            assert_eq!(status.status.code(), Some(0), "{}", text(&status));
            let json: serde_json::Value =
                serde_json::from_slice(&status.stdout).expect("status --json");
            assert!(
                json["safe_hold"].is_object(),
                "{what}, {run} check: status shows no safe hold: {json:#}"
            );
        }
        let text_status = bed.run(&["status"]);
        assert!(
            String::from_utf8_lossy(&text_status.stdout).contains("habeat rearm"),
            "{what}: status does not say how to end the hold\n{}",
            text(&text_status)
        );
    }

    // The daemon starting on a corrupt file holds too.
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir).expect("state dir");
    std::fs::write(state_dir.join("state.json"), b"{").expect("corrupt state");
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_habeat"))
        .args(["--config", bed.config.to_str().expect("utf-8"), "run"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start habeat run");
    // Wait (bounded) until the daemon has judged the peer Down and then
    // completed a few more rounds: a promotion would have been handed out
    // in the round that turned the verdict Down.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut rounds_after_down = 0;
    while rounds_after_down < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never judged the peer Down"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let status = bed.run(&["status", "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        if json["components"]["appserver"]["verdict"] == "down" {
            rounds_after_down += 1;
        }
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(
        bed.promotions(),
        1,
        "the daemon promoted on a corrupt state"
    );

    // `habeat rearm` ends the hold, and the next check promotes again.
    let rearm = bed.run(&["rearm"]);
    assert_eq!(rearm.status.code(), Some(0), "{}", text(&rearm));
    let status = bed.run(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status");
    assert!(json["safe_hold"].is_null(), "rearm left the hold: {json:#}");
    let out = bed.run(&["check"]);
    assert_eq!(
        bed.promotions(),
        2,
        "no promotion after rearm\n{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_witness_command_gets_no_consul_token_and_a_pipe_holder_costs_its_vote_nothing() {
    if !require(&[Need::Netns]) {
        return;
    }
    let bed = Bed::builder().alice_and_bob().start().await;
    // An arbiter that records its environment, leaves a setsid child
    // holding its stdout, and says Down.
    let script = bed.path("arbiter.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > {env}\nsetsid sleep 5 &\necho \"vm stopped\"\nexit 1\n",
            env = bed.path("arbiter.env").display()
        ),
    )
    .expect("write the arbiter");
    let script = script.display().to_string();
    bed.rewrite_config(|y| {
        y.set("witnesses", &format!(r#"command: ["/bin/sh", "{script}"]"#));
    });
    let out = bed
        .command(&["--dry-run", "--json", "check"])
        .env("CONSUL_HTTP_TOKEN", "tok-3f9a-must-not-leak")
        .output()
        .expect("run habeat");
    let env = bed.read("arbiter.env");
    assert!(!env.is_empty(), "the arbiter ran: {}", text(&out));
    assert!(
        !env.contains("tok-3f9a-must-not-leak") && !env.contains("CONSUL_HTTP_TOKEN"),
        "the token reached the arbiter: {env}"
    );
    assert!(env.contains("PATH="), "{env}");
    assert!(env.contains("HABEAT_COMPONENT="), "{env}");
    // Its vote is the exit status (Down), with the holder named, not an
    // Unknown for running past the round's deadline.
    let journal = text(&out);
    assert!(
        journal.contains("kept its output pipe open") && journal.contains("sleep"),
        "the pipe holder is named: {journal}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {journal}"));
    fn command_votes(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("witness").and_then(|w| w.get("kind")) == Some(&"command".into()) {
                    out.push(m["vote"].as_str().unwrap_or_default().to_owned());
                }
                m.values().for_each(|x| command_votes(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| command_votes(x, out)),
            _ => {}
        }
    }
    let mut votes = Vec::new();
    command_votes(&json, &mut votes);
    assert!(!votes.is_empty(), "{journal}");
    assert!(votes.iter().all(|v| v == "down"), "{votes:?}");
}

/// A dry run narrates what the real run would do: its log says "would"
/// for every event it does not record, the summary names the promotion
/// (not only its first, read-only step), and a raft recovery's dry run
/// reads `node-id` and prints the `peers.json` it would write.
#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_say_would_name_the_promotion_and_print_the_peers_json() {
    if !require(&[Need::Netns]) {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        data.path().join("node-id"),
        "adf4238a-882b-9ddc-4a9d-5b6758e4159e\n",
    )
    .expect("node-id");
    let bed = bed()
        .set("primary", "consul_ips: [{ip}]")
        .set("primary", "consul_vmnames: [svc1.example.com]")
        .set("secondary", "consul_ips: [127.0.0.1]")
        .set("secondary", "consul_vmnames: [svc2.example.com]")
        .set(
            "consul",
            &format!("service_discover_data: {}", data.path().display()),
        )
        .set("safety", "raft_recovery: operator")
        .start()
        .await;
    bed.edit_config(|c| c.replace("role: appserver", "roles: [appserver, consulserver]"));
    bed.kill_peer();
    let before = tree(bed.dir.path());
    let out = bed.run(&[
        "--dry-run",
        "promote",
        "--source-mail-host",
        SOURCE,
        "--yes",
        "--force",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for line in stderr.lines().filter(|l| l.contains("habeat::event")) {
        assert!(
            line.contains("dry run: the real run would record: "),
            "an event narrated as done: {line}\n{}",
            text(&out)
        );
    }
    assert!(
        stderr.contains("the real run would record: recorded a manual promotion"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("the real run would end: promotion recorded"),
        "{}",
        text(&out)
    );
    // The plan of a timer's check names the promotion its listing starts.
    let out = bed.run(&["--dry-run", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "would act now: promote the accounts of {SOURCE} to this datacenter, starting with: \
             list the replicated accounts of {SOURCE}"
        )),
        "{}",
        text(&out)
    );

    // A lost peer DC: this side's Consul has no leader either (with one,
    // raft needs no recovery and the command is refused).
    bed.consul.set_leader(None);
    let out = bed.run(&["--dry-run", "recover", "--peer-dc-lost", "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains(&format!(
            "dry run: would write {}/raft/peers.json (1 server(s)):",
            data.path().display()
        )),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("\"id\": \"adf4238a-882b-9ddc-4a9d-5b6758e4159e\""),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("\"address\": \"127.0.0.1:8300\""),
        "{}",
        text(&out)
    );
    for line in String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("habeat::event"))
    {
        assert!(line.contains("would record"), "{line}");
    }
    assert!(
        !data.path().join("raft").exists(),
        "a dry run wrote peers.json"
    );
    assert_eq!(tree(bed.dir.path()), before, "a dry run changed the bed");
}
