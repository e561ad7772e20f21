import QuorumCrypto
import QuorumLedger

/// Tunables of an honest replica.
public struct ReplicaSettings: Sendable, Hashable {
    /// Period of the repair round that offers newly stored certified records to group peers
    /// (nanoseconds; 0 disables repair).
    public var repairInterval: UInt64
    /// Keys offered to one peer per round.
    public var repairBatch: Int

    public init(repairInterval: UInt64 = 200_000_000, repairBatch: Int = 64) {
        self.repairInterval = repairInterval
        self.repairBatch = max(1, repairBatch)
    }
}

/// An honest replica of the Byzantine-safe key-value store, as a sans-I/O state machine:
/// messages and timer firings in (with `now`), messages and timers out through an `Outbox`.
///
/// It votes only for records that pass PROTOCOL §4, never for a second value of one key (the lock
/// is written to `durable` before the vote leaves), stores certified records, answers Q-RPC reads
/// (§5) and repairs its group peers by offering what it stores.
public struct Replica {
    /// What a replica holds for one key it has locked, voted on or checked a redeem certificate of
    /// while storing no certificate of it: one table entry for what were four tables keyed alike
    /// (each a hash probe and, in a large run, a cache miss of its own on every Prepare and Commit).
    public struct OpenKey: Sendable {
        /// Durable: the value hash the key is locked to, where no certified redeem of the key is
        /// stored with that value (a stored redeem locks its key to its own value without this:
        /// it would repeat the store, a third of a big run's replica memory). Never overwritten
        /// with another value.
        public internal(set) var lock: Digest?
        /// Durable: the value voted for but not yet known certified (answered to reads as a vote).
        public internal(set) var voted: VotedValue?
        /// Volatile: this replica's own signed vote, so a re-sent Prepare gets the same vote
        /// without signing again. Its signature packed (24 bytes for a modelled one, not 64):
        /// every Prepare inserts an entry and every commit removes it, whole, so its size is
        /// the bytes moved in a large run's busiest table (176-byte entries: the memmove on
        /// insert was 9 % of the run's cache write misses, callgrind).
        var vote: (statement: VoteStatement, signature: PackedSignature)?
        /// Volatile: the spender of a redeem certificate of this key that was checked but is not
        /// stored (a Prepare carried it before its Commit came).
        var checkedSpender: Digest?

        var isEmpty: Bool { lock == nil && voted == nil && vote == nil && checkedSpender == nil }
    }

    /// State that survives a crash when locks are durable (PROTOCOL §4: "durably, before replying").
    public struct Durable: Sendable {
        /// Keys with a lock, a pending vote or a checked certificate (see `OpenKey`; its volatile
        /// fields are dropped when a replica restarts from this state).
        /// A `DigestMap` (an entry is its key and value in one slot, found by a control line
        /// and that slot) rather than a `Dictionary` (header, bitmap, key and value: a cold line
        /// each on a large run's Prepares and Commits), whose start a host can prefetch.
        public internal(set) var open = DigestMap<OpenKey>()
        /// Keys of redeems stored when volatile locks were lost (`losingLocks`): their stored
        /// value no longer locks them, as if the lock table had been wiped.
        public internal(set) var unlockedStored: Set<Digest> = []
        /// Certified records held (own group's records and verified parents of prepares).
        public internal(set) var store = RecordStore()

        public init() {}

        /// The value hash `key` is locked to: a lock entry, else a stored certified redeem's.
        public func lock(_ key: Digest) -> Digest? {
            if let held = open.withValue(key, { $0.pointee.lock }) ?? nil { return held }
            return storedLock(key)
        }

        /// The lock a stored certified redeem of `key` holds, unless volatile locks were lost.
        func storedLock(_ key: Digest) -> Digest? {
            guard unlockedStored.isEmpty || !unlockedStored.contains(key) else { return nil }
            return store.withRecord(key) { record -> Digest? in
                switch record {
                case let .redeem(r): r.redeem.valueHash
                case .payment: nil
                }
            } ?? nil
        }

        /// The value voted for under `key` and not yet known certified.
        public func voted(_ key: Digest) -> VotedValue? { open.withValue(key) { $0.pointee.voted } ?? nil }

        /// Changes `key`'s entry in place (one probe, creating it if absent), removing it if
        /// left empty.
        @discardableResult
        mutating func update<R>(_ key: Digest, _ change: (inout OpenKey) -> R) -> R {
            var empty = false
            func run(_ entry: inout OpenKey) -> R {
                let result = change(&entry)
                empty = entry.isEmpty
                return result
            }
            let result = open.update(key, default: OpenKey(), run)
            if empty { open.removeValue(forKey: key) }
            return result
        }

        /// What survives a crash of a replica that kept its locks in volatile memory (a fault the
        /// simulator injects to show why PROTOCOL §4 demands durable locks): certified records stay,
        /// locks and pending votes are gone.
        public func losingLocks() -> Durable {
            var copy = self
            copy.open = DigestMap()
            for record in store.records where !unlockedStored.contains(record.key) {
                if case .redeem = record { copy.unlockedStored.insert(record.key) }
            }
            return copy
        }

        /// Without what a restart loses (own vote signatures, checked certificates not stored).
        func droppingVolatile() -> Durable {
            guard open.contains(where: { $0.vote != nil || $0.checkedSpender != nil }) else { return self }
            var copy = self
            copy.open = open.compactMapValues { entry in
                var kept = entry
                kept.vote = nil
                kept.checkedSpender = nil
                return kept.isEmpty ? nil : kept
            }
            return copy
        }
    }

    public let id: ReplicaID
    public let context: ProtocolContext
    public let settings: ReplicaSettings
    public let meter: CryptoMeter
    private let signer: any Signer
    public private(set) var durable: Durable

    /// Keys of payments whose certificates this replica has checked but does not store (every
    /// stored payment was checked: `Verified` counts those too).
    private var verifiedPayments: Set<Digest> = []
    /// Per group peer: keys of stored records not yet acknowledged by that peer, oldest first.
    private var repairQueues = RepairQueues()
    /// Per group peer: the outstanding offer (sequence number, how many keys it covered and
    /// where in the repair log the peer's queue continues after them).
    private var repairOffers: [ReplicaID: (sequence: UInt64, count: Int, end: Int)] = [:]
    private var repairSequence: UInt64 = 0
    private var repairTimerArmed = false

    /// Counters for metrics.
    public private(set) var rejected = 0
    public private(set) var malformed = 0

    public static let repairTimer: UInt64 = 1

    public init(id: ReplicaID, signer: any Signer, context: ProtocolContext, settings: ReplicaSettings = ReplicaSettings(),
                restoring durable: Durable = Durable()) {
        self.id = id
        self.signer = signer
        self.context = context
        self.settings = settings
        self.meter = CryptoMeter(context.verifier)
        self.durable = durable.droppingVolatile()
    }

    /// The replica's `VerifiedPayments`: stored payments, and checked ones it does not store.
    struct Verified: VerifiedPayments {
        var unstored: Set<Digest>
        var store: RecordStore
        func isVerified(_ key: Digest) -> Bool {
            // Often empty (a scale run ends with none in any replica), and a lookup in an empty
            // set still hashes the key.
            store.holdsPayment(key) || (!unstored.isEmpty && unstored.contains(key))
        }
        mutating func markVerified(_ key: Digest) {
            if store.holdsPayment(key) { return }
            unstored.insert(key)
        }
    }

    /// Runs `check` with the verified-payment cache and the store, both moved out and back: the
    /// cache so that inserting does not copy it, the store so that it is not retained (a copy
    /// loads its table's header, a cache line of its own, cold in a large run: 1 % of a scale
    /// run's time in `swift_retain`, perf).
    private mutating func withVerified(_ check: (inout Verified) -> Bool) -> Bool {
        var cache = Verified(unstored: verifiedPayments, store: RecordStore())
        swap(&cache.store, &durable.store)
        verifiedPayments = []
        defer {
            verifiedPayments = cache.unstored
            swap(&cache.store, &durable.store)
        }
        return check(&cache)
    }

    // MARK: Inputs

    /// Decodes bytes from the network and handles the message. Malformed bytes are counted and
    /// dropped; the error is returned for the host's metrics.
    @discardableResult
    public mutating func receive(bytes: [UInt8], from sender: NodeID, now: UInt64, into out: inout Outbox) -> DecodingError? {
        do {
            let message = try Message.decode(bytes, limits: MessageLimits(ledger: context.rules.limits))
            receive(message, from: sender, now: now, into: &out)
            return nil
        } catch {
            malformed += 1
            return error
        }
    }

    public mutating func receive(_ message: Message, from sender: NodeID, now: UInt64, into out: inout Outbox) {
        switch message {
        case let .prepareRedeem(redeem, parent):
            prepareRedeem(redeem, parent: parent, from: sender, into: &out)
        case let .preparePayment(payment, parents, redeems):
            preparePayment(payment, parents: parents, redeems: redeems, from: sender, into: &out)
        case let .prepareBatch(payment, parents, redeems):
            prepareBatch(payment, parents: parents, redeems: redeems, from: sender, into: &out)
        case let .commit(records):
            guard let first = records.first, records.count <= MessageLimits.standard.maxRecords else { return }
            var all = true
            // By index: the array's iterator hands out copies, each retaining the record and its
            // certificate (cold objects in a large run, not read at all when the record is held).
            for i in records.indices where !accept(records[i], now: now, into: &out) { all = false }
            if all { out.send(.ack(first.key), to: sender) }
        case let .gossip(records):
            for record in records.prefix(MessageLimits.standard.maxRecords) { _ = accept(record, now: now, into: &out) }
        case let .read(type, key, request):
            out.send(.readReply(request: request, readResult(type, key)), to: sender)
        case let .repairOffer(sequence, keys):
            guard isReplica(sender), keys.count <= MessageLimits.standard.maxRepairKeys else { return }
            let missing = keys.filter { !durable.store.contains($0) }
            out.send(.repairRequest(sequence: sequence, missing: missing), to: sender)
        case let .repairRequest(sequence, missing):
            repairRequested(sequence: sequence, missing: missing, from: sender, into: &out)
        case .vote, .reject, .ack, .readReply, .handOver:
            return  // meant for clients
        }
    }

    /// A timer this replica set has fired.
    public mutating func timerFired(token: UInt64, now: UInt64, into out: inout Outbox) {
        guard token == Replica.repairTimer else { return }
        repairTimerArmed = false
        for peer in repairQueues.peers {
            guard let (batch, end) = repairQueues.offer(to: peer, limit: settings.repairBatch) else { continue }
            repairSequence &+= 1
            repairOffers[peer] = (repairSequence, batch.count, end)
            out.send(.repairOffer(sequence: repairSequence, keys: batch), to: NodeID(replica: peer))
        }
        armRepairTimer(now: now, into: &out)
    }

    /// The certified record held for `key`, if any.
    public func record(_ key: Digest) -> StoredRecord? { durable.store[key] }

    /// Where a store lookup of a key whose first 8 bytes are `keyPrefix` starts reading, for a
    /// host's prefetch hints: nearly every message a replica handles probes its store.
    @inline(__always) public func storeLookupAddresses(keyPrefix: UInt64) -> LookupHint? {
        durable.store.lookupAddresses(keyPrefix: keyPrefix)
    }

    /// Where a lookup of a key whose first 8 bytes are `keyPrefix` in the open keys (locks, votes)
    /// starts reading, for a host's prefetch hints: every Prepare and Commit looks its key up there.
    @inline(__always) public func openLookupAddresses(keyPrefix: UInt64) -> LookupHint? {
        durable.open.lookupAddresses(keyPrefix: keyPrefix)
    }

    /// Where storing a record first reads in this replica's repair queues, as offsets into the
    /// replica: the log's and the peers' array references (and a log entry's bytes). Storing
    /// checks the log's storage header, writes the entry at the log's end and searches the
    /// peers, each a cold line in a large run between a replica's messages (`RepairQueues.append`
    /// was 2 % of a 500k run's perf samples). For a host's prefetch hints.
    public static let repairArrayOffsets: (log: Int, peers: Int, entryStride: Int)? = {
        guard let queues = MemoryLayout<Replica>.offset(of: \Replica.repairQueues),
              let log = RepairQueues.logOffset, let peers = RepairQueues.peersOffset else { return nil }
        return (queues + log, queues + peers, RepairQueues.entryStride)
    }()

    /// Where the meter's reference sits in a replica, and the first word of its signer (the box
    /// of a key pair wider than an existential's inline buffer: every key pair this project
    /// has), for a host's prefetch hints.
    public static let meterOffset = MemoryLayout<Replica>.offset(of: \Replica.meter)
    public static let signerBoxOffset = MemoryLayout<Replica>.offset(of: \Replica.signer)

    /// The repair log's storage, for tests of those hints.
    var repairLogAddress: UnsafeRawPointer? { repairQueues.logAddress }

    /// Makes room in the store for `count` records (a host that knows how many to expect).
    public mutating func reserveStore(_ count: Int) { durable.store.reserveCapacity(count) }

    // MARK: Voting (PROTOCOL §4)

    private mutating func prepareRedeem(_ redeem: Redeem, parent: CertifiedPayment, from sender: NodeID, into out: inout Outbox) {
        let key = redeem.key
        let group = context.group(of: redeem.owner)
        guard group.contains(id) else { return reject(.redeem, key, .notMember, to: sender, into: &out) }
        guard parent.payment.key == redeem.input.parentKey, verifyParent(parent) else {
            return reject(.redeem, key, .invalid, to: sender, into: &out)
        }
        do { try context.checkRedeem(redeem, parent: parent.payment, meter: meter) } catch {
            return reject(.redeem, key, .invalid, to: sender, into: &out)
        }
        guard vote(.redeem, key: key, valueHash: redeem.valueHash, group: group, voted: .redeem(redeem), locking: true,
                   to: sender, into: &out) else {
            return reject(.redeem, key, .conflict, to: sender, into: &out)
        }
    }

    private mutating func preparePayment(_ payment: Payment, parents: [CertifiedPayment], redeems: [CertifiedRedeem],
                                         from sender: NodeID, into out: inout Outbox) {
        let key = payment.key
        let group = context.group(of: payment.payer)
        guard group.contains(id) else { return reject(.payment, key, .notMember, to: sender, into: &out) }
        guard checkPayment(payment, parents: parents), redeems.count == payment.inputs.count else {
            return reject(.payment, key, .invalid, to: sender, into: &out)
        }
        // Each input needs a redeem certificate from G(payer) naming this payment.
        for input in payment.inputs {
            guard let certified = redeems.first(where: { $0.redeem.input == input }),
                  certified.redeem.spender == key, certified.redeem.owner == payment.payer,
                  case .certificate = certified.proof else {
                return reject(.payment, key, .invalid, to: sender, into: &out)
            }
            guard verifyRedeem(certified) else { return reject(.payment, key, .invalid, to: sender, into: &out) }
        }
        vote(.payment, key: key, valueHash: key, group: group, voted: .payment(payment), locking: false, to: sender, into: &out)
    }

    private mutating func prepareBatch(_ payment: Payment, parents: [CertifiedPayment], redeems: [Redeem],
                                       from sender: NodeID, into out: inout Outbox) {
        let key = payment.key
        let group = context.group(of: payment.payer)
        guard group.contains(id) else { return reject(.batch, key, .notMember, to: sender, into: &out) }
        guard checkPayment(payment, parents: parents), redeems.count == payment.inputs.count else {
            return reject(.batch, key, .invalid, to: sender, into: &out)
        }
        var redeemKeys = [Digest]()
        redeemKeys.reserveCapacity(redeems.count)
        for input in payment.inputs {
            guard let redeem = redeems.first(where: { $0.input == input }), redeem.spender == key,
                  let parent = CertifiedPayment.parent(input.parentKey, in: parents) else {
                return reject(.batch, key, .invalid, to: sender, into: &out)
            }
            do { try context.checkRedeem(redeem, parent: parent, meter: meter) } catch {
                return reject(.batch, key, .invalid, to: sender, into: &out)
            }
            redeemKeys.append(redeem.key)
        }
        // All inputs lock together or none does.
        guard lock(redeemKeys, to: Redeem.valueHash(spender: key)) else {
            return reject(.batch, key, .conflict, to: sender, into: &out)
        }
        for redeem in redeems where !durable.store.contains(redeem.key) {
            durable.update(redeem.key) { entry in if entry.voted == nil { entry.voted = .redeem(redeem) } }
        }
        vote(.batch, key: key, valueHash: key, group: group, voted: .payment(payment), locking: false, to: sender, into: &out)
    }

    /// Shape, parents and balance of a payment. On success every parent an input names has been
    /// verified, so `CertifiedPayment.parent(_:in:)` over `parents` finds only verified ones.
    private mutating func checkPayment(_ payment: Payment, parents: [CertifiedPayment]) -> Bool {
        do { try context.checkShape(payment, meter: meter) } catch { return false }
        guard parents.count <= context.rules.limits.maxInputs else { return false }
        for parent in parents where payment.inputs.contains(where: { $0.parentKey == parent.payment.key }) {
            guard verifyParent(parent) else { return false }
        }
        do { try context.rules.checkBalance(payment) { CertifiedPayment.parent($0, in: parents) } } catch { return false }
        return true
    }

    /// Checks a parent's proof once, then keeps it: certified records never change, and holding
    /// it lets readers find the parent in this (the child's) group.
    private mutating func verifyParent(_ parent: CertifiedPayment) -> Bool {
        let key = parent.payment.key
        if durable.store.holdsPayment(key) || verifiedPayments.contains(key) { return true }
        let context = context, meter = meter
        guard withVerified({ (try? context.verify(parent, meter: meter, verified: &$0)) != nil }) else { return false }
        if !durable.store.contains(key) {
            durable.store.insert(.payment(parent))
            verifiedPayments.remove(key)
        }
        return true
    }

    /// Checks a certified redeem once per (key, spender): a certified value never changes.
    private mutating func verifyRedeem(_ certified: CertifiedRedeem) -> Bool {
        let spender = certified.redeem.spender
        let stored = durable.store.withRecord(certified.key) { record in
            switch record {
            case let .redeem(stored): stored.redeem.spender == spender
            case .payment: false
            }
        }
        if stored == true { return true }
        if durable.open.withValue(certified.key, { $0.pointee.checkedSpender == spender }) == true { return true }
        let context = context, meter = meter
        guard withVerified({ (try? context.verify(certified, meter: meter, verified: &$0)) != nil }) else { return false }
        durable.update(certified.key) { $0.checkedSpender = spender }
        return true
    }

    /// Locks every key to `valueHash`, or none if any is locked to another value.
    private mutating func lock(_ keys: [Digest], to valueHash: Digest) -> Bool {
        for key in keys {
            if let held = durable.lock(key), held != valueHash { return false }
        }
        for key in keys where durable.lock(key) == nil { durable.update(key) { $0.lock = valueHash } }
        return true
    }

    /// Votes for `key`, remembering `value` as voted for unless the key is stored or has one.
    /// With `locking`, first locks the key to `valueHash` (as `lock(_:to:)` does for one key) and
    /// returns false, voting for nothing, if it is locked to another value. The lock, the pending
    /// vote and the signature are one probe of the key's entry.
    @discardableResult
    private mutating func vote(_ type: RecordType, key: Digest, valueHash: Digest, group: Group, voted value: VotedValue,
                               locking: Bool, to sender: NodeID, into out: inout Outbox) -> Bool {
        let statement = context.statement(type, key: key, valueHash: valueHash, group: group.id)
        let stored = durable.store.contains(key)
        let storedLock = locking && stored ? durable.storedLock(key) : nil
        let signer = signer, meter = meter
        let signature: Signature? = durable.update(key) { entry in
            if locking {
                if let held = entry.lock ?? storedLock, held != valueHash { return nil }
                if entry.lock == nil, storedLock == nil { entry.lock = valueHash }
            }
            if entry.voted == nil, !stored { entry.voted = value }
            return Replica.sign(statement, in: &entry, signer: signer, meter: meter)
        }
        guard let signature else { return false }
        out.send(.vote(statement, Vote(replica: id, signature: signature)), to: sender)
        return true
    }

    /// The entry's own signature of `statement`, signed once.
    private static func sign(_ statement: VoteStatement, in entry: inout OpenKey, signer: any Signer, meter: CryptoMeter) -> Signature {
        if let cached = entry.vote, cached.statement == statement { return cached.signature.signature }
        let signature = statement.withSigningMessage { meter.sign(bytes: $0, with: signer) }
        entry.vote = (statement, PackedSignature(signature))
        return signature
    }

    private mutating func reject(_ type: RecordType, _ key: Digest, _ reason: RejectReason, to sender: NodeID,
                                 into out: inout Outbox) {
        rejected += 1
        out.send(.reject(type, key: key, reason: reason), to: sender)
    }

    // MARK: Storing and reading

    /// Verifies and stores a certified record of this replica's group. Returns whether it is held.
    private mutating func accept(_ record: StoredRecord, now: UInt64, into out: inout Outbox) -> Bool {
        let key = record.key
        if durable.store.contains(key) { return true }
        let group = context.group(of: record.principal)
        guard group.contains(id) else { return false }
        switch record {
        case let .redeem(r):
            guard verifyRedeem(r) else { return false }
        case .payment:
            let context = context, meter = meter
            guard withVerified({ (try? context.verify(record, meter: meter, verified: &$0)) != nil }) else { return false }
        }
        durable.store.insert(record)
        // Certified: no pending vote, signature or checked certificate is needed any more. The
        // stored value now locks the key; a lock for the same value is redundant (one for
        // another value stays: locks are never overwritten).
        durable.open.modify(key) { entry in
            entry.voted = nil
            entry.vote = nil
            entry.checkedSpender = nil
            if case let .redeem(r) = record, entry.lock == r.redeem.valueHash { entry.lock = nil }
            return !entry.isEmpty
        }
        if case .payment = record { verifiedPayments.remove(key) }
        enqueueRepair(key, group: group, now: now, into: &out)
        return true
    }

    private func readResult(_ type: RecordType, _ key: Digest) -> ReadResult {
        if let record = durable.store[key] { return .certified(record) }
        if let entry = durable.open[key], let value = entry.voted, let (statement, signature) = entry.vote {
            return .vote(value, statement, Vote(replica: id, signature: signature.signature))
        }
        return .notFound
    }

    // MARK: Repair

    private mutating func enqueueRepair(_ key: Digest, group: Group, now: UInt64, into out: inout Outbox) {
        guard settings.repairInterval > 0 else { return }
        repairQueues.append(key, members: group.members, except: id)
        armRepairTimer(now: now, into: &out)
    }

    private mutating func armRepairTimer(now: UInt64, into out: inout Outbox) {
        guard !repairTimerArmed, settings.repairInterval > 0,
              repairQueues.total > 0 else { return }
        repairTimerArmed = true
        out.setTimer(at: now &+ settings.repairInterval, token: Replica.repairTimer)
    }

    private mutating func repairRequested(sequence: UInt64, missing: [Digest], from sender: NodeID, into out: inout Outbox) {
        let peer = sender.raw
        guard isReplica(sender), let offer = repairOffers[peer], offer.sequence == sequence,
              repairQueues.queued(peer) != nil else { return }
        // The peer usually misses nothing: then no set of the offered keys is built (it was
        // most of this function's ~5,000 instructions, once per offer). The queue's front is
        // still what was offered: only this acknowledgement moves it.
        let offered = missing.isEmpty ? nil : Set(repairQueues.offer(to: peer, limit: offer.count)?.keys ?? [])
        repairQueues.acknowledge(peer, count: offer.count, end: offer.end)
        repairOffers[peer] = nil
        guard let offered else { return }
        let records = missing.prefix(offer.count).filter(offered.contains).compactMap { durable.store[$0] }
        var start = 0
        while start < records.count {
            let end = min(start + MessageLimits.standard.maxRecords, records.count)
            out.send(.gossip(Array(records[start..<end])), to: sender)
            start = end
        }
    }

    /// Entries and bucket capacity of each table this replica keeps, with the bytes of one bucket
    /// (key + value): what `quorumsim run --memory-breakdown` reports per table.
    public var tableSizes: [(table: String, count: Int, capacity: Int, bucketBytes: Int)] {
        durable.store.tableSizes + [
            ("open keys (locks, votes, signatures, checked redeems)", durable.open.count, durable.open.capacity,
             SlotTable<(key: Digest, value: OpenKey)>.slotBytes),
            ("verifiedPayments", verifiedPayments.count, verifiedPayments.capacity, MemoryLayout<Digest>.stride),
            ("repair log (keys and their groups)", repairQueues.sizes.count, repairQueues.sizes.capacity,
             MemoryLayout<RepairQueues.Entry>.stride),
        ]
    }

    private func isReplica(_ node: NodeID) -> Bool { Int(node.raw) < context.replicaCount }
}
