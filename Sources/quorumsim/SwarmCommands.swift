import ArgumentParser
import Foundation
import Simulation

struct SwarmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm",
        abstract: "Run random valid scenarios (≤ f faulty replicas per group, random attacks) and check every invariant.")

    @Option(help: "Number of seeds to run.")
    var seeds = 100

    @Option(help: "First seed.")
    var first: UInt64 = 1

    @Option(help: "Stop starting new seeds after this many wall-clock seconds (0: no limit).")
    var timeLimit: Double = 0

    @Option(help: "Folder for the scenario files of failing seeds.")
    var out = "out/swarm"

    func run() throws {
        let start = ContinuousClock.now
        print("seed   groups  n  assign       variant     validation   faults attacks payments confirmed  result")
        var failures = 0
        var ran = 0
        for seed in first..<(first &+ UInt64(max(0, seeds))) {
            if timeLimit > 0, seconds(ContinuousClock.now - start) > timeLimit { break }
            let outcome = try Swarm.run(seed: seed)
            ran += 1
            let s = outcome.scenario
            let result = outcome.violations.isEmpty ? "ok"
                : "FAIL " + Set(outcome.violations.map(\.invariant)).sorted().joined(separator: ",")
            print(String(format: "%-6llu %-7d %-2d %-12@ %-11@ %-12@ %-6d %-7d %-8d %-10d %@", seed, s.topology.groups, s.topology.n,
                         s.topology.assignment.rawValue as NSString, s.protocolSettings.variant.rawValue as NSString,
                         s.protocolSettings.validation.rawValue as NSString, outcome.faults, outcome.attacks,
                         outcome.payments, outcome.confirmed, result as NSString))
            if !outcome.violations.isEmpty {
                failures += 1
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                let file = "\(out)/swarm-\(seed).yaml"
                try ScenarioFile.emit(s).write(toFile: file, atomically: true, encoding: .utf8)
                let v = outcome.violations[0]
                print("  first violation: \(v.invariant) at t = \(v.time) ns: \(v.detail)")
                print("  replay: quorumsim replay --seed \(seed) \(file)")
            }
        }
        print("\(ran) seeds, \(failures) failing, \(String(format: "%.1f", seconds(ContinuousClock.now - start))) s")
        if failures > 0 { throw ExitCode(2) }
    }
}

struct Shrink: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reduce a failing run while the same invariant still fails; write the smallest scenario found.")

    @Argument(help: "Scenario YAML file of the failing run.")
    var scenario: String

    @Option(help: "Seed of the failing run (default: the scenario's).")
    var seed: UInt64?

    @Option(help: "Invariant to keep failing (default: the first one that fails).")
    var invariant: String?

    @Option(help: "Maximum number of runs to try.")
    var budget = 200

    @Option(help: "Where to write the shrunk scenario (default: <scenario>.shrunk.yaml).")
    var out: String?

    func run() throws {
        var start = try loadScenario(path: scenario)
        if let seed { start.seed = seed }
        let sim = try Simulator(scenario: start)
        sim.run()
        guard let target = invariant ?? sim.runViolations.first?.invariant else {
            print("no invariant fails at seed \(start.seed): nothing to shrink")
            throw ExitCode(1)
        }
        guard sim.runViolations.contains(where: { $0.invariant == target }) else {
            print("\(target) does not fail at seed \(start.seed)")
            throw ExitCode(1)
        }
        print("shrinking while \(target) fails (budget \(budget) runs)")
        let smallest = Shrinker.shrink(start, invariant: target, budget: budget) { step in
            let s = step.scenario
            print("  \(step.description): \(s.topology.groups) groups, \(s.workload.principals) principals, "
                  + "\(s.faults.replicas.count) replica faults, \(s.faults.principals.count) attacks, "
                  + "\(Double(s.duration) / 1e9) s")
        }
        let file = out ?? (scenario.hasSuffix(".yaml") ? String(scenario.dropLast(5)) : scenario) + ".shrunk.yaml"
        var text = "# Shrunk from \(scenario) at seed \(start.seed): \(target) still fails.\n"
        text += ScenarioFile.emit(smallest)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        print("smallest scenario: \(file)")
        print("replay: quorumsim replay --seed \(smallest.seed) \(file)")
    }
}
