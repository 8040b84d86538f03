"""What apps ask for next (#26): connection and subscription statistics, client certificates
(mutual TLS) against a relay that requires them (`moq-test-relay --client-auth`), and
new-group requests through the relay."""

import asyncio
import os
import itertools

import pytest

import moqkit
from conftest import Relay

_names = itertools.count()


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def mtls_relay():
    relay = Relay("--client-auth")
    yield relay
    relay.stop()


def test_stats_count_what_a_subscription_received(relay):
    async def main():
        idle = moqkit.Client(relay.config())
        stats = idle.stats()
        assert stats.state == moqkit.ConnectionState.DISCONNECTED
        assert stats.draft is None and stats.bytes_sent == 0

        publishing = moqkit.Client(relay.config())
        subscribing = moqkit.Client(relay.config())
        await publishing.connect()
        await subscribing.connect()
        ns = unique("stats")
        await publishing.announce(ns)
        publisher = publishing.create_publisher(ns, "t", None)
        subscriber = await subscribing.subscribe(ns, "t")
        assert subscriber.stats().objects_received == 0
        assert subscriber.stats().current_group is None
        sent = [bytes([i % 256]) * 1000 for i in range(100)]
        publisher.publish_many(sent)
        got = [(await asyncio.wait_for(subscriber.next(), 10)).payload for _ in sent]
        assert got == sent
        sub_stats = subscriber.stats()
        assert sub_stats.objects_received == 100
        assert sub_stats.bytes_received == 100_000
        assert sub_stats.buffered_objects == 0
        assert sub_stats.current_group is not None
        assert sub_stats.objects_dropped == 0 and sub_stats.groups_cut == 0

        stats = subscribing.stats()
        assert stats.state == moqkit.ConnectionState.CONNECTED
        assert stats.draft == 18
        assert stats.rtt_us > 0 and stats.congestion_window > 0
        assert stats.bytes_received >= 100_000 and stats.packets_received > 0
        assert publishing.stats().bytes_sent >= 100_000
        assert publishing.stats().reconnects == 0
        await subscribing.disconnect()
        await publishing.disconnect()
        assert subscribing.stats().draft is None

    run(main())


def mtls_config(relay, scheme, cert=None, key=None, files=False):
    config = relay.config(scheme)
    if files:
        config.tls.client_certificate_file = cert
        config.tls.client_key_file = key
    else:
        config.tls.client_certificate_pem = cert and open(cert).read()
        config.tls.client_key_pem = key and open(key).read()
    return config


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_the_right_client_certificate_is_admitted_and_others_are_tls_errors(mtls_relay, scheme):
    env = mtls_relay.env

    async def main():
        client = moqkit.Client(mtls_config(mtls_relay, scheme))
        with pytest.raises(moqkit.MoqError.Tls) as info:
            await client.connect()
        assert "refused the client certificate" in str(info.value)
        assert "certificate_required" in str(info.value)

        untrusted = mtls_config(
            mtls_relay, scheme, env["MOQ_RELAY_UNTRUSTED_CERT_FILE"],
            env["MOQ_RELAY_UNTRUSTED_KEY_FILE"],
        )
        with pytest.raises(moqkit.MoqError.Tls):
            await moqkit.Client(untrusted).connect()

        for files in (False, True):
            config = mtls_config(
                mtls_relay, scheme, env["MOQ_RELAY_CLIENT_CERT_FILE"],
                env["MOQ_RELAY_CLIENT_KEY_FILE"], files=files,
            )
            client = moqkit.Client(config)
            await client.connect()
            ns = unique("mtls")
            await client.announce(ns)
            publisher = client.create_publisher(ns, "t", None)
            subscriber = await client.subscribe(ns, "t")
            publisher.publish(b"through mutual TLS")
            obj = await asyncio.wait_for(subscriber.next(), 10)
            assert obj.payload == b"through mutual TLS"
            await client.disconnect()

    run(main())


def test_unusable_client_certificates_are_invalid_arguments(mtls_relay):
    env = mtls_relay.env
    mismatched = mtls_config(
        mtls_relay, "moqt", env["MOQ_RELAY_CLIENT_CERT_FILE"], env["MOQ_RELAY_UNTRUSTED_KEY_FILE"]
    )
    with pytest.raises(moqkit.MoqError.InvalidArgument) as info:
        moqkit.Client(mismatched)
    assert "client certificate" in str(info.value)
    half = mtls_config(mtls_relay, "moqt", env["MOQ_RELAY_CLIENT_CERT_FILE"], None)
    with pytest.raises(moqkit.MoqError.InvalidArgument) as info:
        moqkit.Client(half)
    assert "both the certificate and its key" in str(info.value)
    missing = mtls_config(
        mtls_relay, "moqt", "/nonexistent/cert.pem", env["MOQ_RELAY_CLIENT_KEY_FILE"], files=True
    )
    with pytest.raises(moqkit.MoqError.InvalidArgument) as info:
        moqkit.Client(missing)
    assert "/nonexistent/cert.pem" in str(info.value)


def test_new_group_request_reaches_the_publisher_through_the_relay(relay):
    async def main():
        client = moqkit.Client(relay.config())
        await client.connect()
        ns = unique("newgroup")
        await client.announce(ns)
        options = moqkit.PublisherOptions(
            delivery=moqkit.DeliveryMode.STREAM, accept_new_group_requests=True
        )
        publisher = client.create_publisher(ns, "video", options)
        subscriber = await client.subscribe(ns, "video")
        publisher.publish(b"delta")
        assert (await asyncio.wait_for(subscriber.next(), 10)).group_id == 0
        await subscriber.request_new_group()
        assert await asyncio.wait_for(publisher.next_new_group_request(), 10) == 1
        publisher.new_group()
        publisher.publish(b"key frame")
        key = await asyncio.wait_for(subscriber.next(), 10)
        assert (key.group_id, key.object_id, key.payload) == (1, 0, b"key frame")

        plain = client.create_publisher(ns, "plain", None)
        plain_subscriber = await client.subscribe(ns, "plain")
        plain.publish(b"0")
        await asyncio.wait_for(plain_subscriber.next(), 10)
        with pytest.raises(moqkit.MoqError.Refused) as info:
            await plain_subscriber.request_new_group()
        assert "accept_new_group_requests" in str(info.value)
        publisher.finish()
        assert await asyncio.wait_for(publisher.next_new_group_request(), 10) is None
        await client.disconnect()

    run(main())


def test_subscribe_options_reach_the_peer(hostile_peer):
    """The subscriber priority and group order are what the peer's SUBSCRIBE carries (the
    hostile peer's `echo` namespace answers with them)."""

    async def main():
        client = moqkit.Client(hostile_peer.config())
        await client.connect()
        cases = [
            (None, "subscriber_priority=128 group_order=publisher"),
            (moqkit.SubscribeOptions(priority=7, group_order=moqkit.GroupOrder.DESCENDING),
             "subscriber_priority=7 group_order=descending"),
            (moqkit.SubscribeOptions(priority=0, group_order=moqkit.GroupOrder.ASCENDING),
             "subscriber_priority=0 group_order=ascending"),
        ]
        for i, (options, expected) in enumerate(cases):
            subscriber = await client.subscribe("echo", f"t{i}", options)
            echo = await asyncio.wait_for(subscriber.next(), 10)
            assert echo.payload.decode() == expected
        await client.disconnect()

    run(main())


def test_publisher_priority_is_an_option(relay):
    async def main():
        client = moqkit.Client(relay.config())
        await client.connect()
        ns = unique("prio")
        await client.announce(ns)
        options = moqkit.PublisherOptions(delivery=moqkit.DeliveryMode.STREAM, priority=0)
        publisher = client.create_publisher(ns, "urgent", options)
        subscriber = await client.subscribe(ns, "urgent", moqkit.SubscribeOptions(priority=1))
        publisher.publish(b"first")
        assert (await asyncio.wait_for(subscriber.next(), 10)).payload == b"first"
        await client.disconnect()

    run(main())
