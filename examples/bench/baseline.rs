//! The baseline: a plain moq-transport client (moq-native-ietf's QUIC endpoint, the
//! session's publisher and subscriber handles) with no SDK layer, used the way its own
//! examples use it. Same group policy as the SDK: one long group per 65,536 objects.

use std::sync::Mutex;

use bytes::Bytes;
use moq_native_ietf::{quic, tls};
use moq_transport::coding::TrackNamespace;
use moq_transport::data::ObjectStatus;
use moq_transport::serve::{
    Datagram, DatagramsReader, DatagramsWriter, SubgroupReader, SubgroupWriter, SubgroupsReader,
    SubgroupsWriter, Track, TrackReader, TrackReaderMode, Tracks,
};
use moq_transport::session::{transport, Publisher, Session, Subscribe, Subscriber};

use crate::{fail, median_round_ns, Args};

const GROUP_OBJECTS: u64 = 65_536;

struct Connection {
    _endpoint: quic::Endpoint,
    session: transport::Session,
    run: tokio::task::JoinHandle<()>,
    publisher: Publisher,
    subscriber: Subscriber,
}

async fn connect(args: &Args) -> Connection {
    let quic_args = quic::Args {
        bind: "0.0.0.0:0".parse().expect("static address"),
        qlog_dir: None,
        tls: tls::Args {
            root: vec![args.ca_file.clone().into()],
            ..Default::default()
        },
    };
    let endpoint = quic::Endpoint::new(quic_args.load().unwrap_or_else(|err| fail(err)))
        .unwrap_or_else(|err| fail(err));
    let url = url::Url::parse(&args.url).unwrap_or_else(|err| fail(err));
    let (session, _cid, transport) = endpoint
        .client
        .connect(&url, None)
        .await
        .unwrap_or_else(|err| fail(err));
    let (moq, publisher, subscriber) = Session::connect(session.clone(), None, transport)
        .await
        .unwrap_or_else(|err| fail(err));
    let run = tokio::spawn(async move {
        let _ = moq.run().await;
    });
    Connection {
        _endpoint: endpoint,
        session,
        run,
        publisher,
        subscriber,
    }
}

impl Connection {
    fn close(self) {
        self.session.close(0, "done");
        self.run.abort();
    }
}

/// Announce `namespace` and answer SUBSCRIBEs for its tracks; returns its single track "t".
async fn announce(connection: &Connection, namespace: &str) -> moq_transport::serve::TrackWriter {
    let namespace = TrackNamespace::from_utf8_path(namespace);
    let (mut writer, _request, reader) = Tracks::new(namespace.clone()).produce();
    let track = writer.create("t").unwrap_or_else(|| fail("create track"));
    let mut publisher = connection.publisher.clone();
    let handle = publisher
        .publish_namespace_start(namespace)
        .await
        .unwrap_or_else(|err| fail(err));
    handle.ok().await.unwrap_or_else(|err| fail(err));
    tokio::spawn(async move {
        let _writer = writer; // keeps the track list open
        while let Ok(Some(subscribed)) = handle.subscribed().await {
            tokio::spawn(Publisher::serve_subscribe(subscribed, reader.clone()));
        }
    });
    track
}

enum Writer {
    Stream {
        groups: SubgroupsWriter,
        current: Option<SubgroupWriter>,
        objects: u64,
    },
    Datagram {
        writer: DatagramsWriter,
        next: u64,
    },
}

/// The publishing half.
pub struct Publish(Mutex<Writer>);

impl Publish {
    pub fn publish(&self, payload: Bytes) {
        let mut writer = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let result = match &mut *writer {
            Writer::Stream {
                groups,
                current,
                objects,
            } => {
                if current.is_none() || *objects % GROUP_OBJECTS == 0 {
                    *current = Some(groups.append(128).unwrap_or_else(|err| fail(err)));
                }
                *objects += 1;
                current
                    .as_mut()
                    .map_or(Ok(()), |group| group.write(payload))
            }
            Writer::Datagram { writer, next } => {
                *next += 1;
                writer.write(Datagram {
                    group_id: *next - 1,
                    object_id: 0,
                    priority: 128,
                    status: ObjectStatus::NormalObject,
                    end_of_group: false,
                    payload,
                    extension_headers: Default::default(),
                })
            }
        };
        result.unwrap_or_else(|err| fail(err));
    }
}

enum ReadState {
    Start,
    Groups(SubgroupsReader, Option<SubgroupReader>),
    Datagrams(DatagramsReader),
}

/// The receiving half: the track read in place, object by object.
pub struct Receive {
    reader: TrackReader,
    state: ReadState,
    _subscribe: Subscribe,
}

impl Receive {
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            match &mut self.state {
                ReadState::Start => {
                    self.state = match self.reader.mode().await.ok()? {
                        TrackReaderMode::Subgroups(groups) => ReadState::Groups(groups, None),
                        TrackReaderMode::Datagrams(datagrams) => ReadState::Datagrams(datagrams),
                        TrackReaderMode::Stream(_) => return None,
                    }
                }
                ReadState::Groups(groups, current) => match current {
                    Some(group) => match group.read_next().await {
                        Ok(Some(payload)) => return Some(payload),
                        _ => *current = None,
                    },
                    None => *current = Some(groups.next().await.ok()??),
                },
                ReadState::Datagrams(datagrams) => {
                    return datagrams.read().await.ok()?.map(|d| d.payload)
                }
            }
        }
    }
}

pub struct Clients([Connection; 2]);

impl Clients {
    pub async fn close(self) {
        let [a, b] = self.0;
        a.close();
        b.close();
    }
}

pub async fn open(args: &Args, datagram: bool) -> (Publish, Receive, Clients) {
    let a = connect(args).await;
    let b = connect(args).await;
    let track = announce(&a, &args.namespace).await;
    let writer = if datagram {
        Writer::Datagram {
            writer: track.datagrams().unwrap_or_else(|err| fail(err)),
            next: 0,
        }
    } else {
        Writer::Stream {
            groups: track.subgroups().unwrap_or_else(|err| fail(err)),
            current: None,
            objects: 0,
        }
    };
    let (track_writer, reader) =
        Track::new(TrackNamespace::from_utf8_path(&args.namespace), "t").produce();
    let mut subscriber = b.subscriber.clone();
    let subscribe = subscriber
        .subscribe_open(track_writer)
        .await
        .unwrap_or_else(|err| fail(err));
    let receive = Receive {
        reader,
        state: ReadState::Start,
        _subscribe: subscribe,
    };
    (Publish(Mutex::new(writer)), receive, Clients([a, b]))
}

/// Nanoseconds per subgroup write on a track nobody subscribes to (median round).
pub async fn publish_calls(args: &Args, payload: Bytes) -> f64 {
    let connection = connect(args).await;
    let track = announce(&connection, &args.namespace).await;
    let mut groups = track.subgroups().unwrap_or_else(|err| fail(err));
    let mut group = groups.append(128).unwrap_or_else(|err| fail(err));
    let ns = median_round_ns(args.count as u64, |i| {
        if i > 0 && i % GROUP_OBJECTS == 0 {
            group = groups.append(128).unwrap_or_else(|err| fail(err));
        }
        group.write(payload.clone()).unwrap_or_else(|err| fail(err));
    });
    connection.close();
    ns
}
