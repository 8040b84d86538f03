"""Input that a relay would treat as a protocol violation is refused locally, with a typed
error, and the session (and everything else on it) keeps working."""

import asyncio

import pytest

import moqkit
from test_moq import connected, unique


def test_an_oversize_full_track_name_is_invalid_argument_and_the_session_survives(relay):
    async def main():
        client = await connected(relay)
        ns = unique("names")
        await client.announce(ns)
        publisher = client.create_publisher(ns, "t", None)
        healthy = await client.subscribe(ns, "t")
        with pytest.raises(moqkit.MoqError.InvalidArgument) as refused:
            await client.subscribe("n" * 4000, "t" * 200)
        assert "at most 4096" in str(refused.value)
        assert len(str(refused.value)) < 500, "the 4,000-byte name is cut in the message"
        await asyncio.sleep(0.3)
        assert client.is_connected()
        publisher.publish(b"still flowing")
        received = await asyncio.wait_for(healthy.next(), 5)
        assert received.payload == b"still flowing"
        await client.disconnect()

    asyncio.run(main())


def test_a_group_cut_short_is_counted_in_cut_group_count(hostile_peer):
    """Regression (#24 item 3): the peer resets group 0 of hostile/cut mid-object, then sends
    group 1 whole. The cut group was skipped silently; now it is counted."""

    async def main():
        client = moqkit.Client(hostile_peer.config())
        await client.connect()
        cut = await client.subscribe("hostile", "cut")
        received = await asyncio.wait_for(cut.next(), 10)
        assert (received.group_id, received.payload) == (1, b"whole object after the cut one")
        assert cut.cut_group_count() == 1
        assert client.is_connected()
        await client.disconnect()

    asyncio.run(main())
