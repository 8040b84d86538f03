// Sample: connect to a relay, publish a few objects and print what a subscriber receives.
// Usage: swift run MoqSample <relay-url> [ca-file]
import Foundation
import MoqKit

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print("usage: MoqSample <relay-url> [ca-file]")
    exit(2)
}
let client = try Client(config: clientConfig(url: arguments[1], caFiles: Array(arguments.dropFirst(2))))
try await client.connect()
try await client.announce(namespace: "sample")
let publisher = try client.createPublisher(namespace: "sample", track: "greetings", options: nil)
let subscriber = try await client.subscribe(namespace: "sample", track: "greetings")
for i in 1...5 {
    _ = try publisher.publish(payload: Data("hello #\(i) from Swift".utf8))
}
var received = 0
for try await object in subscriber.objects() {
    print("received group \(object.groupId) object \(object.objectId): \(String(decoding: object.payload, as: UTF8.self))")
    received += 1
    if received == 5 { break }
}
await subscriber.unsubscribe()
await client.disconnect()
