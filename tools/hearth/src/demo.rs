//! `hearth demo`: waits for the fleet simulator (`hearth::sim`) to land.

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::cli::DemoArgs;

pub fn run(_args: &DemoArgs) -> Result<ExitCode> {
    bail!("the demo needs the fleet simulator, which this build does not have yet")
}
