// XCTest mirror of the Kotlin suite. Needs a relay: run ../target/debug/moq-test-relay and
// export MOQ_RELAY_MOQT_URL, MOQ_RELAY_HTTPS_URL and MOQ_RELAY_CA_FILE from its output.
import Foundation
import XCTest
@testable import MoqFFI

final class MoqFFITests: XCTestCase {
    var env: [String: String] { ProcessInfo.processInfo.environment }

    func config(_ scheme: String = "moqt") throws -> ClientConfig {
        let key = scheme == "moqt" ? "MOQ_RELAY_MOQT_URL" : "MOQ_RELAY_HTTPS_URL"
        guard let url = env[key], let ca = env["MOQ_RELAY_CA_FILE"] else {
            throw XCTSkip("start moq-test-relay and export its MOQ_RELAY_* variables")
        }
        var config = clientConfig(url: url, caFiles: [ca], useSystemRoots: false)
        config.idleTimeoutMs = 2000
        config.keepAliveIntervalMs = 300
        config.rendezvousTimeoutMs = 2000
        return config
    }

    func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString)" }

    func testConnectsOverBothSchemes() async throws {
        for scheme in ["moqt", "https"] {
            let client = try Client(config: try config(scheme))
            try await client.connect()
            XCTAssertTrue(client.isConnected())
            await client.disconnect()
            XCTAssertEqual(client.state(), .disconnected)
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
            XCTAssertEqual(object.payload.withUnsafeBytes { $0.load(as: UInt32.self) }, next)
            next += 1
            if next == 10_000 { break }
        }
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
    }
}
