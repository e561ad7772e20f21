import CHeap
import QuorumCrypto
import QuorumLedger
import QuorumStore

/// Progress of a running simulation, for a progress line.
public struct Progress: Sendable {
    public var simulatedTime: UInt64
    public var horizon: UInt64
    public var events: UInt64
    public var issued: Int
    public var finished: Int
    /// The events are done and the end-of-run invariant checks start (a large run's last ~10%).
    public var checking = false
}

/// The deterministic discrete-event simulator: hosts the unmodified QuorumStore state machines on
/// a seeded event queue, with a CPU model per node, a network model between them, a fault layer
/// around them and an invariant checker watching them.
public final class Simulator {
    public let scenario: Scenario
    // Hot settings copied out of `scenario`: reading a field of the whole struct copies it
    // (retaining every array inside), which cost 4% of a run.
    let costs: Scenario.CryptoSettings
    let retry: UInt64
    let duration: UInt64
    let groupSize: Int
    let partitioned: Bool
    let principalCount: Int
    let inFlightLimit: Int
    let context: ProtocolContext
    /// The run's verifier: memoized Ed25519, or the modelled registry (cheaper than a memo).
    let verifier: SignatureVerifier
    private let memo: MemoizingVerifier?
    var queue = EventQueue<Event>(reserving: 1 << 16)
    var network: Network
    var replicas: [Replica]
    let replicaSigners: [any Signer]
    var principals: [PrincipalHost]
    /// Principal i's public key at index i. Read from here, not from `principals[i].wallet`:
    /// that read compiled to a copy of the whole 344-byte slot, retaining every reference in it
    /// (three per payment, each touching six cold cache lines of a large run).
    let principalKeys: [PublicKey]
    var cpu: [NodeCPU<Message>]
    var workloadRandom: DeterministicRandom
    var attackRandom: DeterministicRandom
    var zipfCDF: [Double] = []
    /// Payee validations completed by the step being processed: (depth, start).
    var validatedThisStep: [(UInt32, UInt64)] = []
    /// `workload.cross_group` in partitioned mode: the share, each principal's shard, and the
    /// principals of each shard.
    var crossShare: Double?
    var principalShard: [Int32] = []
    var shardMembers: [[Int32]] = []
    var records: [PaymentRecord] = []
    /// A payment's row in `records`, by its key: a `DigestMap` (a control line and one slot per
    /// lookup, hashed from the key's first word) where a `Dictionary` hashed all 32 bytes and read
    /// its bitmap, key and value, each a cold line in a large run (a launch, a reader's result
    /// and a crossing hand-over each look a payment up).
    var recordIndex = DigestMap<Int32>()
    /// Record indices of certified payments, in certification order (audit-read targets).
    var certifiedList: [Int32] = []
    var metrics: Metrics
    var out = Outbox()
    var now: UInt64 = 0
    var events: UInt64 = 0
    var unfinished = 0
    var trace: TraceDigest?
    var faults: FaultLayer
    var checker: InvariantChecker
    /// A partitioned run (`engine.partitions` > 1): each node's partition (replicas, then
    /// principals; empty when this simulator runs the whole scenario), this one's index, the
    /// principals that pay here, its share of the arrival rate and of the payment cap.
    let nodeOwner: [UInt8]
    let partition: UInt8
    let payers: [Int32]
    let arrivalRate: Double
    let paymentCap: Int
    /// Deliveries to other partitions' nodes made this window, by destination partition...
    var outbound: [[CrossDelivery]] = []
    /// ...and acceptances of their payers' payments by payees here.
    var confirmationsOut: [[Confirmation]] = []
    /// Payments of other partitions' payers handed over to payees here: enough of their records
    /// to confirm them to their payer and to measure their depth.
    var foreign: [Digest: ForeignPayment] = [:]
    /// Whether any principal has crashed yet (until then none is down).
    var principalsHaveCrashed = false
    /// Payments a payer re-drove after recovering with its log (L5).
    var recovered: [Digest] = []
    /// Attacks mounted, by kind.
    var attacksMounted = [Int](repeating: 0, count: Attack.allCases.count)
    /// Simulated time the run ended.
    var endTime: UInt64 = 0
    var violations: [Violation] = []
    /// Signatures made so far (for `signatureWork`).
    var signsMade = 0
    /// Other partitions' replica rejections, once a partitioned run is folded into this one.
    var absorbedReplicaRejects = 0
    /// Signature checks requested by nodes (memoized or not).
    var verifierCalls = 0

    /// Builds every replica, principal, genesis payment, fault and the initial events.
    /// The whole run in this thread. A scenario with `engine.partitions` > 1 is built by
    /// `Systems.make` instead (a `PartitionedRun`): run here it would give other results.
    public convenience init(scenario: Scenario, traceEvery: UInt64 = 0) throws {
        guard scenario.engine.partitions == 1 else {
            throw ConfigurationError.invalidTopology("engine.partitions = \(scenario.engine.partitions): this command runs one-thread simulations only (set engine.partitions: 1)")
        }
        try self.init(scenario: scenario, traceEvery: traceEvery, partition: nil)
    }

    /// `partition`: simulate only that block of groups of a partitioned run (`PartitionedRun`).
    init(scenario: Scenario, traceEvery: UInt64 = 0, partition: Int?) throws {
        self.scenario = scenario
        costs = scenario.crypto
        retry = scenario.protocolSettings.retry
        duration = scenario.duration
        groupSize = scenario.topology.n
        partitioned = scenario.topology.assignment == .partitioned
        principalCount = scenario.workload.principals
        inFlightLimit = max(1, scenario.workload.inFlight)
        let topology = scenario.topology
        let seed = scenario.seed
        let quorum = try QuorumParameters(n: topology.n, f: topology.f)
        let replicaCount = topology.replicaCount
        let w = scenario.workload
        let replicaSeeds = (0..<replicaCount).map { KeySeed.derive(seed: seed, label: "replica", index: UInt64($0)) }
        let principalSeeds = (0..<w.principals).map { KeySeed.derive(seed: seed, label: "principal", index: UInt64($0)) }
        let baseVerifier: SignatureVerifier
        let principalSigners: [any Signer]
        switch scenario.crypto.mode {
        case .real:
            replicaSigners = replicaSeeds.map { Ed25519KeyPair(seed: $0) }
            principalSigners = principalSeeds.map { Ed25519KeyPair(seed: $0) }
            baseVerifier = Ed25519Verifier()
        case .modelled:
            let scheme = ModelledVerifier(key: KeySeed.derive(seed: seed, label: "modelled-mac", index: 0))
            replicaSigners = replicaSeeds.map { scheme.keyPair(seed: $0) }
            principalSigners = principalSeeds.map { scheme.keyPair(seed: $0) }
            baseVerifier = scheme
        }
        principalKeys = principalSigners.map(\.publicKey)
        let networkId = scenario.protocolSettings.networkId
        let genesisPayments = principalSigners.map { signer in
            Payment.signed(PaymentBody(networkId: networkId, payer: signer.publicKey, inputs: [],
                                       outputs: [Output](repeating: Output(amount: w.coinAmount, owner: signer.publicKey), count: w.coins),
                                       fee: 0, nonce: 0), by: signer)
        }
        let genesis: Genesis
        do { genesis = try Genesis(payments: genesisPayments) } catch {
            throw ConfigurationError.invalidTopology("genesis: \(error)")
        }
        let beacon = Blake2b.hash(.keySeed) { $0.append(seed); $0.append(Array("beacon".utf8)) }
        let assignment = try GroupAssignment(mode: topology.assignment, beacon: beacon, replicaCount: replicaCount, groupSize: topology.n)
        memo = scenario.crypto.mode == .real ? MemoizingVerifier(wrapping: baseVerifier) : nil
        verifier = memo ?? baseVerifier
        context = try ProtocolContext(networkId: networkId, epoch: scenario.protocolSettings.epoch, quorum: quorum,
                                      genesis: genesis, replicaKeys: replicaSigners.map(\.publicKey),
                                      assignment: assignment, verifier: verifier)
        let shardOf: [Int] = principalSigners.map { topology.assignment == .partitioned ? Int(assignment.group(of: $0.publicKey).id.raw) : 0 }
        if let partition {
            let split = try PartitionSplit(scenario: scenario, shardOf: shardOf, index: partition)
            nodeOwner = split.nodeOwner
            payers = split.payers
            arrivalRate = split.rate
            paymentCap = split.paymentCap
            self.partition = UInt8(truncatingIfNeeded: partition)
            outbound = Array(repeating: [], count: split.count)
            confirmationsOut = Array(repeating: [], count: split.count)
        } else {
            nodeOwner = []
            payers = []
            arrivalRate = w.rate
            paymentCap = w.payments
            self.partition = 0
        }
        let settings = ReplicaSettings(repairInterval: scenario.protocolSettings.repair)
        let ctx = context
        replicas = replicaSigners.enumerated().map { i, signer in
            Replica(id: ReplicaID(i), signer: signer, context: ctx, settings: settings)
        }
        // Another partition's principals are never scheduled here: each is an empty wallet
        // sharing one meter (their coins would be a tenth of a large run's memory, twice over).
        let idle = CryptoMeter(ctx.verifier)
        let owner = nodeOwner, me = self.partition
        // Mapped over the indices, whose count the array is sized by exactly (a zip, enumerated,
        // under-reports its count, and the array grew by doubling: +0.1 KiB per principal).
        principals = principalSigners.indices.map { i in
            let signer = principalSigners[i], g = genesisPayments[i]
            var wallet = Wallet<PaymentProof>(signer: signer, networkId: networkId)
            guard Simulator.hosts(node: replicaCount + i, owner: owner, partition: me) else {
                return PrincipalHost(meter: idle, wallet: wallet, reader: Simulator.reader(ctx, idle, scenario))
            }
            wallet.receive(g, proof: .genesis)
            let meter = CryptoMeter(ctx.verifier)
            return PrincipalHost(meter: meter, wallet: wallet, reader: Simulator.reader(ctx, meter, scenario))
        }
        cpu = [NodeCPU<Message>](repeating: NodeCPU(), count: replicaCount + w.principals)
        // A partition draws from streams of its own (what it draws depends on its events alone).
        let suffix = partition.map { "/\($0)" } ?? ""
        network = Network(settings: scenario.network, replicaCount: replicaCount, principalCount: w.principals, seed: seed,
                          stream: "network" + suffix)
        workloadRandom = DeterministicRandom(seed: seed, stream: "workload" + suffix)
        attackRandom = DeterministicRandom(seed: seed, stream: "attacks")
        let loadGroups = topology.assignment == .partitioned ? topology.groups : replicaCount
        metrics = Metrics(bucket: scenario.outputs.bucket, loadGroups: loadGroups)
        var expected = 0
        if scenario.workload.payments > 0, w.arrival == .open {
            // Sized once: a regrowing million-entry index holds two copies at its peak. The cap
            // may be far above what the run offers (up to 10⁹): reserve no more than the
            // expected arrivals, with margin.
            let offered = arrivalRate * Double(scenario.duration) / Double(Time.second) * 1.05 + 1024
            expected = min(paymentCap, offered < 1e9 ? Int(offered) : paymentCap)
            records.reserveCapacity(expected)
            recordIndex.reserveCapacity(expected)
        }
        checker = InvariantChecker(context: context, expectedPayments: expected, inputs: w.inputs)
        // Each expected payment and its redeems are stored by the n members of its payer's
        // group: the stores are sized for that share once rather than rehashed through every
        // doubling (they also hold parents from other groups, so they still end a little larger).
        let hosted = (0..<replicaCount).filter { Simulator.hosts(node: $0, owner: owner, partition: me) }
        if expected > 0, !hosted.isEmpty {
            let perReplica = expected * (1 + max(1, w.inputs)) * topology.n / hosted.count
            for r in hosted { replicas[r].reserveStore(perReplica) }
        }
        if let share = w.crossGroup, topology.assignment == .partitioned, topology.groups > 1 {
            crossShare = share
            principalShard = shardOf.map { Int32($0) }
            shardMembers = [[Int32]](repeating: [], count: topology.groups)
            for (p, g) in shardOf.enumerated() { shardMembers[g].append(Int32(p)) }
        }
        if scenario.faults.isEmpty {
            faults = .none
        } else {
            faults = try FaultLayer(settings: scenario.faults, topology: topology, principalGroups: shardOf, seed: seed)
        }
        if traceEvery > 0 { trace = TraceDigest(every: traceEvery) }
        if case let .zipf(s) = w.recipients {
            var total = 0.0
            zipfCDF = (1...max(1, w.principals)).map { i in
                total += 1 / DeterministicMath.pow(Double(i), s)
                return total
            }
            zipfCDF = zipfCDF.map { $0 / total }
        }
        scheduleWorkload()
        scheduleFaults()
    }

    var replicaCount: Int { replicas.count }

    /// A principal's reader (timer token 0), as at start and after a crash.
    static func reader(_ context: ProtocolContext, _ meter: CryptoMeter, _ scenario: Scenario) -> Reader {
        Reader(context: context, meter: meter, mode: scenario.protocolSettings.validation,
               retryInterval: scenario.protocolSettings.retry, timerToken: 0)
    }

    private func scheduleWorkload() {
        let w = scenario.workload
        switch w.arrival {
        case .open:
            if arrivalRate > 0 { queue.push(.arrival, at: nextArrival(after: 0)) }
        case .closed:
            for (p, t) in w.closedLoopStarts(seed: scenario.seed) where hosts(node: replicaCount + Int(p)) {
                queue.push(.issue(principal: p, requested: t), at: t)
            }
        }
        if scenario.faults.auditReads > 0 {
            queue.push(.auditRead, at: UInt64(workloadRandom.exponential(mean: 1e9 / scenario.faults.auditReads)))
        }
    }

    private func scheduleFaults() {
        for i in faults.replicas.keys.sorted() {
            guard let spec = faults.replicas[i] else { continue }
            switch spec.behaviour {
            case .crashRecover: queue.push(.restart(replica: Int32(i)), at: spec.recover)
            case .crash where faults.offAt > 0: queue.push(.restart(replica: Int32(i)), at: faults.offAt)
            default: break
            }
        }
    }

    private func nextArrival(after t: UInt64) -> UInt64 {
        t &+ workloadRandom.poissonGap(perSecond: arrivalRate)
    }

    /// Whether this simulator runs node `i` (replicas, then principals): always, unless partitioned.
    func hosts(node i: Int) -> Bool { Simulator.hosts(node: i, owner: nodeOwner, partition: partition) }

    /// The same from a partition split's parts (for use before the simulator is initialised).
    static func hosts(node i: Int, owner: [UInt8], partition: UInt8) -> Bool { owner.isEmpty || owner[i] == partition }

    // MARK: Running

    /// Runs to the end: issuing stops at `duration`; the run ends when every issued honest payment
    /// has finished or `duration + drain` is reached. Then the invariants are checked.
    public func run(progressEvery: UInt64 = 1 << 16, progress: ((Progress) -> Void)? = nil) {
        let horizon = scenario.duration &+ scenario.drain
        // With faults or partitions, run on past the last heal long enough for repair to converge
        // and for L3 to be checked on what happened before it.
        let disrupted = lastDisruption > 0 && scenario.protocolSettings.repair > 0
        while let next = queue.nextTime, next <= horizon {
            guard step() else { break }
            if events % progressEvery == 0 {
                progress?(Progress(simulatedTime: now, horizon: horizon, events: events, issued: records.count,
                                   finished: records.count - unfinished))
            }
            if unfinished == 0 && now >= duration && (!disrupted || now >= lastDisruption &+ 2 &* repairSettle) { break }
        }
        endTime = now
        // Events still pending (retry timers of finished writers) will never run: free them
        // before the checks, which are where a big run's memory peaks.
        queue = EventQueue(reserving: 0)
        progress?(Progress(simulatedTime: now, horizon: horizon, events: events, issued: records.count,
                           finished: records.count - unfinished, checking: true))
        violations = checkInvariants()
    }

    /// Runs the events before `end`: one window of a partitioned run (`PartitionedRun`), whose
    /// coordinator decides when the run ends and checks the invariants over every partition.
    func runWindow(until end: UInt64) {
        while let next = queue.nextTime, next < end {
            guard step() else { break }
        }
    }

    /// Handles the next event; false when there is none.
    @inline(__always) private func step() -> Bool {
        guard let (time, event) = queue.pop() else { return false }
        now = time
        events &+= 1
        trace?.record(time: time, event: event)
        // Three events ahead: its node's first lines. Two: what those lines point to. The next:
        // a writer's rounds, a level further down.
        if let latest = queue.upcomingNode(2) { prefetch(latest) }
        if let later = queue.upcomingNode(1) { prefetchDeeper(later) }
        if let soon = queue.upcomingNode(0) { prefetchRounds(soon) }
        prefetchRecords()
        handle(event)
        return true
    }

    /// Starts loading the cache lines an upcoming event's node reads first (its CPU slot and the
    /// head of its replica or principal slot), so those misses overlap the current event's work
    /// instead of stalling the start of that one: a large run's state is gigabytes touched at
    /// random. A hint only (a prefetch never faults and changes no result). With the deeper
    /// prefetch below, a 250,000-payment run took 3 % less wall time (both builds run side by
    /// side on the two cores, twice, cores swapped).
    @inline(__always) private func prefetch(_ node: NodeID) {
        let i = Int(node.raw)
        cpu.withUnsafeBufferPointer { b in
            if i < b.count, let base = b.baseAddress { quorumcoin_prefetch(base + i) }
        }
        if i < replicaCount {
            // The whole replica (240 bytes, four or five lines): its store's and open keys' tables
            // sit 80 to 144 bytes in, past the first line, and every message reads them.
            withReplicaSlot(node) { prefetchLines($0, MemoryLayout<Replica>.stride) }
        } else {
            principals.withUnsafeBufferPointer { b in
                guard i - replicaCount < b.count, let base = b.baseAddress else { return }
                let p = UnsafeRawPointer(base + (i - replicaCount))
                quorumcoin_prefetch(p)
                quorumcoin_prefetch(p + 64)
            }
        }
    }

    /// `RecordLayout`'s offsets, read once: a global's lazy initializer is checked on every read.
    private let recordKeyAt = RecordLayout.keyOffset, recordPrincipalAt = RecordLayout.principalOffset
    private let paymentInputsAt = InvariantChecker.paymentInputsOffset, paymentOutputsAt = InvariantChecker.paymentOutputsOffset
    // Read on every event: a static `let` is a `swift_once` call at each use (2.7M calls in a
    // 30,000-payment scale run), an instance constant a load.
    private let principalMeterAt = Simulator.principalMeterOffset, principalWritersAt = Simulator.principalWritersOffset
    private let writerRoundsAt = Simulator.writerRoundsOffset
    private let replicaSignerAt = Replica.signerBoxOffset, replicaMeterAt = Replica.meterOffset
    private let repairOffsets = Replica.repairArrayOffsets

    /// Starts loading what an upcoming delivery's handler reads first after its node, one level
    /// of references per event of distance: the message's box three events ahead; two ahead,
    /// the record it carries (read from the box, loaded an event ago), a record's certificate
    /// and, for a write, its parent payment or parents' array; for the next event, the lines a
    /// replica's first lookups read (read from the record, loaded an event ago): its store's and
    /// its open keys' slots for the record's key, the group memo's for its principal, and for a
    /// redeem's Prepare its parent's store slot and the invariant checker's first-vote slot
    /// (S10). Parents are payments certified long before, and each table is probed at random:
    /// each lookup a cache miss that otherwise stalls the handler. Hints only, like
    /// `prefetch(_:)`: a stale or wrong address costs a wasted prefetch, never a fault or a result.
    @inline(__always) private func prefetchRecords() {
        if let (box, _, _) = queue.upcomingMessage(2) { quorumcoin_prefetch(box) }
        if let (box, shape, to) = queue.upcomingMessage(1) {
            // A box's fields start after its 16-byte header; an array's elements after the
            // header, count and capacity.
            switch shape {
            case let .write(parentsArray):
                // A Prepare: the replica signs its vote with its own key, boxed apart from it.
                if Int(to.raw) < replicaCount { prefetchSigner(to) }
                if let record = referencedObject(box, 16) { quorumcoin_prefetch(record) }
                // `prepareRedeem`'s parent payment, or `preparePayment`'s parents' first element.
                if let second = referencedObject(box, 24) { quorumcoin_prefetch(second + (parentsArray ? 32 : 0)) }
            case .records:
                if Int(to.raw) < replicaCount { prefetchRepairLog(to, tail: false) }
                if let record = referencedObject(box, 32) { quorumcoin_prefetch(record) }
                // Its proof: a certificate's storage (or, for a batched redeem, the box of its payment).
                if let proof = referencedObject(box, 40) { quorumcoin_prefetch(proof) }
            case .vote:
                if let statement = referencedObject(box, 16) { quorumcoin_prefetch(statement) }
            case .handOver:
                // The payment (its key and its inputs' and outputs' arrays), its certificate's
                // storage, and the parents' array with its first element.
                if let payment = referencedObject(box, 16) { prefetchLines(payment, 128) }
                if let proof = referencedObject(box, 24) { quorumcoin_prefetch(proof) }
                if let parents = referencedObject(box, 32) { prefetchLines(parents, 64) }
            case .other:
                break
            }
        }
        guard let (box, shape, to) = queue.upcomingMessage(0) else { return }
        if case .handOver = shape {
            prefetchHandOver(box)
            return
        }
        guard Int(to.raw) < replicaCount, let keyAt = recordKeyAt, let principalAt = recordPrincipalAt else { return }
        if case .records = shape { prefetchRepairLog(to, tail: true) }
        let record: UnsafeRawPointer?, parent: UnsafeRawPointer?
        switch shape {
        // Read, not just prefetched, so only where it exists: an empty list's storage (a shared
        // 32-byte object) has no first element.
        case .records: record = box.load(fromByteOffset: 16, as: Int.self) > 0 ? referencedObject(box, 32) : nil; parent = nil
        case .write(parentsArray: false): record = referencedObject(box, 16); parent = referencedObject(box, 24)
        case .write(parentsArray: true): record = referencedObject(box, 16); parent = nil
        case .vote, .handOver, .other: return
        }
        guard let record else { return }
        let key = RecordLayout.prefix64(of: record, at: keyAt)
        let principal = RecordLayout.prefix64(of: record, at: principalAt)
        let parentKey = parent.map { RecordLayout.prefix64(of: $0, at: keyAt) }
        replicas.withUnsafeBufferPointer { b in
            let i = Int(to.raw)
            guard i < b.count else { return }
            prefetchLookup(b[i].storeLookupAddresses(keyPrefix: key))
            prefetchLookup(b[i].openLookupAddresses(keyPrefix: key))
            if let parentKey { prefetchLookup(b[i].storeLookupAddresses(keyPrefix: parentKey)) }
        }
        // A redeem's Prepare: the replica's vote is observed for S10 under the redeem's key.
        if parent != nil { prefetchLookup(checker.voteLookupAddresses(keyPrefix: key)) }
        prefetchLookup(context.assignment.lookupAddresses(principalPrefix: principal))
    }

    /// A hand-over's next level, for the next event: the payment's inputs and outputs, and its
    /// first parent's payment and certificate (a payment certified long before: cold), read from
    /// the lines the stage before loaded. Hints only.
    @inline(__always) private func prefetchHandOver(_ box: UnsafeRawPointer) {
        if let payment = referencedObject(box, 16) {
            if let inputs = referencedObject(payment, paymentInputsAt) { quorumcoin_prefetch(inputs + 32) }
            if let outputs = referencedObject(payment, paymentOutputsAt) { prefetchLines(outputs + 32, 80) }
        }
        guard let parents = referencedObject(box, 32), parents.load(fromByteOffset: 16, as: Int.self) > 0 else { return }
        if let parent = referencedObject(parents, 32) {
            quorumcoin_prefetch(parent)
            quorumcoin_prefetch(parent + 64)
        }
        if let proof = referencedObject(parents, 40) { quorumcoin_prefetch(proof) }
    }

    /// `body` with a replica's slot in `replicas` as raw memory, for hints that read its fields by
    /// offset (nothing is copied or retained); not called for a node that is no replica.
    @inline(__always) private func withReplicaSlot(_ node: NodeID, _ body: (UnsafeRawPointer) -> Void) {
        replicas.withUnsafeBufferPointer { b in
            let i = Int(node.raw)
            guard i < b.count, let base = b.baseAddress else { return }
            body(UnsafeRawPointer(base + i))
        }
    }

    /// A replica's signing key: the box its `any Signer` holds (a key pair is wider than an
    /// existential's three inline words), read from the replica's slot loaded an event ago.
    @inline(__always) private func prefetchSigner(_ node: NodeID) {
        guard let signerAt = replicaSignerAt else { return }
        withReplicaSlot(node) { replica in
            if let box = referencedObject(replica, signerAt) { prefetchLines(box, 64) }
        }
    }

    /// A replica that stores a Commit's record appends it to its repair log: one event ahead,
    /// the log's storage header and the peers' storage (read from the replica's slot, loaded an
    /// event before by `prefetch(_:)`); for the next event, the log's end, where the entry goes
    /// (from the count in the header loaded an event ago). Hints only, like the others.
    @inline(__always) private func prefetchRepairLog(_ node: NodeID, tail: Bool) {
        guard let at = repairOffsets else { return }
        withReplicaSlot(node) { replica in
            guard let log = replica.load(fromByteOffset: at.log, as: UnsafeRawPointer?.self) else { return }
            if tail {
                quorumcoin_prefetch(log + 32 + log.load(fromByteOffset: 16, as: Int.self) &* at.entryStride)
            } else {
                quorumcoin_prefetch(log)
                if let peers = replica.load(fromByteOffset: at.peers, as: UnsafeRawPointer?.self) { prefetchLines(peers, 128) }
            }
        }
    }

    /// Where a principal's state points, read from its (prefetched) slot: the writers array's
    /// storage and the meter object (an `Array` is one reference to its storage, whose elements
    /// start 32 bytes in; a class reference is its object's address).
    private static let principalMeterOffset = MemoryLayout<PrincipalHost>.offset(of: \PrincipalHost.meter)
    static let principalWritersOffset = MemoryLayout<PrincipalHost>.offset(of: \PrincipalHost.writers)

    /// Where a principal's first writer keeps its rounds' reference, in its writers array's
    /// storage (whose elements start 32 bytes in).
    static let writerRoundsOffset: Int? = {
        guard let writer = MemoryLayout<PrincipalHost.WriterSlot>.offset(of: \PrincipalHost.WriterSlot.writer),
              let rounds = Writer.roundsOffset else { return nil }
        return 32 + writer + rounds
    }()

    /// The rounds array a principal's first writer reads on every vote and ack, found through the
    /// writers' storage that `prefetchDeeper` loaded an event ago (read only when the array holds
    /// a writer: an empty array's storage is a shared 32-byte object).
    @inline(__always) private func prefetchRounds(_ node: NodeID) {
        let i = Int(node.raw) - replicaCount
        guard i >= 0, let writersAt = principalWritersAt, let roundsAt = writerRoundsAt else { return }
        principals.withUnsafeBufferPointer { b in
            guard i < b.count, let base = b.baseAddress,
                  let rounds = Simulator.firstWriterRounds(UnsafeRawPointer(base + i), writersAt: writersAt, roundsAt: roundsAt) else { return }
            quorumcoin_prefetch(rounds)
            quorumcoin_prefetch(rounds + 64)
        }
    }

    /// The storage of the first writer's rounds array, read from a principal's slot by layout.
    @inline(__always) static func firstWriterRounds(_ slot: UnsafeRawPointer, writersAt: Int, roundsAt: Int) -> UnsafeRawPointer? {
        guard let writers = slot.load(fromByteOffset: writersAt, as: UnsafeRawPointer?.self),
              writers.load(fromByteOffset: 16, as: Int.self) > 0 else { return nil }
        return writers.load(fromByteOffset: roundsAt, as: UnsafeRawPointer?.self)
    }

    /// What an upcoming event's node reads next, found through its slot (loaded an event ago by
    /// `prefetch(_:)`): a principal's meter and writers' storage; a replica's meter, which
    /// counts the signatures each of its messages checks and is read once it is handled (4,000
    /// objects, one per replica: cold in a large run).
    @inline(__always) private func prefetchDeeper(_ node: NodeID) {
        let i = Int(node.raw) - replicaCount
        if i < 0 {
            guard let meterAt = replicaMeterAt else { return }
            withReplicaSlot(node) { replica in
                if let meter = replica.load(fromByteOffset: meterAt, as: UnsafeRawPointer?.self) { quorumcoin_prefetch(meter) }
            }
            return
        }
        guard let meterAt = principalMeterAt, let writersAt = principalWritersAt else { return }
        principals.withUnsafeBufferPointer { b in
            guard i < b.count, let base = b.baseAddress else { return }
            let p = UnsafeRawPointer(base + i)
            if let meter = p.load(fromByteOffset: meterAt, as: UnsafeRawPointer?.self) { quorumcoin_prefetch(meter) }
            if let writers = p.load(fromByteOffset: writersAt, as: UnsafeRawPointer?.self) {
                quorumcoin_prefetch(writers)
                quorumcoin_prefetch(writers + 64)
            }
        }
    }

    private func handle(_ event: Event) {
        switch event {
        case let .deliver(from, to, message, size):
            arrive(message, size: size, from: from, at: to)
        case let .timer(node, token):
            timer(node: node, token: token)
        case let .cpuFree(node):
            cpu[Int(node.raw)].wakeScheduled = false
            drainInbox(node)
        case .arrival:
            guard now < duration, !issueLimitReached else { return }
            let p = nodeOwner.isEmpty ? workloadRandom.uniform(below: principalCount)
                : Int(payers[workloadRandom.uniform(below: payers.count)])
            issue(principal: p, requested: now)
            queue.push(.arrival, at: nextArrival(after: now))
        case let .issue(principal, requested):
            guard now < duration, !issueLimitReached else { return }
            issue(principal: Int(principal), requested: requested)
        case let .deliverBytes(from, to, bytes):
            let i = Int(to.raw)
            guard i < replicaCount, faults.behaviour(i, at: now) == nil else { return }
            out.removeAll()
            replicas[i].receive(bytes: bytes, from: from, now: now, into: &out)
            emit(from: to, cost: costs.messageCost &+ UInt64(bytes.count) &* costs.byteCost)
        case let .restart(replica):
            restart(Int(replica))
        case let .principalRecover(p, keepLog):
            recoverPrincipal(Int(p), keepLog: keepLog)
        case .auditRead:
            auditRead()
            if now < duration {
                queue.push(.auditRead, at: now &+ UInt64(workloadRandom.exponential(mean: 1e9 / scenario.faults.auditReads)))
            }
        case let .secondSpend(p):
            startSecondSpend(Int(p))
        }
    }

    private var issueLimitReached: Bool {
        scenario.workload.payments > 0 && records.count >= paymentCap
    }

    // MARK: CPU model

    private func arrive(_ message: Message, size: Int32, from: NodeID, at node: NodeID) {
        let i = Int(node.raw)
        // A crashed principal drops what reaches it. Asked only once one has crashed: the field
        // is a cache line of its own in a large run's principals array (2.7 % of its time in perf).
        if i >= replicaCount, principalsHaveCrashed, principals[i - replicaCount].downUntil > now { return }
        if cpu[i].busyUntil > now || !cpu[i].isEmpty {
            cpu[i].push(from, message, size)
            scheduleWake(node)
        } else {
            process(message, size: size, from: from, at: node)
        }
    }

    private func scheduleWake(_ node: NodeID) {
        let i = Int(node.raw)
        guard !cpu[i].wakeScheduled else { return }
        cpu[i].wakeScheduled = true
        queue.push(.cpuFree(node: node), at: max(now, cpu[i].busyUntil))
    }

    private func drainInbox(_ node: NodeID) {
        let i = Int(node.raw)
        guard cpu[i].busyUntil <= now, let (from, message, size) = cpu[i].pop() else {
            if !cpu[i].isEmpty { scheduleWake(node) }
            return
        }
        process(message, size: size, from: from, at: node)
        if !cpu[i].isEmpty { scheduleWake(node) }
    }

    /// Runs one message through the node's state machine and charges its CPU for the work.
    private func process(_ message: Message, size: Int32, from: NodeID, at node: NodeID) {
        out.removeAll()
        let i = Int(node.raw)
        let meter: CryptoMeter
        var extra: UInt64 = 0
        if i < replicaCount {
            extra = replicaReceive(i, message, from: from)
            meter = replicas[i].meter
            let g = partitioned ? i / groupSize : i
            metrics.load[metrics.index(now) * metrics.loadGroups + g] += 1
        } else {
            principalReceive(message, from: from, principal: i - replicaCount)
            meter = principals[i - replicaCount].meter
        }
        emit(from: node, cost: cpuCost(meter.take()) &+ UInt64(size) &* costs.byteCost &+ extra)
    }

    /// Sends what `out` holds once the node has spent `cost` on it.
    func emit(from node: NodeID, cost: UInt64) {
        let i = Int(node.raw)
        let done = max(now, cpu[i].busyUntil) &+ cost
        cpu[i].busyUntil = done
        let honest = i >= replicaCount || !faults.isByzantine(i)
        var size = 0
        for (j, (to, message)) in out.messages.enumerated() {
            // A broadcast's later copies have the first one's size, and the checker has seen it.
            if !out.repeatsPrevious[j] {
                size = message.encodedSize
                checker.observe(message, from: node, honestSender: honest, at: done)
            }
            metrics.messages[message.kindIndex] += 1
            metrics.bytes[message.kindIndex] += size
            // Kept for replay attacks only: a reference per principal otherwise.
            if i >= replicaCount, faults.isAttacker(i - replicaCount) {
                principals[i - replicaCount].lastSent = (to, message)
            }
            guard let (first, second) = network.deliveries(from: node, to: to, size: size, at: done) else { continue }
            if !hosts(node: Int(to.raw)) {
                sendAcross(message, from: node, to: to, size: size, at: first, second)
                continue
            }
            queue.push(.deliver(from: node, to: to, message: message, size: Int32(truncatingIfNeeded: size)), at: first)
            if let second { queue.push(.deliver(from: node, to: to, message: message, size: Int32(truncatingIfNeeded: size)), at: second) }
        }
        for t in out.timers { queue.push(.timer(node: node, token: t.token), at: max(t.at, done)) }
        out.removeAll()
        // Nearly always empty: `removeAll(keepingCapacity:)` is a generic replaceSubrange call
        // (~50 instructions), and this runs on every event.
        guard !validatedThisStep.isEmpty else { return }
        for (depth, start) in validatedThisStep { metrics.recordValidation(depth: depth, ns: done &- start) }
        validatedThisStep.removeAll(keepingCapacity: true)
    }

    private func timer(node: NodeID, token: UInt64) {
        out.removeAll()
        let i = Int(node.raw)
        let meter: CryptoMeter
        if i < replicaCount {
            replicaTimer(i, token: token)
            meter = replicas[i].meter
        } else {
            let p = i - replicaCount
            guard principals[p].downUntil <= now else { return }
            if token == 0 {
                principals[p].reader.timerFired(token: 0, now: now, into: &out)
                suppressWriteBack(p)
            } else if token == Simulator.handOverTimer {
                principals[p].handOverTimerArmed = false
                for h in principals[p].handOvers { out.send(h.message, to: self.node(ofPrincipal: h.payee)) }
                armHandOverTimer(p)
            } else if let w = principals[p].writers.firstIndex(where: { $0.token == token }) {
                principals[p].writers[w].writer.timerFired(token: token, now: now, into: &out)
            }
            meter = principals[p].meter
        }
        emit(from: node, cost: cpuCost(meter.take()))
    }

    /// Simulated CPU for handling one input that did `work` (PROTOCOL-independent cost model).
    func cpuCost(_ work: (verifies: Int, signs: Int)) -> UInt64 {
        signsMade &+= work.signs
        verifierCalls &+= work.verifies
        let c = costs
        return c.messageCost &+ UInt64(work.verifies) &* c.verifyCost &+ UInt64(work.signs) &* c.signCost
    }

    // MARK: Principals

    func node(ofPrincipal p: Int) -> NodeID { NodeID(raw: UInt32(replicaCount + p)) }

    private func principalReceive(_ message: Message, from: NodeID, principal p: Int) {
        switch message {
        case .vote, .reject:
            for w in principals[p].writers.indices {
                principals[p].writers[w].writer.receive(message, from: from, now: now, into: &out)
            }
            writerProgress(p)
        case let .ack(key) where Int(from.raw) >= replicaCount:
            // A payee confirms a hand-over.
            let payee = Int(from.raw) - replicaCount
            principals[p].handOvers.removeAll { $0.payee == payee && $0.key == key }
        case .ack:
            for w in principals[p].writers.indices {
                principals[p].writers[w].writer.receive(message, from: from, now: now, into: &out)
            }
            writerProgress(p)
            readerDone(p, principals[p].reader.receive(message, from: from, now: now, into: &out))
        case .readReply:
            readerDone(p, principals[p].reader.receive(message, from: from, now: now, into: &out))
        case let .handOver(payment, parents):
            guard !principals[p].wallet.hasReceived(payment.key) else {
                out.send(.ack(payment.key), to: from)
                return
            }
            if principals[p].validating[payment.key] == nil { principals[p].validating[payment.key] = now }
            readerDone(p, principals[p].reader.validate(payment, parents: parents, now: now, into: &out))
        default:
            return
        }
    }

    /// Test-only mutant `no-write-back`: the reader's write-backs are dropped and acknowledged on
    /// the replicas' behalf, so it returns values no quorum holds.
    private func suppressWriteBack(_ p: Int) {
        guard faults.mutant == .noWriteBack else { return }
        var forged = [(NodeID, Digest)]()
        out.removeMessages { to, message in
            guard Int(to.raw) < replicaCount, case let .commit(records) = message, let first = records.first,
                  principals[p].reader.outstandingReads > 0 else { return false }
            forged.append((to, first.key))
            return true
        }
        for (replica, key) in forged {
            readerDone(p, principals[p].reader.receive(.ack(key), from: replica, now: now, into: &out))
        }
    }

    private func readerDone(_ p: Int, _ completions: [Reader.Completion]) {
        suppressWriteBack(p)
        for completion in completions {
            switch completion {
            case let .read(request, key, record):
                guard let audit = principals[p].audits.removeValue(forKey: request) else { continue }
                checker.observeRead(key: audit.key, start: audit.start, end: now, found: record != nil && record?.key == key)
            case let .validated(key, result):
                // The payment's record: here, or (partitioned) with its payer's partition.
                let index = recordIndex[key].map(Int.init)
                let remote = index == nil && !foreign.isEmpty ? foreign[key] : nil
                let payer: Int, depth: UInt32
                if let index {
                    (payer, depth) = (Int(records[index].payer), records[index].depth)
                } else if let remote {
                    (payer, depth) = (Int(remote.payer), remote.depth)
                } else {
                    continue
                }
                switch result {
                case let .success(certified):
                    // Accepted once: the wallet takes each payment once.
                    guard principals[p].wallet.receive(certified.payment, proof: certified.proof) else { continue }
                    if let start = principals[p].validating.removeValue(forKey: key) {
                        // Finished when this step's CPU work is done (see `emit`).
                        validatedThisStep.append((depth, start))
                    }
                    if !faults.isAttacker(p) { checker.observeAccepted(principal: p, record: certified, at: now) }
                    out.send(.ack(key), to: node(ofPrincipal: payer))
                    if let index {
                        payeeAccepted(index, at: now)
                    } else if let remote {
                        confirmationsOut[Int(remote.partition)].append(Confirmation(index: remote.index, time: now))
                    }
                case .failure:
                    principals[p].validating.removeValue(forKey: key)
                    metrics.rejectedAtPayee += 1
                }
            }
        }
    }

    /// One payee of payment `index` accepted it at `time` (here, or in another partition).
    func payeeAccepted(_ index: Int, at time: UInt64) {
        records[index].payeesPending -= 1
        guard records[index].payeesPending == 0 else { return }
        records[index].confirmed = time
        if records[index].isHonest { metrics.confirmed[metrics.index(time)] += 1 }
        finished(index)
    }

    /// An honest payment left the pipeline (confirmed or failed).
    private func finished(_ index: Int) {
        if records[index].isHonest { unfinished -= 1 }
    }

    /// Moves finished writers out: hand over committed payments, record times, issue deferred work.
    func writerProgress(_ p: Int) {
        var w = 0
        while w < principals[p].writers.count {
            // Read the slot's fields in place (through `inout`): a plain read of
            // `principals[p].writers[w].payment` compiles to a copy of the whole 176-byte slot,
            // retaining everything the writer holds (3 % of a scale run in perf).
            let (index, status) = Simulator.peek(&principals[p].writers[w])
            switch status {
            case .running:
                w += 1
            case let .certified(certified):
                markCertified(index, certified)
                if let keepLog = principals[p].crashAtCertificate {
                    // Crash between writes: the certificate exists, but nothing this step
                    // produced (its commit included) leaves the crashed payer.
                    out.removeAll()
                    crashPrincipal(p, keepLog: keepLog)
                    return
                }
                w += 1
            case let .committed(certified):
                markCertified(index, certified)
                records[index].committed = now
                principals[p].wallet.settle(certified.key, proof: certified.proof)
                // An attacker also keeps what its attack payments created (minted coins, change).
                principals[p].wallet.receive(certified.payment, proof: certified.proof)
                let parents = principals[p].writers[w].parents
                // Kept for reuse attacks only.
                if faults.isAttacker(p) { principals[p].lastCommitted = (certified, parents) }
                let me = principalKeys[p]
                var payees = [Int]()
                for output in certified.payment.outputs where output.owner != me {
                    if let payee = principalIndex[output.owner], !payees.contains(payee) { payees.append(payee) }
                }
                let handOver = Message.handOver(certified, parents: parents)
                for payee in payees {
                    out.send(handOver, to: node(ofPrincipal: payee))
                    principals[p].handOvers.append((payee, certified.key, handOver))
                }
                armHandOverTimer(p)
                if payees.isEmpty || records[index].payeesPending == 0 {
                    records[index].confirmed = now
                    if records[index].isHonest { metrics.confirmed[metrics.index(now)] += 1 }
                    finished(index)
                }
                principals[p].writers.remove(at: w)
                slotFreed(p)
            case .failed:
                records[index].failed = true
                if records[index].isHonest { metrics.failed[metrics.index(now)] += 1 }
                finished(index)
                principals[p].writers.remove(at: w)
                slotFreed(p)
            }
        }
    }

    private static func peek(_ slot: inout PrincipalHost.WriterSlot) -> (payment: Int, status: Writer.Status) {
        (Int(slot.payment), slot.writer.status)
    }

    /// Token of a principal's hand-over retry timer (writers use 1, 2, ...; the reader 0).
    static let handOverTimer = UInt64.max

    func armHandOverTimer(_ p: Int) {
        guard !principals[p].handOverTimerArmed, !principals[p].handOvers.isEmpty else { return }
        principals[p].handOverTimerArmed = true
        out.setTimer(at: now &+ retry, token: Simulator.handOverTimer)
    }

    private func markCertified(_ index: Int, _ certified: CertifiedPayment) {
        guard records[index].certified == PaymentRecord.never else { return }
        records[index].certified = now
        certifiedList.append(Int32(index))
        if records[index].isHonest { metrics.certified[metrics.index(now)] += 1 }
    }

    lazy var principalIndex: [PublicKey: Int] = {
        var map = [PublicKey: Int](minimumCapacity: principals.count)
        for (i, key) in principalKeys.enumerated() { map[key] = i }
        return map
    }()

    private func slotFreed(_ p: Int) {
        switch scenario.workload.arrival {
        case .closed:
            queue.push(.issue(principal: Int32(p), requested: now), at: now)
        case .open:
            if !principals[p].deferred.isEmpty {
                let requested = principals[p].deferred.removeFirst()
                queue.push(.issue(principal: Int32(p), requested: requested), at: now)
            }
        }
    }

    private func issue(principal p: Int, requested: UInt64) {
        let w = scenario.workload
        guard principals[p].downUntil <= now else {
            principals[p].deferred.append(requested)
            return
        }
        guard principals[p].writers.count < inFlightLimit else {
            principals[p].deferred.append(requested)
            return
        }
        for spec in faults.attacks(of: p, at: now) where attackRandom.chance(spec.rate) {
            if mountAttack(p, spec.attack, requested: requested) { return }
        }
        let payees = choosePayees(for: p)
        guard !payees.isEmpty else {
            metrics.skipped += 1
            return
        }
        let entry: Wallet<PaymentProof>.InFlight
        do { entry = try principals[p].wallet.pay(payees, fee: w.fee, minimumInputs: w.inputs) } catch {
            metrics.skipped += 1
            return
        }
        launch(p, entry, requested: requested, attack: nil)
    }

    func choosePayees(for p: Int) -> [Output] {
        let w = scenario.workload
        let count = min(w.outputs, max(0, w.principals - 1))
        var chosen = [Int]()
        var attempts = 0
        while chosen.count < count, attempts < 64 * count {
            attempts += 1
            let q = pickRecipient(for: p)
            if q != p, !chosen.contains(q) { chosen.append(q) }
        }
        return chosen.map { q in
            Output(amount: 1 &+ workloadRandom.uniform(below: max(1, w.maxAmount)), owner: principalKeys[q])
        }
    }

    /// Starts a writer for a built payment and records it.
    @discardableResult
    func launch(_ p: Int, _ entry: Wallet<PaymentProof>.InFlight, requested: UInt64, attack: Attack?) -> Int {
        launch(p, payment: entry.payment, redeems: entry.redeems, parents: entry.certifiedParents, requested: requested, attack: attack)
    }

    @discardableResult
    func launch(_ p: Int, payment: Payment, redeems: [Redeem], parents: [CertifiedPayment], requested: UInt64,
                attack: Attack?, existing: Int? = nil, certifiedRedeems: [CertifiedRedeem]? = nil) -> Int {
        let token = principals[p].nextToken
        principals[p].nextToken &+= 1
        var writer: Writer
        if let certifiedRedeems {
            writer = Writer(payment: payment, certifiedRedeems: certifiedRedeems, parents: parents, context: context,
                            meter: principals[p].meter, retryInterval: retry, timerToken: token)
        } else {
            writer = Writer(payment: payment, redeems: redeems, parents: parents,
                            variant: scenario.protocolSettings.variant, context: context, meter: principals[p].meter,
                            retryInterval: retry, timerToken: token)
        }
        out.removeAll()
        writer.start(now: now, into: &out)
        let index: Int
        if let existing {
            index = existing
        } else {
            index = records.count
            let me = principalKeys[p]
            var payees = [PublicKey]()
            for o in payment.outputs where o.owner != me && principalIndex[o.owner] != nil && !payees.contains(o.owner) {
                payees.append(o.owner)
            }
            var record = PaymentRecord(key: payment.key, payer: Int32(p), inputs: UInt8(truncatingIfNeeded: payment.inputs.count),
                                       outputs: UInt8(truncatingIfNeeded: payment.outputs.count), issued: requested,
                                       payeesPending: Int32(payees.count))
            if let attack { record.attack = UInt8((Attack.allCases.firstIndex(of: attack) ?? 0) + 1) }
            record.started = now
            var depth: UInt32 = 0
            for parent in parents {
                if let i = recordIndex[parent.key] {
                    depth = max(depth, records[Int(i)].depth)
                } else if !foreign.isEmpty, let f = foreign[parent.key] {
                    depth = max(depth, f.depth)
                }
            }
            record.depth = depth &+ 1
            record.value = Amounts.checkedSum(payment.inputs.lazy.compactMap { input in
                parents.first { $0.key == input.parentKey }.flatMap { Int(input.index) < $0.payment.outputs.count ? $0.payment.outputs[Int(input.index)].amount : nil }
            }) ?? 0
            records.append(record)
            if recordIndex[payment.key] == nil { recordIndex[payment.key] = Int32(index) }
            if record.isHonest {
                metrics.issued[metrics.index(now)] += 1
                unfinished += 1
            }
        }
        principals[p].writers.append((token, writer, Int32(index), parents))
        // Building the payment signed it and its redeems.
        signsMade &+= 1 + redeems.count
        let c = costs
        emit(from: node(ofPrincipal: p), cost: c.messageCost &+ UInt64(1 + redeems.count) &* c.signCost)
        return index
    }

    private func pickRecipient(for p: Int) -> Int {
        let n = scenario.workload.principals
        if let share = crossShare {
            let mine = principalShard[p]
            if workloadRandom.chance(share) {
                for _ in 0..<64 {
                    let q = workloadRandom.uniform(below: n)
                    if principalShard[q] != mine { return q }
                }
            } else {
                let members = shardMembers[Int(mine)]
                return Int(members[workloadRandom.uniform(below: members.count)])
            }
        }
        guard !zipfCDF.isEmpty else { return workloadRandom.uniform(below: n) }
        let u = workloadRandom.unitInterval()
        var lo = 0, hi = zipfCDF.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if zipfCDF[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    // MARK: Principal crashes and audit reads

    /// Downtime of a crashed principal before it recovers.
    static let principalDowntime = Time.second

    func crashPrincipal(_ p: Int, keepLog: Bool) {
        principals[p].crashAtCertificate = nil
        principals[p].downUntil = now &+ Simulator.principalDowntime
        principalsHaveCrashed = true
        // Volatile state is gone: writers, reader, pending hand-overs.
        for slot in principals[p].writers where !keepLog {
            // A payer that forgot its payment never finishes or hands it over (even if it is
            // certified): it leaves the honest workload.
            let i = Int(slot.payment)
            if records[i].isHonest, records[i].confirmed == PaymentRecord.never, !records[i].failed {
                records[i].attack = UInt8((Attack.allCases.firstIndex(of: .crashNoLog) ?? 0) + 1)
                unfinished -= 1
            }
        }
        principals[p].writers.removeAll()
        principals[p].audits.removeAll()
        principals[p].reader = Simulator.reader(context, principals[p].meter, scenario)
        queue.push(.principalRecover(principal: Int32(p), keepLog: keepLog), at: principals[p].downUntil)
    }

    private func recoverPrincipal(_ p: Int, keepLog: Bool) {
        let old = principals[p].wallet
        let durable = keepLog ? old.durable : old.durable.forgettingLog()
        principals[p].wallet = Wallet(signer: old.signer, networkId: old.networkId, limits: old.limits, restoring: durable)
        principals[p].downUntil = 0
        principals[p].handOverTimerArmed = false
        armHandOverTimerLater(p)
        // PROTOCOL §3 step 0: finish the same payments (same keys) that the log holds.
        for entry in principals[p].wallet.inFlight {
            let existing = recordIndex[entry.payment.key].map(Int.init)
            recovered.append(entry.payment.key)
            launch(p, payment: entry.payment, redeems: entry.redeems, parents: entry.certifiedParents, requested: now,
                   attack: nil, existing: existing)
        }
        if principals[p].wallet.inFlight.isEmpty { slotFreed(p) }
    }

    private func armHandOverTimerLater(_ p: Int) {
        out.removeAll()
        armHandOverTimer(p)
        emit(from: node(ofPrincipal: p), cost: 0)
    }

    private func auditRead() {
        guard !certifiedList.isEmpty else { return }
        let index = Int(certifiedList[workloadRandom.uniform(below: certifiedList.count)])
        let reader = workloadRandom.uniform(below: principals.count)
        guard principals[reader].downUntil <= now else { return }
        let key = records[index].key
        let payer = principalKeys[Int(records[index].payer)]
        out.removeAll()
        let request = principals[reader].reader.read(.payment, key: key, at: context.group(of: payer), now: now, into: &out)
        principals[reader].audits[request] = (key, now)
        emit(from: node(ofPrincipal: reader), cost: costs.messageCost)
    }

    // MARK: Results

    public var traceCheckpoints: [(time: UInt64, digest: UInt64)] { trace?.checkpoints ?? [] }
    public var traceDigest: UInt64 { trace?.digest ?? 0 }
    var memoMisses: Int? { memo?.misses }
    public var verifierHits: Int { memo?.hits ?? 0 }
    public var verifierMisses: Int { memo?.misses ?? 0 }
    var networkStats: (lost: Int, cut: Int, duplicated: Int) { (network.lost, network.cut, network.duplicated) }
    var replicaRejects: Int { replicas.reduce(absorbedReplicaRejects) { $0 + $1.rejected } }
}

/// A cheap running digest of the event trace (time, kind, endpoints, message kind and size), with
/// checkpoints so two runs can be compared to find the first simulated time they diverge.
struct TraceDigest {
    let every: UInt64
    private(set) var digest: UInt64 = 0xcbf2_9ce4_8422_2325
    private(set) var checkpoints: [(time: UInt64, digest: UInt64)] = []
    private var count: UInt64 = 0

    init(every: UInt64) { self.every = max(1, every) }

    @inline(__always) private mutating func mix(_ v: UInt64) {
        digest = (digest ^ v) &* 0x100_0000_01b3
        digest ^= digest >> 29
    }

    mutating func record(time: UInt64, event: Event) {
        mix(time)
        switch event {
        case let .deliver(from, to, message, size):
            mix(1); mix(UInt64(from.raw) << 32 | UInt64(to.raw)); mix(UInt64(message.kindIndex) << 32 | UInt64(UInt32(bitPattern: size)))
        case let .timer(node, token):
            mix(2); mix(UInt64(node.raw)); mix(token)
        case let .cpuFree(node):
            mix(3); mix(UInt64(node.raw))
        case .arrival:
            mix(4)
        case let .issue(p, requested):
            mix(5); mix(UInt64(UInt32(bitPattern: p))); mix(requested)
        case let .deliverBytes(from, to, bytes):
            mix(6); mix(UInt64(from.raw) << 32 | UInt64(to.raw)); mix(UInt64(bytes.count))
        case let .restart(r):
            mix(7); mix(UInt64(UInt32(bitPattern: r)))
        case let .principalRecover(p, keep):
            mix(8); mix(UInt64(UInt32(bitPattern: p))); mix(keep ? 1 : 0)
        case .auditRead:
            mix(9)
        case let .secondSpend(p):
            mix(10); mix(UInt64(UInt32(bitPattern: p)))
        }
        count &+= 1
        if count % every == 0 { checkpoints.append((time, digest)) }
    }
}
