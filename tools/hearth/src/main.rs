//! `hearth`: the command-line tool of the hearth storage engine.
//!
//! A thin binary over the library: argument parsing (clap), CSV import, and formatting.
//! Errors print as `hearth: error: ...` on stderr and exit 1; usage errors exit 2 (clap);
//! a closed stdout (`hearth info db | head -1`) exits 0 quietly.

mod cli;
mod demo;
mod import;
mod info;
mod out;
mod time;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(args) => import::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) if out::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hearth: error: {}", out::chain(&err));
            ExitCode::from(1)
        }
    }
}
