import CHeap

extension Simulator {
    /// Bytes allocated and not freed (glibc's count, not pages: unlike RSS it does not move in
    /// huge-page steps).
    public static func heapInUse() -> Int { Int(quorumcoin_heap_in_use()) }

    /// Where a finished run's heap goes: frees the simulator's parts one at a time and reports the
    /// bytes each release gave back, in the order freed. Destroys the run's state, so call it last
    /// (`quorumsim run --memory-breakdown`). Objects shared
    /// between parts (a record held by replicas and by the checker) count where the last holder
    /// is freed, so the order is chosen from the most to the least shared.
    public func memoryBreakdown() -> [(part: String, bytes: Int)] {
        var parts = [(String, Int)]()
        func release(_ name: String, _ body: () -> Void) {
            let before = Simulator.heapInUse()
            body()
            parts.append((name, max(0, before - Simulator.heapInUse())))
        }
        // Every replica lists the same tables in the same order: sum them by position.
        let names = replicas.first?.tableSizes.map(\.table) ?? []
        var tables = [(count: Int, bytes: Int)](repeating: (0, 0), count: names.count)
        for replica in replicas {
            for (i, t) in replica.tableSizes.enumerated() {
                tables[i].count += t.count
                tables[i].bytes += t.capacity * t.bucketBytes
            }
        }
        release("invariant checker") { checker = InvariantChecker(context: context) }
        release("event queue") { queue = EventQueue<Event>(reserving: 0) }
        release("principals (wallets, writers, readers)") { principals = []; cpu = [] }
        release("replicas (stores, locks, repair queues)") { replicas = [] }
        for (name, t) in zip(names, tables) {
            parts.append(("  replica table \(name) (\(t.count) entries, buckets only)", t.bytes))
        }
        release("payment index and metrics") {
            records = []
            recordIndex = [:]
            certifiedList = []
            metrics = Metrics(bucket: metrics.bucket, loadGroups: metrics.loadGroups)
        }
        parts.append(("rest (keys, groups, genesis, code)", Simulator.heapInUse()))
        return parts
    }
}
