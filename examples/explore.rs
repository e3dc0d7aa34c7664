//! Serves Stateright's explorer UI on one of kvfold's models, for debugging a
//! counterexample step by step (docs/verification.md, "Stateright models").
//!
//! ```text
//! cargo run --example explore --features model-check -- resume [ADDRESS] [OPTIONS]
//!
//!   ADDRESS                  where to serve (default 127.0.0.1:3000)
//!   --scope all|prefix       the watch's scope (default all)
//!   --retention discard-old|age-only
//!                            the bucket's retention (default discard-old)
//!   --state-sync             start without a cursor (ResumeGuard::fresh)
//!   --keep-in-hand           the executor hands a delivery in after G17
//!   --mutation NAME          one of: none, trust-clamped-start, skip-post-check,
//!                            no-floor-guard, periodic-probe-only,
//!                            ignore-reconnect, pre-check-trusts-lowered-floor
//!   --bounds default|backstop|deep|wide
//!                            the tests' bounds (default: default; deep and
//!                            wide are the #[ignore]d tests' bounds)
//! ```

use std::process::ExitCode;

use stateright::Model;

#[path = "../model/resume.rs"]
mod resume;

use resume::{Bounds, InHand, Mutation, ResumeModel, Retention, Scope};

const USAGE: &str = "usage: explore resume [ADDRESS] [--scope all|prefix] \
[--retention discard-old|age-only] [--state-sync] [--keep-in-hand] [--mutation NAME] \
[--bounds default|backstop|deep|wide]";

/// The resume model the command line asks for.
fn resume_model(options: &[String]) -> Result<(ResumeModel, String), String> {
    let mut address = "127.0.0.1:3000".to_string();
    let mut scope = Scope::All;
    let mut retention = Retention::DiscardOld;
    let mut state_sync = false;
    let mut in_hand = InHand::Discarded;
    let mut mutation = Mutation::None;
    let mut bounds = "default".to_string();
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let mut value = || {
            options
                .next()
                .ok_or_else(|| format!("{option} needs a value"))
        };
        match option.as_str() {
            "--scope" => {
                scope = match value()?.as_str() {
                    "all" => Scope::All,
                    "prefix" => Scope::Prefix,
                    other => return Err(format!("unknown scope {other:?}")),
                }
            }
            "--retention" => {
                retention = match value()?.as_str() {
                    "discard-old" => Retention::DiscardOld,
                    "age-only" => Retention::AgeOnly,
                    other => return Err(format!("unknown retention {other:?}")),
                }
            }
            "--mutation" => {
                let name = value()?;
                mutation =
                    Mutation::named(name).ok_or_else(|| format!("unknown mutation {name:?}"))?;
            }
            "--state-sync" => state_sync = true,
            "--keep-in-hand" => in_hand = InHand::KeptUnlessDropped,
            "--bounds" => bounds.clone_from(value()?),
            other if !other.starts_with("--") => address = other.to_string(),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let bounds = match (bounds.as_str(), retention) {
        ("default", Retention::DiscardOld) => Bounds::DISCARD_OLD,
        ("default", Retention::AgeOnly) => Bounds::AGE_ONLY,
        ("backstop", _) => Bounds::BACKSTOP,
        ("deep", Retention::DiscardOld) => Bounds::DEEP_DISCARD_OLD,
        ("deep", Retention::AgeOnly) => Bounds::DEEP_AGE_ONLY,
        ("wide", _) => Bounds::DEEP_WIDE,
        (other, _) => return Err(format!("unknown bounds {other:?}")),
    };
    if state_sync && bounds.history > 1 {
        // Only with a history of 1 is every retained message the last per subject.
        return Err("--state-sync needs bounds with a per-key history of 1".to_string());
    }
    let mut model = ResumeModel::new(scope, retention, bounds)
        .in_hand(in_hand)
        .mutated(mutation);
    if state_sync {
        model = model.state_sync();
    }
    Ok((model, address))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, options)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    match name.as_str() {
        "resume" => match resume_model(options) {
            Ok((model, address)) => {
                println!("exploring the resume model ({model}) on http://{address}");
                // Serves until the process is stopped.
                let _checker = model.checker().threads(2).serve(address);
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}\n{USAGE}");
                ExitCode::FAILURE
            }
        },
        other => {
            eprintln!("unknown model {other:?} (models: resume)\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}
