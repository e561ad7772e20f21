import QuorumCrypto
import QuorumStore

/// The engine alone: the event queue and the dispatch switch, with no protocol work, for
/// `quorumsim bench`. Every popped timer event reschedules itself a random delay later, so the
/// queue holds `pending` events throughout.
public enum EngineBench {
    /// Processes `events` events with `pending` outstanding; returns a checksum (so the work is
    /// not optimized away).
    public static func run(events: Int, pending: Int, seed: UInt64 = 1) -> UInt64 {
        var queue = EventQueue<Event>(reserving: pending)
        var rng = DeterministicRandom(seed: seed, stream: "engine-bench")
        for i in 0..<pending {
            queue.push(.timer(node: NodeID(raw: UInt32(i % 4096)), token: UInt64(i)), at: rng.uniform(below: 1_000_000_000))
        }
        var checksum: UInt64 = 0
        for _ in 0..<events {
            guard let (time, event) = queue.pop() else { break }
            switch event {
            case let .timer(node, token):
                checksum &+= token ^ UInt64(node.raw)
                queue.push(.timer(node: node, token: token &+ 1), at: time &+ 1 &+ rng.uniform(below: 10_000_000))
            case .cpuFree, .arrival, .issue, .deliver, .deliverBytes, .restart, .principalRecover, .auditRead, .secondSpend:
                checksum &+= time
            }
        }
        return checksum
    }
}

extension EngineBench {
    /// The same loop with an 8-byte payload: isolates the heap from the event slab.
    public static func runSmallPayload(events: Int, pending: Int, seed: UInt64 = 1) -> UInt64 {
        var queue = EventQueue<UInt64>(reserving: pending)
        var rng = DeterministicRandom(seed: seed, stream: "engine-bench")
        for i in 0..<pending { queue.push(UInt64(i), at: rng.uniform(below: 1_000_000_000)) }
        var checksum: UInt64 = 0
        for _ in 0..<events {
            guard let (time, token) = queue.pop() else { break }
            checksum &+= token
            queue.push(token &+ 1, at: time &+ 1 &+ rng.uniform(below: 10_000_000))
        }
        return checksum
    }
}

extension Simulator {
    /// Signatures made in the run (by replicas, writers and wallets) and signature checks that
    /// reached the signature scheme (memoized checks excluded): the run's crypto work.
    public var signatureWork: (signs: Int, verifies: Int) { (signsMade, memoMisses ?? verifierCalls) }
}

extension EngineBench {
    /// Bytes one event occupies in the queue (payload inline in its bucket), and of a message.
    public static var eventBytes: (event: Int, message: Int) {
        (MemoryLayout<EventQueue<Event>.Slot>.stride, MemoryLayout<Message>.stride)
    }
}
