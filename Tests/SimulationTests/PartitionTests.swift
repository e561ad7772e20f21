import Testing
import QuorumCrypto
import QuorumStore
@testable import Simulation

/// A scenario a partitioned run accepts, small enough for a debug build.
func partitionedTiny(_ edit: (inout Scenario) -> Void = { _ in }) throws -> Scenario {
    var s = try ScenarioFile(file: "partitioned.yaml").parse("""
        name: partitioned
        seed: 7
        duration_s: 1
        drain_s: 10
        topology: {groups: 4, n: 4, f: 1}
        network:
          latency: {model: uniform, min_ms: 5, max_ms: 25}
        workload: {principals: 40, rate: 120, inputs: 1, outputs: 2}
        engine: {partitions: 2}
        """)
    edit(&s)
    return s
}

/// Runs `scenario` partitioned to its end: its report, and the run (for what only it knows).
func runPartitioned(_ scenario: Scenario) throws -> (RunReport, PartitionedRun) {
    let run = try PartitionedRun(scenario: scenario)
    run.run(progressEvery: 1 << 16, progress: nil)
    return (run.report(scenarioHash: "x", toolVersion: "t"), run)
}

@Suite struct PartitionTests {
    /// Every payment confirms, hand-overs and confirmations cross between the partitions, the
    /// end-of-run checks find nothing, and a second run writes the same bytes.
    @Test func partitionedRunConfirmsEveryPaymentAndRepeats() throws {
        let (a, run) = try runPartitioned(try partitionedTiny())
        #expect(a.payments > 80)
        #expect(a.confirmed == a.payments && a.failed == 0, "\(a.summaryJSON)")
        #expect(a.violations.isEmpty, "\(a.violationsCSV)")
        #expect(a.latencyCSV.split(separator: "\n").count == a.payments + 1)
        #expect(run.crossDeliveries > 0 && run.crossConfirmations > 0)
        let (b, _) = try runPartitioned(try partitionedTiny())
        #expect(a.throughputCSV == b.throughputCSV && a.latencyCSV == b.latencyCSV && a.summaryJSON == b.summaryJSON)
        #expect(a.violationsCSV == b.violationsCSV && a.validationCSV == b.validationCSV)
    }

    /// Three partitions (each waits for two others, through a semaphore per pair) end at the
    /// same window, confirm every payment and repeat byte for byte.
    @Test func threePartitionsAgreeAndRepeat() throws {
        let scenario = try partitionedTiny { $0.engine.partitions = 3 }
        let (a, run) = try runPartitioned(scenario)
        #expect(a.confirmed == a.payments && a.failed == 0 && a.violations.isEmpty, "\(a.summaryJSON)")
        #expect(run.crossDeliveries > 0 && run.partitionBusySeconds.count == 3)
        let (b, _) = try runPartitioned(scenario)
        #expect(a.summaryJSON == b.summaryJSON && a.latencyCSV == b.latencyCSV)
    }

    /// With a minimum delay of 1 ns the windows are 1 ns wide: the run gets through its 11
    /// simulated seconds only because windows where nothing was pending or on its way are
    /// skipped (every partition alike), and it ends as soon as every payment has confirmed.
    @Test func idleTimeIsSkippedAndTheRunEndsWhenAllConfirm() throws {
        let scenario = try partitionedTiny { $0.network.latency = .uniform(min: 1, max: 3 * Time.millisecond) }
        let (report, run) = try runPartitioned(scenario)
        #expect(report.payments > 80 && report.confirmed == report.payments, "\(report.summaryJSON)")
        #expect(report.violations.isEmpty, "\(report.violationsCSV)")
        #expect(run.partitionSimulators.allSatisfy { $0.endTime < scenario.duration + Time.second })
    }

    /// The windows a partitioned run steps through fit in the network's minimum delay (what a
    /// partition sends in window m cannot arrive before window m + depth), whatever the delay.
    @Test func windowsFitInTheMinimumDelay() throws {
        for delay: UInt64 in [1, 2, 3, 4, 5, 7, 999, 5 * Time.millisecond, 5 * Time.millisecond + 3] {
            let plan = WindowPlan(try partitionedTiny { $0.network.latency = .constant(delay) })
            #expect(plan.depth >= 1 && plan.width >= 1, "\(delay)")
            #expect(UInt64(plan.depth) * plan.width <= delay, "\(delay)")
            #expect(plan.depth == min(4, Int(delay)), "\(delay)")
        }
    }

    /// `--memory-breakdown` of a partitioned run frees the parts of every partition, and counts
    /// each replica's tables once, in the partition that runs it.
    @Test func memoryBreakdownCoversEveryPartition() throws {
        let run = try PartitionedRun(scenario: try partitionedTiny())
        #expect(run.memoryBreakdown().isEmpty)  // the threads have not run: nothing is theirs to free
        run.run(progressEvery: 1 << 16, progress: nil)
        let sims = run.partitionSimulators
        #expect(sims.count == 2)
        var stored = 0
        for sim in sims {
            for r in sim.replicas.indices where Int(sim.nodeOwner[r]) == Int(sim.partition) { stored += sim.replicas[r].durable.store.count }
        }
        #expect(stored > 0)
        let parts = run.memoryBreakdown()
        #expect(parts.contains { $0.part.hasPrefix("  replica table store (\(stored) entries") }, "\(parts)")
        #expect(parts.contains { $0.part.hasPrefix("hand-overs from other partitions") })
        // The principals' line comes with its parts (their bytes are not asserted: the heap
        // counters are the process's, and other tests run alongside this one).
        for name in ["of which wallets", "of which readers", "of which writers", "slots"] {
            #expect(parts.contains { $0.part.hasPrefix("  ") && $0.part.contains(name) }, "\(name): \(parts)")
        }
        #expect(sims.allSatisfy { $0.replicas.isEmpty && $0.principals.isEmpty })
    }

    /// The split gives every node one partition (a group's replicas and its principals together),
    /// every principal to exactly one partition's payers, and shares of the cap that add up to it.
    @Test func splitCoversEveryNodeOnceAndSharesTheCap() throws {
        let scenario = try partitionedTiny {
            $0.topology.groups = 7
            $0.engine.partitions = 3
            $0.workload.payments = 1001
        }
        let shardOf = (0..<40).map { ($0 * 5) % 7 }
        let splits = try (0..<3).map { try PartitionSplit(scenario: scenario, shardOf: shardOf, index: $0) }
        #expect(splits.reduce(0) { $0 + $1.paymentCap } == 1001)
        #expect(splits.flatMap(\.payers).sorted() == (0..<40).map { Int32($0) })
        let replicaCount = scenario.topology.replicaCount
        for split in splits {
            #expect(split.nodeOwner == splits[0].nodeOwner)
            for (p, group) in shardOf.enumerated() {
                // A principal lives with its group's replicas.
                #expect(split.nodeOwner[replicaCount + p] == split.nodeOwner[group * scenario.topology.n])
            }
        }
        #expect(Set(splits[0].nodeOwner) == [0, 1, 2])
        #expect(abs(splits.reduce(0.0) { $0 + $1.rate } - scenario.workload.rate) < 1e-9)
    }

    /// What a partitioned run cannot simulate is an error naming engine.partitions, not a
    /// silently different run; a one-thread entry point refuses a partitioned scenario.
    @Test func unsupportedScenariosAreErrorsNamingTheField() throws {
        let cases: [(String, (inout Scenario) -> Void)] = [
            ("faults", { $0.faults.auditReads = 1 }),
            ("minimum delay", { $0.network.latency = .normal(mean: 10 * Time.millisecond, stddev: 3 * Time.millisecond) }),
            ("assignment", { $0.topology.assignment = .randomGroup }),
            ("groups", { $0.engine.partitions = 5 }),
        ]
        for (what, edit) in cases {
            let scenario = try partitionedTiny(edit)
            do {
                _ = try Systems.make(scenario)
                Issue.record("\(what): accepted")
            } catch {
                #expect("\(error)".contains("engine.partitions"), "\(what): \(error)")
            }
        }
        #expect(throws: ConfigurationError.self) { try Simulator(scenario: try partitionedTiny()) }
    }
}
