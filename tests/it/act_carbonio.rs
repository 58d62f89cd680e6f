//! The carbonio driver against the fake carbonio / zmprov (real processes).

use crate::fake_carbonio;
use crate::support::{Need, require};

use fake_carbonio::{FakeCarbonio, Fault, account, process_alive, with_accounts};
use habeat::act::carbonio::{CarbonioError, Command};
use habeat::act::{AccountName, MailHost};
use std::time::{Duration, Instant};

const MBOX1: &str = "mbox1.example.com";
const MBOX2: &str = "mbox2.example.com";

fn host(h: &str) -> MailHost {
    MailHost::parse(h).expect("valid host")
}

fn name(n: &str) -> AccountName {
    AccountName::parse(n).expect("valid account")
}

fn three_on_mbox1() -> FakeCarbonio {
    FakeCarbonio::new(&with_accounts(vec![
        account("alice@example.com", MBOX1, MBOX2),
        account("bob@example.com", MBOX1, MBOX2),
        account("o'brien@example.com", MBOX1, MBOX2),
        account("carol@example.com", "mbox3.example.com", MBOX2),
    ]))
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn promotion_moves_every_account_of_the_source_host_and_the_follow_ups_run() {
    let fake = three_on_mbox1();
    let c = fake.driver();

    let list = c.get_account_status(&host(MBOX1)).await.expect("status");
    let mut names: Vec<&str> = list.iter().map(|a| a.account_name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alice@example.com",
            "bob@example.com",
            "o'brien@example.com"
        ]
    );
    assert!(
        list.iter()
            .all(|a| a.replicas[0].destination.as_deref() == Some(MBOX2))
    );

    let report = c
        .promote_source_host(&host(MBOX1), 5)
        .await
        .expect("promote");
    assert!(
        report.tail.contains("3 accounts promoted"),
        "{}",
        report.tail
    );
    assert_eq!(fake.accounts_on(MBOX1), Vec::<String>::new());
    assert_eq!(
        fake.accounts_on(MBOX2),
        [
            "alice@example.com",
            "bob@example.com",
            "o'brien@example.com"
        ]
    );
    assert_eq!(fake.accounts_on("mbox3.example.com"), ["carol@example.com"]);

    // After the promotion the source host has nothing left to promote.
    assert!(
        c.get_account_status(&host(MBOX1))
            .await
            .expect("status")
            .is_empty()
    );

    for a in &list {
        c.flush_cache(&a.account_name, true).await.expect("flush");
    }
    let accounts: Vec<AccountName> = list.iter().map(|a| a.account_name.clone()).collect();
    c.pause_replicas(&accounts).await.expect("pause");
    assert!(
        fake.state()
            .accounts
            .iter()
            .filter(|a| a.mail_host == MBOX2)
            .all(|a| a.paused)
    );
    c.restart_replicas(&accounts).await.expect("restart");
    assert!(fake.state().accounts.iter().all(|a| !a.paused));

    let inv = fake.invocations();
    let seen: Vec<(String, Vec<String>)> = inv
        .iter()
        .map(|i| (i.program.clone(), i.args.clone()))
        .collect();
    let joined = accounts
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        seen,
        vec![
            (
                "carbonio".into(),
                args(&[
                    "--json",
                    "MailReplica",
                    "getAccountStatus",
                    "mailHost",
                    MBOX1
                ])
            ),
            (
                "carbonio".into(),
                args(&[
                    "--sync",
                    "MailReplica",
                    "promoteAccounts",
                    "source_mail_host",
                    MBOX1,
                    "threads",
                    "5"
                ])
            ),
            (
                "carbonio".into(),
                args(&[
                    "--json",
                    "MailReplica",
                    "getAccountStatus",
                    "mailHost",
                    MBOX1
                ])
            ),
            (
                "zmprov".into(),
                args(&["fc", "-a", "account", list[0].account_name.as_str()])
            ),
            (
                "zmprov".into(),
                args(&["fc", "-a", "account", list[1].account_name.as_str()])
            ),
            (
                "zmprov".into(),
                args(&["fc", "-a", "account", list[2].account_name.as_str()])
            ),
            (
                "carbonio".into(),
                args(&["MailReplica", "pauseReplicas", "accounts", &joined])
            ),
            (
                "carbonio".into(),
                args(&["MailReplica", "restartReplicas", "accounts", &joined])
            ),
        ]
    );
    // A login-like environment, and nothing else of ours.
    let env = &inv[0].env;
    assert!(
        env["PATH"].split(':').any(|p| p == "/opt/zextras/bin"),
        "{env:?}"
    );
    assert!(env.contains_key("HOME") && env.contains_key("USER") && env.contains_key("LOGNAME"));
    assert_eq!(env["USER"], env["LOGNAME"]);
    assert!(env.keys().all(|k| !k.starts_with("CONSUL")), "{env:?}");
}

#[tokio::test]
async fn a_host_without_accounts_is_an_empty_list_not_an_error() {
    let fake = three_on_mbox1();
    let list = fake
        .driver()
        .get_account_status(&host("mbox9.example.com"))
        .await
        .expect("a proper empty answer");
    assert!(list.is_empty());
}

#[tokio::test]
async fn every_kind_of_bad_output_is_an_error_with_its_reason_never_an_empty_list() {
    let cases = [
        (
            Fault::Garbage,
            "bad_output",
            "does not start with a JSON object",
        ),
        (
            Fault::TextAround,
            "bad_output",
            "does not start with a JSON object",
        ),
        (Fault::NoResponse, "bad_output", "no \"response\""),
        (
            Fault::Unreachable,
            "unreachable",
            "could not reach the mailbox service",
        ),
        (Fault::Fail { exit_code: 3 }, "exit", "exit code 3"),
    ];
    for (fault, kind, reason) in cases {
        // An empty host: a lenient parser would answer "no accounts".
        let fake = FakeCarbonio::new(&with_accounts(vec![]));
        fake.set_fault("getAccountStatus", fault.clone());
        let err = fake
            .driver()
            .get_account_status(&host(MBOX1))
            .await
            .expect_err(&format!("{fault:?} must fail"));
        assert_eq!(err.kind(), kind, "{fault:?}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(reason), "{fault:?}: {msg}");
        assert!(
            msg.contains("getAccountStatus mailHost mbox1.example.com"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn text_after_the_json_is_refused_too() {
    // TextAround puts text before *and* after; check "after" on its own
    // with operations, whose output the fake prints as JSON.
    let fake = FakeCarbonio::new(&with_accounts(vec![]));
    fake.update(|s| {
        s.operations = vec![serde_json::json!({"id": "op1", "name": "promoteAccounts"})]
    });
    let ops = fake
        .driver()
        .get_all_operations()
        .await
        .expect("operations");
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].id.as_deref(), Some("op1"));
    assert_eq!(ops[0].name.as_deref(), Some("promoteAccounts"));
    let inv = fake.invocations();
    assert_eq!(inv[0].args, args(&["--json", "core", "getAllOperations"]));

    let e = habeat::act::carbonio::parse_response(b"{\"response\": {}}\nDone.\n")
        .expect_err("trailing text");
    assert!(e.contains("text after the JSON object"), "{e}");
}

#[tokio::test]
async fn an_unreachable_server_fails_a_promotion_even_with_exit_code_zero() {
    let fake = three_on_mbox1();
    fake.set_fault("promoteAccounts", Fault::Unreachable);
    let err = fake
        .driver()
        .promote_source_host(&host(MBOX1), 2)
        .await
        .expect_err("must fail");
    assert!(matches!(err, CarbonioError::Unreachable { .. }), "{err}");
    assert_eq!(fake.accounts_on(MBOX1).len(), 3, "nothing moved");
}

#[tokio::test]
async fn a_hanging_promotion_is_killed_at_its_timeout_with_its_process_group() {
    let fake = three_on_mbox1();
    fake.set_fault("promoteAccounts", Fault::Hang);
    let mut cfg = fake.config();
    cfg.promote_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = fake
        .driver_for(&cfg)
        .promote_source_host(&host(MBOX1), 5)
        .await
        .expect_err("must time out");
    assert!(started.elapsed() < Duration::from_secs(30), "did not hang");
    assert!(matches!(err, CarbonioError::TimedOut { .. }), "{err}");
    assert!(err.to_string().contains("promote_timeout"), "{err}");

    let inv = fake.invocations();
    let hung = inv.last().expect("logged");
    let child = hung.child_pid.expect("the fake started a grandchild");
    assert_eq!(hung.pgid, hung.pid, "the CLI leads its own process group");
    let deadline = Instant::now() + Duration::from_secs(10);
    while (process_alive(hung.pid) || process_alive(child)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!process_alive(hung.pid), "the CLI survived its timeout");
    assert!(
        !process_alive(child),
        "a grandchild of the CLI survived its timeout"
    );
}

#[tokio::test]
async fn the_replica_module_is_stopped_and_started() {
    let fake = three_on_mbox1();
    let c = fake.driver();
    c.stop_module().await.expect("stop");
    assert!(!fake.state().module_running);
    c.start_module().await.expect("start");
    assert!(fake.state().module_running);
    let inv: Vec<Vec<String>> = fake.invocations().into_iter().map(|i| i.args).collect();
    assert_eq!(
        inv,
        vec![
            args(&["MailReplica", "doStopService", "module"]),
            args(&["MailReplica", "doStartService", "module"]),
        ]
    );
}

#[tokio::test]
async fn the_module_name_comes_from_the_config() {
    let fake = three_on_mbox1();
    fake.update(|s| s.module = "ha".into());
    let mut cfg = fake.config();
    cfg.module = "ha".into();
    let list = fake
        .driver_for(&cfg)
        .get_account_status(&host(MBOX1))
        .await
        .expect("status");
    assert_eq!(list.len(), 3);
    // The default module name is refused by this (older) installation.
    let err = fake
        .driver()
        .get_account_status(&host(MBOX1))
        .await
        .expect_err("wrong module");
    assert!(matches!(err, CarbonioError::Failed { .. }), "{err}");
}

#[tokio::test]
async fn flush_cache_with_and_without_all_servers() {
    let fake = three_on_mbox1();
    let c = fake.driver();
    c.flush_cache(&name("alice@example.com"), false)
        .await
        .expect("fc");
    c.flush_cache(&name("bob@example.com"), true)
        .await
        .expect("fc -a");
    let inv = fake.invocations();
    assert!(inv.iter().all(|i| i.program == "zmprov"));
    assert_eq!(inv[0].args, args(&["fc", "account", "alice@example.com"]));
    assert_eq!(
        inv[1].args,
        args(&["fc", "-a", "account", "bob@example.com"])
    );
    // zmprov's own error reaches the operator.
    let err = c
        .flush_cache(&name("nobody@example.com"), false)
        .await
        .expect_err("no such account");
    assert!(err.to_string().contains("NO_SUCH_ACCOUNT"), "{err}");
}

#[tokio::test]
async fn hostile_account_names_from_the_cli_reach_no_shell_and_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("pwned");
    let hostile = [
        format!("$(touch {})@example.com", marker.display()),
        format!("`touch {}`@example.com", marker.display()),
        "x\"; touch pwned; \"@example.com".to_owned(),
        "it's a trap@example.com".to_owned(),
        "a\nb@example.com".to_owned(),
        "-rf@example.com".to_owned(),
        "a,b@example.com".to_owned(),
    ];
    for bad in &hostile {
        let fake = FakeCarbonio::new(&with_accounts(vec![
            account("alice@example.com", MBOX1, MBOX2),
            account(bad, MBOX1, MBOX2),
        ]));
        let err = fake
            .driver()
            .get_account_status(&host(MBOX1))
            .await
            .expect_err(&format!("{bad:?} must be refused"));
        let msg = err.to_string();
        assert_eq!(err.kind(), "bad_output", "{msg}");
        assert!(msg.contains("account entry 2"), "{msg}");
        assert!(msg.contains("is not valid"), "{msg}");
        // Only the status query ran: nothing was passed on.
        assert_eq!(fake.invocations().len(), 1);
    }
    assert!(!marker.exists(), "a hostile name reached a shell");

    // A legitimate name with shell metacharacters travels as one argv word.
    let fake = FakeCarbonio::new(&with_accounts(vec![account(
        "o'brien&co$1@example.com",
        MBOX1,
        MBOX2,
    )]));
    let list = fake
        .driver()
        .get_account_status(&host(MBOX1))
        .await
        .expect("valid name");
    fake.driver()
        .flush_cache(&list[0].account_name, false)
        .await
        .expect("fc");
    assert_eq!(
        fake.invocations()[1].args,
        args(&["fc", "account", "o'brien&co$1@example.com"])
    );
}

#[tokio::test]
async fn manual_promotion_by_accounts_and_by_input_file() {
    let fake = three_on_mbox1();
    let c = fake.driver();
    c.promote_accounts(
        &[name("alice@example.com"), name("carol@example.com")],
        Some(3),
    )
    .await
    .expect("promote accounts");
    assert_eq!(
        fake.accounts_on(MBOX2),
        ["alice@example.com", "carol@example.com"]
    );
    assert_eq!(
        fake.invocations()[0].args,
        args(&[
            "--sync",
            "MailReplica",
            "promoteAccounts",
            "accounts",
            "alice@example.com,carol@example.com",
            "threads",
            "3"
        ])
    );

    let file = fake.dir.path().join("accounts.txt");
    std::fs::write(&file, "# to promote\nbob@example.com\n\n").expect("write list");
    let (accounts, _) = c
        .promote_input_file(&file, None)
        .await
        .expect("promote file");
    assert_eq!(accounts, [name("bob@example.com")]);
    assert!(
        fake.accounts_on(MBOX2)
            .contains(&"bob@example.com".to_owned())
    );
    // The CLI read a private copy holding only the validated accounts.
    let inv = fake.invocations();
    let used = std::path::PathBuf::from(&inv[1].args[4]);
    assert_eq!(inv[1].args[3], "input_file");
    assert_ne!(used, file);
    assert!(!used.exists(), "the private copy was not removed");

    // A bad line stops everything before the CLI runs.
    let before = fake.invocations().len();
    std::fs::write(&file, "o'brien@example.com\n$(reboot)@example.com\n").expect("write list");
    let err = c
        .promote_input_file(&file, None)
        .await
        .expect_err("bad line");
    assert!(err.to_string().contains("line 2"), "{err}");
    let err = c.promote_accounts(&[], None).await.expect_err("empty list");
    assert!(matches!(err, CarbonioError::NoAccounts { .. }), "{err}");
    assert_eq!(fake.invocations().len(), before);
    assert_eq!(fake.accounts_on(MBOX1), ["o'brien@example.com"]);
}

#[tokio::test]
async fn run_as_really_changes_the_user() {
    if !require(&[Need::Root]) {
        return;
    }
    let fake = three_on_mbox1();
    fake.open_to_everyone();
    let mut cfg = fake.config();
    cfg.run_as = Some("nobody".into());
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("nobody exists");
    let list = fake
        .driver_for(&cfg)
        .get_account_status(&host(MBOX1))
        .await
        .expect("status as nobody");
    assert_eq!(list.len(), 3);
    let inv = &fake.invocations()[0];
    assert_eq!(inv.uid, nobody.uid.as_raw());
    assert_eq!(inv.gid, nobody.gid.as_raw());
    assert_eq!(inv.env["USER"], "nobody");
    assert_eq!(inv.env["LOGNAME"], "nobody");
    assert_eq!(inv.env["HOME"], nobody.dir.display().to_string());

    cfg.run_as = Some("habeat-no-such-user".into());
    let err = fake
        .driver_for(&cfg)
        .get_account_status(&host(MBOX1))
        .await
        .expect_err("no such user");
    assert!(err.to_string().contains("habeat-no-such-user"), "{err}");
    assert_eq!(fake.invocations().len(), 1, "nothing ran");
}

#[tokio::test]
async fn a_missing_cli_is_a_clear_error() {
    let fake = three_on_mbox1();
    let mut cfg = fake.config();
    cfg.cli = "/nonexistent/opt/zextras/bin/carbonio".into();
    let err = fake
        .driver_for(&cfg)
        .stop_module()
        .await
        .expect_err("no cli");
    assert_eq!(err.kind(), "start");
    assert!(
        err.to_string()
            .contains("/nonexistent/opt/zextras/bin/carbonio"),
        "{err}"
    );
}

#[test]
fn dry_run_rendering_matches_what_runs() {
    let fake = three_on_mbox1();
    let c = fake.driver();
    let shown = c.display(&Command::GetAccountStatus {
        mail_host: host(MBOX1),
    });
    assert_eq!(
        shown,
        format!(
            "{} --json MailReplica getAccountStatus mailHost {MBOX1}",
            fake.carbonio.display()
        )
    );
}

#[tokio::test]
async fn a_slow_cli_within_its_timeout_is_waited_for_and_one_beyond_it_is_not() {
    let fake = three_on_mbox1();
    fake.set_fault("getAccountStatus", Fault::Slow { seconds: 1.0 });
    let list = fake
        .driver()
        .get_account_status(&host(MBOX1))
        .await
        .expect("slow but in time");
    assert_eq!(list.len(), 3);

    fake.set_fault("getAccountStatus", Fault::Slow { seconds: 60.0 });
    let mut cfg = fake.config();
    cfg.command_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = fake
        .driver_for(&cfg)
        .get_account_status(&host(MBOX1))
        .await
        .expect_err("too slow");
    assert!(started.elapsed() < Duration::from_secs(30), "did not hang");
    assert_eq!(err.kind(), "timeout", "{err}");
    assert!(err.to_string().contains("command_timeout"), "{err}");
}

/// `n` accounts with long (valid) names: ~130 bytes each, so a few
/// thousand joined by commas are far beyond the kernel's 128 KiB limit on
/// one argument.
fn many_long_accounts(n: usize) -> Vec<String> {
    let domain = format!("{}.example.com", "replicated-mailstore-domain".repeat(2));
    (0..n)
        .map(|i| format!("user-{i:05}-{}@{domain}", "x".repeat(50)))
        .collect()
}

#[tokio::test]
async fn thousands_of_accounts_are_paused_and_restarted_in_calls_that_each_fit_in_an_argument() {
    let names = many_long_accounts(3000);
    let fake = FakeCarbonio::new(&with_accounts(
        names.iter().map(|n| account(n, MBOX2, MBOX1)).collect(),
    ));
    let accounts: Vec<AccountName> = names.iter().map(|n| name(n)).collect();
    let joined: usize = names.iter().map(|n| n.len() + 1).sum();
    assert!(
        joined > 128 * 1024,
        "the test list must exceed MAX_ARG_STRLEN"
    );
    let c = fake.driver();

    let report = c.pause_replicas(&accounts).await.expect("pause");
    assert!(fake.state().accounts.iter().all(|a| a.paused));
    assert!(
        report.command.contains("<3000 accounts in "),
        "{}",
        report.command
    );
    c.restart_replicas(&accounts).await.expect("restart");
    assert!(fake.state().accounts.iter().all(|a| !a.paused));

    let inv = fake.invocations();
    for cmd in ["pauseReplicas", "restartReplicas"] {
        let calls: Vec<&Vec<String>> = inv
            .iter()
            .map(|i| &i.args)
            .filter(|a| a[1] == cmd)
            .collect();
        assert!(calls.len() > 1, "{cmd}: one call cannot carry them all");
        let mut seen = Vec::new();
        for a in &calls {
            assert_eq!(a[..3], args(&["MailReplica", cmd, "accounts"])[..], "{cmd}");
            assert_eq!(a.len(), 4, "{cmd}: one word for the list");
            assert!(a[3].len() <= 32 * 1024, "{cmd}: {} bytes", a[3].len());
            seen.extend(a[3].split(',').map(str::to_owned));
        }
        assert_eq!(seen, names, "{cmd}: every account once, in order");
    }
}

#[tokio::test]
async fn a_failing_batch_stops_the_rest_and_says_which_call_failed() {
    let names = many_long_accounts(3000);
    // The last account is unknown to the CLI: the call carrying it fails.
    let fake = FakeCarbonio::new(&with_accounts(
        names[..2999]
            .iter()
            .map(|n| account(n, MBOX2, MBOX1))
            .collect(),
    ));
    let mut order: Vec<AccountName> = names.iter().map(|n| name(n)).collect();
    // Put the unknown one second in line so that calls after it exist.
    let unknown = order.remove(2999);
    order.insert(400, unknown);
    let err = fake
        .driver()
        .pause_replicas(&order)
        .await
        .expect_err("the unknown account fails its call");
    let msg = err.to_string();
    assert!(msg.contains("call 2 of "), "{msg}");
    assert!(
        msg.contains("account(s) of the calls before it were done"),
        "{msg}"
    );
    let inv = fake.invocations();
    assert_eq!(inv.len(), 2, "no call after the failed one");
    let first: Vec<&str> = inv[0].args[3].split(',').collect();
    let st = fake.state();
    for a in &st.accounts {
        assert_eq!(
            a.paused,
            first.contains(&a.name.as_str()),
            "{}: only the first call's accounts are paused",
            a.name
        );
    }
}

#[tokio::test]
async fn a_manual_promotion_of_thousands_of_accounts_goes_through_an_input_file() {
    let names = many_long_accounts(3000);
    let fake = FakeCarbonio::new(&with_accounts(
        names.iter().map(|n| account(n, MBOX1, MBOX2)).collect(),
    ));
    let accounts: Vec<AccountName> = names.iter().map(|n| name(n)).collect();
    fake.driver()
        .promote_accounts(&accounts, Some(4))
        .await
        .expect("promote");
    assert_eq!(fake.accounts_on(MBOX1), Vec::<String>::new());
    assert_eq!(fake.accounts_on(MBOX2).len(), 3000);
    let inv = fake.invocations();
    assert_eq!(inv.len(), 1, "one promotion, one call");
    let a = &inv[0].args;
    assert_eq!(
        a[..4],
        args(&["--sync", "MailReplica", "promoteAccounts", "input_file"])[..]
    );
    assert_eq!(a[5..], args(&["threads", "4"])[..]);
    assert!(
        !std::path::Path::new(&a[4]).exists(),
        "the private copy was not removed"
    );
}
