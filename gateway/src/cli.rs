//! The command line. Precedence: CLI flag > environment (`SWITCHYARD_*`) > config file.

use crate::app;
use crate::config::{self, ConfigSource, Overrides};
use crate::observability::{self, LogFormat};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An LLM gateway: OpenAI-format requests in, any provider out."
)]
pub struct Cli {
    /// Config file (default: config/gateway.yaml if present, else the embedded default).
    #[arg(long, env = "SWITCHYARD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides server.host).
    #[arg(long, env = "SWITCHYARD_HOST", global = true)]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one (overrides server.port).
    #[arg(long, env = "SWITCHYARD_PORT", global = true)]
    pub port: Option<u16>,
    /// Log filter: error, warn, info, debug, trace, or per module.
    #[arg(long, env = "SWITCHYARD_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
    #[arg(
        long,
        env = "SWITCHYARD_LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and plugins, print the routing table, and exit.
    Check,
}

/// Exit code for config and plugin errors.
const EXIT_CONFIG: u8 = 2;

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = observability::init(&cli.log_level, cli.log_format) {
        eprintln!("switchyard: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let overrides = Overrides {
        host: cli.host.clone(),
        port: cli.port,
    };
    let loaded = ConfigSource::locate(cli.config.as_deref())
        .and_then(|source| config::load(&source, &overrides).map(|cfg| (source, cfg)));
    let (source, cfg) = match loaded {
        Ok(x) => x,
        Err(e) => {
            eprintln!("switchyard: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Some(Command::Check) => match app::check(&cfg, &source) {
            Ok(table) => {
                #[allow(clippy::print_stdout)]
                {
                    print!("{table}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("switchyard: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        None => match app::serve(cfg, source, overrides) {
            Ok(()) => ExitCode::SUCCESS,
            Err(app::StartupError::Config(e)) => {
                eprintln!("switchyard: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(e) => {
                eprintln!("switchyard: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
