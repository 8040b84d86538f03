//! The `moqkit` binary against the relay it starts itself (`moqkit relay --port 0`), as a
//! shell user would run it: separate processes, trust through `--ca` or `--pin`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{Relay, MOQKIT};

/// A generous bound for "should happen": a behaviour check, not a speed measurement.
const PATIENCE: Duration = Duration::from_secs(30);

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn moqkit(args: &[&str]) -> Command {
    let mut command = Command::new(MOQKIT);
    command.args(args);
    command
}

/// Spawn with piped stdout and stderr (and stdin when asked).
fn spawn(mut command: Command, stdin: bool) -> Child {
    command
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn moqkit")
}

/// Lines of a child's stderr on a channel (read on a thread of its own).
fn stderr_lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even once nobody takes the lines: stopping closed the child's
        // stderr, and its next message (`eprintln!` on a closed pipe) killed it. A test that
        // ignored `moqkit pub`'s log lost its publisher so, once `wait_for_subscriber` began
        // to print its line 200 ms later ("publisher lost: closed, code=0" at the sub).
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Wait for a stderr line starting with `prefix`; panics with what was seen otherwise.
fn wait_for_line(lines: &mpsc::Receiver<String>, prefix: &str) {
    line_starting(lines, prefix);
}

/// The first stderr line starting with `prefix`; panics with what was seen otherwise.
fn line_starting(lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no stderr line starting with {prefix:?}; saw {seen:?}");
}

/// `moqkit <args>` spawned, with its stderr lines, once one of them starts with `ready`.
fn start(args: &[&str], stdin: bool, ready: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = spawn(moqkit(args), stdin);
    let log = stderr_lines(child.stderr.take().unwrap());
    wait_for_line(&log, ready);
    (child, log)
}

/// A `moqkit pub` reading stdin and a `moqkit sub` the relay has accepted for its track,
/// each with its stderr lines (kept read: a closed stderr would fail the process's logging).
struct PubSub {
    publisher: Child,
    pub_log: mpsc::Receiver<String>,
    sub: Child,
    sub_log: mpsc::Receiver<String>,
}

/// `pub_options` and `sub_options` are added to each command line.
fn publisher_and_subscriber(
    relay: &Relay,
    track: &str,
    pub_options: &[&str],
    sub_options: &[&str],
) -> PubSub {
    let namespace = unique("cli/track");
    let mut pub_args = relay.client_args("pub", &[&namespace, track, "--linger-ms", "0"]);
    pub_args.extend_from_slice(pub_options);
    let (publisher, pub_log) = start(&pub_args, true, "publishing ");
    let mut sub_args = relay.client_args("sub", &[&namespace, track]);
    sub_args.extend_from_slice(sub_options);
    let (sub, sub_log) = start(&sub_args, false, "subscribed to ");
    PubSub {
        publisher,
        pub_log,
        sub,
        sub_log,
    }
}

/// `moqkit pub` on NAMESPACE (track `t`, reading stdin), spawned without waiting: it
/// announces NAMESPACE as it starts.
fn announcing_publisher(relay: &Relay, namespace: &str) -> Child {
    let args = relay.client_args("pub", &[namespace, "t", "--linger-ms", "0"]);
    spawn(moqkit(&args), true)
}

/// The child exits with status 0 and prints no error (its stderr read to the end).
fn exits_quietly(child: &mut Child, log: mpsc::Receiver<String>) {
    let status = wait_exit(child);
    assert!(status.success(), "exited with {status}");
    let log: Vec<String> = log.iter().collect();
    assert!(
        !log.iter().any(|line| line.contains("moqkit:")),
        "an error was printed: {log:?}"
    );
}

/// Wait for the child to exit, killing it (and failing) after PATIENCE.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("moqkit did not exit within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for the child to exit (killing it after PATIENCE) and return its stdout.
fn finish(mut child: Child) -> (std::process::ExitStatus, Vec<u8>) {
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let status = wait_exit(&mut child);
    (status, reader.join().unwrap())
}

#[test]
fn stdin_lines_arrive_in_order_as_json_lines_with_their_ids_both_schemes() {
    let relay = Relay::start();
    for scheme in ["moqt", "https"] {
        let url = relay.url(scheme);
        let namespace = unique("cli/lines");
        let (mut publisher, pub_log) = start(
            &[
                "pub",
                url,
                &namespace,
                "chat",
                "--ca",
                &relay.ca_file,
                "--linger-ms",
                "200",
            ],
            true,
            "publishing ",
        );
        // Once the relay accepted the subscription, every line written reaches it.
        let sub_args = [
            "sub",
            url,
            &namespace,
            "chat",
            "--ca",
            &relay.ca_file,
            "--count",
            "3",
            "--json",
        ];
        let (sub, _sub_log) = start(&sub_args, false, "subscribed to ");
        let mut stdin = publisher.stdin.take().unwrap();
        stdin
            .write_all(b"hello\nnot \xff utf-8\r\nthird\n")
            .unwrap();
        drop(stdin);

        let (status, out) = finish(sub);
        assert!(status.success(), "{scheme}: sub exited with {status}");
        let records: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(records.len(), 3, "{scheme}: {records:?}");
        assert_eq!(records[0]["text"], "hello");
        assert_eq!(records[0]["size"], 5);
        assert_eq!(records[1]["base64"], "bm90IP8gdXRmLTg="); // "not \xff utf-8", CR LF removed
        assert_eq!(records[2]["text"], "third");
        let ids: Vec<(u64, u64)> = records
            .iter()
            .map(|r| {
                (
                    r["group_id"].as_u64().unwrap(),
                    r["object_id"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "{scheme}: ids {ids:?}"
        );

        wait_for_line(&pub_log, "published 3 objects");
        let (status, _) = finish(publisher);
        assert!(status.success(), "{scheme}: pub exited with {status}");
    }
}

#[test]
fn a_file_published_in_chunks_arrives_byte_exact_with_raw() {
    let relay = Relay::start();
    let namespace = unique("cli/file");
    let content: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let dir = tempfile_dir();
    let path = dir.join("input.bin");
    std::fs::write(&path, &content).unwrap();

    // The whole file is published (one open group) before anyone subscribes: a subscription
    // joining while the track is up gets the group from its start.
    let file = path.to_str().unwrap();
    let (mut publisher, _pub_log) = start(
        &[
            "pub",
            &relay.moqt_url,
            &namespace,
            "file",
            "--ca",
            &relay.ca_file,
            "--file",
            file,
            "--chunk-size",
            "4096",
            "--linger-ms",
            "60000",
        ],
        false,
        "published 25 objects",
    );
    let mut sub = spawn(
        moqkit(&[
            "sub",
            &relay.moqt_url,
            &namespace,
            "file",
            "--ca",
            &relay.ca_file,
            "--count",
            "25",
            "--raw",
        ]),
        false,
    );
    let sub_log = stderr_lines(sub.stderr.take().unwrap());
    let (status, out) = finish(sub);
    let log: Vec<String> = sub_log.try_iter().collect();
    assert!(status.success(), "sub exited with {status}: {log:?}");
    assert_eq!(out.len(), content.len());
    assert!(out == content, "the received bytes differ from the file");
    let _ = publisher.kill();
    let _ = publisher.wait();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sub_without_a_count_exits_when_the_publisher_ends_its_track() {
    let relay = Relay::start();
    let PubSub {
        mut publisher,
        pub_log,
        sub,
        sub_log,
    } = publisher_and_subscriber(&relay, "t", &[], &[]);
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n").unwrap();
    drop(stdin);
    let (status, out) = finish(sub);
    if !status.success() {
        let log: Vec<String> = sub_log.try_iter().collect();
        let publisher: Vec<String> = pub_log.try_iter().collect();
        panic!("sub exited with {status}: {log:?}; the publisher said {publisher:?}");
    }
    assert_eq!(out, b"one\ntwo\n");
    wait_for_line(&sub_log, "the track ended after 2 objects");
    assert!(finish(publisher).0.success());
}

#[test]
fn discover_prints_a_namespace_when_it_is_announced() {
    let relay = Relay::start();
    let prefix = unique("cli-discover");
    let (discover, _discover_log) = start(
        &[
            "discover",
            &relay.moqt_url,
            "--ca",
            &relay.ca_file,
            "--prefix",
            &prefix,
            "--count",
            "1",
            "--json",
        ],
        false,
        "watching namespaces",
    );
    let namespace = format!("{prefix}/room");
    let mut publisher = announcing_publisher(&relay, &namespace);
    let (status, out) = finish(discover);
    assert!(status.success(), "discover exited with {status}");
    let record: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        record,
        serde_json::json!({"event": "announced", "namespace": namespace})
    );
    drop(publisher.stdin.take());
    assert!(finish(publisher).0.success());
}

/// moqkit's status lines printed the relay URL whole: a `?jwt=` token users paste (moq-dev's
/// relay takes it so) was on the terminal and in every captured log (found by
/// scripts/interop's check of its logs). They now show scheme, host and port.
#[test]
fn status_lines_printed_the_token_in_the_url() {
    let relay = Relay::start();
    let secret = "eyJzZWNyZXQiOiJpbi10aGUtcXVlcnkifQ";
    let url = format!("{}/?jwt={secret}", relay.moqt_url);
    let namespace = unique("cli/redacted");
    let relay_args = |command: &'static str, rest: &[&str]| -> Vec<String> {
        let mut args = vec![command.to_string(), url.clone()];
        args.extend(rest.iter().map(|arg| arg.to_string()));
        args.extend(["--ca".to_string(), relay.ca_file.clone()]);
        args
    };

    let launch = |args: &[String], stdin: bool| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = spawn(moqkit(&args), stdin);
        let log = stderr_lines(child.stderr.take().unwrap());
        (child, log)
    };

    let discover_args = relay_args("discover", &["--prefix", &namespace]);
    let (mut discover, discover_log) = launch(&discover_args, false);
    let pub_args = relay_args("pub", &[&namespace, "t", "--linger-ms", "0"]);
    let (mut publisher, pub_log) = launch(&pub_args, true);
    let sub_args = relay_args("sub", &[&namespace, "t", "--count", "1"]);
    let (sub, sub_log) = launch(&sub_args, false);
    let shown = format!("{} ", relay.moqt_url);
    for (log, prefix) in [
        (&discover_log, "watching namespaces"),
        (&pub_log, "publishing "),
        (&sub_log, "subscribed to "),
    ] {
        let line = line_starting(log, prefix);
        assert!(!line.contains(secret), "the token was printed: {line}");
        assert!(!line.contains("jwt"), "the query was printed: {line}");
        assert!(
            format!("{line} ").contains(&shown),
            "the relay is named: {line}"
        );
    }
    // The URL with its query still reached the relay and works.
    publisher
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"after the status lines\n")
        .unwrap();
    let (status, out) = finish(sub);
    assert!(status.success(), "sub exited with {status}");
    assert_eq!(out, b"after the status lines\n");
    drop(publisher.stdin.take());
    assert!(finish(publisher).0.success());
    let _ = discover.kill();
    let _ = discover.wait();
}

#[test]
fn trust_comes_from_ca_or_pin_and_an_untrusted_relay_is_a_clear_error() {
    let relay = Relay::start();
    // --count 0: connect, then exit at once.
    let connect = |extra: &[&str]| {
        let mut args = vec!["discover", relay.moqt_url.as_str(), "--count", "0"];
        args.extend_from_slice(extra);
        moqkit(&args).output().unwrap()
    };
    assert!(connect(&["--ca", &relay.ca_file]).status.success());
    assert!(connect(&["--pin", &relay.sha256]).status.success());

    let untrusted = connect(&[]);
    assert_eq!(untrusted.status.code(), Some(1));
    let message = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        message.contains("UnknownIssuer") && message.contains("trust the relay's CA"),
        "{message}"
    );

    let wrong_pin = connect(&["--pin", &"ab".repeat(32)]);
    assert_eq!(wrong_pin.status.code(), Some(1));
    let bad_pin = connect(&["--pin", "not-hex"]);
    assert_eq!(bad_pin.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_pin.stderr).contains("fingerprint"));
}

#[test]
fn rate_paces_the_objects() {
    let relay = Relay::start();
    let namespace = unique("cli/rate");
    let started = Instant::now();
    let mut publisher = spawn(
        moqkit(&[
            "pub",
            &relay.moqt_url,
            &namespace,
            "t",
            "--ca",
            &relay.ca_file,
            "--rate",
            "20",
            "--linger-ms",
            "0",
        ]),
        true,
    );
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all("x\n".repeat(11).as_bytes()).unwrap();
    drop(stdin);
    let (status, _) = finish(publisher);
    assert!(status.success());
    // 11 objects at 20 per second: at least 10 intervals of 50 ms (a lower bound only).
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn datagram_lines_arrive_and_a_line_too_big_for_a_datagram_is_a_clear_error() {
    let relay = Relay::start();
    // Datagrams are lossy: a line goes out every 20 ms until the subscriber has its three.
    let PubSub {
        mut publisher,
        pub_log,
        sub: mut subscriber,
        sub_log: _sub_log,
    } = publisher_and_subscriber(&relay, "d", &["--datagram"], &["--count", "3", "--json"]);
    let mut stdin = publisher.stdin.take().unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut sent = 0u32;
    while subscriber.try_wait().unwrap().is_none() && Instant::now() < deadline {
        writeln!(stdin, "line {sent}").unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let (status, out) = finish(subscriber);
    assert!(status.success(), "sub exited with {status}");
    let numbers: Vec<u32> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = record["text"].as_str().unwrap().to_string();
            text.strip_prefix("line ").unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(numbers.len(), 3, "{numbers:?}");
    let mut distinct = numbers.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() == 3 && numbers.iter().all(|n| *n < sent),
        "{numbers:?} of {sent} sent"
    );
    assert!(wait_exit(&mut publisher).success());
    drop(pub_log);

    // A line bigger than a datagram: the publisher stops with the core's error (the size
    // check needs no subscriber).
    let namespace = unique("cli/datagram");
    let pub_args = relay.client_args("pub", &[&namespace, "d", "--datagram"]);
    let (mut publisher, pub_log) = start(&pub_args, true, "publishing ");
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(&[b'x'; 2000]).unwrap();
    stdin.write_all(b"\n").unwrap();
    wait_for_line(
        &pub_log,
        "moqkit: object of 2000 bytes does not fit in a datagram",
    );
    assert_eq!(wait_exit(&mut publisher).code(), Some(1));
}

#[test]
fn sub_gives_up_after_wait_ms_when_nobody_publishes_the_track() {
    let relay = Relay::start();
    let namespace = unique("cli/nobody");
    let args = relay.client_args("sub", &[&namespace, "t", "--wait-ms", "300"]);
    let output = moqkit(&args).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("not found") && message.contains("rendezvous"),
        "{message}"
    );
}

#[test]
fn sub_into_a_closed_pipe_stops_quietly() {
    let relay = Relay::start();
    let PubSub {
        mut publisher,
        pub_log,
        mut sub,
        sub_log,
    } = publisher_and_subscriber(&relay, "t", &[], &[]);
    drop(sub.stdout.take()); // the reader goes away (`moqkit sub ... | head -0`)
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n").unwrap();
    exits_quietly(&mut sub, sub_log);
    drop(stdin);
    let (status, _) = finish(publisher);
    let log: Vec<String> = pub_log.try_iter().collect();
    assert!(status.success(), "pub exited with {status}: {log:?}");
}

#[test]
fn discover_into_a_closed_pipe_stops_quietly() {
    let relay = Relay::start();
    let prefix = unique("cli-discover-pipe");
    let discover_args = relay.client_args("discover", &["--prefix", &prefix]);
    let (mut discover, discover_log) = start(&discover_args, false, "watching namespaces");
    drop(discover.stdout.take()); // `moqkit discover ... | head -0`
    let namespace = format!("{prefix}/room");
    let mut publisher = announcing_publisher(&relay, &namespace);
    exits_quietly(&mut discover, discover_log);
    drop(publisher.stdin.take());
    assert!(finish(publisher).0.success());
}

#[test]
fn usage_errors_exit_with_2_and_version_prints() {
    let usage = moqkit(&["sub", "moqt://localhost:1"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    for bad in [
        ["--rate", "-1"],
        ["--rate", "1e-300"],
        ["--rate", "fast"],
        ["--chunk-size", "0"],
    ] {
        let mut args = vec!["pub", "moqt://localhost:1", "ns", "t"];
        args.extend_from_slice(&bad);
        let output = moqkit(&args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let version = moqkit(&["--version"]).output().unwrap();
    assert!(version.status.success());
    // The command line and the library it links report the one version (the workspace's).
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("moqkit {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        moq_ffi::api::version(),
        format!("moq_ffi {}", env!("CARGO_PKG_VERSION"))
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("moqkit-cli-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Issue #23: `moqkit sub` waiting before the publisher exists, then `moqkit pub
/// --group-objects 1` fed 3,000 lines at once: only 2,909 arrived, because the first 91
/// groups were published before the relay's SUBSCRIBE reached the publisher, into nobody. Now
/// pub waits for the subscriber first (and warns about short groups); what arrives is every
/// group from the first on, once, in order, to the last (the relay's own first-subscriber hop
/// may still drop a burst's first groups: README, Stream delivery).
#[test]
fn pub_waits_for_a_waiting_subscriber_before_a_burst_of_one_object_groups() {
    let relay = Relay::start();
    let namespace = unique("cli/burst");
    let sub_args = relay.client_args("sub", &[&namespace, "t", "--wait-ms", "20000"]);
    let sub = spawn(moqkit(&sub_args), false);
    std::thread::sleep(Duration::from_millis(500)); // its SUBSCRIBE waits at the relay
    let pub_args = relay.client_args(
        "pub",
        &[
            &namespace,
            "t",
            "--group-objects",
            "1",
            "--linger-ms",
            "500",
        ],
    );
    let mut publisher = spawn(moqkit(&pub_args), true);
    let pub_log = stderr_lines(publisher.stderr.take().unwrap());
    let lines: String = (0..3000).map(|i| format!("{i}\n")).collect();
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(lines.as_bytes()).unwrap();
    drop(stdin);
    wait_for_line(&pub_log, "warning: with --group-objects 1");
    wait_for_line(&pub_log, "a subscriber is there");
    assert!(wait_exit(&mut publisher).success());
    let (status, out) = finish(sub);
    assert!(status.success(), "sub exited with {status}");
    let got: Vec<u64> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| line.parse().expect("a number"))
        .collect();
    let first = *got.first().expect("something arrived");
    assert_eq!(
        got,
        (first..3000).collect::<Vec<_>>(),
        "in order, none missing after the first"
    );
    eprintln!("{} of 3000 arrived (from {first})", got.len());
}
