//! `hearth`: the command-line tool of the hearth storage engine.
//!
//! A thin binary over the library: argument parsing (clap), import and generation of data
//! files, the per-device and fleet questions, formatting (table, CSV, JSON) and an HTML
//! report. Errors print as `hearth: error: ...` on stderr and exit 1; usage errors exit 2
//! (clap's, and [`out::UsageError`] for values that only the database can refuse); a closed
//! stdout (`hearth info db | head -1`) exits 0 quietly.

mod audit;
mod bench;
mod cli;
mod common;
mod compact;
mod demo;
mod device;
mod dump;
mod erase;
mod export;
mod fleet;
mod gen;
mod import;
mod info;
mod out;
mod report;
mod retention;
mod time;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Gen(args) => gen::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Device(args) => device::run(&args),
        Command::Fleet(args) => fleet::run(&args),
        Command::Dump(args) => dump::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Compact(args) => compact::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Erase(args) => erase::run_erase(&args),
        Command::Purge(args) => erase::run_purge(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Retention(args) => retention::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) if out::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hearth: error: {}", out::chain(&err));
            ExitCode::from(if out::is_usage(&err) { 2 } else { 1 })
        }
    }
}
