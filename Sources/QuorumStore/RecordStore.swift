import QuorumCrypto

/// A replica's certified records by key, in a `SlotTable` indexed by the first 8 bytes of the
/// key (a slot of 8 bytes and the record's two references, 25 bytes with its control byte, not
/// 32 bytes of key and the record), the whole key checked against the record's own. A key whose
/// first 8 bytes match a held record's of another key (never by chance at simulation sizes, but
/// records may be crafted to) goes to a second table keyed by the whole digest, so a collision
/// costs space, never a wrong answer.
/// Iteration order is unspecified: sort before it reaches an output.
public struct RecordStore: Sendable {
    private var primary = SlotTable<StoredRecord>()
    private var colliding = [Digest: StoredRecord]()
    /// Bits of the prefix used (all; tests narrow it to force collisions).
    private let prefixMask: UInt64

    public init() { prefixMask = .max }
    init(prefixMask: UInt64) { self.prefixMask = prefixMask }

    /// The first 8 bytes of a key (keys are uniformly distributed digests).
    @inline(__always) private func prefix(_ key: Digest) -> UInt64 { key.prefix64 & prefixMask }

    /// Makes room for `count` records at once. A store that grows to thousands of records by
    /// doubling rehashes each of them about once more, every move a cold read and write in a
    /// large run (8 % of a scale run's cache write misses, callgrind); the capacity it ends
    /// with is the same either way.
    public mutating func reserveCapacity(_ count: Int) { primary.reserveCapacity(count) }

    public var count: Int { primary.count + colliding.count }
    public var isEmpty: Bool { primary.isEmpty && colliding.isEmpty }

    /// The record stored under `key`, if any.
    public subscript(key: Digest) -> StoredRecord? { withRecord(key) { copy $0 } }

    /// What `body` makes of the record stored under `key`, lent in place (not copied: a copy
    /// retains the record and its certificate, loading both, where a caller asking whether a
    /// key is held reads neither); nil if none is stored.
    @inline(__always)
    public func withRecord<R>(_ key: Digest, _ body: (borrowing StoredRecord) -> R) -> R? {
        var result: R?
        let held = primary.withValue(prefix(key)) { record -> Bool in
            guard record.key == key else { return false }
            result = body(record)
            return true
        } ?? false
        if held { return result }
        guard !colliding.isEmpty, let record = colliding[key] else { return nil }
        return body(record)
    }

    /// Where a lookup of a key whose first 8 bytes are `keyPrefix` (big-endian, as
    /// `Digest.prefix64`) starts reading, for a host's prefetch hints (see `SlotTable`).
    @inline(__always) public func lookupAddresses(keyPrefix: UInt64) -> LookupHint? {
        primary.lookupAddresses(keyPrefix & prefixMask)
    }

    /// Whether a record is stored under `key`.
    public func contains(_ key: Digest) -> Bool { withRecord(key) { _ in true } ?? false }

    /// Whether the record stored under `key` is a payment.
    public func holdsPayment(_ key: Digest) -> Bool {
        withRecord(key) { record in
            switch record {
            case .payment: true
            case .redeem: false
            }
        } ?? false
    }

    /// Stores `record` under its own key (replacing a record of that key).
    public mutating func insert(_ record: StoredRecord) {
        let key = record.key
        let slot = prefix(key)
        if let ours = primary.withValue(slot, { $0.key == key }) {
            if ours { primary.set(slot, record) } else { colliding[key] = record }
        } else if !colliding.isEmpty, colliding[key] != nil {
            colliding[key] = record
        } else {
            primary.set(slot, record)
        }
    }

    /// Removes the record stored under `key`, if any.
    public mutating func remove(_ key: Digest) {
        let slot = prefix(key)
        if primary.withValue(slot, { $0.key == key }) == true { primary.remove(slot) } else { colliding[key] = nil }
    }

    /// Every record, in no particular order.
    public var records: [StoredRecord] {
        var all = [StoredRecord]()
        all.reserveCapacity(count)
        forEach { all.append(copy $0) }
        return all
    }

    /// Calls `body` with every record, in no particular order, without collecting them (a
    /// caller that only looks at a record's references reads none of the records themselves),
    /// each lent in place: a copy would retain the record and its certificate, loading both.
    public func forEach(_ body: (borrowing StoredRecord) -> Void) {
        primary.forEach(body)
        for record in colliding.values { body(record) }
    }

    /// `forEach`, also showing `hint` the raw memory of a record `distance` places on (most of
    /// them), for a host to prefetch the objects it refers to: an end-of-run check of every
    /// store reads records whose objects are scattered over gigabytes.
    public func forEach(hintAhead distance: Int, _ hint: (UnsafeRawPointer) -> Void, _ body: (borrowing StoredRecord) -> Void) {
        primary.forEach(hintAhead: distance, hint, body)
        for record in colliding.values { body(record) }
    }

    /// Every key, in no particular order.
    public var keys: [Digest] { records.map(\.key) }

    /// Entries, bucket capacity and bytes per bucket of the two tables, for the memory breakdown.
    var tableSizes: [(table: String, count: Int, capacity: Int, bucketBytes: Int)] {
        [("store", primary.count, primary.capacity, SlotTable<StoredRecord>.slotBytes),
         ("store (colliding keys)", colliding.count, colliding.capacity,
          MemoryLayout<Digest>.stride + MemoryLayout<StoredRecord>.stride)]
    }
}
