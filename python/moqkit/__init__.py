"""moqkit: Media over QUIC (IETF MoQT draft-18) for Python.

The generated UniFFI bindings (``Client``, ``Publisher``, ``Subscriber``, ``MoqError`` ...)
plus small helpers:

* ``async for obj in subscriber`` iterates received objects until the track ends;
* ``subscriber.batches(n)`` iterates batches of up to ``n`` objects (one FFI call per batch);
* ``subscriber.packed_batches(n)`` iterates ``PackedObjects`` (fastest for many small objects);
  ``for group_id, object_id, payload in packed`` walks one;
* ``publisher.publish_many(payloads)`` and the pull reads (``next()``, ``next_batch(n)``) cross
  the boundary in packed form (one buffer, not one conversion per object); ``next()`` reads
  ahead what has already arrived, so ``await next()`` per object costs no native round trip;
* ``ClientConfig(url=...)`` has defaults for every other field.
"""

import collections as _collections
import struct as _struct

from ._native import *  # noqa: F401,F403  (the generated bindings)
from ._native import PackedObjects as _PackedObjects
from ._native import Publisher as _Publisher
from ._native import Subscriber as _Subscriber

_INDEX_ENTRY = _struct.Struct("<QQI")  # group id, object id, payload length (PackedObjects.index)


async def _anext(self):
    obj = await self.next()
    if obj is None:
        raise StopAsyncIteration
    return obj


def _aiter(self):
    return self


async def _batches(self, max_objects=256):
    """Yield lists of up to ``max_objects`` objects until the track ends."""
    while True:
        batch = await self.next_batch(max_objects)
        if not batch:
            return
        yield batch


async def _packed_batches(self, max_objects=1024):
    """Yield ``PackedObjects`` of up to ``max_objects`` objects until the track ends."""
    while True:
        packed = await self.next_packed(max_objects)
        if not packed.index:
            return
        yield packed


def _packed_iter(self):
    """``(group_id, object_id, payload)`` for each object, in order; payloads are ``bytes``."""
    payloads = self.payloads
    start = 0
    for group_id, object_id, length in _INDEX_ENTRY.iter_unpack(self.index):
        end = start + length
        yield group_id, object_id, payloads[start:end]
        start = end


def _packed_len(self):
    return len(self.index) // _INDEX_ENTRY.size


# Pull reads fetch what has arrived in packed form (one conversion per batch, not per object)
# and keep the rest here, in order, for the next call: `await next()` per object costs a
# Python coroutine, not a native round trip. Every pull method drains this first, so mixing
# them keeps the order. Like objects buffered in the library, it stays readable after
# unsubscribe (nothing new is added then).
_READ_AHEAD = 256
_fetch_packed = _Subscriber.next_packed


def _ahead(subscriber):
    ahead = subscriber.__dict__.get("_moq_ahead")
    if ahead is None:
        ahead = subscriber.__dict__.setdefault("_moq_ahead", _collections.deque())
    return ahead


def _take(ahead, max):
    return [ahead.popleft() for _ in range(min(max, len(ahead)))]


def _records(packed):
    return [ReceivedObject(group_id=group_id, object_id=object_id, payload=payload)  # noqa: F405
            for group_id, object_id, payload in _packed_iter(packed)]


async def _next(self):
    """The next object, in order; ``None`` when the track ended normally or the subscription
    was closed. Raises ``MoqError`` when it ended abnormally."""
    ahead = _ahead(self)
    if not ahead:
        ahead.extend(_records(await _fetch_packed(self, _READ_AHEAD)))
    return ahead.popleft() if ahead else None


async def _next_batch(self, max):
    """Up to ``max`` objects (at least one, waiting for it); empty when the track ended."""
    ahead = _ahead(self)
    if ahead:
        return _take(ahead, max)
    return _records(await _fetch_packed(self, max))


async def _next_packed(self, max):
    """Up to ``max`` objects (at least one, waiting for it) in packed form; empty when the
    track ended."""
    ahead = _ahead(self)
    if ahead:
        records = _take(ahead, max)
        return PackedObjects(  # noqa: F405
            payloads=b"".join(r.payload for r in records),
            index=b"".join(_INDEX_ENTRY.pack(r.group_id, r.object_id, len(r.payload))
                           for r in records))
    return await _fetch_packed(self, max)


def _publish_many(self, payloads):
    """Publish ``payloads`` (bytes-like objects) in order with one call, in packed form.

    On an error the objects before the failing one were published and the rest were not;
    the message says how many.
    """
    payloads = list(payloads)
    lengths = _struct.pack(f"<{len(payloads)}I", *map(len, payloads))
    self.publish_packed(b"".join(payloads), lengths)


_Subscriber.__aiter__ = _aiter
_Subscriber.__anext__ = _anext
_Subscriber.batches = _batches
_Subscriber.packed_batches = _packed_batches
_Subscriber.next = _next
_Subscriber.next_batch = _next_batch
_Subscriber.next_packed = _next_packed
_PackedObjects.__iter__ = _packed_iter
_PackedObjects.__len__ = _packed_len
_Publisher.publish_many = _publish_many


def _error_str(self):
    # Every MoqError / ListenerError variant carries `reason`, which is exactly the Rust
    # Display text: a readable, actionable message.
    return getattr(self, "reason", None) or Exception.__str__(self)


for _error in (MoqError, ListenerError):  # noqa: F405
    for _variant in vars(_error).values():
        if isinstance(_variant, type) and issubclass(_variant, Exception):
            _variant.__str__ = _error_str
del _error, _variant


# --- Safe interpreter exit ----------------------------------------------------------------
# Async calls complete through a continuation callback that a library thread runs. If the
# interpreter starts finalizing while such a thread is inside the callback (it briefly gives
# up the GIL to wake the event loop), CPython terminates that thread with a forced unwind,
# which aborts the process. So the callback is tracked, and at exit we wait (bounded) until
# no library thread is inside it.
import atexit as _atexit
import importlib as _importlib
import threading as _threading
import time as _time

_generated = _importlib.import_module(__name__ + "._native.moq_ffi")
_inflight_lock = _threading.Lock()
_inflight = [0]


@_generated._UNIFFI_RUST_FUTURE_CONTINUATION_CALLBACK
def _tracked_continuation(future_ptr, poll_code):
    with _inflight_lock:
        _inflight[0] += 1
    try:
        (eventloop, future) = _generated._UniffiContinuationHandleMap.remove(future_ptr)
        eventloop.call_soon_threadsafe(_generated._uniffi_set_future_result, future, poll_code)
    finally:
        with _inflight_lock:
            _inflight[0] -= 1


_generated._uniffi_continuation_callback = _tracked_continuation


def _drain_callbacks(timeout=2.0):
    deadline = _time.monotonic() + timeout
    while _inflight[0] and _time.monotonic() < deadline:
        _time.sleep(0.001)
    set_logger(None)  # noqa: F405  (no logger calls from library threads during finalization)


_atexit.register(_drain_callbacks)
