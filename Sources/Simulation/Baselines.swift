import QuorumCrypto
import QuorumStore

/// One run of any system (QuorumCoin or a baseline): what `quorumsim run` and sweeps drive.
public protocol SystemRun: AnyObject {
    func run(progressEvery: UInt64, progress: ((Progress) -> Void)?)
    func report(scenarioHash: String, toolVersion: String) -> RunReport
}

extension Simulator: SystemRun {}
extension SMRSimulator: SystemRun {}
extension BitcoinSimulator: SystemRun {}

public enum Systems {
    /// Builds the run for `scenario.system`. Byzantine faults are simulated for QuorumCoin only:
    /// a baseline scenario with faults is an error rather than a silently honest run.
    public static func make(_ scenario: Scenario) throws -> any SystemRun {
        switch scenario.system {
        case .quorumcoin:
            if scenario.engine.partitions > 1 { return try PartitionedRun(scenario: scenario) }
            return try Simulator(scenario: scenario)
        case .smr:
            try PartitionSplit.validate(scenario)
            guard scenario.faults.isEmpty else { throw ConfigurationError.invalidTopology("faults are simulated for system quorumcoin only") }
            return try SMRSimulator(scenario: scenario)
        case .bitcoin:
            try PartitionSplit.validate(scenario)
            guard scenario.faults.isEmpty else { throw ConfigurationError.invalidTopology("faults are simulated for system quorumcoin only") }
            return BitcoinSimulator(scenario: scenario)
        }
    }
}

/// The per-payment and per-bucket bookkeeping both baselines share, and their report: the same
/// files and summary fields as a QuorumCoin run, so sweeps and plots treat every system alike.
struct BaselineBook {
    let scenario: Scenario
    var issued: [UInt64] = []
    var confirmed: [UInt64] = []
    var payer: [Int32] = []
    var metrics: Metrics
    let kinds: [String]
    var messages: [Int]
    var bytes: [Int]

    init(scenario: Scenario, kinds: [String], loadGroups: Int) {
        self.scenario = scenario
        self.kinds = kinds
        messages = [Int](repeating: 0, count: kinds.count)
        bytes = [Int](repeating: 0, count: kinds.count)
        metrics = Metrics(bucket: scenario.outputs.bucket, loadGroups: loadGroups)
    }

    mutating func issue(payer p: Int32, at time: UInt64) -> Int32 {
        issued.append(time)
        confirmed.append(PaymentRecord.never)
        payer.append(p)
        metrics.issued[metrics.index(time)] += 1
        return Int32(issued.count - 1)
    }

    mutating func confirm(_ tx: Int, at time: UInt64) {
        guard confirmed[tx] == PaymentRecord.never else { return }
        confirmed[tx] = time
        metrics.confirmed[metrics.index(time)] += 1
    }

    mutating func sent(kind: Int, size: Int) {
        messages[kind] += 1
        bytes[kind] += size
    }

    mutating func handled(replicaGroup g: Int, at time: UInt64) {
        metrics.load[metrics.index(time) * metrics.loadGroups + g] += 1
    }

    var unconfirmed: Int { confirmed.count { $0 == PaymentRecord.never } }

    /// `extra` adds system-specific summary fields (raw JSON values) after the common ones.
    func report(scenarioHash: String, toolVersion: String, events: UInt64, endTime: UInt64, replicas: Int,
                extra: [(String, String)]) -> RunReport {
        let m = metrics
        let throughput = m.throughputCSV(certified: m.confirmed, failed: nil)
        var latency = "payment,payer,inputs,outputs,issued_ns,certified_ns,committed_ns,confirmed_ns,status\n"
        var confirmLatency = [UInt64]()
        for i in issued.indices {
            let c = confirmed[i]
            if c != PaymentRecord.never { confirmLatency.append(c - issued[i]) }
            if scenario.outputs.latencyCSV {
                let t = c == PaymentRecord.never ? "" : "\(c)"
                latency += "\(i),\(payer[i]),1,1,\(issued[i]),\(t),\(t),\(t),\(c == PaymentRecord.never ? "pending" : "confirmed")\n"
            }
        }
        confirmLatency.sort()
        let offered = SteadyState.offeredUntil(duration: scenario.duration, cap: scenario.workload.payments,
                                               issued: issued.count, lastIssue: issued.last)
        let steady = SteadyState(offered: offered, outcomes: zip(issued, confirmed).lazy.map { ($0, $1) })
        var json = JSONObject.runHeader(scenario, scenarioHash: scenarioHash, toolVersion: toolVersion,
                                        endTime: endTime, events: events, replicas: replicas)
        json.add("payments_issued", issued.count)
        json.add("payments_confirmed", confirmLatency.count)
        json.add("payments_failed", 0)
        json.add(raw: "confirmed_per_s", fixed(UInt64(confirmLatency.count) * Time.second, max(1, scenario.duration), 3))
        json.add(raw: "confirm_latency_ms", percentileJSON(confirmLatency))
        json.add(raw: "steady", steady.json(offered: scenario.offeredRate))
        var byKind = JSONObject()
        for (i, kind) in kinds.enumerated() {
            var entry = JSONObject()
            entry.add("messages", messages[i])
            entry.add("bytes", bytes[i])
            byKind.add(raw: kind, entry.text(indent: 2))
        }
        json.add(raw: "messages_by_kind", byKind.text(indent: 1))
        json.add("messages_total", messages.reduce(0, +))
        json.add("bytes_total", bytes.reduce(0, +))
        for (k, v) in extra { json.add(raw: k, v) }
        var noViolations = JSONObject()
        for inv in InvariantNames.all { noViolations.add(inv, 0) }
        json.add(raw: "violations", noViolations.text(indent: 1))
        return RunReport(throughputCSV: throughput, latencyCSV: latency, summaryJSON: json.text(indent: 0) + "\n",
                         violationsCSV: "invariant,time_ns,detail\n", latencyCDFCSV: steady.cdfCSV, validationCSV: "",
                         violations: [], payments: issued.count, certified: confirmLatency.count,
                         confirmed: confirmLatency.count, failed: 0, events: events, simulatedTime: endTime,
                         p50: quantile(confirmLatency, 500), p99: quantile(confirmLatency, 990),
                         steadyThroughput: steady.throughput)
    }
}

/// `{p50, p90, p99, p999, max, count}` in milliseconds.
func percentileJSON(_ sorted: [UInt64]) -> String {
    var o = JSONObject()
    for (name, permille) in [("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999)] {
        o.add(raw: name, quantile(sorted, permille).map { fixed($0, Time.millisecond, 3) } ?? "null")
    }
    o.add(raw: "max", sorted.last.map { fixed($0, Time.millisecond, 3) } ?? "null")
    o.add("count", sorted.count)
    return o.text(indent: 1)
}

extension Scenario {
    /// Offered payments per second (open loop); 0 for a closed loop, whose offered load is set by
    /// the principals' slots and the latency.
    public var offeredRate: Double { workload.arrival == .open ? workload.rate : 0 }
}

extension Scenario.Workload {
    /// Closed loop: when each of a principal's `inFlight` slots first issues, uniform in the first
    /// millisecond, in (principal, slot) order. Every system starts its closed loop from these.
    func closedLoopStarts(seed: UInt64) -> [(principal: Int32, at: UInt64)] {
        var starts = DeterministicRandom(seed: seed, stream: "closed-loop-start")
        var out = [(principal: Int32, at: UInt64)]()
        for p in 0..<principals {
            for _ in 0..<max(1, inFlight) { out.append((Int32(p), starts.uniform(below: Time.millisecond))) }
        }
        return out
    }
}
