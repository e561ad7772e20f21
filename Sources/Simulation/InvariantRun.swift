import QuorumCrypto
import QuorumLedger
import QuorumStore

/// Funds that can no longer move: inputs of payments that failed or never finished.
public struct LockedFunds: Sendable, Equatable {
    public var principal: Int
    public var amount: UInt64
    public var reason: String
}

extension Simulator {
    /// Δ: a bound on one message's network delay under the scenario's latency model (the tail of
    /// unbounded distributions is cut at 6 standard deviations).
    var delayBound: UInt64 {
        let n = scenario.network
        var d: UInt64
        switch n.latency {
        case let .constant(c): d = c
        case let .uniform(_, hi): d = hi
        case let .normal(mean, sd): d = mean &+ 6 &* sd
        case let .logNormal(mu, sigma): d = UInt64(DeterministicMath.exp(mu + 6 * sigma) * 1e6)
        case let .regions(_, matrix, jitter): d = (matrix.flatMap { $0 }.max() ?? 0) &+ jitter
        }
        if n.reorder > 0 { d &+= n.reorderDelay }
        return d
    }

    /// One hop: Δ plus the CPU a node may spend on one message (a full certificate check, a
    /// signature, and a large message).
    var hopBound: UInt64 {
        let c = scenario.crypto
        let checks = UInt64(scenario.topology.n) &* UInt64(1 + scenario.workload.inputs) &+ 2
        return delayBound &+ c.messageCost &+ checks &* c.verifyCost &+ c.signCost &+ 16_384 &* c.byteCost
    }

    /// The L1 bound for a payment whose writer started at `start` (`bound(start:)`): the later of
    /// start, the last partition heal, the liveness-mode switch and the recoveries of crashes
    /// begun by then, plus a retry interval and 8 hops. What it reads is copied out of the
    /// scenario once: the checks ask for every payment's bound, and each read of `scenario`
    /// copies the whole struct (retaining its arrays and strings; ~2,500 instructions per
    /// payment in callgrind).
    struct LivenessBound {
        let holds: Bool
        let hop: UInt64
        let partitions: [(start: UInt64, heal: UInt64)]
        let offAt: UInt64
        /// Crash-recover faults as (start, recovery), by start: a recovery that ends after a
        /// later fault's start carries the bound on to that fault's recovery, so the order of
        /// the pass matters (it was the fault table's hash order, which differs by process).
        let recoveries: [(at: UInt64, recover: UInt64)]
        let retry: UInt64

        init(_ sim: Simulator) {
            let scenario = sim.scenario
            holds = scenario.network.loss == 0  // no bound holds under random loss
            hop = sim.hopBound
            partitions = scenario.network.partitions.map { ($0.start, $0.heal) }
            offAt = sim.faults.offAt
            recoveries = sim.faults.replicas.values.filter { $0.behaviour == .crashRecover }
                .map { ($0.at, $0.recover) }.sorted { ($0.at, $0.recover) < ($1.at, $1.recover) }
            retry = scenario.protocolSettings.retry
        }

        func callAsFunction(start: UInt64) -> UInt64? {
            guard holds else { return nil }
            var from = start
            for p in partitions where p.start <= start &+ 8 &* hop { from = max(from, p.heal) }
            if offAt > 0 { from = max(from, offAt) }
            for r in recoveries where r.at <= from { from = max(from, r.recover) }
            return from &+ retry &+ 8 &* hop
        }
    }

    /// The last time a partition healed, a replica restarted or faults switched off.
    var lastDisruption: UInt64 {
        var t = faults.offAt
        for p in scenario.network.partitions { t = max(t, p.heal) }
        for (_, spec) in faults.replicas where spec.behaviour == .crashRecover { t = max(t, spec.recover) }
        return t
    }

    /// Time for repair to carry every certified record to a peer: one round per batch of the
    /// whole run's records, plus a few rounds and hops of slack.
    var repairSettle: UInt64 { repairSettle(records: records.count) }

    /// The same for a run of `records` payments (a partitioned run's, over all partitions).
    func repairSettle(records: Int) -> UInt64 {
        let repair = scenario.protocolSettings.repair
        let batches = UInt64(2 * records / ReplicaSettings().repairBatch)
        return repair &* (4 &+ batches) &+ 8 &* hopBound
    }

    func checkInvariants() -> [Violation] {
        let attackers = Set(faults.attackers.keys)
        // Commit times by key come from the payment index; a key recorded more than once (a
        // replayed payment) takes its last committed record's time, kept aside. (A full map of
        // a million keys would be built at the run's memory peak.)
        var laterCommitted = [Digest: UInt64]()
        // Only when some key was recorded twice: otherwise the index has an entry per record and
        // the pass would be a look-up per payment for nothing.
        if recordIndex.count < records.count {
            for (i, r) in records.enumerated() {
                if r.committed != PaymentRecord.never, let first = recordIndex[r.key], Int(first) != i {
                    laterCommitted[r.key] = r.committed
                }
            }
        }
        let recoveredKeys = Set(recovered)
        let unfinishedRecovered = recoveredKeys.sorted().filter { key in
            guard let i = recordIndex[key] else { return true }
            return records[Int(i)].certified == PaymentRecord.never
        }
        // L3 applies to records certified, and members reachable, long enough before the end for
        // repair rounds to carry the whole backlog.
        var repairDeadline: UInt64?
        if scenario.protocolSettings.repair > 0, unfinished == 0, endTime > repairSettle, lastDisruption <= endTime - repairSettle {
            repairDeadline = endTime - repairSettle
        }
        let stuck = (0..<replicaCount).filter { !faults.isFaulty($0) && cpu[$0].busyUntil > endTime &+ 10 * Time.second }
        let world = InvariantChecker.World(
            honestReplicas: (0..<replicaCount).filter { !faults.isByzantine($0) },
            storedRecords: { [replicas] i, visit in InvariantChecker.visitStored(replicas[i].durable.store, visit) },
            holds: { [replicas] i, key in replicas[i].durable.store.contains(key) },
            honestPayments: { [records, bound = LivenessBound(self)] visit in
                for r in records where r.isHonest && (attackers.isEmpty || !attackers.contains(Int(r.payer))) {
                    visit((key: r.key, issued: r.started, certified: r.certified, bound: bound(start: r.started)))
                }
            },
            end: endTime,
            lockedHonest: lockedFunds.filter { !attackers.contains($0.principal) && $0.reason.hasPrefix("refused") },
            recoveredUnfinished: unfinishedRecovered,
            stuckHonestReplicas: stuck,
            repairDeadline: repairDeadline.flatMap { $0 > 0 && $0 < endTime ? $0 : nil },
            groupMembers: { [context] pk in context.group(of: pk).members.map(Int.init) },
            honestLive: { [faults, endTime] i in !faults.isByzantine(i) && faults.behaviour(i, at: endTime) == nil },
            committedAt: { [records, recordIndex] key in
                if let t = laterCommitted[key] { return t }
                guard let i = recordIndex[key] else { return nil }
                let t = records[Int(i)].committed
                return t == PaymentRecord.never ? nil : t
            })
        return checker.finish(world)
    }

    /// Inputs of payments that failed or were still unfinished when the run ended.
    var lockedFunds: [LockedFunds] { records.indices.compactMap(lockedFunds(of:)) }

    /// What payment `i` locks, if it never certified.
    func lockedFunds(of i: Int) -> LockedFunds? {
        let r = records[i]
        guard r.certified == PaymentRecord.never && r.value > 0 else { return nil }
        let attack = r.attack == 0 ? nil : Attack.allCases[Int(r.attack) - 1]
        let reason: String
        if r.failed {
            reason = attack.map { "refused: \($0.rawValue) attack" } ?? "refused: an input is locked by another payment"
        } else if attack == .crashNoLog {
            reason = "payer crashed and lost its log"
        } else {
            reason = attack.map { "unfinished: \($0.rawValue) attack" } ?? "unfinished at the end of the run"
        }
        return LockedFunds(principal: Int(r.payer), amount: r.value, reason: reason)
    }

    public var runViolations: [Violation] { violations }
}
