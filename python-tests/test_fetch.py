"""FETCH (#26): a track's past objects by location through the relay, served by the
publisher from the groups it keeps (`PublisherOptions.retain_groups`), and `past_groups`,
which delivers the recent past ahead of a subscription's live objects."""

import asyncio
import itertools
import os

import pytest

import moqkit

_names = itertools.count()


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def keeping(groups):
    return moqkit.PublisherOptions(delivery=moqkit.DeliveryMode.STREAM, retain_groups=groups)


def payload(i):
    return i.to_bytes(4, "little") * 16


def publish_groups(publisher, groups, per_group):
    for g in range(groups):
        if g > 0:
            publisher.new_group()
        for o in range(per_group):
            publisher.publish(payload(g * per_group + o))


async def read_all(response):
    objects = []
    while (obj := await asyncio.wait_for(response.next(), 10)) is not None:
        objects.append(obj)
    return objects


def test_fetch_returns_the_kept_groups_and_says_what_is_not_available(relay):
    async def main():
        publishing = moqkit.Client(relay.config())
        fetching = moqkit.Client(relay.config("https"))
        await publishing.connect()
        await fetching.connect()
        ns = unique("fetch")
        await publishing.announce(ns)
        publisher = publishing.create_publisher(ns, "t", keeping(3))
        publish_groups(publisher, 5, 4)

        # Groups 0 and 1 were evicted (3 kept): the response starts at group 2.
        response = await fetching.fetch(ns, "t", moqkit.FetchRange(start_group=0, end_group=4))
        objects = await read_all(response)
        assert [(o.group_id, o.object_id) for o in objects] == [
            (g, o) for g in range(2, 5) for o in range(4)
        ]
        assert all(o.payload == payload(o.group_id * 4 + o.object_id) for o in objects)
        assert await response.next() is None, "ended"

        part = moqkit.FetchRange(start_group=2, start_object=3, end_group=3, end_object=1)
        objects = await read_all(await fetching.fetch(ns, "t", part))
        assert [(o.group_id, o.object_id) for o in objects] == [(2, 3), (3, 0), (3, 1)]

        with pytest.raises(moqkit.MoqError.NotFound) as info:
            await fetching.fetch(ns, "t", moqkit.FetchRange(start_group=0, end_group=1))
        assert "groups 2 to 4 are kept" in str(info.value)
        with pytest.raises(moqkit.MoqError.InvalidArgument):
            await fetching.fetch(ns, "t", moqkit.FetchRange(start_group=3, end_group=2))

        # Cancelled halfway: the rest never comes.
        response = await fetching.fetch(ns, "t", moqkit.FetchRange(start_group=2, end_group=4))
        assert (await response.next()).group_id == 2
        await response.cancel()
        assert await response.next() is None
        await fetching.disconnect()
        await publishing.disconnect()

    asyncio.run(main())


def test_past_groups_come_first_then_the_live_objects(relay):
    async def main():
        publishing = moqkit.Client(relay.config())
        watching = moqkit.Client(relay.config())
        joining = moqkit.Client(relay.config())
        for client in (publishing, watching, joining):
            await client.connect()
        ns = unique("past")
        await publishing.announce(ns)
        publisher = publishing.create_publisher(ns, "t", keeping(8))
        # A watcher first, so the relay follows the track and knows where it is.
        watcher = await watching.subscribe(ns, "t")
        publish_groups(publisher, 4, 3)
        for _ in range(12):
            await asyncio.wait_for(watcher.next(), 10)

        subscriber = await joining.subscribe(ns, "t", moqkit.SubscribeOptions(past_groups=2))
        publisher.new_group()
        for i in range(12, 15):
            publisher.publish(payload(i))
        got = [await asyncio.wait_for(subscriber.next(), 10) for _ in range(9)]
        assert [(o.group_id, o.object_id) for o in got] == [
            (g, o) for g in range(2, 5) for o in range(3)
        ]
        assert all(o.payload == payload(o.group_id * 3 + o.object_id) for o in got)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(subscriber.next(), 0.3)  # nothing twice

        plain = publishing.create_publisher(ns, "plain", None)
        plain_watcher = await watching.subscribe(ns, "plain")
        plain.publish(b"x")
        await asyncio.wait_for(plain_watcher.next(), 10)
        with pytest.raises(moqkit.MoqError.Refused) as info:
            await joining.subscribe(ns, "plain", moqkit.SubscribeOptions(past_groups=1))
        assert "retain_groups" in str(info.value)
        for client in (joining, watching, publishing):
            await client.disconnect()

    asyncio.run(main())
