// Idiomatic Kotlin over the generated bindings: Flows for subscriptions, helpers for config.
package dev.moqkit

import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.withContext

/**
 * This subscription's objects, in order, as a cold [Flow]. Objects are pulled in batches of
 * up to [batchSize] (one native call per batch, which is what lets a JVM subscriber keep up
 * with a busy track). The flow completes when the track ends and throws [MoqException] if it
 * ends abnormally. Cancelling the collecting coroutine (or finishing the flow) unsubscribes.
 */
fun Subscriber.objects(batchSize: Int = 512): Flow<ReceivedObject> = flow {
    try {
        while (true) {
            val batch = nextBatch(batchSize.toUInt())
            if (batch.isEmpty()) break
            for (obj in batch) emit(obj)
        }
    } finally {
        withContext(NonCancellable) { unsubscribe() }
    }
}

/** Like [objects], emitting whole batches (cheapest for high rates). */
fun Subscriber.batches(batchSize: Int = 512): Flow<List<ReceivedObject>> = flow {
    try {
        while (true) {
            val batch = nextBatch(batchSize.toUInt())
            if (batch.isEmpty()) break
            emit(batch)
        }
    } finally {
        withContext(NonCancellable) { unsubscribe() }
    }
}

/** Bytes per object in [PackedObjects.index]: group id (u64), object id (u64), length (u32). */
const val PACKED_INDEX_ENTRY = 20

/** How many objects this packed batch holds. */
val PackedObjects.size: Int get() = index.size / PACKED_INDEX_ENTRY

/**
 * Call [action] with each object's group id, object id and payload (a copy), in order. Throws
 * [IllegalStateException] if the index does not match the payloads (a library bug).
 */
inline fun PackedObjects.forEach(action: (groupId: ULong, objectId: ULong, payload: ByteArray) -> Unit) {
    val entries = java.nio.ByteBuffer.wrap(index).order(java.nio.ByteOrder.LITTLE_ENDIAN)
    var start = 0
    while (entries.remaining() >= PACKED_INDEX_ENTRY) {
        val groupId = entries.getLong().toULong()
        val objectId = entries.getLong().toULong()
        val end = start + entries.getInt()
        check(end in start..payloads.size) { "packed index does not match its payloads" }
        action(groupId, objectId, payloads.copyOfRange(start, end))
        start = end
    }
}

/** The objects of this packed batch as records. */
fun PackedObjects.toList(): List<ReceivedObject> {
    val objects = ArrayList<ReceivedObject>(size)
    forEach { groupId, objectId, payload -> objects.add(ReceivedObject(groupId, objectId, payload)) }
    return objects
}

/**
 * Publish [payloads] in order with one native call, in packed form (one buffer instead of one
 * per object). Errors like [Publisher.publishMany].
 */
fun Publisher.publishPacked(payloads: List<ByteArray>) {
    val (joined, lengths) = packPayloads(payloads)
    publishPacked(joined, lengths)
}

/**
 * [payloads] in the packed form [Publisher.publishPacked] takes: the payloads back to back,
 * and one little-endian u32 length per payload.
 */
fun packPayloads(payloads: List<ByteArray>): Pair<ByteArray, ByteArray> {
    val lengths = java.nio.ByteBuffer.allocate(4 * payloads.size).order(java.nio.ByteOrder.LITTLE_ENDIAN)
    val joined = ByteArray(payloads.sumOf { it.size })
    var at = 0
    for (payload in payloads) {
        lengths.putInt(payload.size)
        payload.copyInto(joined, at)
        at += payload.size
    }
    return joined to lengths.array()
}

/**
 * A [ClientConfig] for [url] trusting the system roots plus the CA certificates in
 * [caFiles] (PEM paths); every other setting at its default.
 */
fun clientConfig(url: String, vararg caFiles: String, useSystemRoots: Boolean = true): ClientConfig =
    defaultClientConfig(url).copy(
        tls = TlsOptions(
            useSystemRoots = useSystemRoots,
            extraCaPem = emptyList(),
            extraCaFiles = caFiles.toList(),
            pinnedSha256 = emptyList(),
            dangerAcceptAnyCertificate = false,
        ),
    )

/** Create a client for [config] and connect it (suspends until connected). */
suspend fun connect(config: ClientConfig): Client {
    val client = Client(config)
    try {
        client.connect()
    } catch (e: Throwable) {
        client.close()
        throw e
    }
    return client
}

/** The readable message of a [MoqException] (the Rust error's Display text). */
val MoqException.reason: String
    get() = when (this) {
        is MoqException.InvalidArgument -> reason
        is MoqException.Tls -> reason
        is MoqException.ConnectionFailed -> reason
        is MoqException.NotConnected -> reason
        is MoqException.Timeout -> reason
        is MoqException.NotFound -> reason
        is MoqException.AlreadyExists -> reason
        is MoqException.Refused -> reason
        is MoqException.Unauthorized -> reason
        is MoqException.UnsupportedDraft -> reason
        is MoqException.TooLarge -> reason
        is MoqException.WouldBlock -> reason
        is MoqException.LimitReached -> reason
        is MoqException.PublisherLost -> reason
        is MoqException.Closed -> reason
        is MoqException.WrongThread -> reason
        is MoqException.Internal -> reason
    }
