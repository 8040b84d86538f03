"""MoQT drafts (#24 item 1): the draft agreed is readable; a draft-16 relay (moq-relay-ietf
0.7.31 as published) carries objects both ways; a client limited to drafts the relay lacks is
refused with an error naming both sides' drafts."""

import asyncio

import pytest

import moqkit


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_the_negotiated_draft_is_18_while_connected(relay, scheme):
    async def main():
        client = moqkit.Client(relay.config(scheme))
        assert client.negotiated_draft() is None
        await client.connect()
        assert client.negotiated_draft() == 18
        await client.disconnect()
        assert client.negotiated_draft() is None

    asyncio.run(main())


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_a_draft_16_relay_carries_objects_in_order(draft16_relay, scheme):
    async def main():
        pub_client = moqkit.Client(draft16_relay.config(scheme))
        sub_client = moqkit.Client(draft16_relay.config(scheme))
        await pub_client.connect()
        await sub_client.connect()
        assert pub_client.negotiated_draft() == 16
        ns = f"py-d16/{scheme}"
        await pub_client.announce(ns)
        publisher = pub_client.create_publisher(ns, "t", None)
        subscriber = await sub_client.subscribe(ns, "t")
        sent = [f"object {i}".encode() for i in range(20)]
        for data in sent:
            publisher.publish(data)
            # One group (the default), paced: what a live source does.
            await asyncio.sleep(0.005)
        got = [(await asyncio.wait_for(subscriber.next(), 10)).payload for _ in sent]
        assert got == sent
        await subscriber.unsubscribe()
        await pub_client.disconnect()
        await sub_client.disconnect()

    asyncio.run(main())


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_a_client_limited_to_draft_18_is_refused_naming_both(draft16_relay, scheme):
    async def main():
        client = moqkit.Client(draft16_relay.config(scheme, drafts=[18]))
        with pytest.raises(moqkit.MoqError.UnsupportedDraft) as refused:
            await client.connect()
        message = str(refused.value)
        assert "speaks draft 16" in message and "this client offered draft 18" in message
        assert client.negotiated_draft() is None

    asyncio.run(main())
