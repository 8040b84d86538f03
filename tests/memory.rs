//! Memory bounded by configuration: a subscriber's resident memory, with the relay and the
//! publisher in processes of their own (`moq-test-relay`, `examples/publish`), stays under a
//! bound derived from its configuration whatever the publisher sends, and nothing is lost.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use moq_ffi::core::{Client, Overflow, SubscribeError, Subscriber, SubscriberOptions};

/// Serializes the tests of this binary: each measures the whole process.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1024 * 1024;

/// `examples/publish` in a child process. Killed when dropped.
struct PublisherProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl PublisherProcess {
    /// Start it against `relay` and wait until it has announced.
    fn start(relay: &RelayProcess, args: &[&str]) -> Self {
        let exe = std::env::current_exe().expect("test executable path");
        let binary = exe
            .parent()
            .and_then(std::path::Path::parent)
            .map(|dir| dir.join("examples").join("publish"))
            .expect("target directory");
        assert!(
            binary.exists(),
            "{} is missing: build it with `cargo build --example publish` (scripts/test does)",
            binary.display()
        );
        let mut child = Command::new(&binary)
            .args(["--url", &relay.moqt_url(), "--ca"])
            .arg(relay.ca_file())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the publisher");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("publisher stdout"));
        let mut publisher = Self {
            child,
            stdin,
            stdout,
        };
        publisher.expect_line("ANNOUNCED");
        publisher
    }

    fn expect_line(&mut self, prefix: &str) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("publisher output");
        assert!(line.starts_with(prefix), "publisher said {line:?}");
    }

    /// Publish now, and return once every object has been handed to the publisher's client.
    fn publish(&mut self) {
        let stdin = self.stdin.as_mut().expect("publisher stdin");
        writeln!(stdin, "go").expect("tell the publisher to go");
        stdin.flush().expect("flush");
        self.expect_line("PUBLISHED");
    }
}

impl Drop for PublisherProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The object `examples/publish` sends at `index`.
fn published(index: u64, size: usize) -> Vec<u8> {
    let mut bytes = vec![index as u8; size];
    let head = size.min(8);
    bytes[..head].copy_from_slice(&index.to_le_bytes()[..head]);
    bytes
}

/// Read objects until `count` have arrived or the subscription fails; each must be the next
/// one, byte for byte (nothing skipped), except through a draft-16 relay, which hands a
/// subscriber that falls behind only the newest group: there groups may be missing (a visible
/// group-id jump; with a subscriber that does not read for 14 s, most are), never reordered.
/// Returns the index reached, and the failure.
async fn read_until_end(
    sub: &mut Subscriber,
    count: u64,
    size: usize,
) -> (u64, Option<SubscribeError>) {
    let gaps_allowed = moq_test_relay::RelayKind::from_env() == moq_test_relay::RelayKind::Draft16;
    let mut index = 0;
    let mut skipped = 0;
    while index < count {
        let next = tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .unwrap_or_else(|_| panic!("object {index} did not arrive"));
        let object = match next {
            Ok(Some(object)) => object,
            Ok(None) => panic!("the subscription ended before object {index}"),
            Err(err) => return (index, Some(err)),
        };
        let got = u64::from_le_bytes(object.payload[..8].try_into().expect("8 bytes"));
        if gaps_allowed && got > index {
            skipped += got - index;
            index = got;
        }
        assert!(
            object.payload.as_ref() == published(index, size).as_slice(),
            "object {index} is not the one published next"
        );
        index += 1;
    }
    if skipped > 0 {
        eprintln!("{skipped} of {count} groups skipped by the draft-16 relay (group-id jumps)");
    }
    (count, None)
}

/// Read `count` objects and check each is the next one, byte for byte.
async fn read_all(sub: &mut Subscriber, count: u64, size: usize) {
    for index in 0..count {
        let object = tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .unwrap_or_else(|_| panic!("object {index} did not arrive"))
            .unwrap_or_else(|err| panic!("object {index}: {err}"))
            .unwrap_or_else(|| panic!("the subscription ended before object {index}"));
        let got = object
            .payload
            .get(..8)
            .map(|head| u64::from_le_bytes(head.try_into().expect("8 bytes")));
        assert!(
            object.payload.as_ref() == published(index, size).as_slice(),
            "object {index} is not the one published next: got object {got:?} of {} bytes, group {}",
            object.payload.len(),
            object.group_id
        );
    }
}

/// The most resident memory grew over `for_` while nothing reads, sampled every 100 ms.
async fn peak_growth(before: f64, for_: Duration) -> f64 {
    let started = Instant::now();
    let mut peak = 0.0f64;
    while started.elapsed() < for_ {
        peak = peak.max(rss_mb() - before);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}

/// A subscriber to `mem/<track>` with small bounds: `receive_window` 4 MiB, `buffer` 4
/// objects, `buffer_bytes` 2 MiB, `Backpressure`.
async fn slow_subscriber(relay: &RelayProcess, track: &str) -> (Client, Subscriber) {
    let mut config = config(relay, "moqt");
    config.receive_window = 4 * MIB as u64;
    config.max_object_size = 2 * MIB;
    let client = Client::new(config).expect("config");
    client.connect().await.expect("connect");
    let options = SubscriberOptions {
        buffer: 4,
        buffer_bytes: 2 * MIB,
        overflow: Overflow::Backpressure,
        ..SubscriberOptions::default()
    };
    let sub = client
        .subscribe("mem", track, options)
        .await
        .expect("subscribe");
    (client, sub)
}

/// Allocator, logging and bookkeeping on top of the bytes the configuration bounds.
const SLACK_MB: f64 = 16.0;

/// Pins issue #15's first finding: a subscriber with `buffer` 4 that did not read held the
/// whole 200 MiB publish in memory (+218.6 MB) because the transport read every stream
/// eagerly and cached each group until it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_holds_what_its_configuration_bounds_and_loses_nothing() {
    let _alone = ALONE.lock().await;
    let relay = RelayProcess::start();
    let mut publisher = PublisherProcess::start(
        &relay,
        &[
            "--namespace",
            "mem",
            "--track",
            "big",
            "--count",
            "200",
            "--size",
            "1048576",
        ],
    );
    let (_client, mut sub) = slow_subscriber(&relay, "big").await;
    let before = rss_mb();
    publisher.publish();
    let grew = peak_growth(before, Duration::from_secs(6)).await;
    // Transport budget 2 MiB + queue 2 MiB + one object being assembled (1 MiB) + QUIC
    // receive window 4 MiB + what the transport reads beyond its budget while the reader
    // waits for data (at most the window again).
    let bound = (2 + 2 + 1 + 4 + 4) as f64 * MIB as f64 / 1e6 + SLACK_MB;
    eprintln!(
        "200 x 1 MiB to a subscriber that does not read: grew {grew:.1} MB (bound {bound:.1} MB)"
    );
    assert!(grew < bound, "grew {grew:.1} MB, bound {bound:.1} MB");
    read_all(&mut sub, 200, MIB).await;
}

/// moq-relay-ietf (moq-transport's serving side) ends a subscription whose reader falls 1,024
/// groups behind. A subscriber that stops reading while one-object groups keep coming is
/// bounded here and loses nothing silently: it reads every object that reached it, in order,
/// then gets `PublisherLost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_one_object_groups_to_a_slow_subscriber_stay_bounded_and_lose_nothing_silently(
) {
    let _alone = ALONE.lock().await;
    let relay = RelayProcess::start();
    let size = 16 * 1024;
    // Paced (256 groups/s): an unpaced burst of 3,000 groups is more than the publisher's own
    // transport serves to the relay (the same 1,024-group limit ends its upstream).
    let mut publisher = PublisherProcess::start(
        &relay,
        &[
            "--namespace",
            "mem",
            "--track",
            "groups",
            "--count",
            "3000",
            "--size",
            "16384",
            "--group-objects",
            "1",
            "--rate",
            "4194304",
        ],
    );
    let (_client, mut sub) = slow_subscriber(&relay, "groups").await;
    let before = rss_mb();
    let publishing = tokio::task::spawn_blocking(move || {
        publisher.publish(); // paced: about 12 s
        publisher
    });
    let grew = peak_growth(before, Duration::from_secs(14)).await;
    let _publisher = publishing.await.expect("the publisher ran");
    // Transport budget 2 MiB + queue 2 MiB + QUIC window 4 MiB + what the transport reads
    // beyond its budget while the reader waits for data (at most the window again).
    let bound = (2 + 2 + 4 + 4) as f64 * MIB as f64 / 1e6 + SLACK_MB;
    let (read, ended) = read_until_end(&mut sub, 3000, size).await;
    eprintln!(
        "3,000 one-object groups of 16 KiB, not read for 14 s: grew {grew:.1} MB (bound {bound:.1} MB); {read} read in order, then {ended:?}"
    );
    assert!(grew < bound, "grew {grew:.1} MB, bound {bound:.1} MB");
    match ended {
        None => assert_eq!(read, 3000),
        Some(SubscribeError::PublisherLost { .. }) => assert!(read > 0),
        Some(other) => panic!("after {read} objects: {other}"),
    }
}

/// Pins the cache half of issue #15: the transport kept every object of a group until the
/// group ended, so a publisher holding one group open grew every subscriber by its whole rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_held_open_at_10_mb_per_s_for_10_s_does_not_grow_a_reading_subscriber() {
    let _alone = ALONE.lock().await;
    let relay = RelayProcess::start();
    let size = 64 * 1024;
    let count = 1600; // 100 MiB at 10 MiB/s
    let mut publisher = PublisherProcess::start(
        &relay,
        &[
            "--namespace",
            "mem",
            "--track",
            "open",
            "--count",
            "1600",
            "--size",
            "65536",
            "--group-objects",
            "1000000",
            "--group-bytes",
            "1000000000000",
            "--rate",
            "10485760",
        ],
    );
    let client = connect(&relay, "moqt").await;
    let mut sub = client
        .subscribe("mem", "open", sub())
        .await
        .expect("subscribe");
    let before = rss_mb();
    let reader = tokio::spawn(async move {
        read_all(&mut sub, count, size).await;
    });
    let publishing = tokio::task::spawn_blocking(move || {
        publisher.publish(); // paced: returns after about 10 s
        publisher
    });
    let grew = peak_growth(before, Duration::from_secs(10)).await;
    let _publisher = publishing.await.expect("the publisher ran");
    reader.await.expect("every object arrived");
    // The default budget (8 MiB) + queue (8 MiB) bound it even if the reader lagged; read as
    // it arrives, far less is held.
    let bound = (8 + 8 + 1) as f64 * MIB as f64 / 1e6 + SLACK_MB;
    eprintln!("one group open, 100 MiB at 10 MiB/s, read as it arrives: grew {grew:.1} MB (bound {bound:.1} MB)");
    assert!(grew < bound, "grew {grew:.1} MB, bound {bound:.1} MB");
}
