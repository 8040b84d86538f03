// Sample: connect to a relay, publish a few objects on a track and print what a subscriber
// receives. Usage: Sample <relay-url> [ca-file]
package dev.moqkit.sample

import dev.moqkit.clientConfig
import dev.moqkit.connect
import dev.moqkit.objects
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking

fun main(args: Array<String>) = runBlocking {
    val url = args.getOrNull(0) ?: error("usage: Sample <relay-url> [ca-file]")
    val config = clientConfig(url, *args.drop(1).toTypedArray())
    connect(config).use { client ->
        client.announce("sample")
        client.createPublisher("sample", "greetings", null).use { publisher ->
            client.subscribe("sample", "greetings").use { subscriber ->
                val received = async { subscriber.objects().take(5).toList() }
                for (i in 1..5) publisher.publish("hello #$i from Kotlin".encodeToByteArray())
                for (obj in received.await()) {
                    println("received group ${obj.groupId} object ${obj.objectId}: ${obj.payload.decodeToString()}")
                }
            }
        }
        client.disconnect()
    }
    println("done")
}
