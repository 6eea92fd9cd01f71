//! `doctor`: gathers the facts (no agent needed) and prints the report.

use crate::cli::render;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status 0 when at least one interface is fully usable, 1 otherwise.
pub fn doctor(json: bool, globs: &[String], loopback: bool, wait: u64) -> ExitCode {
    let report = match crate::agent::doctor::run(globs, loopback, Duration::from_secs(wait)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("exo-discovery: cannot list interfaces: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = if json {
        render::json(&report).unwrap_or_default()
    } else {
        render::doctor(&report)
    };
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    if report.usable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
