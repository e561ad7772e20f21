/// One pending event: its time, its scheduling sequence number and its payload's slab slot.
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
/// A calendar queue over a 4-ary heap. Payloads live in a slab with a free list, so only 24-byte
/// entries move. Time is cut into buckets of 2^16 ns (65.5 µs); a ring of 2^14 buckets covers the
/// next 1.07 s. Only the current bucket is a heap (small, so it stays in cache); later buckets in
/// the ring are unsorted arrays, heapified in O(n) when their turn comes; events beyond the ring
/// wait in an overflow heap and move into the ring as it advances. A plain heap of a million
/// events misses the cache about ten times per pop; here a pop touches one small heap.
struct EventQueue<Payload> {
    typealias Entry = QueueEntry

    static var bucketShift: UInt64 { 12 }
    static var ringSize: Int { 1 << 18 }

    /// The current bucket's events.
    private var current = EntryHeap()
    /// Index (time >> bucketShift) of the current bucket.
    private var currentBucket: UInt64 = 0
    private var ring: [[Entry]]
    private var ringCount = 0
    private var overflow = EntryHeap()
    private var slab: [Payload?] = []
    private var free: [Int32] = []
    private(set) var scheduled: UInt64 = 0

    var count: Int { current.count + ringCount + overflow.count }
    var isEmpty: Bool { count == 0 }

    init(reserving capacity: Int = 1024) {
        slab.reserveCapacity(capacity)
        ring = [[Entry]](repeating: [], count: Self.ringSize)
    }

    /// The earliest pending time (advances to the next non-empty bucket when needed).
    var nextTime: UInt64? {
        mutating get {
            guard refill() else { return nil }
            return current.min?.time
        }
    }

    mutating func push(_ payload: Payload, at time: UInt64) {
        let slot: Int32
        if let reused = free.popLast() {
            slot = reused
            slab[Int(slot)] = payload
        } else {
            slot = Int32(truncatingIfNeeded: slab.count)
            slab.append(payload)
        }
        let entry = Entry(time: time, sequence: scheduled, slot: slot)
        scheduled &+= 1
        place(entry)
    }

    mutating func pop() -> (time: UInt64, payload: Payload)? {
        guard refill(), let top = current.popMin() else { return nil }
        let payload = slab[Int(top.slot)]
        slab[Int(top.slot)] = nil
        free.append(top.slot)
        guard let payload else { return nil }  // unreachable: every live slot holds a payload
        return (top.time, payload)
    }

    /// Puts an entry where its bucket is: the current heap, a ring bucket, or the overflow.
    /// Entries earlier than the current bucket (a caller scheduling into the past) join the
    /// current heap, which still orders them first.
    @inline(__always) private mutating func place(_ entry: Entry) {
        let bucket = entry.time >> Self.bucketShift
        if bucket <= currentBucket {
            current.push(entry)
        } else if bucket - currentBucket < UInt64(Self.ringSize) {
            ring[Int(bucket & UInt64(Self.ringSize - 1))].append(entry)
            ringCount += 1
        } else {
            overflow.push(entry)
        }
    }

    /// Makes the current heap non-empty if anything is pending; false when nothing is.
    private mutating func refill() -> Bool {
        while current.isEmpty {
            if ringCount == 0 {
                guard let next = overflow.min else { return false }
                currentBucket = next.time >> Self.bucketShift
            } else {
                currentBucket += 1
            }
            // Overflow entries now within the ring's reach move in (the current bucket's into
            // the heap) before the bucket is taken.
            while let top = overflow.min, (top.time >> Self.bucketShift) - currentBucket < UInt64(Self.ringSize) {
                _ = overflow.popMin()
                place(top)
            }
            let i = Int(currentBucket & UInt64(Self.ringSize - 1))
            if !ring[i].isEmpty {
                ringCount -= ring[i].count
                current.take(&ring[i])
            }
        }
        return true
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

    /// Adds every entry of `bucket` (leaving it empty, capacity kept) and restores the heap.
    mutating func take(_ bucket: inout [Entry]) {
        if items.isEmpty {
            swap(&items, &bucket)
            // Floyd's heap construction: O(n).
            if items.count > 1 {
                var i = (items.count - 2) >> 2
                while true {
                    siftDown(i)
                    if i == 0 { break }
                    i -= 1
                }
            }
        } else {
            for e in bucket { push(e) }
            bucket.removeAll(keepingCapacity: true)
        }
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
