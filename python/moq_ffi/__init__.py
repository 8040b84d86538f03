"""moq_ffi: Media over QUIC (IETF MoQT draft-18) for Python.

The generated UniFFI bindings (``Client``, ``Publisher``, ``Subscriber``, ``MoqError`` ...)
plus small helpers:

* ``async for obj in subscriber`` iterates received objects until the track ends;
* ``subscriber.batches(n)`` iterates batches of up to ``n`` objects (one FFI call per batch);
* ``ClientConfig(url=...)`` has defaults for every other field.
"""

from .moq_ffi import *  # noqa: F401,F403  (the generated bindings)
from .moq_ffi import Subscriber as _Subscriber


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


_Subscriber.__aiter__ = _aiter
_Subscriber.__anext__ = _anext
_Subscriber.batches = _batches


def _error_str(self):
    # Every MoqError / ListenerError variant carries `reason`, which is exactly the Rust
    # Display text: a readable, actionable message.
    return getattr(self, "reason", None) or Exception.__str__(self)


for _error in (MoqError, ListenerError):  # noqa: F405
    for _variant in vars(_error).values():
        if isinstance(_variant, type) and issubclass(_variant, Exception):
            _variant.__str__ = _error_str
del _error, _variant
