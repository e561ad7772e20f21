import QuorumCrypto
import QuorumLedger
@testable import QuorumStore

/// A test-only host: replicas and clients exchange messages through one queue, delivered in FIFO
/// or seeded random order, with optional silent replicas. No simulated time beyond timer order.
final class Cluster {
    let context: ProtocolContext
    let replicaSigners: [Ed25519KeyPair]
    var replicas: [Replica]
    let principals: [Ed25519KeyPair]
    var wallets: [Wallet<PaymentProof>]
    var writers: [UInt32: Writer] = [:]
    var readers: [UInt32: Reader] = [:]
    var completions: [UInt32: [Reader.Completion]] = [:]
    var queue: [(from: NodeID, to: NodeID, message: Message)] = []
    var timers: [(node: NodeID, timer: Outbox.Timer)] = []
    var log: [Message] = []
    var rng: DeterministicRandom
    var shuffled = false
    var silent: Set<ReplicaID> = []
    /// Replaces an honest replica's answer (for lying-replica tests).
    var byzantine: [ReplicaID: (Message, NodeID) -> [(NodeID, Message)]] = [:]
    var now: UInt64 = 0

    init(shards: Int = 4, n: Int = 4, f: Int = 1, principals count: Int = 8, endowment: [Int: UInt64] = [0: 1000],
         mode: AssignmentMode = .partitioned, seed: UInt64 = 1, repair: UInt64 = 0) throws {
        let quorum = try QuorumParameters(n: n, f: f)
        let signers = (0..<shards * n).map { Ed25519KeyPair(seed: KeySeed.derive(seed: seed, label: "replica", index: UInt64($0))) }
        let keys = (0..<count).map { Ed25519KeyPair(seed: KeySeed.derive(seed: seed, label: "principal", index: UInt64($0))) }
        replicaSigners = signers
        principals = keys
        let genesisPayments = endowment.keys.sorted().compactMap { i in
            endowment[i].map { Genesis.endowment(networkId: 1, owner: keys[i], amount: $0) }
        }
        let genesis = try Genesis(payments: genesisPayments)
        let assignment = try GroupAssignment(mode: mode, beacon: Bytes32(word: seed), replicaCount: shards * n, groupSize: n)
        context = try ProtocolContext(networkId: 1, epoch: 1, quorum: quorum, genesis: genesis,
                                      replicaKeys: signers.map(\.publicKey), assignment: assignment,
                                      verifier: MemoizingVerifier(wrapping: Ed25519Verifier()))
        let ctx = context
        replicas = signers.enumerated().map { i, signer in
            Replica(id: ReplicaID(i), signer: signer, context: ctx, settings: ReplicaSettings(repairInterval: repair))
        }
        var wallets = keys.map { Wallet<PaymentProof>(signer: $0, networkId: 1) }
        for p in genesisPayments {
            if let i = keys.firstIndex(where: { $0.publicKey == p.payer }) { wallets[i].receive(p, proof: .genesis) }
        }
        self.wallets = wallets
        rng = DeterministicRandom(seed: seed, stream: "cluster")
    }

    /// Another context over this cluster's network, keys and groups, with `verifier` (a context
    /// of its own: its certificates' and records' marks are not this one's).
    func context(verifier: SignatureVerifier) throws -> ProtocolContext {
        try ProtocolContext(networkId: 1, epoch: 1, quorum: context.quorum, genesis: context.genesis,
                            replicaKeys: context.replicaKeys, assignment: context.assignment, verifier: verifier)
    }

    func client(_ principal: Int) -> NodeID { NodeID(raw: UInt32(replicas.count + principal)) }
    func group(_ principal: Int) -> Group { context.group(of: principals[principal].publicKey) }

    func enqueue(_ out: Outbox, from: NodeID) {
        for (to, message) in out.messages { queue.append((from, to, message)) }
        for t in out.timers { timers.append((from, t)) }
    }

    func deliver(_ message: Message, from: NodeID, to: NodeID) {
        log.append(message)
        var out = Outbox()
        if Int(to.raw) < replicas.count {
            let r = to.raw
            if silent.contains(r) { return }
            if let lie = byzantine[r] {
                for (dest, m) in lie(message, from) { queue.append((to, dest, m)) }
                return
            }
            replicas[Int(r)].receive(message, from: from, now: now, into: &out)
        } else if var w = writers[to.raw] {
            w.receive(message, from: from, now: now, into: &out)
            writers[to.raw] = w
        } else if var reader = readers[to.raw] {
            completions[to.raw, default: []] += reader.receive(message, from: from, now: now, into: &out)
            readers[to.raw] = reader
        }
        enqueue(out, from: to)
    }

    func pump(limit: Int = 200_000) {
        var steps = 0
        while !queue.isEmpty, steps < limit {
            let i = shuffled ? rng.uniform(below: queue.count) : 0
            let (from, to, message) = queue.remove(at: i)
            deliver(message, from: from, to: to)
            steps += 1
        }
    }

    /// Delivers everything, then fires due timers (advancing time) a few rounds.
    func settle(rounds: Int = 6) {
        pump()
        for _ in 0..<rounds {
            guard let next = timers.map(\.timer.at).min() else { break }
            now = max(now, next)
            let due = timers.filter { $0.timer.at <= now }
            timers.removeAll { $0.timer.at <= now }
            for (node, timer) in due {
                var out = Outbox()
                if Int(node.raw) < replicas.count {
                    replicas[Int(node.raw)].timerFired(token: timer.token, now: now, into: &out)
                } else if var w = writers[node.raw] {
                    w.timerFired(token: timer.token, now: now, into: &out)
                    writers[node.raw] = w
                } else if var r = readers[node.raw] {
                    r.timerFired(token: timer.token, now: now, into: &out)
                    readers[node.raw] = r
                }
                enqueue(out, from: node)
            }
            pump()
        }
    }

    /// Starts a writer for an in-flight payment of `payer` at client node `node`.
    func startWriter(_ entry: Wallet<PaymentProof>.InFlight, node: NodeID, variant: WriteVariant) {
        var writer = Writer(payment: entry.payment, redeems: entry.redeems, parents: entry.certifiedParents, variant: variant,
                            context: context, meter: CryptoMeter(context.verifier), retryInterval: 1_000_000)
        var out = Outbox()
        writer.start(now: now, into: &out)
        writers[node.raw] = writer
        enqueue(out, from: node)
    }

    /// Pays and runs the write to the end; settles wallets when committed.
    @discardableResult
    func pay(_ payer: Int, _ payees: [(Int, UInt64)], fee: UInt64 = 0, variant: WriteVariant) throws -> Writer.Status {
        let entry = try wallets[payer].pay(payees.map { Output(amount: $0.1, owner: principals[$0.0].publicKey) }, fee: fee)
        let node = client(payer)
        startWriter(entry, node: node, variant: variant)
        settle()
        let status = writers[node.raw]?.status ?? .running
        if case let .committed(certified) = status {
            wallets[payer].settle(certified.key, proof: certified.proof)
            for (payee, _) in payees { wallets[payee].receive(certified.payment, proof: certified.proof) }
        }
        writers[node.raw] = nil
        return status
    }

    func reader(_ principal: Int, mode: ValidationMode) -> NodeID {
        let node = client(principal)
        readers[node.raw] = Reader(context: context, meter: CryptoMeter(context.verifier), mode: mode, retryInterval: 1_000_000)
        completions[node.raw] = []
        return node
    }

    func read(_ type: RecordType, _ key: Digest, at group: Group, by node: NodeID) -> StoredRecord?? {
        var out = Outbox()
        guard var r = readers[node.raw] else { return nil }
        let request = r.read(type, key: key, at: group, now: now, into: &out)
        readers[node.raw] = r
        enqueue(out, from: node)
        settle()
        for case let .read(req, _, record) in completions[node.raw] ?? [] where req == request { return .some(record) }
        return nil
    }

    func validate(_ record: CertifiedPayment, parents: [CertifiedPayment], by node: NodeID) -> Result<CertifiedPayment, ReaderError>? {
        var out = Outbox()
        guard var r = readers[node.raw] else { return nil }
        completions[node.raw, default: []] += r.validate(record, parents: parents, now: now, into: &out)
        readers[node.raw] = r
        enqueue(out, from: node)
        settle()
        for case let .validated(key, result) in completions[node.raw] ?? [] where key == record.key { return result }
        return nil
    }

    /// Certified values per key over every replica's store (S1 check).
    func certifiedValues(_ key: Digest) -> Set<Digest> {
        var values = Set<Digest>()
        for r in replicas {
            switch r.record(key) {
            case let .redeem(c)?: values.insert(c.redeem.spender)
            case let .payment(c)?: values.insert(c.key)
            case nil: break
            }
        }
        return values
    }
}

extension Writer.Status {
    var certified: CertifiedPayment? {
        switch self {
        case let .certified(c), let .committed(c): return c
        case .running, .failed: return nil
        }
    }
}
