"""Tokens against a relay with authorization on (moq-relay-ietf's own token checking on the
test relay's /secure path): the right token passes, a missing or wrong one is Unauthorized."""

import asyncio

import pytest

import moqkit
from test_moq import unique


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_the_right_token_passes_and_objects_flow(relay, scheme):
    async def main():
        token = relay.env["MOQ_RELAY_TOKEN"]
        publishing = moqkit.Client(relay.secure_config(scheme, token))
        await publishing.connect()
        subscribing = moqkit.Client(relay.secure_config(scheme, token))
        await subscribing.connect()
        ns = unique("auth")
        await publishing.announce(ns)
        publisher = publishing.create_publisher(ns, "t", None)
        subscriber = await subscribing.subscribe(ns, "t")
        publisher.publish(b"behind the token")
        received = await asyncio.wait_for(subscriber.next(), 10)
        assert received.payload == b"behind the token"
        await subscribing.disconnect()
        await publishing.disconnect()

    asyncio.run(main())


@pytest.mark.parametrize("scheme", ["moqt", "https"])
def test_a_missing_or_wrong_token_is_unauthorized(relay, scheme):
    async def main():
        for token in [None, "bm90IGEgdG9rZW4"]:
            client = moqkit.Client(relay.secure_config(scheme, token))
            with pytest.raises(moqkit.MoqError.Unauthorized) as refused:
                await client.connect()
            assert "refused the credentials" in str(refused.value)
            assert "bm90IGEgdG9rZW4" not in str(refused.value)

    asyncio.run(main())


def test_a_subscribe_only_token_cannot_announce(relay):
    async def main():
        client = moqkit.Client(
            relay.secure_config("moqt", relay.env["MOQ_RELAY_TOKEN_SUBSCRIBE_ONLY"])
        )
        await client.connect()
        with pytest.raises(moqkit.MoqError.Unauthorized):
            await client.announce(unique("auth-denied"))
        assert client.is_connected()
        await client.disconnect()

    asyncio.run(main())


def test_set_token_applies_at_the_next_connect_and_bad_text_is_invalid(relay):
    async def main():
        client = moqkit.Client(relay.secure_config("https"))
        with pytest.raises(moqkit.MoqError.Unauthorized):
            await client.connect()
        with pytest.raises(moqkit.MoqError.InvalidArgument) as invalid:
            client.set_token("not base64!")
        assert "not base64!" not in str(invalid.value)
        client.set_token(relay.env["MOQ_RELAY_TOKEN"])
        await client.connect()
        assert client.is_connected()
        await client.disconnect()

    asyncio.run(main())
