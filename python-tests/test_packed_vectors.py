"""The packed-object vectors (tests/vectors/packed-objects.txt, shared with the Rust, Kotlin
and Swift tests) against the Python side: iterating a PackedObjects, and the lengths
publish_many packs."""

import pathlib

import moqkit

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "tests" / "vectors" / "packed-objects.txt"


def _hex(field):
    return b"" if field == "-" else bytes.fromhex(field)


def _cases():
    cases = []
    for line in VECTORS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, objects, payloads, index, lengths = line.split(" ")
        parsed = []
        if objects != "-":
            for entry in objects.split(","):
                group_id, object_id, payload = entry.split(":")
                parsed.append((int(group_id), int(object_id), _hex(payload)))
        cases.append((name, parsed, _hex(payloads), _hex(index), _hex(lengths)))
    assert len(cases) >= 5, "the vectors file lost cases"
    return cases


def test_iterating_packed_objects_reads_each_vector():
    for name, objects, payloads, index, _ in _cases():
        packed = moqkit.PackedObjects(payloads=payloads, index=index)
        assert list(packed) == objects, name
        assert len(packed) == len(objects), name


class _Recorder:
    """Stands in for a Publisher: records what publish_many hands to publish_packed."""

    def publish_packed(self, payloads, lengths):
        self.sent = (payloads, lengths)


def test_publish_many_packs_each_vectors_lengths():
    for name, objects, payloads, _, lengths in _cases():
        recorder = _Recorder()
        moqkit.Publisher.publish_many(recorder, [payload for _, _, payload in objects])
        assert recorder.sent == (payloads, lengths), name
