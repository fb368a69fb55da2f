//! The `raw_session` example (the demo of `scripts/demo`): one stream-protocol session with
//! rmqstream's codec alone over a blocking socket, each step printed as it happens.
//!
//! Usage: `cargo run --release --example raw_session -- [URI] [MESSAGES]`
//! URI defaults to `$RMQS_TEST_URI`, else `rabbitmq-stream://guest:guest@localhost:5552/%2f`;
//! MESSAGES (simple messages before the sub-entry batches) defaults to 1000.
//! Exits 1 on any mismatch, 2 on bad arguments.

#[path = "raw_session.rs"]
mod raw_session;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let uri = args
        .next()
        .or_else(|| std::env::var("RMQS_TEST_URI").ok())
        .unwrap_or_else(|| raw_session::DEFAULT_URI.to_string());
    let mut opts = raw_session::Options::default();
    if let Some(n) = args.next() {
        match n.parse::<u64>() {
            Ok(n) if n > 0 => opts.messages = n,
            _ => {
                eprintln!("raw_session: MESSAGES must be a positive integer, got {n:?}");
                return ExitCode::from(2);
            }
        }
    }
    println!("rmqstream raw stream-protocol session (codec only, blocking std::net)");
    println!(
        "  {uri}: {} messages ({} raw, the rest AMQP 1.0) in frames of {}, then {} sub-entry batches of {} ({})",
        opts.messages,
        opts.raw_messages(),
        opts.batch_size,
        opts.sub_entry_codecs.len(),
        opts.sub_entry_records,
        opts.sub_entry_codecs
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    let mut log = |line: String| println!("{line}");
    match raw_session::run_with(&uri, &opts, &mut log) {
        Ok(summary) => {
            println!();
            println!("summary: every message confirmed, consumed and checked");
            println!("{}", summary.report());
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!();
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
