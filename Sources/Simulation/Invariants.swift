import CHeap
import QuorumCrypto
import QuorumLedger
import QuorumStore

/// One broken invariant: which, when it was first seen (simulated ns), and what.
public struct Violation: Sendable, Equatable {
    public var invariant: String
    public var time: UInt64
    public var detail: String
}

/// Sees every certificate, vote, store, acceptance and read of a run and checks PROTOCOL §7 at the
/// end. Certificates are re-verified here, so nothing the checker counts as certified is taken on
/// a node's word.
final class InvariantChecker {
    let context: ProtocolContext
    private let meter: CryptoMeter
    /// Payments shown certified but not in `paymentList` (a batch spender whose redeem failed
    /// its other checks); every payment in `paymentList` was verified, and `Verified` counts it so.
    private var verifiedUnrecorded = Set<Digest>()
    /// Certified payments in the order first seen, with the time their certificate was seen...
    private var paymentList: [(record: CertifiedPayment, seen: UInt64)] = []
    /// ...and each one's position there (4 bytes per key: the end-of-run checks name outputs by
    /// their parent's position, not its 32-byte key).
    private var paymentIndex = DigestMap<Int32>()
    /// The first spender certified for each redeem key, and the second where one was (S1).
    private var redeemSpender = DigestMap<Digest>()
    private var secondSpender: [Digest: Digest] = [:]
    /// Votes sent by replicas counted honest, per redeem key: the first value voted for and who
    /// voted for it (one entry per key rather than per vote: the largest table of a big run)...
    private var firstVotes = DigestMap<FirstVote>()
    /// ...and, under attack only, votes for any other value: (replica, key) → value hash.
    private var otherVotes: [VoteKey: Digest] = [:]
    /// Payments each honest principal accepted.
    private var accepted: [(principal: Int, record: CertifiedPayment, time: UInt64)] = []
    /// Inputs of the payments in `paymentList` and in `accepted` (after a merge, of the parts'
    /// lists: an upper bound), counted as each is added, while its payment is in cache: the
    /// end-of-run checks size their spend maps by them, where a pass over a million payments
    /// to count them loaded two cold lines each.
    private var listedInputs = 0
    private var acceptedInputs = 0
    private var reads: [Digest: [(start: UInt64, end: UInt64, found: Bool)]] = [:]
    /// Per (redeem key, spender): the certified redeem record as first seen, and whether a redeem
    /// duly signed by its owner was seen (one table for both: the claims are the same keys).
    private var claims = ClaimTable()
    /// A partitioned run's other partitions' claims (looked up, not copied: `merging`).
    private var moreClaims: [ClaimTable] = []
    /// After a merge, the partition each entry of `paymentList` was taken from (0: `claims`,
    /// k: `moreClaims[k - 1]`): the one whose claims to look in first (empty: one partition).
    private var listedFrom: [UInt8] = []
    struct ClaimFacts {
        var record: CertifiedRedeem?
        var signed = false
    }
    private(set) var violations: [Violation] = []
    private var reported = Set<String>()

    struct VoteKey: Hashable { let replica: ReplicaID; let key: Digest }
    /// A value and the replicas that voted for it: four inline (a group of n = 4 needs no more),
    /// the rest in `moreVoters`.
    struct FirstVote {
        let value: Digest
        var inline: (ReplicaID, ReplicaID, ReplicaID, ReplicaID) = (0, 0, 0, 0)
        var inlineCount: UInt8 = 0
        init(value: Digest) { self.value = value }
        func inlineContains(_ r: ReplicaID) -> Bool {
            (inlineCount > 0 && inline.0 == r) || (inlineCount > 1 && inline.1 == r)
                || (inlineCount > 2 && inline.2 == r) || (inlineCount > 3 && inline.3 == r)
        }
        /// Adds `r` inline; false when the four places are taken.
        mutating func addInline(_ r: ReplicaID) -> Bool {
            switch inlineCount {
            case 0: inline.0 = r
            case 1: inline.1 = r
            case 2: inline.2 = r
            case 3: inline.3 = r
            default: return false
            }
            inlineCount += 1
            return true
        }
    }
    private var moreVoters: Set<VoteKey> = []
    /// A redeem's claim, named by the output it spends rather than by its key (the hash of that
    /// output: a redeem's key is always computed from its input), so the end-of-run S5 check
    /// looks up each input of a million payments without hashing it with BLAKE2b first.
    struct RedeemClaim: Hashable {
        let input: InputRef
        let spender: Digest
        /// One mixer over both, not SipHash (one lookup per redeem the checker sees).
        func _rawHashValue(seed: Int) -> Int { input._rawHashValue(seed: spender._rawHashValue(seed: seed)) }
    }

    /// The claims by (input, spender), in one-line slots: a 64-bit mix of the claim, the first
    /// redeem seen for it (whose input and spender name it) and its facts, 41 bytes a slot where
    /// a `Dictionary` bucket held the 72-byte claim and the facts apart (96 bytes, and a cold
    /// line each for bitmap, key and value). A claim found through the redeem being observed
    /// (the same object, as a run passes one redeem from its payer to every node) is matched
    /// without loading the stored one; the end-of-run checks, which have no redeem at hand,
    /// compare the stored one's input and spender. A claim whose mix another holds already
    /// (crafted, or by chance) goes to a `Dictionary` beside it: a collision costs space, never
    /// a wrong answer. Iteration order is unspecified: sort before it reaches an output.
    struct ClaimTable {
        struct Entry {
            let redeem: Redeem
            var facts: ClaimFacts
        }
        private var primary = SlotTable<Entry>()
        private var colliding: [RedeemClaim: ClaimFacts] = [:]
        /// All ones in a run. Tests narrow it so that most claims share a slot with another
        /// (as `RecordStore`'s and `DigestMap`'s prefix masks do): the `Dictionary` in use.
        private let slotMask: UInt64

        init() { slotMask = .max }
        init(slotMask: UInt64) { self.slotMask = slotMask }

        mutating func reserveCapacity(_ count: Int) { primary.reserveCapacity(count) }

        @inline(__always) private func slot(_ claim: RedeemClaim) -> UInt64 {
            UInt64(bitPattern: Int64(claim._rawHashValue(seed: 0))) & slotMask
        }

        /// Claims held in the `Dictionary` beside the slots (for tests).
        var collidingCount: Int { colliding.count }

        /// Where a lookup of `claim` starts reading, for prefetch hints (see `SlotTable`).
        @inline(__always) func lookupAddresses(_ claim: RedeemClaim) -> LookupHint? { primary.lookupAddresses(slot(claim)) }

        /// The object of the redeem held in `claim`'s slot, if one is (perhaps another claim's),
        /// as a raw address: what a lookup without a redeem at hand compares next. A hint only.
        @inline(__always) func firstRedeemAddress(_ claim: RedeemClaim) -> UnsafeRawPointer? {
            primary.withValue(slot(claim)) { UnsafeRawPointer(Unmanaged.passUnretained($0.redeem).toOpaque()) }
        }

        @inline(__always) private static func names(_ entry: borrowing Entry, _ claim: RedeemClaim, _ redeem: Redeem?) -> Bool {
            if let redeem, entry.redeem === redeem { return true }
            return entry.redeem.input == claim.input && entry.redeem.spender == claim.spender
        }

        /// What `body` makes of the facts of `claim`, lent in place (a copy would retain the
        /// record's objects, loading them); nil if there are none. `redeem`, if given, is a
        /// redeem of the claim, matched by identity first.
        func withFacts<R>(_ claim: RedeemClaim, of redeem: Redeem? = nil, _ body: (borrowing ClaimFacts) -> R) -> R? {
            var result: R?
            let held = primary.withValue(slot(claim)) { entry -> Bool in
                guard Self.names(entry, claim, redeem) else { return false }
                result = body(entry.facts)
                return true
            } ?? false
            if held { return result }
            guard !colliding.isEmpty, let facts = colliding[claim] else { return nil }
            return body(facts)
        }

        /// Changes the facts of `claim` (a claim of `redeem`), starting from none.
        mutating func update(_ claim: RedeemClaim, of redeem: Redeem, _ change: (inout ClaimFacts) -> Void) {
            let ours = primary.withValue(slot(claim), inserting: { Entry(redeem: redeem, facts: ClaimFacts()) }) { entry, inserted in
                guard inserted || Self.names(entry, claim, redeem) else { return false }
                change(&entry.facts)
                return true
            }
            if !ours { change(&colliding[claim, default: ClaimFacts()]) }
        }

        /// Every certified redeem record held, in no particular order.
        var records: [CertifiedRedeem] {
            var out = [CertifiedRedeem]()
            primary.forEach { if let r = $0.facts.record { out.append(r) } }
            for facts in colliding.values { if let r = facts.record { out.append(r) } }
            return out
        }
    }

    /// - Parameter expectedPayments: payments the run is expected to certify, each with about
    ///   `inputs` inputs: the big tables are sized for them once, instead of rehashing millions
    ///   of entries through every doubling (~1.5 % of a 150,000-payment run in perf; the capacity
    ///   a table reaches is the same either way).
    init(context: ProtocolContext, expectedPayments: Int = 0, inputs: Int = 1) {
        self.context = context
        self.meter = CryptoMeter(context.verifier)
        let payments = max(0, expectedPayments), redeems = payments * max(1, inputs)
        guard payments > 0 else { return }
        paymentList.reserveCapacity(payments)
        paymentIndex.reserveCapacity(payments)
        redeemSpender.reserveCapacity(redeems)
        firstVotes.reserveCapacity(redeems)  // redeem keys only (see `observe`)
        claims.reserveCapacity(redeems)
    }

    /// Remembers no payment as checked: every record is verified whole, on its own.
    struct CheckedAlone: VerifiedPayments {
        func isVerified(_ key: Digest) -> Bool { false }
        mutating func markVerified(_ key: Digest) {}
    }

    struct Verified: VerifiedPayments {
        let payments: DigestMap<Int32>
        var unrecorded: Set<Digest>
        func isVerified(_ key: Digest) -> Bool { payments[key] != nil || unrecorded.contains(key) }
        mutating func markVerified(_ key: Digest) { if payments[key] == nil { unrecorded.insert(key) } }
    }

    /// Runs `check` with the verified-payment cache (the set moved out and back; `paymentIndex`
    /// must not change meanwhile).
    private func verifying(_ check: (inout Verified) -> Bool) -> Bool {
        var cache = Verified(payments: paymentIndex, unrecorded: verifiedUnrecorded)
        verifiedUnrecorded = []
        defer { verifiedUnrecorded = cache.unrecorded }
        return check(&cache)
    }

    private func violate(_ invariant: String, _ time: UInt64, _ detail: String, once: String? = nil) {
        if let once { guard reported.insert(invariant + once).inserted else { return } }
        violations.append(Violation(invariant: invariant, time: time, detail: detail))
    }

    // MARK: Observations

    /// Every message any node sends. `honestSender` is false for Byzantine replicas.
    func observe(_ message: Message, from: NodeID, honestSender: Bool, at time: UInt64) {
        switch message {
        case let .vote(statement, vote):
            // Only redeem keys can have two values: a payment's key is the hash of its value.
            guard honestSender, statement.type == .redeem, vote.replica == from.raw else { return }
            observeVote(replica: vote.replica, key: statement.key, value: statement.valueHash, at: time)
        case let .commit(records), let .gossip(records):
            for r in records { record(r, at: time) }
        case let .handOver(payment, parents):
            record(.payment(payment), at: time)
            for p in parents { record(.payment(p), at: time) }
        case let .readReply(_, .certified(r)):
            record(r, at: time)
        case let .prepareRedeem(redeem, parent):
            claim(redeem, parent: parent.payment)
        case let .prepareBatch(payment, parents, list):
            for r in list where r.spender == payment.key {
                claim(r, parent: parents.first { $0.key == r.input.parentKey }?.payment)
            }
        case let .preparePayment(_, _, list):
            for r in list { record(.redeem(r), at: time) }
        default:
            return
        }
    }

    /// Where S10's lookup of a redeem key's first vote starts reading, for the simulator's hint
    /// on an upcoming redeem Prepare (each of its group's honest votes is observed there).
    func voteLookupAddresses(keyPrefix: UInt64) -> LookupHint? { firstVotes.lookupAddresses(keyPrefix: keyPrefix) }

    /// S10: an honest replica never votes for two values of one key.
    private func observeVote(replica r: ReplicaID, key: Digest, value: Digest, at time: UInt64) {
        let voteKey = VoteKey(replica: r, key: key)
        guard var first = firstVotes[key] else {
            var entry = FirstVote(value: value)
            _ = entry.addInline(r)
            firstVotes[key] = entry
            return
        }
        let votedFirst = first.inlineContains(r) || (!moreVoters.isEmpty && moreVoters.contains(voteKey))
        let other = otherVotes.isEmpty ? nil : otherVotes[voteKey]
        if value == first.value {
            if let other, other != value { twoValues(r, key, time) }
            guard !votedFirst else { return }
            if !first.addInline(r) { moreVoters.insert(voteKey) } else { firstVotes[key] = first }
        } else if votedFirst || (other.map { $0 != value } ?? false) {
            twoValues(r, key, time)
        } else if other == nil {
            otherVotes[voteKey] = value
        }
    }

    private func twoValues(_ r: ReplicaID, _ key: Digest, _ time: UInt64) {
        violate("S10", time, "replica \(r) voted for two values of key \(key)", once: "\(r)/\(key)")
    }

    private func claim(_ redeem: Redeem, parent: Payment?) {
        let c = RedeemClaim(input: redeem.input, spender: redeem.spender)
        guard claims.withFacts(c, of: redeem, { $0.signed }) != true, let parent else { return }
        if (try? context.rules.checkRedeem(redeem, parent: parent, verifier: meter)) != nil { claims.update(c, of: redeem) { $0.signed = true } }
    }

    /// A certified record seen on the wire: counted only if its proof verifies.
    private func record(_ stored: StoredRecord, at time: UInt64) {
        switch stored {
        case let .payment(p):
            let context = context, meter = meter
            guard paymentIndex[p.key] == nil, verifying({ (try? context.verify(p, meter: meter, verified: &$0)) != nil }) else { return }
            paymentIndex[p.key] = Int32(truncatingIfNeeded: paymentList.count)
            paymentList.append((p, time))
            listedInputs += p.payment.inputs.count
            if !verifiedUnrecorded.isEmpty { verifiedUnrecorded.remove(p.key) }
        case let .redeem(r):
            let fact = RedeemClaim(input: r.redeem.input, spender: r.redeem.spender)
            let context = context, meter = meter
            guard claims.withFacts(fact, of: r.redeem, { $0.record != nil }) != true,
                  verifying({ (try? context.verify(r, meter: meter, verified: &$0)) != nil }) else { return }
            claims.update(fact, of: r.redeem) { $0.record = r }
            if case let .batch(p) = r.proof { record(.payment(p), at: time) }
            if case .certificate = r.proof {
                // A redeem certificate is W votes for "k is spent by this spender".
                let spender = r.redeem.spender
                if let first = redeemSpender[r.key] {
                    if first != spender, secondSpender[r.key] == nil {
                        secondSpender[r.key] = spender
                        violate("S1", time, "redeem key \(r.key) certified for two payments \(first) and \(spender)")
                    }
                } else {
                    redeemSpender[r.key] = spender
                }
            }
            if let parent = certifiedPayment(r.redeem.input.parentKey) ?? genesisPayment(r.redeem.input.parentKey) {
                claim(r.redeem, parent: parent)
            }
        }
    }

    /// Genesis payments' positions in `context.genesis.payments`, by key.
    private lazy var genesisIndex: [Digest: Int] = {
        var map = [Digest: Int]()
        for (i, p) in context.genesis.payments.enumerated() { map[p.key] = i }
        return map
    }()

    private func genesisPayment(_ key: Digest) -> Payment? { genesisIndex[key].map { context.genesis.payments[$0] } }

    /// The certified payment of `key`, if one was seen: the payment alone (a whole entry copied
    /// out would retain its certificate too, a cold object the checks never read).
    private func certifiedPayment(_ key: Digest) -> Payment? {
        paymentIndex[key].map { paymentList[Int($0)].record.payment }
    }

    /// An output as the end-of-run checks name it: by its parent's position in `paymentList`
    /// (genesis payments not there come after it) and its index, in 8 bytes; an output of an
    /// unknown parent (an S7 violation) by its reference.
    private enum Output {
        case known(UInt64)
        case unknown(InputRef)
        static func known(parent: Int, index: UInt32) -> Output { .known(UInt64(parent) << 32 | UInt64(index)) }
    }

    private func output(_ input: InputRef) -> Output {
        if let i = paymentIndex[input.parentKey] { return .known(parent: Int(i), index: input.index) }
        if let g = genesisIndex[input.parentKey] { return .known(parent: paymentList.count + g, index: input.index) }
        return .unknown(input)
    }

    /// Outputs → positions (of spenders), at 17 bytes a slot for known outputs rather than 40
    /// (8-byte name, 4-byte position, padding, control byte): built at the run's memory peak,
    /// for every input of a million-payment run.
    private struct SpendMap {
        /// Known outputs by their 8-byte names, hashed by the 64-bit mixer rather than SipHash
        /// (the end-of-run checks look up every input of the run two or three times).
        private var known = SlotTable<Int32>()
        private var unknown: [InputRef: Int32] = [:]
        init(capacity: Int) { known.reserveCapacity(capacity) }
        subscript(output: Output) -> Int32? {
            switch output {
            case let .known(id): return known.withValue(id) { $0 }
            case let .unknown(input): return unknown[input]
            }
        }
        mutating func set(_ output: Output, _ value: Int32) {
            switch output {
            case let .known(id): known.withValue(id, inserting: { value }) { held, _ in held = value }
            case let .unknown(input): unknown[input] = value
            }
        }
        /// Where a lookup of a known output starts reading, for prefetch hints.
        func lookupAddresses(_ output: Output) -> LookupHint? {
            guard case let .known(id) = output else { return nil }
            return known.lookupAddresses(id)
        }
    }

    func observeAccepted(principal: Int, record: CertifiedPayment, at time: UInt64) {
        accepted.append((principal, record, time))
        acceptedInputs += record.payment.inputs.count
    }

    func observeRead(key: Digest, start: UInt64, end: UInt64, found: Bool) {
        reads[key, default: []].append((start, end, found))
    }

    // MARK: Checks at the end

    /// Inputs the end-of-run checks need from the simulator.
    typealias HonestPayment = (key: Digest?, issued: UInt64, certified: UInt64, bound: UInt64?)

    struct World {
        /// Replicas counted honest, whose stores S9 and L3 read.
        var honestReplicas: [Int]
        /// One honest replica's stored records, in no particular order. Asked for one replica at a time:
        /// every store at once is ten million records in a million-payment run.
        var storedRecords: (_ replica: Int, _ visit: (borrowing StoredRecord) -> Void) -> Void
        /// Whether an honest replica stores a key (L3).
        var holds: (Int, Digest) -> Bool
        /// Calls its argument with each honest payment, in issue order: a visitor, not an array
        /// (a million of them would be copied at the run's memory peak) nor an `AnySequence`
        /// (whose elements came through unspecialized generic code, ~2,400 instructions each).
        var honestPayments: (_ visit: (HonestPayment) -> Void) -> Void
        var end: UInt64
        var lockedHonest: [LockedFunds]
        var recoveredUnfinished: [Digest]
        var stuckHonestReplicas: [Int]
        var repairDeadline: UInt64?
        var groupMembers: (PublicKey) -> [Int]
        var honestLive: (Int) -> Bool
        /// When a payment key's writer saw it committed, if it did.
        var committedAt: (Digest) -> UInt64?
        /// S9's findings, when they were found already (`invalidStores`, by each partition of a
        /// partitioned run); nil: `finish` finds them.
        var checkedStores: [(replica: Int, key: Digest)]? = nil
    }

    /// S9's finding for each of `replicas` (in that order) that stores a record without a valid
    /// certificate: the smallest such key. A function of the stores alone, so the partitions of
    /// a partitioned run each check their own replicas, at once.
    /// The objects a stored record refers to (its payment or redeem, and its certificate's
    /// storage or batch payment: the record's first two words), read from its raw memory as
    /// `RecordStore.forEach(hintAhead:)` shows it, for S9 to prefetch. A hint only.
    static let storeHintDistance = 8

    @inline(__always) static func prefetchStored(_ record: UnsafeRawPointer) {
        if let object = referencedObject(record, 0) { quorumcoin_prefetch(object) }
        if let proof = referencedObject(record, 8) { quorumcoin_prefetch(proof) }
    }

    /// Every record of `store`, as the end-of-run checks walk it: with `prefetchStored`'s hints.
    static func visitStored(_ store: RecordStore, _ visit: (borrowing StoredRecord) -> Void) {
        store.forEach(hintAhead: storeHintDistance, prefetchStored, visit)
    }

    static func invalidStores(context: ProtocolContext, replicas: [Int],
                              storedRecords: (_ replica: Int, _ visit: (borrowing StoredRecord) -> Void) -> Void) -> [(replica: Int, key: Digest)] {
        var findings = [(replica: Int, key: Digest)]()
        let checkMeter = CryptoMeter(context.verifier)
        // The members of a shard store the same record objects: each is verified once while its
        // verdict is remembered by identity (the very objects, so the verdict is the same; the
        // stores keep them alive meanwhile), and the other stores' copies are judged without
        // reading the records at all (a million-payment run's stores hold 12 million, scattered
        // over gigabytes). Cleared as it fills: consecutive replicas are one shard's members.
        var verdicts = [StoredRecord.Identity: Bool]()
        for replica in replicas {
            if verdicts.count > 1 << 16 { verdicts.removeAll(keepingCapacity: true) }
            // In store order (unspecified), each record checked on its own (a memo of payments
            // already checked by key, unlike the memo of identical objects above, would let a
            // batch redeem's embedded spender pass on the strength of another record with its
            // key, depending on which came first), and the one reported is the smallest bad key:
            // so nothing here needs the store sorted (sorting every replica's records was 4 % of
            // a run's instructions).
            var firstBad: Digest?
            storedRecords(replica) { r in
                let identity = r.identity
                let valid: Bool
                if let known = verdicts[identity] {
                    valid = known
                } else {
                    var alone = CheckedAlone()
                    valid = (try? context.verify(r, meter: checkMeter, verified: &alone)) != nil
                    verdicts[identity] = valid
                }
                guard !valid else { return }
                if firstBad.map({ r.key < $0 }) ?? true { firstBad = r.key }
            }
            if let key = firstBad { findings.append((replica, key)) }
        }
        return findings
    }

    func finish(_ world: World) -> [Violation] {
        let genesis = context.genesis
        // S1 for payments holds by construction (K is the hash of the value); S2: one spender per output.
        // Spenders as positions in paymentList: this runs at the run's memory peak, so the map
        // is sized once and kept small.
        var spentBy = SpendMap(capacity: listedInputs)
        /// Certified payments that break S4, S5, S6 or S7 themselves.
        var invalid = Set<Digest>()
        // S3's terms, summed in this same pass (a second pass over a million payments loaded
        // each one's object and outputs again, cold): every certified payment's outputs, each
        // output spent as its spender is first listed, the fees. Exact in 128 bits, where no
        // sum of these overflows, so it overflows UInt64 exactly when a sum of the unspent
        // outputs and the fees, in any order, would.
        var outputsTotal: UInt128 = 0, spentTotal: UInt128 = 0, feesTotal: UInt128 = 0
        func sum(_ outputs: [QuorumLedger.Output]) -> UInt128 { outputs.reduce(0) { $0 + UInt128($1.amount) } }
        // By index, each field read where it lies: an entry copied out retains its payment's
        // certificate, a cold line per payment that no check here reads.
        for position in paymentList.indices {
            prefetchListed(position)
            prefetchSpending(position, spentBy)
            let p = paymentList[position].record.payment, seen = paymentList[position].seen, key = p.key
            // Genesis payments have no inputs (`Genesis` refuses any that do), so a payment
            // with inputs is none of them: the lookup, a cold line a payment, only when empty.
            if p.inputs.isEmpty && genesis.contains(key) {
                outputsTotal += sum(p.outputs)
                continue
            }
            let before = violations.count
            defer { if violations[before...].contains(where: { $0.invariant != "S2" }) { invalid.insert(key) } }
            if p.inputs.isEmpty { violate("S6", seen, "zero-input payment \(key) certified outside genesis") }
            // Σ inputs as a running checked sum (nil once it overflows), not an array per payment.
            var totalIn: UInt64? = 0
            for input in p.inputs {
                let spent = output(input)
                let spender = spentBy[spent]
                if let other = spender.map({ paymentList[Int($0)].record.key }), other != key {
                    violate("S2", seen, "output \(input) spent by certified payments \(other) and \(key)")
                } else {
                    spentBy.set(spent, Int32(truncatingIfNeeded: position))
                }
                guard let parent = certifiedPayment(input.parentKey) ?? genesisPayment(input.parentKey) else {
                    violate("S7", seen, "certified payment \(key) spends \(input) whose parent is not certified", once: "S7\(key)")
                    continue
                }
                guard Int(input.index) < parent.outputs.count else {
                    violate("S7", seen, "certified payment \(key) spends missing output \(input)", once: "S7\(key)")
                    continue
                }
                let output = parent.outputs[Int(input.index)]
                if spender == nil { spentTotal += UInt128(output.amount) }
                if output.owner != p.payer { violate("S5", seen, "certified payment \(key) spends \(input) owned by someone else") }
                if !signedClaim(RedeemClaim(input: input, spender: key), listedAt: position) {
                    violate("S5", seen, "no redeem signed by the owner names \(key) for input \(input)", once: "S5r\(key)")
                }
                totalIn = totalIn.flatMap { Amounts.checkedSum($0, output.amount) }
            }
            let totalOut = Amounts.checkedSum(p.outputs.lazy.map { $0.amount }).flatMap { Amounts.checkedSum($0, p.body.fee) }
            if totalIn == nil || totalOut == nil || totalIn != totalOut || p.outputs.contains(where: { $0.amount == 0 }) {
                violate("S4", seen, "certified payment \(key) is unbalanced (in \(totalIn.map(String.init) ?? "overflow"), out+fee \(totalOut.map(String.init) ?? "overflow"))")
            }
            outputsTotal += sum(p.outputs)
            feesTotal += UInt128(p.body.fee)
        }
        spentBy = SpendMap(capacity: 0)  // freed before S8's map is built (the run's memory peak)
        // S7: no certified payment has an invalid ancestor (one breaking S4, S5 or S6, or missing).
        var tainted = invalid
        var changed = !invalid.isEmpty  // nothing invalid, nothing tainted: no pass over the DAG
        while changed {  // a fixpoint over the DAG, bounded by its size
            changed = false
            for (record, seen) in paymentList where !tainted.contains(record.key) {
                if record.payment.inputs.contains(where: { tainted.contains($0.parentKey) }) {
                    tainted.insert(record.key)
                    changed = true
                    violate("S7", seen, "certified payment \(record.key) has an invalid ancestor", once: "S7a\(record.key)")
                }
            }
        }
        // S3: unspent outputs + burned fees == genesis supply. Unspent: the outputs of every
        // certified payment and of every genesis payment not among them, less each output a
        // listed spender spends (subtracted once, by its first spender, and only if it exists:
        // the outputs an S7 violation names are in no total).
        for g in genesis.payments where paymentIndex[g.key] == nil { outputsTotal += sum(g.outputs) }
        let exact = outputsTotal - spentTotal + feesTotal
        let overflow = exact > UInt128(UInt64.max)
        let total = UInt64(truncatingIfNeeded: exact)
        if overflow || total != genesis.supply {
            violate("S3", world.end, "unspent + fees = \(overflow ? "overflow" : String(total)), genesis supply = \(genesis.supply)")
        }
        // S8: honest readers accept only valid, certified, non-conflicting payments.
        var acceptedSpends = SpendMap(capacity: acceptedInputs)  // positions in accepted
        for position in accepted.indices {
            prefetchAccepted(position)
            let a = (principal: accepted[position].principal, payment: accepted[position].record.payment, time: accepted[position].time)
            let key = a.payment.key
            if paymentIndex[key] == nil && !genesis.contains(key) {
                violate("S8", a.time, "principal \(a.principal) accepted payment \(key) without a valid certificate")
            }
            if tainted.contains(key) {
                violate("S8", a.time, "principal \(a.principal) accepted payment \(key), which is invalid or has an invalid ancestor", once: "S8i\(key)")
            }
            for input in a.payment.inputs {
                let spent = output(input)
                if let other = acceptedSpends[spent].map({ accepted[Int($0)].record.key }), other != key {
                    violate("S8", a.time, "honest payees accepted \(other) and \(key), both spending \(input)", once: "S8d\(input)")
                } else {
                    acceptedSpends.set(spent, Int32(truncatingIfNeeded: position))
                }
            }
        }
        // S9: every record an honest replica stores carries a well-formed, valid certificate.
        let findings = world.checkedStores ?? InvariantChecker.invalidStores(context: context, replicas: world.honestReplicas,
                                                                              storedRecords: world.storedRecords)
        for (replica, key) in findings {
            violate("S9", world.end, "replica \(replica) stores \(key) with an invalid certificate", once: "S9\(replica)")
        }
        // S11: once a read returned a value, no read started later returns "not found".
        for key in reads.keys.sorted() {
            guard let list = reads[key] else { continue }
            if let firstFound = list.filter(\.found).map(\.end).min(),
               let bad = list.first(where: { !$0.found && $0.start > firstFound }) {
                violate("S11", bad.end, "read of \(key) started at \(bad.start) returned not found after a read returned it at \(firstFound)")
            }
            // L2: reads of committed keys return them.
            if let committed = world.committedAt(key), let miss = list.first(where: { !$0.found && $0.start > committed }) {
                violate("L2", miss.end, "read of committed key \(key) (committed at \(committed)) returned not found", once: "L2\(key)")
            }
        }
        // L1: honest payments certify within their bound.
        world.honestPayments { p in
            guard let bound = p.bound, bound <= world.end else { return }
            if p.certified == PaymentRecord.never || p.certified > bound {
                violate("L1", bound, "honest payment \(p.key?.description ?? "?") issued at \(p.issued) not certified by \(bound)", once: "L1")
            }
        }
        // L3: certified records reach every honest, live member of their group.
        if let deadline = world.repairDeadline {
            for (record, seen) in paymentList {
                let key = record.key
                guard seen <= deadline, !genesis.contains(key), world.committedAt(key) != nil else { continue }
                for member in world.groupMembers(record.payment.payer) where world.honestLive(member) && !world.holds(member, key) {
                    violate("L3", world.end, "certified payment \(key) never reached honest replica \(member)", once: "L3")
                }
            }
        }
        // L4: honest payers' funds are never locked.
        for l in world.lockedHonest {
            violate("L4", world.end, "honest principal \(l.principal) has \(l.amount) locked (\(l.reason))", once: "L4\(l.principal)")
        }
        // L5: a payer that recovered with its log finishes the same payment.
        for key in world.recoveredUnfinished {
            violate("L5", world.end, "recovered payer did not finish payment \(key)", once: "L5\(key)")
        }
        // L6: no honest replica is left with unprocessed input.
        for r in world.stuckHonestReplicas {
            violate("L6", world.end, "honest replica \(r) still has queued messages at the end", once: "L6")
        }
        return violations.sorted { ($0.time, $0.invariant) < ($1.time, $1.invariant) }
    }
}

extension InvariantChecker {
    /// Hints for the end-of-run passes over every certified and every accepted payment: a
    /// million payment objects, scattered over gigabytes, each read once, for which the loop
    /// stalled in turn. The payment `ahead` entries on starts loading (its object's three
    /// lines: key, payer, input and output arrays), and the one half as far on, whose object
    /// that hint brought in, its input and output arrays. Hints only: a wrong address costs a
    /// wasted prefetch, never a fault or a result (nothing read here is retained or decided on).
    static let hintDistance = 12

    @inline(__always) private func prefetchListed(_ position: Int) {
        paymentList.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return }
            InvariantChecker.prefetchPayment(of: b, base: UnsafeRawPointer(base), position, recordAt: 0)
        }
    }

    /// Hints for what the pass over `paymentList` looks up for each input of a payment, each
    /// at random in tables of a million entries, one lookup depending on the last. For the
    /// payment 5 entries on (whose object and input array `prefetchListed` loaded): its parents'
    /// index slots and its claims' slots. 3 on, from those: its parents' entries in the list and
    /// its outputs' slots in `spentBy`. 2 on: the parent payments' objects and the claims' first
    /// redeems (which a claim is matched against). 1 on: the parents' output arrays. At most two
    /// inputs each (nearly every payment has one or two). Hints only, like `prefetchListed`.
    @inline(__always) private func prefetchSpending(_ position: Int, _ spentBy: borrowing SpendMap) {
        let count = paymentList.count
        typealias Entry = (record: CertifiedPayment, seen: UInt64)
        func claimTable(_ q: Int) -> ClaimTable {
            let first = q < listedFrom.count ? min(Int(listedFrom[q]), moreClaims.count) : 0
            return first == 0 ? claims : moreClaims[first - 1]
        }
        if position + 5 < count {
            let q = position + 5
            let p = paymentList[q].record.payment
            let table = claimTable(q)
            for input in p.inputs.prefix(2) {
                prefetchLookup(paymentIndex.lookupAddresses(keyPrefix: input.parentKey.prefix64))
                prefetchLookup(table.lookupAddresses(RedeemClaim(input: input, spender: p.key)))
            }
        }
        paymentList.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return }
            let raw = UnsafeRawPointer(base)
            if position + 3 < count {
                for input in b[position + 3].record.payment.inputs.prefix(2) {
                    guard let i = paymentIndex[input.parentKey] else { continue }
                    quorumcoin_prefetch(raw + Int(i) * MemoryLayout<Entry>.stride)
                    prefetchLookup(spentBy.lookupAddresses(.known(parent: Int(i), index: input.index)))
                }
            }
            if position + 2 < count {
                let p = b[position + 2].record.payment
                let table = claimTable(position + 2)
                for input in p.inputs.prefix(2) {
                    if let i = paymentIndex[input.parentKey], let parent = InvariantChecker.listedPayment(b, base: raw, Int(i), recordAt: 0) {
                        quorumcoin_prefetch(parent + InvariantChecker.paymentOutputsOffset)
                    }
                    if let redeem = table.firstRedeemAddress(RedeemClaim(input: input, spender: p.key)) { quorumcoin_prefetch(redeem) }
                }
            }
            if position + 1 < count {
                for input in b[position + 1].record.payment.inputs.prefix(2) {
                    if let i = paymentIndex[input.parentKey],
                       let parent = InvariantChecker.listedPayment(b, base: raw, Int(i), recordAt: 0),
                       let outputs = referencedObject(parent, InvariantChecker.paymentOutputsOffset) {
                        quorumcoin_prefetch(outputs)
                        quorumcoin_prefetch(outputs + 64)
                    }
                }
            }
        }
    }

    @inline(__always) private func prefetchAccepted(_ position: Int) {
        accepted.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return }
            InvariantChecker.prefetchPayment(of: b, base: UnsafeRawPointer(base), position,
                                             recordAt: InvariantChecker.acceptedRecordOffset)
        }
    }

    /// Where an `accepted` entry keeps its record (after the principal).
    static let acceptedRecordOffset = MemoryLayout<Int>.stride

    /// A payment object's input and output arrays: its stored fields start after the 16-byte
    /// object header, the 32-byte key first and then the body.
    static let paymentInputsOffset = 48 + (MemoryLayout<PaymentBody>.offset(of: \PaymentBody.inputs) ?? 0)
    static let paymentOutputsOffset = 48 + (MemoryLayout<PaymentBody>.offset(of: \PaymentBody.outputs) ?? 0)
    static let certifiedPaymentOffset = MemoryLayout<CertifiedPayment>.offset(of: \CertifiedPayment.payment) ?? 0

    /// The payment object of entry `index` of a list whose entries hold a `CertifiedPayment` at
    /// `recordAt`, read as an address (not retained); nil past the end.
    @inline(__always) static func listedPayment<T>(_ b: UnsafeBufferPointer<T>, base: UnsafeRawPointer, _ index: Int, recordAt: Int) -> UnsafeRawPointer? {
        guard index < b.count else { return nil }
        return referencedObject(base + index * MemoryLayout<T>.stride, recordAt + certifiedPaymentOffset)
    }

    /// A payment object's three lines (key, payer, input and output arrays).
    @inline(__always) private static func prefetchPaymentObject(_ payment: UnsafeRawPointer) {
        quorumcoin_prefetch(payment)
        quorumcoin_prefetch(payment + 64)
        quorumcoin_prefetch(payment + 128)
    }

    /// Moves the entries of `lists` out in `order` (list, index), each one `keep` accepts handed
    /// to `append` with its list, a copy of `lists`' first entry left in its place: an entry
    /// copied instead would be retained (its payment and certificate) and released again with
    /// the list, four cold lines per entry at a million payments. `hint(j, lists)` runs before
    /// the `j`-th entry is looked at.
    private static func moveOut<T>(of lists: inout [[T]], in order: [(list: Int, index: Int)], hint: (Int, [[T]]) -> Void = { _, _ in },
                                   keeping keep: (UnsafePointer<T>) -> Bool = { _ in true }, into append: (Int, T) -> Void) {
        guard let filler = lists.first(where: { !$0.isEmpty })?.first else { return }
        for (j, (list, index)) in order.enumerated() {
            hint(j, lists)
            lists[list].withUnsafeMutableBufferPointer { entries in
                guard let at = entries.baseAddress.map({ $0 + index }), keep(at) else { return }
                append(list, at.move())
                at.initialize(to: filler)
            }
        }
    }

    @inline(__always) private static func prefetchPayment<T>(of b: UnsafeBufferPointer<T>, base: UnsafeRawPointer, _ position: Int, recordAt: Int) {
        if let far = listedPayment(b, base: base, position + hintDistance, recordAt: recordAt) { prefetchPaymentObject(far) }
        if let near = listedPayment(b, base: base, position + hintDistance / 2, recordAt: recordAt) {
            if let inputs = referencedObject(near, paymentInputsOffset) { quorumcoin_prefetch(inputs) }
            if let outputs = referencedObject(near, paymentOutputsOffset) { quorumcoin_prefetch(outputs) }
        }
    }

    /// Whether a redeem naming `claim.spender` duly signed by its owner was seen, by any
    /// partition: the one that listed the spender first (a payer's redeems travel within its
    /// group, so that partition saw them; asked in another order, half the lookups of a
    /// two-partition run missed first, three cold lines each).
    private func signedClaim(_ claim: RedeemClaim, listedAt position: Int) -> Bool {
        let tables = 1 + moreClaims.count
        func signed(in k: Int) -> Bool { (k == 0 ? claims : moreClaims[k - 1]).withFacts(claim) { $0.signed } == true }
        let first = position < listedFrom.count ? min(Int(listedFrom[position]), tables - 1) : 0
        if signed(in: first) { return true }
        for k in 0..<tables where k != first && signed(in: k) { return true }
        return false
    }

    /// One checker for a partitioned run's end-of-run checks, from each partition's: the certified
    /// payments each saw (a payment handed over to another partition's payee is seen in both),
    /// merged by the time first seen and each kept once; acceptances merged by time; claims and
    /// reads; the violations found as the runs went. The partitions' tables are emptied as they
    /// are taken (the checks run at the run's memory peak); the votes, which only the online S10
    /// check needed, are dropped.
    static func merging(_ parts: [InvariantChecker], context: ProtocolContext) -> InvariantChecker {
        let merged = InvariantChecker(context: context)
        let total = parts.reduce(0) { $0 + $1.paymentList.count }
        merged.paymentList.reserveCapacity(total)
        merged.paymentIndex.reserveCapacity(total)
        // Each entry kept is moved out of its partition's list (`moveOut`).
        let order = mergeOrder(parts.map(\.paymentList.count), by: { parts[$0].paymentList[$1].seen })
        var lists = parts.map { part in
            defer { part.paymentList = [] }
            return part.paymentList
        }
        let keyAt = RecordLayout.keyOffset
        moveOut(of: &lists, in: order, hint: { j, lists in
            // The key read below is in the entry's payment object, cold: start loading the one
            // `hintDistance` entries on (a hint, as in the end-of-run passes); and, from the
            // object that hint loaded, the merged index's slot for the key half as far on.
            if j + hintDistance < order.count {
                let (list, index) = order[j + hintDistance]
                lists[list].withUnsafeBufferPointer { b in
                    guard let base = b.baseAddress,
                          let payment = listedPayment(b, base: UnsafeRawPointer(base), index, recordAt: 0) else { return }
                    prefetchPaymentObject(payment)
                }
            }
            guard let keyAt, j + hintDistance / 2 < order.count else { return }
            let (list, index) = order[j + hintDistance / 2]
            lists[list].withUnsafeBufferPointer { b in
                guard let base = b.baseAddress,
                      let payment = listedPayment(b, base: UnsafeRawPointer(base), index, recordAt: 0) else { return }
                prefetchLookup(merged.paymentIndex.lookupAddresses(keyPrefix: RecordLayout.prefix64(of: payment, at: keyAt)))
            }
        }, keeping: { merged.paymentIndex[$0.pointee.record.key] == nil }, into: { list, entry in
            merged.paymentIndex[entry.record.key] = Int32(truncatingIfNeeded: merged.paymentList.count)
            merged.paymentList.append(entry)
            merged.listedFrom.append(UInt8(truncatingIfNeeded: list))
        })
        lists = []
        for part in parts {
            part.paymentIndex = DigestMap()
            part.firstVotes = DigestMap()
            part.otherVotes = [:]
            part.moreVoters = []
            part.redeemSpender = DigestMap()
            part.secondSpender = [:]
        }
        // Moved as the payments are, for the same reason.
        let acceptedOrder = mergeOrder(parts.map(\.accepted.count), by: { parts[$0].accepted[$1].time })
        var acceptedLists = parts.map { part in
            defer { part.accepted = [] }
            return part.accepted
        }
        merged.accepted.reserveCapacity(acceptedOrder.count)
        moveOut(of: &acceptedLists, in: acceptedOrder, into: { merged.accepted.append($1) })
        acceptedLists = []
        merged.listedInputs = parts.reduce(0) { $0 + $1.listedInputs }
        merged.acceptedInputs = parts.reduce(0) { $0 + $1.acceptedInputs }
        for (i, part) in parts.enumerated() {
            part.accepted = []
            if i == 0 { merged.claims = part.claims } else { merged.moreClaims.append(part.claims) }
            part.claims = ClaimTable()
            for key in part.reads.keys.sorted() { merged.reads[key, default: []] += part.reads[key] ?? [] }
            part.reads = [:]
            merged.violations += part.violations
            merged.reported.formUnion(part.reported)
        }
        return merged
    }

    /// Every certified record seen, in key order (payments, then redeems).
    var certifiedRecords: [StoredRecord] {
        let ps = paymentList.map(\.record).sorted { $0.key < $1.key }.map { StoredRecord.payment($0) }
        let rs = claims.records.sorted { ($0.key, $0.redeem.spender) < ($1.key, $1.redeem.spender) }
            .map { StoredRecord.redeem($0) }
        return ps + rs
    }
}
