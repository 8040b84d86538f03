"""``python -m moqkit``: the package's version, and a quick publish/subscribe self-test.

    python -m moqkit --version
    python -m moqkit selftest URL [--ca FILE]... [--pin SHA256]... [--count N]

The self-test connects to the relay at URL (``moqt://`` or ``https://``), announces a fresh
namespace, subscribes to a track in it, publishes ``--count`` objects and checks that each comes
back intact and in order. It prints a line per step and exits 0, or prints the error and exits 1.
The relay's certificate must be trusted: by the system, by ``--ca`` (a PEM file, added to the
system roots) or by ``--pin`` (its SHA-256 fingerprint, hex).
"""

import argparse
import asyncio
import importlib.metadata
import os
import sys
import time

from . import Client, MoqError, TlsOptions, default_client_config, version


def _package_version():
    try:
        return importlib.metadata.version("moqkit")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "(not installed)"


async def _selftest(args):
    config = default_client_config(args.url)
    if args.ca or args.pin:
        config.tls = TlsOptions(use_system_roots=True, extra_ca_pem=[], extra_ca_files=list(args.ca),
                                pinned_sha256=list(args.pin), danger_accept_any_certificate=False)
    config.connect_timeout_ms = args.timeout_ms
    client = Client(config)
    started = time.monotonic()
    await client.connect()
    print(f"connected to {args.url} in {(time.monotonic() - started) * 1000:.0f} ms")
    try:
        namespace = f"moqkit-selftest/{os.getpid()}-{time.time_ns()}"
        await client.announce(namespace)
        publisher = client.create_publisher(namespace, "selftest", None)
        subscriber = await client.subscribe(namespace, "selftest")
        payloads = [f"moqkit self-test object {i}".encode() for i in range(args.count)]
        started = time.monotonic()
        for payload in payloads:
            publisher.publish(payload)
        for expected in payloads:
            received = await asyncio.wait_for(subscriber.next(), args.timeout_ms / 1000)
            if received is None or received.payload != expected:
                got = None if received is None else received.payload
                raise RuntimeError(f"expected {expected!r}, received {got!r}")
        elapsed = (time.monotonic() - started) * 1000
        print(f"published {args.count} objects and received each intact and in order in {elapsed:.0f} ms")
    finally:
        await client.disconnect()


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m moqkit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="store_true", help="print the package and library versions")
    commands = parser.add_subparsers(dest="command")
    selftest = commands.add_parser("selftest", help="publish to and receive from a relay")
    selftest.add_argument("url", help="the relay, moqt://host:port or https://host:port")
    selftest.add_argument("--ca", action="append", default=[], metavar="FILE",
                          help="trust this PEM CA certificate too (repeatable)")
    selftest.add_argument("--pin", action="append", default=[], metavar="SHA256",
                          help="trust a certificate with this SHA-256 fingerprint (hex; repeatable)")
    selftest.add_argument("--count", type=_positive, default=5, help="objects to send (default 5)")
    selftest.add_argument("--timeout-ms", type=_positive, default=5000,
                          help="connect and per-object timeout (default 5000)")
    args = parser.parse_args(argv)
    if args.version:
        print(f"moqkit {_package_version()} ({version()})")
        return 0
    if args.command != "selftest":
        parser.print_help()
        return 2
    try:
        asyncio.run(_selftest(args))
    except (MoqError, RuntimeError, asyncio.TimeoutError) as error:
        kind = type(error).__name__ if not isinstance(error, asyncio.TimeoutError) else "Timeout"
        print(f"self-test failed: {kind}: {str(error) or 'no answer within the timeout'}", file=sys.stderr)
        return 1
    print("self-test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
