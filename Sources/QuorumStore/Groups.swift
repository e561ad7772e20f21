import QuorumCrypto

/// A replica's index in the replica directory (0..<replicaCount).
public typealias ReplicaID = UInt32

/// An address on the (simulated or real) network: replicas take 0..<replicaCount, principals the
/// ids after them. Channels are authenticated: a receiver learns the true sender.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt32
    @inlinable public init(raw: UInt32) { self.raw = raw }
    @inlinable public init(replica: ReplicaID) { self.raw = replica }
    @inlinable public static func < (a: NodeID, b: NodeID) -> Bool { a.raw < b.raw }
    public var description: String { "node\(raw)" }
}

/// Identifies a replica group in votes: the shard index in `partitioned` mode, a 64-bit value
/// derived from the principal's group seed in `random-group` mode.
public struct GroupID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    public init(raw: UInt64) { self.raw = raw }
    public static func < (a: GroupID, b: GroupID) -> Bool { a.raw < b.raw }
    public var description: String { "g\(raw)" }
}

/// A replica group: its id and its members, sorted ascending.
public struct Group: Hashable, Sendable {
    public let id: GroupID
    public let members: [ReplicaID]

    public init(id: GroupID, members: [ReplicaID]) {
        self.id = id
        self.members = members.sorted()
    }

    @inlinable public func contains(_ replica: ReplicaID) -> Bool {
        for m in members where m == replica { return true }
        return false
    }
}

/// How principals are mapped to replica groups (PROTOCOL §1).
public enum AssignmentMode: String, Sendable, CaseIterable {
    /// Replicas split into S disjoint shards of n; p → shard `H("qc/shard", beacon ‖ pk) mod S`.
    case partitioned
    /// p's group is n distinct replicas sampled by a generator seeded with `H("qc/group", beacon ‖ pk)`.
    case randomGroup = "random-group"
}

/// G(p), deterministic from the epoch's beacon. Memoizes lookups (a pure function of the key),
/// so it is a class shared by every node of a run.
public final class GroupAssignment {
    public let mode: AssignmentMode
    public let beacon: Bytes32
    public let replicaCount: Int
    public let groupSize: Int
    // Read on most protocol steps: no dynamic exclusivity check (accessed only inside
    // `group(of:)`, which never overlaps itself).
    // A `DigestMap` by the key's bytes (keys are uniformly distributed): a lookup reads a control
    // line and one slot where a `Dictionary` read its header, bitmap, key and value, on ~30
    // lookups per payment in a large run.
    @exclusivity(unchecked) private var cache = DigestMap<Group>()
    /// Every shard in `partitioned` mode, built once: principals of one shard share its member
    /// array instead of each holding a copy.
    private var shards: [Group] = []

    /// - Parameters:
    ///   - replicaCount: replicas in the directory; in `partitioned` mode a multiple of `groupSize`.
    public init(mode: AssignmentMode, beacon: Bytes32, replicaCount: Int, groupSize: Int) throws(ConfigurationError) {
        guard groupSize >= 1, replicaCount >= groupSize, replicaCount <= Int(UInt32.max) else {
            throw .invalidTopology("need at least one group of \(groupSize) replicas, have \(replicaCount)")
        }
        if mode == .partitioned, replicaCount % groupSize != 0 {
            throw .invalidTopology("partitioned mode needs replicas (\(replicaCount)) to be a multiple of n (\(groupSize))")
        }
        self.mode = mode
        self.beacon = beacon
        self.replicaCount = replicaCount
        self.groupSize = groupSize
        if mode == .partitioned { shards = (0..<replicaCount / groupSize).map(makeShard) }
    }

    /// Number of disjoint shards in `partitioned` mode.
    public var shardCount: Int { replicaCount / groupSize }

    /// The members of shard `s` in `partitioned` mode.
    public func shard(_ s: Int) -> Group {
        s >= 0 && s < shards.count ? shards[s] : makeShard(s)
    }

    private func makeShard(_ s: Int) -> Group {
        let first = ReplicaID(s * groupSize)
        return Group(id: GroupID(raw: UInt64(s)), members: (0..<ReplicaID(groupSize)).map { first + $0 })
    }

    /// Where `group(of:)` starts reading its memo for a principal whose key's first 8 bytes are
    /// `principalPrefix`, for a host's prefetch hints.
    @inline(__always) public func lookupAddresses(principalPrefix: UInt64) -> LookupHint? {
        cache.lookupAddresses(keyPrefix: principalPrefix)
    }

    /// G(p).
    public func group(of principal: PublicKey) -> Group {
        if let known = cache[principal.raw] { return known }
        let group: Group
        switch mode {
        case .partitioned:
            let digest = Blake2b.hash(.shard, capacity: 64) { w in
                w.append(beacon)
                w.append(principal)
            }
            group = shard(Int(GroupAssignment.remainder(of: digest, dividingBy: UInt64(shardCount))))
        case .randomGroup:
            let seed = Blake2b.hash(.group, capacity: 64) { w in
                w.append(beacon)
                w.append(principal)
            }
            var rng = DeterministicRandom(seed: seed)
            var members = [ReplicaID]()
            members.reserveCapacity(groupSize)
            while members.count < groupSize {  // terminates: replicaCount ≥ groupSize
                let r = ReplicaID(rng.uniform(below: UInt64(replicaCount)))
                if !members.contains(r) { members.append(r) }
            }
            group = Group(id: GroupID(raw: seed.prefix64), members: members)
        }
        cache[principal.raw] = group
        return group
    }

    /// The 256-bit big-endian value of `digest` modulo `divisor` (exact, not just its prefix).
    static func remainder(of digest: Digest, dividingBy divisor: UInt64) -> UInt64 {
        var r: UInt64 = 0
        for word in digest.bigEndianWords {
            r = divisor.dividingFullWidth((high: r, low: word)).remainder
        }
        return r
    }
}
