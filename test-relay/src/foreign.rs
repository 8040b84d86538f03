//! A peer that subscribes to the client's tracks the way moq-dev's relay does: with a
//! Largest Object filter, at a moment the client does not choose (mid-group).
//!
//! moq-dev's relay (0.17) subscribes to a publisher with the Largest Object filter and, when
//! a group is already open, expects the publisher to send that group from its first object:
//! it cannot "stitch" a stream that starts mid-group, and drops the group. Our relays
//! subscribe without a filter, so only a peer like this one shows what a publisher does with
//! that filter.
//!
//! The client connects to [`ForeignSubscriber`] as it would to a relay (raw QUIC, `moqt://`,
//! a self-signed certificate trusted through the client's TLS configuration). Every
//! PUBLISH_NAMESPACE is accepted. [`ForeignSubscriber::subscribe_largest`] then subscribes to
//! one track of the last connected session and hands back each object received.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc as std_mpsc;

use anyhow::Context;
use bytes::Bytes;
use moq_native_ietf::quic;
use moq_transport::coding::{KeyValuePairs, TrackNamespace};
use moq_transport::message::SubscriptionFilter;
use moq_transport::serve::{Track, TrackReaderMode};
use moq_transport::session::{Session, Subscriber};
use tokio::sync::mpsc;

use crate::{Identity, Running};

/// One object as the peer received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Group id.
    pub group: u64,
    /// Object id within the group.
    pub object: u64,
    /// The payload.
    pub payload: Bytes,
}

/// What the subscription delivers: objects, then `Err` with the reason it ended.
pub type Delivery = Result<Received, String>;

struct Request {
    namespace: String,
    track: String,
    /// First subscribe and cancel at once, as moq-dev's relay probes a track.
    probe_first: bool,
    out: std_mpsc::Sender<Delivery>,
}

/// A running foreign-style subscriber peer. Dropping it stops the peer and closes its socket.
pub struct ForeignSubscriber {
    identity: Identity,
    addr: SocketAddr,
    requests: mpsc::UnboundedSender<Request>,
    running: Option<Running>,
}

impl ForeignSubscriber {
    /// Start the peer on `127.0.0.1` with an ephemeral port and a fresh self-signed certificate.
    pub fn start() -> anyhow::Result<Self> {
        let identity = Identity::generate()?;
        let socket = UdpSocket::bind("127.0.0.1:0").context("bind foreign peer socket")?;
        let addr = socket.local_addr()?;
        let tls = identity.tls()?;
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let running = Running::start(
            "moq-foreign-subscriber",
            move || {
                quic::Endpoint::new(quic::Config::with_socket(socket, None, tls))
                    .and_then(|endpoint| endpoint.server.context("no server side"))
            },
            move |server| serve(server, requests_rx),
        )?;
        Ok(Self {
            identity,
            addr,
            requests,
            running: Some(running),
        })
    }

    /// The peer's raw-QUIC URL, `moqt://localhost:PORT`.
    pub fn moqt_url(&self) -> String {
        format!("moqt://localhost:{}", self.addr.port())
    }

    /// Path of a file holding the CA certificate (PEM) clients must trust.
    pub fn ca_path(&self) -> &std::path::Path {
        &self.identity.ca_path
    }

    /// Subscribe to `namespace`/`track` (namespace fields split on `/`) on the session most
    /// recently connected, with the Largest Object filter. Objects arrive on the returned
    /// receiver in the order received; an `Err` reports why the subscription ended.
    pub fn subscribe_largest(&self, namespace: &str, track: &str) -> std_mpsc::Receiver<Delivery> {
        self.request(namespace, track, false)
    }

    /// [`Self::subscribe_largest`] after a probe, as moq-dev's relay does when a subscriber
    /// joins: SUBSCRIBE, cancel as soon as it is accepted, then SUBSCRIBE again.
    pub fn subscribe_largest_after_probe(
        &self,
        namespace: &str,
        track: &str,
    ) -> std_mpsc::Receiver<Delivery> {
        self.request(namespace, track, true)
    }

    fn request(
        &self,
        namespace: &str,
        track: &str,
        probe_first: bool,
    ) -> std_mpsc::Receiver<Delivery> {
        let (out, received) = std_mpsc::channel();
        let request = Request {
            namespace: namespace.into(),
            track: track.into(),
            probe_first,
            out,
        };
        if let Err(mpsc::error::SendError(request)) = self.requests.send(request) {
            let _ = request.out.send(Err("the foreign peer has stopped".into()));
        }
        received
    }
}

impl Drop for ForeignSubscriber {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }
}

/// Accept sessions (accepting every announcement) and run subscribe requests on the newest.
async fn serve(mut server: quic::Server, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut newest: Option<Subscriber> = None;
    loop {
        tokio::select! {
            accepted = server.accept() => {
                let Some((conn, info)) = accepted else { return };
                match Session::accept(conn, None, info.transport).await {
                    Ok((session, _publisher, Some(subscriber))) => {
                        newest = Some(subscriber.clone());
                        tokio::task::spawn_local(run_session(session, subscriber));
                    }
                    Ok(_) => eprintln!("moq-foreign-subscriber: the client does not publish"),
                    Err(err) => eprintln!("moq-foreign-subscriber: handshake failed: {err}"),
                }
            }
            Some(request) = requests.recv() => match &newest {
                Some(subscriber) => {
                    tokio::task::spawn_local(subscribe(subscriber.clone(), request));
                }
                None => {
                    let _ = request.out.send(Err("no client has connected".into()));
                }
            },
        }
    }
}

/// Drive one session and accept every namespace its client announces.
async fn run_session(session: Session, mut subscriber: Subscriber) {
    let mut held = Vec::new();
    let accept = async {
        while let Some(mut announced) = subscriber.published_namespace().await {
            if announced.ok().is_ok() {
                held.push(announced);
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        ended = session.run() => eprintln!("moq-foreign-subscriber: session ended: {ended:?}"),
        _ = accept => {}
    }
}

/// One SUBSCRIBE with the Largest Object filter; forward what arrives.
async fn subscribe(mut subscriber: Subscriber, request: Request) {
    let out = request.out.clone();
    if let Err(err) = forward(&mut subscriber, request).await {
        let _ = out.send(Err(format!("{err:#}")));
    }
}

fn largest_object() -> anyhow::Result<KeyValuePairs> {
    let mut params = KeyValuePairs::default();
    params
        .set_subscription_filter(&SubscriptionFilter::largest_object())
        .context("encode the filter")?;
    Ok(params)
}

async fn forward(subscriber: &mut Subscriber, request: Request) -> anyhow::Result<()> {
    let namespace = TrackNamespace::from_utf8_path(&request.namespace);
    if request.probe_first {
        let (writer, _reader) = Track::new(namespace.clone(), request.track.as_str()).produce();
        let probe = subscriber
            .subscribe_open_with_params(writer, largest_object()?)
            .await
            .context("probe SUBSCRIBE refused")?;
        // moq-dev's relay cancels its probe ~1.5 ms after sending it and subscribes again
        // ~2 ms later; 5 ms and 20 ms here, so that a publisher which takes the probe for an
        // audience sees it and has published before the real subscription arrives, however
        // the test is scheduled. Dropping an accepted subscription cancels it.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        drop(probe);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (writer, reader) = Track::new(namespace, request.track.as_str()).produce();
    let _subscription = subscriber
        .subscribe_open_with_params(writer, largest_object()?)
        .await
        .context("SUBSCRIBE refused")?;
    let TrackReaderMode::Subgroups(mut subgroups) = reader.mode().await.context("track mode")?
    else {
        anyhow::bail!("the publisher sent datagrams, not streams");
    };
    while let Some(mut subgroup) = subgroups.next().await.context("next subgroup")? {
        let group = subgroup.info.group_id;
        while let Some(mut object) = subgroup.next().await.context("next object")? {
            let id = object.info.object_id;
            let payload = object.read_all().await.context("object payload")?;
            let received = Received {
                group,
                object: id,
                payload,
            };
            if request.out.send(Ok(received)).is_err() {
                return Ok(());
            }
        }
    }
    anyhow::bail!("the subscription ended")
}
