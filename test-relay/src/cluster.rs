//! A cluster of moq-relay-ietf 0.8 relays, the published binary on the published (unpatched)
//! moq-transport, as users who outgrow one relay run it: each relay in its own process on
//! `127.0.0.1` with an ephemeral port and a certificate of its own, advertising itself with
//! `--node moqt://127.0.0.1:PORT` and trusting the others' certificates (`--tls-root`), so
//! that a relay that does not own a namespace dials the one that does.
//!
//! Two ways to coordinate ([`Coordination`]):
//! - [`Coordination::Api`]: `moq-api` 0.2.15 (an HTTP service) over a real `redis-server`
//!   (the system's), both started here on ephemeral ports: the relays register each
//!   announced namespace there (`POST /origin/...`, kept 600 s, refreshed every 300 s) and
//!   look up its origin on each SUBSCRIBE they cannot serve.
//! - [`Coordination::File`]: one JSON file the relays share (`--coordinator-file`); it also
//!   carries namespace discovery between relays, which moq-api does not.
//!
//! `scripts/build-cluster-relays` installs both binaries into `target/cluster-relays/bin`.
//! `MOQ_CLUSTER_LOG=1` shows every process's log on stderr (relays at `RUST_LOG` from
//! `MOQ_CLUSTER_RUST_LOG`, default `info`).

use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::child::Logged;
use crate::draft16::listening_port;
use crate::Identity;

/// How the relays of a [`Cluster`] learn which relay owns a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coordination {
    /// `moq-api` over Redis (`--api-url`).
    Api,
    /// A shared file (`--coordinator-file`).
    File,
}

/// One relay of the cluster.
struct Node {
    identity: Identity,
    /// Its UDP port, chosen before it starts (it advertises it) and kept across restarts.
    port: u16,
    process: Option<Logged>,
}

/// Redis and moq-api, for [`Coordination::Api`].
struct Api {
    redis_port: u16,
    redis: Option<Logged>,
    api_port: u16,
    _api: Logged,
}

/// A running cluster. Dropping it kills every process (SIGKILL).
pub struct Cluster {
    coordination: Coordination,
    /// With tokens on: every relay's `--scope-config` (sessions on [`crate::AUTH_PATH`] need
    /// a token signed by relay 0's token key, [`Cluster::token`]).
    scope_config: Option<PathBuf>,
    nodes: Vec<Node>,
    api: Option<Api>,
    /// Certificates (one file each, the relays' `--tls-root`), the file coordinator's file,
    /// Redis's dump.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Where the binaries are: `MOQ_CLUSTER_RELAYS_BIN` (a directory), else
    /// `cluster-relays/bin` in the target directory this executable runs from.
    pub fn binaries() -> anyhow::Result<PathBuf> {
        if let Some(dir) = std::env::var_os("MOQ_CLUSTER_RELAYS_BIN") {
            return Ok(dir.into());
        }
        let relay = crate::near_this_executable(
            "MOQ_CLUSTER_RELAYS_BIN",
            "cluster-relays/bin/moq-relay-ietf",
            "scripts/build-cluster-relays",
        )?;
        Ok(relay.parent().context("binary directory")?.to_path_buf())
    }

    /// Start `nodes` relays coordinated by `coordination` (Redis and moq-api first, for
    /// [`Coordination::Api`]), and wait until each listens.
    pub fn start(coordination: Coordination, nodes: usize) -> anyhow::Result<Self> {
        Self::start_with(coordination, nodes, false)
    }

    /// [`Cluster::start`], every relay checking tokens on [`crate::AUTH_PATH`] as the other
    /// test relays do (moq-relay-ietf's `--scope-config`; [`Cluster::token`] mints them).
    pub fn start_checking_tokens(coordination: Coordination, nodes: usize) -> anyhow::Result<Self> {
        Self::start_with(coordination, nodes, true)
    }

    fn start_with(coordination: Coordination, nodes: usize, tokens: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("create temporary directory")?;
        let api = match coordination {
            Coordination::Api => Some(Api::start(dir.path())?),
            Coordination::File => None,
        };
        let nodes = (0..nodes)
            .map(|_| {
                Ok(Node {
                    identity: Identity::generate()?,
                    port: free_udp_port()?,
                    process: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (index, node) in nodes.iter().enumerate() {
            let path = dir.path().join(format!("relay-{index}.pem"));
            std::fs::write(&path, &node.identity.ca_pem).context("write certificate")?;
        }
        let all: String = nodes.iter().map(|n| n.identity.ca_pem.as_str()).collect();
        std::fs::write(dir.path().join("cluster-ca.pem"), all).context("write certificates")?;
        let scope_config = match (tokens, nodes.first()) {
            (true, Some(first)) => Some(crate::draft16::write_scope_config(&first.identity)?),
            _ => None,
        };
        let mut cluster = Self {
            coordination,
            scope_config,
            nodes,
            api,
            dir,
        };
        for index in 0..cluster.nodes.len() {
            cluster.restart(index)?;
        }
        Ok(cluster)
    }

    /// How many relays.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it has no relays.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `moqt://localhost:PORT` of relay `index`.
    pub fn moqt_url(&self, index: usize) -> String {
        format!("moqt://localhost:{}", self.nodes[index].port)
    }

    /// `https://localhost:PORT` of relay `index` (WebTransport, same port).
    pub fn https_url(&self, index: usize) -> String {
        format!("https://localhost:{}", self.nodes[index].port)
    }

    /// The URL relay `index` advertises to the others (`--node`), as the coordinator
    /// records it.
    pub fn node_url(&self, index: usize) -> String {
        format!("moqt://127.0.0.1:{}", self.nodes[index].port)
    }

    /// Relay `index`'s certificate (PEM, self-signed): what a client must trust.
    pub fn ca_pem(&self, index: usize) -> &str {
        &self.nodes[index].identity.ca_pem
    }

    /// A file holding every relay's certificate (PEM), for clients that take CA files.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cluster-ca.pem")
    }

    /// Every relay's certificate.
    pub fn ca_pems(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.identity.ca_pem.clone())
            .collect()
    }

    /// Kill relay `index` (SIGKILL: no CONNECTION_CLOSE, and nothing withdrawn from the
    /// coordinator, as a crash).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.nodes[index].process.take() {
            process.kill();
        }
    }

    /// Start relay `index` (again), on its port, and wait until it listens.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill(index);
        let binary = Self::binaries()?.join("moq-relay-ietf");
        let node = &self.nodes[index];
        let dir = self.dir.path();
        let (cert, key) = (
            dir.join(format!("relay-{index}.pem")),
            dir.join(format!("relay-{index}-key.pem")),
        );
        std::fs::write(&key, &node.identity.key_pem).context("write key")?;
        let mut command = Command::new(&binary);
        command
            .arg("--bind")
            .arg(format!("127.0.0.1:{}", node.port))
            .arg("--node")
            .arg(self.node_url(index))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key);
        // `--tls-root` replaces the system roots, one certificate per file.
        for peer in 0..self.nodes.len() {
            command
                .arg("--tls-root")
                .arg(dir.join(format!("relay-{peer}.pem")));
        }
        match &self.api {
            Some(api) => command
                .arg("--api-url")
                .arg(format!("http://127.0.0.1:{}", api.api_port)),
            None => command
                .arg("--coordinator-file")
                .arg(dir.join("coordinator.json")),
        };
        if let Some(scope_config) = &self.scope_config {
            command.arg("--scope-config").arg(scope_config);
        }
        command.env(
            "RUST_LOG",
            std::env::var("MOQ_CLUSTER_RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
        let label = format!("relay {index}");
        let mut process = Logged::spawn(&mut command, &label, "MOQ_CLUSTER_LOG")?;
        process.wait_for(
            Duration::from_secs(30),
            &format!("{} did not listen", binary.display()),
            listening_port,
        )?;
        self.nodes[index].process = Some(process);
        Ok(())
    }

    /// Restart Redis ([`Coordination::Api`] only). `keep_data`: as Redis restarted by its
    /// operator with persistence (`SAVE`, then stop, then load the dump); otherwise its data
    /// is gone, as a Redis without persistence (or a new one) would have it.
    pub fn restart_redis(&mut self, keep_data: bool) -> anyhow::Result<()> {
        let api = self
            .api
            .as_mut()
            .context("restart_redis: this cluster coordinates through a file")?;
        let dump = self.dir.path().join("dump.rdb");
        if keep_data {
            api.redis_command(&["SAVE"])?;
        }
        if let Some(mut redis) = api.redis.take() {
            redis.kill();
        }
        if !keep_data {
            let _ = std::fs::remove_file(&dump);
        }
        api.redis = Some(start_redis(self.dir.path(), api.redis_port)?);
        Ok(())
    }

    /// Stop Redis ([`Coordination::Api`] only), until [`Cluster::restart_redis`].
    pub fn stop_redis(&mut self) -> anyhow::Result<()> {
        let api = self.api.as_mut().context("stop_redis: no Redis")?;
        api.redis_command(&["SAVE"])?;
        if let Some(mut redis) = api.redis.take() {
            redis.kill();
        }
        Ok(())
    }

    /// Remove every registration that names relay `index` as a namespace's origin: what
    /// moq-api does by itself when they expire (600 s after the dead relay last refreshed
    /// them), or an operator removing a dead relay's entries. Returns how many were removed.
    /// With [`Coordination::File`], edits the shared file.
    pub fn forget_registrations_of(&mut self, index: usize) -> anyhow::Result<usize> {
        let origin = self.node_url(index);
        match &self.api {
            Some(api) => {
                let keys = api.redis_command(&["--scan", "--pattern", "origin.*"])?;
                let mut removed = 0;
                for key in keys.lines().filter(|key| !key.is_empty()) {
                    let value = api.redis_command(&["GET", key])?;
                    if value.contains(&origin) {
                        api.redis_command(&["DEL", key])?;
                        removed += 1;
                    }
                }
                Ok(removed)
            }
            None => anyhow::bail!(
                "forget_registrations_of: a file coordinator overwrites a dead relay's entries"
            ),
        }
    }

    /// A token the relays accept on [`crate::AUTH_PATH`] when started with
    /// [`Cluster::start_checking_tokens`] (base64url, valid for an hour).
    ///
    /// # Panics
    /// If signing fails (it does not with a generated key).
    pub fn token(&self, grant: crate::TokenGrant) -> String {
        self.nodes[0].identity.mint(grant).expect("mint a token")
    }

    /// Which coordination it runs.
    pub fn coordination(&self) -> Coordination {
        self.coordination
    }
}

impl Api {
    fn start(dir: &std::path::Path) -> anyhow::Result<Self> {
        let redis_port = free_tcp_port()?;
        let redis = start_redis(dir, redis_port)?;
        let api_port = free_tcp_port()?;
        let binary = Cluster::binaries()?.join("moq-api");
        let mut command = Command::new(&binary);
        command
            .arg("--bind")
            .arg(format!("127.0.0.1:{api_port}"))
            .arg("--redis")
            .arg(format!("redis://127.0.0.1:{redis_port}"))
            .env("RUST_LOG", "info");
        let api = Logged::spawn(&mut command, "moq-api", "MOQ_CLUSTER_LOG")?;
        // It logs before it binds: wait until it accepts connections.
        wait_until_accepting(api_port, "moq-api")?;
        Ok(Self {
            redis_port,
            redis: Some(redis),
            api_port,
            _api: api,
        })
    }

    /// Run `redis-cli` against this Redis; returns its output.
    fn redis_command(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new("redis-cli")
            .arg("-p")
            .arg(self.redis_port.to_string())
            .args(args)
            .output()
            .context("run redis-cli (Debian: apt-get install redis-server)")?;
        anyhow::ensure!(
            output.status.success(),
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Start `redis-server` on `127.0.0.1:port`, its dump file in `dir` (loaded if there), no
/// automatic saves; wait until it answers.
fn start_redis(dir: &std::path::Path, port: u16) -> anyhow::Result<Logged> {
    let mut command = Command::new("redis-server");
    command
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(port.to_string())
        .arg("--dir")
        .arg(dir)
        .arg("--save")
        .arg("")
        .arg("--appendonly")
        .arg("no");
    let mut redis = Logged::spawn(&mut command, "redis", "MOQ_CLUSTER_LOG")
        .context("start redis-server (Debian: apt-get install redis-server)")?;
    redis.wait_for(
        Duration::from_secs(30),
        "redis-server was not ready",
        |line| line.contains("Ready to accept connections").then_some(()),
    )?;
    Ok(redis)
}

/// Wait (up to 30 s) until something accepts TCP connections on `127.0.0.1:port`.
fn wait_until_accepting(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("{what} did not accept connections on port {port} within 30 s")
}

/// A UDP port free now (the kernel's pick, released for the relay to bind; a relay must know
/// its port before it starts, to advertise it).
fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A TCP port free now, as [`free_udp_port`].
fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}
