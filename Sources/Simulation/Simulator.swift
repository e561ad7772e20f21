import QuorumCrypto
import QuorumLedger
import QuorumStore

/// Progress of a running simulation, for a progress line.
public struct Progress: Sendable {
    public var simulatedTime: UInt64
    public var horizon: UInt64
    public var events: UInt64
    public var issued: Int
    public var finished: Int
}

/// The deterministic discrete-event simulator: hosts the unmodified QuorumStore state machines on
/// a seeded event queue, with a CPU model per node and a network model between them.
public final class Simulator {
    public let scenario: Scenario
    let context: ProtocolContext
    private let verifier: MemoizingVerifier
    private var queue = EventQueue<Event>(reserving: 1 << 16)
    private var network: Network
    private var replicas: [Replica]
    private var principals: [PrincipalHost]
    private var cpu: [NodeCPU]
    private var workloadRandom: DeterministicRandom
    private var zipfCDF: [Double] = []
    private(set) var records: [PaymentRecord] = []
    private var recordIndex: [Digest: Int32] = [:]
    private(set) var metrics: Metrics
    private var out = Outbox()
    private var now: UInt64 = 0
    private(set) var events: UInt64 = 0
    private var unfinished = 0
    private var trace: TraceDigest?
    /// Simulated time the run ended.
    private(set) var endTime: UInt64 = 0

    /// Builds every replica, principal, genesis payment and the initial events.
    public init(scenario: Scenario, traceEvery: UInt64 = 0) throws {
        self.scenario = scenario
        let topology = scenario.topology
        let seed = scenario.seed
        let quorum = try QuorumParameters(n: topology.n, f: topology.f)
        let replicaCount = topology.replicaCount
        let replicaSigners = (0..<replicaCount).map {
            Ed25519KeyPair(seed: KeySeed.derive(seed: seed, label: "replica", index: UInt64($0)))
        }
        let w = scenario.workload
        let principalSigners = (0..<w.principals).map {
            Ed25519KeyPair(seed: KeySeed.derive(seed: seed, label: "principal", index: UInt64($0)))
        }
        let networkId = scenario.protocolSettings.networkId
        let genesisPayments = principalSigners.map { signer in
            Payment.signed(PaymentBody(networkId: networkId, payer: signer.publicKey, inputs: [],
                                       outputs: [Output](repeating: Output(amount: w.coinAmount, owner: signer.publicKey), count: w.coins),
                                       fee: 0, nonce: 0), by: signer)
        }
        let genesis: Genesis
        do { genesis = try Genesis(payments: genesisPayments) } catch {
            throw ConfigurationError.invalidTopology("genesis: \(error)")
        }
        let beacon = Blake2b.hash(.keySeed) { $0.append(seed); $0.append(Array("beacon".utf8)) }
        let assignment = try GroupAssignment(mode: topology.assignment, beacon: beacon, replicaCount: replicaCount, groupSize: topology.n)
        verifier = MemoizingVerifier(wrapping: Ed25519Verifier())
        context = try ProtocolContext(networkId: networkId, epoch: scenario.protocolSettings.epoch, quorum: quorum,
                                      genesis: genesis, replicaKeys: replicaSigners.map(\.publicKey),
                                      assignment: assignment, verifier: verifier)
        let settings = ReplicaSettings(repairInterval: scenario.protocolSettings.repair)
        let ctx = context
        replicas = replicaSigners.enumerated().map { i, signer in
            Replica(id: ReplicaID(i), signer: signer, context: ctx, settings: settings)
        }
        principals = zip(principalSigners, genesisPayments).map { signer, g in
            var wallet = Wallet<PaymentProof>(signer: signer, networkId: networkId)
            wallet.receive(g, proof: .genesis)
            let meter = CryptoMeter(ctx.verifier)
            return PrincipalHost(wallet: wallet,
                                 reader: Reader(context: ctx, meter: meter, mode: scenario.protocolSettings.validation,
                                                retryInterval: scenario.protocolSettings.retry, timerToken: 0),
                                 meter: meter)
        }
        cpu = [NodeCPU](repeating: NodeCPU(), count: replicaCount + w.principals)
        network = Network(settings: scenario.network, replicaCount: replicaCount, principalCount: w.principals, seed: seed)
        workloadRandom = DeterministicRandom(seed: seed, stream: "workload")
        let loadGroups = topology.assignment == .partitioned ? topology.groups : replicaCount
        metrics = Metrics(bucket: scenario.outputs.bucket, loadGroups: loadGroups)
        if traceEvery > 0 { trace = TraceDigest(every: traceEvery) }
        if case let .zipf(s) = w.recipients {
            var total = 0.0
            zipfCDF = (1...max(1, w.principals)).map { i in
                total += 1 / DeterministicMath.pow(Double(i), s)
                return total
            }
            zipfCDF = zipfCDF.map { $0 / total }
        }
        scheduleWorkload()
    }

    private var replicaCount: Int { replicas.count }

    private func scheduleWorkload() {
        let w = scenario.workload
        switch w.arrival {
        case .open:
            if w.rate > 0 { queue.push(.arrival, at: nextArrival(after: 0)) }
        case .closed:
            var starts = DeterministicRandom(seed: scenario.seed, stream: "closed-loop-start")
            for p in 0..<w.principals {
                for _ in 0..<max(1, w.inFlight) {
                    let t = starts.uniform(below: Time.millisecond)
                    queue.push(.issue(principal: Int32(p), requested: t), at: t)
                }
            }
        }
    }

    private func nextArrival(after t: UInt64) -> UInt64 {
        let gap = workloadRandom.exponential(mean: 1e9 / scenario.workload.rate)
        return t &+ (gap >= 1e15 ? UInt64(1e15) : UInt64(gap))
    }

    // MARK: Running

    /// Runs to the end: issuing stops at `duration`; the run ends when every issued payment has
    /// finished or `duration + drain` is reached.
    public func run(progressEvery: UInt64 = 1 << 16, progress: ((Progress) -> Void)? = nil) {
        let horizon = scenario.duration &+ scenario.drain
        while let next = queue.nextTime, next <= horizon {
            guard let (time, event) = queue.pop() else { break }
            now = time
            events &+= 1
            trace?.record(time: time, event: event)
            handle(event)
            if events % progressEvery == 0 {
                progress?(Progress(simulatedTime: now, horizon: horizon, events: events, issued: records.count,
                                   finished: records.count - unfinished))
            }
            if now >= scenario.duration && unfinished == 0 { break }
        }
        endTime = now
    }

    private func handle(_ event: Event) {
        switch event {
        case let .deliver(from, to, message):
            arrive(message, from: from, at: to)
        case let .timer(node, token):
            timer(node: node, token: token)
        case let .cpuFree(node):
            var c = cpu[Int(node.raw)]
            c.wakeScheduled = false
            cpu[Int(node.raw)] = c
            drainInbox(node)
        case .arrival:
            guard now < scenario.duration, !issueLimitReached else { return }
            let p = workloadRandom.uniform(below: scenario.workload.principals)
            issue(principal: p, requested: now)
            queue.push(.arrival, at: nextArrival(after: now))
        case let .issue(principal, requested):
            guard now < scenario.duration, !issueLimitReached else { return }
            issue(principal: Int(principal), requested: requested)
        }
    }

    private var issueLimitReached: Bool {
        scenario.workload.payments > 0 && records.count >= scenario.workload.payments
    }

    // MARK: CPU model

    private func arrive(_ message: Message, from: NodeID, at node: NodeID) {
        let i = Int(node.raw)
        if cpu[i].busyUntil > now || !cpu[i].isEmpty {
            cpu[i].push(from, message)
            scheduleWake(node)
        } else {
            process(message, from: from, at: node)
        }
    }

    private func scheduleWake(_ node: NodeID) {
        let i = Int(node.raw)
        guard !cpu[i].wakeScheduled else { return }
        cpu[i].wakeScheduled = true
        queue.push(.cpuFree(node: node), at: max(now, cpu[i].busyUntil))
    }

    private func drainInbox(_ node: NodeID) {
        let i = Int(node.raw)
        guard cpu[i].busyUntil <= now, let (from, message) = cpu[i].pop() else {
            if !cpu[i].isEmpty { scheduleWake(node) }
            return
        }
        process(message, from: from, at: node)
        if !cpu[i].isEmpty { scheduleWake(node) }
    }

    /// Runs one message through the node's state machine and charges its CPU for the work.
    private func process(_ message: Message, from: NodeID, at node: NodeID) {
        out.removeAll()
        let i = Int(node.raw)
        let meter: CryptoMeter
        if i < replicaCount {
            replicas[i].receive(message, from: from, now: now, into: &out)
            meter = replicas[i].meter
            let g = scenario.topology.assignment == .partitioned ? i / scenario.topology.n : i
            metrics.load[metrics.index(now) * metrics.loadGroups + g] += 1
        } else {
            principalReceive(message, from: from, principal: i - replicaCount)
            meter = principals[i - replicaCount].meter
        }
        cpu[i].handled += 1
        let work = meter.take()
        let c = scenario.crypto
        let cost = c.messageCost &+ UInt64(work.verifies) &* c.verifyCost &+ UInt64(work.signs) &* c.signCost
            &+ UInt64(message.encodedSize) &* c.byteCost
        emit(from: node, cost: cost)
    }

    /// Sends what `out` holds once the node has spent `cost` on it.
    private func emit(from node: NodeID, cost: UInt64) {
        let i = Int(node.raw)
        let done = max(now, cpu[i].busyUntil) &+ cost
        cpu[i].busyUntil = done
        for (to, message) in out.messages {
            let size = message.encodedSize
            metrics.messages[message.kindIndex] += 1
            metrics.bytes[message.kindIndex] += size
            guard let (first, second) = network.deliveries(from: node, to: to, size: size, at: done) else { continue }
            queue.push(.deliver(from: node, to: to, message: message), at: first)
            if let second { queue.push(.deliver(from: node, to: to, message: message), at: second) }
        }
        for t in out.timers { queue.push(.timer(node: node, token: t.token), at: max(t.at, done)) }
        out.removeAll()
    }

    private func timer(node: NodeID, token: UInt64) {
        out.removeAll()
        let i = Int(node.raw)
        let meter: CryptoMeter
        if i < replicaCount {
            replicas[i].timerFired(token: token, now: now, into: &out)
            meter = replicas[i].meter
        } else {
            let p = i - replicaCount
            if token == 0 {
                principals[p].reader.timerFired(token: 0, now: now, into: &out)
            } else if token == Simulator.handOverTimer {
                principals[p].handOverTimerArmed = false
                for h in principals[p].handOvers { out.send(h.message, to: self.node(ofPrincipal: h.payee)) }
                armHandOverTimer(p)
            } else if let w = principals[p].writers.firstIndex(where: { $0.token == token }) {
                principals[p].writers[w].writer.timerFired(token: token, now: now, into: &out)
            }
            meter = principals[p].meter
        }
        let work = meter.take()
        let c = scenario.crypto
        emit(from: node, cost: c.messageCost &+ UInt64(work.verifies) &* c.verifyCost &+ UInt64(work.signs) &* c.signCost)
    }

    // MARK: Principals

    private func node(ofPrincipal p: Int) -> NodeID { NodeID(raw: UInt32(replicaCount + p)) }

    private func principalReceive(_ message: Message, from: NodeID, principal p: Int) {
        switch message {
        case .vote, .reject:
            for w in principals[p].writers.indices {
                principals[p].writers[w].writer.receive(message, from: from, now: now, into: &out)
            }
            writerProgress(p)
        case let .ack(key) where Int(from.raw) >= replicaCount:
            // A payee confirms a hand-over.
            let payee = Int(from.raw) - replicaCount
            principals[p].handOvers.removeAll { $0.payee == payee && $0.key == key }
        case .ack:
            for w in principals[p].writers.indices {
                principals[p].writers[w].writer.receive(message, from: from, now: now, into: &out)
            }
            writerProgress(p)
            readerDone(p, principals[p].reader.receive(message, from: from, now: now, into: &out))
        case .readReply:
            readerDone(p, principals[p].reader.receive(message, from: from, now: now, into: &out))
        case let .handOver(payment, parents):
            guard !principals[p].accepted.contains(payment.key) else {
                out.send(.ack(payment.key), to: from)
                return
            }
            readerDone(p, principals[p].reader.validate(payment, parents: parents, now: now, into: &out))
        default:
            return
        }
    }

    private func readerDone(_ p: Int, _ completions: [Reader.Completion]) {
        for case let .validated(key, result) in completions {
            guard let index = recordIndex[key] else { continue }
            switch result {
            case let .success(certified):
                guard principals[p].accepted.insert(key).inserted else { continue }
                principals[p].wallet.receive(certified.payment, proof: certified.proof)
                out.send(.ack(key), to: node(ofPrincipal: Int(records[Int(index)].payer)))
                records[Int(index)].payeesPending -= 1
                if records[Int(index)].payeesPending == 0 {
                    records[Int(index)].confirmed = now
                    metrics.confirmed[metrics.index(now)] += 1
                    unfinished -= 1
                }
            case .failure:
                metrics.rejectedAtPayee += 1
            }
        }
    }

    /// Moves finished writers out: hand over committed payments, record times, issue deferred work.
    private func writerProgress(_ p: Int) {
        var w = 0
        while w < principals[p].writers.count {
            let slot = principals[p].writers[w]
            let index = Int(slot.payment)
            switch slot.writer.status {
            case .running:
                w += 1
            case let .certified(certified):
                markCertified(index, certified)
                w += 1
            case let .committed(certified):
                markCertified(index, certified)
                records[index].committed = now
                principals[p].wallet.settle(certified.key, proof: certified.proof)
                let me = principals[p].wallet.publicKey
                var payees = [Int]()
                for output in certified.payment.outputs where output.owner != me {
                    if let payee = principalIndex[output.owner], !payees.contains(payee) { payees.append(payee) }
                }
                let handOver = Message.handOver(certified, parents: slot.parents)
                for payee in payees {
                    out.send(handOver, to: node(ofPrincipal: payee))
                    principals[p].handOvers.append((payee, certified.key, handOver))
                }
                armHandOverTimer(p)
                if payees.isEmpty {
                    records[index].confirmed = now
                    metrics.confirmed[metrics.index(now)] += 1
                    unfinished -= 1
                }
                principals[p].writers.remove(at: w)
                slotFreed(p)
            case .failed:
                records[index].failed = true
                metrics.failed[metrics.index(now)] += 1
                unfinished -= 1
                principals[p].writers.remove(at: w)
                slotFreed(p)
            }
        }
    }

    /// Token of a principal's hand-over retry timer (writers use 1, 2, ...; the reader 0).
    static let handOverTimer = UInt64.max

    private func armHandOverTimer(_ p: Int) {
        guard !principals[p].handOverTimerArmed, !principals[p].handOvers.isEmpty else { return }
        principals[p].handOverTimerArmed = true
        out.setTimer(at: now &+ scenario.protocolSettings.retry, token: Simulator.handOverTimer)
    }

    private func markCertified(_ index: Int, _ certified: CertifiedPayment) {
        guard records[index].certified == PaymentRecord.never else { return }
        records[index].certified = now
        metrics.certified[metrics.index(now)] += 1
    }

    private lazy var principalIndex: [PublicKey: Int] = {
        var map = [PublicKey: Int](minimumCapacity: principals.count)
        for (i, p) in principals.enumerated() { map[p.wallet.publicKey] = i }
        return map
    }()

    private func slotFreed(_ p: Int) {
        switch scenario.workload.arrival {
        case .closed:
            queue.push(.issue(principal: Int32(p), requested: now), at: now)
        case .open:
            if !principals[p].deferred.isEmpty {
                let requested = principals[p].deferred.removeFirst()
                queue.push(.issue(principal: Int32(p), requested: requested), at: now)
            }
        }
    }

    private func issue(principal p: Int, requested: UInt64) {
        let w = scenario.workload
        let limit = max(1, w.inFlight)
        guard principals[p].writers.count < limit else {
            principals[p].deferred.append(requested)
            return
        }
        var payees = [Output]()
        let count = min(w.outputs, max(0, w.principals - 1))
        var chosen = [Int]()
        var attempts = 0
        while chosen.count < count, attempts < 64 * count {
            attempts += 1
            let q = pickRecipient()
            if q != p, !chosen.contains(q) { chosen.append(q) }
        }
        for q in chosen {
            let amount = 1 &+ workloadRandom.uniform(below: max(1, w.maxAmount))
            payees.append(Output(amount: amount, owner: principals[q].wallet.publicKey))
        }
        guard !payees.isEmpty else {
            metrics.skipped += 1
            return
        }
        let entry: Wallet<PaymentProof>.InFlight
        do { entry = try principals[p].wallet.pay(payees, fee: w.fee, minimumInputs: w.inputs) } catch {
            metrics.skipped += 1
            return
        }
        var parents = [CertifiedPayment]()
        for coin in entry.coins where !parents.contains(where: { $0.key == coin.parent.key }) {
            parents.append(CertifiedPayment(payment: coin.parent, proof: coin.proof))
        }
        let token = principals[p].nextToken
        principals[p].nextToken &+= 1
        var writer = Writer(payment: entry.payment, redeems: entry.redeems, parents: parents,
                            variant: scenario.protocolSettings.variant, context: context, meter: principals[p].meter,
                            retryInterval: scenario.protocolSettings.retry, timerToken: token)
        out.removeAll()
        writer.start(now: now, into: &out)
        let index = Int32(records.count)
        records.append(PaymentRecord(payer: Int32(p), inputs: UInt8(entry.payment.inputs.count),
                                     outputs: UInt8(entry.payment.outputs.count), issued: requested,
                                     payeesPending: Int32(chosen.count)))
        recordIndex[entry.payment.key] = index
        metrics.issued[metrics.index(now)] += 1
        unfinished += 1
        principals[p].writers.append((token, writer, index, parents))
        // Building the payment signed it and its redeems.
        let c = scenario.crypto
        let cost = c.messageCost &+ UInt64(1 + entry.redeems.count) &* c.signCost
        emit(from: node(ofPrincipal: p), cost: cost)
    }

    private func pickRecipient() -> Int {
        let n = scenario.workload.principals
        guard !zipfCDF.isEmpty else { return workloadRandom.uniform(below: n) }
        let u = workloadRandom.unitInterval()
        var lo = 0, hi = zipfCDF.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if zipfCDF[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    // MARK: Results

    public var traceCheckpoints: [(time: UInt64, digest: UInt64)] { trace?.checkpoints ?? [] }
    public var traceDigest: UInt64 { trace?.digest ?? 0 }
    public var verifierHits: Int { verifier.hits }
    public var verifierMisses: Int { verifier.misses }
    var networkStats: (lost: Int, cut: Int, duplicated: Int) { (network.lost, network.cut, network.duplicated) }
    var replicaRejects: Int { replicas.reduce(0) { $0 + $1.rejected } }
}

/// A cheap running digest of the event trace (time, kind, endpoints, message kind and size), with
/// checkpoints so two runs can be compared to find the first simulated time they diverge.
struct TraceDigest {
    let every: UInt64
    private(set) var digest: UInt64 = 0xcbf2_9ce4_8422_2325
    private(set) var checkpoints: [(time: UInt64, digest: UInt64)] = []
    private var count: UInt64 = 0

    init(every: UInt64) { self.every = max(1, every) }

    @inline(__always) private mutating func mix(_ v: UInt64) {
        digest = (digest ^ v) &* 0x100_0000_01b3
        digest ^= digest >> 29
    }

    mutating func record(time: UInt64, event: Event) {
        mix(time)
        switch event {
        case let .deliver(from, to, message):
            mix(1); mix(UInt64(from.raw) << 32 | UInt64(to.raw)); mix(UInt64(message.kindIndex) << 32 | UInt64(message.encodedSize))
        case let .timer(node, token):
            mix(2); mix(UInt64(node.raw)); mix(token)
        case let .cpuFree(node):
            mix(3); mix(UInt64(node.raw))
        case .arrival:
            mix(4)
        case let .issue(p, requested):
            mix(5); mix(UInt64(UInt32(bitPattern: p))); mix(requested)
        }
        count &+= 1
        if count % every == 0 { checkpoints.append((time, digest)) }
    }
}
