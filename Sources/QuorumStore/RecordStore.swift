import QuorumCrypto

/// A replica's certified records by key, at 24 bytes a table bucket instead of 48: indexed by
/// the first 8 bytes of the key, the whole key checked against the record's own. A key whose
/// first 8 bytes match a held record's of another key (never by chance at simulation sizes, but
/// records may be crafted to) goes to a second table keyed by the whole digest, so a collision
/// costs space, never a wrong answer. Iteration order is unspecified: sort before it reaches an
/// output.
public struct RecordStore: Sendable {
    /// The first 8 bytes of a key (keys are uniformly distributed digests).
    typealias Prefix = MixedWord

    private var primary: [Prefix: StoredRecord] = [:]
    private var colliding: [Digest: StoredRecord] = [:]
    /// Bits of the prefix used (all; tests narrow it to force collisions).
    private let prefixMask: UInt64

    public init() { prefixMask = .max }
    init(prefixMask: UInt64) { self.prefixMask = prefixMask }

    @inline(__always) private func prefix(_ key: Digest) -> Prefix { Prefix(key.prefix64 & prefixMask) }

    /// Makes room for `count` records at once. A store that grows to thousands of records by
    /// doubling rehashes each of them about once more, every move a cold read and write in a
    /// large run (8 % of a scale run's cache write misses, callgrind); the capacity it ends
    /// with is the same either way.
    public mutating func reserveCapacity(_ count: Int) { primary.reserveCapacity(count) }

    public var count: Int { primary.count + colliding.count }
    public var isEmpty: Bool { primary.isEmpty && colliding.isEmpty }

    /// The record stored under `key`, if any.
    public subscript(key: Digest) -> StoredRecord? {
        if let record = primary[prefix(key)], record.key == key { return record }
        return colliding.isEmpty ? nil : colliding[key]
    }

    /// Stores `record` under its own key (replacing a record of that key).
    public mutating func insert(_ record: StoredRecord) {
        let key = record.key
        let slot = prefix(key)
        if let held = primary[slot] {
            if held.key == key { primary[slot] = record } else { colliding[key] = record }
        } else if !colliding.isEmpty, colliding[key] != nil {
            colliding[key] = record
        } else {
            primary[slot] = record
        }
    }

    /// Removes the record stored under `key`, if any.
    public mutating func remove(_ key: Digest) {
        let slot = prefix(key)
        if let held = primary[slot], held.key == key { primary[slot] = nil } else { colliding[key] = nil }
    }

    /// Every record, in no particular order.
    public var records: [StoredRecord] { Array(primary.values) + Array(colliding.values) }

    /// Calls `body` with every record, in no particular order, without collecting them (a
    /// caller that only looks at a record's references reads none of the records themselves).
    public func forEach(_ body: (StoredRecord) -> Void) {
        for record in primary.values { body(record) }
        for record in colliding.values { body(record) }
    }

    /// Every key, in no particular order.
    public var keys: [Digest] { records.map(\.key) }

    /// Entries, bucket capacity and bytes per bucket of the two tables, for the memory breakdown.
    var tableSizes: [(table: String, count: Int, capacity: Int, bucketBytes: Int)] {
        [("store", primary.count, primary.capacity, MemoryLayout<Prefix>.stride + MemoryLayout<StoredRecord>.stride),
         ("store (colliding keys)", colliding.count, colliding.capacity,
          MemoryLayout<Digest>.stride + MemoryLayout<StoredRecord>.stride)]
    }
}
