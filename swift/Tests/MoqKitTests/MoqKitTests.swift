// XCTest mirror of the Kotlin suite. Needs a relay: run ../target/debug/moq-test-relay and
// export MOQ_RELAY_MOQT_URL, MOQ_RELAY_HTTPS_URL and MOQ_RELAY_CA_FILE from its output.
import Foundation
import XCTest
@testable import MoqKit

final class MoqKitTests: XCTestCase {
    var env: [String: String] { ProcessInfo.processInfo.environment }

    func config(_ scheme: String = "moqt") throws -> ClientConfig {
        let key = scheme == "moqt" ? "MOQ_RELAY_MOQT_URL" : "MOQ_RELAY_HTTPS_URL"
        // Never a skip: a run without a relay fails (scripts/test.d/45-swift.sh provides one).
        guard let url = env[key], let ca = env["MOQ_RELAY_CA_FILE"] else {
            struct NoRelay: Error, CustomStringConvertible {
                var description: String { "start moq-test-relay and export its MOQ_RELAY_* variables" }
            }
            throw NoRelay()
        }
        var config = clientConfig(url: url, caFiles: [ca], useSystemRoots: false)
        config.idleTimeoutMs = 2000
        config.keepAliveIntervalMs = 300
        config.rendezvousTimeoutMs = 2000
        return config
    }

    func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString)" }

    /// The packed-object vectors (tests/vectors/packed-objects.txt, shared with the Rust,
    /// Python and Kotlin tests; 45-swift.sh copies the file in): reading a PackedObjects, and
    /// packPayloads.
    func testPackedVectors() throws {
        let path = try XCTUnwrap(env["MOQ_PACKED_VECTORS"], "45-swift.sh passes MOQ_PACKED_VECTORS")
        func hex(_ field: Substring) -> Data {
            guard field != "-" else { return Data() }
            var bytes = Data()
            var at = field.startIndex
            while at < field.endIndex {
                let next = field.index(at, offsetBy: 2)
                bytes.append(UInt8(field[at..<next], radix: 16)!)
                at = next
            }
            return bytes
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        XCTAssertGreaterThanOrEqual(lines.count, 5, "the vectors file lost cases")
        for line in lines {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            XCTAssertEqual(fields.count, 5, String(line))
            let name = String(fields[0])
            let objects: [ReceivedObject] = fields[1] == "-" ? [] : fields[1].split(separator: ",").map { entry in
                let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
                return ReceivedObject(groupId: UInt64(parts[0])!, objectId: UInt64(parts[1])!, payload: hex(parts[2]))
            }
            let packed = PackedObjects(payloads: hex(fields[2]), index: hex(fields[3]))
            XCTAssertEqual(packed.count, objects.count, name)
            XCTAssertEqual(packed.objects, objects, name)
            let (joined, lengths) = packPayloads(objects.map { $0.payload })
            XCTAssertEqual(joined, hex(fields[2]), name)
            XCTAssertEqual(lengths, hex(fields[4]), name)
        }
    }

    func testTheLibraryReportsTheProjectVersion() throws {
        // One version on every face: the crate's (Cargo.toml, passed by 45-swift.sh).
        let expected = try XCTUnwrap(env["MOQ_EXPECTED_VERSION"], "45-swift.sh passes MOQ_EXPECTED_VERSION")
        XCTAssertEqual(version(), "moq_ffi \(expected)")
    }

    func testConnectsOverBothSchemes() async throws {
        for scheme in ["moqt", "https"] {
            let client = try Client(config: try config(scheme))
            try await client.connect()
            XCTAssertTrue(client.isConnected())
            // The MoQT draft agreed in the handshake (#24): 18, and none once disconnected.
            XCTAssertEqual(client.negotiatedDraft(), 18)
            await client.disconnect()
            XCTAssertEqual(client.state(), .disconnected)
            XCTAssertNil(client.negotiatedDraft())
        }
    }

    func testPublishSubscribeByteExactThroughAsyncSequence() async throws {
        let client = try Client(config: try config())
        try await client.connect()
        let ns = unique("exact")
        try await client.announce(namespace: ns)
        let publisher = try client.createPublisher(namespace: ns, track: "t", options: nil)
        let subscriber = try await client.subscribe(namespace: ns, track: "t")
        let sent = [Data(), Data("hello".utf8), Data((0..<256).map { UInt8($0) })]
        for data in sent { _ = try publisher.publish(payload: data) }
        var received: [Data] = []
        for try await object in subscriber.objects() {
            received.append(object.payload)
            if received.count == sent.count { break }
        }
        XCTAssertEqual(received, sent)
        await client.disconnect()
    }

    func testBurstOf10000ArrivesCompleteAndInOrder() async throws {
        let client = try Client(config: try config())
        try await client.connect()
        let ns = unique("burst")
        try await client.announce(namespace: ns)
        let publisher = try client.createPublisher(namespace: ns, track: "t", options: nil)
        let subscriber = try await client.subscribe(namespace: ns, track: "t")
        for i in 0..<10_000 { _ = try publisher.publish(payload: withUnsafeBytes(of: UInt32(i)) { Data($0) }) }
        var next: UInt32 = 0
        for try await object in subscriber.objects() {
            XCTAssertEqual(object.payload.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }, next)
            next += 1
            if next == 10_000 { break }
        }
        await client.disconnect()
    }

    func testTryNextTakesWhatHasArrivedWithoutWaitingInOrderWithNext() async throws {
        let client = try Client(config: try config())
        try await client.connect()
        let ns = unique("try")
        try await client.announce(namespace: ns)
        let publisher = try client.createPublisher(namespace: ns, track: "t", options: nil)
        let subscriber = try await client.subscribe(namespace: ns, track: "t")
        XCTAssertNil(try subscriber.tryNext(), "nothing yet: returns at once")
        let sent = (0..<20).map { Data("object \($0)".utf8) }
        try publisher.publishMany(payloads: sent)
        let first = try await subscriber.next()
        var got = [try XCTUnwrap(first).payload]
        let deadline = Date().addingTimeInterval(10)
        while got.count < sent.count && Date() < deadline {
            if let object = try subscriber.tryNext() {
                got.append(object.payload)
            } else {
                try await Task.sleep(nanoseconds: 10_000_000)
            }
        }
        XCTAssertEqual(got, sent)
        XCTAssertNil(try subscriber.tryNext())
        await subscriber.unsubscribe()
        await client.disconnect()
    }

    func testStatsCountWhatASubscriptionReceived() async throws {
        let idle = try Client(config: try config())
        XCTAssertEqual(idle.stats().state, .disconnected)
        XCTAssertNil(idle.stats().draft)
        let client = try Client(config: try config())
        try await client.connect()
        let ns = unique("stats")
        try await client.announce(namespace: ns)
        let publisher = try client.createPublisher(namespace: ns, track: "t", options: nil)
        let subscriber = try await client.subscribe(namespace: ns, track: "t")
        XCTAssertEqual(subscriber.stats().objectsReceived, 0)
        XCTAssertNil(subscriber.stats().currentGroup)
        let sent = (0..<100).map { Data(repeating: UInt8($0), count: 1000) }
        try publisher.publishMany(payloads: sent)
        for _ in sent { _ = try await subscriber.next() }
        let stats = subscriber.stats()
        XCTAssertEqual(stats.objectsReceived, 100)
        XCTAssertEqual(stats.bytesReceived, 100_000)
        XCTAssertEqual(stats.bufferedObjects, 0)
        XCTAssertNotNil(stats.currentGroup)
        let connection = client.stats()
        XCTAssertEqual(connection.state, .connected)
        XCTAssertEqual(connection.draft, 18)
        XCTAssertGreaterThan(connection.rttUs, 0)
        XCTAssertGreaterThan(connection.congestionWindow, 0)
        // One client published and received the same 100 kB through the relay.
        XCTAssertGreaterThanOrEqual(connection.bytesSent, 100_000)
        XCTAssertGreaterThanOrEqual(connection.bytesReceived, 100_000)
        await subscriber.unsubscribe()
        await client.disconnect()
    }

    func testFetchReturnsTheKeptGroupsInOrderAndSaysWhatIsNotAvailable() async throws {
        let client = try Client(config: try config())
        try await client.connect()
        let ns = unique("fetch")
        try await client.announce(namespace: ns)
        let options = PublisherOptions(delivery: .stream, retainGroups: 2)
        let publisher = try client.createPublisher(namespace: ns, track: "t", options: options)
        func payload(_ i: Int) -> Data { Data(repeating: UInt8(i), count: 100) }
        for g in 0..<4 {
            if g > 0 { try publisher.newGroup() }
            for o in 0..<3 { _ = try publisher.publish(payload: payload(g * 3 + o)) }
        }
        // Through the relay to this client's own publisher, which keeps groups 2 and 3.
        let response = try await client.fetch(
            namespace: ns, track: "t", range: FetchRange(startGroup: 0, endGroup: 3))
        var got: [ReceivedObject] = []
        while let object = try await response.next() { got.append(object) }
        XCTAssertEqual(got.map { [$0.groupId, $0.objectId] },
                       [[2, 0], [2, 1], [2, 2], [3, 0], [3, 1], [3, 2]])
        for object in got {
            XCTAssertEqual(object.payload, payload(Int(object.groupId * 3 + object.objectId)))
        }
        do {
            _ = try await client.fetch(
                namespace: ns, track: "t", range: FetchRange(startGroup: 0, endGroup: 1))
            XCTFail("groups 0 and 1 are not kept")
        } catch MoqError.NotFound(let reason) {
            XCTAssertTrue(reason.contains("groups 2 to 3 are kept"), reason)
        }
        publisher.finish()
        await client.disconnect()
    }

    func testPublishAsyncThroughASmallQueueWaitsForRoomAndLosesNothing() async throws {
        XCTAssertEqual(PublisherOptions(delivery: .stream).maxQueuedBytes, 16 * 1024 * 1024)
        let client = try Client(config: try config())
        try await client.connect()
        let ns = unique("queue")
        try await client.announce(namespace: ns)
        let options = PublisherOptions(delivery: .stream, maxQueuedBytes: 256 * 1024)
        let publisher = try client.createPublisher(namespace: ns, track: "t", options: options)
        let subscriber = try await client.subscribe(namespace: ns, track: "t")
        let size = 100_000
        func object(_ index: Int) -> Data {
            var data = Data(count: size)
            data.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(index).littleEndian, as: UInt32.self) }
            return data
        }
        // 20 MB through a 256 KiB queue.
        let reader = Task { () throws -> [Data] in
            var got: [Data] = []
            for try await received in subscriber.objects() {
                got.append(received.payload)
                if got.count == 200 { break }
            }
            return got
        }
        var peak: UInt64 = 0
        for index in 0..<200 {
            let location = try await publisher.publishAsync(payload: object(index))
            XCTAssertEqual(location.objectId, UInt64(index))
            peak = max(peak, publisher.queuedBytes())
        }
        let got = try await reader.value
        XCTAssertEqual(got, (0..<200).map(object))
        XCTAssertLessThanOrEqual(peak, UInt64(256 * 1024 + size))
        await client.disconnect()
    }

    func testPackedPublishAndReceiveAreByteExact() async throws {
        let client = try Client(config: try config())
        try await client.connect()
        let ns = unique("packed")
        try await client.announce(namespace: ns)
        let publisher = try client.createPublisher(namespace: ns, track: "t", options: nil)
        let subscriber = try await client.subscribe(namespace: ns, track: "t")
        let sent = [Data(), Data("hello".utf8), Data((0..<256).map { UInt8($0) })]
        try publisher.publishPacked(sent)
        var received: [ReceivedObject] = []
        while received.count < sent.count {
            received += try await subscriber.nextPacked(max: 16).objects
        }
        XCTAssertEqual(received.map { $0.payload }, sent)
        XCTAssertEqual(received.map { $0.objectId }, [0, 1, 2])
        await client.disconnect()
    }

    func testATokenPassesOnTheAuthPathAndAMissingOneIsUnauthorized() async throws {
        var secure = try config("https")
        secure.url += env["MOQ_RELAY_AUTH_PATH"] ?? "(MOQ_RELAY_AUTH_PATH not set)"
        let client = try Client(config: secure)
        do {
            try await client.connect()
            XCTFail("connected without the token")
        } catch MoqError.Unauthorized(let reason) {
            XCTAssertTrue(reason.contains("refused the credentials"), reason)
        }
        try client.setToken(token: env["MOQ_RELAY_TOKEN"])
        try await client.connect()
        XCTAssertTrue(client.isConnected())
        try await client.announce(namespace: unique("auth"))
        await client.disconnect()
    }

    func testAGroupCutShortUpstreamIsCounted() async throws {
        // The hostile peer (scripts/test.d/45-swift.sh starts it): hostile/cut resets group 0
        // mid-object, then sends group 1 whole.
        guard let url = env["MOQ_HOSTILE_MOQT_URL"], let ca = env["MOQ_HOSTILE_CA_FILE"] else {
            XCTFail("MOQ_HOSTILE_MOQT_URL / MOQ_HOSTILE_CA_FILE not set")
            return
        }
        let client = try Client(config: clientConfig(url: url, caFiles: [ca], useSystemRoots: false))
        try await client.connect()
        let cut = try await client.subscribe(namespace: "hostile", track: "cut")
        for try await object in cut.objects() {
            XCTAssertEqual(object.groupId, 1)
            XCTAssertEqual(object.payload, Data("whole object after the cut one".utf8))
            break
        }
        XCTAssertEqual(cut.cutGroupCount(), 1)
        await client.disconnect()
    }

    func testADraft16RelayCarriesObjectsAndTheClientReportsDraft16() async throws {
        // moq-relay-ietf 0.7.31 as published (scripts/test.d/45-swift.sh starts it): this
        // client speaks its draft too (#24).
        guard let url = env["MOQ_DRAFT16_MOQT_URL"], let ca = env["MOQ_DRAFT16_CA_FILE"] else {
            XCTFail("MOQ_DRAFT16_MOQT_URL / MOQ_DRAFT16_CA_FILE not set")
            return
        }
        let relayConfig = clientConfig(url: url, caFiles: [ca], useSystemRoots: false)
        let publisherClient = try Client(config: relayConfig)
        let subscriberClient = try Client(config: relayConfig)
        try await publisherClient.connect()
        try await subscriberClient.connect()
        XCTAssertEqual(publisherClient.negotiatedDraft(), 16)
        let ns = unique("d16")
        try await publisherClient.announce(namespace: ns)
        let publisher = try publisherClient.createPublisher(namespace: ns, track: "t", options: nil)
        let subscriber = try await subscriberClient.subscribe(namespace: ns, track: "t")
        let reader = Task { () throws -> [UInt32] in
            var got: [UInt32] = []
            for try await object in subscriber.objects() {
                got.append(object.payload.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
                if got.count == 20 { break }
            }
            return got
        }
        for i in 0..<20 {
            _ = try publisher.publish(payload: withUnsafeBytes(of: UInt32(i)) { Data($0) })
            try await Task.sleep(nanoseconds: 5_000_000) // one group, paced, as a live source
        }
        let got = try await reader.value
        XCTAssertEqual(got, (0..<20).map { UInt32($0) })
        await subscriberClient.disconnect()
        await publisherClient.disconnect()
        // A client offering draft 18 only is refused, with both sides' drafts named.
        var limited = relayConfig
        limited.drafts = [18]
        do {
            try await Client(config: limited).connect()
            XCTFail("connected without a draft in common")
        } catch MoqError.UnsupportedDraft(let reason) {
            XCTAssertTrue(reason.contains("speaks draft 16") && reason.contains("offered draft 18"), reason)
        }
    }

    func testTypedErrors() async throws {
        var untrusted = try config()
        untrusted.tls = TlsOptions(useSystemRoots: false, extraCaPem: [], extraCaFiles: [], pinnedSha256: [], dangerAcceptAnyCertificate: false)
        do {
            try await Client(config: untrusted).connect()
            XCTFail("connected without trusting the relay")
        } catch MoqError.Tls(let reason) {
            XCTAssertTrue(reason.contains("TLS handshake"))
        }
        do {
            try await Client(config: try config()).announce(namespace: "x")
            XCTFail("announced while not connected")
        } catch MoqError.NotConnected(let reason) {
            XCTAssertTrue(reason.contains("connect"))
        }
        var quick = try config()
        quick.rendezvousTimeoutMs = 300
        let client = try Client(config: quick)
        try await client.connect()
        do {
            _ = try await client.subscribe(namespace: unique("nobody"), track: "t")
            XCTFail("subscribed to a track nobody publishes")
        } catch MoqError.NotFound(let reason) {
            XCTAssertTrue(reason.contains("not found"), reason)
        }
        await client.disconnect()
        do {
            _ = try Client(config: defaultClientConfig(url: "http://localhost:1"))
            XCTFail("accepted an http:// URL")
        } catch MoqError.InvalidArgument(let reason) {
            XCTAssertTrue(reason.contains("unsupported URL scheme"), reason)
        }
    }

    /// Wait (bounded) until `condition` holds.
    func eventually(_ what: String, within seconds: Double = 10, _ condition: () -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > deadline {
                XCTFail("not within \(seconds) s: \(what)")
                return
            }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
    }

    final class Collector: ObjectListener, @unchecked Sendable {
        private let lock = NSLock()
        private var received: [ReceivedObject] = []
        var count: Int { lock.lock(); defer { lock.unlock() }; return received.count }
        func onObjects(objects: [ReceivedObject]) throws {
            lock.lock(); received += objects; lock.unlock()
        }
        func onEnd(error: String?) throws {}
    }

    func testUnsubscribeStopsDelivery() async throws {
        let client = try Client(config: try config())
        try await client.connect()
        let ns = unique("stop")
        try await client.announce(namespace: ns)
        let publisher = try client.createPublisher(namespace: ns, track: "t", options: nil)
        let collector = Collector()
        let subscriber = try await client.subscribeWithListener(namespace: ns, track: "t", listener: collector)
        _ = try publisher.publish(payload: Data("1".utf8))
        try await eventually("the first object arrived") { collector.count == 1 }
        await subscriber.unsubscribe()
        _ = try publisher.publish(payload: Data("2".utf8))
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertEqual(collector.count, 1, "delivered after unsubscribe() returned")
        XCTAssertFalse(subscriber.isActive())
        await client.disconnect()
    }

    func testCancellingTheIteratingTaskUnsubscribes() async throws {
        let client = try Client(config: try config())
        try await client.connect()
        let ns = unique("cancel")
        try await client.announce(namespace: ns)
        let publisher = try client.createPublisher(namespace: ns, track: "t", options: nil)
        let subscriber = try await client.subscribe(namespace: ns, track: "t")
        let got = Collector()
        let task = Task {
            for try await object in subscriber.objects() { try got.onObjects(objects: [object]) }
        }
        _ = try publisher.publish(payload: Data("a".utf8))
        try await eventually("the first object arrived") { got.count == 1 }
        task.cancel()
        _ = try? await task.value
        try await eventually("cancelling the iteration unsubscribed") { !subscriber.isActive() }
        await client.disconnect()
    }

    /// Needs the test step's relay control (MOQ_RELAY_CONTROL: a FIFO the relay reads its
    /// commands from).
    func testReconnectResumesTheSubscriptionAfterTheRelayRestarts() async throws {
        guard let control = env["MOQ_RELAY_CONTROL"] else {
            struct NoControl: Error, CustomStringConvertible {
                var description: String { "MOQ_RELAY_CONTROL (the relay's command FIFO) is not set" }
            }
            throw NoControl()
        }
        var reconnecting = try config()
        reconnecting.reconnect = ReconnectPolicy(initialDelayMs: 100, maxDelayMs: 400, maxAttempts: 0)
        reconnecting.rendezvousTimeoutMs = 10_000
        let publishing = try Client(config: reconnecting)
        let subscribing = try Client(config: reconnecting)
        try await publishing.connect()
        try await subscribing.connect()
        let ns = unique("reconnect")
        try await publishing.announce(namespace: ns)
        let publisher = try publishing.createPublisher(namespace: ns, track: "t", options: nil)
        let collector = Collector()
        let subscriber = try await subscribing.subscribeWithListener(namespace: ns, track: "t", listener: collector)
        _ = try publisher.publish(payload: Data("before".utf8))
        try await eventually("the object before the restart arrived") { collector.count == 1 }

        let fifo = try XCTUnwrap(FileHandle(forWritingAtPath: control))
        fifo.write(Data("restart\n".utf8))
        try fifo.close()
        try await eventually("the subscriber noticed the restart", within: 20) {
            subscribing.state() != .connected
        }
        try await eventually("both clients reconnected", within: 30) {
            publishing.state() == .connected && subscribing.state() == .connected
        }
        // Published until one arrives: the subscription is restored a moment after the session.
        let deadline = Date().addingTimeInterval(30)
        while collector.count < 2 && Date() < deadline {
            _ = try? publisher.publish(payload: Data("after".utf8))
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTAssertGreaterThanOrEqual(collector.count, 2, "nothing arrived after the reconnect")
        XCTAssertTrue(subscriber.isActive())
        await subscriber.unsubscribe()
        await subscribing.disconnect()
        await publishing.disconnect()
    }

    #if os(Linux)
    func threadCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
    }

    func testNoThreadIsLeftAfterEverythingIsClosed() async throws {
        func cycle() async throws {
            let client = try Client(config: try config())
            try await client.connect()
            let ns = unique("clean")
            try await client.announce(namespace: ns)
            let publisher = try client.createPublisher(namespace: ns, track: "t", options: nil)
            let collector = Collector()
            let subscriber = try await client.subscribeWithListener(namespace: ns, track: "t", listener: collector)
            _ = try publisher.publish(payload: Data("x".utf8))
            try await eventually("the object arrived") { collector.count == 1 }
            await subscriber.unsubscribe()
            await client.disconnect()
        }
        try await cycle()
        try await Task.sleep(nanoseconds: 300_000_000)
        let baseline = try threadCount()
        for _ in 0..<3 { try await cycle() }
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertLessThanOrEqual(try threadCount(), baseline, "threads left behind")
    }
    #endif
}
