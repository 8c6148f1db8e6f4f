// swift-tools-version:6.2
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its folder, so the root package's identity is whatever
// the clone's directory is called (`main`, `ci-clone`, …).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

// The libFuzzer harness lives in its own package so its sanitizer build (`-sanitize=fuzzer`
// on every module, for coverage) never touches the main package's .build. Build and run it
// with `scripts/fuzz [SECONDS]`.
let package = Package(
    name: "cloak-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "..")
    ],
    targets: [
        .executableTarget(
            name: "FrameFuzzer",
            dependencies: [
                .product(name: "CloakProtocol", package: root),
                .product(name: "CloakCrypto", package: root),
                .product(name: "CloakVectors", package: root),
                .product(name: "CloakTesting", package: root),
            ],
            path: "Sources/FrameFuzzer",
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
                .enableUpcomingFeature("InternalImportsByDefault"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
