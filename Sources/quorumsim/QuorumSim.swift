import ArgumentParser
import Foundation
import QuorumCrypto
import QuorumLedger
import QuorumStore
import Simulation

let toolVersion = "0.1.0"

@main
struct QuorumSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quorumsim",
        abstract: "Deterministic simulator of QuorumCoin, a cryptocurrency on a Byzantine-safe key-value store.",
        version: toolVersion,
        subcommands: [Run.self, SweepCommand.self, Replay.self, SwarmCommand.self, Shrink.self, ScenarioHelp.self, Bench.self]
    )

    static func main() {
        HugePages.enable()
        Self.main(nil)
    }
}

/// Large runs spend much of their time on TLB misses across gigabytes of small objects; glibc
/// backs its heap with transparent huge pages when `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, a
/// setting read only at process start. So the first thing quorumsim does is re-execute itself with
/// it, unless the caller set GLIBC_TUNABLES already or set QUORUMSIM_NO_HUGEPAGES. Measured on a
/// 60,000-payment scale run: 16–18 s instead of 20–22 s, same peak memory. Outputs do not depend
/// on it (no simulation state depends on addresses).
enum HugePages {
    static func enable() {
        guard getenv("GLIBC_TUNABLES") == nil, getenv("QUORUMSIM_NO_HUGEPAGES") == nil else { return }
        setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Only reached if exec failed: run on with the default heap.
        unsetenv("GLIBC_TUNABLES")
    }
}

/// Standard error, for banners, progress and errors (results go to files). The progress line
/// passes `terminator: false` to overwrite itself.
func note(_ text: String, terminator: Bool = true) {
    FileHandle.standardError.write(Data((text + (terminator ? "\n" : "")).utf8))
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a scenario file and write throughput.csv, latency.csv, summary.json, scenario.resolved.yaml.")

    @Argument(help: "Scenario YAML file (see `quorumsim scenario --help` for every field).")
    var scenario: String

    @Option(help: "Override the scenario's seed.")
    var seed: UInt64?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override one field: dotted path = YAML value, e.g. topology.groups=16 (repeatable).", valueName: "path=value"))
    var overrides: [String] = []

    @Option(help: "Output folder (default: out/<scenario name>-seed<seed>).")
    var out: String?

    @Flag(help: "Run twice in this process and compare digests of the whole event trace.")
    var checkDeterminism = false

    @Flag(help: "No banner or progress on stderr.")
    var quiet = false

    @Flag(help: "Also write ledger.txt: every certified record with its certificate (hex of the canonical encoding).")
    var dumpLedger = false

    @Flag(help: "After the run, print on stderr how many heap bytes each part of the simulator holds (quorumcoin only; a partitioned run's parts summed over its partitions).")
    var memoryBreakdown = false

    func run() throws {
        var scenario = try loadScenario(path: self.scenario, overrides: try parseOverrides(overrides))
        if let seed { scenario.seed = seed }
        let resolved = ScenarioFile.emit(scenario)
        let scenarioHash = String(Blake2b.digest(Array(resolved.utf8)).hex.prefix(16))
        if !quiet { note(banner(scenario, hash: scenarioHash)) }

        if checkDeterminism {
            try checkTwice(scenario)
            return
        }
        let start = ContinuousClock.now
        let simulator: any SystemRun
        do { simulator = try Systems.make(scenario) } catch {
            throw ValidationError("cannot build scenario \(self.scenario): \(error)")
        }
        // Kept until the process exits: freeing a million-payment run's objects one by one took
        // seconds after the results were written, and the exit returns the memory at once.
        finishedRuns.append(simulator)
        let quorum = simulator as? Simulator
        if dumpLedger, quorum == nil { throw ValidationError("--dump-ledger needs system quorumcoin and engine.partitions: 1") }
        let partitioned = simulator as? PartitionedRun
        if memoryBreakdown, quorum == nil, partitioned == nil { throw ValidationError("--memory-breakdown needs system quorumcoin") }
        let setup = ContinuousClock.now - start
        let showProgress = !quiet && isatty(STDERR_FILENO) == 1
        // When the events ended and the end-of-run invariant checks began (wall.json's checks_s).
        var checksStart: ContinuousClock.Instant?
        simulator.run(progressEvery: 1 << 16) { p in
            if p.checking, checksStart == nil { checksStart = ContinuousClock.now }
            guard showProgress else { return }
            let wall = seconds(ContinuousClock.now - start)
            if p.checking {
                note(String(format: "\r  sim %.2fs  events %d  payments %d/%d  checking invariants (S1–S11, L1–L6)…",
                            Double(p.simulatedTime) / 1e9, p.events, p.finished, p.issued) + String(repeating: " ", count: 12),
                     terminator: false)
                return
            }
            let fraction = Double(p.simulatedTime) / Double(max(1, p.horizon))
            let eta = fraction > 0 ? wall / fraction - wall : 0
            note(String(format: "\r  sim %.2fs  events %d  %.2fM events/s  payments %d/%d  eta ≤ %.0fs", Double(p.simulatedTime) / 1e9,
                        p.events, Double(p.events) / max(wall, 1e-9) / 1e6, p.finished, p.issued, eta), terminator: false)
        }
        let end = ContinuousClock.now
        let elapsed = end - start
        let checks = checksStart.map { seconds(end - $0) } ?? 0
        let heapMiB = Double(Simulator.heapInUse()) / 1_048_576
        if showProgress { note("") }
        let report = simulator.report(scenarioHash: scenarioHash, toolVersion: toolVersion)
        let folder = out ?? "out/\(scenario.name)-seed\(scenario.seed)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try write(report.throughputCSV, to: folder, "throughput.csv")
        if scenario.outputs.latencyCSV { try write(report.latencyCSV, to: folder, "latency.csv") }
        try write(report.summaryJSON, to: folder, "summary.json")
        try write(resolved, to: folder, "scenario.resolved.yaml")
        try write(report.violationsCSV, to: folder, "violations.csv")
        try write(report.latencyCDFCSV, to: folder, "latency_cdf.csv")
        if !report.validationCSV.isEmpty { try write(report.validationCSV, to: folder, "validation.csv") }
        if dumpLedger, let quorum { try write(quorum.ledgerDump(), to: folder, "ledger.txt") }
        let wall = seconds(elapsed)
        let cpu = processCPUSeconds()
        // A partitioned run: the event phase's wall time, and each partition's CPU seconds in
        // its windows and wall seconds blocked waiting for the others (what is left, its thread
        // was runnable but not running).
        var partitionBusy = ""
        if let p = partitioned, !p.partitionBusySeconds.isEmpty {
            func list(_ values: [Double]) -> String { "[" + values.map { String(format: "%.3f", $0) }.joined(separator: ", ") + "]" }
            partitionBusy = ",\n  \"events_wall_s\": \(String(format: "%.3f", seconds(elapsed - setup) - checks)),"
                + "\n  \"partition_busy_s\": \(list(p.partitionBusySeconds)),\n  \"partition_wait_s\": \(list(p.partitionWaitSeconds))"
        }
        let wallJSON = """
            {
              "wall_s": \(String(format: "%.3f", wall)),
              "setup_s": \(String(format: "%.3f", seconds(setup))),
              "checks_s": \(String(format: "%.3f", checks)),
              "events_per_s": \(Int(Double(report.events) / max(wall, 1e-9))),
              "confirmed_per_wall_s": \(String(format: "%.1f", Double(report.confirmed) / max(wall, 1e-9))),
              "cpu_user_s": \(String(format: "%.3f", cpu.user)),
              "cpu_sys_s": \(String(format: "%.3f", cpu.system)),
              "peak_rss_mib": \(peakMemoryMiB()),
              "heap_at_end_mib": \(String(format: "%.1f", heapMiB)),
              "signature_checks_memoized": \(quorum?.verifierHits ?? 0),
              "signature_checks_computed": \(quorum?.verifierMisses ?? 0)\(partitionBusy)
            }

            """
        try write(wallJSON, to: folder, "wall.json")
        let p50 = report.p50.map { fixed($0, Time.millisecond, 1) + " ms" } ?? "n/a"
        let p99 = report.p99.map { fixed($0, Time.millisecond, 1) + " ms" } ?? "n/a"
        print("\(scenario.name) seed \(scenario.seed): \(report.payments) issued, \(report.certified) certified, "
              + "\(report.confirmed) confirmed, \(report.failed) failed; steady \(report.steadyThroughput) confirmed/s; confirm latency p50 \(p50), p99 \(p99); "
              + "\(report.events) events in \(String(format: "%.2f", wall)) s wall "
              + "(\(Int(Double(report.events) / max(wall, 1e-9))) events/s, \(String(format: "%.0f", Double(report.confirmed) / max(wall, 1e-9))) payments/s); "
              + "results in \(folder)/")
        if memoryBreakdown {
            for (part, bytes) in quorum?.memoryBreakdown() ?? partitioned?.memoryBreakdown() ?? [] {
                let label = part.count < 56 ? part + String(repeating: " ", count: 56 - part.count) : part
                note("  " + label + String(format: "%8.1f MiB %7.0f B/payment", Double(bytes) / 1048576,
                                           Double(bytes) / Double(max(1, report.payments))))
            }
        }
        if let first = report.violations.first {
            print("INVARIANT VIOLATED: \(report.violations.count) violation(s) of "
                  + Set(report.violations.map(\.invariant)).sorted().joined(separator: ", ")
                  + "; first: \(first.invariant) at t = \(first.time) ns: \(first.detail)")
            print("replay: quorumsim replay --seed \(scenario.seed) \(self.scenario)")
            throw ExitCode(2)
        }
    }

    private func checkTwice(_ scenario: Scenario) throws {
        guard scenario.system == .quorumcoin, scenario.engine.partitions == 1 else {
            // Baselines and partitioned runs keep no trace digest: compare every output file of
            // two runs instead.
            let texts = try (0..<2).map { _ in
                let run = try Systems.make(scenario)
                run.run(progressEvery: 1 << 16, progress: nil)
                let r = run.report(scenarioHash: "", toolVersion: toolVersion)
                return [r.summaryJSON, r.throughputCSV, r.latencyCSV, r.latencyCDFCSV, r.violationsCSV, r.validationCSV]
            }
            guard texts[0] == texts[1] else {
                print("NOT deterministic: two runs of system \(scenario.system.rawValue) wrote different outputs")
                throw ExitCode(1)
            }
            print("deterministic: two runs of system \(scenario.system.rawValue), identical outputs")
            return
        }
        var digests = [[(time: UInt64, digest: UInt64)]]()
        for _ in 0..<2 {
            let simulator = try Simulator(scenario: scenario, traceEvery: 1024)
            simulator.run()
            digests.append(simulator.traceCheckpoints + [(simulator.traceCheckpoints.last?.time ?? 0, simulator.traceDigest)])
        }
        if let i = zip(digests[0], digests[1]).enumerated().first(where: { $0.element.0.digest != $0.element.1.digest })?.offset {
            let earlier = i == 0 ? 0 : digests[0][i - 1].time
            print("NOT deterministic: traces diverge between simulated t = \(earlier) ns and \(digests[0][i].time) ns "
                  + "(checkpoint \(i), every 1024 events). Replay: quorumsim run --seed \(scenario.seed) \(self.scenario)")
            throw ExitCode(1)
        }
        guard digests[0].count == digests[1].count else {
            print("NOT deterministic: runs processed a different number of events")
            throw ExitCode(1)
        }
        print("deterministic: two runs, identical trace digest \(String(digests[0].last?.digest ?? 0, radix: 16)) "
              + "over \(digests[0].count) checkpoints")
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-run a scenario at a given seed (as a failing run printed it) and list every violation.")

    @Option(help: "The seed of the run to reproduce.")
    var seed: UInt64

    @Argument(help: "Scenario YAML file.")
    var scenario: String

    @Option(help: "Output folder (default: out/<scenario name>-seed<seed>).")
    var out: String?

    func run() throws {
        var args = [scenario, "--seed", String(seed), "--dump-ledger"]
        if let out { args += ["--out", out] }
        let command = try Run.parse(args)
        do {
            try command.run()
        } catch let exit as ExitCode where exit == ExitCode(2) {
            let folder = out ?? "out/\((try? loadScenario(path: scenario).name) ?? "run")-seed\(seed)"
            if let text = try? String(contentsOfFile: folder + "/violations.csv", encoding: .utf8) { print(text, terminator: "") }
            throw exit
        }
    }
}

/// Runs of this process, never freed (see `Run.run`).
nonisolated(unsafe) var finishedRuns: [any SystemRun] = []

func loadScenario(path: String, overrides: [(path: String, value: String)] = []) throws -> Scenario {
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
        throw ValidationError("cannot read scenario file \(path)")
    }
    do { return try ScenarioFile(file: path).parse(text, overrides: overrides) } catch { throw ValidationError(error.description) }
}

/// `path=value` pairs from `--set`.
func parseOverrides(_ items: [String]) throws -> [(path: String, value: String)] {
    try items.map { item in
        guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
            throw ValidationError("--set \(item): expected path=value, e.g. topology.groups=16")
        }
        return (String(item[..<eq]), String(item[item.index(after: eq)...]))
    }
}

func banner(_ s: Scenario, hash: String) -> String {
    let t = s.topology, w = s.workload, p = s.protocolSettings
    let load = w.arrival == .open ? "open loop \(w.rate)/s" : "closed loop, \(w.inFlight) in flight each"
    return "quorumsim \(toolVersion) · \(s.name) · system \(s.system.rawValue) · seed \(s.seed) · scenario \(hash)\n"
        + "  \(t.replicaCount) replicas (\(t.assignment.rawValue), n=\(t.n) f=\(t.f)) · \(w.principals) principals · \(load)\n"
        + "  \(p.variant.rawValue) writes · \(p.validation.rawValue) validation · \(s.crypto.mode.rawValue) crypto · "
        + "\(Double(s.duration) / 1e9) s issuing + ≤ \(Double(s.drain) / 1e9) s drain"
}

func write(_ text: String, to folder: String, _ name: String) throws {
    try text.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8)
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Peak resident memory of this process (Linux VmHWM), in MiB.
/// CPU seconds this process has used in user space and in the kernel (the kernel's share of a big
/// run is mostly first touches of fresh heap pages).
func processCPUSeconds() -> (user: Double, system: Double) {
    var usage = rusage()
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return (0, 0) }
    func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return (s(usage.ru_utime), s(usage.ru_stime))
}

func peakMemoryMiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb / 1024
    }
    return 0
}

struct ScenarioHelp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario",
        abstract: "Print every scenario field with its default and meaning (markdown).")

    func run() {
        print(ScenarioDocs.markdown())
    }
}

enum ScenarioDocs {
    static func markdown() -> String {
        var text = "| field | default | meaning |\n|---|---|---|\n"
        for f in ScenarioFields.all { text += "| `\(f.path)` | `\(f.default)` | \(f.doc) |\n" }
        return text
    }
}
