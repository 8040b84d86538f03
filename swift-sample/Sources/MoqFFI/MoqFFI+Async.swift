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
