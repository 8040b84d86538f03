"""``python -m moqkit`` as installed from the wheel."""

import os
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def crate_version():
    """The one version source: Cargo.toml's [workspace.package] version."""
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as manifest:
        return tomllib.load(manifest)["workspace"]["package"]["version"]


def run(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "moqkit", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_version_names_the_package_and_the_library():
    result = run("--version")
    assert result.returncode == 0, result.stderr
    version = crate_version()
    assert result.stdout.strip() == f"moqkit {version} (moq_ffi {version})"


def test_selftest_publishes_and_receives_through_the_relay_both_schemes(relay):
    for scheme in ("moqt", "https"):
        result = run("selftest", relay.url(scheme), "--ca", relay.ca_file, "--count", "20")
        assert result.returncode == 0, result.stderr
        assert "published 20 objects and received each intact and in order" in result.stdout
        assert result.stdout.strip().endswith("self-test passed")


def test_selftest_against_an_untrusted_relay_fails_with_the_tls_error(relay):
    result = run("selftest", relay.url("moqt"))  # no --ca: the relay's CA is not trusted
    assert result.returncode == 1
    assert "self-test failed: " in result.stderr
    assert "UnknownIssuer" in result.stderr and "trust the relay's CA" in result.stderr


def test_selftest_trusts_a_pinned_fingerprint_and_refuses_a_wrong_one(relay):
    pin = relay.env["MOQ_RELAY_SHA256"]
    result = run("selftest", relay.url("moqt"), "--pin", pin, "--count", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("self-test passed")

    wrong = ("0" if pin[0] != "0" else "1") + pin[1:]
    result = run("selftest", relay.url("moqt"), "--pin", wrong)
    assert result.returncode == 1
    assert "self-test failed: " in result.stderr
    assert "TLS handshake" in result.stderr and "fingerprint" in result.stderr
