import QuorumCrypto

/// Per group peer: keys of stored records not yet acknowledged by that peer, oldest first.
///
/// Kept as one log of stored keys, each with its group's members, and a cursor per peer, rather
/// than a queue per peer: storing a record appends one entry instead of one key to each of n − 1
/// queues (in a large run, each queue's storage was a cold cache line or two of its own, on every
/// commit a replica accepted: 4.5 % of last-level misses). A peer's queue is the log's entries from
/// its cursor on whose group has the peer as a member; an offer scans them, and the peer's
/// acknowledgement moves its cursor past the scan. Entries every peer has passed are dropped.
/// Peers are kept sorted, so a repair round visits them in ascending order. A peer stays listed
/// once it has had a queue.
struct RepairQueues {
    struct Entry {
        let key: Digest
        /// The record's group (the replica itself among them: it is never a peer).
        let members: [ReplicaID]
    }

    /// One peer's place: where its queue starts in the log (an absolute position, counting
    /// dropped entries) and how many keys it holds.
    private struct Peer {
        let id: ReplicaID
        var next: Int
        var queued: Int
    }

    private var log: [Entry] = []
    /// Absolute position of `log[0]`: entries before it were acknowledged by every peer.
    private var base = 0
    private var state: [Peer] = []
    /// Keys queued over all peers.
    private(set) var total = 0
    /// Entries the log has room for from the start (the default repair batch): grown one
    /// doubling at a time, it was copied six times before its first offer.
    static let initialCapacity = ReplicaSettings().repairBatch

    /// Where the log's and the peers' array references sit in this struct, and the bytes of a
    /// log entry, for a host's prefetch hints (an array is one reference to its storage: a
    /// 16-byte header, its count, its capacity, then the elements).
    static let logOffset = MemoryLayout<RepairQueues>.offset(of: \RepairQueues.log)
    static let peersOffset = MemoryLayout<RepairQueues>.offset(of: \RepairQueues.state)
    static var entryStride: Int { MemoryLayout<Entry>.stride }

    /// The log's storage (for tests of the hints).
    var logAddress: UnsafeRawPointer? { log.withUnsafeBufferPointer { $0.baseAddress.map { UnsafeRawPointer($0) - 32 } } }

    /// The peers that have had a queue, ascending.
    var peers: [ReplicaID] { state.map(\.id) }

    private func position(of peer: ReplicaID) -> (index: Int, found: Bool) {
        var lo = 0, hi = state.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if state[mid].id < peer { lo = mid + 1 } else { hi = mid }
        }
        return (lo, lo < state.count && state[lo].id == peer)
    }

    /// Keys queued for `peer`, or nil if it never had a queue.
    func queued(_ peer: ReplicaID) -> Int? {
        let (i, found) = position(of: peer)
        return found ? state[i].queued : nil
    }

    /// Queues `key` for every member of `members` but `me`.
    mutating func append(_ key: Digest, members: [ReplicaID], except me: ReplicaID) {
        if log.capacity == 0 { log.reserveCapacity(RepairQueues.initialCapacity) }
        let at = base + log.count
        log.append(Entry(key: key, members: members))
        for peer in members where peer != me {
            let (i, found) = position(of: peer)
            if !found {
                state.insert(Peer(id: peer, next: at, queued: 0), at: i)
            } else if state[i].queued == 0 {
                state[i].next = at  // an empty queue starts at its first key
            }
            state[i].queued += 1
            total += 1
        }
    }

    /// The first `limit` keys of `peer`'s queue, oldest first, and the log position just past
    /// the last of them (where the queue continues once they are acknowledged); nil if the queue
    /// is empty.
    func offer(to peer: ReplicaID, limit: Int) -> (keys: [Digest], end: Int)? {
        let (i, found) = position(of: peer)
        guard found, state[i].queued > 0, limit > 0 else { return nil }
        let wanted = min(limit, state[i].queued)
        var keys = [Digest]()
        keys.reserveCapacity(wanted)
        var p = state[i].next - base
        while p < log.count, keys.count < wanted {
            if log[p].members.contains(peer) { keys.append(log[p].key) }
            p += 1
        }
        return (keys, base + p)
    }

    /// `peer` acknowledged an offer of `count` keys ending at `end` (from `offer(to:limit:)`,
    /// with no acknowledgement of `peer` since): its queue now starts there.
    mutating func acknowledge(_ peer: ReplicaID, count: Int, end: Int) {
        let (i, found) = position(of: peer)
        guard found else { return }
        let n = min(count, state[i].queued)
        state[i].queued -= n
        state[i].next = max(state[i].next, end)
        total -= n
        dropAcknowledged()
    }

    /// Drops the log's prefix that no peer's queue reaches: all of it when every queue is empty
    /// (the usual case after a round), else once it is at least half the log.
    private mutating func dropAcknowledged() {
        guard total > 0 else {
            base += log.count
            log.removeAll(keepingCapacity: true)
            return
        }
        var first = base + log.count
        for peer in state where peer.queued > 0 { first = min(first, peer.next) }
        let drop = first - base
        guard drop > 0, drop * 2 >= log.count else { return }
        log.removeFirst(drop)
        base = first
    }

    /// Keys and entry capacity of the log (for the memory breakdown).
    var sizes: (count: Int, capacity: Int) { (log.count, log.capacity) }
}
