//! `moqkit interop`, the moq-interop-runner test client, run as the runner runs it: one
//! process, options or environment variables, TAP on stdout, the exit status read.
//!
//! The relay is `moqkit relay --port 0`, of the kind `MOQ_TEST_RELAY` picks (`scripts/test`
//! runs this file against both: the patched relay and moq-relay-ietf on the published
//! moq-transport).

use std::process::{Command, Output};

mod common;

use common::{Relay, MOQKIT};

/// The cases the client implements, in the order it runs them.
const CASES: &[&str] = &[
    "setup-only",
    "announce-only",
    "publish-namespace-done",
    "subscribe-error",
    "announce-subscribe",
    "subscribe-before-announce",
    "single-object",
    "single-group",
    "multiple-groups",
    "late-subscriber",
];

/// `moqkit interop ARGS` with `env`, and no runner variables inherited from the caller.
fn interop(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(MOQKIT);
    command.arg("interop").args(args);
    for name in ["RELAY_URL", "TESTCASE", "TLS_DISABLE_VERIFY", "VERBOSE"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("run moqkit interop")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("TAP is UTF-8")
}

/// The relay `MOQ_TEST_RELAY` asks for, checked: a typo must not test the other relay.
fn relay() -> Relay {
    let relay = Relay::start();
    let expected = match std::env::var("MOQ_TEST_RELAY").as_deref() {
        Ok("upstream") => "upstream",
        Ok("draft16") => "draft16",
        _ => "patched",
    };
    assert_eq!(
        relay.kind, expected,
        "the relay kind MOQ_TEST_RELAY asks for"
    );
    relay
}

/// The TAP test points (`ok N - name` / `not ok N - name`), checked against the header and
/// the plan, in order.
fn points(tap: &str, planned: usize) -> Vec<(bool, String)> {
    let mut lines = tap.lines();
    assert_eq!(lines.next(), Some("TAP version 14"), "{tap}");
    let rest: Vec<&str> = lines.filter(|line| !line.starts_with('#')).collect();
    assert_eq!(
        rest.first().copied(),
        Some(format!("1..{planned}").as_str()),
        "{tap}"
    );
    let mut points = Vec::new();
    for line in &rest[1..] {
        if line.starts_with("  ") {
            continue; // the YAML block of the point before
        }
        let (passed, rest) = match line.strip_prefix("not ok ") {
            Some(rest) => (false, rest),
            None => (true, line.strip_prefix("ok ").expect("a test point")),
        };
        let (number, name) = rest.split_once(" - ").expect("N - name");
        assert_eq!(number, (points.len() + 1).to_string(), "{tap}");
        points.push((passed, name.to_string()));
    }
    assert_eq!(points.len(), planned, "{tap}");
    points
}

#[test]
fn every_interop_case_passes_over_both_schemes() {
    let relay = relay();
    for scheme in ["moqt", "https"] {
        let output = interop(&["--relay", relay.url(scheme), "--ca", &relay.ca_file], &[]);
        let tap = stdout(&output);
        let points = points(&tap, CASES.len());
        let names: Vec<&str> = points.iter().map(|(_, name)| name.as_str()).collect();
        assert_eq!(names, CASES, "{tap}");
        assert!(
            points.iter().all(|(passed, _)| *passed),
            "{scheme} through the {} relay:\n{tap}\n{}",
            relay.kind,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(tap.contains("  duration_ms: "), "{tap}");
        assert_eq!(output.status.code(), Some(0), "{tap}");
    }
}

#[test]
fn list_prints_the_cases_in_order() {
    let output = interop(&["--list"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let listed: Vec<String> = stdout(&output).lines().map(str::to_string).collect();
    assert_eq!(listed, CASES);
}

#[test]
fn the_runner_variables_select_the_relay_the_case_and_unverified_tls() {
    let relay = relay();
    let output = interop(
        &[],
        &[
            ("RELAY_URL", relay.https_url.as_str()),
            ("TESTCASE", "multiple-groups"),
            ("TLS_DISABLE_VERIFY", "1"),
        ],
    );
    let tap = stdout(&output);
    assert_eq!(points(&tap, 1), [(true, "multiple-groups".to_string())]);
    assert!(
        tap.contains(&format!("# relay: {}", relay.https_url)),
        "{tap}"
    );
    assert_eq!(output.status.code(), Some(0), "{tap}");

    // Without the CA and without TLS_DISABLE_VERIFY the self-signed relay is refused: the
    // variable, not luck, let the case above through. An option wins over its variable.
    let output = interop(
        &["--test", "setup-only"],
        &[
            ("RELAY_URL", relay.https_url.as_str()),
            ("TESTCASE", "nope"),
        ],
    );
    let tap = stdout(&output);
    assert_eq!(points(&tap, 1), [(false, "setup-only".to_string())]);
    assert!(tap.contains("  message: \"connect: "), "{tap}");
    assert_eq!(output.status.code(), Some(1), "{tap}");
}

#[test]
fn an_unknown_case_exits_127_and_a_relay_that_is_gone_fails_with_1() {
    let output = interop(&["--test", "no-such-case"], &[]);
    let tap = stdout(&output);
    assert!(tap.contains("ok 1 - no-such-case # SKIP"), "{tap}");
    assert_eq!(output.status.code(), Some(127), "{tap}");

    let relay = relay();
    let url = relay.moqt_url.clone();
    drop(relay);
    let output = interop(
        &[
            "--relay",
            &url,
            "--tls-disable-verify",
            "--test",
            "setup-only",
        ],
        &[],
    );
    let tap = stdout(&output);
    assert_eq!(points(&tap, 1), [(false, "setup-only".to_string())]);
    assert!(tap.contains("  message: "), "{tap}");
    assert_eq!(output.status.code(), Some(1), "{tap}");
}
