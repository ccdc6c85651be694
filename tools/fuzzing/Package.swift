// swift-tools-version:6.1
// Coverage-guided fuzzing of Sextant's decoders with libFuzzer. Built only by
// tools/fuzz (with -sanitize=fuzzer,address), never by the root package's
// `swift build`. Modules/ links the root package's source folders, so a
// target here compiles exactly the code the engine runs, with coverage
// instrumentation, and nothing it does not need.
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6), .enableUpcomingFeature("ExistentialAny")]

func module(_ name: String, _ dependencies: [Target.Dependency] = []) -> Target {
    .target(name: name, dependencies: dependencies, path: "Modules/\(name)", swiftSettings: strict)
}

func fuzzer(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    // A plain target with main.swift links as an executable without renaming `main`,
    // which libFuzzer provides (the sources are parsed as a library).
    .target(name: name, dependencies: dependencies, path: "Targets/\(name)", swiftSettings: strict)
}

let package = Package(
    name: "SextantFuzz",
    // The root package's versions (the offline mirror resolves only those).
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .target(name: "CSextantKernels", path: "Modules/CSextantKernels"),
        .target(name: "CSextantSystem", path: "Modules/CSextantSystem"),
        .target(name: "CSextantIO", path: "Modules/CSextantIO", linkerSettings: [.linkedLibrary("uring")]),
        module("SextantJSON"),
        module("SextantPayload"),
        module("SextantText"),
        module("SextantChroma", ["SextantJSON", "SextantPayload"]),
        module("SextantKernels", ["CSextantKernels"]),
        module("SextantIndex", ["SextantKernels", "CSextantKernels"]),
        module("SextantConcurrency", ["CSextantSystem"]),
        // Single files of modules whose other files need the network stack: the CSV
        // reader, and the scraper's parsers of other people's documents.
        module("IngestCSV"),
        module("ScraperParsers"),
        module("SextantProtocol", ["SextantPayload", .product(name: "NIOCore", package: "swift-nio"),
                                   .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        module("SextantStorage", ["SextantIndex", "SextantPayload", "SextantKernels", "SextantConcurrency", "SextantText",
                                  "CSextantKernels", "CSextantIO", "CSextantSystem"]),

        .target(name: "FuzzDriver", path: "Targets/FuzzDriver", swiftSettings: strict),
        fuzzer("FuzzJSON", ["FuzzDriver", "SextantJSON"]),
        fuzzer("FuzzWhere", ["FuzzDriver", "SextantJSON", "SextantChroma", "SextantPayload"]),
        fuzzer("FuzzRegex", ["FuzzDriver", "SextantPayload"]),
        fuzzer("FuzzMetadata", ["FuzzDriver", "SextantPayload"]),
        fuzzer("FuzzWAL", ["FuzzDriver", "SextantStorage"]),
        fuzzer("FuzzCSV", ["FuzzDriver", "IngestCSV"]),
        fuzzer("FuzzHTML", ["FuzzDriver", "ScraperParsers"]),
        fuzzer("FuzzFrames", ["FuzzDriver", "SextantProtocol", .product(name: "NIOCore", package: "swift-nio"),
                              .product(name: "NIOEmbedded", package: "swift-nio")]),
        fuzzer("FuzzWire", ["FuzzDriver", "SextantProtocol", "SextantPayload", .product(name: "NIOCore", package: "swift-nio")]),
        fuzzer("FuzzManifest", ["FuzzDriver", "SextantStorage", "SextantKernels"]),
    ])
