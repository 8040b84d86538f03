// swift-tools-version:5.9
// The Swift package of moq-ffi: the generated UniFFI bindings plus an idiomatic layer
// (AsyncSequence of objects), a sample executable, a benchmark program and XCTest tests.
//
// The native library: on Apple platforms MoqKit.xcframework, built by
// ../scripts/build-xcframework on a Mac with Xcode (iOS device, iOS simulator, macOS); on
// Linux the system library libmoq_ffi (`cargo build -p moq-ffi --lib`), its directory passed
// with `-Xlinker -L<dir>` (see README.md).
import PackageDescription

#if os(Linux)
let native: Target = .systemLibrary(name: "moqkitFFI", path: "Sources/moqkitFFI")
#else
let native: Target = .binaryTarget(name: "moqkitFFI", path: "MoqKit.xcframework")
#endif

let package = Package(
    name: "MoqKit",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "MoqKit", targets: ["MoqKit"]),
        .executable(name: "MoqSample", targets: ["MoqSample"]),
        .executable(name: "MoqBench", targets: ["MoqBench"]),
    ],
    targets: [
        // C module `moqkitFFI`: the generated header and the native library.
        native,
        .target(name: "MoqKit", dependencies: ["moqkitFFI"], path: "Sources/MoqKit"),
        .executableTarget(name: "MoqSample", dependencies: ["MoqKit"], path: "Sources/MoqSample"),
        // The benchmark path program (bench/README.md), run by ../bench/swift.sh.
        .executableTarget(name: "MoqBench", dependencies: ["MoqKit"], path: "Sources/MoqBench"),
        .testTarget(name: "MoqKitTests", dependencies: ["MoqKit"], path: "Tests/MoqKitTests"),
    ]
)
