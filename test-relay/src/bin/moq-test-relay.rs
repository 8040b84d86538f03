//! Starts the in-process test relay and prints where it is, for the Python, Kotlin and C suites.
//!
//! Output (one `KEY=VALUE` per line, then `READY`):
//! `MOQ_RELAY_MOQT_URL`, `MOQ_RELAY_HTTPS_URL`, `MOQ_RELAY_CA_FILE`, `MOQ_RELAY_PORT`.
//! Commands on stdin, one per line, each answered with one line once done:
//! `stop` (the relay stops abruptly, as a crashed relay would) answers `STOPPED`;
//! `restart` (again on the same port, same certificate) answers `RESTARTED`.
//! The relay runs until stdin closes or the process is terminated, so a parent that
//! dies takes the relay with it.

use std::io::{BufRead, Write};

fn main() -> anyhow::Result<()> {
    let mut relay = moq_test_relay::TestRelay::start()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "MOQ_RELAY_MOQT_URL={}", relay.moqt_url())?;
    writeln!(out, "MOQ_RELAY_HTTPS_URL={}", relay.https_url())?;
    writeln!(out, "MOQ_RELAY_CA_FILE={}", relay.ca_path().display())?;
    writeln!(out, "MOQ_RELAY_PORT={}", relay.addr().port())?;
    writeln!(out, "READY")?;
    out.flush()?;
    // Block until the parent closes our stdin (or kills us), obeying commands meanwhile.
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "stop" => {
                relay.stop();
                writeln!(out, "STOPPED")?;
            }
            "restart" => {
                relay.restart()?;
                writeln!(out, "RESTARTED")?;
            }
            _ => {}
        }
        out.flush()?;
    }
    drop(relay);
    Ok(())
}
