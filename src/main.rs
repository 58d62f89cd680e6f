use clap::{CommandFactory, Parser};
use habeat::cli::{AccountsShown, Cli, Command, ConfigCommand};
use habeat::commands::{self, Failure};
use habeat::config::{Config, HostCheck, LoadEnv};
use habeat::daemon::{self, Metrics, MetricsServer, Notifier, RunOptions, ServerOptions};
use habeat::engine::OperatorCommand;
use habeat::exit;
use habeat::logging::{self, LogOptions};
use std::sync::Arc;

fn main() {
    let cli = Cli::parse();
    std::process::exit(dispatch(cli));
}

fn dispatch(cli: Cli) -> i32 {
    match &cli.command {
        Some(Command::Completions { shell }) => {
            // Into memory first: clap_complete panics on a write error.
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "habeat", &mut buf);
            habeat::out::bytes(&buf);
            return exit::OK;
        }
        Some(Command::Config(ConfigCommand::Check { file_only })) => {
            return config_check(&cli, *file_only);
        }
        _ => {}
    }
    // SAFETY: called before any thread exists (the runtime is built below),
    // so removing NOTIFY_SOCKET from the environment races with nothing.
    let notifier = unsafe { Notifier::take_from_env() };
    // --dry-run changes nothing outside stdout and stderr
    // (`dry-run-changes-nothing`), not even a log file: its lines go to
    // stderr only.
    let log_file = match &cli.log {
        Some(f) if cli.dry_run => {
            eprintln!(
                "habeat: --dry-run: logging to stderr only; {} is not written",
                f.display()
            );
            None
        }
        other => other.clone(),
    };
    let log = match LogOptions::from_env(log_file).and_then(|o| logging::init(&o)) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("habeat: {e}");
            return exit::USAGE;
        }
    };
    // The commands that may run the programs the file names look for them
    // and warn (config/read/host.rs says why not refuse).
    let may_act = matches!(
        cli.command,
        None | Some(Command::Check)
            | Some(Command::Run)
            | Some(Command::Promote(_))
            | Some(Command::Recover(_))
            | Some(Command::Reprotect(_))
            | Some(Command::Switchover(_))
    );
    let env = LoadEnv {
        host: if may_act {
            HostCheck::Warn
        } else {
            HostCheck::Off
        },
        // Each fence agent is asked for its metadata when the daemon
        // starts, not at every timer `check` (once a minute): it is a child
        // per agent, and the file has not changed between two checks.
        fence_metadata: matches!(cli.command, Some(Command::Run))
            .then_some(habeat::act::fence::metadata_blocking as habeat::config::FenceMetadata),
        ..LoadEnv::from_process()
    };
    let cfg = match habeat::config::load_file_with(&cli.config, &env) {
        Ok(c) => c,
        Err(e) => {
            for line in e.lines() {
                eprintln!("habeat: {line}");
            }
            return exit::USAGE;
        }
    };
    // Warnings matter where habeat may act; read-only commands stay quiet.
    if may_act {
        for w in &cfg.warnings {
            tracing::warn!("{w}");
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("habeat: cannot start the async runtime: {e}");
            return exit::RUNTIME;
        }
    };
    let (dry, json) = (cli.dry_run, cli.json);
    if dry && json {
        habeat::exec::report_on_stderr();
    }
    let result = rt.block_on(async {
        // Before anything else: statuses a crashed switchover set to
        // maintenance are given back (`switchover-never-loses`).
        if !dry {
            match habeat::switchover::restore_after_crash(&cfg).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    "a switchover was interrupted: the zimbraAccountStatus of {n} account(s) it                      had set to maintenance is restored; `habeat switchover --resume` goes on"
                ),
                Err(e) => tracing::error!("{e}"),
            }
        }
        match &cli.command {
            None | Some(Command::Check) => commands::check(&cfg, dry, json, cli.verbose).await,
            Some(Command::Run) => run_daemon(&cli, cfg.clone(), notifier, log).await,
            Some(Command::Promote(args)) => {
                commands::promote(&cfg, args, dry, json, cli.verbose).await
            }
            Some(Command::Recover(args)) => {
                commands::recover(&cfg, args, dry, json, cli.verbose).await
            }
            Some(Command::Reprotect(args)) => {
                commands::reprotect(&cfg, args, dry, json, cli.verbose).await
            }
            Some(Command::Status(args)) => {
                commands::status(&cfg, json, cli.verbose, args.accounts == AccountsShown::All)
            }
            Some(Command::Rearm) => {
                commands::operator(&cfg, OperatorCommand::Rearm, dry, json, cli.verbose).await
            }
            Some(Command::Pause(args)) => commands::pause(&cfg, args, dry, json, cli.verbose).await,
            Some(Command::Resume) => {
                commands::operator(&cfg, OperatorCommand::Resume, dry, json, cli.verbose).await
            }
            Some(Command::History(args)) => commands::history(&cfg, args, json),
            Some(Command::Switchover(args)) => {
                commands::switchover(&cfg, args, dry, json, cli.verbose).await
            }
            Some(Command::Completions { .. }) | Some(Command::Config(_)) => Ok(exit::OK),
        }
    });
    match result {
        Ok(code) => code,
        Err(Failure { code, message }) => {
            tracing::error!("{message}");
            code
        }
    }
}

async fn run_daemon(
    cli: &Cli,
    cfg: Config,
    notifier: Notifier,
    log: logging::LogHandle,
) -> Result<i32, Failure> {
    let fail = |code: i32, message: String| Failure { code, message };
    if cli.dry_run {
        return Err(fail(
            exit::USAGE,
            "`run --dry-run` is not supported; use `check --dry-run`".into(),
        ));
    }
    let requests =
        daemon::signals::listen().map_err(|e| fail(exit::RUNTIME, format!("signals: {e}")))?;
    let metrics = Metrics::new();
    let listen = cfg.metrics.listen;
    let mut driver = daemon::driver::SessionDriver::new(cli.config.clone(), cfg, metrics.clone())
        .map_err(|e| fail(exit::RUNTIME, e))?;
    let _server = match listen {
        Some(addr) => {
            let status = driver.status.clone();
            let source: daemon::endpoint::StatusSource = Arc::new(move |q| {
                let published = status.lock().map(|s| s.clone()).unwrap_or_default();
                published.body(q)
            });
            Some(
                MetricsServer::start(addr, metrics.clone(), source, ServerOptions::default())
                    .await
                    .map_err(|e| fail(exit::RUNTIME, format!("metrics endpoint {addr}: {e}")))?,
            )
        }
        None => None,
    };
    daemon::run(
        &mut driver,
        requests,
        RunOptions {
            notifier,
            metrics: Some(metrics),
            log,
            ..RunOptions::default()
        },
    )
    .await;
    Ok(exit::OK)
}

fn config_check(cli: &Cli, file_only: bool) -> i32 {
    let env = LoadEnv {
        host: if file_only {
            HostCheck::Off
        } else {
            HostCheck::Refuse
        },
        fence_metadata: Some(habeat::act::fence::metadata_blocking),
        ..LoadEnv::from_process()
    };
    match habeat::config::load_file_with(&cli.config, &env) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprintln!("habeat: warning: {w}");
            }
            if cli.json {
                habeat::outln!("{}", cfg.render_json());
            } else {
                habeat::out!("{}", cfg.render_text());
            }
            exit::OK
        }
        Err(e) => {
            for line in e.lines() {
                eprintln!("habeat: {line}");
            }
            // Scripts read stdout: the problems there too, as data.
            if cli.json {
                habeat::outln!("{:#}", e.to_json());
            }
            exit::USAGE
        }
    }
}
