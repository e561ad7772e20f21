import CHeap
import Glibc
import QuorumCrypto
import QuorumLedger
import QuorumStore

// MARK: Splitting a run by shard

/// How a partitioned run (`engine.partitions` = P > 1) divides the scenario: the groups in P
/// contiguous blocks, each with its replicas and the principals whose shard it holds. Each
/// partition issues its principals' share of the arrival rate and of the payment cap, choosing
/// payers among them only (the split of a Poisson process is Poisson), and draws its workload and
/// network from streams of its own.
struct PartitionSplit {
    let count: Int
    /// Partition of every node: replicas, then principals.
    let nodeOwner: [UInt8]
    /// This partition's principals, ascending.
    let payers: [Int32]
    let rate: Double
    let paymentCap: Int

    init(scenario: Scenario, shardOf: [Int], index: Int) throws(ConfigurationError) {
        try PartitionSplit.validate(scenario)
        let t = scenario.topology, w = scenario.workload
        count = scenario.engine.partitions
        let parts = count, groups = t.groups
        func block(_ group: Int) -> UInt8 { UInt8(truncatingIfNeeded: min(parts - 1, group * parts / groups)) }
        var owner = [UInt8]()
        owner.reserveCapacity(t.replicaCount + shardOf.count)
        for r in 0..<t.replicaCount { owner.append(block(r / t.n)) }
        var principalsIn = [Int](repeating: 0, count: parts)
        for g in shardOf {
            let b = block(g)
            owner.append(b)
            principalsIn[Int(b)] += 1
        }
        nodeOwner = owner
        payers = (0..<shardOf.count).filter { Int(owner[t.replicaCount + $0]) == index }.map { Int32($0) }
        let total = max(1, shardOf.count)
        let before = principalsIn[..<index].reduce(0, +)
        // Shares of the cap that add up to it exactly (≤ 10⁹ payments × ≤ 10⁷ principals fits).
        paymentCap = w.payments * (before + principalsIn[index]) / total - w.payments * before / total
        rate = w.rate * Double(principalsIn[index]) / Double(total)
    }

    /// What a partitioned run needs, as errors naming the field.
    static func validate(_ s: Scenario) throws(ConfigurationError) {
        let p = s.engine.partitions
        guard p > 1 else { return }
        func fail(_ why: String) -> ConfigurationError { .invalidTopology("engine.partitions = \(p) \(why)") }
        guard s.system == .quorumcoin else { throw fail("needs system quorumcoin") }
        guard s.topology.assignment == .partitioned else { throw fail("needs topology.assignment: partitioned (a shard per group)") }
        guard s.topology.groups >= p else { throw fail("needs at least as many topology.groups (\(s.topology.groups))") }
        guard s.faults.isEmpty, s.faults.auditReads == 0 else {
            throw fail("simulates fault-free runs only: faults (replica faults, attacks, mutants, audit reads) need engine.partitions: 1")
        }
        guard s.network.partitions.isEmpty else { throw fail("cannot simulate network.partitions (use engine.partitions: 1)") }
        guard s.network.minimumDelay > 0 else {
            throw fail("needs a latency model with a positive minimum delay (constant, uniform with min_ms > 0, or regions): it is how far apart the partitions' threads may run")
        }
    }
}

/// A message to a node of another partition, encoded (no object is shared between partitions'
/// threads), with its arrival time; for a hand-over, what the payee's partition needs of the
/// payment's record.
struct CrossDelivery {
    let at: UInt64
    let from: NodeID
    let to: NodeID
    let size: Int32
    let bytes: [UInt8]
    let payment: ForeignPayment?
}

/// A payment whose payer is in another partition: where its record is, its payer and its depth.
struct ForeignPayment {
    let partition: UInt8
    let index: Int32
    let payer: Int32
    let depth: UInt32
}

/// A payee accepted payment `index` of the payer's partition at `time`.
struct Confirmation {
    let index: Int32
    let time: UInt64
}

extension Simulator {
    /// Queues a delivery to another partition's node, handed over at the end of this window and
    /// taken in by its partition a minimum delay later (`WindowPlan`), before it can arrive.
    func sendAcross(_ message: Message, from: NodeID, to: NodeID, size: Int, at first: UInt64, _ second: UInt64?) {
        var payment: ForeignPayment?
        if case let .handOver(certified, _) = message, let i = recordIndex[certified.key] {
            payment = ForeignPayment(partition: partition, index: i, payer: records[Int(i)].payer, depth: records[Int(i)].depth)
        }
        let bytes = message.encoded
        let destination = Int(nodeOwner[Int(to.raw)])
        let size = Int32(truncatingIfNeeded: size)
        outbound[destination].append(CrossDelivery(at: first, from: from, to: to, size: size, bytes: bytes, payment: payment))
        if let second {
            outbound[destination].append(CrossDelivery(at: second, from: from, to: to, size: size, bytes: bytes, payment: payment))
        }
    }

    /// Takes in what other partitions sent a minimum delay ago: confirmations of this
    /// partition's payments, and deliveries (decoded here, in this partition's thread).
    func ingest(_ deliveries: [CrossDelivery], _ confirmations: [Confirmation]) {
        for c in confirmations { payeeAccepted(Int(c.index), at: c.time) }
        for d in deliveries {
            let message: Message
            do { message = try Message.decode(d.bytes) } catch {
                // Bytes this simulator encoded from an honest node's message: a bug, not input.
                preconditionFailure("partitioned run: a message between partitions did not decode: \(error)")
            }
            if let f = d.payment, case let .handOver(certified, _) = message, recordIndex[certified.key] == nil,
               foreign[certified.key] == nil {
                foreign[certified.key] = f
            }
            queue.push(.deliver(from: d.from, to: d.to, message: message, size: d.size), at: d.at)
        }
    }

    /// This window's deliveries and confirmations for other partitions (and empties them).
    func takeOutbound() -> (deliveries: [[CrossDelivery]], confirmations: [[Confirmation]]) {
        let taken = (outbound, confirmationsOut)
        outbound = Array(repeating: [], count: outbound.count)
        confirmationsOut = Array(repeating: [], count: confirmationsOut.count)
        return taken
    }
}

// MARK: Threads

/// A POSIX semaphore at a fixed address (a plain pointer: nothing reference-counted).
private struct Semaphore {
    let raw: UnsafeMutablePointer<sem_t>
    init() {
        raw = .allocate(capacity: 1)
        sem_init(raw, 0, 0)
    }
    func signal() { sem_post(raw) }
    func wait() { while sem_wait(raw) != 0 {} }  // EINTR: wait again
    func destroy() {
        sem_destroy(raw)
        raw.deallocate()
    }
}

/// How a partitioned run steps through simulated time: windows of `width` nanoseconds, `depth`
/// of them to the network's minimum delay, one after the other from 0. A message sent during
/// window m arrives at or after the start of window m + depth, so a partition may run window m
/// as soon as every other one has finished window m − depth: the threads run up to depth − 1
/// windows apart and meet only where one gets that far ahead. Where nothing was pending or on its
/// way at the end of window m − depth before the end of window m − 1, window m starts at the
/// earliest time anything was (every partition computes the same start from the same stats).
struct WindowPlan {
    let width: UInt64
    let depth: Int
    let horizon: UInt64
    let duration: UInt64

    /// Windows per minimum delay. Four: a thread stalled (a fresh huge page zeroed, a busy
    /// window) is waited for only once the other is three windows ahead of it.
    static let windowsPerDelay: UInt64 = 4

    init(_ scenario: Scenario) {
        let delay = scenario.network.minimumDelay
        let depth = max(1, min(WindowPlan.windowsPerDelay, delay))
        self.depth = Int(depth)
        width = delay / depth  // depth windows fit in the delay
        horizon = scenario.duration &+ scenario.drain
        self.duration = scenario.duration
    }
}

/// What a partition reports of the state it was in at the end of a window.
struct WindowStats {
    var unfinished = 0
    var issued = 0
    var events: UInt64 = 0
    /// Its earliest pending event (`.max`: none).
    var nextEvent = UInt64.max
    /// The earliest arrival among the deliveries it sent other partitions in the window.
    var firstArrival = UInt64.max
    /// Where the window ended (the same for every partition).
    var end: UInt64 = 0
}

/// What the partitions' threads hand each other, in memory that no reference count guards:
/// each cell is written by one thread and read by one other, in turns the semaphores order. Per
/// (sender, window slot, receiver): the deliveries and confirmations the sender produced in that
/// window; per (sender, slot): its stats after the window; per (receiver, sender): a semaphore the
/// sender posts once per window it finishes. Slots are reused every 3 × depth windows: a sender
/// can be depth − 1 windows ahead of the window its receivers are about to start, which reads
/// the stats of the depth windows up to depth windows before it.
private struct Exchange {
    let parts: Int
    let slots: Int
    let deliveries: UnsafeMutablePointer<[CrossDelivery]>
    let confirmations: UnsafeMutablePointer<[Confirmation]>
    let stats: UnsafeMutablePointer<WindowStats>
    let ready: UnsafeMutablePointer<sem_t>

    init(parts: Int, depth: Int) {
        self.parts = parts
        slots = 3 * depth
        let cells = parts * slots * parts
        deliveries = .allocate(capacity: cells)
        deliveries.initialize(repeating: [], count: cells)
        confirmations = .allocate(capacity: cells)
        confirmations.initialize(repeating: [], count: cells)
        stats = .allocate(capacity: parts * slots)
        stats.initialize(repeating: WindowStats(), count: parts * slots)
        ready = .allocate(capacity: parts * parts)
        for i in 0..<(parts * parts) { sem_init(ready + i, 0, 0) }
    }

    /// Frees everything, the deliveries never taken included (after the threads have exited).
    func destroy() {
        let cells = parts * slots * parts
        deliveries.deinitialize(count: cells)
        deliveries.deallocate()
        confirmations.deinitialize(count: cells)
        confirmations.deallocate()
        stats.deinitialize(count: parts * slots)
        stats.deallocate()
        for i in 0..<(parts * parts) { sem_destroy(ready + i) }
        ready.deallocate()
    }

    func slot(_ window: UInt64) -> Int { Int(window % UInt64(slots)) }
    private func cell(_ from: Int, _ slot: Int, _ to: Int) -> Int { (from * slots + slot) * parts + to }

    func put(from: Int, window: UInt64, to: Int, _ d: [CrossDelivery], _ c: [Confirmation]) {
        let k = cell(from, slot(window), to)
        deliveries[k] = d
        confirmations[k] = c
    }

    /// Moves out what `from` sent `to` in `window` (the cells are left empty).
    func take(from: Int, window: UInt64, to: Int) -> (deliveries: [CrossDelivery], confirmations: [Confirmation]) {
        let k = cell(from, slot(window), to)
        let d = (deliveries + k).move(), c = (confirmations + k).move()
        (deliveries + k).initialize(to: [])
        (confirmations + k).initialize(to: [])
        return (d, c)
    }

    func setStats(of part: Int, window: UInt64, _ s: WindowStats) { stats[part * slots + slot(window)] = s }
    func stats(of part: Int, window: UInt64) -> WindowStats { stats[part * slots + slot(window)] }

    /// `from` finished a window: tell every other partition.
    func finished(_ from: Int) {
        for to in 0..<parts where to != from { sem_post(ready + to * parts + from) }
    }

    /// Waits until every other partition has finished one more window than it had.
    func awaitOthers(_ me: Int) {
        for from in 0..<parts where from != me {
            while sem_wait(ready + me * parts + from) != 0 {}  // EINTR: wait again
        }
    }
}

/// One partition and the thread that simulates it. Release builds count references without
/// atomic instructions (`Package.swift`), so no object may be retained or released by two
/// threads at once: each partition builds its own simulator from its own copy of the scenario,
/// a worker is reached only through unmanaged references while the threads run (its count is
/// never touched), and what crosses between threads (arrays of deliveries) goes through the
/// exchange's plain memory, taken by its receiver after its sender has let go of it. Objects
/// every thread reads (hash domain tags, record type sets, message kinds) are constants with no
/// heap storage.
private final class PartitionWorker {
    let index: Int
    private var scenario: Scenario?
    private(set) var sim: Simulator?
    private(set) var buildError: (any Error)?
    let go = Semaphore()
    let done = Semaphore()
    // Set by the coordinator before `go`.
    var quit = false
    var plan: WindowPlan?
    var exchange: Exchange?
    private(set) var storeFindings: [(replica: Int, key: Digest)] = []
    /// Deliveries and confirmations this partition took in from the others.
    private(set) var crossDeliveries = 0
    private(set) var crossConfirmations = 0
    /// This thread's CPU seconds over its windows (taking in, running, handing out; blocked, it
    /// uses none), for wall.json. Read from the thread's own clock, never by the simulation.
    private(set) var busySeconds = 0.0
    /// Wall seconds this thread was blocked until the others had finished a window (what the
    /// busy seconds and these leave of the event phase, the thread was runnable but not running).
    private(set) var waitSeconds = 0.0

    init(index: Int, scenario: Scenario) {
        self.index = index
        self.scenario = scenario
    }

    deinit {
        go.destroy()
        done.destroy()
    }

    func build() {
        guard let scenario else { return }
        self.scenario = nil
        do { sim = try Simulator(scenario: scenario, partition: index) } catch { buildError = error }
    }

    /// Runs this partition's windows until the run ends (at the same window for every
    /// partition: the rule reads every partition's stats of one past window). `progress`, on
    /// partition 0 only, gets the totals of the window whose stats it last read.
    /// Returns the totals over every partition it last read (of the window whose end decided).
    @discardableResult
    func runWindows(progressEvery: UInt64, progress: ((Progress) -> Void)?) -> (stats: WindowStats, end: UInt64) {
        var last = (stats: WindowStats(), end: UInt64(0))
        guard let sim, let plan, let exchange else { return last }
        let me = index, parts = exchange.parts, depth = UInt64(plan.depth)
        var lastProgressEvents: UInt64 = 0
        var window: UInt64 = 0
        var end: UInt64 = 0  // where the last window ended
        // A thread blocked on a semaphore uses no CPU: its CPU time over the windows is its busy time.
        let cpuAtStart = seconds(on: CLOCK_THREAD_CPUTIME_ID)
        defer { busySeconds = seconds(on: CLOCK_THREAD_CPUTIME_ID) - cpuAtStart }
        while true {
            var start = end
            if window >= depth {
                let past = window - depth
                let waitStart = seconds(on: CLOCK_MONOTONIC)
                exchange.awaitOthers(me)
                waitSeconds += seconds(on: CLOCK_MONOTONIC) - waitStart
                var totals = WindowStats()
                // The earliest time anything can happen from here: a pending event after
                // `past`, or a delivery sent in the windows up to it and not yet taken in.
                var next = UInt64.max
                for p in 0..<parts {
                    let s = exchange.stats(of: p, window: past)
                    totals.unfinished += s.unfinished
                    totals.issued += s.issued
                    totals.events &+= s.events
                    next = min(next, s.nextEvent)
                    for k in 0..<depth where k <= past { next = min(next, exchange.stats(of: p, window: past - k).firstArrival) }
                }
                let pastEnd = exchange.stats(of: me, window: past).end
                last = (totals, pastEnd)
                // Every payment issued by then had finished (confirmations in flight count as
                // unfinished at their payers until taken in), or nothing is left to happen: the
                // run ends here, for every partition alike.
                if (totals.unfinished == 0 && pastEnd > plan.duration) || next == .max { break }
                // Nothing could happen in the windows since `past` (none of it was pending or
                // on its way), so none did, anywhere: skip to the next thing that will.
                start = max(start, next)
                var deliveries = [CrossDelivery](), confirmations = [Confirmation]()
                for p in 0..<parts where p != me {
                    let (d, c) = exchange.take(from: p, window: past, to: me)
                    deliveries += d
                    confirmations += c
                }
                crossDeliveries += deliveries.count
                crossConfirmations += confirmations.count
                sim.ingest(deliveries, confirmations)
                if let progress, totals.events &- lastProgressEvents >= progressEvery {
                    lastProgressEvents = totals.events
                    progress(Progress(simulatedTime: pastEnd, horizon: plan.horizon, events: totals.events,
                                      issued: totals.issued, finished: totals.issued - totals.unfinished))
                }
            }
            if start > plan.horizon { break }
            end = min(start &+ plan.width, plan.horizon &+ 1)
            sim.runWindow(until: end)
            // Handed over by moving each list out (`[]` left behind): once `finished` is
            // posted, nothing this thread still holds may reference them.
            var (deliveries, confirmations) = sim.takeOutbound()
            var firstArrival = UInt64.max
            for p in 0..<parts where p != me {
                for d in deliveries[p] { firstArrival = min(firstArrival, d.at) }
                exchange.put(from: me, window: window, to: p, deliveries[p], confirmations[p])
                deliveries[p] = []
                confirmations[p] = []
            }
            exchange.setStats(of: me, window: window, WindowStats(
                unfinished: sim.unfinished, issued: sim.records.count, events: sim.events,
                nextEvent: sim.queue.nextTime ?? .max, firstArrival: firstArrival, end: end))
            exchange.finished(me)
            window &+= 1
        }
        return last
    }

    /// S9 over this partition's replicas: each partition's stores hold its own objects only.
    func checkStores() {
        guard let sim else { return }
        let mine = (0..<sim.replicaCount).filter { sim.hosts(node: $0) && !sim.faults.isByzantine($0) }
        storeFindings = InvariantChecker.invalidStores(context: sim.context, replicas: mine) { i, visit in
            InvariantChecker.visitStored(sim.replicas[i].durable.store, visit)
        }
    }

    /// The thread's life: build; then, unless told to quit, run the windows and check the stores.
    func threadMain() {
        build()
        done.signal()
        go.wait()
        if !quit {
            runWindows(progressEvery: .max, progress: nil)
            checkStores()
        }
        done.signal()
    }

    /// Tells the (started, idle) thread to quit, and waits until it has.
    func stop() {
        quit = true
        go.signal()
        done.wait()
    }

    func start() throws(ConfigurationError) {
        var thread = pthread_t()
        let context = Unmanaged.passUnretained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<PartitionWorker>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.threadMain() }
            return nil
        }, context)
        guard rc == 0 else { throw .invalidTopology("engine.partitions: could not start a thread (error \(rc))") }
        pthread_detach(thread)
    }
}

/// Seconds on `clock`: `CLOCK_THREAD_CPUTIME_ID`, the CPU the calling thread has used (user and
/// kernel), or `CLOCK_MONOTONIC`, wall time. For wall.json's busy and blocked times only.
private func seconds(on clock: clockid_t) -> Double {
    var t = timespec()
    guard clock_gettime(clock, &t) == 0 else { return 0 }
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

// MARK: The run

/// A QuorumCoin run simulated by `engine.partitions` threads, one per block of shards: a
/// conservative parallel discrete-event simulation whose lookahead is the network's minimum
/// delay (`WindowPlan`): nothing a partition sends can take effect before that delay has passed,
/// so each thread runs windows of simulated time and takes in, at the start of each, what the
/// others sent one delay earlier (hand-overs to payees and their acknowledgements: a payer's own
/// group is in its partition), in partition order, with the confirmations payees made. Each
/// thread takes in fixed windows' worth at fixed points of its own run, so the outputs are a
/// function of the scenario alone, whatever the machine or the threads' timing. The invariants
/// are checked at the end over all partitions at once, as in a one-thread run.
public final class PartitionedRun: SystemRun {
    public let scenario: Scenario
    private let workers: [PartitionWorker]
    /// The worker threads have exited (their objects may be touched as usual again).
    private var joined = false
    private var violations: [Violation] = []
    private var primary: Simulator?
    /// Deliveries and confirmations that crossed between partitions.
    private(set) var crossDeliveries = 0
    private(set) var crossConfirmations = 0

    public init(scenario: Scenario) throws {
        try PartitionSplit.validate(scenario)
        self.scenario = scenario
        // glibc gives every other thread an arena of 64 MiB heaps, and hands a heap's free top
        // back to the kernel whenever it passes the trim threshold: a run's churn of messages
        // then faults in and zeroes the same pages again and again. Freed memory stays mapped
        // (a 250,000-payment run in two partitions: 25.4 s → 17.7 s and 21.0 s; the same
        // settings left a one-thread run as it was, 29.1 s and 29.5 s).
        quorumcoin_keep_freed_memory()
        workers = try PartitionedRun.makeWorkers(scenario)
        // Partition 0 is built and run on the calling thread, the others on threads of their own.
        var started = 0
        var failure: (any Error)?
        for w in workers.dropFirst() {
            do { try w.start(); started += 1 } catch { failure = error; break }
        }
        workers[0].build()
        for w in workers.dropFirst().prefix(started) { w.done.wait() }
        failure = failure ?? workers.lazy.compactMap(\.buildError).first
        if let failure {
            for w in workers.dropFirst().prefix(started) { w.stop() }
            joined = true
            throw failure
        }
    }

    deinit {
        guard !joined else { return }
        for w in workers.dropFirst() { w.stop() }
    }

    /// Each partition's own copy of the scenario, parsed from its resolved text here: copies of
    /// one value would share its strings' and arrays' storage between threads.
    private static func makeWorkers(_ scenario: Scenario) throws -> [PartitionWorker] {
        let text = ScenarioFile.emit(scenario)
        return try (0..<scenario.engine.partitions).map { i in
            let copy = try ScenarioFile(file: "resolved scenario").parse(text)
            guard copy == scenario else { throw ConfigurationError.invalidTopology("engine.partitions: the resolved scenario does not parse back to the same scenario") }
            return PartitionWorker(index: i, scenario: copy)
        }
    }

    public func run(progressEvery: UInt64, progress: ((Progress) -> Void)?) {
        guard !joined, workers.first?.sim != nil else { return }
        let plan = WindowPlan(scenario)
        let exchange = Exchange(parts: workers.count, depth: plan.depth)
        defer { exchange.destroy() }  // after the threads have exited (below)
        // Set before `go`, which orders these writes before the threads read them.
        for w in workers {
            w.plan = plan
            w.exchange = exchange
        }
        // While the threads run, workers are reached through unmanaged references only.
        let units = workers.map { Unmanaged.passUnretained($0) }
        for u in units.dropFirst() { u._withUnsafeGuaranteedRef { $0.go.signal() } }
        let last = units[0]._withUnsafeGuaranteedRef { $0.runWindows(progressEvery: progressEvery, progress: progress) }
        // The events are over here: the end-of-run checks start (wall.json's checks_s), shown
        // with the totals of the window that decided the end. The other threads finish the same
        // windows, then check their replicas' stores (S9), as partition 0 does here.
        func checking(_ t: WindowStats, at time: UInt64) {
            progress?(Progress(simulatedTime: time, horizon: plan.horizon, events: t.events, issued: t.issued,
                               finished: t.issued - t.unfinished, checking: true))
        }
        checking(last.stats, at: last.end)
        units[0]._withUnsafeGuaranteedRef { $0.checkStores() }
        for u in units.dropFirst() { u._withUnsafeGuaranteedRef { $0.done.wait() } }
        joined = true
        let sims = workers.compactMap(\.sim)
        let endTime = sims.reduce(0) { max($0, $1.now) }
        // Now the exact totals (the windows after the deciding one included).
        checking(WindowStats(unfinished: sims.reduce(0) { $0 + $1.unfinished }, issued: sims.reduce(0) { $0 + $1.records.count },
                             events: sims.reduce(0) { $0 &+ $1.events }),
                 at: endTime)
        crossDeliveries = workers.reduce(0) { $0 + $1.crossDeliveries }
        crossConfirmations = workers.reduce(0) { $0 + $1.crossConfirmations }
        for s in sims {
            s.endTime = endTime
            s.queue = EventQueue(reserving: 0)
        }
        let order = PartitionedRun.issueOrder(sims)
        violations = checkInvariants(sims, order: order, endTime: endTime)
        primary = PartitionedRun.absorb(sims, order: order, violations: violations)
    }

    /// Every payment as (partition, index), in the order the one-thread run would list them: by
    /// the time its writer started, earlier partitions first on ties.
    private static func issueOrder(_ sims: [Simulator]) -> [(part: UInt8, index: Int32)] {
        mergeOrder(sims.map(\.records.count)) { sims[$0].records[$1].started }
            .map { (UInt8(truncatingIfNeeded: $0.list), Int32(truncatingIfNeeded: $0.index)) }
    }

    /// PROTOCOL §7 over the whole run: one checker from every partition's observations, and a
    /// world whose replicas and payments are each read from their own partition. S1 and S10 were
    /// checked as the run went, within each partition, and need nothing from the others: a
    /// redeem key's votes and certificates only ever travel within its group, hence its partition.
    private func checkInvariants(_ sims: [Simulator], order: [(part: UInt8, index: Int32)], endTime: UInt64) -> [Violation] {
        guard let first = sims.first else { return [] }
        let checker = InvariantChecker.merging(sims.map(\.checker), context: first.context)
        // Kept by partition 0 (whose own checker's tables were just taken): freed here, its
        // million records would be released one by one, each a cold line (0.4 s at 1M payments).
        first.checker = checker
        let owner = first.nodeOwner
        let replicaCount = first.replicaCount
        let unfinished = sims.reduce(0) { $0 + $1.unfinished }
        let settle = first.repairSettle(records: order.count)
        var repairDeadline: UInt64?
        if scenario.protocolSettings.repair > 0, unfinished == 0, endTime > settle { repairDeadline = endTime - settle }
        var stuck = [Int]()
        for r in 0..<replicaCount where sims[Int(owner[r])].cpu[r].busyUntil > endTime &+ 10 * Time.second { stuck.append(r) }
        var locked = [LockedFunds]()
        for (part, index) in order {
            if let l = sims[Int(part)].lockedFunds(of: Int(index)), l.reason.hasPrefix("refused") { locked.append(l) }
        }
        let bound = Simulator.LivenessBound(first)
        let world = InvariantChecker.World(
            honestReplicas: Array(0..<replicaCount),
            storedRecords: { i, visit in InvariantChecker.visitStored(sims[Int(owner[i])].replicas[i].durable.store, visit) },
            holds: { i, key in sims[Int(owner[i])].replicas[i].durable.store.contains(key) },
            honestPayments: { visit in
                for (part, index) in order {
                    let r = sims[Int(part)].records[Int(index)]
                    guard r.isHonest else { continue }
                    visit((key: r.key, issued: r.started, certified: r.certified, bound: bound(start: r.started)))
                }
            },
            end: endTime,
            lockedHonest: locked,
            recoveredUnfinished: [],
            stuckHonestReplicas: stuck,
            repairDeadline: repairDeadline,
            groupMembers: { [context = first.context] pk in context.group(of: pk).members.map(Int.init) },
            honestLive: { _ in true },
            committedAt: { key in
                for s in sims {
                    guard let i = s.recordIndex[key] else { continue }
                    let t = s.records[Int(i)].committed
                    return t == PaymentRecord.never ? nil : t
                }
                return nil
            },
            checkedStores: workers.flatMap(\.storeFindings).sorted { $0.replica < $1.replica })
        return checker.finish(world)
    }

    /// Folds every partition's results into partition 0's simulator, which then reports the
    /// run as a one-thread run reports itself.
    private static func absorb(_ sims: [Simulator], order: [(part: UInt8, index: Int32)], violations: [Violation]) -> Simulator? {
        guard let primary = sims.first else { return nil }
        var records = [PaymentRecord]()
        records.reserveCapacity(order.count)
        for (part, index) in order { records.append(sims[Int(part)].records[Int(index)]) }
        for s in sims { s.records = [] }
        primary.records = records
        for s in sims.dropFirst() {
            primary.metrics.absorb(s.metrics)
            primary.network.absorbCounts(s.network)
            primary.events &+= s.events
            primary.unfinished += s.unfinished
            primary.signsMade &+= s.signsMade
            primary.verifierCalls &+= s.verifierCalls
            primary.absorbedReplicaRejects += s.replicaRejects
        }
        primary.violations = violations
        return primary
    }

    public func report(scenarioHash: String, toolVersion: String) -> RunReport {
        // Before `run`, partition 0's own (empty) results; a built run always has a partition 0.
        guard let primary = primary ?? workers.first?.sim else { preconditionFailure("a PartitionedRun is built with its partitions") }
        return primary.report(scenarioHash: scenarioHash, toolVersion: toolVersion)
    }

    public var runViolations: [Violation] { violations }

    /// `quorumsim run --memory-breakdown`: each part freed in every partition at once. Destroys
    /// the run's state (call it last); empty before the run has ended.
    public func memoryBreakdown() -> [(part: String, bytes: Int)] {
        let sims = partitionSimulators
        return sims.isEmpty ? [] : Simulator.memoryBreakdown(of: sims)
    }

    /// Each partition's CPU seconds inside its windows (`PartitionWorker.busySeconds`), once the
    /// threads have exited.
    public var partitionBusySeconds: [Double] { joined ? workers.map(\.busySeconds) : [] }

    /// Each partition's wall seconds blocked waiting for the others to finish a window
    /// (`PartitionWorker.waitSeconds`), once the threads have exited.
    public var partitionWaitSeconds: [Double] { joined ? workers.map(\.waitSeconds) : [] }

    /// Every partition's simulator, once the threads have exited (none before: while they run,
    /// their objects belong to their threads).
    var partitionSimulators: [Simulator] { joined ? workers.compactMap(\.sim) : [] }
}

extension Metrics {
    /// Adds another partition's counts (same buckets and groups).
    mutating func absorb(_ other: Metrics) {
        if !other.issued.isEmpty { _ = index(UInt64(other.issued.count - 1) &* bucket) }
        for i in other.issued.indices {
            issued[i] += other.issued[i]
            certified[i] += other.certified[i]
            confirmed[i] += other.confirmed[i]
            failed[i] += other.failed[i]
        }
        for i in other.load.indices { load[i] += other.load[i] }
        for i in other.messages.indices {
            messages[i] += other.messages[i]
            bytes[i] += other.bytes[i]
        }
        skipped += other.skipped
        rejectedAtPayee += other.rejectedAtPayee
        for (depth, v) in other.validations.enumerated() where v.count > 0 {
            if depth >= validations.count { validations += Array(repeating: (0, 0, 0), count: depth + 1 - validations.count) }
            validations[depth].count += v.count
            validations[depth].total &+= v.total
            validations[depth].max = Swift.max(validations[depth].max, v.max)
        }
    }
}

/// Where each entry of several lists goes when they are merged by `key`: (list, index) pairs,
/// each list's own order kept, an earlier list first on equal keys.
func mergeOrder(_ counts: [Int], by key: (_ list: Int, _ index: Int) -> UInt64) -> [(list: Int, index: Int)] {
    var order = [(list: Int, index: Int)]()
    order.reserveCapacity(counts.reduce(0, +))
    var heads = [Int](repeating: 0, count: counts.count)
    while true {
        var best = -1, bestKey = UInt64.max
        for (list, count) in counts.enumerated() where heads[list] < count {
            let k = key(list, heads[list])
            if best < 0 || k < bestKey { (best, bestKey) = (list, k) }
        }
        guard best >= 0 else { return order }
        order.append((best, heads[best]))
        heads[best] += 1
    }
}
