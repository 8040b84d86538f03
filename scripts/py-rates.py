"""Objects/s received by a Python subscriber for N x 100 B through the relay, per delivery
path (listener, async pull, batch pull); medians of RUNS. Usage:
MOQ_RELAY_MOQT_URL=... MOQ_RELAY_CA_FILE=... python scripts/py-rates.py [count] [runs]"""
import asyncio
import os
import sys
import threading
import time

import moq_ffi

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5


def config():
    c = moq_ffi.default_client_config(os.environ["MOQ_RELAY_MOQT_URL"])
    c.tls = moq_ffi.TlsOptions(use_system_roots=False, extra_ca_pem=[],
                               extra_ca_files=[os.environ["MOQ_RELAY_CA_FILE"]],
                               pinned_sha256=[], danger_accept_any_certificate=False)
    return c


class Counter(moq_ffi.ObjectListener):
    def __init__(self):
        self.n = 0
        self.done = threading.Event()

    def on_objects(self, objects):
        self.n += len(objects)
        if self.n >= COUNT:
            self.done.set()

    def on_end(self, error):
        pass


async def run(path, run_id):
    pub, sub = moq_ffi.Client(config()), moq_ffi.Client(config())
    await pub.connect()
    await sub.connect()
    ns = f"rate-{os.getpid()}-{path}-{run_id}"
    await pub.announce(ns)
    publisher = pub.create_publisher(ns, "t", None)
    counter = Counter()
    if path == "listener":
        subscriber = await sub.subscribe_with_listener(ns, "t", counter)
    else:
        subscriber = await sub.subscribe(ns, "t")
    payloads = [bytes(100)] * 100
    started = time.perf_counter()
    for _ in range(COUNT // 100):
        publisher.publish_many(payloads)
    if path == "listener":
        await asyncio.get_running_loop().run_in_executor(None, counter.done.wait, 60)
    elif path == "pull":
        for _ in range(COUNT):
            await subscriber.next()
    else:
        n = 0
        while n < COUNT:
            n += len(await subscriber.next_batch(1024))
    rate = COUNT / (time.perf_counter() - started)
    await subscriber.unsubscribe()
    await pub.disconnect()
    await sub.disconnect()
    return rate


async def main():
    for path in ("listener", "pull", "batch"):
        rates = sorted([await run(path, i) for i in range(RUNS)])
        print(f"python {path}: {rates[len(rates) // 2]:.0f} objects/s (median of {RUNS}, {COUNT} x 100 B)")


asyncio.run(main())
