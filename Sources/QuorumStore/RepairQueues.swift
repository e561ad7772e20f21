import QuorumCrypto

/// Per group peer: keys of stored records not yet acknowledged by that peer, oldest first.
/// Peers are kept sorted in a small array (a replica has n − 1 peers in each group it serves),
/// so storing a record appends to each peer's queue without hashing replica ids, and a repair
/// round visits peers in ascending order. A peer stays listed once it has had a queue.
struct RepairQueues {
    private(set) var peers: [ReplicaID] = []
    private var queues: [[Digest]] = []
    /// Keys queued over all peers.
    private(set) var total = 0
    /// Keys a new peer's queue has room for (the default repair batch).
    static let initialCapacity = ReplicaSettings().repairBatch

    private func position(of peer: ReplicaID) -> (index: Int, found: Bool) {
        var lo = 0, hi = peers.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if peers[mid] < peer { lo = mid + 1 } else { hi = mid }
        }
        return (lo, lo < peers.count && peers[lo] == peer)
    }

    /// `peer`'s queue, or nil if it never had one.
    subscript(peer: ReplicaID) -> [Digest]? {
        let (i, found) = position(of: peer)
        return found ? queues[i] : nil
    }

    mutating func append(_ key: Digest, for peer: ReplicaID) {
        let (i, found) = position(of: peer)
        if found {
            queues[i].append(key)
        } else {
            // Room for a round's keys from the start: grown one doubling at a time, each of a
            // replica's queues was copied six times before its first offer.
            var queue = [Digest]()
            queue.reserveCapacity(RepairQueues.initialCapacity)
            queue.append(key)
            peers.insert(peer, at: i)
            queues.insert(queue, at: i)
        }
        total += 1
    }

    /// Drops the `count` oldest keys of `peer`'s queue (in place).
    mutating func removeFirst(_ count: Int, for peer: ReplicaID) {
        let (i, found) = position(of: peer)
        guard found else { return }
        let n = min(count, queues[i].count)
        // Emptied whole (the usual case: a round offers all of a short queue), the array keeps
        // its buffer: `removeFirst` of every element dropped it, so refilling the queue
        // reallocated it at every doubling, a quarter of all appends.
        if n == queues[i].count { queues[i].removeAll(keepingCapacity: true) } else { queues[i].removeFirst(n) }
        total -= n
    }

    /// Keys and key capacity over all queues (for the memory breakdown).
    var sizes: (count: Int, capacity: Int) { (total, queues.reduce(0) { $0 + $1.capacity }) }
}
