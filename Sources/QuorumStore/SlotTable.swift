import QuorumCrypto

/// A hash table from 64-bit keys to values, open-addressed with linear probing: each slot holds
/// its key and its value side by side, a byte per slot says which slots are taken (and holds 7
/// bits of the key's hash), and the table keeps both addresses in itself.
///
/// For keys that are already uniformly distributed (digest prefixes): a replica's store does a
/// few dozen lookups per payment in a large run, nearly all into memory not touched for a while,
/// most of them for keys it does not hold. A `Dictionary` lookup reads its storage's header, a
/// word of its occupancy bitmap and, for a key it holds, the key and the value (in separate
/// arrays). Here a lookup reads the control bytes of its probe run (one line) and, only on a
/// matching hash byte, that slot. Iteration order is that of the slots: a function of the keys
/// and of the order they were inserted and removed, never of the process; unspecified all the
/// same, so sort before it reaches an output.
///
/// A value type: copies share the slots until one of them changes (then it copies them).
public struct SlotTable<Value>: @unchecked Sendable {
    struct Slot {
        var key: UInt64
        var value: Value
    }

    /// Owns the slots and control bytes. A slot is initialized exactly when its control byte
    /// is nonzero; a copy keeps every entry at its index.
    final class Storage {
        let slots: UnsafeMutablePointer<Slot>
        let control: UnsafeMutablePointer<UInt8>
        let capacity: Int

        init(capacity: Int) {
            self.capacity = capacity
            slots = .allocate(capacity: capacity)
            control = .allocate(capacity: capacity)
            control.initialize(repeating: 0, count: capacity)
        }

        func copy() -> Storage {
            let other = Storage(capacity: capacity)
            for i in 0..<capacity where control[i] != 0 {
                (other.slots + i).initialize(to: slots[i])
                other.control[i] = control[i]
            }
            return other
        }

        deinit {
            // Entries that hold no references need no deinitializing. This deinit is not
            // specialized (a class's deinit is reached through its metadata), so each call
            // below looks the slot type's metadata up again: freeing the checker's
            // million-slot tables of plain values walked them for nothing (the lookups were
            // 6 % of the samples over the last 6 % of a 1M run, perf).
            if !_isPOD(Slot.self) {
                for i in 0..<capacity where control[i] != 0 { (slots + i).deinitialize(count: 1) }
            }
            slots.deallocate()
            control.deallocate()
        }
    }

    private var storage: Storage? {
        didSet { owner = storage.map { UnsafeRawPointer(Unmanaged.passUnretained($0).toOpaque()) } }
    }
    /// `storage`'s two arrays, read without touching the storage object.
    private var slots: UnsafeMutablePointer<Slot>?
    private var control: UnsafeMutablePointer<UInt8>?
    /// The storage object (for tests of `owner`).
    var storageObject: AnyObject? { storage }
    /// `storage`'s address, for prefetch hints: a plain address, which a host reads without
    /// copying the struct that holds this table (reading the reference itself made the simulator
    /// copy a whole replica, retaining all it holds, for each hint).
    private var owner: UnsafeRawPointer?
    /// Capacity − 1 (a power of two less one); 0 until the first insertion.
    private var mask = 0
    public private(set) var count = 0
    /// Entries wanted room for when the slots are first allocated.
    private var reserved = 0

    public init() {}

    var isEmpty: Bool { count == 0 }
    /// Slots allocated (0 before the first insertion).
    public var capacity: Int { slots == nil ? 0 : mask + 1 }

    /// Makes room for `count` entries: now if the slots exist, else when they are first needed
    /// (so a table reserved at setup is filled by whichever thread runs it).
    public mutating func reserveCapacity(_ count: Int) {
        if slots == nil {
            reserved = max(reserved, count)
        } else if Self.slotsNeeded(for: count) > capacity {
            resize(to: Self.slotsNeeded(for: count))
        }
    }

    /// A power of two that keeps `count` entries at most three quarters full (and at least one
    /// slot empty, which ends every probe).
    private static func slotsNeeded(for count: Int) -> Int {
        var n = 8
        while n / 4 * 3 < count, n < Int.max / 4 { n *= 2 }
        return n
    }

    /// The key's first slot and its control byte (7 bits of the hash, the top bit set).
    @inline(__always) private func place(_ key: UInt64) -> (home: Int, tag: UInt8) {
        let h = mix64(key)
        return (Int(truncatingIfNeeded: h) & mask, UInt8(truncatingIfNeeded: h >> 57) | 0x80)
    }

    /// The slot holding `key`, if any.
    @inline(__always) private func index(of key: UInt64) -> Int? {
        guard let slots, let control else { return nil }
        var (i, tag) = place(key)
        while true {
            let c = control[i]
            if c == 0 { return nil }
            if c == tag, slots[i].key == key { return i }
            i = (i &+ 1) & mask
        }
    }

    /// Where a lookup of `key` starts reading (its home slot's control byte and the slot), and
    /// where a change reads first (the storage object, whose reference count the copy-on-write
    /// check loads), for a host's prefetch hints; nil before the first insertion. Reads none.
    @inline(__always) public func lookupAddresses(_ key: UInt64) -> LookupHint? {
        guard let slots, let control, let owner else { return nil }
        let home = place(key).home
        return LookupHint(control: UnsafeRawPointer(control + home), slot: UnsafeRawPointer(slots + home),
                          slotBytes: MemoryLayout<Slot>.stride, owner: owner)
    }

    subscript(key: UInt64) -> Value? {
        guard let slots, let i = index(of: key) else { return nil }
        return slots[i].value
    }

    /// What `body` makes of `key`'s value, lent in place; nil if `key` is absent. Unlike the
    /// subscript, no copy: copying a value that holds references retains each, loading its
    /// object (a cold line in a large run, for objects the caller may not read at all).
    @inline(__always) public func withValue<R>(_ key: UInt64, _ body: (borrowing Value) -> R) -> R? {
        guard let slots, let i = index(of: key) else { return nil }
        return body(slots[i].value)
    }

    /// What `body` makes of the address of `key`'s value; nil if `key` is absent. For reading
    /// single fields: a value lent to a closure (`withValue`) may still be copied, retaining every
    /// reference it holds, since the closure might change the memory it was read from (it was,
    /// for a replica's open-key entry read through `DigestMap`); a field read through the
    /// address loads that field alone. The address is valid during `body` only,
    /// which must not change the table.
    @inline(__always) func withValueAddress<R>(_ key: UInt64, _ body: (UnsafePointer<Value>) -> R) -> R? {
        guard let slots, let i = index(of: key) else { return nil }
        let valueAt = MemoryLayout<Slot>.offset(of: \Slot.value) ?? 0
        return body((UnsafeRawPointer(slots + i) + valueAt).assumingMemoryBound(to: Value.self))
    }

    /// Stores `value` under `key`, replacing what was there.
    mutating func set(_ key: UInt64, _ value: Value) {
        withValue(key, inserting: { value }) { held, inserted in if !inserted { held = value } }
    }

    /// What `body` makes of `key`'s value, changed in place, inserting `make()` first when `key`
    /// is absent: one probe either way (`set` after a failed lookup is two). `body` is told
    /// whether the value was just inserted.
    @inline(__always)
    public mutating func withValue<R>(_ key: UInt64, inserting make: () -> Value, _ body: (inout Value, _ inserted: Bool) -> R) -> R {
        // Full past three quarters (`slotsNeeded` asked only then: it doubles its way up from
        // 8, ~20 steps for a table of a million).
        if slots == nil || count + 1 > (mask + 1) / 4 * 3 {
            resize(to: max(Self.slotsNeeded(for: count + 1), Self.slotsNeeded(for: reserved)))
        } else {
            makeUnique()
        }
        guard let slots, let control else { var value = make(); return body(&value, true) }  // unreachable: resize allocated them
        var (i, tag) = place(key)
        while control[i] != 0 {
            if control[i] == tag, slots[i].key == key { return body(&slots[i].value, false) }
            i = (i &+ 1) & mask
        }
        (slots + i).initialize(to: Slot(key: key, value: make()))
        control[i] = tag
        count += 1
        return body(&slots[i].value, true)
    }

    /// Removes `key`'s entry if `keep` says no to its value, returning the value: one probe.
    @discardableResult
    mutating func remove(_ key: UInt64, unless keep: (borrowing Value) -> Bool) -> Value? {
        guard let found = index(of: key), let slots, !keep(slots[found].value) else { return nil }
        return remove(at: found)
    }

    /// Removes `key`'s entry, returning its value. Later entries of the probe run move back
    /// into the hole (no tombstones: a lookup stops at the first empty slot).
    @discardableResult
    mutating func remove(_ key: UInt64) -> Value? {
        guard let found = index(of: key) else { return nil }
        return remove(at: found)
    }

    /// Removes the entry in slot `found` (see `remove(_:)`).
    private mutating func remove(at found: Int) -> Value? {
        makeUnique()  // a copy keeps every entry at its index
        guard let slots, let control else { return nil }
        let removed = (slots + found).move().value
        var hole = found
        var j = (found &+ 1) & mask
        while control[j] != 0 {
            // The entry at j may fill the hole if its probe run from home passes the hole.
            if (j &- place(slots[j].key).home) & mask >= (j &- hole) & mask {
                (slots + hole).moveInitialize(from: slots + j, count: 1)
                control[hole] = control[j]
                hole = j
            }
            j = (j &+ 1) & mask
        }
        control[hole] = 0
        count -= 1
        return removed
    }

    /// What `body` makes of `key`'s value, changed in place; nil if `key` is absent.
    @inline(__always) mutating func withMutableValue<R>(_ key: UInt64, _ body: (inout Value) -> R) -> R? {
        guard let i = index(of: key) else { return nil }
        makeUnique()  // a copy keeps every entry at its index
        guard let slots else { return nil }
        return body(&slots[i].value)
    }

    /// Calls `body` with every value, in slot order, lent in place (see `withValue`).
    public func forEach(_ body: (borrowing Value) -> Void) {
        guard let slots, let control else { return }
        for i in 0...mask where control[i] != 0 { body(slots[i].value) }
    }

    /// `forEach`, also showing `hint` the value `distance` slots on, where one is, as raw memory
    /// (for a caller to prefetch what it refers to; the value is neither copied nor retained).
    func forEach(hintAhead distance: Int, _ hint: (UnsafeRawPointer) -> Void, _ body: (borrowing Value) -> Void) {
        guard let slots, let control else { return }
        let valueAt = MemoryLayout<Slot>.offset(of: \Slot.value) ?? 0
        for i in 0...mask where control[i] != 0 {
            let ahead = i &+ distance
            if ahead <= mask, control[ahead] != 0 { hint(UnsafeRawPointer(slots + ahead) + valueAt) }
            body(slots[i].value)
        }
    }

    private mutating func makeUnique() {
        guard !isKnownUniquelyReferenced(&storage), let old = storage else { return }
        let copy = old.copy()
        storage = copy
        slots = copy.slots
        control = copy.control
    }

    /// New slots of `capacity` (a power of two), every entry re-inserted.
    private mutating func resize(to capacity: Int) {
        let old = storage  // kept alive (and, if shared, unchanged) while its entries are copied
        let fresh = Storage(capacity: capacity)
        storage = fresh
        slots = fresh.slots
        control = fresh.control
        mask = capacity - 1
        count = 0
        guard let old else { return }
        withExtendedLifetime(old) {
            for i in 0..<old.capacity where old.control[i] != 0 { insertNew(old.slots[i].key, old.slots[i].value) }
        }
    }

    /// Inserts a key known absent into slots with room.
    private mutating func insertNew(_ key: UInt64, _ value: Value) {
        guard let slots, let control else { return }
        var (i, tag) = place(key)
        while control[i] != 0 { i = (i &+ 1) & mask }
        (slots + i).initialize(to: Slot(key: key, value: value))
        control[i] = tag
        count += 1
    }

    /// Bytes of one slot and its control byte.
    public static var slotBytes: Int { MemoryLayout<Slot>.stride + 1 }
}

/// Where a table lookup starts reading: its home slot's control byte, and the slot, `slotBytes`
/// long (an open-keys slot spans three cache lines), as raw addresses for a host's prefetch
/// hints; and the table's storage object, whose header every change reads first (the
/// copy-on-write check: in a large run a replica's tables are cold between its messages, and
/// that check was 4.5 % of a 500k run's samples in perf). A hint only: the key may sit a slot or
/// two on, or not be held at all.
public struct LookupHint {
    public let control: UnsafeRawPointer
    public let slot: UnsafeRawPointer
    public let slotBytes: Int
    public let owner: UnsafeRawPointer
}
