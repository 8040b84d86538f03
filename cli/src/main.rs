//! `moqkit`: publish, subscribe and discover over Media over QUIC (IETF MoQT draft-18) from a
//! shell, and run a local relay, on moq-ffi's Rust core.
//!
//! ```text
//! moqkit relay                                    # a local relay: prints its URLs and CA file
//! moqkit sub  URL NAMESPACE TRACK [--count N] [--json | --raw]
//! moqkit pub  URL NAMESPACE TRACK [--file PATH [--chunk-size B]] [--rate N] [--datagram]
//! moqkit discover URL [--prefix NS] [--count N] [--json]
//! moqkit interop [--relay URL] [--test NAME] [--list] [--tls-disable-verify]
//! ```
//! `interop` is the moq-interop-runner test client (TAP on stdout; exit 0, 1 or 127).
//! Every client command takes `--ca FILE` (trust this PEM CA besides the system roots) and
//! `--pin SHA256` (trust a certificate by fingerprint), each repeatable. Errors go to stderr
//! with exit status 1; usage errors exit with 2.

mod connect;
mod discover;
mod interop;
mod publish;
mod relay;
mod subscribe;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "moqkit",
    version,
    about = "Publish, subscribe and discover over Media over QUIC (IETF MoQT draft-18)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish stdin's lines (or a file's chunks) as objects of a track.
    Pub(publish::Args),
    /// Subscribe to a track and write its objects to stdout.
    Sub(subscribe::Args),
    /// Print the namespaces announced on a relay, as they come and go.
    Discover(discover::Args),
    /// Run a local relay (the real moq-relay-ietf, self-signed certificate) until interrupted.
    Relay(relay::Args),
    /// Run the moq-interop-runner test cases against a relay, TAP on stdout.
    Interop(interop::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("moqkit: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        // The runner's contract has its own exit statuses (127: case not implemented).
        Command::Interop(args) => return runtime.block_on(interop::run(args)),
        Command::Pub(args) => runtime.block_on(publish::run(args)),
        Command::Sub(args) => runtime.block_on(subscribe::run(args)),
        Command::Discover(args) => runtime.block_on(discover::run(args)),
        Command::Relay(args) => runtime.block_on(relay::run(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("moqkit: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
