// Benchmark path program for the Swift layer (the generated bindings + MoqKit+Async.swift).
// Usage: MoqBench <burst|paced|datagram|publish> <count> <size>; run it through bench/swift.sh.
// Environment: MOQ_RELAY_MOQT_URL (raw-QUIC relay URL), MOQ_RELAY_CA_FILE (the only CA trusted).
// Prints exactly one `RESULT {json}` line on stdout (everything else goes to stderr) and exits
// 0 on success, 1 on any failure. The protocol every path follows: bench/README.md.
//
// Payload layout: bytes [0..8) object index (LE u64); for paced/datagram [8..16) the send time
// in ns of this process's monotonic clock (LE u64); the rest zero.
import Dispatch
import Foundation
import MoqKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Objects pulled per native call on the receive side (one FFI crossing per batch).
let receiveBatch: UInt32 = 1024
/// burst: objects per publishMany call, capped so one call carries about 1 MiB.
let publishChunk = 100
let publishChunkBytes = 1 << 20
/// burst: how long to wait for the last object after the last publish call.
let burstWait: DispatchTimeInterval = .seconds(60)
/// paced/datagram: how long to wait after the last publish (fixed by the protocol).
let pacedWait: DispatchTimeInterval = .seconds(10)
let pacedIntervalNs: UInt64 = 1_000_000
/// publish: rounds of the microbenchmark; the median round is reported.
let publishRounds = 10

enum Workload: String {
    case burst, paced, datagram, publish
    var minSize: Int { self == .burst ? 8 : self == .publish ? 0 : 16 }
}

struct BenchFailure: Error { let message: String }

/// Monotonic time in ns (CLOCK_MONOTONIC on Linux, mach_absolute_time on Apple platforms).
func nowNs() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// CPU time (user + sys, all threads, native ones included) of this process, in ns.
func processCpuNs() -> UInt64 {
    var ts = timespec()
    guard clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0 else { return 0 }
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func putU64(_ data: inout Data, _ offset: Int, _ value: UInt64) {
    // storeBytes on a raw buffer has no alignment requirement (SE-0349).
    data.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self) }
}

func getU64(_ data: Data, _ offset: Int) -> UInt64 {
    // A Data payload's bytes need not be aligned: loadUnaligned, never load.
    UInt64(littleEndian: data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) })
}

/// JSON with fixed formatting ('.' as the decimal separator whatever the locale).
func json(_ fields: [(String, Any)]) -> String {
    "{" + fields.map { key, value in
        let shown = value is Double ? String(format: "%.6f", value as! Double) : "\(value)"
        return "\"\(key)\": \(shown)"
    }.joined(separator: ", ") + "}"
}

/// Nearest-rank percentile of a sorted, non-empty array: the ceil(p/100 * n)-th smallest.
func percentile(_ sorted: [UInt64], _ p: Int) -> UInt64 {
    sorted[max(1, (p * sorted.count + 99) / 100) - 1]
}

/// What the subscriber saw. Written only by the receiving task; read by the main thread after
/// `done` was signalled (the semaphore orders the writes before the reads).
final class Receiver: @unchecked Sendable {
    let workload: Workload
    let count: Int
    let size: Int
    var received = 0
    var nextIndex: UInt64 = 0
    var latencyNs: [UInt64] = []
    var seen: [Bool]
    var doneNs: UInt64 = 0
    var doneCpuNs: UInt64 = 0
    var failure: String?
    let done = DispatchSemaphore(value: 0)

    init(_ workload: Workload, count: Int, size: Int) {
        self.workload = workload
        self.count = count
        self.size = size
        seen = workload == .datagram ? Array(repeating: false, count: count) : []
        if workload != .burst { latencyNs.reserveCapacity(count) }
    }

    /// Account for one batch; returns whether more objects are wanted.
    func accept(_ batch: [ReceivedObject]) -> Bool {
        // The whole batch became visible to the application at this moment.
        let now = nowNs()
        for object in batch {
            guard check(object) else { return false }
            if workload != .burst { latencyNs.append(now &- getU64(object.payload, 8)) }
            received += 1
            if received == count {
                doneNs = now
                doneCpuNs = processCpuNs()
                return false
            }
        }
        return true
    }

    private func check(_ object: ReceivedObject) -> Bool {
        if object.payload.count != size {
            failure = "object \(received) has \(object.payload.count) bytes, expected \(size)"
            return false
        }
        let index = getU64(object.payload, 0)
        if workload == .datagram {
            // Lossy: gaps are allowed; a duplicate or an index never sent is a library bug.
            guard index < UInt64(count), !seen[Int(index)] else {
                failure = "datagram index \(index) is a duplicate or out of range"
                return false
            }
            seen[Int(index)] = true
        } else if index != nextIndex {
            failure = "object \(nextIndex) carries index \(index) (out of order or missing)"
            return false
        }
        nextIndex = index + 1
        return true
    }

    /// Pull batches on a task of the cooperative pool until everything arrived or it failed.
    func start(_ subscriber: Subscriber) -> Task<Void, Never> {
        Task.detached { [self] in
            defer { done.signal() }
            do {
                while true {
                    let batch = try await subscriber.nextBatch(max: receiveBatch)
                    // Empty: unsubscribed by finish (or the track ended): the counts tell.
                    if batch.isEmpty || !accept(batch) { return }
                }
            } catch {
                failure = "subscription ended: \(error)"
            }
        }
    }

    /// Wait up to `timeout` for the receiver, then stop it (unsubscribing ends its pull).
    func finish(_ task: Task<Void, Never>, _ subscriber: Subscriber, timeout: DispatchTimeInterval) async {
        if done.wait(timeout: .now() + timeout) == .timedOut {
            subscriber.unsubscribeBlocking()
            done.wait()
        }
        await task.value
    }
}

func burst(_ publisher: Publisher, _ subscriber: Subscriber, count: Int, size: Int) async throws -> String {
    let rx = Receiver(.burst, count: count, size: size)
    let task = rx.start(subscriber)
    // One reusable chunk: publishMany copies the payloads before it returns.
    let chunkSize = min(publishChunk, max(1, publishChunkBytes / max(size, 1)))
    var chunk = Array(repeating: Data(count: size), count: chunkSize)
    let t0 = nowNs()
    let cpu0 = processCpuNs()
    var sent = 0
    while sent < count {
        let n = min(chunkSize, count - sent)
        for k in 0..<n { putU64(&chunk[k], 0, UInt64(sent + k)) }
        try publisher.publishMany(payloads: n == chunkSize ? chunk : Array(chunk[0..<n]))
        sent += n
    }
    await rx.finish(task, subscriber, timeout: burstWait)
    if let failure = rx.failure { throw BenchFailure(message: failure) }
    if rx.received != count { throw BenchFailure(message: "received \(rx.received) of \(count) objects") }
    let seconds = Double(max(rx.doneNs - t0, 1)) / 1e9
    return json([
        ("objects_per_s", Double(count) / seconds),
        ("mb_per_s", Double(count) * Double(size) / seconds / 1e6),
        ("cpu_s", Double(rx.doneCpuNs - cpu0) / 1e9),
        ("received", rx.received),
    ])
}

func paced(_ workload: Workload, _ publisher: Publisher, _ subscriber: Subscriber, count: Int, size: Int) async throws -> String {
    let rx = Receiver(workload, count: count, size: size)
    let task = rx.start(subscriber)
    var payload = Data(count: size)
    let t0 = nowNs()
    for i in 0..<count {
        // Absolute schedule: a late wake-up does not shift later objects. Blocking this thread
        // is fine: the receiver runs on the cooperative pool.
        let due = t0 + UInt64(i) * pacedIntervalNs
        while case let now = nowNs(), now < due {
            let wait = due - now
            var ts = timespec(tv_sec: Int(wait / 1_000_000_000), tv_nsec: Int(wait % 1_000_000_000))
            nanosleep(&ts, nil)
        }
        putU64(&payload, 0, UInt64(i))
        putU64(&payload, 8, nowNs())
        _ = try publisher.publish(payload: payload)
    }
    await rx.finish(task, subscriber, timeout: pacedWait)
    if let failure = rx.failure { throw BenchFailure(message: failure) }
    let received = rx.received
    if workload == .datagram && received < count {
        let lost = (0..<count).filter { !rx.seen[$0] }
        let shown = lost.prefix(16).map(String.init).joined(separator: " ") + (lost.count > 16 ? " ..." : "")
        FileHandle.standardError.write(Data("bench: \(lost.count) of \(count) datagrams lost: \(shown)\n".utf8))
    }
    if workload == .paced && received != count { throw BenchFailure(message: "received \(received) of \(count) objects") }
    if received == 0 { throw BenchFailure(message: "no object received: latency percentiles undefined") }
    let latencies = rx.latencyNs.sorted()
    let p50 = Double(percentile(latencies, 50)) / 1e3
    let p99 = Double(percentile(latencies, 99)) / 1e3
    if workload == .datagram {
        return json([("ratio", Double(received) / Double(count)), ("p50_us", p50), ("p99_us", p99), ("received", received)])
    }
    return json([("p50_us", p50), ("p99_us", p99), ("received", received)])
}

func publishOnly(_ publisher: Publisher, count: Int, size: Int) throws -> String {
    let payload = Data(count: size)
    // Median of publishRounds rounds, as every path does (bench/README.md).
    let perRound = max(count / publishRounds, 1)
    var rounds: [Double] = []
    for _ in 0..<publishRounds {
        let t0 = nowNs()
        for _ in 0..<perRound { _ = try publisher.publish(payload: payload) }
        rounds.append(Double(nowNs() - t0) / Double(perRound))
    }
    rounds.sort()
    return json([("ns_per_call", (rounds[publishRounds / 2 - 1] + rounds[publishRounds / 2]) / 2)])
}

func run(_ workload: Workload, count: Int, size: Int, config: ClientConfig) async throws -> String {
    let ns = "bench-\(getpid())-\(workload.rawValue)"
    let pubClient = try Client(config: config)
    try await pubClient.connect()
    try await pubClient.announce(namespace: ns)
    let options = workload == .datagram ? PublisherOptions(delivery: .datagram) : nil
    let publisher = try pubClient.createPublisher(namespace: ns, track: "t", options: options)
    let result: String
    if workload == .publish {
        result = try publishOnly(publisher, count: count, size: size)
    } else {
        let subClient = try Client(config: config)
        try await subClient.connect()
        // subscribe returns once the relay accepted: the subscription is established.
        let subscriber = try await subClient.subscribe(namespace: ns, track: "t")
        result = workload == .burst
            ? try await burst(publisher, subscriber, count: count, size: size)
            : try await paced(workload, publisher, subscriber, count: count, size: size)
        await subscriber.unsubscribe()
        await subClient.disconnect()
    }
    publisher.finish()
    await pubClient.disconnect()
    return result
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("bench: \(message)\n".utf8))
    exit(1)
}

let arguments = CommandLine.arguments
let usage = "usage: MoqBench <burst|paced|datagram|publish> <count> <size>"
guard arguments.count == 4, let workload = Workload(rawValue: arguments[1]),
      let count = Int(arguments[2]), count > 0, let size = Int(arguments[3]), size >= 0
else { fail(usage) }
if size < workload.minSize { fail("\(workload.rawValue) needs objects of at least \(workload.minSize) bytes") }
let environment = ProcessInfo.processInfo.environment
guard let url = environment["MOQ_RELAY_MOQT_URL"], !url.isEmpty,
      let caFile = environment["MOQ_RELAY_CA_FILE"], !caFile.isEmpty
else { fail("MOQ_RELAY_MOQT_URL and MOQ_RELAY_CA_FILE must be set") }
do {
    // Trust exactly the relay's CA: no system roots.
    let result = try await run(workload, count: count, size: size,
                               config: clientConfig(url: url, caFiles: [caFile], useSystemRoots: false))
    print("RESULT \(result)")
} catch let failure as BenchFailure {
    fail(failure.message)
} catch {
    fail("\(error)")
}
