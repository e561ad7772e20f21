import QuorumCrypto
import QuorumStore

/// Baseline (b): Bitcoin's proof-of-work longest chain (Nakamoto 2008) as a discrete-event model
/// on the same event queue, latency model and CPU costs.
///
/// - Blocks are found as one Poisson process of mean `bitcoin.block_interval_s` over all miners,
///   each with equal hash power; the finder extends the longest chain it knows (first seen wins a
///   tie).
/// - A block holds at most `block_bytes / payment_bytes` payments (1 MB / 250 B ≈ 4,000, the
///   figures of Croman et al., FC 2016), taken oldest first from the payments issued so far that
///   its chain does not hold yet. Payments reach every miner's mempool at once (their propagation
///   takes seconds, blocks take minutes), so each chain holds a prefix of the issue order.
/// - Blocks spread by gossip: a miner that has validated a block sends it to its peers (`peers`
///   random ones plus ring neighbours, so the graph is connected) one after another on its
///   uplink at `bandwidth_mbps`, plus the network model's one-way delay; the receiver validates
///   it (every payment's signature at `crypto.verify_us`, every byte at `crypto.byte_ns`) before
///   adopting and relaying it. Blocks found during propagation fork the chain (Decker &
///   Wattenhofer, P2P 2013, measured this as the source of Bitcoin's forks).
/// - A payment confirms when its block is `confirmations` deep on the chain an observer (miner 0)
///   follows. A later reorganisation deeper than that would be counted in
///   `bitcoin.reverted_confirmations`.
public final class BitcoinSimulator {
    enum Ev {
        case blockFound
        case deliver(from: Int32, to: Int32, block: Int32)
        case validated(node: Int32, from: Int32, block: Int32)
    }

    struct Block {
        var parent: Int32
        var height: Int32
        var miner: Int32
        /// Payments `txStart ..< txEnd` of the issue order.
        var txStart: Int
        var txEnd: Int
        var found: UInt64
    }

    public let scenario: Scenario
    let settings: Scenario.BitcoinSettings
    let miners: Int
    let capacity: Int
    var queue = EventQueue<Ev>(reserving: 1 << 12)
    var network: Network
    var miningRandom: DeterministicRandom
    var workloadRandom: DeterministicRandom
    var peers: [[Int32]]
    var blocks: [Block] = []
    /// Per (block, miner), flattened: 0 unknown, 1 being validated, 2 known.
    var known: [UInt8] = []
    var tip: [Int32]
    var cpuFree: [UInt64]
    /// Blocks that arrived before their parent, by parent.
    var orphans: [Int32: [(node: Int32, from: Int32, block: Int32)]] = [:]
    var book: BaselineBook
    /// Issue time of the next payment not generated yet (payments are generated lazily, in order).
    var nextIssue: UInt64 = 0
    var now: UInt64 = 0
    var events: UInt64 = 0
    var endTime: UInt64 = 0
    var confirmedThrough = 0
    var reverted = 0
    var deliveries = 0

    static let drawLimit = 5_000_000

    public init(scenario: Scenario) {
        self.scenario = scenario
        settings = scenario.bitcoin
        miners = settings.miners > 0 ? settings.miners : min(10_000, max(1, scenario.topology.replicaCount))
        capacity = settings.blockBytes / settings.paymentBytes
        network = Network(settings: scenario.network, replicaCount: miners, principalCount: 0, seed: scenario.seed)
        miningRandom = DeterministicRandom(seed: scenario.seed, stream: "mining")
        workloadRandom = DeterministicRandom(seed: scenario.seed, stream: "workload")
        var topology = DeterministicRandom(seed: scenario.seed, stream: "bitcoin-peers")
        var links = [[Int32]](repeating: [], count: miners)
        func link(_ a: Int, _ b: Int) {
            guard a != b, !links[a].contains(Int32(b)) else { return }
            links[a].append(Int32(b))
            links[b].append(Int32(a))
        }
        if miners > 1 {
            for m in 0..<miners {
                link(m, (m + 1) % miners)
                for _ in 0..<settings.peers { link(m, topology.uniform(below: miners)) }
            }
        }
        peers = links
        tip = [Int32](repeating: 0, count: miners)
        cpuFree = [UInt64](repeating: 0, count: miners)
        book = BaselineBook(scenario: scenario, kinds: ["block"], loadGroups: 1)
        // Block 0: genesis, known to all.
        blocks.append(Block(parent: -1, height: 0, miner: -1, txStart: 0, txEnd: 0, found: 0))
        known = [UInt8](repeating: 2, count: miners)
        nextIssue = firstIssue()
        queue.push(.blockFound, at: nextBlockTime(after: 0))
    }

    private func firstIssue() -> UInt64 {
        scenario.workload.rate > 0 && scenario.workload.arrival == .open ? gap() : UInt64.max
    }

    private func gap() -> UInt64 { workloadRandom.poissonGap(perSecond: scenario.workload.rate) }

    private func nextBlockTime(after t: UInt64) -> UInt64 {
        let g = miningRandom.exponential(mean: Double(settings.blockInterval))
        return t &+ (g >= 1e18 ? UInt64(1e18) : UInt64(g))
    }

    /// Generates payments (in issue order) up to index `count` or up to time `time`, whichever
    /// comes first; returns how many exist with issue time ≤ `time`.
    private func issued(upTo count: Int, by time: UInt64) -> Int {
        let limit = scenario.workload.payments
        while book.issued.count < count, nextIssue <= time, nextIssue < scenario.duration,
              limit == 0 || book.issued.count < limit {
            _ = book.issue(payer: Int32(workloadRandom.uniform(below: max(1, scenario.workload.principals))), at: nextIssue)
            nextIssue &+= gap()
        }
        return book.issued.count
    }

    public func run(progressEvery: UInt64 = 1 << 12, progress: ((Progress) -> Void)? = nil) {
        let horizon = scenario.duration &+ scenario.drain
        while let next = queue.nextTime, next <= horizon {
            guard let (time, event) = queue.pop() else { break }
            now = time
            events &+= 1
            handle(event)
            if events % progressEvery == 0 {
                progress?(Progress(simulatedTime: now, horizon: horizon, events: events, issued: book.issued.count,
                                   finished: confirmedThrough))
            }
            if now >= scenario.duration, book.issued.count == confirmedThrough, nextIssue >= scenario.duration { break }
        }
        endTime = now
        // Payments issued before `duration` that no block took still count as issued (drawn up
        // to 5 million; beyond that the backlog is reported, not materialised).
        _ = issued(upTo: max(book.issued.count, BitcoinSimulator.drawLimit), by: scenario.duration)
    }

    private func handle(_ event: Ev) {
        switch event {
        case .blockFound:
            let miner = miningRandom.uniform(below: miners)
            let parent = Int(tip[miner])
            let start = blocks[parent].txEnd
            let end = min(start + capacity, issued(upTo: start + capacity, by: now))
            let b = Int32(blocks.count)
            blocks.append(Block(parent: Int32(parent), height: blocks[parent].height + 1, miner: Int32(miner),
                                txStart: start, txEnd: max(start, end), found: now))
            known += [UInt8](repeating: 0, count: miners)
            adopt(b, at: miner, from: -1)
            queue.push(.blockFound, at: nextBlockTime(after: now))
        case let .deliver(from, to, block):
            let k = Int(block) * miners + Int(to)
            guard known[k] == 0 else { return }
            let parent = blocks[Int(block)].parent
            guard known[Int(parent) * miners + Int(to)] == 2 else {
                orphans[parent, default: []].append((to, from, block))
                known[k] = 1
                return
            }
            validate(block, at: Int(to), from: from)
        case let .validated(node, from, block):
            adopt(block, at: Int(node), from: Int(from))
        }
    }

    /// The node checks every payment and the block's bytes, then adopts it.
    private func validate(_ block: Int32, at node: Int, from: Int32) {
        known[Int(block) * miners + node] = 1
        let b = blocks[Int(block)]
        let txs = UInt64(b.txEnd - b.txStart)
        let bytes = UInt64(80 + (b.txEnd - b.txStart) * settings.paymentBytes)
        let cost = scenario.crypto.messageCost &+ txs &* scenario.crypto.verifyCost &+ bytes &* scenario.crypto.byteCost
        let done = max(now, cpuFree[node]) &+ cost
        cpuFree[node] = done
        queue.push(.validated(node: Int32(node), from: from, block: block), at: done)
    }

    private func adopt(_ block: Int32, at node: Int, from: Int) {
        let i = Int(block)
        known[i * miners + node] = 2
        book.handled(replicaGroup: 0, at: now)
        if blocks[i].height > blocks[Int(tip[node])].height {
            tip[node] = block
            if node == 0 { observerTipChanged() }
        }
        // Relay to peers one after another on the uplink.
        let size = 80 + (blocks[i].txEnd - blocks[i].txStart) * settings.paymentBytes
        let transfer = UInt64(size) &* Time.second / max(1, settings.bandwidth)
        var depart = now
        for peer in peers[node] where Int(peer) != from {
            depart &+= transfer
            book.sent(kind: 0, size: size)
            deliveries += 1
            let a = NodeID(raw: UInt32(node)), z = NodeID(raw: UInt32(peer))
            guard let (first, _) = network.deliveries(from: a, to: z, size: 0, at: depart) else { continue }
            queue.push(.deliver(from: Int32(node), to: peer, block: block), at: first)
        }
        if let waiting = orphans.removeValue(forKey: block) {
            for w in waiting where Int(w.node) == node {
                validate(w.block, at: node, from: w.from)
            }
            let others = waiting.filter { Int($0.node) != node }
            if !others.isEmpty { orphans[block] = others }
        }
    }

    /// Confirms payments in blocks `confirmations` deep on the observer's chain.
    private func observerTipChanged() {
        let c = Int32(settings.confirmations)
        var chain = [Int]()
        var b = Int(tip[0])
        while b > 0 {
            chain.append(b)
            b = Int(blocks[b].parent)
        }
        chain.reverse()
        let deepEnough = Int(blocks[Int(tip[0])].height - c + 1)
        var through = 0
        for (h, block) in chain.enumerated() where h + 1 <= deepEnough {
            through = blocks[block].txEnd
        }
        if through < confirmedThrough {
            reverted += confirmedThrough - through
            return
        }
        for tx in confirmedThrough..<through where tx < book.issued.count { book.confirm(tx, at: now) }
        confirmedThrough = max(confirmedThrough, through)
    }

    public func report(scenarioHash: String, toolVersion: String) -> RunReport {
        var onChain = Set<Int>()
        var b = Int(tip[0])
        while b > 0 {
            onChain.insert(b)
            b = Int(blocks[b].parent)
        }
        var full = 0
        for i in onChain where blocks[i].txEnd - blocks[i].txStart == capacity { full += 1 }
        var j = JSONObject()
        j.add("miners", miners)
        j.add("blocks_found", blocks.count - 1)
        j.add("blocks_on_chain", onChain.count)
        j.add("blocks_orphaned", blocks.count - 1 - onChain.count)
        j.add(raw: "orphan_rate", fixed(UInt64(blocks.count - 1 - onChain.count) * 1000, UInt64(max(1, blocks.count - 1)) * 1000, 4))
        j.add("full_blocks_on_chain", full)
        j.add("payments_per_block", capacity)
        j.add("block_deliveries", deliveries)
        j.add("reverted_confirmations", reverted)
        j.add("backlog_at_end", book.issued.count - confirmedThrough)
        j.add("issue_draws_capped", nextIssue < scenario.duration ? 1 : 0)
        return book.report(scenarioHash: scenarioHash, toolVersion: toolVersion, events: events, endTime: endTime,
                           replicas: miners, extra: [("bitcoin", j.text(indent: 1))])
    }
}
