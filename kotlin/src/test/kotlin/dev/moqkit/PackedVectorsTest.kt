// The packed-object vectors (tests/vectors/packed-objects.txt, shared with the Rust, Python
// and Swift tests) against the Kotlin side: reading a PackedObjects, and packPayloads.
package dev.moqkit

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File

class PackedVectorsTest {
    private class Case(
        val name: String,
        val objects: List<Triple<ULong, ULong, ByteArray>>,
        val payloads: ByteArray,
        val index: ByteArray,
        val lengths: ByteArray,
    )

    private fun hex(field: String): ByteArray =
        if (field == "-") ByteArray(0) else field.chunked(2).map { it.toInt(16).toByte() }.toByteArray()

    // The vectors are in the repository's tests/: Maven runs the tests in kotlin/, an IDE
    // may run them from the repository's root.
    private fun cases(): List<Case> {
        val file = listOf("../tests/vectors/packed-objects.txt", "tests/vectors/packed-objects.txt")
            .map(::File).firstOrNull { it.exists() } ?: error("tests/vectors/packed-objects.txt not found")
        val cases = file.readLines()
            .filter { it.isNotBlank() && !it.startsWith("#") }
            .map { line ->
                val fields = line.split(" ")
                assertEquals(5, fields.size, line)
                val objects = if (fields[1] == "-") emptyList() else fields[1].split(",").map { entry ->
                    val (group, obj, payload) = entry.split(":")
                    Triple(group.toULong(), obj.toULong(), hex(payload))
                }
                Case(fields[0], objects, hex(fields[2]), hex(fields[3]), hex(fields[4]))
            }
        assertTrue(cases.size >= 5, "the vectors file lost cases")
        return cases
    }

    @Test
    fun readingPackedObjectsGivesEachVectorsObjects() {
        for (case in cases()) {
            val read = PackedObjects(case.payloads, case.index).toList()
            assertEquals(case.objects.size, read.size, case.name)
            assertEquals(case.objects.size, PackedObjects(case.payloads, case.index).size, case.name)
            for ((expected, got) in case.objects.zip(read)) {
                assertEquals(expected.first, got.groupId, case.name)
                assertEquals(expected.second, got.objectId, case.name)
                assertArrayEquals(expected.third, got.payload, case.name)
            }
        }
    }

    @Test
    fun packPayloadsWritesEachVectorsLengths() {
        for (case in cases()) {
            val (joined, lengths) = packPayloads(case.objects.map { it.third })
            assertArrayEquals(case.payloads, joined, case.name)
            assertArrayEquals(case.lengths, lengths, case.name)
        }
    }
}
