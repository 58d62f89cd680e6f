use clap::{CommandFactory, Parser};
use habeat::cli::{Cli, Command, ConfigCommand};
use habeat::exit;

fn main() {
    let cli = Cli::parse();
    std::process::exit(dispatch(cli));
}

fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "habeat", &mut std::io::stdout());
            exit::OK
        }
        Some(Command::Config(ConfigCommand::Check)) => match habeat::config::load_file(&cli.config)
        {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("habeat: warning: {w}");
                }
                if cli.json {
                    println!("{}", cfg.render_json());
                } else {
                    print!("{}", cfg.render_text());
                }
                exit::OK
            }
            Err(e) => {
                for line in e.lines() {
                    eprintln!("habeat: {line}");
                }
                exit::USAGE
            }
        },
        other => {
            eprintln!("habeat: {other:?} is not built yet");
            exit::RUNTIME
        }
    }
}
