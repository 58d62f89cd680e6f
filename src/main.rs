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
                println!("{cfg:#?}");
                exit::OK
            }
            Err(e) => {
                eprintln!("habeat: {e}");
                exit::USAGE
            }
        },
        other => {
            eprintln!("habeat: {other:?} is not built yet");
            exit::RUNTIME
        }
    }
}
