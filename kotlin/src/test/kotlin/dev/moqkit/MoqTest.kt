// The Kotlin package against a real relay (the moq-test-relay binary).
package dev.moqkit

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.ValueSource
import java.io.File
import java.util.Collections
import java.util.concurrent.atomic.AtomicInteger

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class MoqTest {
    private lateinit var relay: Process
    private val env = mutableMapOf<String, String>()
    private val names = AtomicInteger()

    /** Start `moq-test-relay ARGS` and read its KEY=VALUE lines up to READY into [into]. */
    private fun startTestRelay(into: MutableMap<String, String>, vararg args: String): Process {
        val binary = System.getProperty("moq.relay.bin") ?: error("moq.relay.bin not set")
        val process = ProcessBuilder(binary, *args).redirectError(ProcessBuilder.Redirect.INHERIT).start()
        val lines = process.inputStream.bufferedReader()
        while (true) {
            val line = lines.readLine() ?: error("${args.joinToString(" ")} relay exited")
            if (line == "READY") break
            val (key, value) = line.split("=", limit = 2)
            into[key] = value
        }
        return process
    }

    @BeforeAll
    fun startRelay() {
        relay = startTestRelay(env)
    }

    @AfterAll
    fun stopRelay() {
        relay.outputStream.close()
        relay.waitFor()
    }

    @Test
    fun `the bindings and the native library come from the packaged jar, with no library path set`() {
        assertEquals(null, System.getProperty("jna.library.path"))
        assertEquals(null, System.getProperty("uniffi.component.moq_ffi.libraryOverride"))
        val jar = "moqkit-${System.getProperty("moq.expected.version")}.jar"
        val classes = Client::class.java.protectionDomain.codeSource.location.path
        assertTrue(classes.endsWith(jar), "bindings loaded from $classes")
        val native = Client::class.java.classLoader.getResource("linux-x86-64/libmoqkit.so")
        assertTrue(native.toString().startsWith("jar:file:") && native.toString().contains("$jar!"),
            "native library resource: $native")
        // The library is loaded (from that resource, as nothing else names it) and works.
        Client(config()).use { assertEquals(ConnectionState.DISCONNECTED, it.state()) }
    }

    @Test
    fun `the native library reports the jar's version`() {
        // One version on every face: the jar's (the POM's, which scripts/check-versions keeps
        // equal to the crate's) is the library's.
        val expected = System.getProperty("moq.expected.version")
        assertTrue(!expected.isNullOrEmpty(), "the POM passes moq.expected.version")
        assertEquals("moq_ffi $expected", version())
    }

    private fun url(scheme: String) =
        if (scheme == "moqt") env.getValue("MOQ_RELAY_MOQT_URL") else env.getValue("MOQ_RELAY_HTTPS_URL")

    private fun config(scheme: String = "moqt") =
        clientConfig(url(scheme), env.getValue("MOQ_RELAY_CA_FILE"), useSystemRoots = false)
            .copy(idleTimeoutMs = 2000u, keepAliveIntervalMs = 300u, rendezvousTimeoutMs = 2000u)

    private fun unique(prefix: String) = "$prefix-${ProcessHandle.current().pid()}-${names.incrementAndGet()}"

    private fun payload(i: Int, size: Int = 100) = ByteArray(size) { j -> ((i * 31 + j * 7) and 0xff).toByte() }
        .also { for (k in 0 until 4) it[k] = (i shr (8 * k)).toByte() }

    private fun index(bytes: ByteArray) =
        (0 until 4).fold(0) { acc, k -> acc or ((bytes[k].toInt() and 0xff) shl (8 * k)) }

    @ParameterizedTest
    @ValueSource(strings = ["moqt", "https"])
    fun `connects over both schemes`(scheme: String) = runBlocking {
        connect(config(scheme)).use { client ->
            assertTrue(client.isConnected())
            assertEquals(ConnectionState.CONNECTED, client.state())
            // The MoQT draft agreed in the handshake (#24): 18, and none once disconnected.
            assertEquals(18u, client.negotiatedDraft())
            client.disconnect()
            assertEquals(ConnectionState.DISCONNECTED, client.state())
            assertEquals(null, client.negotiatedDraft())
        }
    }

    class Collector : ObjectListener {
        val objects: MutableList<ReceivedObject> = Collections.synchronizedList(mutableListOf())
        override fun onObjects(objects: List<ReceivedObject>) {
            this.objects.addAll(objects)
        }
        override fun onEnd(error: String?) {}
    }

    @ParameterizedTest
    @ValueSource(strings = ["moqt", "https"])
    fun `publish and subscribe byte-exact through the listener and the Flow`(scheme: String) = runBlocking {
        connect(config(scheme)).use { client ->
            val ns = unique("exact")
            client.announce(ns)
            val sent = listOf(ByteArray(0), "hello".encodeToByteArray(), ByteArray(256) { it.toByte() }, payload(3, 5000))
            client.createPublisher(ns, "t", null).use { publisher ->
                val collector = Collector()
                client.subscribeWithListener(ns, "t", collector).use { listened ->
                    client.subscribe(ns, "t").use { pulled ->
                        val flowed = async { pulled.objects().take(sent.size).toList() }
                        sent.forEach { publisher.publish(it) }
                        val viaFlow = withTimeout(10_000) { flowed.await() }
                        assertEquals(sent.size, viaFlow.size)
                        sent.zip(viaFlow).forEach { (a, b) -> assertArrayEquals(a, b.payload) }
                        withTimeout(10_000) { while (collector.objects.size < sent.size) delay(5) }
                        sent.zip(collector.objects).forEach { (a, b) -> assertArrayEquals(a, b.payload) }
                        listened.unsubscribe()
                    }
                }
            }
        }
    }

    @Test
    fun `a burst of 10000 small objects arrives complete and in order`() = runBlocking {
        connect(config("moqt")).use { publisherClient ->
            connect(config("https")).use { subscriberClient ->
                val ns = unique("burst")
                publisherClient.announce(ns)
                val publisher = publisherClient.createPublisher(ns, "t", null)
                val subscriber = subscriberClient.subscribe(ns, "t")
                val received = async { subscriber.objects().take(10_000).toList() }
                for (i in 0 until 10_000) publisher.publish(payload(i))
                val objects = withTimeout(60_000) { received.await() }
                assertEquals(10_000, objects.size)
                objects.forEachIndexed { i, obj -> assertEquals(i, index(obj.payload)) }
                publisher.close()
            }
        }
    }

    @Test
    fun `publishAsync through a small queue waits for room and loses nothing`() = runBlocking {
        assertEquals(16uL * 1024u * 1024u, PublisherOptions(delivery = DeliveryMode.STREAM).maxQueuedBytes)
        connect(config()).use { client ->
            val ns = unique("queue")
            client.announce(ns)
            val options = PublisherOptions(delivery = DeliveryMode.STREAM, maxQueuedBytes = 256uL * 1024u)
            val publisher = client.createPublisher(ns, "t", options)
            val subscriber = client.subscribe(ns, "t")
            // 20 MB through a 256 KiB queue.
            val received = async(Dispatchers.Default) { subscriber.objects().take(200).toList() }
            var peak = 0uL
            for (i in 0 until 200) {
                val location = publisher.publishAsync(payload(i, 100_000))
                assertEquals(i.toULong(), location.objectId)
                peak = maxOf(peak, publisher.queuedBytes())
            }
            val objects = withTimeout(60_000) { received.await() }
            objects.forEachIndexed { i, obj -> assertArrayEquals(payload(i, 100_000), obj.payload) }
            assertTrue(peak <= 256uL * 1024u + 100_000u, "queue peaked at $peak bytes")
            publisher.close()
        }
    }

    @Test
    fun `tryNext takes what has arrived without suspending, in order with next`() = runBlocking {
        connect(config("moqt")).use { client ->
            val ns = unique("try")
            client.announce(ns)
            val publisher = client.createPublisher(ns, "t", null)
            val subscriber = client.subscribe(ns, "t")
            assertEquals(null, subscriber.tryNext()) // nothing yet: returns at once
            val sent = List(20) { payload(it, 10) }
            publisher.publishMany(sent)
            val got = mutableListOf(withTimeout(10_000) { subscriber.next() }!!.payload)
            withTimeout(10_000) {
                while (got.size < sent.size) {
                    val obj = subscriber.tryNext()
                    if (obj == null) delay(10) else got += obj.payload
                }
            }
            got.forEachIndexed { i, bytes -> assertArrayEquals(sent[i], bytes) }
            assertEquals(null, subscriber.tryNext())
            subscriber.unsubscribe()
            publisher.close()
        }
    }

    @Test
    fun `stats count what a subscription received`() = runBlocking {
        Client(config("moqt")).use { idle ->
            assertEquals(ConnectionState.DISCONNECTED, idle.stats().state)
            assertEquals(null, idle.stats().draft)
        }
        connect(config("moqt")).use { client ->
            val ns = unique("stats")
            client.announce(ns)
            val publisher = client.createPublisher(ns, "t", null)
            val subscriber = client.subscribe(ns, "t")
            assertEquals(0uL, subscriber.stats().objectsReceived)
            assertEquals(null, subscriber.stats().currentGroup)
            val sent = List(100) { payload(it, 1000) }
            publisher.publishMany(sent)
            withTimeout(10_000) { repeat(sent.size) { subscriber.next() } }
            val stats = subscriber.stats()
            assertEquals(100uL, stats.objectsReceived)
            assertEquals(100_000uL, stats.bytesReceived)
            assertEquals(0uL, stats.bufferedObjects)
            assertTrue(stats.currentGroup != null)
            val connection = client.stats()
            assertEquals(ConnectionState.CONNECTED, connection.state)
            assertEquals(18u, connection.draft)
            assertTrue(connection.rttUs > 0uL && connection.congestionWindow > 0uL)
            // One client published and received the same 100 kB through the relay.
            assertTrue(connection.bytesSent >= 100_000uL && connection.bytesReceived >= 100_000uL)
            subscriber.unsubscribe()
            publisher.close()
        }
    }

    @Test
    fun `fetch returns the kept groups in order and says what is not available`() = runBlocking {
        connect(config("moqt")).use { client ->
            val ns = unique("fetch")
            client.announce(ns)
            val options = PublisherOptions(delivery = DeliveryMode.STREAM, retainGroups = 2uL)
            val publisher = client.createPublisher(ns, "t", options)
            for (g in 0 until 4) {
                if (g > 0) publisher.newGroup()
                for (o in 0 until 3) publisher.publish(payload(g * 3 + o))
            }
            // Through the relay to this client's own publisher, which keeps groups 2 and 3.
            val response = client.fetch(ns, "t", FetchRange(startGroup = 0uL, endGroup = 3uL))
            val got = mutableListOf<ReceivedObject>()
            withTimeout(10_000) {
                while (true) got += response.next() ?: break
            }
            val expected = (2..3).flatMap { g -> (0..2).map { o -> g.toULong() to o.toULong() } }
            assertEquals(expected, got.map { it.groupId to it.objectId })
            got.forEach { assertArrayEquals(payload((it.groupId * 3uL + it.objectId).toInt()), it.payload) }
            val e = assertThrows<MoqException.NotFound> {
                runBlocking { client.fetch(ns, "t", FetchRange(startGroup = 0uL, endGroup = 1uL)) }
            }
            assertTrue(e.message!!.contains("groups 2 to 3 are kept"), e.message)
            assertThrows<MoqException.InvalidArgument> {
                runBlocking { client.fetch(ns, "t", FetchRange(startGroup = 3uL, endGroup = 2uL)) }
            }
            publisher.close()
        }
    }

    @Test
    fun `packed publish and receive are byte-exact with the right ids`() = runBlocking {
        connect(config("moqt")).use { publisherClient ->
            connect(config("https")).use { subscriberClient ->
                val ns = unique("packed")
                publisherClient.announce(ns)
                val options = PublisherOptions(delivery = DeliveryMode.STREAM, maxGroupObjects = 7u)
                val publisher = publisherClient.createPublisher(ns, "t", options)
                val subscriber = subscriberClient.subscribe(ns, "t")
                // The relay follows the track before the burst (see the Python test of the same name).
                publisher.publishPacked(listOf("warm-up".toByteArray()))
                assertEquals(1, withTimeout(10_000) { subscriber.nextPacked(8u) }.size)
                val sent = listOf(ByteArray(0), ByteArray(5000) { it.toByte() }) + List(300) { payload(it, 10 + it % 50) }
                sent.chunked(100).forEach { publisher.publishPacked(it) }
                val got = mutableListOf<ReceivedObject>()
                withTimeout(20_000) {
                    while (got.size < sent.size) got += subscriber.nextPacked(64u).toList()
                }
                assertEquals(sent.size, got.size)
                got.forEachIndexed { i, obj ->
                    assertArrayEquals(sent[i], obj.payload)
                    // Object k (the warm-up is 0) is object k % 7 of group k / 7.
                    assertEquals((i + 1) / 7, obj.groupId.toInt())
                    assertEquals((i + 1) % 7, obj.objectId.toInt())
                }
                val bad = assertThrows<MoqException.InvalidArgument> { publisher.publishPacked(ByteArray(4), ByteArray(3)) }
                assertTrue(bad.reason.contains("publish_packed"), bad.reason)
                subscriber.unsubscribe()
                publisher.close()
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = ["moqt", "https"])
    fun `a token passes on the relay's auth path and a missing one is Unauthorized`(scheme: String) = runBlocking {
        val secure = config(scheme).copy(url = url(scheme) + env.getValue("MOQ_RELAY_AUTH_PATH"))
        Client(secure).use { client ->
            val e = assertThrows<MoqException.Unauthorized> { runBlocking { client.connect() } }
            assertTrue(e.reason.contains("refused the credentials"), e.reason)
            client.setToken(env.getValue("MOQ_RELAY_TOKEN"))
            client.connect()
            val ns = unique("auth")
            client.announce(ns)
            client.createPublisher(ns, "t", null).use { publisher ->
                client.subscribe(ns, "t").use { subscriber ->
                    val first = async { subscriber.objects().take(1).toList() }
                    publisher.publish("behind the token".encodeToByteArray())
                    val received = withTimeout(10_000) { first.await() }
                    assertArrayEquals("behind the token".encodeToByteArray(), received.single().payload)
                }
            }
            client.disconnect()
        }
    }

    @ParameterizedTest
    @ValueSource(strings = ["moqt", "https"])
    fun `a draft-16 relay carries objects and the client reports draft 16`(scheme: String) = runBlocking {
        // moq-relay-ietf 0.7.31 as published (#24): this client speaks its draft too.
        val relayEnv = mutableMapOf<String, String>()
        val draft16 = startTestRelay(relayEnv, "--draft16")
        try {
            val url = relayEnv.getValue(if (scheme == "moqt") "MOQ_RELAY_MOQT_URL" else "MOQ_RELAY_HTTPS_URL")
            val relayConfig = clientConfig(url, relayEnv.getValue("MOQ_RELAY_CA_FILE"), useSystemRoots = false)
            connect(relayConfig).use { publisherClient ->
                connect(relayConfig).use { subscriberClient ->
                    assertEquals(16u, publisherClient.negotiatedDraft())
                    val ns = unique("d16")
                    publisherClient.announce(ns)
                    publisherClient.createPublisher(ns, "t", null).use { publisher ->
                        subscriberClient.subscribe(ns, "t").use { sub ->
                            val received = async { sub.objects().take(20).toList() }
                            for (i in 0 until 20) {
                                publisher.publish(payload(i))
                                delay(5) // one group, paced: what a live source does
                            }
                            val got = withTimeout(10_000) { received.await() }
                            assertEquals((0 until 20).toList(), got.map { index(it.payload) })
                        }
                    }
                    subscriberClient.disconnect()
                }
                publisherClient.disconnect()
            }
            // A client offering draft 18 only is refused, with both sides' drafts named.
            Client(relayConfig.copy(drafts = listOf(18u))).use { limited ->
                val e = assertThrows<MoqException.UnsupportedDraft> { runBlocking { limited.connect() } }
                assertTrue(e.reason.contains("speaks draft 16") && e.reason.contains("offered draft 18"), e.reason)
            }
        } finally {
            draft16.outputStream.close()
            draft16.waitFor()
        }
    }

    @Test
    fun `a group cut short upstream is counted by cutGroupCount`() = runBlocking {
        // The peer that misbehaves on purpose: hostile/cut resets group 0 mid-object, then
        // sends group 1 whole.
        val peerEnv = mutableMapOf<String, String>()
        val peer = startTestRelay(peerEnv, "--hostile")
        try {
            val peerConfig = clientConfig(peerEnv.getValue("MOQ_RELAY_MOQT_URL"), peerEnv.getValue("MOQ_RELAY_CA_FILE"), useSystemRoots = false)
            connect(peerConfig).use { client ->
                client.subscribe("hostile", "cut").use { cut ->
                    val received = withTimeout(10_000) { cut.objects().take(1).toList() }
                    assertEquals(1uL, received.single().groupId)
                    assertArrayEquals("whole object after the cut one".encodeToByteArray(), received.single().payload)
                    assertEquals(1uL, cut.cutGroupCount())
                }
                client.disconnect()
            }
        } finally {
            peer.outputStream.close()
            peer.waitFor()
        }
    }

    @Test
    fun `errors are typed with readable messages`() = runBlocking {
        // Untrusted certificate.
        Client(clientConfig(url("moqt"), useSystemRoots = false)).use { client ->
            val e = assertThrows<MoqException.Tls> { runBlocking { client.connect() } }
            assertTrue(e.reason.contains("TLS handshake"), e.reason)
        }
        // Not connected.
        Client(config()).use { client ->
            val e = assertThrows<MoqException.NotConnected> { runBlocking { client.announce("x") } }
            assertTrue(e.reason.contains("connect"), e.reason)
        }
        // Unknown track.
        connect(config().copy(rendezvousTimeoutMs = 300u)).use { client ->
            val e = assertThrows<MoqException.NotFound> { runBlocking { client.subscribe(unique("nobody"), "t") } }
            assertTrue(e.reason.contains("not found"), e.reason)
        }
        // Bad URL.
        val e = assertThrows<MoqException.InvalidArgument> { Client(defaultClientConfig("http://localhost:1")) }
        assertTrue(e.reason.contains("unsupported URL scheme"), e.reason)
    }

    @Test
    fun `unsubscribe stops delivery`() = runBlocking {
        connect(config()).use { client ->
            val ns = unique("stop")
            client.announce(ns)
            client.createPublisher(ns, "t", null).use { publisher ->
                val collector = Collector()
                val subscriber = client.subscribeWithListener(ns, "t", collector)
                publisher.publish("1".encodeToByteArray())
                withTimeout(5_000) { while (collector.objects.isEmpty()) delay(5) }
                subscriber.unsubscribe()
                val count = collector.objects.size
                publisher.publish("2".encodeToByteArray())
                delay(200)
                assertEquals(count, collector.objects.size)
                assertFalse(subscriber.isActive())
                subscriber.close()
            }
        }
    }

    @Test
    fun `cancelling the collecting coroutine unsubscribes`() = runBlocking {
        connect(config()).use { client ->
            val ns = unique("cancel")
            client.announce(ns)
            client.createPublisher(ns, "t", null).use { publisher ->
                val subscriber = client.subscribe(ns, "t")
                val got = AtomicInteger()
                val job = launch { subscriber.objects().collect { got.incrementAndGet() } }
                publisher.publish("a".encodeToByteArray())
                withTimeout(5_000) { while (got.get() == 0) delay(5) }
                job.cancel()
                job.join()
                withTimeout(5_000) { while (subscriber.isActive()) delay(5) }
                assertFalse(subscriber.isActive())
                subscriber.close()
            }
        }
    }

    private fun threadCount() = File("/proc/self/task").list()!!.size

    @Test
    fun `no thread or task is left after everything is closed`() = runBlocking {
        suspend fun cycle() {
            connect(config()).use { client ->
                val ns = unique("clean")
                client.announce(ns)
                client.createPublisher(ns, "t", null).use { publisher ->
                    val collector = Collector()
                    client.subscribeWithListener(ns, "t", collector).use { sub ->
                        publisher.publish("x".encodeToByteArray())
                        withTimeout(5_000) { while (collector.objects.isEmpty()) delay(5) }
                        sub.unsubscribe()
                    }
                }
                client.disconnect()
            }
        }
        cycle()
        System.gc()
        delay(300)
        val baseline = threadCount()
        repeat(3) { cycle() }
        System.gc()
        delay(300)
        assertTrue(threadCount() <= baseline, "threads: ${threadCount()} > $baseline")
    }
}
