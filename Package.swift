// swift-tools-version: 6.0
// QuorumCoin: a deterministic discrete-event simulator for cryptocurrency on a Byzantine-safe
// key-value store. Imports point down the list: CSodium ← QuorumCrypto ← QuorumLedger ←
// QuorumStore ← Simulation ← quorumsim. Honest protocol code never imports Simulation.
import PackageDescription

/// Release builds of the protocol libraries export their function bodies, so the simulator's
/// calls into them are specialized and inlined: `Wallet<PaymentProof>` ran unspecialized across
/// the module boundary (a runtime generic-metadata lookup per coin), and every `Bytes32 ==` was an
/// outlined call. −5 % of a scale run's instructions (4.30 G → 4.08 G, callgrind, docs/performance.md). An
/// unsafe flag: SwiftPM accepts these targets as local-path or branch dependencies, not as
/// version-pinned ones.
///
/// They also count references without atomic instructions: a simulation is one thread per
/// process (sweeps, swarms and the bench run child processes), or, with `engine.partitions` > 1,
/// threads that share no object while they run (`PartitionedRun` says how), and a large run is
/// memory-latency bound with a retain or release on a cold object at every step, where the
/// locked compare-and-swap of an atomic count waits for the line. −8 % wall time on a
/// 250,000-payment run (both builds side by side on the two cores, cores swapped; docs/performance.md).
/// The price: a release build of these modules must not share objects between threads. A host
/// that does (a multi-threaded transport, or `swift test -c release`, whose tests run in
/// parallel) must drop `-assume-single-threaded`; debug builds and `swift test` never use it.
let singleThreaded = ["-Xfrontend", "-assume-single-threaded"]
let crossModule: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"] + singleThreaded, .when(configuration: .release))]

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
        .target(name: "QuorumCrypto", dependencies: ["CSodium"], swiftSettings: crossModule),
        // glibc's heap counters (mallinfo2), which Swift's Glibc module does not expose: the
        // memory breakdown of `quorumsim run --memory-breakdown` and `quorumsim bench`; and
        // the compiler's prefetch hint, which Swift has no spelling for.
        .target(name: "CHeap"),
        .target(name: "QuorumLedger", dependencies: ["QuorumCrypto"], swiftSettings: crossModule),
        .target(name: "QuorumStore", dependencies: ["QuorumCrypto", "QuorumLedger"], swiftSettings: crossModule),
        .target(
            name: "Simulation",
            dependencies: ["CHeap", "QuorumCrypto", "QuorumLedger", "QuorumStore", .product(name: "Yams", package: "Yams")],
            // The simulator is a class whose every field access paid a dynamic exclusivity check
            // (swift_beginAccess and its thread-local access set: 4% of a scale run in perf).
            // Release builds of this one target skip the runtime check; debug builds and
            // `swift test` keep it, so an overlapping access still fails there. (Only this
            // target: the protocol libraries keep the check in every build.) Reference counts
            // are non-atomic in release builds, as in the protocol libraries (`singleThreaded`).
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"] + singleThreaded, .when(configuration: .release))]
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
