import QuorumCrypto
import QuorumStore

/// Baseline (a): a totally ordered replicated state machine in the style of PBFT (Castro &
/// Liskov, OSDI 1999), normal case (no view changes), on the same event queue, network model and
/// CPU cost model as QuorumCoin.
///
/// One committee of `topology.n` replicas (f = `topology.f`) orders every payment. Principals sign
/// a payment and send it to the leader (replica 0), which checks the signature and batches up to
/// `smr.batch` payments or `smr.batch_timeout_ms`. The leader signs a PRE-PREPARE carrying the
/// batch; each backup checks the leader's signature and every payment's signature, and signs a
/// PREPARE to all; with the pre-prepare and 2f prepares a replica signs a COMMIT to all; with 2f+1
/// commits it executes the batch in sequence order (`smr.execute_us` per payment) and replies to
/// each payer (MAC-authenticated: no signature charged). A payer confirms on f+1 replies.
///
/// This is the SMR's best case: it uses one committee whatever `topology.groups` says, because
/// adding replicas to one ordering committee adds messages but no capacity (every replica still
/// verifies and executes every payment). Byzantine replicas are not simulated here.
public final class SMRSimulator {
    enum Msg {
        case request(tx: Int32)
        case prePrepare(batch: Int32)
        case prepare(batch: Int32)
        case commit(batch: Int32)
        case reply(tx: Int32)

        var kind: Int {
            switch self {
            case .request: return 0
            case .prePrepare: return 1
            case .prepare: return 2
            case .commit: return 3
            case .reply: return 4
            }
        }
    }

    static let kinds = ["request", "pre_prepare", "prepare", "commit", "reply"]
    /// Wire sizes besides the payments a message carries: header and signature.
    static let headerBytes = 48
    static let signatureBytes = 64

    enum Ev {
        case deliver(from: NodeID, to: NodeID, message: Msg, size: Int32)
        case cpuFree(node: NodeID)
        case arrival
        case issue(principal: Int32)
        case batchTimer(batch: Int32)
    }

    public let scenario: Scenario
    let n: Int
    let f: Int
    let costs: Scenario.CryptoSettings
    var queue = EventQueue<Ev>(reserving: 1 << 16)
    var network: Network
    var workloadRandom: DeterministicRandom
    var cpu: [NodeCPU<Msg>]
    var book: BaselineBook
    var now: UInt64 = 0
    var events: UInt64 = 0
    var endTime: UInt64 = 0

    /// Leader: payments waiting for the next batch, and the batch a timer is armed for.
    var pending: [Int32] = []
    var timerBatch: Int32 = -1
    /// Batches in sequence order.
    var batches: [[Int32]] = []
    /// Per (batch, replica), flattened `batch * n + replica`.
    var prepares: [UInt16] = []
    var commits: [UInt16] = []
    var state: [UInt8] = []
    static let prePrepared: UInt8 = 1, prepared: UInt8 = 2, committed: UInt8 = 4
    /// Per replica: batches executed (in order).
    var executed: [Int]
    /// Per payment: replies received by its payer.
    var replies: [UInt8] = []
    var unfinished = 0

    public init(scenario: Scenario) throws {
        self.scenario = scenario
        let t = scenario.topology
        _ = try QuorumParameters(n: t.n, f: t.f)
        n = t.n
        f = t.f
        costs = scenario.crypto
        let principals = scenario.workload.principals
        network = Network(settings: scenario.network, replicaCount: n, principalCount: principals, seed: scenario.seed)
        workloadRandom = DeterministicRandom(seed: scenario.seed, stream: "workload")
        cpu = [NodeCPU<Msg>](repeating: NodeCPU(), count: n + principals)
        executed = [Int](repeating: 0, count: n)
        book = BaselineBook(scenario: scenario, kinds: SMRSimulator.kinds, loadGroups: 1)
        let w = scenario.workload
        switch w.arrival {
        case .open:
            if w.rate > 0 { queue.push(.arrival, at: nextArrival(after: 0)) }
        case .closed:
            for (p, t) in w.closedLoopStarts(seed: scenario.seed) { queue.push(.issue(principal: p), at: t) }
        }
    }

    private func nextArrival(after t: UInt64) -> UInt64 {
        t &+ workloadRandom.poissonGap(perSecond: scenario.workload.rate)
    }

    public func run(progressEvery: UInt64 = 1 << 16, progress: ((Progress) -> Void)? = nil) {
        let horizon = scenario.duration &+ scenario.drain
        while let next = queue.nextTime, next <= horizon {
            guard let (time, event) = queue.pop() else { break }
            now = time
            events &+= 1
            handle(event)
            if events % progressEvery == 0 {
                progress?(Progress(simulatedTime: now, horizon: horizon, events: events, issued: book.issued.count,
                                   finished: book.issued.count - unfinished))
            }
            if unfinished == 0 && now >= scenario.duration { break }
        }
        endTime = now
    }

    private var issueLimitReached: Bool {
        scenario.workload.payments > 0 && book.issued.count >= scenario.workload.payments
    }

    private func handle(_ event: Ev) {
        switch event {
        case let .deliver(from, to, message, size):
            let i = Int(to.raw)
            if cpu[i].busyUntil > now || !cpu[i].isEmpty {
                cpu[i].push(from, message, size)
                wake(i)
            } else {
                process(message, size: size, from: from, at: i)
            }
        case let .cpuFree(node):
            let i = Int(node.raw)
            cpu[i].wakeScheduled = false
            if cpu[i].busyUntil <= now, let (from, message, size) = cpu[i].pop() { process(message, size: size, from: from, at: i) }
            if !cpu[i].isEmpty { wake(i) }
        case .arrival:
            guard now < scenario.duration, !issueLimitReached else { return }
            issue(Int32(workloadRandom.uniform(below: scenario.workload.principals)))
            queue.push(.arrival, at: nextArrival(after: now))
        case let .issue(p):
            guard now < scenario.duration, !issueLimitReached else { return }
            issue(p)
        case let .batchTimer(batch):
            if batch == timerBatch, !pending.isEmpty { cutBatch() }
        }
    }

    private func wake(_ i: Int) {
        guard !cpu[i].wakeScheduled else { return }
        cpu[i].wakeScheduled = true
        queue.push(.cpuFree(node: NodeID(raw: UInt32(i))), at: max(now, cpu[i].busyUntil))
    }

    /// A principal signs a payment and sends it to the leader.
    private func issue(_ p: Int32) {
        let tx = book.issue(payer: p, at: now)
        replies.append(0)
        unfinished += 1
        let node = n + Int(p)
        let done = busy(node, costs.messageCost &+ costs.signCost)
        send(.request(tx: tx), from: node, to: 0, size: scenario.smr.paymentBytes, at: done)
    }

    /// Charges `cost` to a node's CPU; returns when it is done.
    private func busy(_ node: Int, _ cost: UInt64) -> UInt64 {
        let done = max(now, cpu[node].busyUntil) &+ cost
        cpu[node].busyUntil = done
        return done
    }

    private func send(_ message: Msg, from: Int, to: Int, size: Int, at time: UInt64) {
        book.sent(kind: message.kind, size: size)
        let a = NodeID(raw: UInt32(from)), b = NodeID(raw: UInt32(to))
        guard let (first, second) = network.deliveries(from: a, to: b, size: size, at: time) else { return }
        queue.push(.deliver(from: a, to: b, message: message, size: Int32(truncatingIfNeeded: size)), at: first)
        if let second { queue.push(.deliver(from: a, to: b, message: message, size: Int32(truncatingIfNeeded: size)), at: second) }
    }

    private func process(_ message: Msg, size: Int32, from: NodeID, at i: Int) {
        let base = costs.messageCost &+ UInt64(size) &* costs.byteCost
        if i < n { book.handled(replicaGroup: 0, at: now) }
        switch message {
        case let .request(tx):
            // Leader: check the payer's signature, add to the open batch.
            _ = busy(i, base &+ costs.verifyCost)
            pending.append(tx)
            if pending.count >= scenario.smr.batch {
                cutBatch()
            } else if pending.count == 1 {
                timerBatch = Int32(batches.count)
                queue.push(.batchTimer(batch: timerBatch), at: cpu[i].busyUntil &+ scenario.smr.batchTimeout)
            }
        case let .prePrepare(batch):
            // Backup: check the leader's signature and every payment's, sign a prepare.
            let b = Int(batch)
            let done = busy(i, base &+ UInt64(1 + batches[b].count) &* costs.verifyCost &+ costs.signCost)
            state[b * n + i] |= SMRSimulator.prePrepared
            prepares[b * n + i] &+= 1
            broadcast(.prepare(batch: batch), from: i, size: SMRSimulator.headerBytes + SMRSimulator.signatureBytes, at: done)
            advance(b, at: i)
        case let .prepare(batch):
            _ = busy(i, base &+ costs.verifyCost)
            prepares[Int(batch) * n + i] &+= 1
            advance(Int(batch), at: i)
        case let .commit(batch):
            _ = busy(i, base &+ costs.verifyCost)
            commits[Int(batch) * n + i] &+= 1
            advance(Int(batch), at: i)
        case let .reply(tx):
            _ = busy(i, base)
            let t = Int(tx)
            replies[t] &+= 1
            if Int(replies[t]) == f + 1 {
                book.confirm(t, at: cpu[i].busyUntil)
                unfinished -= 1
                if scenario.workload.arrival == .closed { queue.push(.issue(principal: Int32(i - n)), at: cpu[i].busyUntil) }
            }
        }
    }

    /// The leader signs a pre-prepare for the open batch and sends it to every backup.
    private func cutBatch() {
        let b = batches.count
        batches.append(pending)
        pending.removeAll(keepingCapacity: true)
        timerBatch = -1
        prepares += [UInt16](repeating: 0, count: n)
        commits += [UInt16](repeating: 0, count: n)
        state += [UInt8](repeating: 0, count: n)
        state[b * n] |= SMRSimulator.prePrepared
        let done = busy(0, costs.signCost)
        let size = SMRSimulator.headerBytes + SMRSimulator.signatureBytes + batches[b].count * scenario.smr.paymentBytes
        broadcast(.prePrepare(batch: Int32(b)), from: 0, size: size, at: done)
        advance(b, at: 0)
    }

    private func broadcast(_ message: Msg, from: Int, size: Int, at time: UInt64) {
        for to in 0..<n where to != from { send(message, from: from, to: to, size: size, at: time) }
    }

    /// PBFT's prepared and committed-local predicates for batch `b` at replica `r`; execution in
    /// sequence order.
    private func advance(_ b: Int, at r: Int) {
        let k = b * n + r
        if state[k] & SMRSimulator.prePrepared != 0, state[k] & SMRSimulator.prepared == 0, Int(prepares[k]) >= 2 * f {
            state[k] |= SMRSimulator.prepared
            commits[k] &+= 1
            let done = busy(r, costs.signCost)
            broadcast(.commit(batch: Int32(b)), from: r, size: SMRSimulator.headerBytes + SMRSimulator.signatureBytes, at: done)
        }
        if state[k] & SMRSimulator.prepared != 0, state[k] & SMRSimulator.committed == 0, Int(commits[k]) >= 2 * f + 1 {
            state[k] |= SMRSimulator.committed
        }
        while executed[r] < batches.count, state[executed[r] * n + r] & SMRSimulator.committed != 0 {
            let batch = batches[executed[r]]
            executed[r] += 1
            let done = busy(r, UInt64(batch.count) &* scenario.smr.executeCost)
            for tx in batch {
                send(.reply(tx: tx), from: r, to: n + Int(book.payer[Int(tx)]), size: SMRSimulator.headerBytes + 32, at: done)
            }
        }
    }

    public func report(scenarioHash: String, toolVersion: String) -> RunReport {
        let sizes = batches.map(\.count).sorted()
        var smr = JSONObject()
        smr.add("committee", n)
        smr.add("batches", batches.count)
        smr.add("batch_size_p50", quantile(sizes.map { UInt64($0) }, 500) ?? 0)
        smr.add("batch_size_max", sizes.last ?? 0)
        smr.add("leader_backlog_at_end", cpu[0].pending + pending.count)
        return book.report(scenarioHash: scenarioHash, toolVersion: toolVersion, events: events, endTime: endTime,
                           replicas: n, extra: [("smr", smr.text(indent: 1))])
    }
}
