//! Starts the in-process test relay and prints where it is, for the Python, Kotlin and C suites.
//!
//! Output (one `KEY=VALUE` per line, then `READY`):
//! `MOQ_RELAY_MOQT_URL`, `MOQ_RELAY_HTTPS_URL`, `MOQ_RELAY_CA_FILE`, `MOQ_RELAY_SHA256`,
//! `MOQ_RELAY_KIND`, `MOQ_RELAY_AUTH_PATH` and two tokens for it, `MOQ_RELAY_PORT`
//! ([`moq_test_relay::TestRelay::environment`]).
//! Commands on stdin, one per line, each answered with one line once done:
//! `stop` (the relay stops abruptly, as a crashed relay would) answers `STOPPED`;
//! `restart` (again on the same port, same certificate) answers `RESTARTED`.
//! The relay runs until stdin closes or the process is terminated, so a parent that
//! dies takes the relay with it.
//!
//! `moq-test-relay --client-auth` runs a relay that requires client certificates (mutual
//! TLS), printing first where an accepted and a refused client identity are
//! (`MOQ_RELAY_CLIENT_CERT_FILE`, `MOQ_RELAY_CLIENT_KEY_FILE`, `MOQ_RELAY_UNTRUSTED_CERT_FILE`,
//! `MOQ_RELAY_UNTRUSTED_KEY_FILE`).
//!
//! `moq-test-relay --hostile` runs [`moq_test_relay::hostile::HostilePeer`] instead (the same
//! lines without `MOQ_RELAY_SHA256`, no commands): a peer that misbehaves on purpose, for tests
//! that measure the client's memory without the peer's.
//!
//! `moq-test-relay --draft16` runs [`moq_test_relay::draft16::Draft16Relay`] (moq-relay-ietf
//! 0.7.31, draft 16, in its own child process) and prints the same lines as `--hostile`.
//!
//! `moq-test-relay --cluster` runs [`moq_test_relay::cluster::Cluster`] (three moq-relay-ietf
//! 0.8 relays as published, coordinated through moq-api over Redis) and prints the same lines
//! for relay A (`MOQ_RELAY_CA_FILE` holds every relay's certificate), and
//! `MOQ_RELAY_SUBSCRIBE_URL`, relay B's `moqt://` URL: the benchmarks' two-relay path.

use std::io::{BufRead, Write};

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|arg| arg == "--hostile") {
        return hostile();
    }
    if std::env::args().any(|arg| arg == "--draft16") {
        return draft16();
    }
    if std::env::args().any(|arg| arg == "--cluster") {
        return cluster();
    }
    let mut relay = if std::env::args().any(|arg| arg == "--client-auth") {
        moq_test_relay::TestRelay::start_requiring_client_certificates()?
    } else {
        moq_test_relay::TestRelay::start()?
    };
    let mut out = std::io::stdout().lock();
    write!(out, "{}", relay.environment())?;
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

/// Run the hostile peer until stdin closes.
fn hostile() -> anyhow::Result<()> {
    let peer = moq_test_relay::hostile::HostilePeer::start()?;
    let port = peer.addr().port();
    let https = format!("https://localhost:{port}");
    announce_and_wait(&peer.moqt_url(), &https, peer.ca_path(), Some(port))
}

/// Run the draft-16 relay until stdin closes.
fn draft16() -> anyhow::Result<()> {
    let relay = moq_test_relay::draft16::Draft16Relay::start()?;
    announce_and_wait(&relay.moqt_url(), &relay.https_url(), relay.ca_path(), None)
}

/// Run a three-relay cluster until stdin closes.
fn cluster() -> anyhow::Result<()> {
    use moq_test_relay::cluster::{Cluster, Coordination};
    let cluster = Cluster::start(Coordination::Api, 3)?;
    println!("MOQ_RELAY_SUBSCRIBE_URL={}", cluster.moqt_url(1));
    announce_and_wait(
        &cluster.moqt_url(0),
        &cluster.https_url(0),
        &cluster.ca_file(),
        None,
    )
}

/// Print where a peer is (the `--hostile` / `--draft16` lines, then `READY`) and serve until
/// stdin closes; the caller's peer stops when it drops.
fn announce_and_wait(
    moqt: &str,
    https: &str,
    ca: &std::path::Path,
    port: Option<u16>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "MOQ_RELAY_MOQT_URL={moqt}")?;
    writeln!(out, "MOQ_RELAY_HTTPS_URL={https}")?;
    writeln!(out, "MOQ_RELAY_CA_FILE={}", ca.display())?;
    if let Some(port) = port {
        writeln!(out, "MOQ_RELAY_PORT={port}")?;
    }
    writeln!(out, "READY")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    Ok(())
}
