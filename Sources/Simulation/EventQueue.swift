import CHeap
import QuorumCrypto
import QuorumLedger
import QuorumStore

/// One pending event in the current bucket's heap: its time, its scheduling sequence number and
/// the index of its payload in the current bucket.
struct QueueEntry {
    var time: UInt64
    var sequence: UInt64
    var slot: Int32
    @inline(__always) static func < (a: QueueEntry, b: QueueEntry) -> Bool {
        a.time < b.time || (a.time == b.time && a.sequence < b.sequence)
    }
}

/// The simulator's priority queue, ordered by (time, sequence number): simultaneous events run in
/// the order they were scheduled, so ties never depend on anything but the run itself.
///
/// A calendar queue. Time is cut into buckets of 2^14 ns (16.4 µs); a ring of 2^16 buckets covers
/// the next 1.07 s (`quorumsim bench` tried 2^10…2^16 ns: wider buckets won, their arrays stay
/// in cache). A ring bucket is an unsorted block of (time, payload), payloads inline, so the
/// events of one bucket sit together in memory. A bucket's block is always in scheduling order
/// (events reach a bucket from the overflow before any can be pushed into it directly, and the
/// overflow releases them in (time, sequence) order), so its position is its sequence number and
/// a slot needs no sequence field: 32 bytes with the simulator's events. When a bucket's turn
/// comes its block becomes the current bucket and its entries (time, position) are sorted once,
/// stably (a counting sort on the time's low bits unless the bucket is tiny); events scheduled into
/// the current bucket after that are newer than all of it and wait in a small 4-ary heap beside
/// the sorted run, winning only on an earlier time. A pop reads the next entry and its payload
/// from the bucket, never a payload scattered elsewhere in memory. Events beyond the ring wait in
/// an overflow heap (with their payloads in a side slab) and move into the ring as it advances.
/// Emptied blocks are kept in a small pool and reused, so memory follows the busy buckets, not
/// the ring's size.
///
/// The blocks are manually managed (`SlotBlocks`): a push reads only its bucket's 16-byte record
/// (base, count, capacity), which sits among the records of the few hundred buckets a run is
/// filling, and writes the slot. As Swift arrays, every push first loaded the bucket array's own
/// header, a line touched once in ~1,000 events: `perf annotate` put 79 % of `push`'s samples (5 %
/// of a million-payment run) on that load. A copied queue copies its blocks when either copy next
/// changes.
struct EventQueue<Payload> {
    typealias Entry = QueueEntry
    typealias Slot = SlotBlocks<Payload>.Slot

    static var bucketShift: UInt64 { 14 }
    static var ringSize: Int { 1 << 16 }
    /// Emptied blocks kept for reuse.
    static var poolLimit: Int { 256 }

    /// The current bucket's order (its events: `blocks.current`).
    private var current = SortedRun()
    /// Index (time >> bucketShift) of the current bucket.
    private var currentBucket: UInt64 = 0
    private var blocks: SlotBlocks<Payload>
    private var ringCount = 0
    /// Events beyond the ring: a heap of entries whose `slot` indexes `overflowSlab`.
    private var overflow = EntryHeap()
    private var overflowSlab: [Payload?] = []
    private var overflowFree: [Int32] = []
    private(set) var scheduled: UInt64 = 0

    var count: Int { current.count + ringCount + overflow.count }
    var isEmpty: Bool { count == 0 }

    init(reserving capacity: Int = 1024) {
        blocks = SlotBlocks(ringSize: Self.ringSize, currentCapacity: Swift.min(capacity, 1024), poolLimit: Self.poolLimit)
    }

    /// The earliest pending time (advances to the next non-empty bucket when needed).
    var nextTime: UInt64? {
        mutating get {
            guard refill() else { return nil }
            return current.min?.time
        }
    }

    mutating func push(_ payload: Payload, at time: UInt64) {
        let sequence = scheduled
        scheduled &+= 1
        place(time: time, sequence: sequence, payload: payload)
    }

    mutating func pop() -> (time: UInt64, payload: Payload)? {
        guard refill(), let top = current.popMin() else { return nil }
        let payload = blocks.takeCurrent(Int(top.slot))
        if current.isEmpty { blocks.clearCurrent() }
        guard let payload else { return nil }  // unreachable: every entry's slot holds a payload
        return (top.time, payload)
    }

    /// Puts an event where its bucket is: the current bucket, a ring bucket, or the overflow.
    /// Events earlier than the current bucket (a caller scheduling into the past) join the
    /// current heap, which still orders them first.
    @inline(__always) private mutating func place(time: UInt64, sequence: UInt64, payload: Payload) {
        let bucket = time >> Self.bucketShift
        if !isKnownUniquelyReferenced(&blocks) { blocks = blocks.copy() }
        if bucket <= currentBucket {
            current.push(Entry(time: time, sequence: sequence, slot: Int32(truncatingIfNeeded: blocks.current.count)))
            blocks.appendCurrent((time, payload))
        } else if bucket - currentBucket < UInt64(Self.ringSize) {
            blocks.append((time, payload), toRing: Int(bucket & UInt64(Self.ringSize - 1)))
            ringCount += 1
        } else {
            let slot: Int32
            if let reused = overflowFree.popLast() {
                slot = reused
                overflowSlab[Int(slot)] = payload
            } else {
                slot = Int32(truncatingIfNeeded: overflowSlab.count)
                overflowSlab.append(payload)
            }
            overflow.push(Entry(time: time, sequence: sequence, slot: slot))
        }
    }

    /// Makes the current heap non-empty if anything is pending; false when nothing is.
    private mutating func refill() -> Bool {
        if !isKnownUniquelyReferenced(&blocks) { blocks = blocks.copy() }
        while current.isEmpty {
            if ringCount == 0 {
                guard let next = overflow.min else { return false }
                currentBucket = next.time >> Self.bucketShift
            } else {
                currentBucket += 1
            }
            // Overflow events now within the ring's reach move in (the current bucket's into
            // the heap) before the bucket is taken.
            while let top = overflow.min, (top.time >> Self.bucketShift) - currentBucket < UInt64(Self.ringSize) {
                _ = overflow.popMin()
                let payload = overflowSlab[Int(top.slot)].take()
                overflowFree.append(top.slot)
                if let payload { place(time: top.time, sequence: top.sequence, payload: payload) }
            }
            let i = Int(currentBucket & UInt64(Self.ringSize - 1))
            let waiting = Int(blocks.ring[i].count)
            guard waiting > 0 else { continue }
            ringCount -= waiting
            if current.isEmpty {
                // The usual case: the bucket's block becomes the current bucket as it is.
                blocks.takeRingAsCurrent(i)
                blocks.withCurrent { current.load($0) }
            } else {
                // Overflow events landed in the current bucket first (only after a jump over an
                // empty ring, so the bucket's own events, all scheduled later, are newer): they
                // join the heap in their order with fresh sequence numbers.
                for slot in blocks.drainRing(i) {
                    guard let payload = slot.payload else { continue }
                    place(time: slot.time, sequence: scheduled, payload: payload)
                    scheduled &+= 1
                }
            }
        }
        return true
    }
}

/// The calendar's bucket blocks: one 16-byte record (base, count, capacity) per ring bucket in
/// one allocation, the current bucket's record, and a pool of emptied blocks. Slots are
/// initialized on append and moved out or destroyed before a block is reused or freed.
final class SlotBlocks<Payload> {
    typealias Slot = (time: UInt64, payload: Payload?)
    struct Block {
        var base: UnsafeMutablePointer<Slot>?
        var count: Int32 = 0
        var capacity: Int32 = 0
    }
    static var firstCapacity: Int32 { 64 }

    let ringSize: Int
    let poolLimit: Int
    let ring: UnsafeMutablePointer<Block>
    var current = Block()
    private var pool: [Block] = []

    init(ringSize: Int, currentCapacity: Int, poolLimit: Int) {
        self.ringSize = ringSize
        self.poolLimit = poolLimit
        ring = .allocate(capacity: ringSize)
        ring.initialize(repeating: Block(), count: ringSize)
        if currentCapacity > 0 { current = Self.allocate(Int32(truncatingIfNeeded: currentCapacity)) }
    }

    deinit {
        for i in 0..<ringSize { Self.free(ring[i]) }
        ring.deinitialize(count: ringSize)
        ring.deallocate()
        Self.free(current)
        for block in pool { Self.free(block) }
    }

    /// An independent copy (every pending slot copied; the pool is not).
    func copy() -> SlotBlocks {
        let other = SlotBlocks(ringSize: ringSize, currentCapacity: 0, poolLimit: poolLimit)
        for i in 0..<ringSize where ring[i].count > 0 { other.ring[i] = Self.duplicate(ring[i]) }
        other.current = Self.duplicate(current)
        return other
    }

    private static func allocate(_ capacity: Int32) -> Block {
        Block(base: .allocate(capacity: Int(capacity)), count: 0, capacity: capacity)
    }

    private static func free(_ block: Block) {
        guard let base = block.base else { return }
        base.deinitialize(count: Int(block.count))
        base.deallocate()
    }

    private static func duplicate(_ block: Block) -> Block {
        guard let base = block.base, block.capacity > 0 else { return Block() }
        var copy = allocate(block.capacity)
        copy.base?.initialize(from: base, count: Int(block.count))
        copy.count = block.count
        return copy
    }

    /// An emptied block back to the pool (or freed when the pool is full).
    private func recycle(_ block: Block) {
        guard let base = block.base else { return }
        base.deinitialize(count: Int(block.count))
        if pool.count < poolLimit {
            pool.append(Block(base: base, count: 0, capacity: block.capacity))
        } else {
            base.deallocate()
        }
    }

    /// Room for one more slot in `block`: a pooled block when it has none, else twice the room.
    @inline(__always) private func reserveOne(_ block: inout Block) {
        guard block.count == block.capacity else { return }
        if block.capacity == 0 {
            block = pool.popLast() ?? Self.allocate(Self.firstCapacity)
            return
        }
        var grown = Self.allocate(block.capacity &* 2)
        if let from = block.base { grown.base?.moveInitialize(from: from, count: Int(block.count)) }
        grown.count = block.count
        block.base?.deallocate()
        block = grown
    }

    @inline(__always) private func append(_ slot: Slot, to block: inout Block) {
        reserveOne(&block)
        block.base.unsafelyUnwrapped.advanced(by: Int(block.count)).initialize(to: slot)
        block.count &+= 1
    }

    @inline(__always) func append(_ slot: Slot, toRing i: Int) { append(slot, to: &ring[i]) }

    @inline(__always) func appendCurrent(_ slot: Slot) { append(slot, to: &current) }

    /// The payload at position `i` of the current bucket, moved out (its slot keeps nil).
    @inline(__always) func takeCurrent(_ i: Int) -> Payload? {
        guard i >= 0, i < Int(current.count), let base = current.base else { return nil }
        return base[i].payload.take()
    }

    /// Empties the current bucket, keeping its block. The queue clears a bucket once its last
    /// event was popped, so every payload was moved out already and the slots hold only times
    /// and nils: they are dropped by a scan that destroys any payload still there, not by
    /// `deinitialize(count:)`, which destroys a block of tuples through the runtime's generic
    /// tuple and `Optional` witnesses (~80 instructions a slot: 1.4 % of a scale run's
    /// instructions, callgrind).
    func clearCurrent() {
        if let base = current.base {
            for i in 0..<Int(current.count) where base[i].payload != nil { base[i].payload = nil }
        }
        current.count = 0
    }

    /// Ring bucket `i`'s block becomes the current bucket (the current one, empty, is pooled).
    func takeRingAsCurrent(_ i: Int) {
        recycle(current)
        current = ring[i]
        ring[i] = Block()
    }

    func withCurrent<R>(_ body: (UnsafeBufferPointer<Slot>) -> R) -> R {
        body(UnsafeBufferPointer(start: current.base, count: Int(current.count)))
    }

    /// Ring bucket `i`'s slots, moved out in order; the bucket keeps its (empty) block.
    func drainRing(_ i: Int) -> [Slot] {
        let b = ring[i]
        guard let base = b.base, b.count > 0 else { return [] }
        let slots = Array(UnsafeBufferPointer(start: base, count: Int(b.count)))
        base.deinitialize(count: Int(b.count))
        ring[i].count = 0
        return slots
    }
}

/// The current bucket's order: its events sorted once when its turn comes, then read in
/// sequence, plus a heap for events scheduled into the bucket after that. Every event in the heap
/// is newer than every event in the run, so the heap goes first only with an earlier time; inside
/// the run, ties keep bucket order (the entries' `sequence` is unused there).
struct SortedRun {
    typealias Entry = QueueEntry
    private var run: [Entry] = []
    private var next = 0
    private var late = EntryHeap()
    private var scratch: [Entry] = []
    /// Bits of time that differ within one bucket.
    static var timeBits: UInt64 { EventQueue<Int>.bucketShift }

    var count: Int { run.count - next + late.count }
    var isEmpty: Bool { next == run.count && late.isEmpty }

    var min: Entry? {
        guard next < run.count else { return late.min }
        guard let b = late.min, b.time < run[next].time else { return run[next] }
        return b
    }

    mutating func push(_ e: Entry) { late.push(e) }

    /// The run's `k`-th next entry, ignoring the heap: which event comes soon, for prefetching.
    func upcoming(_ k: Int) -> Entry? { next + k < run.count ? run[next + k] : nil }

    mutating func popMin() -> Entry? {
        guard next < run.count else { return late.popMin() }
        let a = run[next]
        if let b = late.min, b.time < a.time { return late.popMin() }
        next += 1
        if next == run.count {
            run.removeAll(keepingCapacity: true)
            next = 0
        }
        return a
    }

    /// Sorts one entry per slot of `slots` (a bucket, in scheduling order) into the run, which
    /// must be empty: by time, ties in bucket order.
    mutating func load<P>(_ b: UnsafeBufferPointer<(time: UInt64, payload: P?)>) {
        run.removeAll(keepingCapacity: true)
        next = 0
        run.reserveCapacity(b.count)
        for i in b.indices {
            run.append(Entry(time: b[i].time, sequence: 0, slot: Int32(truncatingIfNeeded: i)))
        }
        // A stable counting sort on the time's bits below the bucket width unless tiny, else a
        // comparison sort on (time, position). (Buckets of a scale run hold ~70 events, where
        // the comparison sort cost 130 instructions per event, the counting passes under 20.)
        if run.count >= 32 {
            radixSortByTime()
        } else {
            run.sort { $0.time < $1.time || ($0.time == $1.time && $0.slot < $1.slot) }
        }
    }

    /// Stable counting passes of 7 bits over the time's bits below the bucket width (every entry
    /// is in one bucket, so the higher bits are equal).
    private mutating func radixSortByTime() {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: repeatElement(Entry(time: 0, sequence: 0, slot: 0), count: run.count))
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 129) { c in
            for shift in stride(from: UInt64(0), to: SortedRun.timeBits, by: 7) {
                c.initialize(repeating: 0)
                run.withUnsafeBufferPointer { src in
                    scratch.withUnsafeMutableBufferPointer { dst in
                        for e in src { c[Int((e.time >> shift) & 127) + 1] += 1 }
                        for d in 1..<129 { c[d] += c[d - 1] }
                        for e in src {
                            let d = Int((e.time >> shift) & 127)
                            dst[c[d]] = e
                            c[d] += 1
                        }
                    }
                }
                swap(&run, &scratch)
            }
        }
    }
}

/// A 4-ary min-heap of queue entries.
struct EntryHeap {
    typealias Entry = QueueEntry
    private var items: [Entry] = []

    var count: Int { items.count }
    var isEmpty: Bool { items.isEmpty }
    var min: Entry? { items.first }

    mutating func push(_ e: Entry) {
        items.append(e)
        siftUp(items.count - 1)
    }

    mutating func popMin() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            siftDown(0)
        }
        return top
    }

    private mutating func siftUp(_ start: Int) {
        items.withUnsafeMutableBufferPointer { h in
            var i = start
            let item = h[i]
            while i > 0 {
                let parent = (i - 1) >> 2
                guard item < h[parent] else { break }
                h[i] = h[parent]
                i = parent
            }
            h[i] = item
        }
    }

    /// Floyd's bottom-up sift-down: walk the hole down along the smaller child, then sift the
    /// item up from the leaf it reached.
    private mutating func siftDown(_ start: Int) {
        items.withUnsafeMutableBufferPointer { h in
            let n = h.count
            let item = h[start]
            var i = start
            while true {
                let first = 4 * i + 1
                guard first < n else { break }
                var best = first
                let end = Swift.min(first + 4, n)
                var c = first + 1
                while c < end {
                    if h[c] < h[best] { best = c }
                    c += 1
                }
                h[i] = h[best]
                i = best
            }
            while i > start {
                let parent = (i - 1) >> 2
                guard item < h[parent] else { break }
                h[i] = h[parent]
                i = parent
            }
            h[i] = item
        }
    }
}

extension EventQueue where Payload == Event {
    /// The node of the current bucket's `k`-th next event in time order, read in place (without
    /// popping or copying it); events pushed into the bucket after it was sorted are skipped. A
    /// hint for prefetching, never for deciding anything.
    func upcomingNode(_ k: Int) -> NodeID? {
        guard let entry = current.upcoming(k), let base = blocks.current.base,
              entry.slot >= 0, entry.slot < blocks.current.count else { return nil }
        switch base[Int(entry.slot)].payload {
        case let .deliver(_, to, _, _)?: return to
        case let .cpuFree(node)?: return node
        case let .timer(node, _)?: return node
        default: return nil
        }
    }

    /// Where a delivery's message sits in a slot: the payload follows the 8-byte time, and
    /// `.deliver`'s fields are laid out in order (two 4-byte node ids, then the message). A test
    /// checks this against a real message on the toolchain in use.
    static var messageOffset: Int { 8 + 8 }

    /// How a message's object refers to the records it carries, for prefetching them.
    enum MessageShape: Equatable {
        /// None that matter (votes, acks, reads, repair traffic).
        case other
        /// A box whose first field is the record being written and whose second field is an
        /// array of parents (`preparePayment`) or the one parent's payment (`prepareRedeem`).
        case write(parentsArray: Bool)
        /// An array of records (`commit`, `gossip`): each element starts with its payment's or
        /// redeem's reference.
        case records
        /// A box whose first field is the vote's statement, itself a box: made by the voting
        /// replica an event loop's worth of the heap ago, and read first by the writer.
        case vote
        /// A payee's hand-over: a box holding the certified payment (its payment, then its proof)
        /// and the array of its certified parents, all of which the payee's reader checks.
        case handOver
    }

    /// The heap object (an indirect case's box, or a record array's storage) that the message of
    /// the current bucket's `k`-th next event refers to, read in place as a raw address: neither
    /// retained nor dereferenced; and the message's shape. A hint for prefetching only: a wrong
    /// address costs a wasted prefetch, never a fault or a result.
    func upcomingMessage(_ k: Int) -> (object: UnsafeRawPointer, shape: MessageShape, to: NodeID)? {
        guard let entry = current.upcoming(k), let base = blocks.current.base,
              entry.slot >= 0, entry.slot < blocks.current.count else { return nil }
        let shape: MessageShape, node: NodeID
        switch base[Int(entry.slot)].payload {
        case let .deliver(_, to, .preparePayment, _)?: shape = .write(parentsArray: true); node = to
        case let .deliver(_, to, .prepareRedeem, _)?: shape = .write(parentsArray: false); node = to
        case let .deliver(_, to, .commit, _)?, let .deliver(_, to, .gossip, _)?: shape = .records; node = to
        case let .deliver(_, to, .vote, _)?: shape = .vote; node = to
        case let .deliver(_, to, .handOver, _)?: shape = .handOver; node = to
        case let .deliver(_, to, _, _)?: shape = .other; node = to
        default: return nil
        }
        guard let object = referencedObject(UnsafeRawPointer(base + Int(entry.slot)), Self.messageOffset) else { return nil }
        return (object, shape, node)
    }
}

/// The object whose reference is stored at `offset` in `memory` (a class reference, an array's
/// storage, an indirect enum case's box, or a multi-payload enum holding one of those, whose case
/// tag lives in the pointer's spare bits: the top byte and the low three), read as a raw
/// address: neither retained nor dereferenced. For prefetch hints only.
@inline(__always) func referencedObject(_ memory: UnsafeRawPointer, _ offset: Int) -> UnsafeRawPointer? {
    UnsafeRawPointer(bitPattern: memory.load(fromByteOffset: offset, as: UInt.self) & 0x00FF_FFFF_FFFF_FFF8)
}

/// Starts loading every cache line of the `count` bytes at `start`. A hint only.
@inline(__always) func prefetchLines(_ start: UnsafeRawPointer, _ count: Int) {
    let last = UInt(bitPattern: start) &+ UInt(max(1, count)) &- 1
    var line = UInt(bitPattern: start) & ~63
    while line <= last {
        if let p = UnsafeRawPointer(bitPattern: line) { quorumcoin_prefetch(p) }
        line &+= 64
    }
}

/// Starts loading a table lookup's control byte, every line of its home slot and its storage
/// object's header. A hint only.
@inline(__always) func prefetchLookup(_ hint: LookupHint?) {
    guard let hint else { return }
    quorumcoin_prefetch(hint.control)
    prefetchLines(hint.slot, hint.slotBytes)
    quorumcoin_prefetch(hint.owner)
}

/// Where `Payment` and `Redeem` objects keep their key and their principal (the payer, the
/// owner), for prefetch hints that read them from a record without knowing its kind: the same
/// offsets in both classes (their fields are declared in that order: see `Payment.key`). Found
/// on two sample records once, in the toolchain's actual layout; nil if a sample's fields are not
/// where this expects them, or the two classes differ (then the hints that need them are skipped).
enum RecordLayout {
    static let keyOffset: Int? = layout?.key
    static let principalOffset: Int? = layout?.principal

    /// The first 8 bytes of the digest or key `offset` bytes into the record object at `object`,
    /// big-endian, as `Bytes32.prefix64` reads them: what a table's slot is chosen by.
    @inline(__always) static func prefix64(of object: UnsafeRawPointer, at offset: Int) -> UInt64 {
        UInt64(bigEndian: object.load(fromByteOffset: offset, as: UInt64.self))
    }

    /// The offsets where both a payment and a redeem hold their key and principal.
    private static let layout: (key: Int, principal: Int)? = {
        let key = Digest(words: (0x0123_4567_89AB_CDEF, 1, 2, 3))
        let principal = PublicKey(raw: Bytes32(words: (0xFEDC_BA98_7654_3210, 4, 5, 6)))
        let payment = Payment(body: PaymentBody(networkId: 7, payer: principal, inputs: [], outputs: [], fee: 0, nonce: 9),
                              signature: .zero)
        let redeem = Redeem(networkId: 7, input: InputRef(parentKey: key, index: 0), owner: principal,
                            spender: payment.key, signature: .zero)
        let offsets = (key: 16, principal: 56)
        func holds(_ object: AnyObject, _ keyHeld: Digest) -> Bool {
            withExtendedLifetime(object) {
                let p = UnsafeRawPointer(Unmanaged.passUnretained(object).toOpaque())
                return p.loadUnaligned(fromByteOffset: offsets.key, as: Bytes32.self) == keyHeld
                    && p.loadUnaligned(fromByteOffset: offsets.principal, as: Bytes32.self) == principal.raw
            }
        }
        return holds(payment, payment.key) && holds(redeem, redeem.key) ? offsets : nil
    }()
}
