/// The simulator's priority queue, ordered by (time, sequence number): simultaneous events run in
/// the order they were scheduled, so ties never depend on anything but the run itself.
///
/// A 4-ary heap of 24-byte entries whose payloads live in a slab with a free list: sifting moves
/// small entries, and a million pending events stay cache-friendlier than a binary heap of
/// payload-carrying structs.
struct EventQueue<Payload> {
    private struct Entry {
        var time: UInt64
        var sequence: UInt64
        var slot: Int32
        @inline(__always) static func < (a: Entry, b: Entry) -> Bool {
            a.time < b.time || (a.time == b.time && a.sequence < b.sequence)
        }
    }

    private var heap: [Entry] = []
    private var slab: [Payload?] = []
    private var free: [Int32] = []
    private(set) var scheduled: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: UInt64? { heap.first?.time }

    init(reserving capacity: Int = 1024) {
        heap.reserveCapacity(capacity)
        slab.reserveCapacity(capacity)
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
        heap.append(Entry(time: time, sequence: scheduled, slot: slot))
        scheduled &+= 1
        siftUp(heap.count - 1)
    }

    mutating func pop() -> (time: UInt64, payload: Payload)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        let payload = slab[Int(top.slot)]
        slab[Int(top.slot)] = nil
        free.append(top.slot)
        guard let payload else { return nil }  // unreachable: every live slot holds a payload
        return (top.time, payload)
    }

    private mutating func siftUp(_ start: Int) {
        heap.withUnsafeMutableBufferPointer { h in
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

    /// Floyd's bottom-up sift-down: walk the hole at `start` down to a leaf along the smaller
    /// child (one comparison per child, none against the moving item), then sift the item up
    /// from there. The item (taken from the heap's end) usually belongs near the bottom.
    private mutating func siftDown(_ start: Int) {
        heap.withUnsafeMutableBufferPointer { h in
            let n = h.count
            let item = h[start]
            var i = start
            while true {
                let first = 4 * i + 1
                guard first < n else { break }
                var best = first
                let end = min(first + 4, n)
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
