// swift-tools-version:5.9
// The Swift package of moq-ffi: the generated UniFFI bindings plus an idiomatic layer
// (AsyncSequence of objects), a sample executable, a benchmark program and XCTest tests.
//
// The native library: on Apple platforms MoqFFI.xcframework, built by
// ../scripts/build-xcframework on a Mac with Xcode (iOS device, iOS simulator, macOS); on
// Linux the system library libmoq_ffi (`cargo build -p moq-ffi --lib`), its directory passed
// with `-Xlinker -L<dir>` (see README.md).
import PackageDescription

#if os(Linux)
let native: Target = .systemLibrary(name: "moq_ffiFFI", path: "Sources/moq_ffiFFI")
#else
let native: Target = .binaryTarget(name: "moq_ffiFFI", path: "MoqFFI.xcframework")
#endif

let package = Package(
    name: "MoqFFI",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "MoqFFI", targets: ["MoqFFI"]),
        .executable(name: "MoqSample", targets: ["MoqSample"]),
        .executable(name: "MoqBench", targets: ["MoqBench"]),
    ],
    targets: [
        // C module `moq_ffiFFI`: the generated header and the native library.
        native,
        .target(name: "MoqFFI", dependencies: ["moq_ffiFFI"], path: "Sources/MoqFFI"),
        .executableTarget(name: "MoqSample", dependencies: ["MoqFFI"], path: "Sources/MoqSample"),
        // The benchmark path program (bench/README.md), run by ../bench/swift.sh.
        .executableTarget(name: "MoqBench", dependencies: ["MoqFFI"], path: "Sources/MoqBench"),
        .testTarget(name: "MoqFFITests", dependencies: ["MoqFFI"], path: "Tests/MoqFFITests"),
    ]
)
