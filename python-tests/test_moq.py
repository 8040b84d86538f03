"""The Python bindings against a real relay: pub/sub through every delivery path, typed
errors, listener failures, and clean shutdown."""

import asyncio
import itertools
import os
import threading
import time

import pytest

import moqkit

_names = itertools.count()


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def payload(i, size=100):
    head = i.to_bytes(4, "little")
    return head + bytes((i * 31 + j * 7) % 256 for j in range(size - 4))


def run(coro):
    return asyncio.run(coro)


async def connected(relay, scheme="moqt", **overrides):
    client = moqkit.Client(relay.config(scheme, **overrides))
    await client.connect()
    return client


class Collector(moqkit.ObjectListener):
    def __init__(self):
        self.objects = []
        self.ended = threading.Event()
        self.end_error = None
        self.lock = threading.Lock()

    def on_objects(self, objects):
        with self.lock:
            self.objects.extend(objects)

    def on_end(self, error):
        self.end_error = error
        self.ended.set()

    def wait_for(self, count, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.objects) >= count:
                    return True
            time.sleep(0.005)
        return False


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_connect_over_both_schemes(relay, scheme):
    async def main():
        client = await connected(relay, scheme)
        assert client.is_connected()
        assert client.state() == moqkit.ConnectionState.CONNECTED
        await client.disconnect()
        assert client.state() == moqkit.ConnectionState.DISCONNECTED

    run(main())


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_pubsub_byte_exact_through_listener_pull_and_batch(relay, scheme):
    async def main():
        client = await connected(relay, scheme)
        ns = unique("exact")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        collector = Collector()
        listened = await client.subscribe_with_listener(ns, "t", collector)
        pulled = await client.subscribe(ns, "t")
        sent = [b"", b"hello", bytes(range(256)), payload(9, 5000), b""]
        for data in sent:
            publisher.publish(data)
        # async pull, one object at a time
        got = [(await pulled.next()).payload for _ in sent]
        assert got == sent
        # listener
        assert collector.wait_for(len(sent))
        assert [o.payload for o in collector.objects] == sent
        # batch pull (a subscriber joining while a group is open starts at the group's
        # beginning, so it may see the earlier objects of that group first)
        batched = await client.subscribe(ns, "t")
        publisher.publish(b"a")
        publisher.publish(b"b")
        batch = []
        while [o.payload for o in batch[-2:]] != [b"a", b"b"]:
            batch += await batched.next_batch(10)
        assert [o.payload for o in batch] in ([b"a", b"b"], sent + [b"a", b"b"])
        for sub in (listened, pulled, batched):
            await sub.unsubscribe()
        await client.disconnect()

    run(main())


def test_burst_of_1000_complete_and_in_order(relay):
    async def main():
        pub_client = await connected(relay, "moqt")
        sub_client = await connected(relay, "https")
        ns = unique("burst")
        await pub_client.announce(ns)
        publisher = pub_client.create_publisher(ns, "t", None)
        subscriber = await sub_client.subscribe(ns, "t")
        for i in range(1000):
            publisher.publish(payload(i))
        received = []
        async for batch in subscriber.batches(256):
            received += batch
            if len(received) >= 1000:
                break
        assert [o.payload for o in received] == [payload(i) for i in range(1000)]
        locations = [(o.group_id, o.object_id) for o in received]
        assert locations == sorted(set(locations))
        await subscriber.unsubscribe()
        await pub_client.disconnect()
        await sub_client.disconnect()

    run(main())


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_packed_publish_and_receive_are_byte_exact(relay, scheme):
    async def main():
        pub_client = await connected(relay, "moqt")
        sub_client = await connected(relay, scheme)
        ns = unique("packed")
        await pub_client.announce(ns)
        # Small groups, so the batches span several groups and the ids are checked.
        options = moqkit.PublisherOptions(delivery=moqkit.DeliveryMode.STREAM, priority=0,
                                           max_group_objects=7)
        publisher = pub_client.create_publisher(ns, "t", options)
        packed_sub = await sub_client.subscribe(ns, "t")
        typed_sub = await sub_client.subscribe(ns, "t")
        # Let the relay start following the track first: moq-relay-ietf serves a burst of short
        # groups that arrives before its forwarder runs from its newest 8 groups only.
        publisher.publish_many([b"warm-up"])
        assert list(await asyncio.wait_for(packed_sub.next_packed(8), 10)) == [(0, 0, b"warm-up")]
        assert (await asyncio.wait_for(typed_sub.next(), 10)).payload == b"warm-up"
        sent = [b"", payload(1, 100), bytes(range(256)), b"x", payload(4, 5000)]
        sent += [payload(i, 10 + i % 50) for i in range(5, 600)]
        for start in range(0, len(sent), 100):
            publisher.publish_many(sent[start:start + 100])  # packed under the hood
        async def collect():
            packed = []
            async for batch in packed_sub.packed_batches(64):
                assert 0 < len(batch) <= 64
                packed += list(batch)
                if len(packed) >= len(sent):
                    return packed
            return packed

        packed = await asyncio.wait_for(collect(), 20)
        typed = []
        while len(typed) < len(sent):
            typed += await asyncio.wait_for(typed_sub.next_batch(256), 10)
        # Same objects, same ids, through both forms; object k (the warm-up is 0) is object
        # k % 7 of group k // 7.
        assert [p for _, _, p in packed] == sent
        assert packed == [(o.group_id, o.object_id, o.payload) for o in typed]
        assert [(g, o) for g, o, _ in packed] == [divmod(k, 7) for k in range(1, len(sent) + 1)]
        for sub in (packed_sub, typed_sub):
            await sub.unsubscribe()
        await pub_client.disconnect()
        await sub_client.disconnect()

    run(main())


def test_mixed_pull_reads_keep_the_order(relay):
    async def main():
        client = await connected(relay)
        ns = unique("mixed")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        subscriber = await client.subscribe(ns, "t")
        sent = [payload(i, 20 + i) for i in range(60)]
        publisher.publish_many(sent)
        got = [(await asyncio.wait_for(subscriber.next(), 10)).payload]
        while len(got) < 3:
            got.append((await subscriber.read()).payload)
        while len(got) < 5 and (obj := subscriber.try_next()) is not None:
            got.append(obj.payload)
        got += [o.payload for o in await subscriber.next_batch(5)]
        got += [p for _, _, p in await subscriber.next_packed(4)]
        async for obj in subscriber:
            got.append(obj.payload)
            if len(got) == 50:
                break
        got += [p for _, _, p in await subscriber.next_packed(100)]
        while len(got) < len(sent):
            got += [o.payload for o in await asyncio.wait_for(subscriber.next_batch(100), 10)]
        assert got == sent
        # After unsubscribe, what had arrived can still be read, in order;
        # nothing published later arrives, and then the end.
        publisher.publish_many([b"x", b"y", b"z"])
        assert (await asyncio.wait_for(subscriber.next(), 10)).payload == b"x"
        await subscriber.unsubscribe()
        publisher.publish(b"after")
        rest = []
        while (obj := await asyncio.wait_for(subscriber.next(), 10)) is not None:
            rest.append(obj.payload)
        assert rest in ([], [b"y"], [b"y", b"z"])
        await client.disconnect()

    run(main())


def test_malformed_packed_lengths_are_rejected_and_publish_nothing(relay):
    async def main():
        client = await connected(relay)
        ns = unique("packed-bad")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        subscriber = await client.subscribe(ns, "t")
        four = (4).to_bytes(4, "little")
        for payloads, lengths in [(b"abcd", b"\x04\x00\x00"),       # not 4 bytes per length
                                  (b"abcd", four + four),              # longer than the buffer
                                  (b"abcdef", four)]:                  # shorter than the buffer
            with pytest.raises(moqkit.MoqError.InvalidArgument) as info:
                publisher.publish_packed(payloads, lengths)
            assert "publish_packed" in str(info.value)
        with pytest.raises(TypeError):
            publisher.publish_many([b"ok", "not bytes"])
        # Nothing of the above was sent: the first object to arrive is this one.
        publisher.publish_packed(b"okay", four)
        packed = await asyncio.wait_for(subscriber.next_packed(16), 10)
        assert list(packed) == [(0, 0, b"okay")]
        await subscriber.unsubscribe()
        await client.disconnect()

    run(main())


def test_publish_many_error_says_how_many_were_published(relay):
    async def main():
        client = await connected(relay, max_object_size=1000)
        ns = unique("partly")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        subscriber = await client.subscribe(ns, "t")
        with pytest.raises(moqkit.MoqError.TooLarge) as info:
            publisher.publish_many([b"a", b"b", bytes(1001), b"d"])
        assert "object 2 of 4 was not published" in str(info.value)
        got = [(await subscriber.next()).payload for _ in range(2)]
        assert got == [b"a", b"b"]
        await subscriber.unsubscribe()
        await client.disconnect()

    run(main())


def test_async_for_iterates_until_the_track_ends(relay):
    async def main():
        client = await connected(relay)
        ns = unique("iter")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        subscriber = await client.subscribe(ns, "t")
        for i in range(5):
            publisher.publish(payload(i))
        publisher.finish()
        got = [obj.payload async for obj in subscriber]
        assert got == [payload(i) for i in range(5)]
        await client.disconnect()

    run(main())


def test_bad_url_is_a_readable_invalid_argument(relay):
    with pytest.raises(moqkit.MoqError.InvalidArgument) as info:
        moqkit.Client(moqkit.default_client_config("http://localhost:1"))
    assert "unsupported URL scheme 'http'" in str(info.value)
    assert "moqt://" in str(info.value)


def test_untrusted_certificate_is_a_tls_error(relay):
    async def main():
        config = moqkit.default_client_config(relay.moqt_url)
        config.tls = moqkit.TlsOptions(
            use_system_roots=False, extra_ca_pem=[], extra_ca_files=[],
            pinned_sha256=[], danger_accept_any_certificate=False,
        )
        client = moqkit.Client(config)
        with pytest.raises(moqkit.MoqError.Tls) as info:
            await client.connect()
        assert "TLS handshake" in str(info.value) and "CA" in str(info.value)
        assert client.state() == moqkit.ConnectionState.FAILED

    run(main())


def test_not_connected_and_unknown_track_are_typed(relay):
    async def main():
        client = moqkit.Client(relay.config(rendezvous_timeout_ms=300))
        with pytest.raises(moqkit.MoqError.NotConnected) as info:
            await client.announce("x")
        assert "connect" in str(info.value)
        await client.connect()
        with pytest.raises(moqkit.MoqError.NotFound) as info:
            await client.subscribe(unique("nobody"), "t")
        assert "not found" in str(info.value)
        with pytest.raises(moqkit.MoqError.InvalidArgument):
            client.create_publisher("never-announced", "t", None)
        await client.disconnect()

    run(main())


def test_subscription_cap_is_a_limit_reached_error(relay):
    async def main():
        ns = unique("capped")
        pub = await connected(relay)
        await pub.announce(ns)
        publishers = [pub.create_publisher(ns, t, None) for t in ("a", "b")]
        client = await connected(relay, max_subscriptions=1)
        first = await client.subscribe(ns, "a")
        with pytest.raises(moqkit.MoqError.LimitReached) as info:
            await client.subscribe(ns, "b")
        assert "max_subscriptions" in str(info.value)
        await first.unsubscribe()
        second = await client.subscribe(ns, "b")
        await second.unsubscribe()
        for p in publishers:
            p.finish()
        await client.disconnect()
        await pub.disconnect()

    run(main())


def test_drop_oldest_keeps_the_newest_and_counts_discards(relay):
    async def main():
        ns = unique("slow")
        pub = await connected(relay)
        await pub.announce(ns)
        publisher = pub.create_publisher(ns, "t", None)
        client = await connected(relay, subscription_buffer=5,
                                 overflow=moqkit.OverflowPolicy.DROP_OLDEST)
        subscriber = await client.subscribe(ns, "t")
        publisher.publish_many([payload(i) for i in range(100)])
        deadline = time.time() + 10
        while subscriber.dropped_count() < 95 and time.time() < deadline:
            await asyncio.sleep(0.01)
        assert subscriber.dropped_count() == 95
        kept = await subscriber.next_batch(100)
        assert [o.payload for o in kept] == [payload(i) for i in range(95, 100)]
        await subscriber.unsubscribe()
        publisher.finish()
        await client.disconnect()
        await pub.disconnect()

    run(main())


def test_unsubscribe_stops_delivery(relay):
    async def main():
        client = await connected(relay)
        ns = unique("unsub")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        collector = Collector()
        subscriber = await client.subscribe_with_listener(ns, "t", collector)
        publisher.publish(b"1")
        assert collector.wait_for(1)
        await subscriber.unsubscribe()
        count = len(collector.objects)
        publisher.publish(b"2")
        await asyncio.sleep(0.2)
        assert len(collector.objects) == count
        assert not subscriber.is_active()
        await client.disconnect()

    run(main())


class Raising(moqkit.ObjectListener):
    def __init__(self):
        self.calls = 0

    def on_objects(self, objects):
        self.calls += 1
        raise ValueError("listener bug")

    def on_end(self, error):
        pass


def test_a_raising_listener_is_reported_and_delivery_continues(relay):
    async def main():
        client = await connected(relay)
        ns = unique("raise")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        listener = Raising()
        subscriber = await client.subscribe_with_listener(ns, "t", listener)
        for i in range(3):
            publisher.publish(payload(i))
            await asyncio.sleep(0.05)
        deadline = time.time() + 5
        while subscriber.listener_failure_count() < 2 and time.time() < deadline:
            await asyncio.sleep(0.01)
        assert subscriber.listener_failure_count() >= 2  # reported, and delivery went on
        assert listener.calls >= 2
        assert subscriber.is_active()
        await subscriber.unsubscribe()
        await client.disconnect()

    run(main())


def test_errors_while_raising_listener_do_not_kill_the_process(relay):
    # The process is still here, and a new client works.
    test_connect_over_both_schemes(relay, "moqt")


def thread_count():
    return len(os.listdir("/proc/self/task"))


def test_closing_everything_leaves_no_running_tasks_or_threads(relay):
    async def cycle():
        client = await connected(relay)
        ns = unique("clean")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        collector = Collector()
        subscriber = await client.subscribe_with_listener(ns, "t", collector)
        watch = client.watch_namespaces("", NamespaceSink())
        publisher.publish(b"x")
        assert collector.wait_for(1)
        await subscriber.unsubscribe()
        watch.cancel()
        publisher.finish()
        await client.disconnect()
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    run(cycle())  # warm up: the library runtime's threads start once per process
    time.sleep(0.3)
    baseline = thread_count()
    for _ in range(3):
        run(cycle())
    time.sleep(0.3)
    assert thread_count() <= baseline


class NamespaceSink(moqkit.NamespaceListener):
    def __init__(self):
        self.announced = []

    def on_announced(self, namespace):
        self.announced.append(namespace)

    def on_withdrawn(self, namespace):
        pass


def test_namespace_discovery_and_catalog(relay):
    class Catalogs(moqkit.CatalogListener):
        def __init__(self):
            self.catalogs = []

        def on_catalog(self, tracks):
            self.catalogs.append(tracks)

    async def main():
        watcher = await connected(relay, "https")
        sink = NamespaceSink()
        watch = watcher.watch_namespaces("", sink)
        publisher_client = await connected(relay)
        ns = unique("disc")
        await publisher_client.announce(ns)
        deadline = time.time() + 5
        while ns not in sink.announced and time.time() < deadline:
            await asyncio.sleep(0.01)
        assert ns in sink.announced
        catalog_pub = publisher_client.create_publisher(ns, "catalog", None)
        catalogs = Catalogs()
        sub = await watcher.subscribe_catalog(ns, "catalog", catalogs)
        catalog_pub.publish(b"{broken")
        catalog_pub.publish(b'{"version":1,"tracks":[{"name":"video","selectionParams":{"width":640}}]}')
        while not catalogs.catalogs and time.time() < deadline + 5:
            await asyncio.sleep(0.01)
        assert len(catalogs.catalogs) == 1
        assert catalogs.catalogs[0][0].name == "video" and catalogs.catalogs[0][0].width == 640
        await sub.unsubscribe()
        watch.cancel()
        await publisher_client.disconnect()
        await watcher.disconnect()

    run(main())


def test_log_level_and_foreign_logger(relay):
    class Sink(moqkit.Logger):
        def __init__(self):
            self.records = []

        def log(self, level, target, message):
            self.records.append((level, target, message))

    sink = Sink()
    moqkit.set_logger(sink)
    moqkit.set_log_level(moqkit.LogLevel.INFO)

    async def main():
        client = await connected(relay)
        await client.disconnect()

    run(main())
    deadline = time.time() + 5
    while not any("connected to" in r[2] for r in sink.records) and time.time() < deadline:
        time.sleep(0.01)
    moqkit.set_logger(None)
    moqkit.set_log_level(moqkit.LogLevel.WARN)
    assert any("connected to" in message for _, _, message in sink.records)


class SelfUnsubscribing(moqkit.ObjectListener):
    def __init__(self):
        self.subscriber = None
        self.calls = 0
        self.done = threading.Event()

    def on_objects(self, objects):
        self.calls += 1
        # Unsubscribing from inside its own listener returns at once (no deadlock).
        self.subscriber.unsubscribe_blocking()
        self.done.set()

    def on_end(self, error):
        pass


def test_unsubscribe_from_inside_the_listener_does_not_deadlock(relay):
    async def main():
        client = await connected(relay)
        ns = unique("inside")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        listener = SelfUnsubscribing()
        listener.subscriber = await client.subscribe_with_listener(ns, "t", listener)
        publisher.publish(b"1")
        assert await asyncio.get_running_loop().run_in_executor(None, listener.done.wait, 5)
        publisher.publish(b"2")
        await asyncio.sleep(0.2)
        assert listener.calls == 1
        assert not listener.subscriber.is_active()
        await client.disconnect()

    run(main())


class StateLog(moqkit.ConnectionListener):
    def __init__(self):
        self.states = []
        self.lock = threading.Lock()

    def on_state(self, state):
        with self.lock:
            self.states.append(state)


async def wait_state(client, state, timeout):
    deadline = time.time() + timeout
    while client.state() != state:
        assert time.time() < deadline, f"state {state} not reached: {client.state()}"
        await asyncio.sleep(0.02)


async def resumed_after_gap(publisher, subscriber, want=30):
    """After a session was lost and re-established: publish from index 1000 every 5 ms
    (refusals while the namespace is away are expected) until `want` objects arrive; they
    must be in order, without duplicates, intact. Returns them."""

    async def publish_steadily():
        i = 1000
        while True:
            try:
                publisher.publish(payload(i))
            except moqkit.MoqError.NotConnected:
                pass
            i += 1
            await asyncio.sleep(0.005)

    publishing = asyncio.ensure_future(publish_steadily())
    after = []
    try:
        while len(after) < want:
            obj = await asyncio.wait_for(subscriber.next(), 20)
            assert obj is not None, "the subscription ended instead of resuming"
            after.append(obj)
    finally:
        publishing.cancel()
    indices = [int.from_bytes(o.payload[:4], "little") for o in after]
    assert all(i >= 1000 for i in indices), indices[:5]
    assert indices == sorted(set(indices)), "in order, no duplicates"
    assert all(o.payload == payload(i) for o, i in zip(after, indices))
    return after


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_reconnect_after_the_relay_restarts(scheme):
    from conftest import Relay

    own = Relay()  # this test stops and restarts its relay

    async def main():
        policy = moqkit.ReconnectPolicy(initial_delay_ms=100, max_delay_ms=400, max_attempts=0)
        settings = dict(reconnect=policy, rendezvous_timeout_ms=10000, connect_timeout_ms=2000)
        pub = await connected(own, scheme, **settings)
        sub_client = await connected(own, scheme, **settings)
        log = StateLog()
        observing = sub_client.observe_state(log)
        ns = unique("reconnect")
        await pub.announce(ns)
        publisher = pub.create_publisher(ns, "t", None)
        subscriber = await sub_client.subscribe(ns, "t")
        for i in range(10):
            publisher.publish(payload(i))
        before = [await subscriber.next() for _ in range(10)]
        assert [o.payload for o in before] == [payload(i) for i in range(10)]

        own.command("stop", "STOPPED")
        await wait_state(pub, moqkit.ConnectionState.CONNECTING, 5)
        await wait_state(sub_client, moqkit.ConnectionState.CONNECTING, 5)
        with pytest.raises(moqkit.MoqError.NotConnected):
            publisher.publish(payload(99))
        own.command("restart", "RESTARTED")
        await wait_state(pub, moqkit.ConnectionState.CONNECTED, 15)
        await wait_state(sub_client, moqkit.ConnectionState.CONNECTED, 15)

        after = await resumed_after_gap(publisher, subscriber)
        assert after[0].group_id > before[-1].group_id
        C = moqkit.ConnectionState
        with log.lock:
            states = list(log.states)
        assert states[:1] == [C.CONNECTED] and C.CONNECTING in states and states[-1] == C.CONNECTED
        observing.cancel()
        await pub.disconnect()
        await sub_client.disconnect()

    try:
        run(main())
    finally:
        own.stop()


def test_publish_async_through_a_small_queue_delivers_everything_in_order(relay):
    """publish_async waits while max_queued_bytes wait for the network; nothing is lost."""

    async def main():
        assert moqkit.PublisherOptions(delivery=moqkit.DeliveryMode.STREAM).max_queued_bytes == 16 * 1024 * 1024
        client = await connected(relay)
        ns = unique("queue")
        await client.announce(ns)
        options = moqkit.PublisherOptions(delivery=moqkit.DeliveryMode.STREAM, max_queued_bytes=256 * 1024)
        publisher = client.create_publisher(ns, "t", options)
        subscriber = await client.subscribe(ns, "t")
        count, size = 200, 100_000  # 20 MB through a 256 KiB queue
        received = []

        async def read():
            while len(received) < count:
                received.extend(await subscriber.next_batch(64))

        reader = asyncio.ensure_future(read())
        peak = 0
        for i in range(count):
            location = await publisher.publish_async(payload(i, size))
            assert location.object_id == i
            peak = max(peak, publisher.queued_bytes())
        await asyncio.wait_for(reader, 60)
        assert [o.payload for o in received] == [payload(i, size) for i in range(count)]
        assert peak <= 256 * 1024 + size
        await client.disconnect()

    run(main())


def test_try_next_takes_what_has_arrived_without_waiting(relay):
    async def main():
        client = await connected(relay)
        ns = unique("try")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        subscriber = await client.subscribe(ns, "t")
        assert subscriber.try_next() is None  # nothing yet: returns at once
        sent = [payload(i, 10) for i in range(20)]
        publisher.publish_many(sent)
        got = [(await asyncio.wait_for(subscriber.next(), 10)).payload]
        deadline = asyncio.get_running_loop().time() + 10
        while len(got) < len(sent) and asyncio.get_running_loop().time() < deadline:
            obj = subscriber.try_next()
            if obj is None:
                await asyncio.sleep(0.01)  # the rest is still on its way
            else:
                got.append(obj.payload)
        assert got == sent
        assert subscriber.try_next() is None
        await client.disconnect()

    run(main())
