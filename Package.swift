// swift-tools-version:6.1
// Sextant: a vector database and retrieval stack for Linux servers.
// The target list below is the architecture; docs/ARCHITECTURE.md draws it.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "sextant",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sextant", targets: ["SextantCLI"]),
        // For the separate Benchmarks/ package.
        .library(name: "SextantIndexKit", targets: ["SextantKernels", "SextantIndex"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // Layer 0: numeric kernels (C for per-function SIMD targets) and the index.
        .target(name: "CSextantKernels"),
        .target(name: "SextantKernels", dependencies: ["CSextantKernels"], swiftSettings: strict),
        .target(name: "SextantIndex", dependencies: ["SextantKernels", "CSextantKernels"], swiftSettings: strict),

        // Layer 1: payload (metadata and filters) and durable storage.
        .target(name: "SextantPayload", swiftSettings: strict),
        .target(
            name: "CSextantIO", linkerSettings: [.linkedLibrary("uring")]),
        .systemLibrary(name: "CJemalloc", providers: [.apt(["libjemalloc-dev"])]),
        .target(
            name: "SextantStorage",
            dependencies: ["SextantIndex", "SextantPayload", "SextantKernels", "CSextantKernels", "CSextantIO"],
            swiftSettings: strict),

        // Tools: dataset formats and benchmark harnesses.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "SextantDatasets", dependencies: ["CZlib"], swiftSettings: strict),
        .target(
            name: "SextantBench", dependencies: ["SextantIndex", "SextantDatasets", "SextantStorage"], swiftSettings: strict),

        .executableTarget(
            name: "SextantCLI",
            dependencies: [
                "SextantBench", "SextantIndex", "SextantStorage", "CJemalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        // Tests sit beside the module they test; shared helpers live in SextantTestSupport.
        .target(name: "SextantTestSupport", path: "Tests/SextantTestSupport", swiftSettings: strict),
        .testTarget(name: "SextantKernelsTests", dependencies: ["SextantKernels"], swiftSettings: strict),
        .testTarget(name: "SextantCLITests", dependencies: ["SextantTestSupport"], swiftSettings: strict),
        .testTarget(name: "SextantPayloadTests", dependencies: ["SextantPayload"], swiftSettings: strict),
        .testTarget(
            name: "SextantStorageTests",
            dependencies: ["SextantStorage", "SextantDatasets", "SextantBench", "SextantTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SextantIndexTests", dependencies: ["SextantIndex", "SextantDatasets", "SextantTestSupport"],
            swiftSettings: strict),
    ]
)
