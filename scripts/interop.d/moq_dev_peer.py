"""moq-dev's own client (PyPI `moq-rs`, module `moq`) as the far end of scripts/interop.

    python moq_dev_peer.py publish   URL CA BROADCAST TRACK FILE CHUNK GROUP_FRAMES
    python moq_dev_peer.py subscribe URL CA BROADCAST TRACK OUT EXPECTED_BYTES

`publish` sends FILE in CHUNK-byte frames, GROUP_FRAMES frames per group, once the relay asks
for the track, then lingers so the last group is delivered. `subscribe` writes every frame's
payload to OUT, in order, until EXPECTED_BYTES have arrived (or it times out).
"""

import asyncio
import sys

import moq

TIMEOUT = 30


async def publish(url, ca, broadcast, track, path, chunk, group_frames):
    data = open(path, "rb").read()
    async with moq.Client(url, tls_roots=[ca], reconnect=False) as client:
        producer = client.create_broadcast(broadcast)
        frames = producer.publish_track(track)
        producer.announce()
        # What is written before a subscriber asks goes nowhere it can get it from.
        await asyncio.wait_for(frames.used(), TIMEOUT)
        group = None
        for index, start in enumerate(range(0, len(data), chunk)):
            if index % group_frames == 0:
                if group is not None:
                    group.finish()
                group = frames.append_group()
            group.write_frame(data[start : start + chunk])
        if group is not None:
            group.finish()
        await asyncio.sleep(3)
        frames.finish()
        await asyncio.sleep(1)
    print(f"moq-rs published {len(data)} bytes", file=sys.stderr)


async def subscribe(url, ca, broadcast, track, out, expected):
    # Every group read at once, as it arrives: moq-lite's in-order reader skips forward
    # (abandoning a group) whenever a newer one is already there, which would measure the
    # reader, not the delivery.
    async def read_group(group):
        frames = []
        try:
            while (frame := await group.read_frame()) is not None:
                frames.append(frame.payload)
            return group.sequence, frames, None
        except moq.Error as err:
            return group.sequence, frames, type(err).__name__

    async with moq.Client(url, tls_roots=[ca], reconnect=False) as client:
        # request_broadcast before the publisher announced fails (a protocol error): wait for
        # a route to the broadcast instead.
        consumer = await asyncio.wait_for(client.announced_broadcast(broadcast).available(), TIMEOUT)
        # max_age_us: moq-lite's default (0) lets the relay drop any group a newer one has
        # overtaken (latency first). A file transfer tolerates staleness: a minute.
        wanted = moq.Subscription(max_age_us=60_000_000)
        frames = await asyncio.wait_for(consumer.subscribe_track(track, wanted), TIMEOUT)

        async def read():
            tasks = []
            async for group in frames.groups_as_arrived():
                tasks.append(asyncio.create_task(read_group(group)))
            return await asyncio.gather(*tasks)

        results = await asyncio.wait_for(read(), TIMEOUT)
    results.sort()
    received = b"".join(b"".join(frames) for _, frames, _ in results)
    open(out, "wb").write(received)
    summary = [(seq, len(frames)) if err is None else (seq, len(frames), err) for seq, frames, err in results]
    print(f"moq-rs received {len(received)} bytes; groups (id, frames[, error]): {summary}", file=sys.stderr)


def main():
    role, url, ca, broadcast, track = sys.argv[1:6]
    if role == "publish":
        path, chunk, group_frames = sys.argv[6], int(sys.argv[7]), int(sys.argv[8])
        asyncio.run(publish(url, ca, broadcast, track, path, chunk, group_frames))
    else:
        out, expected = sys.argv[6], int(sys.argv[7])
        asyncio.run(subscribe(url, ca, broadcast, track, out, expected))


if __name__ == "__main__":
    main()
