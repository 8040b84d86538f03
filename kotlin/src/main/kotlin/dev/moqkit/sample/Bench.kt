// Benchmark path program for the Kotlin layer (dev.moqkit: generated bindings + Moq.kt).
// Usage: BenchKt <burst|paced|datagram|publish> <count> <size>; run it through bench/kotlin.sh.
// Environment: MOQ_RELAY_MOQT_URL (raw-QUIC relay URL), MOQ_RELAY_CA_FILE (the only CA trusted).
// Prints exactly one `RESULT {json}` line on stdout (everything else goes to stderr) and exits
// 0 on success, 1 on any failure.
//
// Payload layout: bytes [0..8) object index (LE u64); for paced/datagram [8..16) the send time
// in ns of this JVM's monotonic clock, System.nanoTime() (LE u64); the rest zero.
package dev.moqkit.sample

import com.sun.jna.Library
import com.sun.jna.Native
import com.sun.jna.Platform
import dev.moqkit.Client
import dev.moqkit.ClientConfig
import dev.moqkit.DeliveryMode
import dev.moqkit.MoqException
import dev.moqkit.Publisher
import dev.moqkit.PublisherOptions
import dev.moqkit.ReceivedObject
import dev.moqkit.Subscriber
import dev.moqkit.batches
import dev.moqkit.clientConfig
import dev.moqkit.connect
import dev.moqkit.reason
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.collect
import kotlinx.coroutines.flow.takeWhile
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import java.lang.management.ManagementFactory
import java.util.Locale
import java.util.concurrent.locks.LockSupport
import kotlin.system.exitProcess

private const val TRACK = "t"

/**
 * Objects pulled per native call on the receive side: one FFI crossing per batch is what lets
 * a JVM subscriber keep up with a burst.
 */
private const val RECEIVE_BATCH = 1024

/** burst: objects per publishMany call, capped so one call carries about 1 MiB. */
private const val PUBLISH_CHUNK = 100
private const val PUBLISH_CHUNK_BYTES = 1 shl 20

/** burst: how long to wait for the last object after the last publish call. */
private const val BURST_WAIT_MS = 60_000L

/**
 * Unmeasured warm-up before every workload, so the figures are the JVM's steady state (JIT
 * compiled), as JMH measures with its warm-up iterations: bursts through subscriptions on
 * their own tracks, then single publish calls. Measured on the benchmark machine: the first
 * 10,000-object burst of a JVM reached 58-76k objects/s, the third and later 95-149k; a
 * burst after five of them 130-137k.
 */
private const val WARM_UP_BURSTS = 5
private const val WARM_UP_OBJECTS = 10_000
private const val WARM_UP_CALLS = 20_000

/** publish: rounds of the microbenchmark; the median round is reported. */
private const val PUBLISH_ROUNDS = 10

/** paced/datagram: how long to wait after the last publish (fixed by the protocol). */
private const val PACED_WAIT_MS = 10_000L
private const val PACED_INTERVAL_NS = 1_000_000L

private enum class Workload(val minSize: Int) { BURST(8), PACED(16), DATAGRAM(16), PUBLISH(0) }

/** A benchmark failure: its message is the reason printed to stderr. */
private class BenchFailure(message: String) : Exception(message)

/**
 * CPU time (user + sys, all threads, native ones included) of this process, in ns. On Linux
 * through clock_gettime(CLOCK_PROCESS_CPUTIME_ID) via JNA, which is exact; the JVM's own
 * OperatingSystemMXBean.processCpuTime counts 10 ms clock ticks (times(2)), too coarse for
 * runs of a fraction of a second, so it is only the fallback elsewhere.
 */
private object ProcessCpuClock {
    interface LibC : Library {
        fun clock_gettime(clockId: Int, timespec: LongArray): Int
    }

    private const val CLOCK_PROCESS_CPUTIME_ID = 2

    // struct timespec is two longs (tv_sec, tv_nsec) on 64-bit Linux.
    private val libc: LibC? =
        if (Platform.isLinux() && Native.LONG_SIZE == 8) Native.load("c", LibC::class.java) else null
    private val osBean = ManagementFactory.getOperatingSystemMXBean() as com.sun.management.OperatingSystemMXBean

    fun nanos(): Long {
        val ts = LongArray(2)
        if (libc != null && libc.clock_gettime(CLOCK_PROCESS_CPUTIME_ID, ts) == 0) return ts[0] * 1_000_000_000L + ts[1]
        return osBean.processCpuTime
    }
}

private fun processCpuNs(): Long = ProcessCpuClock.nanos()

private fun putLongLe(buf: ByteArray, offset: Int, value: Long) {
    for (i in 0 until 8) buf[offset + i] = (value ushr (8 * i)).toByte()
}

private fun getLongLe(buf: ByteArray, offset: Int): Long {
    var v = 0L
    for (i in 0 until 8) v = v or ((buf[offset + i].toLong() and 0xff) shl (8 * i))
    return v
}

/** JSON with a fixed locale, so numbers always use '.' as the decimal separator. */
private fun json(vararg fields: Pair<String, Any>): String =
    fields.joinToString(", ", "{", "}") { (key, value) ->
        val number = when (value) {
            is Double -> String.format(Locale.ROOT, "%.6f", value)
            else -> value.toString()
        }
        "\"$key\": $number"
    }

/** Nearest-rank percentile of a sorted, non-empty array: the ceil(p/100 * n)-th smallest. */
private fun percentile(sorted: LongArray, n: Int, p: Int): Long =
    sorted[maxOf(1, ((p.toLong() * n + 99) / 100).toInt()) - 1]

/**
 * What the subscriber saw. Written only by the receiving coroutine; the main coroutine reads it
 * after joining that coroutine (join orders the writes before the reads).
 */
private class Receiver(val workload: Workload, val count: Int, val size: Int) {
    var received = 0
    private var nextIndex = 0L
    val latencyNs: LongArray? = if (workload == Workload.BURST) null else LongArray(count)
    val seen: BooleanArray? = if (workload == Workload.DATAGRAM) BooleanArray(count) else null
    var doneNs = 0L
    var doneCpuNs = 0L
    var failure: String? = null

    /** Account for one batch; returns whether more objects are wanted. */
    fun accept(batch: List<ReceivedObject>): Boolean {
        // The whole batch became visible to the application at this moment.
        val now = System.nanoTime()
        for (obj in batch) {
            if (!check(obj)) return false
            latencyNs?.set(received, now - getLongLe(obj.payload, 8))
            received++
            if (received == count) {
                doneNs = now
                doneCpuNs = processCpuNs()
                return false
            }
        }
        return true
    }

    private fun check(obj: ReceivedObject): Boolean {
        val payload = obj.payload
        if (payload.size != size) {
            failure = "object $received has ${payload.size} bytes, expected $size"
            return false
        }
        val index = getLongLe(payload, 0)
        if (seen != null) {
            // Lossy: gaps (and, in principle, reordering) are allowed; a duplicate or an index
            // that was never sent is a library bug.
            if (index !in 0 until count || seen[index.toInt()]) {
                failure = "datagram index $index is a duplicate or out of range"
                return false
            }
            seen[index.toInt()] = true
        } else if (index != nextIndex) {
            failure = "object $nextIndex carries index $index (out of order or missing)"
            return false
        }
        nextIndex = index + 1
        return true
    }
}

/** Collect [subscriber] into [rx] on a pool thread until it has everything or fails. */
private fun CoroutineScope.receive(subscriber: Subscriber, rx: Receiver): Job =
    launch(Dispatchers.Default) {
        try {
            subscriber.batches(RECEIVE_BATCH).takeWhile { rx.accept(it) }.collect()
        } catch (e: MoqException) {
            rx.failure = "subscription ended: ${e.reason}"
        }
    }

/** Wait up to [timeoutMs] for the receiver, then stop it (which unsubscribes). */
private suspend fun finish(job: Job, timeoutMs: Long) {
    withTimeoutOrNull(timeoutMs) { job.join() }
    job.cancelAndJoin()
}

private suspend fun burst(publisher: Publisher, subscriber: Subscriber, count: Int, size: Int): String = coroutineScope {
    val rx = Receiver(Workload.BURST, count, size)
    val job = receive(subscriber, rx)
    // One reusable chunk: publishMany copies the payloads before it returns.
    val chunkSize = minOf(PUBLISH_CHUNK, maxOf(1, PUBLISH_CHUNK_BYTES / maxOf(size, 1)))
    val chunk = List(chunkSize) { ByteArray(size) }
    val t0 = System.nanoTime()
    val cpu0 = processCpuNs()
    var sent = 0
    while (sent < count) {
        val n = minOf(chunkSize, count - sent)
        for (k in 0 until n) putLongLe(chunk[k], 0, (sent + k).toLong())
        publisher.publishMany(if (n == chunkSize) chunk else chunk.subList(0, n))
        sent += n
    }
    finish(job, BURST_WAIT_MS)
    rx.failure?.let { throw BenchFailure(it) }
    if (rx.received != count) throw BenchFailure("received ${rx.received} of $count objects")
    val seconds = maxOf(rx.doneNs - t0, 1L) / 1e9
    json(
        "objects_per_s" to count / seconds,
        "mb_per_s" to count.toDouble() * size / seconds / 1e6,
        "cpu_s" to (rx.doneCpuNs - cpu0) / 1e9,
        "received" to rx.received,
    )
}

private suspend fun paced(
    workload: Workload,
    publisher: Publisher,
    subscriber: Subscriber,
    count: Int,
    size: Int,
): String = coroutineScope {
    val rx = Receiver(workload, count, size)
    val job = receive(subscriber, rx)
    val payload = ByteArray(size)
    val t0 = System.nanoTime()
    for (i in 0 until count) {
        // Absolute schedule: a late wake-up does not shift later objects. Blocking this thread
        // is fine: the receiver runs on Dispatchers.Default.
        val due = t0 + i * PACED_INTERVAL_NS
        while (true) {
            val wait = due - System.nanoTime()
            if (wait <= 0) break
            LockSupport.parkNanos(wait)
        }
        putLongLe(payload, 0, i.toLong())
        putLongLe(payload, 8, System.nanoTime())
        publisher.publish(payload)
    }
    finish(job, PACED_WAIT_MS)
    rx.failure?.let { throw BenchFailure(it) }
    val received = rx.received
    if (workload == Workload.DATAGRAM && received < count) {
        // Diagnostics only: which datagrams were lost (the first few).
        val lost = (0 until count).filter { !rx.seen!![it] }
        val shown = lost.take(16).joinToString(" ") + if (lost.size > 16) " ..." else ""
        System.err.println("bench: ${lost.size} of $count datagrams lost: $shown")
    }
    if (workload == Workload.PACED && received != count) throw BenchFailure("received $received of $count objects")
    if (received == 0) throw BenchFailure("no object received: latency percentiles undefined")
    val latencies = rx.latencyNs!!.copyOf(received).also { it.sort() }
    val p50 = percentile(latencies, received, 50) / 1e3
    val p99 = percentile(latencies, received, 99) / 1e3
    if (workload == Workload.DATAGRAM) {
        json("ratio" to received.toDouble() / count, "p50_us" to p50, "p99_us" to p99, "received" to received)
    } else {
        json("p50_us" to p50, "p99_us" to p99, "received" to received)
    }
}

/** Exercise the paths the workloads use (see [WARM_UP_OBJECTS]); nothing is measured. */
private suspend fun warmUp(ns: String, pubClient: Client, subClient: Client) {
    repeat(WARM_UP_BURSTS) { round ->
        pubClient.createPublisher(ns, "warm-up-$round", null).use { publisher ->
            subClient.subscribe(ns, "warm-up-$round").use { subscriber ->
                burst(publisher, subscriber, WARM_UP_OBJECTS, 100)
            }
        }
    }
    pubClient.createPublisher(ns, "warm-up-calls", null).use { publisher ->
        val payload = ByteArray(100)
        repeat(WARM_UP_CALLS) { publisher.publish(payload) }
    }
}

private fun publishOnly(publisher: Publisher, count: Int, size: Int): String {
    val payload = ByteArray(size)
    // Median of PUBLISH_ROUNDS rounds, as every path does (bench/README.md).
    val perRound = maxOf(count / PUBLISH_ROUNDS, 1)
    val rounds = DoubleArray(PUBLISH_ROUNDS) {
        val t0 = System.nanoTime()
        repeat(perRound) { publisher.publish(payload) }
        (System.nanoTime() - t0).toDouble() / perRound
    }
    rounds.sort()
    return json("ns_per_call" to (rounds[PUBLISH_ROUNDS / 2 - 1] + rounds[PUBLISH_ROUNDS / 2]) / 2)
}

/** Connect, run [block], and always disconnect and free the client. */
private suspend fun <T> connected(config: ClientConfig, block: suspend (Client) -> T): T =
    connect(config).use { client ->
        val result = block(client)
        client.disconnect()
        result
    }

private suspend fun run(workload: Workload, count: Int, size: Int, config: ClientConfig): String {
    val ns = "bench-${ProcessHandle.current().pid()}-${workload.name.lowercase()}"
    val options = if (workload == Workload.DATAGRAM) PublisherOptions(delivery = DeliveryMode.DATAGRAM) else null
    return connected(config) { pubClient ->
        pubClient.announce(ns)
        pubClient.createPublisher(ns, TRACK, options).use { publisher ->
            if (workload == Workload.PUBLISH) {
                connected(config) { subClient -> warmUp(ns, pubClient, subClient) }
                publishOnly(publisher, count, size)
            } else {
                connected(config) { subClient ->
                    warmUp(ns, pubClient, subClient)
                    // subscribe returns once the relay accepted: the subscription is established.
                    subClient.subscribe(ns, TRACK).use { subscriber ->
                        when (workload) {
                            Workload.BURST -> burst(publisher, subscriber, count, size)
                            else -> paced(workload, publisher, subscriber, count, size)
                        }
                    }
                }
            }
        }
    }
}

private fun usage(): Nothing = throw BenchFailure("usage: BenchKt <burst|paced|datagram|publish> <count> <size>")

fun main(args: Array<String>) {
    val code = try {
        if (args.size != 3) usage()
        val workload = Workload.entries.firstOrNull { it.name.lowercase() == args[0] } ?: usage()
        val count = args[1].toIntOrNull()?.takeIf { it > 0 } ?: usage()
        val size = args[2].toIntOrNull()?.takeIf { it >= 0 } ?: usage()
        if (size < workload.minSize) throw BenchFailure("${args[0]} needs objects of at least ${workload.minSize} bytes")
        val url = System.getenv("MOQ_RELAY_MOQT_URL").orEmpty()
        val caFile = System.getenv("MOQ_RELAY_CA_FILE").orEmpty()
        if (url.isEmpty() || caFile.isEmpty()) throw BenchFailure("MOQ_RELAY_MOQT_URL and MOQ_RELAY_CA_FILE must be set")
        // Trust exactly the relay's CA: no system roots.
        val config = clientConfig(url, caFile, useSystemRoots = false)
        // Printed only after every handle was closed, so RESULT always means exit status 0.
        val result = runBlocking { run(workload, count, size, config) }
        println("RESULT $result")
        0
    } catch (e: BenchFailure) {
        System.err.println("bench: ${e.message}")
        1
    } catch (e: MoqException) {
        System.err.println("bench: ${e::class.simpleName}: ${e.reason}")
        1
    } catch (e: Exception) {
        System.err.println("bench: unexpected failure")
        e.printStackTrace()
        1
    }
    System.out.flush()
    exitProcess(code)
}
