"""Fixtures: a real relay (the moq-test-relay binary) and client configurations trusting it."""

import os
import subprocess

import pytest

import moqkit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Relay:
    """The test relay; with `mode="--hostile"` the peer that misbehaves on purpose
    (test-relay/src/hostile.rs), with `mode="--draft16"` moq-relay-ietf 0.7.31, a draft-16
    relay as published (test-relay/src/draft16.rs)."""

    def __init__(self, mode=None):
        binary = os.environ.get(
            "MOQ_TEST_RELAY_BIN", os.path.join(ROOT, "target", "debug", "moq-test-relay")
        )
        self.process = subprocess.Popen(
            [binary] + ([mode] if mode else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.env = {}
        for line in self.process.stdout:
            line = line.strip()
            if line == "READY":
                break
            key, _, value = line.partition("=")
            self.env[key] = value
        self.moqt_url = self.env["MOQ_RELAY_MOQT_URL"]
        self.https_url = self.env["MOQ_RELAY_HTTPS_URL"]
        self.ca_file = self.env["MOQ_RELAY_CA_FILE"]

    def url(self, scheme):
        return self.moqt_url if scheme == "moqt" else self.https_url

    def secure_config(self, scheme="moqt", token=None):
        """A configuration for the relay's path with token checking on (MOQ_RELAY_AUTH_PATH)."""
        config = self.config(scheme)
        config.url = self.url(scheme) + self.env["MOQ_RELAY_AUTH_PATH"]
        config.token = token
        return config

    def config(self, scheme="moqt", **overrides):
        config = moqkit.default_client_config(self.url(scheme))
        config.tls = moqkit.TlsOptions(
            use_system_roots=False,
            extra_ca_pem=[],
            extra_ca_files=[self.ca_file],
            pinned_sha256=[],
            danger_accept_any_certificate=False,
        )
        config.idle_timeout_ms = 2000
        config.keep_alive_interval_ms = 300
        config.rendezvous_timeout_ms = 2000
        for key, value in overrides.items():
            setattr(config, key, value)
        return config

    def command(self, command, answer):
        """Send `stop` (the relay dies abruptly) or `restart` (same port and certificate)."""
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline().strip()
        assert line == answer, f"relay answered {line!r} to {command!r}"

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def relay():
    relay = Relay()
    yield relay
    relay.stop()


@pytest.fixture(scope="module")
def hostile_peer():
    peer = Relay("--hostile")
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def draft16_relay():
    relay = Relay("--draft16")
    yield relay
    relay.stop()
