// swift-tools-version: 6.0
// QuorumCoin: a deterministic discrete-event simulator for cryptocurrency on a Byzantine-safe
// key-value store. Imports point down the list: CSodium ← QuorumCrypto ← QuorumLedger ←
// QuorumStore ← Simulation ← quorumsim. Honest protocol code never imports Simulation.
import PackageDescription

let package = Package(
    name: "QuorumCoin",
    products: [
        .executable(name: "quorumsim", targets: ["quorumsim"]),
        .library(name: "QuorumStore", targets: ["QuorumStore"]),
    ],
    dependencies: [
        // Command-line parsing with generated --help; mirrored on this machine.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // YAML scenario files: reports parse errors with line numbers; mirrored on this machine.
        // (TOMLKit, the alternative, crashes the process on some malformed input.)
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(name: "QuorumCrypto", dependencies: ["CSodium"]),
        // glibc's heap counters (mallinfo2), which Swift's Glibc module does not expose: the
        // memory breakdown of `quorumsim run --memory-breakdown` and `quorumsim bench`.
        .target(name: "CHeap"),
        .target(name: "QuorumLedger", dependencies: ["QuorumCrypto"]),
        .target(name: "QuorumStore", dependencies: ["QuorumCrypto", "QuorumLedger"]),
        .target(
            name: "Simulation",
            dependencies: ["CHeap", "QuorumCrypto", "QuorumLedger", "QuorumStore", .product(name: "Yams", package: "Yams")],
            // The simulator is a class whose every field access paid a dynamic exclusivity check
            // (swift_beginAccess and its thread-local access set: 4% of a scale run in perf).
            // Release builds of this one target skip the runtime check; debug builds and
            // `swift test` keep it, so an overlapping access still fails there. (An unsafe flag,
            // so only on this target: the QuorumStore library product stays usable as a dependency.)
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "quorumsim",
            dependencies: [
                "Simulation",
                "QuorumStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "QuorumCryptoTests", dependencies: ["QuorumCrypto"]),
        .testTarget(name: "QuorumLedgerTests", dependencies: ["QuorumLedger"]),
        .testTarget(name: "QuorumStoreTests", dependencies: ["QuorumStore"]),
        // Depends on the executable so `swift test` builds it: determinism is checked across processes.
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "QuorumStore", "quorumsim"]),
    ]
)
