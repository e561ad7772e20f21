import Testing
import QuorumCrypto
@testable import QuorumStore

@Suite struct RepairQueuesTests {
    /// The log with per-peer cursors behaves exactly as a queue per peer would: the same keys
    /// offered in the same order, the same counts, under random appends (groups of two to four
    /// members, as in random-group mode), offers that supersede unanswered ones, and
    /// acknowledgements interleaved across peers (which drop the log's acknowledged prefix: acks
    /// outpace appends, so queues empty and refill often).
    @Test(arguments: [1, 2, 3] as [UInt64]) func matchesAQueuePerPeer(_ seed: UInt64) {
        var rng = DeterministicRandom(seed: seed, stream: "repair-queues")
        let me: ReplicaID = 0
        var log = RepairQueues()
        var model: [ReplicaID: [Digest]] = [:]
        var outstanding: [ReplicaID: (count: Int, end: Int)] = [:]
        var nextKey: UInt64 = 1
        var partialDrops = 0
        for _ in 0..<40_000 {
            switch rng.uniform(below: 10) {
            case 0..<2:
                // A group of four distinct replicas out of ten, this one among them or not.
                var members = [ReplicaID]()
                let size = 2 + rng.uniform(below: 3)
                while members.count < size {
                    let r = ReplicaID(rng.uniform(below: 10))
                    if !members.contains(r) { members.append(r) }
                }
                let key = Digest(word: nextKey)
                nextKey += 1
                log.append(key, members: members.sorted(), except: me)
                for peer in members where peer != me { model[peer, default: []].append(key) }
            case 2..<6:
                let peer = ReplicaID(1 + rng.uniform(below: 9))
                let limit = 1 + rng.uniform(below: 4)
                let offer = log.offer(to: peer, limit: limit)
                let expected = Array((model[peer] ?? []).prefix(limit))
                #expect((offer?.keys ?? []) == expected)
                if let offer { outstanding[peer] = (offer.keys.count, offer.end) } else { outstanding[peer] = nil }
            default:
                guard let peer = outstanding.keys.sorted().first(where: { _ in rng.uniform(below: 2) == 0 }),
                      let (count, end) = outstanding[peer] else { continue }
                let before = log.sizes.count
                log.acknowledge(peer, count: count, end: end)
                model[peer]?.removeFirst(count)
                outstanding[peer] = nil
                if log.total > 0, log.sizes.count < before { partialDrops += 1 }
            }
            #expect(log.total == model.values.reduce(0) { $0 + $1.count })
        }
        // The log dropped a prefix while some peer still had keys queued, many times over.
        #expect(partialDrops > 100)
        #expect(log.peers == model.keys.sorted())
        for peer in model.keys.sorted() {
            #expect(log.queued(peer) == model[peer]?.count)
            #expect(log.offer(to: peer, limit: 1_000_000)?.keys ?? [] == model[peer] ?? [])
        }
        #expect(log.queued(me) == nil)
        // Once every peer has acknowledged everything, the log holds nothing.
        for peer in log.peers {
            if let offer = log.offer(to: peer, limit: 1_000_000) { log.acknowledge(peer, count: offer.keys.count, end: offer.end) }
        }
        #expect(log.total == 0 && log.sizes.count == 0)
    }
}
