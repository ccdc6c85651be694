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
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // Layer 0: numeric kernels (C for per-function SIMD targets) and the index.
        .target(name: "CSextantKernels"),
        .target(name: "SextantKernels", dependencies: ["CSextantKernels"], swiftSettings: strict),
        .target(name: "SextantIndex", dependencies: ["SextantKernels", "CSextantKernels"], swiftSettings: strict),

        // Scheduling helpers shared by the engine and the tools (niced task executors).
        .target(name: "CSextantSystem"),
        .target(name: "SextantConcurrency", dependencies: ["CSextantSystem"], swiftSettings: strict),

        // Layer 1: payload (metadata and filters) and durable storage.
        .target(name: "SextantPayload", swiftSettings: strict),
        .target(
            name: "CSextantIO", linkerSettings: [.linkedLibrary("uring")]),
        .systemLibrary(name: "CJemalloc", providers: [.apt(["libjemalloc-dev"])]),
        .target(
            name: "SextantStorage",
            dependencies: ["SextantIndex", "SextantPayload", "SextantKernels", "CSextantKernels", "CSextantIO", "CSextantSystem"],
            swiftSettings: strict),

        // Layer 2: the wire, the server, and the only way in: the client library.
        .target(
            name: "SextantProtocol",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: [],
            swiftSettings: strict),
        .target(
            name: "SextantEngine",
            dependencies: [
                "SextantProtocol", "SextantStorage", "SextantPayload", "SextantConcurrency",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "SextantClient",
            dependencies: [
                "SextantProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict),

        // ChromaDB's JSON grammar (filters, metadata) over a JSON model that keeps 3 and 3.0 apart.
        .target(name: "SextantJSON", dependencies: ["SextantClient"], swiftSettings: strict),

        // Tools: dataset formats and benchmark harnesses.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "SextantDatasets", dependencies: ["CZlib"], swiftSettings: strict),
        .target(
            name: "SextantBench", dependencies: ["SextantIndex", "SextantDatasets", "SextantStorage"], swiftSettings: strict),

        .target(
            name: "SextantLoad",
            dependencies: [
                "SextantClient", "SextantDatasets", "SextantJSON", "SextantConcurrency",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict),

        .executableTarget(
            name: "SextantCLI",
            dependencies: [
                "SextantBench", "SextantIndex", "SextantStorage", "CJemalloc", "SextantEngine", "SextantClient",
                "SextantJSON", "SextantLoad",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        // Tests sit beside the module they test; shared helpers live in SextantTestSupport.
        .target(name: "SextantTestSupport", path: "Tests/SextantTestSupport", swiftSettings: strict),
        .testTarget(name: "SextantKernelsTests", dependencies: ["SextantKernels"], swiftSettings: strict),
        .testTarget(name: "SextantCLITests", dependencies: ["SextantTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SextantEngineTests",
            dependencies: [
                "SextantClient", "SextantProtocol", "SextantTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict),
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
