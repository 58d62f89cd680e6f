//! The argv of the carbonio and zmprov commands.
use super::*;

fn host() -> MailHost {
    MailHost::parse("mbox1.example.com").expect("valid")
}

#[test]
fn argv_never_passes_through_a_shell_and_keeps_each_word_whole() {
    let c = Carbonio::new(&config::Carbonio::default()).expect("default config");
    let acc = AccountName::parse("o'brien@example.com").expect("valid");
    let argv = c.argv(&Command::FlushCache {
        account: acc,
        all_servers: true,
    });
    assert_eq!(
        argv,
        [
            "/opt/zextras/bin/zmprov",
            "fc",
            "-a",
            "account",
            "o'brien@example.com"
        ]
        .map(OsString::from)
    );
    assert_eq!(
        c.display(&Command::PromoteSourceHost {
            source: host(),
            threads: 5
        }),
        "/opt/zextras/bin/carbonio --sync MailReplica promoteAccounts source_mail_host mbox1.example.com threads 5"
    );
}

#[test]
fn a_module_name_that_is_not_a_word_is_refused() {
    let cfg = config::Carbonio {
        module: "Mail Replica".into(),
        ..Default::default()
    };
    assert!(matches!(
        Carbonio::new(&cfg),
        Err(CarbonioError::BadModule(_))
    ));
}
