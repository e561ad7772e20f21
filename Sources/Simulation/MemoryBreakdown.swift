import CHeap
import QuorumLedger
import QuorumStore

extension Simulator {
    /// Bytes allocated and not freed (glibc's count, not pages: unlike RSS it does not move in
    /// huge-page steps).
    public static func heapInUse() -> Int { Int(quorumcoin_heap_in_use()) }

    /// Where a finished run's heap goes: frees the simulator's parts one at a time and reports the
    /// bytes each release gave back, in the order freed. Destroys the run's state, so call it last
    /// (`quorumsim run --memory-breakdown`). Objects shared
    /// between parts (a record held by replicas and by the checker) count where the last holder
    /// is freed, so the order is chosen from the most to the least shared.
    public func memoryBreakdown() -> [(part: String, bytes: Int)] { Simulator.memoryBreakdown(of: [self]) }

    /// The same over several simulators, each part freed in all of them at once: a partitioned
    /// run's partitions (its objects are per partition, so the parts add up alike).
    static func memoryBreakdown(of sims: [Simulator]) -> [(part: String, bytes: Int)] {
        var parts = [(String, Int)]()
        func freed(_ body: (Simulator) -> Void) -> Int {
            let before = Simulator.heapInUse()
            for sim in sims { body(sim) }
            return max(0, before - Simulator.heapInUse())
        }
        func release(_ name: String, _ body: (Simulator) -> Void) { parts.append((name, freed(body))) }
        // Every replica lists the same tables in the same order: sum them by position. A
        // partition's own replicas only (the others' slots are idle, and empty).
        let names = sims.first?.replicas.first?.tableSizes.map(\.table) ?? []
        var tables = [(count: Int, bytes: Int)](repeating: (0, 0), count: names.count)
        for sim in sims {
            for (r, replica) in sim.replicas.enumerated() where sim.hosts(node: r) {
                for (i, t) in replica.tableSizes.enumerated() {
                    tables[i].count += t.count
                    tables[i].bytes += t.capacity * t.bucketBytes
                }
            }
        }
        release("invariant checker") { $0.checker = InvariantChecker(context: $0.context) }
        release("event queue") { $0.queue = EventQueue<Event>(reserving: 0) }
        // A principal's parts one kind at a time, each principal's slot (and the CPU model's
        // slots) last; listed under the whole.
        let principalParts: [(String, Int)] = [
            ("  of which readers (verified payments, validations)", freed { s in
                for i in s.principals.indices { s.principals[i].reader = Simulator.reader(s.context, s.principals[i].meter, s.scenario) }
            }),
            ("  of which writers and hand-overs", freed { s in
                for i in s.principals.indices {
                    s.principals[i].writers = []
                    s.principals[i].handOvers = []
                    s.principals[i].lastCommitted = nil
                }
            }),
            ("  of which wallets (coins, payments received)", freed { s in
                for i in s.principals.indices {
                    let w = s.principals[i].wallet
                    s.principals[i].wallet = Wallet(signer: w.signer, networkId: w.networkId, limits: w.limits)
                }
            }),
        ]
        let slots = freed { $0.principals = []; $0.cpu = [] }
        parts.append(("principals (wallets, writers, readers)", principalParts.reduce(slots) { $0 + $1.1 }))
        parts += principalParts
        parts.append(("  of which the principals' and nodes' slots", slots))
        release("replicas (stores, locks, repair queues)") { $0.replicas = [] }
        for (name, t) in zip(names, tables) {
            parts.append(("  replica table \(name) (\(t.count) entries, buckets only)", t.bytes))
        }
        release("payment index and metrics") {
            $0.records = []
            $0.recordIndex = DigestMap()
            $0.certifiedList = []
            $0.metrics = Metrics(bucket: $0.metrics.bucket, loadGroups: $0.metrics.loadGroups)
        }
        if sims.count > 1 { release("hand-overs from other partitions (their index)") { $0.foreign = [:] } }
        parts.append(("rest (keys, groups, genesis, code)", Simulator.heapInUse()))
        return parts
    }
}
