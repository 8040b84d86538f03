"""Failover between relays (issue #27): a client given relay A and relay B as its fallback
(`ClientConfig.fallback_urls`) moves to B when A dies, announces and subscribes again there,
and continues in order; `Client.connected_relay()` says where it is."""

import asyncio
import time

import moqkit
import pytest

from conftest import Relay
from test_moq import payload, resumed_after_gap, run, unique


def failover_config(a, b, scheme):
    config = a.config(
        scheme,
        reconnect=moqkit.ReconnectPolicy(initial_delay_ms=100, max_delay_ms=400, max_attempts=0),
        rendezvous_timeout_ms=10000,
        connect_timeout_ms=3000,
    )
    # Each relay has its own certificate: trust both.
    config.tls.extra_ca_files = [a.ca_file, b.ca_file]
    config.fallback_urls = [b.url(scheme)]
    return config


async def wait_relay(client, index, timeout):
    deadline = time.time() + timeout
    while True:
        relay = client.connected_relay()
        if relay is not None and relay.index == index:
            return relay
        assert time.time() < deadline, f"not on relay {index} of its list: {relay}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_failover_to_the_fallback_relay_when_the_first_dies(scheme):
    a, b = Relay(), Relay()  # this test stops A

    async def main():
        pub = moqkit.Client(failover_config(a, b, scheme))
        sub_client = moqkit.Client(failover_config(a, b, scheme))
        assert pub.connected_relay() is None
        await pub.connect()
        await sub_client.connect()
        assert pub.connected_relay() == moqkit.ConnectedRelay(index=0, url=a.url(scheme))
        ns = unique("failover")
        await pub.announce(ns)
        publisher = pub.create_publisher(ns, "t", None)
        subscriber = await sub_client.subscribe(ns, "t")
        for i in range(10):
            publisher.publish(payload(i))
        before = [await asyncio.wait_for(subscriber.next(), 10) for _ in range(10)]
        assert [o.payload for o in before] == [payload(i) for i in range(10)]

        a.command("stop", "STOPPED")
        on_b = await wait_relay(pub, 1, 20)
        assert on_b.url == b.url(scheme)
        await wait_relay(sub_client, 1, 20)

        await resumed_after_gap(publisher, subscriber)
        await pub.disconnect()
        await sub_client.disconnect()

    try:
        run(main())
    finally:
        b.stop()
        a.stop()


def test_fallback_urls_are_checked():
    config = moqkit.default_client_config("moqt://localhost:4443")
    config.fallback_urls = ["http://relay.example"]
    with pytest.raises(moqkit.MoqError.InvalidArgument) as err:
        moqkit.Client(config)
    assert "fallback_urls" in str(err.value)
