// Idiomatic Swift over the generated bindings.
import Foundation

/// A subscription's objects as an `AsyncSequence`, pulled in batches (one native call per
/// batch). Iteration ends when the track ends and throws `MoqError` if it ends abnormally.
/// Cancelling the iterating task unsubscribes.
public struct MoqObjects: AsyncSequence {
    public typealias Element = ReceivedObject
    let subscriber: Subscriber
    let batchSize: UInt32

    public struct AsyncIterator: AsyncIteratorProtocol {
        let subscriber: Subscriber
        let batchSize: UInt32
        var buffer: [ReceivedObject] = []
        var index = 0

        public mutating func next() async throws -> ReceivedObject? {
            if index < buffer.count {
                defer { index += 1 }
                return buffer[index]
            }
            let subscriber = self.subscriber
            let size = batchSize
            let batch = try await withTaskCancellationHandler {
                try await subscriber.nextBatch(max: size)
            } onCancel: {
                subscriber.unsubscribeBlocking()
            }
            if batch.isEmpty || Task.isCancelled {
                return nil
            }
            buffer = batch
            index = 1
            return batch[0]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(subscriber: subscriber, batchSize: batchSize)
    }
}

extension Subscriber {
    /// This subscription's objects, in order, as an `AsyncSequence`.
    public func objects(batchSize: UInt32 = 512) -> MoqObjects {
        MoqObjects(subscriber: self, batchSize: batchSize)
    }
}

/// A configuration for `url` trusting the system roots plus the given CA files.
public func clientConfig(url: String, caFiles: [String] = [], useSystemRoots: Bool = true) -> ClientConfig {
    var config = defaultClientConfig(url: url)
    config.tls = TlsOptions(
        useSystemRoots: useSystemRoots,
        extraCaPem: [],
        extraCaFiles: caFiles,
        pinnedSha256: [],
        dangerAcceptAnyCertificate: false
    )
    return config
}

/// Bytes per object in `PackedObjects.index`: group id (u64), object id (u64), length (u32).
public let packedIndexEntry = 20

extension PackedObjects {
    /// How many objects this packed batch holds.
    public var count: Int { index.count / packedIndexEntry }

    /// The objects of this packed batch as records, in order (payloads are copies).
    public var objects: [ReceivedObject] {
        var result: [ReceivedObject] = []
        result.reserveCapacity(count)
        let entries = [UInt8](index)
        var start = payloads.startIndex
        for entry in 0..<count {
            let at = entry * packedIndexEntry
            func little<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
                var value: T = 0
                for byte in 0..<MemoryLayout<T>.size {
                    value |= T(entries[at + offset + byte]) << (8 * byte)
                }
                return value
            }
            let length = Int(little(16, UInt32.self))
            let end = start + length
            precondition(end <= payloads.endIndex, "packed index does not match its payloads")
            result.append(ReceivedObject(groupId: little(0, UInt64.self), objectId: little(8, UInt64.self),
                                         payload: payloads.subdata(in: start..<end)))
            start = end
        }
        return result
    }
}

extension Publisher {
    /// Publish `payloads` in order with one native call, in packed form (one buffer instead of
    /// one per object). Errors like `publishMany`.
    public func publishPacked(_ payloads: [Data]) throws {
        let (joined, lengths) = packPayloads(payloads)
        try publishPacked(payloads: joined, lengths: lengths)
    }
}

/// `payloads` in the packed form `Publisher.publishPacked(payloads:lengths:)` takes: the
/// payloads back to back, and one little-endian UInt32 length per payload.
public func packPayloads(_ payloads: [Data]) -> (payloads: Data, lengths: Data) {
    var joined = Data()
    var lengths = Data(capacity: 4 * payloads.count)
    for payload in payloads {
        joined.append(payload)
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { lengths.append(contentsOf: $0) }
    }
    return (joined, lengths)
}
