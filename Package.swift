// swift-tools-version:6.2
import PackageDescription

// One settings array for every target, tests included. Swift 6 language mode (strict
// concurrency) comes from `swiftLanguageModes` below; warnings become errors in CI through
// `scripts/test` (`-Xswiftc -warnings-as-errors`), the same flags every local build uses.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "cloak",
    platforms: [.macOS(.v15), .iOS(.v18)],
    products: [
        .library(name: "CloakClient", targets: ["CloakClient"]),
        .library(name: "CloakCrypto", targets: ["CloakCrypto"]),
        // Exposed so the benchmarks can time raw libsodium next to the wrappers in one run.
        .library(name: "CSodium", targets: ["CSodium"]),
        .library(name: "CloakCRDT", targets: ["CloakCRDT"]),
        .library(name: "CloakProtocol", targets: ["CloakProtocol"]),
        .library(name: "CloakServer", targets: ["CloakServer"]),
        .library(name: "CloakServerHTTP", targets: ["CloakServerHTTP"]),
        .library(name: "CloakTransport", targets: ["CloakTransport"]),
        .library(name: "CloakSimulation", targets: ["CloakSimulation"]),
        .executable(name: "cloak-server", targets: ["cloak-server"]),
        .executable(name: "cloak-sim", targets: ["cloak-sim"]),
        .executable(name: "cloak", targets: ["cloak"]),
        .executable(name: "cloak-vectors", targets: ["cloak-vectors"]),
        .executable(name: "cloak-conformance", targets: ["cloak-conformance"]),
        .executable(name: "cloak-agent", targets: ["cloak-agent"]),
        .library(name: "CloakAgent", targets: ["CloakAgent"]),
        // The vector generator and the conformance runner: tools and tests link them, apps
        // (which link CloakClient) never do. A product only so the fuzzer's package can seed
        // its corpus from the vectors.
        .library(name: "CloakVectors", targets: ["CloakVectors"]),
        // Test support (seeded and fixed random sources, fixtures): a product only so the
        // benchmark and fuzzer packages can use it; apps never link it.
        .library(name: "CloakTesting", targets: ["CloakTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // MARK: Cores
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(name: "CMalloc"),
        .target(
            name: "CloakCrypto",
            dependencies: ["CSodium"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CloakProtocol",
            dependencies: [
                "CloakCrypto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Generated/README.md"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CloakCRDT",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
        // Statement helpers the client's and the server's SQLite stores share.
        .target(
            name: "CloakSQLite",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CloakClient",
            dependencies: [
                "CloakCRDT",
                "CloakCrypto",
                "CloakProtocol",
                "CloakSQLite",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CloakServer",
            dependencies: [
                "CloakCrypto",
                "CloakProtocol",
                "CloakSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Adapters
        .target(
            name: "CloakServerHTTP",
            dependencies: [
                "CMalloc",
                "CloakServer",
                "CloakProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CloakTransport",
            dependencies: [
                "CloakClient",
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The generator of Protocol/vectors/*.json (cloak-vectors, VectorTests, the fuzzer's
        // seeds). Outside CloakProtocol so no app carries it.
        .target(
            name: "CloakVectors",
            dependencies: [
                "CloakCRDT",
                "CloakCrypto",
                "CloakProtocol",
                "CloakTesting",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // Runs the language-neutral server conformance scenarios of Protocol/conformance/.
        .target(
            name: "CloakConformance",
            dependencies: [
                "CloakCrypto",
                "CloakProtocol",
                "CloakTesting",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CloakTesting",
            dependencies: [
                "CloakCrypto",
                "CSodium",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // The cloak-server command's work, as a library its tests can import: settings from
        // flags, the environment and a config file (swift-configuration), opening the store,
        // backups, account administration and JSON logs.
        .target(
            name: "CloakServerApp",
            dependencies: [
                "CloakCrypto",
                "CloakProtocol",
                "CloakServer",
                "CloakServerHTTP",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // The AI assistant worker (PROTOCOL.md §29): its sans-IO core (Core/) and the adapters
        // that drive it (Adapters/: the Cloak client, the model over HTTP, timers).
        .target(
            name: "CloakAgent",
            dependencies: [
                "CloakClient",
                "CloakCRDT",
                "CloakProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Executables
        .executableTarget(
            name: "cloak-agent",
            dependencies: [
                "CloakAgent",
                "CloakClient",
                "CloakCrypto",
                "CloakProtocol",
                "CloakTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "cloak-server",
            dependencies: [
                "CloakProtocol",
                "CloakServer",
                "CloakServerApp",
                "CloakServerHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "cloak",
            dependencies: [
                "CloakClient",
                "CloakCRDT",
                "CloakCrypto",
                "CloakProtocol",
                "CloakTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "cloak-vectors",
            dependencies: [
                "CloakProtocol",
                "CloakVectors",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "cloak-conformance",
            dependencies: [
                "CloakConformance",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Simulator
        .target(
            name: "CloakSimulation",
            dependencies: [
                "CloakAgent",
                "CloakClient",
                "CloakCRDT",
                "CloakCrypto",
                "CloakProtocol",
                "CloakServer",
                "CloakTesting",
                "CloakTransport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Simulator/CloakSimulation",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "cloak-sim",
            dependencies: [
                "CloakSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Simulator/cloak-sim",
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "CloakCryptoTests",
            dependencies: ["CloakCrypto", "CSodium", "CloakTesting"],
            // RFC vectors as JSON, read by path (OPRFVectors.swift), not bundled as resources.
            exclude: ["Vectors"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CloakProtocolTests",
            dependencies: ["CloakProtocol", "CloakCrypto", "CloakCRDT", "CloakTesting", "CloakVectors"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CloakCRDTTests",
            dependencies: ["CloakCRDT", "CloakTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CloakClientTests",
            dependencies: ["CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CloakServerTests",
            dependencies: [
                "CloakServer", "CloakCrypto", "CloakProtocol", "CloakSQLite", "CloakTesting", "CloakSimulation",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CloakServerHTTPTests",
            dependencies: ["CloakServerHTTP", "CloakServer", "CloakProtocol", "CloakCrypto", "CloakTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CloakServerAppTests",
            dependencies: [
                "CloakServerApp", "CloakServer", "CloakServerHTTP", "CloakProtocol", "CloakCrypto", "CloakTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CloakSimulationTests",
            dependencies: [
                "CloakSimulation", "CloakTesting", "CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol",
                "CloakServer", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakServer", "CloakServerHTTP",
                "CloakTransport", "CloakTesting", "CloakSimulation", "CloakConformance",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CloakAgentTests",
            dependencies: [
                "CloakAgent", "CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakServer", "CloakServerHTTP",
                "CloakTransport", "CloakTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TidyTests",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
