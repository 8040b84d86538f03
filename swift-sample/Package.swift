// swift-tools-version:5.9
// The Swift package of moq-ffi: the generated UniFFI bindings plus an idiomatic layer
// (AsyncSequence of objects), a sample executable and XCTest tests.
// The native library ships as MoqFFI.xcframework, built by ../scripts/build-xcframework
// on a Mac with Xcode (iOS device, iOS simulator, macOS).
import PackageDescription

let package = Package(
    name: "MoqFFI",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "MoqFFI", targets: ["MoqFFI"]),
        .executable(name: "MoqSample", targets: ["MoqSample"]),
    ],
    targets: [
        // C module `moq_ffiFFI`: the static library, the generated header and modulemap.
        .binaryTarget(name: "moq_ffiFFI", path: "MoqFFI.xcframework"),
        .target(name: "MoqFFI", dependencies: ["moq_ffiFFI"], path: "Sources/MoqFFI"),
        .executableTarget(name: "MoqSample", dependencies: ["MoqFFI"], path: "Sources/MoqSample"),
        .testTarget(name: "MoqFFITests", dependencies: ["MoqFFI"], path: "Tests/MoqFFITests"),
    ]
)
