import ArgumentParser
import Foundation
import QuorumCrypto
import Simulation

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a base scenario over parameter grids in parallel worker processes; one row per point in results/<sweep>/points.csv.",
        discussion: """
            Points run as `quorumsim run` child processes (at most --jobs at once), each writing its
            files to results/<sweep>/points/<point id>/. A point whose summary.json already matches
            its resolved scenario is skipped, so an interrupted sweep resumes where it stopped, and
            points run elsewhere (see --manifest) are collected. points.csv is rewritten in sweep
            order after every point, so it is byte-identical however the points were scheduled.
            The sweep file format is in scenarios/README.md.
            """)

    @Argument(help: "Sweep YAML file.")
    var sweep: String

    @Option(help: "Worker processes at once (default: the number of cores).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Folder that holds every sweep's folder.")
    var results = "results"

    @Flag(help: "Use the sweep file's `quick` section (a CI-sized sweep), writing results/<name>-quick/.")
    var quick = false

    @Flag(help: "Print one `quorumsim run ...` line per point not done yet, for GNU parallel or a Slurm array, and exit.")
    var manifest = false

    @Flag(help: "Run every point again even if its results exist.")
    var rerun = false

    func run() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        guard let data = FileManager.default.contents(atPath: sweep), let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("cannot read sweep file \(sweep)")
        }
        let directory = (sweep as NSString).deletingLastPathComponent
        let plan: SweepPlan
        do { plan = try SweepPlan(text: text, file: sweep, directory: directory, quick: quick) } catch {
            throw ValidationError(error.description)
        }
        guard let baseData = FileManager.default.contents(atPath: plan.base), let baseText = String(data: baseData, encoding: .utf8) else {
            throw ValidationError("\(sweep): field 'base': cannot read scenario file \(plan.base)")
        }
        // Every point's scenario must parse before anything runs.
        var scenarios = [Scenario]()
        var hashes = [String]()
        for point in plan.points {
            var s: Scenario
            do { s = try ScenarioFile(file: plan.base).parse(baseText, overrides: point.overrides) } catch {
                throw ValidationError("sweep point \(point.id) (\(label(point))): \(error.description)")
            }
            s.seed = point.seed
            scenarios.append(s)
            hashes.append(String(Blake2b.digest(Array(ScenarioFile.emit(s).utf8)).hex.prefix(16)))
        }
        let folder = "\(results)/\(plan.name)"
        let pointDir = { (p: SweepPoint) in "\(folder)/points/\(p.id)" }
        // Each point's points.csv row, read once from its summary.json; nil while not done (no
        // summary, or one of another scenario) or running.
        var rows = plan.points.indices.map { summaryRow(pointDir(plan.points[$0]), hash: hashes[$0]) }
        let todo = plan.points.indices.filter { rerun || rows[$0] == nil }

        if manifest {
            for i in todo {
                let p = plan.points[i]
                var line = "quorumsim run \(shellQuote(plan.base)) --seed \(p.seed)"
                for o in p.overrides { line += " --set " + shellQuote("\(o.path)=\(o.value)") }
                line += " --out \(shellQuote(pointDir(p))) --quiet"
                say(line)
            }
            return
        }

        try FileManager.default.createDirectory(atPath: folder + "/points", withIntermediateDirectories: true)
        try text.write(toFile: folder + "/sweep.yaml", atomically: true, encoding: .utf8)
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        // Heaviest points first, so the last to finish are short.
        let order = todo.sorted { (work(scenarios[$0]), $1) > (work(scenarios[$1]), $0) }
        let totalWork = order.reduce(0.0) { $0 + work(scenarios[$1]) }
        say("sweep \(plan.name): \(plan.points.count) points (\(plan.points.count - todo.count) already done), "
              + "\(jobs) worker(s), results in \(folder)/")
        try writePoints(plan, scenarios, rows: rows, to: folder)

        let start = ContinuousClock.now
        var pending = order[...]
        var running: [(process: Process, index: Int, started: ContinuousClock.Instant)] = []
        var finished = 0, failed = [String](), doneWork = 0.0
        while !pending.isEmpty || !running.isEmpty {
            while running.count < jobs, let i = pending.first {
                pending = pending.dropFirst()
                let p = plan.points[i]
                let dir = pointDir(p)
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try? FileManager.default.removeItem(atPath: dir + "/summary.json")
                rows[i] = nil
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                var args = ["run", plan.base, "--seed", String(p.seed), "--out", dir, "--quiet"]
                for o in p.overrides { args += ["--set", "\(o.path)=\(o.value)"] }
                process.arguments = args
                _ = FileManager.default.createFile(atPath: dir + "/log.txt", contents: nil)
                let log = FileHandle(forWritingAtPath: dir + "/log.txt")
                process.standardOutput = log
                process.standardError = log
                try process.run()
                running.append((process, i, ContinuousClock.now))
            }
            Thread.sleep(forTimeInterval: 0.05)
            var k = 0
            while k < running.count {
                let r = running[k]
                guard !r.process.isRunning else { k += 1; continue }
                running.remove(at: k)
                finished += 1
                doneWork += work(scenarios[r.index])
                let p = plan.points[r.index]
                let status = r.process.terminationStatus
                let took = seconds(ContinuousClock.now - r.started)
                let elapsed = seconds(ContinuousClock.now - start)
                let eta = doneWork > 0 ? elapsed * (totalWork - doneWork) / doneWork : 0
                var outcome: String
                rows[r.index] = summaryRow(pointDir(p), hash: hashes[r.index])
                if status == 0 || status == 2, let row = rows[r.index] {
                    outcome = "\(row.throughput) confirmed/s, p99 \(row.p99) ms" + (status == 2 ? ", INVARIANT VIOLATED" : "")
                } else {
                    outcome = "FAILED (exit \(status); see \(pointDir(p))/log.txt)"
                    failed.append(p.id)
                }
                say(String(format: "[%\(String(order.count).count)d/%d] %@ %@ seed=%llu: %@ (%.1f s) · elapsed %@ · ETA %@",
                             finished, order.count, p.id as NSString, label(p) as NSString, p.seed, outcome as NSString,
                             took, clock(elapsed) as NSString, clock(eta) as NSString))
                try writePoints(plan, scenarios, rows: rows, to: folder)
            }
        }
        say("sweep \(plan.name): \(finished) point(s) run in \(clock(seconds(ContinuousClock.now - start))), "
              + "\(failed.count) failed; \(folder)/points.csv")
        if !failed.isEmpty {
            say("failed points: " + failed.joined(separator: ", "))
            throw ExitCode(1)
        }
    }

    private func label(_ p: SweepPoint) -> String {
        p.labels.map { "\($0.path)=\($0.value)" }.joined(separator: " ")
    }

    /// Rough cost of a point (payments to simulate), to order the work and weigh the ETA.
    private func work(_ s: Scenario) -> Double {
        let seconds = Double(s.duration) / 1e9
        switch s.system {
        case .bitcoin: return 100
        case .smr: return max(1, s.workload.rate * seconds)
        case .quorumcoin:
            let offered = s.workload.arrival == .open ? s.workload.rate : Double(s.workload.principals * s.workload.inFlight) * 5
            return max(1, offered * seconds) * 10
        }
    }

    /// The figures one row of points.csv takes from a point's summary.json.
    struct Row {
        var issued = "", confirmed = "", throughput = "", p50 = "", p90 = "", p99 = "", max = "", unconfirmed = ""
        var messages = "", bytes = "", violations = 0, orphanRate = ""
    }

    /// The row of a finished point: nil unless its summary.json exists and was written for the
    /// scenario whose hash is `hash`.
    private func summaryRow(_ dir: String, hash: String) -> Row? {
        guard let data = FileManager.default.contents(atPath: dir + "/summary.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              json["scenario_hash"] as? String == hash,
              let steady = json["steady"] as? [String: Any], let latency = steady["confirm_latency_ms"] as? [String: Any] else { return nil }
        func s(_ v: Any?) -> String {
            switch v {
            case let n as NSNumber: return n.stringValue
            case let t as String: return t
            default: return ""
            }
        }
        var row = Row()
        row.issued = s(json["payments_issued"])
        row.confirmed = s(json["payments_confirmed"])
        row.throughput = s(steady["confirmed_per_s"])
        row.p50 = s(latency["p50"]); row.p90 = s(latency["p90"]); row.p99 = s(latency["p99"]); row.max = s(latency["max"])
        row.unconfirmed = s(steady["unconfirmed_of_issued"])
        row.messages = s(json["messages_total"]); row.bytes = s(json["bytes_total"])
        row.violations = (json["violations"] as? [String: Any])?.values.compactMap { ($0 as? NSNumber)?.intValue }.reduce(0, +) ?? 0
        row.orphanRate = s((json["bitcoin"] as? [String: Any])?["orphan_rate"])
        return row
    }

    /// Rewrites points.csv from every finished point, in sweep order.
    private func writePoints(_ plan: SweepPlan, _ scenarios: [Scenario], rows: [Row?], to folder: String) throws {
        // Varied fields get a column each, unless a fixed column already shows them (`system`).
        let varied = plan.varied.filter { $0 != "system" }
        var csv = "point,seed," + varied.map(csvField).joined(separator: ",")
        csv += (varied.isEmpty ? "" : ",") + "system,groups,n,f,replicas,principals,variant,validation,offered_per_s,"
        csv += "issued,confirmed,throughput_per_s,p50_ms,p90_ms,p99_ms,max_ms,unconfirmed,messages_total,bytes_total,violations,orphan_rate,dir\n"
        for (i, p) in plan.points.enumerated() {
            guard let r = rows[i] else { continue }
            let s = scenarios[i]
            var fields = [p.id, String(p.seed)] + p.labels.filter { $0.path != "system" }.map(\.value)
            fields += [s.system.rawValue, String(s.topology.groups), String(s.topology.n), String(s.topology.f),
                       String(s.topology.replicaCount), String(s.workload.principals), s.protocolSettings.variant.rawValue,
                       s.protocolSettings.validation.rawValue, "\(s.offeredRate)"]
            fields += [r.issued, r.confirmed, r.throughput, r.p50, r.p90, r.p99, r.max, r.unconfirmed, r.messages, r.bytes,
                       String(r.violations), r.orphanRate, "points/\(p.id)"]
            csv += fields.map(csvField).joined(separator: ",") + "\n"
        }
        try csv.write(toFile: folder + "/points.csv", atomically: true, encoding: .utf8)
    }
}

/// Prints a line and flushes, so progress shows when stdout is a file or a pipe.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func csvField(_ s: String) -> String {
    s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}

func shellQuote(_ s: String) -> String {
    s.allSatisfy({ $0.isLetter || $0.isNumber || "._-/=+:".contains($0) }) ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Seconds as m:ss or h:mm:ss.
func clock(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}
