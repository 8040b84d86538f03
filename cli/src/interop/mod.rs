//! `moqkit interop`: the moq-interop-runner test client.
//!
//! The runner starts one executable per case and reads TAP version 14 from its stdout. The
//! interface: `--relay URL` (`RELAY_URL`; `https://` is WebTransport, `moqt://` raw QUIC),
//! `--test NAME` (`TESTCASE`; default: every case), `--list`, `--tls-disable-verify`
//! (`TLS_DISABLE_VERIFY=1`), `--verbose` (`VERBOSE=1`); an option given on the command line
//! wins over its variable. Exit status: 0 when every requested case passed, 1 when one
//! failed, 127 when a requested case is not one this client implements.
//!
//! Besides the runner's options, `--ca FILE` and `--pin SHA256` trust a relay's certificate
//! the way the other commands do, so a test need not turn verification off.

mod cases;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use moq_ffi::core::{config::parse_fingerprint, Client, ClientConfig};

pub use cases::CASES;

/// The exit status for a case or role this client does not implement.
const UNSUPPORTED: u8 = 127;

#[derive(clap::Args)]
pub struct Args {
    /// The relay under test: https://host:port (WebTransport) or moqt://host:port (raw QUIC).
    #[arg(long, env = "RELAY_URL", default_value = "https://localhost:4443")]
    relay: String,
    /// Run only this case (default: every case, in the order `--list` prints).
    #[arg(long, env = "TESTCASE", value_name = "NAME")]
    test: Option<String>,
    /// Print the cases this client implements, one per line, and exit.
    #[arg(long)]
    list: bool,
    /// Accept any certificate the relay presents (for relays with self-signed certificates).
    #[arg(long, env = "TLS_DISABLE_VERIFY", value_parser = clap::builder::BoolishValueParser::new())]
    tls_disable_verify: bool,
    /// Log the SDK's debug output to stderr.
    #[arg(long, env = "VERBOSE", value_parser = clap::builder::BoolishValueParser::new())]
    verbose: bool,
    /// Trust this PEM CA certificate too (besides the system roots). Repeatable.
    #[arg(long = "ca", value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// Trust a certificate with this SHA-256 fingerprint. Repeatable.
    #[arg(long = "pin", value_name = "SHA256")]
    pin: Vec<String>,
}

/// What a case reports: passed, or failed with the reason.
type Outcome = Result<(), String>;

/// Run the requested cases and print TAP; the exit status follows the runner's contract.
pub async fn run(args: Args) -> ExitCode {
    if args.list {
        let mut tap = Tap::default();
        for case in CASES {
            tap.line(case.name);
        }
        return ExitCode::SUCCESS;
    }
    if args.verbose {
        let _ = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Debug)
            .target(env_logger::Target::Stderr)
            .try_init();
    }
    let selected: Vec<&cases::Case> = match &args.test {
        None => CASES.iter().collect(),
        Some(name) => match CASES.iter().find(|case| case.name == name) {
            Some(case) => vec![case],
            None => {
                let mut tap = Tap::default();
                tap.line("TAP version 14");
                tap.line("1..1");
                tap.line(&format!("ok 1 - {name} # SKIP not implemented by moqkit"));
                eprintln!(
                    "moqkit interop: no case '{name}' (the cases: {})",
                    CASES.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
                );
                return ExitCode::from(UNSUPPORTED);
            }
        },
    };
    let relay = Relay::new(&args);
    let mut tap = Tap::default();
    tap.line("TAP version 14");
    tap.line(&format!("# moqkit {} (moq-ffi)", env!("CARGO_PKG_VERSION")));
    tap.line(&format!("# relay: {}", relay.shown()));
    let offered: Vec<String> = moq_ffi::core::drafts::offered()
        .iter()
        .map(|draft| format!("moqt-{draft}"))
        .collect();
    tap.line(&format!("# drafts offered: {}", offered.join(", ")));
    tap.line(&format!("1..{}", selected.len()));
    let mut failed = 0;
    for (number, case) in selected.iter().enumerate() {
        if tap.closed {
            // Nobody reads the results any more (`| head`): stop, as other tools do.
            break;
        }
        let started = Instant::now();
        let outcome = match tokio::time::timeout(case.limit, (case.run)(relay.clone())).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "no result within the case's {} ms limit",
                case.limit.as_millis()
            )),
        };
        let duration_ms = started.elapsed().as_millis();
        let number = number + 1;
        match &outcome {
            Ok(()) => tap.line(&format!("ok {number} - {}", case.name)),
            Err(_) => {
                failed += 1;
                tap.line(&format!("not ok {number} - {}", case.name));
            }
        }
        tap.line("  ---");
        tap.line(&format!("  duration_ms: {duration_ms}"));
        if let Err(message) = &outcome {
            tap.line(&format!("  message: {}", yaml_string(message)));
        }
        tap.line("  ...");
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// TAP lines on stdout, flushed one by one (the runner may read them as they come). A closed
/// stdout stops the output instead of panicking as `println!` would.
#[derive(Default)]
struct Tap {
    closed: bool,
}

impl Tap {
    fn line(&mut self, line: &str) {
        use std::io::Write;
        if self.closed {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            self.closed = true;
        }
    }
}

/// A one-line YAML double-quoted string.
fn yaml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The relay under test and how to trust it: what every case connects with.
#[derive(Clone)]
pub struct Relay {
    url: String,
    ca: Vec<PathBuf>,
    pin: Vec<String>,
    accept_any_certificate: bool,
}

impl Relay {
    fn new(args: &Args) -> Self {
        Self {
            url: args.relay.clone(),
            ca: args.ca.clone(),
            pin: args.pin.clone(),
            accept_any_certificate: args.tls_disable_verify,
        }
    }

    /// The URL as logs show it (path and query, which may carry a token, hidden).
    fn shown(&self) -> String {
        crate::connect::shown_url(&self.url)
    }

    /// A connected client; `rendezvous` is how long its subscriptions wait for a publisher.
    pub async fn connect(&self, rendezvous: Duration) -> Result<Client, String> {
        let mut config = ClientConfig::new(self.url.clone());
        config.tls.extra_ca_files = self.ca.clone();
        for pin in &self.pin {
            config
                .tls
                .pinned_sha256
                .push(parse_fingerprint(pin).map_err(|err| err.to_string())?);
        }
        config.tls.danger_accept_any_certificate = self.accept_any_certificate;
        config.rendezvous_timeout = rendezvous;
        let client = Client::new(config).map_err(|err| err.to_string())?;
        client
            .connect()
            .await
            .map_err(|err| format!("connect: {err}"))?;
        Ok(client)
    }
}
