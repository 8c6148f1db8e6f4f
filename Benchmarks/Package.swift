// swift-tools-version:6.2
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its folder, so the root package's identity is whatever
// the clone's directory is called (`main`, `ci-clone`, …).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

// Benchmarks live in their own package so the main build stays lean (swift-nio's layout):
// `scripts/bench SUITE [--json]` builds this in release mode and runs one suite.
let package = Package(
    name: "cloak-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        .executableTarget(
            name: "cloak-bench",
            dependencies: [
                .product(name: "CloakCrypto", package: root),
                .product(name: "CSodium", package: root),
                .product(name: "CloakCRDT", package: root),
                .product(name: "CloakClient", package: root),
                .product(name: "CloakProtocol", package: root),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "CloakServer", package: root),
                .product(name: "CloakServerHTTP", package: root),
                .product(name: "CloakTesting", package: root),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Sources/cloak-bench",
            swiftSettings: [.unsafeFlags(["-Ounchecked"]), .enableUpcomingFeature("MemberImportVisibility")]
        )
    ],
    swiftLanguageModes: [.v6]
)
