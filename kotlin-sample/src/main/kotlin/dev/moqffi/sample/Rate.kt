// Delivery-rate measurement for the Kotlin path: N objects of 100 B published as fast as
// possible, received through the batch Flow. Usage: Rate <relay-url> <ca-file> [count] [runs]
package dev.moqffi.sample

import dev.moqffi.batches
import dev.moqffi.clientConfig
import dev.moqffi.connect
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.takeWhile
import kotlinx.coroutines.flow.collect
import kotlinx.coroutines.runBlocking

fun main(args: Array<String>) = runBlocking {
    val url = args[0]
    val config = clientConfig(url, args[1], useSystemRoots = false)
    val count = args.getOrNull(2)?.toInt() ?: 10_000
    val runs = args.getOrNull(3)?.toInt() ?: 5
    val rates = mutableListOf<Double>()
    repeat(runs) { run ->
        connect(config).use { pub ->
            connect(config).use { sub ->
                val ns = "rate-${ProcessHandle.current().pid()}-$run"
                pub.announce(ns)
                val publisher = pub.createPublisher(ns, "t", null)
                val subscriber = sub.subscribe(ns, "t")
                val payload = ByteArray(100)
                var received = 0
                val done = async {
                    subscriber.batches(1024).takeWhile { batch ->
                        received += batch.size
                        received < count
                    }.collect()
                }
                val started = System.nanoTime()
                val chunk = List(100) { payload }
                repeat(count / 100) { publisher.publishMany(chunk) }
                done.await()
                val seconds = (System.nanoTime() - started) / 1e9
                rates += count / seconds
                publisher.close()
                pub.disconnect()
                sub.disconnect()
            }
        }
    }
    rates.sort()
    println("kotlin batch-flow: ${"%.0f".format(rates[rates.size / 2])} objects/s (median of $runs, $count x 100 B)")
}
