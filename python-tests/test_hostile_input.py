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
