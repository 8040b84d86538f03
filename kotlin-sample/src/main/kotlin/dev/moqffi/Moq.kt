// Idiomatic Kotlin over the generated bindings: Flows for subscriptions, helpers for config.
package dev.moqffi

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
        is MoqException.TooLarge -> reason
        is MoqException.LimitReached -> reason
        is MoqException.PublisherLost -> reason
        is MoqException.Closed -> reason
        is MoqException.WrongThread -> reason
        is MoqException.Internal -> reason
    }
