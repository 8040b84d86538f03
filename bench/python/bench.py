"""The Python path program of the benchmark suite (see bench/README.md for the protocol).

Usage: python bench.py <listener|pull|batch|packed> <workload> <count> <size>
One run per invocation; prints one `RESULT {json}` line. The variant picks how objects are
received: a listener (callback batches on a library thread), `await read()` per object,
`await next_batch()` (a list of records), or `await next_packed()` (one buffer plus an index).
Every variant publishes bursts with `publish_many` (packed under the hood).
"""
import asyncio
import json
import os
import resource
import sys
import threading
import time

import moqkit

PUBLISH_ROUNDS = 10


def fail(message):
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(1)


def config():
    c = moqkit.default_client_config(os.environ["MOQ_RELAY_MOQT_URL"])
    c.tls = moqkit.TlsOptions(use_system_roots=False, extra_ca_pem=[],
                               extra_ca_files=[os.environ["MOQ_RELAY_CA_FILE"]],
                               pinned_sha256=[], danger_accept_any_certificate=False)
    return c


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stamped(index, size):
    head = index.to_bytes(8, "little") + time.monotonic_ns().to_bytes(8, "little")
    return head + bytes(max(size, 16) - 16)


def index_of(payload):
    return int.from_bytes(payload[:8], "little")


def sent_ns(payload):
    return int.from_bytes(payload[8:16], "little")


def percentile_us(sorted_ns, p):
    if not sorted_ns:
        return float("nan")
    rank = max(1, min(len(sorted_ns), -(-len(sorted_ns) * p // 100)))
    return sorted_ns[int(rank) - 1] / 1e3


class Collector(moqkit.ObjectListener):
    """Listener variant: payloads handed over from the library's delivery thread."""

    def __init__(self, on_payload):
        self.on_payload = on_payload

    def on_objects(self, objects):
        for o in objects:
            self.on_payload(o.payload)

    def on_end(self, error):
        pass


class Receiver:
    """One subscription, read through the chosen variant; `on_payload` sees each object."""

    def __init__(self, variant, client, namespace, on_payload, done):
        self.variant, self.client, self.namespace = variant, client, namespace
        self.on_payload, self.done = on_payload, done
        self.subscriber = None

    async def start(self):
        if self.variant == "listener":
            self.subscriber = await self.client.subscribe_with_listener(
                self.namespace, "t", Collector(self.on_payload))
        else:
            self.subscriber = await self.client.subscribe(self.namespace, "t")

    async def run(self, timeout):
        """Pull until `done()` (pull variants) or wait for it (listener)."""
        deadline = time.monotonic() + timeout
        while not self.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                if self.variant == "listener":
                    await asyncio.sleep(0.0005)
                elif self.variant == "pull":
                    # One timeout around the loop: wait_for per object would add a task per
                    # object, the round trip read() avoids.
                    async with asyncio.timeout(remaining):
                        while not self.done():
                            obj = await self.subscriber.read()
                            if obj is None:
                                return
                            self.on_payload(obj.payload)
                elif self.variant == "packed":
                    packed = await asyncio.wait_for(self.subscriber.next_packed(1024), remaining)
                    if not packed.index:
                        return
                    for _group, _object, payload in packed:
                        self.on_payload(payload)
                else:
                    batch = await asyncio.wait_for(self.subscriber.next_batch(1024), remaining)
                    if not batch:
                        return
                    for obj in batch:
                        self.on_payload(obj.payload)
            except asyncio.TimeoutError:
                return


async def pair(namespace, delivery):
    pub, sub = moqkit.Client(config()), moqkit.Client(config())
    await pub.connect()
    await sub.connect()
    await pub.announce(namespace)
    options = moqkit.PublisherOptions(delivery=delivery)
    return pub, sub, pub.create_publisher(namespace, "t", options)


async def close(publisher, receiver, *clients):
    publisher.finish()
    await receiver.subscriber.unsubscribe()
    for client in clients:
        await client.disconnect()


async def burst(variant, namespace, count, size):
    pub, sub, publisher = await pair(namespace, moqkit.DeliveryMode.STREAM)
    state = {"next": 0, "done_at": None}
    done = threading.Event()

    def on_payload(payload):
        if index_of(payload) != state["next"]:
            state["bad"] = index_of(payload)
        state["next"] += 1
        if state["next"] == count:
            state["done_at"] = time.perf_counter()
            done.set()

    receiver = Receiver(variant, sub, namespace, on_payload, done.is_set)
    await receiver.start()
    payloads = [stamped(i, size) for i in range(count)]
    cpu = cpu_seconds()
    started = time.perf_counter()
    for i in range(0, count, 100):
        publisher.publish_many(payloads[i:i + 100])
    if variant == "listener":
        await asyncio.get_running_loop().run_in_executor(None, done.wait, 30)
    else:
        await receiver.run(30)
    cpu = cpu_seconds() - cpu
    if state["done_at"] is None or "bad" in state:
        fail(f"{state['next']} of {count} objects arrived (out of order: {state.get('bad')})")
    secs = state["done_at"] - started
    await close(publisher, receiver, pub, sub)
    return {"objects_per_s": count / secs, "mb_per_s": count * size / secs / 1e6,
            "cpu_s": cpu, "received": count}


async def paced(variant, namespace, count, size, datagram):
    delivery = moqkit.DeliveryMode.DATAGRAM if datagram else moqkit.DeliveryMode.STREAM
    pub, sub, publisher = await pair(namespace, delivery)
    latencies = []
    last = threading.Event()

    def on_payload(payload):
        latencies.append(time.monotonic_ns() - sent_ns(payload))
        if index_of(payload) + 1 == count:
            last.set()

    receiver = Receiver(variant, sub, namespace, on_payload, last.is_set)
    await receiver.start()
    pulling = asyncio.ensure_future(receiver.run(count / 1000 + 10))
    started = time.monotonic()
    for i in range(count):
        delay = started + i / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        publisher.publish(stamped(i, size))
    if variant == "listener":
        await asyncio.get_running_loop().run_in_executor(None, last.wait, 10)
    await pulling
    if datagram:
        await asyncio.sleep(0.2)  # stragglers
    received = len(latencies)
    if not datagram and received != count:
        fail(f"only {received} of {count} objects arrived")
    ordered = sorted(latencies)
    await close(publisher, receiver, pub, sub)
    return {"p50_us": percentile_us(ordered, 50), "p99_us": percentile_us(ordered, 99),
            "ratio": received / count, "received": received}


async def publish_calls(namespace, count, size):
    client = moqkit.Client(config())
    await client.connect()
    await client.announce(namespace)
    publisher = client.create_publisher(namespace, "t", None)
    payload = bytes(size)
    # Median of PUBLISH_ROUNDS rounds, as every path does (bench/README.md).
    per_round = max(count // PUBLISH_ROUNDS, 1)
    rounds = []
    for _ in range(PUBLISH_ROUNDS):
        started = time.perf_counter_ns()
        for _ in range(per_round):
            publisher.publish(payload)
        rounds.append((time.perf_counter_ns() - started) / per_round)
    rounds.sort()
    ns = (rounds[PUBLISH_ROUNDS // 2 - 1] + rounds[PUBLISH_ROUNDS // 2]) / 2
    publisher.finish()
    await client.disconnect()
    return {"ns_per_call": ns}


async def stats_calls(count):
    client = moqkit.Client(config())
    await client.connect()
    # Median of PUBLISH_ROUNDS rounds, as every path does (bench/README.md).
    per_round = max(count // PUBLISH_ROUNDS, 1)
    rounds = []
    for _ in range(PUBLISH_ROUNDS):
        started = time.perf_counter_ns()
        for _ in range(per_round):
            client.stats()
        rounds.append((time.perf_counter_ns() - started) / per_round)
    rounds.sort()
    ns = (rounds[PUBLISH_ROUNDS // 2 - 1] + rounds[PUBLISH_ROUNDS // 2]) / 2
    if client.stats().rtt_us == 0:
        fail("stats() reported no RTT on a connected client")
    await client.disconnect()
    return {"ns_per_call": ns}


async def main():
    if len(sys.argv) != 5:
        fail("usage: bench.py <listener|pull|batch|packed> <workload> <count> <size>")
    variant, workload, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if variant not in ("listener", "pull", "batch", "packed"):
        fail(f"unknown variant {variant}")
    namespace = f"bench-{os.getpid()}-{variant}-{workload}"
    if workload == "burst":
        result = await burst(variant, namespace, count, size)
    elif workload in ("paced", "datagram"):
        result = await paced(variant, namespace, count, size, workload == "datagram")
    elif workload == "publish":
        result = await publish_calls(namespace, count, size)
    elif workload == "stats":
        result = await stats_calls(count)
    else:
        fail(f"unknown workload {workload}")
    print("RESULT " + json.dumps(result), flush=True)


asyncio.run(main())
