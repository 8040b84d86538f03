//! Published relays and services in child processes (the draft-16 relay, a cluster's relays,
//! moq-api, Redis): started so that they die with this process, their output read
//! continuously (a full pipe would stall them) and searched for the line saying they are
//! ready.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::Context;

/// A child process whose stdout and stderr lines arrive on `lines`.
pub(crate) struct Logged {
    pub(crate) child: Child,
    lines: Receiver<String>,
}

impl Logged {
    /// Start `command` (stdin null, stdout and stderr read by two threads). `label` prefixes
    /// its lines on this process's stderr when the environment variable `show` is set (to
    /// debug against it). On Linux the kernel kills it when this process dies, even by
    /// SIGKILL: it reads no stdin, so nothing else would end it.
    pub(crate) fn spawn(command: &mut Command, label: &str, show: &str) -> anyhow::Result<Self> {
        command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .spawn()
            .with_context(|| format!("start {program}"))?;
        let (sender, lines) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().context("child stdout")?;
        let stderr = child.stderr.take().context("child stderr")?;
        let show = std::env::var_os(show).is_some();
        for output in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let (sender, label) = (sender.clone(), label.to_string());
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if show {
                        eprintln!("[{label}] {line}");
                    }
                    let _ = sender.send(line);
                }
            });
        }
        Ok(Self { child, lines })
    }

    /// The first `found(line)` that is `Some` among the lines printed within `within`; an
    /// error (and the process killed) if none.
    pub(crate) fn wait_for<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            if let Some(value) = found(&line) {
                return Ok(value);
            }
        }
        self.kill();
        anyhow::bail!("{what} within {within:?}")
    }

    /// Kill it (SIGKILL: as a crash, nothing sent to its peers) and reap it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.kill();
    }
}
