import QuorumCrypto
import QuorumStore

/// Swarm testing: a random but valid scenario per seed — topology, network, a mix of replica
/// faults that stays within f per group, principal attacks, protocol variant — so that many
/// seeds explore combinations no hand-written scenario names. Every generated run must pass
/// every invariant.
public enum Swarm {
    public static func scenario(seed: UInt64) -> Scenario {
        var rng = DeterministicRandom(seed: seed, stream: "swarm")
        func pick<T>(_ xs: [T]) -> T { xs[rng.uniform(below: xs.count)] }
        var s = Scenario()
        s.name = "swarm-\(seed)"
        s.seed = seed
        s.duration = 2 * Time.second
        s.drain = 20 * Time.second
        let n = pick([4, 4, 5, 7])
        s.topology.n = n
        s.topology.f = (n - 1) / 3
        s.topology.groups = 2 + rng.uniform(below: 4)
        s.topology.assignment = rng.chance(0.25) ? .randomGroup : .partitioned
        s.workload.principals = 20 + rng.uniform(below: 60)
        s.workload.rate = Double(20 + rng.uniform(below: 60))
        s.workload.inputs = 1 + rng.uniform(below: 2)
        s.workload.outputs = 1 + rng.uniform(below: 2)
        s.workload.coins = s.workload.inputs + rng.uniform(below: 3)
        s.protocolSettings.variant = rng.chance(0.5) ? .perRecord : .batched
        s.protocolSettings.validation = rng.chance(0.25) ? .closure : .certificate
        s.protocolSettings.retry = UInt64(200 + rng.uniform(below: 400)) * Time.millisecond
        let ms = Time.millisecond
        switch rng.uniform(below: 4) {
        case 0: s.network.latency = .constant(UInt64(1 + rng.uniform(below: 20)) * ms)
        case 1: s.network.latency = .uniform(min: UInt64(1 + rng.uniform(below: 5)) * ms, max: UInt64(10 + rng.uniform(below: 30)) * ms)
        case 2: s.network.latency = .normal(mean: UInt64(10 + rng.uniform(below: 20)) * ms, stddev: UInt64(1 + rng.uniform(below: 5)) * ms)
        default: s.network.latency = .logNormal(mu: 2 + rng.unitInterval(), sigma: 0.1 + 0.4 * rng.unitInterval())
        }
        if rng.chance(0.3) { s.network.reorder = 0.05 * rng.unitInterval() }
        if rng.chance(0.3) { s.network.duplicate = 0.02 * rng.unitInterval() }
        if rng.chance(0.2) { s.network.loss = 0.01 * rng.unitInterval() }
        if rng.chance(0.2) {
            let start = UInt64(rng.uniform(below: 1000)) * ms
            s.network.partitions = [Scenario.Partition(start: start, heal: start + UInt64(200 + rng.uniform(below: 1500)) * ms,
                                                       isolated: [rng.uniform(below: s.topology.replicaCount)])]
        }
        // Replica faults: at most f per group (partitioned), or f in all (random-group groups overlap).
        let behaviours: [ReplicaBehaviour] = [.crash, .crashRecover, .silent, .slow, .equivocate, .voteInvalid,
                                              .ackWithoutStore, .readLie, .collude]
        let f = s.topology.f
        let slots = s.topology.assignment == .partitioned ? s.topology.groups * f : f
        var used = [Int: Int]()  // shard → faulty so far
        var taken = Set<Int>()
        for _ in 0..<rng.uniform(below: slots + 1) {
            var spec = Scenario.ReplicaFault(behaviour: pick(behaviours))
            let id = rng.uniform(below: s.topology.replicaCount)
            let shard = s.topology.assignment == .partitioned ? id / n : 0
            guard !taken.contains(id), used[shard, default: 0] < f else { continue }
            taken.insert(id)
            used[shard, default: 0] += 1
            spec.ids = [id]
            spec.at = UInt64(rng.uniform(below: 1500)) * ms
            spec.recover = spec.at + UInt64(100 + rng.uniform(below: 1500)) * ms
            spec.durableLocks = true
            spec.extraDelay = UInt64(1 + rng.uniform(below: 50)) * ms
            spec.lie = pick(ReadLie.allCases)
            s.faults.replicas.append(spec)
        }
        for attack in Attack.allCases where rng.chance(0.3) {
            var spec = Scenario.PrincipalAttack(attack: attack)
            spec.count = 1 + rng.uniform(below: 4)
            spec.rate = 0.2 + 0.8 * rng.unitInterval()
            s.faults.principals.append(spec)
        }
        if rng.chance(0.5) { s.faults.auditReads = Double(5 + rng.uniform(below: 40)) }
        if rng.chance(0.2) { s.faults.offAt = UInt64(500 + rng.uniform(below: 1500)) * ms }
        return s
    }

    /// The outcome of one swarm run.
    public struct Outcome: Sendable {
        public var seed: UInt64
        public var scenario: Scenario
        public var payments: Int
        public var confirmed: Int
        public var faults: Int
        public var attacks: Int
        public var violations: [Violation]
    }

    public static func run(seed: UInt64) throws -> Outcome {
        let s = scenario(seed: seed)
        let sim = try Simulator(scenario: s)
        sim.run()
        let report = sim.report(scenarioHash: "", toolVersion: "")
        return Outcome(seed: seed, scenario: s, payments: report.payments, confirmed: report.confirmed,
                       faults: s.faults.replicas.count, attacks: s.faults.principals.count, violations: sim.runViolations)
    }
}

/// Shrinking: reduce a failing scenario (fewer principals, payments, groups, faults, attacks, a
/// shorter horizon) while the same invariant still fails, and return the smallest found.
public enum Shrinker {
    public struct Step: Sendable {
        public var description: String
        public var scenario: Scenario
    }

    /// Candidate reductions of `s`, most aggressive first.
    static func candidates(_ s: Scenario) -> [(String, Scenario)] {
        var list = [(String, Scenario)]()
        func add(_ what: String, _ edit: (inout Scenario) -> Void) {
            var c = s
            edit(&c)
            if c != s { list.append((what, c)) }
        }
        for i in s.faults.replicas.indices { add("drop replica fault \(i) (\(s.faults.replicas[i].behaviour.rawValue))") { $0.faults.replicas.remove(at: i) } }
        for i in s.faults.principals.indices { add("drop attack \(i) (\(s.faults.principals[i].attack.rawValue))") { $0.faults.principals.remove(at: i) } }
        if s.faults.auditReads > 0 { add("no audit reads") { $0.faults.auditReads = 0 } }
        add("halve principals") { $0.workload.principals = max(4, $0.workload.principals / 2) }
        add("halve the rate") { $0.workload.rate = max(1, ($0.workload.rate / 2).rounded()) }
        add("halve the duration") { $0.duration = max(Time.second / 4, $0.duration / 2) }
        add("cap payments") { $0.workload.payments = $0.workload.payments == 0 ? 200 : max(1, $0.workload.payments / 2) }
        add("one input") { $0.workload.inputs = 1 }
        add("one output") { $0.workload.outputs = 1 }
        if s.topology.assignment == .partitioned, s.topology.groups > 1 {
            add("drop the last group") { c in
                c.topology.groups -= 1
                let limit = c.topology.groups * c.topology.n
                c.faults.replicas = c.faults.replicas.compactMap { spec in
                    var spec = spec
                    spec.ids = spec.ids.filter { $0 < limit }
                    spec.groups = spec.groups.filter { $0 < c.topology.groups }
                    return spec.ids.isEmpty && spec.perGroup == 0 && spec.count == 0 ? nil : spec
                }
                for i in c.faults.principals.indices { c.faults.principals[i].groups = c.faults.principals[i].groups.filter { $0 < c.topology.groups } }
                c.network.partitions = c.network.partitions.compactMap { p in
                    var p = p
                    p.isolated = p.isolated.filter { $0 < limit }
                    return p.isolated.isEmpty ? nil : p
                }
            }
        }
        for i in s.faults.principals.indices where s.faults.principals[i].count > 1 && s.faults.principals[i].principals.isEmpty {
            add("fewer attackers for attack \(i)") { $0.faults.principals[i].count = max(1, $0.faults.principals[i].count / 2) }
        }
        if s.drain > 5 * Time.second { add("shorter drain") { $0.drain = max(5 * Time.second, $0.drain / 2) } }
        return list
    }

    /// Greedy shrinking: apply the first reduction under which `invariant` still fails, repeat
    /// until none does or `budget` runs are spent. `progress` sees each accepted step.
    public static func shrink(_ start: Scenario, invariant: String, budget: Int = 200,
                              progress: (Step) -> Void = { _ in }) -> Scenario {
        var current = start
        var runs = 0
        var improved = true
        while improved, runs < budget {
            improved = false
            for (what, candidate) in candidates(current) {
                guard runs < budget else { break }
                runs += 1
                guard let sim = try? Simulator(scenario: candidate) else { continue }
                sim.run()
                if sim.runViolations.contains(where: { $0.invariant == invariant }) {
                    current = candidate
                    progress(Step(description: what, scenario: candidate))
                    improved = true
                    break
                }
            }
        }
        return current
    }
}
