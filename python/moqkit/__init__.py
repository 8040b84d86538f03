"""moqkit: Media over QUIC (IETF MoQT draft-18) for Python.

The generated UniFFI bindings (``Client``, ``Publisher``, ``Subscriber``, ``MoqError`` ...)
plus small helpers:

* ``async for obj in subscriber`` iterates received objects until the track ends;
* ``subscriber.batches(n)`` iterates batches of up to ``n`` objects (one FFI call per batch);
* ``subscriber.packed_batches(n)`` iterates ``PackedObjects`` (fastest for many small objects);
  ``for group_id, object_id, payload in packed`` walks one;
* ``await subscriber.read()`` is the next object (``None`` at the end) taken without a native
  round trip when it has already arrived (``try_next``), else awaited (``next``); ``async for``
  uses it. The generated ``next()`` always makes the round trip. Both read one queue, in order;
* ``publisher.publish_many(payloads)`` crosses the boundary in packed form (one buffer, not one
  conversion per object);
* ``ClientConfig(url=...)`` has defaults for every other field.
"""

import asyncio as _asyncio
import struct as _struct

from ._native import *  # noqa: F401,F403  (the generated bindings)
from ._native import PackedObjects as _PackedObjects
from ._native import Publisher as _Publisher
from ._native import Subscriber as _Subscriber

_INDEX_ENTRY = _struct.Struct("<QQI")  # group id, object id, payload length (PackedObjects.index)


# Objects taken without suspending before read() lets the event loop run once: a busy track
# keeps try_next() finding objects, and a coroutine that never suspends starves the others.
_YIELD_EVERY = 256


async def _read(self):
    """The next object, in order; ``None`` when the track ended normally or the subscription
    was closed. Raises ``MoqError`` when it ended abnormally. Takes an object that has already
    arrived with one plain call (``try_next``), and awaits ``next()`` only when none has."""
    obj = self.try_next()
    if obj is None:
        self.__dict__["_moq_fast_reads"] = 0
        return await self.next()
    fast = self.__dict__.get("_moq_fast_reads", 0) + 1
    self.__dict__["_moq_fast_reads"] = fast
    if fast % _YIELD_EVERY == 0:
        await _asyncio.sleep(0)
    return obj


async def _anext(self):
    obj = await _read(self)
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


def _publish_many(self, payloads):
    """Publish ``payloads`` (bytes-like objects) in order with one call, in packed form.

    On an error the objects before the failing one were published and the rest were not;
    the message says how many.
    """
    payloads = list(payloads)
    lengths = _struct.pack(f"<{len(payloads)}I", *map(len, payloads))
    self.publish_packed(b"".join(payloads), lengths)


# Named helpers beside the generated methods, which stay as generated.
_Subscriber.__aiter__ = _aiter
_Subscriber.__anext__ = _anext
_Subscriber.read = _read
_Subscriber.batches = _batches
_Subscriber.packed_batches = _packed_batches
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
# no library thread is inside it. This is the one place the package uses the generated
# module's private names: UniFFI offers no public hook for it (the callback is installed per
# call from this module global); an upgrade that renames any of the four names used fails the
# import below, and python-tests/test_readme.py's exit test covers the behaviour.
import atexit as _atexit
import importlib as _importlib
import threading as _threading
import time as _time

_generated = _importlib.import_module(__name__ + "._native.moq_ffi")
for _name in ("_UNIFFI_RUST_FUTURE_CONTINUATION_CALLBACK", "_UniffiContinuationHandleMap",
              "_uniffi_set_future_result", "_uniffi_continuation_callback"):
    if not hasattr(_generated, _name):
        raise ImportError(f"moqkit: the generated bindings lack {_name}: the UniFFI version "
                          "changed; update the exit-safe continuation in moqkit/__init__.py")
del _name
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
