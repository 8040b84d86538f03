"""MoQT drafts (#24 item 1): the draft agreed is readable, and a relay that speaks none of this
client's drafts (moq-relay-ietf 0.7.31, draft 16, as published) is refused with an error
naming both sides' drafts."""

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
def test_a_draft_16_relay_is_unsupported_draft_naming_both(draft16_relay, scheme):
    async def main():
        client = moqkit.Client(draft16_relay.config(scheme))
        with pytest.raises(moqkit.MoqError.UnsupportedDraft) as refused:
            await client.connect()
        message = str(refused.value)
        assert "speaks draft 16" in message and "this client speaks draft 18" in message
        assert client.negotiated_draft() is None

    asyncio.run(main())
