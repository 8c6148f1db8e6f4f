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
    ],
    targets: [
        .executableTarget(
            name: "cloak-bench",
            dependencies: [
                .product(name: "CloakCrypto", package: root),
                .product(name: "CSodium", package: root),
                .product(name: "CloakCRDT", package: root),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/cloak-bench",
            swiftSettings: [.unsafeFlags(["-Ounchecked"]), .enableUpcomingFeature("MemberImportVisibility")]
        )
    ],
    swiftLanguageModes: [.v6]
)
