import QuorumCrypto
import QuorumLedger
import QuorumStore

/// The faults of one run, resolved to concrete replicas and principals with the run's seed.
struct FaultLayer {
    /// Behaviour per faulty replica (at most one each).
    private(set) var replicas: [Int: Scenario.ReplicaFault] = [:]
    /// Attacks per Byzantine principal.
    private(set) var attackers: [Int: [Scenario.PrincipalAttack]] = [:]
    let mutant: Mutant
    let offAt: UInt64
    /// The last certified record each faulty replica was asked to store (for `other-key` lies).
    var lastRecord: [Int: StoredRecord] = [:]
    /// `flags[i]`: replica i has a fault (an array, so honest replicas cost one load per message).
    private var flags: [Bool] = []

    static let none = FaultLayer(mutant: .none, offAt: 0)

    private init(mutant: Mutant, offAt: UInt64) {
        self.mutant = mutant
        self.offAt = offAt
    }

    init(settings: Scenario.FaultSettings, topology: Scenario.Topology, principalGroups: [Int], seed: UInt64) throws(ConfigurationError) {
        self.init(mutant: settings.mutant, offAt: settings.offAt)
        var rng = DeterministicRandom(seed: seed, stream: "faults")
        let replicaCount = topology.replicaCount
        for spec in settings.replicas {
            var chosen = spec.ids
            if spec.perGroup > 0 {
                let shards = spec.groups.isEmpty ? Array(0..<topology.groups) : spec.groups
                for shard in shards {
                    var members = (0..<topology.n).map { shard * topology.n + $0 }.filter { replicas[$0] == nil && !chosen.contains($0) }
                    rng.shuffle(&members)
                    chosen += members.prefix(spec.perGroup)
                }
            }
            if spec.count > 0 {
                var pool = (0..<replicaCount).filter { replicas[$0] == nil && !chosen.contains($0) }
                rng.shuffle(&pool)
                chosen += pool.prefix(spec.count)
            }
            for id in chosen {
                guard replicas[id] == nil else {
                    throw .invalidTopology("faults: replica \(id) is given two behaviours")
                }
                replicas[id] = spec
            }
            flags = (0..<replicaCount).map { replicas[$0] != nil }
        }
        for spec in settings.principals {
            var chosen = spec.principals
            if chosen.isEmpty {
                var pool = (0..<principalGroups.count).filter { spec.groups.isEmpty || spec.groups.contains(principalGroups[$0]) }
                rng.shuffle(&pool)
                chosen = Array(pool.prefix(spec.count))
            }
            for p in chosen.sorted() { attackers[p, default: []].append(spec) }
        }
    }

    /// The behaviour of replica `i` in force at `now` (nil: honest now).
    func behaviour(_ i: Int, at now: UInt64) -> Scenario.ReplicaFault? {
        guard i < flags.count, flags[i], let spec = replicas[i], offAt == 0 || now < offAt else { return nil }
        switch spec.behaviour {
        case .crash: return now >= spec.at ? spec : nil
        case .crashRecover: return now >= spec.at && now < spec.recover ? spec : nil
        default: return spec
        }
    }

    /// Byzantine (not merely crashed or slow) replicas: their votes and stores prove nothing.
    func isByzantine(_ i: Int) -> Bool {
        guard i < flags.count, flags[i], let b = replicas[i]?.behaviour else { return false }
        switch b {
        case .crash, .crashRecover, .slow: return false
        default: return true
        }
    }

    func isFaulty(_ i: Int) -> Bool { i < flags.count && flags[i] }

    /// Whether principal `p` mounts attacks (asked on every send: no hashing when none does).
    func isAttacker(_ p: Int) -> Bool { !attackers.isEmpty && attackers[p] != nil }

    func attacks(of p: Int, at now: UInt64) -> [Scenario.PrincipalAttack] {
        guard offAt == 0 || now < offAt else { return [] }
        return attackers[p] ?? []
    }
}

extension Simulator {
    /// A replica's input through the fault layer; returns extra CPU time to charge.
    func replicaReceive(_ i: Int, _ message: Message, from: NodeID) -> UInt64 {
        if faults.mutant == .redeemWithoutSpender, case let .preparePayment(p, parents, redeems) = message,
           faults.behaviour(i, at: now) == nil {
            mutantPreparePayment(i, p, parents: parents, redeems: redeems, from: from)
            return 0
        }
        guard let fault = faults.behaviour(i, at: now) else {
            replicas[i].receive(message, from: from, now: now, into: &out)
            return 0
        }
        if case let .commit(records) = message, let first = records.first { faults.lastRecord[i] = first }
        switch fault.behaviour {
        case .crash, .crashRecover:
            return 0  // down: the message is lost
        case .silent:
            replicas[i].receive(message, from: from, now: now, into: &out)
            out.removeAll()
        case .slow:
            replicas[i].receive(message, from: from, now: now, into: &out)
            return fault.extraDelay
        case .equivocate:
            if statement(for: message) != nil {
                // Validate with a replica that remembers no lock: a vote for every valid value.
                var amnesiac = Replica(id: ReplicaID(i), signer: replicaSigners[i], context: context,
                                       settings: replicas[i].settings)
                amnesiac.receive(message, from: from, now: now, into: &out)
                return cpuCost(amnesiac.meter.take()) &- costs.messageCost
            }
            replicas[i].receive(message, from: from, now: now, into: &out)
        case .voteInvalid:
            if let s = statement(for: message) {
                signVote(i, s, to: from)
            } else {
                replicas[i].receive(message, from: from, now: now, into: &out)
            }
        case .ackWithoutStore:
            if case let .commit(records) = message, let first = records.first {
                out.send(.ack(first.key), to: from)
            } else {
                replicas[i].receive(message, from: from, now: now, into: &out)
            }
        case .readLie:
            if case let .read(_, key, request) = message {
                lie(i, fault.lie, key: key, request: request, to: from)
            } else {
                replicas[i].receive(message, from: from, now: now, into: &out)
            }
        case .collude:
            switch message {
            case .prepareRedeem, .preparePayment, .prepareBatch:
                if let s = statement(for: message) { signVote(i, s, to: from) }
            case let .commit(records):
                if let first = records.first { out.send(.ack(first.key), to: from) }
            case let .read(_, _, request):
                out.send(.readReply(request: request, .notFound), to: from)
            default:
                break
            }
        }
        return 0
    }

    /// A replica's timer through the fault layer.
    func replicaTimer(_ i: Int, token: UInt64) {
        guard let fault = faults.behaviour(i, at: now) else {
            replicas[i].timerFired(token: token, now: now, into: &out)
            return
        }
        switch fault.behaviour {
        case .crash, .crashRecover, .collude:
            return
        case .silent:
            replicas[i].timerFired(token: token, now: now, into: &out)
            out.removeAll()
        default:
            replicas[i].timerFired(token: token, now: now, into: &out)
        }
    }

    /// A crashed replica restarts from what survived: its durable state, without locks if they
    /// were volatile.
    func restart(_ i: Int) {
        let keepLocks = faults.replicas[i]?.durableLocks ?? true
        let durable = keepLocks ? replicas[i].durable : replicas[i].durable.losingLocks()
        replicas[i] = Replica(id: ReplicaID(i), signer: replicaSigners[i], context: context,
                              settings: replicas[i].settings, restoring: durable)
    }

    /// The statement an honest replica would sign for a Prepare.
    func statement(for message: Message) -> VoteStatement? {
        switch message {
        case let .prepareRedeem(r, _):
            return context.statement(.redeem, key: r.key, valueHash: r.valueHash, group: context.group(of: r.owner).id)
        case let .preparePayment(p, _, _):
            return context.statement(.payment, key: p.key, valueHash: p.key, group: context.group(of: p.payer).id)
        case let .prepareBatch(p, _, _):
            return context.statement(.batch, key: p.key, valueHash: p.key, group: context.group(of: p.payer).id)
        default:
            return nil
        }
    }

    func signVote(_ i: Int, _ statement: VoteStatement, to node: NodeID) {
        let signature = replicas[i].meter.sign(statement.signingMessage, with: replicaSigners[i])
        out.send(.vote(statement, Vote(replica: ReplicaID(i), signature: signature)), to: node)
    }

    private func lie(_ i: Int, _ kind: ReadLie, key: Digest, request: UInt64, to node: NodeID) {
        switch kind {
        case .stale:
            out.send(.readReply(request: request, .notFound), to: node)
        case .withhold:
            return
        case .otherKey:
            if let other = faults.lastRecord[i], other.key != key {
                out.send(.readReply(request: request, .certified(other)), to: node)
            } else {
                out.send(.readReply(request: request, .notFound), to: node)
            }
        case .forged:
            guard case let .redeem(held)? = replicas[i].record(key) else {
                out.send(.readReply(request: request, .notFound), to: node)
                return
            }
            let r = held.redeem
            let fake = Redeem(networkId: r.networkId, input: r.input, owner: r.owner,
                              spender: Blake2b.hash(.keySeed, r.spender.bytes), signature: r.signature)
            let s = context.statement(.redeem, key: key, valueHash: fake.valueHash, group: context.group(of: r.owner).id)
            let signature = replicas[i].meter.sign(s.signingMessage, with: replicaSigners[i])
            out.send(.readReply(request: request, .vote(.redeem(fake), s, Vote(replica: ReplicaID(i), signature: signature))), to: node)
        }
    }

    /// Test-only mutant (`redeem-without-spender`): votes for a payment whose inputs have certified
    /// redeems, whatever payment those redeems name. Shape, parents and balance are still checked.
    private func mutantPreparePayment(_ i: Int, _ p: Payment, parents: [CertifiedPayment], redeems: [CertifiedRedeem], from: NodeID) {
        let group = context.group(of: p.payer)
        guard group.contains(ReplicaID(i)) else { return }
        let meter = replicas[i].meter
        var verified = Set<Digest>()
        var map = [Digest: Payment]()
        for parent in parents {
            guard (try? context.verify(parent, meter: meter, verified: &verified)) != nil else { return }
            map[parent.key] = parent.payment
        }
        guard (try? context.rules.checkShape(p, verifier: meter)) != nil,
              (try? context.rules.checkBalance(p) { map[$0] }) != nil else { return }
        for input in p.inputs {
            guard let r = redeems.first(where: { $0.redeem.input == input }),
                  (try? context.verify(r, meter: meter, verified: &verified)) != nil else { return }
        }
        signVote(i, context.statement(.payment, key: p.key, valueHash: p.key, group: group.id), to: from)
    }
}
