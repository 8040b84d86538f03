//! What the `moqkit` test files share: the binary, and the relay it starts itself.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub const MOQKIT: &str = env!("CARGO_BIN_EXE_moqkit");

/// `moqkit relay --port 0`, killed on drop.
pub struct Relay {
    child: Child,
    pub moqt_url: String,
    pub https_url: String,
    pub ca_file: String,
    pub sha256: String,
    /// `MOQ_RELAY_KIND`: `patched` or `upstream` (`MOQ_TEST_RELAY` picks it).
    pub kind: String,
}

impl Relay {
    pub fn start() -> Relay {
        let child = Command::new(MOQKIT)
            .args(["relay", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moqkit relay");
        // Killed on drop from here on, even if reading its output panics.
        let mut relay = Relay {
            child,
            moqt_url: String::new(),
            https_url: String::new(),
            ca_file: String::new(),
            sha256: String::new(),
            kind: String::new(),
        };
        // Its output: KEY=VALUE lines, MOQ_RELAY_PORT last.
        let mut values = std::collections::HashMap::new();
        for line in BufReader::new(relay.child.stdout.take().unwrap()).lines() {
            let line = line.expect("relay output");
            let (key, value) = line.split_once('=').expect("KEY=VALUE");
            values.insert(key.to_string(), value.to_string());
            if key == "MOQ_RELAY_PORT" {
                break;
            }
        }
        let value = |key: &str| values.get(key).cloned().expect(key);
        relay.moqt_url = value("MOQ_RELAY_MOQT_URL");
        relay.https_url = value("MOQ_RELAY_HTTPS_URL");
        relay.ca_file = value("MOQ_RELAY_CA_FILE");
        relay.sha256 = value("MOQ_RELAY_SHA256");
        relay.kind = value("MOQ_RELAY_KIND");
        relay
    }

    /// `COMMAND URL REST... --ca CA_FILE` for a client command on the raw-QUIC URL.
    pub fn client_args<'a>(&'a self, command: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![command, self.moqt_url.as_str()];
        args.extend_from_slice(rest);
        args.extend_from_slice(&["--ca", &self.ca_file]);
        args
    }

    pub fn url(&self, scheme: &str) -> &str {
        if scheme == "moqt" {
            &self.moqt_url
        } else {
            &self.https_url
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
