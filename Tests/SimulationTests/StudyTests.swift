import Foundation
import Testing
import QuorumCrypto
import QuorumStore
@testable import Simulation

/// Overrides, sweeps, baselines and the study's metrics (issue 6).
@Suite struct OverrideTests {
    @Test func overridesSetNestedFieldsAndCreateSections() throws {
        let s = try ScenarioFile(file: "tiny.yaml").parse(tinyYAML, overrides: [
            ("topology.groups", "7"), ("protocol.variant", "batched"), ("system", "smr"),
            ("faults.replicas", "[{behaviour: silent, per_group: 1}]"), ("smr.batch", "50")])
        #expect(s.topology.groups == 7 && s.topology.n == 4)
        #expect(s.protocolSettings.variant == .batched)
        #expect(s.system == .smr && s.smr.batch == 50)
        #expect(s.faults.replicas.first?.behaviour == .silent && s.faults.replicas.first?.perGroup == 1)
    }

    @Test func aBadOverrideIsNamedInTheError() {
        func error(_ path: String, _ value: String) -> String {
            do {
                _ = try ScenarioFile(file: "tiny.yaml").parse(tinyYAML, overrides: [(path, value)])
                return "no error"
            } catch { return error.description }
        }
        #expect(error("topology.groups", "many") == "tiny.yaml (--set topology.groups=many): field 'topology.groups': expected an integer in 1…1000000")
        #expect(error("topology.grups", "4").contains("'topology.grups': expected a known field"))
        #expect(error("name.x", "1").contains("expected a dotted path through mappings"))
        #expect(error("workload.cross_group", "2").contains("'workload.cross_group': expected a number in 0.0…1.0"))
    }

    /// The resolved YAML of a scenario with every new section round-trips.
    @Test func baselineSectionsRoundTrip() throws {
        let s = try ScenarioFile(file: "tiny.yaml").parse(tinyYAML, overrides: [
            ("system", "bitcoin"), ("bitcoin.miners", "12"), ("bitcoin.bandwidth_mbps", "50"),
            ("workload.cross_group", "0.25"), ("smr.batch_timeout_ms", "2.5")])
        let again = try ScenarioFile(file: "resolved").parse(ScenarioFile.emit(s))
        #expect(again == s)
        #expect(again.bitcoin.bandwidth == 50 * 125_000 && again.workload.crossGroup == 0.25)
    }
}

@Suite struct SweepPlanTests {
    let sweep = """
        name: demo
        base: base.yaml
        seeds: 2
        set: {duration_s: 1}
        cases:
          - {topology.groups: 1, workload.rate: 10}
          - {topology.groups: 2, workload.rate: 20}
        grid:
          system: [quorumcoin, smr]
        quick:
          seeds: [9]
          cases:
            - {topology.groups: 1, workload.rate: 10}
        """

    @Test func pointsAreCasesTimesGridTimesSeedsInOrder() throws {
        let plan = try SweepPlan(text: sweep, file: "demo.yaml", directory: "dir", quick: false)
        #expect(plan.name == "demo" && plan.base == "dir/base.yaml")
        #expect(plan.points.count == 8)
        #expect(plan.varied == ["topology.groups", "workload.rate", "system"])
        let first = plan.points[0], last = plan.points[7]
        #expect(first.seed == 1 && first.labels.map(\.value) == ["1", "10", "quorumcoin"])
        #expect(plan.points[1].seed == 2 && plan.points[2].labels.last?.value == "smr")
        #expect(last.labels.map(\.value) == ["2", "20", "smr"] && last.seed == 2)
        #expect(first.overrides.map(\.path) == ["duration_s", "topology.groups", "workload.rate", "system"])
        #expect(Set(plan.points.map(\.id)).count == 8)
        // Ids are content addresses: the same point keeps its id when the sweep grows.
        let grown = try SweepPlan(text: sweep.replacingOccurrences(of: "seeds: 2", with: "seeds: 3"),
                                  file: "demo.yaml", directory: "dir", quick: false)
        #expect(Set(plan.points.map(\.id)).isSubset(of: Set(grown.points.map(\.id))))
        let quick = try SweepPlan(text: sweep, file: "demo.yaml", directory: "", quick: true)
        #expect(quick.name == "demo-quick" && quick.points.count == 2 && quick.points.allSatisfy { $0.seed == 9 })
    }

    @Test func badSweepFilesAreNamed() {
        func error(_ text: String) -> String {
            do { _ = try SweepPlan(text: text, file: "s.yaml", directory: "", quick: false); return "no error" } catch {
                return error.description
            }
        }
        #expect(error("name: x\nbase: b.yaml\ngrids: {}\n").hasPrefix("s.yaml:3: field 'grids': expected one of name, base"))
        #expect(error("name: a b\nbase: b.yaml\n").contains("field 'name': expected a name of letters"))
        #expect(error("name: x\nbase: b.yaml\ngrid: {system: smr}\n").contains("'grid.system': expected a non-empty list"))
        #expect(error("name: x\nbase: b.yaml\nseeds: 0\n").contains("'seeds': expected a count"))
        #expect(error("name: x\nbase: b.yaml\ngrid: {seed: [1, 1]}\n").contains("distinct points"))
    }

    /// Every shipped sweep (full and quick) names a base that parses with each point's overrides.
    @Test func shippedSweepsParseWithEveryPoint() throws {
        let folder = packageRoot.appendingPathComponent("scenarios/sweeps")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 6)
        for name in files {
            let text = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            for quick in [false, true] {
                let plan = try SweepPlan(text: text, file: name, directory: folder.path, quick: quick)
                let base = try String(contentsOfFile: plan.base, encoding: .utf8)
                for p in plan.points {
                    #expect(throws: Never.self, "\(name) \(p.labels)") {
                        _ = try ScenarioFile(file: plan.base).parse(base, overrides: p.overrides)
                    }
                }
            }
        }
    }
}

@Suite struct BaselineTests {
    func smr(_ edit: (inout Scenario) -> Void = { _ in }) throws -> RunReport {
        var s = try tiny { s in
            s.system = .smr
            s.network = Scenario.NetworkSettings()
            s.workload.rate = 400
            s.duration = Time.second
        }
        edit(&s)
        let run = try Systems.make(s)
        run.run(progressEvery: 1 << 16, progress: nil)
        return run.report(scenarioHash: "t", toolVersion: "t")
    }

    /// Below capacity every payment confirms, after at least the five one-way delays of
    /// request, pre-prepare, prepare, commit and reply (10 ms each here).
    @Test func smrConfirmsEveryPaymentAfterThreePhases() throws {
        let r = try smr()
        #expect(r.payments > 300 && r.confirmed == r.payments)
        #expect((r.p50 ?? 0) >= 50 * Time.millisecond && (r.p99 ?? 0) < 200 * Time.millisecond)
        #expect(try smr().summaryJSON == r.summaryJSON, "deterministic")
    }

    /// Overloaded, the committee confirms at most what its leader can verify (1 / verify cost).
    @Test func smrThroughputIsBoundedByOneReplicaVerifyingEverything() throws {
        let r = try smr { s in
            s.workload.rate = 40_000
            s.drain = 0
        }
        let bound = Double(Time.second) / Double(Scenario.CryptoSettings().verifyCost)
        let steady = Double(r.steadyThroughput) ?? 0
        #expect(steady > 0.7 * bound && steady <= bound, "steady \(steady) vs bound \(bound)")
    }

    @Test func bitcoinConfirmsAtMostFullBlocksSixDeep() throws {
        var s = try tiny { s in
            s.system = .bitcoin
            s.network = Scenario.NetworkSettings()
            s.workload.rate = 20
            s.duration = 4 * 3600 * Time.second
            s.drain = 2 * 3600 * Time.second
            s.outputs.latencyCSV = false
        }
        s.bitcoin.miners = 50
        let run = BitcoinSimulator(scenario: s)
        run.run()
        let r = run.report(scenarioHash: "t", toolVersion: "t")
        var onChain = 0
        var b = Int(run.tip[0])
        while b > 0 { onChain += 1; b = Int(run.blocks[b].parent) }
        #expect(onChain >= 6 && r.confirmed <= (onChain - 5) * 4000)
        #expect(r.confirmed > 0 && r.confirmed < r.payments, "20/s offered exceeds ~6.7/s capacity")
        // Six blocks at a 10-minute mean: nothing confirms in under a few minutes.
        #expect((run.book.confirmed.indices.map { run.book.confirmed[$0] &- run.book.issued[$0] }.min() ?? 0) > 60 * Time.second)
        #expect(run.reverted == 0)
        let again = BitcoinSimulator(scenario: s)
        again.run()
        #expect(again.report(scenarioHash: "t", toolVersion: "t").summaryJSON == r.summaryJSON)
    }

    @Test func baselinesRefuseFaults() throws {
        let s = try ScenarioFile(file: "tiny.yaml").parse(tinyYAML, overrides: [
            ("system", "smr"), ("faults.replicas", "[{behaviour: silent, count: 1}]")])
        #expect(throws: ConfigurationError.self) { _ = try Systems.make(s) }
    }
}

@Suite struct StudyMetricTests {
    /// With cross_group 0 every payee shares the payer's shard; with 1, none does.
    @Test func crossGroupShareChoosesPayeesByShard() throws {
        for share in [0.0, 1.0] {
            let s = try tiny { s in
                s.topology.groups = 4
                s.workload.crossGroup = share
                s.workload.outputs = 1
            }
            let sim = try Simulator(scenario: s)
            for p in 0..<20 {
                for payee in sim.choosePayees(for: p) {
                    guard let q = sim.principalIndex[payee.owner] else { Issue.record("unknown payee"); continue }
                    #expect((sim.principalShard[q] == sim.principalShard[p]) == (share == 0), "share \(share)")
                }
            }
        }
    }

    /// Closure validation reads history, so it costs more than certificate validation and grows
    /// with depth; validation.csv and the steady window are filled.
    @Test func closureValidationCostsMoreThanCertificate() throws {
        var mean = [ValidationMode: Double]()
        for mode in [ValidationMode.certificate, .closure] {
            let s = try tiny { s in
                s.network = Scenario.NetworkSettings()
                s.workload = Scenario.Workload()
                s.workload.principals = 12
                s.workload.coins = 1
                s.workload.arrival = .closed
                s.duration = 2 * Time.second
                s.protocolSettings.validation = mode
            }
            let sim = try Simulator(scenario: s)
            sim.run()
            let v = sim.metrics.validations
            let count = v.reduce(0) { $0 + $1.count }
            #expect(count > 50 && v.count > 5, "\(mode): \(count) validations, depth up to \(v.count - 1)")
            mean[mode] = Double(v.reduce(0) { $0 + $1.total }) / Double(max(1, count))
            let r = sim.report(scenarioHash: "t", toolVersion: "t")
            #expect(r.validationCSV.hasPrefix("depth,validations,mean_ms,max_ms\n1,"))
            #expect(r.latencyCDFCSV.hasPrefix("permille,confirm_ms\n0,") && r.latencyCDFCSV.contains("\n1000,"))
        }
        #expect((mean[.closure] ?? 0) > 1.5 * (mean[.certificate] ?? 0))
    }
}

/// `quorumsim sweep` end to end through the binary: parallel points, points.csv, resume, manifest.
@Suite struct SweepCommandTests {
    @Test func sweepRunsPointsResumesAndPrintsAManifest() throws {
        guard let binary = builtQuorumsim() else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qc-sweep-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try tinyYAML.write(to: dir.appendingPathComponent("base.yaml"), atomically: true, encoding: .utf8)
        try """
            name: mini
            base: base.yaml
            seeds: [4]
            set: {workload.rate: 20, drain_s: 3}
            grid:
              system: [quorumcoin, smr]
            """.write(to: dir.appendingPathComponent("mini.yaml"), atomically: true, encoding: .utf8)
        func sweep(_ extra: [String]) throws -> String {
            let p = Process()
            p.executableURL = binary
            p.currentDirectoryURL = dir
            p.arguments = ["sweep", "mini.yaml", "--jobs", "2", "--results", "res"] + extra
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            let out = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            return String(decoding: out, as: UTF8.self)
        }
        let first = try sweep([])
        #expect(first.contains("[1/2]") && first.contains("[2/2]") && first.contains("ETA"))
        let csvURL = dir.appendingPathComponent("res/mini/points.csv")
        let csv = try String(contentsOf: csvURL, encoding: .utf8)
        let rows = csv.split(separator: "\n")
        #expect(rows.count == 3)
        #expect(rows[0].hasPrefix("point,seed,system,groups,n,f,"))
        #expect(rows[1].contains(",4,quorumcoin,2,4,1,") && rows[2].contains(",4,smr,2,4,1,"))
        // Done points are skipped; the manifest lists only what is missing.
        #expect(try sweep([]).contains("2 points (2 already done)"))
        #expect(try sweep(["--manifest"]).isEmpty)
        let id = String(rows[2].prefix(12))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("res/mini/points/\(id)/summary.json"))
        let manifest = try sweep(["--manifest"])
        #expect(manifest.hasPrefix("quorumsim run base.yaml --seed 4 --set workload.rate=20 --set drain_s=3 --set system=smr --out res/mini/points/\(id) --quiet"))
        _ = try sweep([])
        #expect(try String(contentsOf: csvURL, encoding: .utf8) == csv, "points.csv is the same after a resumed point")
    }
}

/// `quorumsim bench` refuses bad settings before it measures anything, naming the option.
@Suite struct BenchCommandTests {
    @Test func badSettingsAreErrorsNamingTheOption() throws {
        guard let binary = builtQuorumsim() else { return }
        let cases: [(arguments: [String], names: String)] = [
            (["--settle-seconds=-1"], "--settle-seconds must be a number of seconds, 0 or more"),
            (["--settle-seconds", "nan"], "--settle-seconds must be a number of seconds, 0 or more"),
            (["--scale-repeats", "0"], "--scale-repeats must be at least 1"),
            (["--repeats", "0"], "--repeats must be at least 1"),
            (["--scale-points", "125000,abc"], "\"abc\" is not a payment count"),
            (["--scale-points", "125000,,250000"], "\"\" is not a payment count"),
            (["--scale-points", "0"], "\"0\" is not a payment count"),
        ]
        for (arguments, names) in cases {
            let p = Process()
            p.executableURL = binary
            // --skip-scale: were a setting let through, the test would not start a 15-minute curve.
            p.arguments = ["bench", "--skip-scale"] + arguments
            let errors = Pipe()
            p.standardError = errors
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            // ArgumentParser's exit code for a validation error (EX_USAGE), before any figure.
            #expect(p.terminationStatus == 64, "\(arguments)")
            #expect(text.contains(names), "\(arguments): \(text)")
        }
    }
}
