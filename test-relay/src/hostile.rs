//! A MoQT peer that completes the handshake correctly and then misbehaves on purpose, so tests
//! can check that no peer behaviour ends a client's session (unless the peer breaks the
//! protocol, which ends that session only) or grows its memory without bound.
//!
//! The client connects to [`HostilePeer`] as it would to a relay (raw QUIC, `moqt://`; the same
//! self-signed certificate scheme as [`crate::TestRelay`]). It is built on moq-transport's own
//! server side (`Session::accept`, the serve API), and writes raw data streams on the same QUIC
//! connection where the crate cannot be made to misbehave.
//!
//! What it does is chosen by what the client asks for (see [`tracks`]):
//! - a SUBSCRIBE to namespace [`tracks::GOOD`] is served properly: one 8-byte object (a
//!   little-endian counter) per group every 10 ms, for as long as the client stays;
//! - a SUBSCRIBE to namespace [`tracks::HOSTILE`] gets the misbehaviour its track names;
//! - a SUBSCRIBE_NAMESPACE is accepted and answered with a flood: [`FLOOD_ROUNDS`] rounds of
//!   [`FLOOD_NAMESPACES`] namespaces announced then withdrawn, then names at the wire's limits,
//!   then [`FLOOD_DONE`], which stays announced (a marker the client can wait for).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use moq_native_ietf::quic;
use moq_transport::coding::{Encode, TrackNamespace, TupleField};
use moq_transport::data::{StreamHeaderType, SubgroupHeader, SubgroupIdMode, SubgroupObject};
use moq_transport::serve::{ServeError, Subgroup, SubgroupWriter, SubgroupsWriter, Track};
use moq_transport::session::{Publisher, Session, Subscribed, SubscribedNamespace};

use crate::{Identity, Running};

/// The namespaces and track names the peer reacts to.
pub mod tracks {
    /// Namespace whose tracks are served properly (any track name).
    pub const GOOD: &str = "good";
    /// Namespace whose track names select a misbehaviour.
    pub const HOSTILE: &str = "hostile";
    /// SUBSCRIBE is never answered (neither SUBSCRIBE_OK nor an error).
    pub const SILENT: &str = "silent";
    /// SUBSCRIBE_OK, then one object of [`super::OVERSIZE_OBJECT_BYTES`] bytes.
    pub const OVERSIZE: &str = "oversize";
    /// SUBSCRIBE_OK, then group 0 holds an object whose header announces
    /// [`super::CUT_OBJECT_DECLARED`] bytes but whose stream ends after 10 (reset mid-object);
    /// group 1 holds one whole object, [`super::CUT_THEN_WHOLE`].
    pub const CUT: &str = "cut";
    /// SUBSCRIBE_OK, then [`super::FLOOD_STREAMS`] groups of one 100-byte object each, 250
    /// every 100 ms: one QUIC stream per group.
    pub const STREAM_FLOOD: &str = "stream-flood";
    /// SUBSCRIBE_OK, then [`super::UNKNOWN_ALIAS_STREAMS`] raw data streams for a track alias
    /// nobody subscribed to.
    pub const UNKNOWN_ALIAS: &str = "unknown-alias";
    /// SUBSCRIBE_OK, then group 0 gets one object and stays open, idle, while group 1
    /// streams [`super::IDLE_BESIDE_BYTES`] in 64 KiB objects as fast as the subscriber takes
    /// them: a layered codec's shape, or a peer trying to grow a subscriber that waits on the
    /// idle group.
    pub const IDLE_BESIDE: &str = "idle-beside";
    /// SUBSCRIBE_OK, then a data stream whose header is garbage: a protocol violation that
    /// ends the session. Sent on the first such request of the peer's life only, so a client
    /// that reconnects and subscribes again gets a working session.
    pub const GARBAGE: &str = "garbage";
    /// Namespace whose tracks answer with what the SUBSCRIBE asked for (not hostile: a
    /// peer that shows the client's request as it arrived). One object, then the group
    /// stays open: `subscriber_priority=P group_order=O`, O one of `publisher`, `ascending`,
    /// `descending`.
    pub const ECHO: &str = "echo";
}

/// Size of the object sent on [`tracks::OVERSIZE`].
pub const OVERSIZE_OBJECT_BYTES: usize = 8 * 1024 * 1024;
/// Size the cut object's header announces.
pub const CUT_OBJECT_DECLARED: usize = 100_000;
/// The whole object that follows the cut one.
pub const CUT_THEN_WHOLE: &[u8] = b"whole object after the cut one";
/// Groups (streams) sent on [`tracks::STREAM_FLOOD`].
pub const FLOOD_STREAMS: u64 = 5_000;
/// Bytes streamed on group 1 of [`tracks::IDLE_BESIDE`].
pub const IDLE_BESIDE_BYTES: usize = 64 * 1024 * 1024;
/// Raw streams sent on [`tracks::UNKNOWN_ALIAS`].
pub const UNKNOWN_ALIAS_STREAMS: u64 = 200;
/// Namespaces announced then withdrawn in each discovery flood round.
pub const FLOOD_NAMESPACES: usize = 500;
/// Discovery flood rounds.
pub const FLOOD_ROUNDS: usize = 20;
/// The namespace left announced once the discovery flood is over.
pub const FLOOD_DONE: &str = "flood/done";

/// A running hostile peer. Dropping it stops the peer and closes its socket.
pub struct HostilePeer {
    identity: Identity,
    addr: SocketAddr,
    running: Option<Running>,
}

impl HostilePeer {
    /// Start the peer on `127.0.0.1` with an ephemeral port and a fresh self-signed certificate.
    pub fn start() -> anyhow::Result<Self> {
        let identity = Identity::generate()?;
        let socket = UdpSocket::bind("127.0.0.1:0").context("bind hostile peer socket")?;
        let addr = socket.local_addr()?;
        let tls = identity.tls()?;
        let running = Running::start(
            "moq-hostile-peer",
            move || {
                quic::Endpoint::new(quic::Config::with_socket(socket, None, tls))
                    .and_then(|endpoint| endpoint.server.context("no server side"))
            },
            serve,
        )?;
        Ok(Self {
            identity,
            addr,
            running: Some(running),
        })
    }

    /// The peer's raw-QUIC URL, `moqt://localhost:PORT`.
    pub fn moqt_url(&self) -> String {
        format!("moqt://localhost:{}", self.addr.port())
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.identity.ca_pem
    }

    /// Path of a file holding [`Self::ca_pem`].
    pub fn ca_path(&self) -> &std::path::Path {
        &self.identity.ca_path
    }
}

impl Drop for HostilePeer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }
}

/// Accept connections until the peer stops; each session runs in its own local task.
async fn serve(mut server: quic::Server) {
    let garbage_sent = Arc::new(AtomicBool::new(false));
    while let Some((conn, info)) = server.accept().await {
        let garbage_sent = garbage_sent.clone();
        tokio::task::spawn_local(async move {
            let raw = conn.clone();
            let (session, publisher, _subscriber) =
                match Session::accept(conn, None, info.transport).await {
                    Ok(parts) => parts,
                    Err(err) => {
                        eprintln!("moq-hostile-peer: handshake failed: {err}");
                        return;
                    }
                };
            let Some(publisher) = publisher else {
                eprintln!("moq-hostile-peer: the client does not subscribe");
                return;
            };
            let peer = Connection { raw, garbage_sent };
            tokio::select! {
                ended = session.run() => eprintln!("moq-hostile-peer: session ended: {ended:?}"),
                _ = peer.answer(publisher) => eprintln!("moq-hostile-peer: answering ended"),
            }
        });
    }
}

/// One accepted session's misbehaviour.
#[derive(Clone)]
struct Connection {
    raw: moq_transport::session::transport::Session,
    garbage_sent: Arc<AtomicBool>,
}

impl Connection {
    /// Answer every SUBSCRIBE and SUBSCRIBE_NAMESPACE of the session.
    async fn answer(self, publisher: Publisher) {
        let mut subscribes = publisher.clone();
        let mut namespaces = publisher;
        loop {
            tokio::select! {
                Some(subscribed) = subscribes.subscribed() => {
                    tokio::task::spawn_local(self.clone().subscribe(subscribed));
                }
                Some(request) = namespaces.subscribed_namespace() => {
                    tokio::task::spawn_local(flood_namespaces(request));
                }
                else => return,
            }
        }
    }

    async fn subscribe(self, subscribed: Subscribed) {
        let namespace = subscribed
            .info
            .track_namespace
            .fields
            .iter()
            .map(|field| String::from_utf8_lossy(&field.value))
            .collect::<Vec<_>>()
            .join("/");
        let track = subscribed.info.track_name.to_string_lossy().into_owned();
        let result = match (namespace.as_str(), track.as_str()) {
            (tracks::GOOD, _) => serve_good(subscribed).await,
            (tracks::ECHO, _) => serve_echo(subscribed).await,
            (tracks::HOSTILE, tracks::SILENT) => {
                // Keep the request without answering until the session ends.
                std::future::pending::<()>().await;
                drop(subscribed);
                Ok(())
            }
            (tracks::HOSTILE, tracks::OVERSIZE) => serve_oversize(subscribed).await,
            (tracks::HOSTILE, tracks::CUT) => serve_cut(subscribed).await,
            (tracks::HOSTILE, tracks::STREAM_FLOOD) => serve_flood(subscribed).await,
            (tracks::HOSTILE, tracks::IDLE_BESIDE) => serve_idle_beside(subscribed).await,
            (tracks::HOSTILE, tracks::UNKNOWN_ALIAS) => self.unknown_alias(subscribed).await,
            (tracks::HOSTILE, tracks::GARBAGE) => self.garbage(subscribed).await,
            _ => subscribed
                .close(ServeError::NotFound)
                .map_err(anyhow::Error::from),
        };
        if let Err(err) = result {
            eprintln!("moq-hostile-peer: {namespace}/{track}: {err:#}");
        }
    }

    /// SUBSCRIBE_OK for an empty track, then raw streams for an alias nobody subscribed to.
    async fn unknown_alias(&self, subscribed: Subscribed) -> anyhow::Result<()> {
        let raw = self.raw.clone();
        serve_writing(subscribed, |groups| async move {
            for group_id in 0..UNKNOWN_ALIAS_STREAMS {
                let mut stream = raw.open_uni().await?;
                stream
                    .write(&data_stream(0xDEAD_BEEF, group_id, b"for nobody"))
                    .await?;
                stream.finish()?;
            }
            Ok(groups) // open and empty
        })
        .await
    }

    /// SUBSCRIBE_OK, then one data stream whose type is not a MoQT stream type.
    async fn garbage(&self, subscribed: Subscribed) -> anyhow::Result<()> {
        if self.garbage_sent.swap(true, Ordering::SeqCst) {
            return serve_good(subscribed).await;
        }
        let raw = self.raw.clone();
        serve_writing(subscribed, |groups| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut stream = raw.open_uni().await?;
            stream.write(&[0x3f; 64]).await?;
            stream.finish()?;
            Ok(groups)
        })
        .await
    }
}

/// The serve-side track for a request.
fn track(subscribed: &Subscribed) -> Track {
    Track::new(
        subscribed.info.track_namespace.clone(),
        subscribed.info.track_name.clone(),
    )
}

/// Serve the request's track with what `write` writes to it. `write` hands the writer back
/// when done: the track stays open (and served) until the subscriber leaves.
async fn serve_writing<F, Fut>(subscribed: Subscribed, write: F) -> anyhow::Result<()>
where
    F: FnOnce(SubgroupsWriter) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<SubgroupsWriter>>,
{
    let (writer, reader) = track(&subscribed).produce();
    let groups = writer.subgroups()?;
    let write = async move {
        let _open = write(groups).await?;
        std::future::pending::<()>().await;
        anyhow::Ok(())
    };
    tokio::select! {
        served = subscribed.serve(reader) => served?,
        written = write => written?,
    }
    Ok(())
}

fn group(groups: &mut SubgroupsWriter, group_id: u64) -> Result<SubgroupWriter, ServeError> {
    groups.create(Subgroup {
        group_id,
        subgroup_id: 0,
        priority: 0,
    })
}

/// One 8-byte counter object per group every 10 ms, until the subscriber leaves.
async fn serve_good(subscribed: Subscribed) -> anyhow::Result<()> {
    serve_writing(subscribed, |mut groups| async move {
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        for tick in 0u64.. {
            interval.tick().await;
            group(&mut groups, tick)?.write(Bytes::copy_from_slice(&tick.to_le_bytes()))?;
        }
        Ok(groups)
    })
    .await
}

/// One object describing the SUBSCRIBE as received (see [`tracks::ECHO`]).
async fn serve_echo(subscribed: Subscribed) -> anyhow::Result<()> {
    use moq_transport::message::GroupOrder;
    let order = match subscribed.info.group_order {
        GroupOrder::Publisher => "publisher",
        GroupOrder::Ascending => "ascending",
        GroupOrder::Descending => "descending",
    };
    let echo = format!(
        "subscriber_priority={} group_order={order}",
        subscribed.info.subscriber_priority
    );
    serve_writing(subscribed, |mut groups| async move {
        group(&mut groups, 0)?.write(Bytes::from(echo))?;
        Ok(groups)
    })
    .await
}

/// One object of [`OVERSIZE_OBJECT_BYTES`], streamed in 64 KiB chunks of one shared buffer.
async fn serve_oversize(subscribed: Subscribed) -> anyhow::Result<()> {
    serve_writing(subscribed, |mut groups| async move {
        let chunk = Bytes::from(vec![0x5a; 64 * 1024]);
        let mut group = group(&mut groups, 0)?;
        let mut object = group.create(OVERSIZE_OBJECT_BYTES, None)?;
        for _ in 0..OVERSIZE_OBJECT_BYTES / chunk.len() {
            object.write(chunk.clone())?;
            tokio::task::yield_now().await;
        }
        Ok(groups)
    })
    .await
}

/// Group 0: an object cut short (its stream is reset mid-object); group 1: a whole object.
async fn serve_cut(subscribed: Subscribed) -> anyhow::Result<()> {
    serve_writing(subscribed, |mut groups| async move {
        let mut cut = group(&mut groups, 0)?;
        let mut object = cut.create(CUT_OBJECT_DECLARED, None)?;
        object.write(Bytes::from_static(&[1; 10]))?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(object); // short of its size: the serving side resets the stream
        let _ = cut.close(ServeError::Closed(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
        group(&mut groups, 1)?.write(Bytes::from_static(CUT_THEN_WHOLE))?;
        Ok(groups)
    })
    .await
}

/// [`FLOOD_STREAMS`] groups of one object each, in bursts of 250.
async fn serve_flood(subscribed: Subscribed) -> anyhow::Result<()> {
    serve_writing(subscribed, |mut groups| async move {
        let payload = Bytes::from(vec![0xf1; 100]);
        // Let the serving side claim the track first: until then moq-transport keeps only the
        // newest 8 unclaimed groups of a track.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for group_id in 0..FLOOD_STREAMS {
            group(&mut groups, group_id)?.write(payload.clone())?;
            // moq-transport's serving side ends a subscription that falls 1,024 groups
            // behind; 250 groups per 100 ms keeps this peer's own side within that.
            if group_id % 250 == 249 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(groups)
    })
    .await
}

/// Group 0: one object, then idle and open; group 1: [`IDLE_BESIDE_BYTES`] as fast as taken.
async fn serve_idle_beside(subscribed: Subscribed) -> anyhow::Result<()> {
    serve_writing(subscribed, |mut groups| async move {
        // Let the serving side claim the track first (see `serve_flood`).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut idle = group(&mut groups, 0)?;
        idle.write(Bytes::from_static(b"the idle group's only object"))?;
        let mut busy = group(&mut groups, 1)?;
        let chunk = Bytes::from(vec![0x1d; 64 * 1024]);
        for _ in 0..IDLE_BESIDE_BYTES / chunk.len() {
            busy.write(chunk.clone())?;
            tokio::task::yield_now().await;
        }
        // Group 0 stays open, idle, as long as the subscriber stays.
        std::future::pending::<()>().await;
        drop(idle);
        Ok(groups)
    })
    .await
}

/// Accept a SUBSCRIBE_NAMESPACE, then flood it (see the module doc).
async fn flood_namespaces(mut request: SubscribedNamespace) {
    if let Err(err) = flood(&mut request).await {
        eprintln!("moq-hostile-peer: namespace flood: {err:#}");
        return;
    }
    // Keep the request (and what it announced) until the session ends.
    let _ = request.closed().await;
}

async fn flood(request: &mut SubscribedNamespace) -> anyhow::Result<()> {
    request.ok()?;
    for round in 0..FLOOD_ROUNDS {
        let names: Vec<TrackNamespace> = (0..FLOOD_NAMESPACES)
            .map(|i| TrackNamespace::from_utf8_path(&format!("flood/{round}/{i}")))
            .collect();
        for name in &names {
            paced(|| request.namespace(name)).await?;
        }
        tokio::task::yield_now().await;
        for name in &names {
            // A refused NAMESPACE_DONE has already forgotten the namespace: announce it
            // again (the client ignores a repeat) before retrying.
            let mut refused = false;
            paced(|| {
                if std::mem::take(&mut refused) {
                    let _ = request.namespace(name);
                }
                let sent = request.namespace_done(name);
                refused = matches!(sent, Err(ServeError::Cancel));
                sent
            })
            .await?;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for name in names_at_the_limits() {
        paced(|| request.namespace(&name)).await?;
    }
    paced(|| request.namespace(&TrackNamespace::from_utf8_path(FLOOD_DONE))).await?;
    Ok(())
}

/// Send one message of the flood. moq-transport queues a request's responses in a bounded
/// channel and refuses (`Cancel`) when it is full, which a loaded machine reaches: wait for
/// room then, for up to 10 s.
async fn paced(mut send: impl FnMut() -> Result<(), ServeError>) -> Result<(), ServeError> {
    for _ in 0..2_000 {
        match send() {
            Err(ServeError::Cancel) => tokio::time::sleep(Duration::from_millis(5)).await,
            done => return done,
        }
    }
    send()
}

/// Namespaces exactly at the wire's limits (moq-transport's decoder accepts them): 32 fields,
/// and 4,096 bytes of fields in total.
pub fn names_at_the_limits() -> Vec<TrackNamespace> {
    let fields: Vec<String> = (0..TrackNamespace::MAX_FIELDS)
        .map(|i| format!("f{i}"))
        .collect();
    let mut long = TrackNamespace::new();
    long.add(TupleField::from_utf8("limits"));
    long.add(TupleField {
        value: vec![b'x'; 4096 - "limits".len()],
    });
    vec![TrackNamespace::from_utf8_path(&fields.join("/")), long]
}

/// A SUBGROUP_HEADER and one object, as raw bytes.
fn data_stream(track_alias: u64, group_id: u64, payload: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = SubgroupHeader {
        header_type: StreamHeaderType::subgroup(SubgroupIdMode::Zero, false, false, false, false),
        track_alias,
        group_id,
        subgroup_id: None,
        publisher_priority: 0,
    };
    // Encoding into a growable buffer cannot run out of room.
    let _ = header.encode(&mut buf);
    let object = SubgroupObject {
        object_id_delta: 0,
        payload_length: payload.len(),
        status: None,
    };
    let _ = object.encode(&mut buf);
    buf.put_slice(payload);
    buf.to_vec()
}
