import QuorumCrypto

/// A map keyed by digests (uniformly distributed 32-byte values): a `SlotTable` by the key's
/// first 8 bytes, the whole key kept in the slot and checked. A lookup mixes 8 bytes and reads a
/// control line and one slot, where a `Dictionary` hashes all 32 bytes (SipHash) and reads a
/// bitmap word, a key and a value from three arrays: in a large run's tables of a million keys,
/// each a cache miss. A key whose first 8 bytes match a held key's (never by chance at
/// simulation sizes; keys may be crafted to) goes to a `Dictionary` beside it, so a collision
/// costs a second probe, never a wrong answer. Iteration order is unspecified: sort before it
/// reaches an output.
public struct DigestMap<Value> {
    private var primary = SlotTable<(key: Digest, value: Value)>()
    private var colliding = [Digest: Value]()
    /// Bits of the prefix used (all; tests narrow it to force collisions).
    private let prefixMask: UInt64

    public init() { prefixMask = .max }
    init(prefixMask: UInt64) { self.prefixMask = prefixMask }

    @inline(__always) private func prefix(_ key: Digest) -> UInt64 { key.prefix64 & prefixMask }

    public var count: Int { primary.count + colliding.count }
    public var isEmpty: Bool { count == 0 }

    /// Makes room for `count` keys (allocated at the first insertion).
    public mutating func reserveCapacity(_ count: Int) { primary.reserveCapacity(count) }

    /// Where a lookup of a key whose first 8 bytes are `keyPrefix` starts reading, for a host's
    /// prefetch hints (see `SlotTable`).
    @inline(__always) public func lookupAddresses(keyPrefix: UInt64) -> LookupHint? {
        primary.lookupAddresses(keyPrefix & prefixMask)
    }

    public subscript(key: Digest) -> Value? {
        get {
            // Held in `primary` (the slot's key is this key), or else perhaps in `colliding`.
            if case let value?? = primary.withValue(prefix(key), { $0.key == key ? Optional.some($0.value) : nil }) { return value }
            return colliding.isEmpty ? nil : colliding[key]
        }
        set {
            let slot = prefix(key)
            // A held key's value is replaced in place (one probe); a new key is probed for again.
            let held = primary.withMutableValue(slot) { entry -> Bool in
                guard entry.key == key else { return false }
                if let newValue { entry.value = newValue }
                return true
            }
            switch held {
            case true?:
                if newValue == nil { primary.remove(slot) }
            case false?:
                colliding[key] = newValue
            case nil:
                if !colliding.isEmpty, colliding[key] != nil {
                    colliding[key] = newValue
                } else if let newValue {
                    primary.set(slot, (key, newValue))
                }
            }
        }
    }

    /// What `body` makes of the address of `key`'s value (valid during `body` only, which must
    /// not change the map); nil if `key` is absent. For reading a field without copying the
    /// value (see `SlotTable.withValueAddress`): reading one field of a replica's open-key entry
    /// through the subscript retained the records and vote it holds, cold lines in a large run.
    @inline(__always)
    public func withValue<R>(_ key: Digest, _ body: (UnsafePointer<Value>) -> R) -> R? {
        let valueAt = MemoryLayout<(key: Digest, value: Value)>.offset(of: \(key: Digest, value: Value).value) ?? 0
        if case let result?? = primary.withValueAddress(prefix(key), { entry in
            entry.pointee.key == key ? Optional.some(body((UnsafeRawPointer(entry) + valueAt).assumingMemoryBound(to: Value.self))) : nil
        }) { return result }
        guard !colliding.isEmpty, let value = colliding[key] else { return nil }
        return withUnsafePointer(to: value) { body($0) }
    }

    /// Changes `key`'s value in place where it is held, and removes it if `change` returns false
    /// (one probe, no copy); false if `key` is absent.
    @discardableResult @inline(__always)
    public mutating func modify(_ key: Digest, keeping change: (inout Value) -> Bool) -> Bool {
        let slot = prefix(key)
        let kept = primary.withMutableValue(slot) { entry -> Bool? in entry.key == key ? change(&entry.value) : nil }
        switch kept {
        case true??: return true
        case false??: primary.remove(slot); return true
        default: break
        }
        guard !colliding.isEmpty, var value = colliding.removeValue(forKey: key) else { return false }
        if change(&value) { colliding[key] = value }
        return true
    }

    /// What `change` makes of `key`'s value, changed in place (one probe for a held key),
    /// inserting `make()` first if `key` is absent.
    @inline(__always)
    public mutating func update<R>(_ key: Digest, default make: @autoclosure () -> Value, _ change: (inout Value) -> R) -> R {
        if !colliding.isEmpty, colliding[key] != nil { return change(&colliding[key, default: make()]) }
        // One probe: the slot of `key`'s prefix, found or filled. Another key holding that
        // prefix sends this one to `colliding`.
        var result: R?
        primary.withValue(prefix(key), inserting: { (key, make()) }) { entry, _ in
            if entry.key == key { result = change(&entry.value) }
        }
        if let result { return result }
        return change(&colliding[key, default: make()])
    }

    /// Removes `key`'s entry, returning its value.
    @discardableResult
    public mutating func removeValue(forKey key: Digest) -> Value? {
        if let removed = primary.remove(prefix(key), unless: { $0.key != key }) { return removed.value }
        return colliding.isEmpty ? nil : colliding.removeValue(forKey: key)
    }

    /// Slots allocated for keys without a colliding prefix (for the memory breakdown).
    public var capacity: Int { primary.capacity }

    /// Whether any value satisfies `predicate`.
    public func contains(where predicate: (Value) -> Bool) -> Bool {
        var found = false
        forEach { _, value in if !found, predicate(value) { found = true } }
        return found
    }

    /// The entries `transform` keeps, with its values.
    public func compactMapValues<T>(_ transform: (Value) -> T?) -> DigestMap<T> {
        var kept = DigestMap<T>(prefixMask: prefixMask)
        forEach { key, value in if let mapped = transform(value) { kept[key] = mapped } }
        return kept
    }

    /// Calls `body` with every key and value, in no particular order.
    public func forEach(_ body: (Digest, Value) -> Void) {
        primary.forEach { entry in body(entry.key, entry.value) }
        for (key, value) in colliding { body(key, value) }
    }
}

extension DigestMap: Sendable where Value: Sendable {}
