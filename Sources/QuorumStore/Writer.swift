import QuorumCrypto
import QuorumLedger

/// How a payment is written (PROTOCOL §3). Both are kept so they can be compared.
public enum WriteVariant: String, Sendable, Hashable, CaseIterable {
    /// Certify and commit each redeem, then certify and commit the payment (2 round trips per
    /// redeem phase, here run for all inputs in parallel, + 2 for the payment).
    case perRecord = "per-record"
    /// One Prepare locks every input and the payment; one vote certifies them all (2 round trips).
    case batched
}

/// Why a write gave up. Writers retry silence forever; they stop only on proof that the write
/// cannot succeed: more than n − W distinct members refused.
public enum WriteFailure: Error, Equatable, Sendable, CustomStringConvertible {
    case rejected(RecordType, key: Digest, reason: RejectReason)

    public var description: String {
        switch self {
        case let .rejected(type, key, reason): return "\(type) \(key) refused by the group (\(reason))"
        }
    }
}

/// Drives one payment through PROTOCOL §3 as a sans-I/O state machine. Verifies every vote before
/// counting it, so a Byzantine replica cannot poison a certificate; re-sends to replicas that have
/// not answered on every retry timer.
public struct Writer {
    public enum Status: Sendable {
        case running
        /// W votes: the payment is final (PROTOCOL §3 step 2). Its commit is still being acknowledged.
        case certified(CertifiedPayment)
        /// W replicas acknowledged storing the payment.
        case committed(CertifiedPayment)
        case failed(WriteFailure)
    }

    /// Collecting votes, then acks, for one record. What every vote and ack reads (type, key,
    /// value hash, votes, certificate, acks) is declared first: the round's first 104 bytes (of
    /// 128), two cache lines of the rounds array where they were three.
    ///
    /// A round keeps neither its Prepare nor its Commit: each is built when sent (again on a
    /// retry, from the writer's records), so the last delivery frees it, its box and its
    /// references just read, instead of the writer's end, long after, every one a cold line in a
    /// large run. For the same reason the votes and the statement go once the certificate holds
    /// them.
    struct Round {
        let type: RecordType
        let key: Digest
        /// The statement's value hash beside its key and type: a vote is matched to its round on
        /// these, without loading the statement's box (a cold line in a large run).
        let valueHash: Digest
        var votes: [Vote] = []
        var certificate: Certificate?
        /// The members (by position in the group) that acknowledged the commit.
        var acked = MemberSet()
        var refused: [ReplicaID] = []
        var refusal: RejectReason?
        /// Until the certificate is made.
        var statement: VoteStatement?

        init(type: RecordType, key: Digest, statement: VoteStatement, quorum: Int) {
            self.type = type
            self.key = key
            self.valueHash = statement.valueHash
            self.statement = statement
            // Room for the W votes a certificate takes, allocated once (grown one by one, an
            // array of 68-byte votes was reallocated three times per round).
            votes.reserveCapacity(quorum)
        }

        /// Whether the member at `position` in the group, `replica`, answered the current step.
        func answered(position: Int, replica: ReplicaID) -> Bool {
            certificate == nil ? votedOrRefused(replica) : acked.contains(position)
        }

        func votedOrRefused(_ replica: ReplicaID) -> Bool {
            votes.contains(where: { $0.replica == replica }) || refused.contains(replica)
        }
    }

    /// First, with `group` and `status` after it: every vote and ack reads these three, and a host
    /// that keeps writers in an array finds them in the slot's first lines (`roundsOffset`).
    private var rounds: [Round] = []
    public let group: Group
    public private(set) var status: Status = .running
    public let payment: Payment
    public let variant: WriteVariant
    public let context: ProtocolContext
    public let meter: CryptoMeter
    public let retryInterval: UInt64
    /// Token this writer's timers carry, chosen by the host.
    public let timerToken: UInt64
    /// Times the writer re-sent (for metrics).
    public private(set) var retries = 0

    private let redeems: [Redeem]
    private let parents: [CertifiedPayment]
    private var certifiedRedeems: [CertifiedRedeem] = []
    private var paymentPhase = false
    private var resumeAtPayment = false

    /// - Parameters:
    ///   - parents: the certified parents of the payment's inputs (one per distinct parent key).
    ///   - redeems: one signed redeem per input, naming `payment`.
    public init(payment: Payment, redeems: [Redeem], parents: [CertifiedPayment], variant: WriteVariant,
                context: ProtocolContext, meter: CryptoMeter, retryInterval: UInt64, timerToken: UInt64 = 0) {
        self.payment = payment
        self.redeems = redeems
        self.parents = parents
        self.variant = variant
        self.context = context
        self.meter = meter
        self.retryInterval = max(1, retryInterval)
        self.timerToken = timerToken
        self.group = context.group(of: payment.payer)
    }

    /// A per-record writer that resumes at step 2 (PROTOCOL §3) with redeems already certified,
    /// as a payer does after recovering from a crash between its writes.
    public init(payment: Payment, certifiedRedeems: [CertifiedRedeem], parents: [CertifiedPayment],
                context: ProtocolContext, meter: CryptoMeter, retryInterval: UInt64, timerToken: UInt64 = 0) {
        self.init(payment: payment, redeems: certifiedRedeems.map(\.redeem), parents: parents, variant: .perRecord,
                  context: context, meter: meter, retryInterval: retryInterval, timerToken: timerToken)
        self.certifiedRedeems = certifiedRedeems.sorted { $0.redeem.input < $1.redeem.input }
        self.resumeAtPayment = true
    }

    /// Where a writer keeps its rounds array's reference (the address of its storage), for a
    /// host's prefetch hints: the rounds are the writer's next dependent load on every vote and ack.
    public static let roundsOffset = MemoryLayout<Writer>.offset(of: \Writer.rounds)

    /// The rounds array's storage, for tests of those hints.
    var roundsAddress: UnsafeRawPointer? { rounds.withUnsafeBufferPointer { $0.baseAddress.map { UnsafeRawPointer($0) - 32 } } }

    public var isFinished: Bool {
        switch status {
        case .committed, .failed: return true
        case .running, .certified: return false
        }
    }

    /// Sends the first Prepares and arms the retry timer.
    public mutating func start(now: UInt64, into out: inout Outbox) {
        switch variant {
        case .perRecord where resumeAtPayment:
            startPaymentRound()
        case .perRecord:
            for redeem in redeems {
                guard parent(of: redeem) != nil else { continue }
                let statement = context.statement(.redeem, key: redeem.key, valueHash: redeem.valueHash, group: group.id)
                rounds.append(Round(type: .redeem, key: redeem.key, statement: statement, quorum: context.quorum.writeQuorum))
            }
            if rounds.isEmpty { startPaymentRound() }
        case .batched:
            startPaymentRound()
        }
        for i in rounds.indices {
            if let prepare = prepare(i) { out.send(prepare, to: group.members) }
        }
        out.setTimer(at: now &+ retryInterval, token: timerToken)
    }

    /// Round `i`'s Prepare, built from the writer's records (the same every time).
    private func prepare(_ i: Int) -> Message? {
        if paymentPhase {
            return variant == .batched
                ? .prepareBatch(payment, parents: parents, redeems: redeems)
                : .preparePayment(payment, parents: parents, redeems: certifiedRedeems)
        }
        let key = rounds[i].key
        guard let redeem = redeems.first(where: { $0.key == key }), let parent = parent(of: redeem) else { return nil }
        return .prepareRedeem(redeem, parent: parent)
    }

    /// The certified parent whose output `redeem` spends: a redeem without one gets no round.
    private func parent(of redeem: Redeem) -> CertifiedPayment? {
        parents.first(where: { $0.payment.key == redeem.input.parentKey })
    }

    /// Round `i`'s Commit, once it is certified: the certified payment (and, batched, its
    /// redeems under it), or the certified redeem.
    private func commit(_ i: Int) -> Message? {
        if paymentPhase {
            switch status {
            case let .certified(certified), let .committed(certified): return .commit(records(of: certified))
            case .running, .failed: return nil
            }
        }
        let key = rounds[i].key
        guard let certified = certifiedRedeems.first(where: { $0.redeem.key == key }) else { return nil }
        return .commit([.redeem(certified)])
    }

    private func records(of certified: CertifiedPayment) -> [StoredRecord] {
        [.payment(certified)] + (variant == .batched ? redeems.map { .redeem(CertifiedRedeem(redeem: $0, proof: .batch(certified))) } : [])
    }

    private mutating func startPaymentRound() {
        paymentPhase = true
        let key = payment.key
        let type: RecordType = variant == .batched ? .batch : .payment
        rounds = [Round(type: type, key: key, statement: context.statement(type, key: key, valueHash: key, group: group.id),
                        quorum: context.quorum.writeQuorum)]
    }

    public mutating func receive(_ message: Message, from sender: NodeID, now: UInt64, into out: inout Outbox) {
        guard !isFinished, let position = group.members.firstIndex(of: sender.raw) else { return }
        let replica = sender.raw
        // Rounds are found by index and read field by field: `firstIndex(where:)` and a method
        // called on `rounds[i]` each copied the whole round, retaining (and so loading) every
        // object it holds, on every vote.
        switch message {
        case let .vote(statement, vote):
            guard vote.replica == replica, let i = round(of: statement),
                  rounds[i].certificate == nil, !rounds[i].votedOrRefused(replica) else { return }
            do { try context.verify(vote, on: statement, group: group, meter: meter) } catch { return }
            rounds[i].votes.append(vote)
            if rounds[i].votes.count == context.quorum.writeQuorum { certify(i, into: &out) }
        case let .reject(type, key, reason):
            guard let i = round(key: key, type: type),
                  rounds[i].certificate == nil, !rounds[i].votedOrRefused(replica) else { return }
            rounds[i].refused.append(replica)
            if reason == .conflict || rounds[i].refusal == nil { rounds[i].refusal = reason }
            if rounds[i].refused.count > context.quorum.n - context.quorum.writeQuorum {
                status = .failed(.rejected(type, key: key, reason: rounds[i].refusal ?? reason))
            }
        case let .ack(key):
            guard let i = round(key: key, type: nil), rounds[i].certificate != nil,
                  rounds[i].acked.insert(position) else { return }
            if rounds[i].acked.count == context.quorum.writeQuorum { committed(i, now: now, into: &out) }
        default:
            return
        }
    }

    /// The round `statement` is about: its key, type and value, and this writer's group, network
    /// and epoch (what `ProtocolContext.statement` built the round's statement from), compared
    /// without loading the round's own statement.
    private func round(of statement: VoteStatement) -> Int? {
        guard statement.group == group.id, statement.epoch == context.epoch, statement.networkId == context.networkId,
              let i = round(key: statement.key, type: statement.type), rounds[i].valueHash == statement.valueHash else {
            return nil
        }
        return i
    }

    /// The round of `key` (and of `type`, when given).
    private func round(key: Digest, type: RecordType?) -> Int? {
        var i = 0
        while i < rounds.count {
            if rounds[i].key == key, type == nil || rounds[i].type == type { return i }
            i += 1
        }
        return nil
    }

    /// The retry timer: re-send the current step to members that have not answered it.
    public mutating func timerFired(token: UInt64, now: UInt64, into out: inout Outbox) {
        guard token == timerToken, !isFinished else { return }
        retries += 1
        for i in rounds.indices {
            guard let message = (rounds[i].certificate != nil ? commit(i) : nil) ?? prepare(i) else { continue }
            for (position, member) in group.members.enumerated() where !rounds[i].answered(position: position, replica: member) {
                out.send(message, to: NodeID(replica: member))
            }
        }
        out.setTimer(at: now &+ retryInterval, token: timerToken)
    }

    private mutating func certify(_ i: Int, into out: inout Outbox) {
        guard let statement = rounds[i].statement else { return }
        // Every vote in the round was verified as it came (`receive`).
        let certificate = context.certificate(of: statement, checkedVotes: rounds[i].votes, meter: meter)
        rounds[i].certificate = certificate
        // Held by the certificate now (its votes copied, its statement's fields inline).
        rounds[i].votes = []
        rounds[i].statement = nil
        if paymentPhase {
            status = .certified(CertifiedPayment(payment: payment, proof: .certificate(certificate)))
        } else {
            guard let redeem = redeems.first(where: { $0.key == rounds[i].key }) else { return }
            certifiedRedeems.append(CertifiedRedeem(redeem: redeem, proof: .certificate(certificate)))
        }
        if let commit = commit(i) { out.send(commit, to: group.members) }
    }

    private mutating func committed(_ i: Int, now: UInt64, into out: inout Outbox) {
        if paymentPhase {
            if case let .certified(certified) = status { status = .committed(certified) }
            return
        }
        guard rounds.allSatisfy({ $0.acked.count >= context.quorum.writeQuorum }) else { return }
        // Every redeem is certified and stored by W replicas: prepare the payment (§3 step 2).
        certifiedRedeems.sort { $0.redeem.input < $1.redeem.input }
        startPaymentRound()
        if let prepare = prepare(0) { out.send(prepare, to: group.members) }
    }
}

/// A set of positions in a group: a bit each for the first 64, inline, where a list of replica
/// ids was an array of its own (an allocation per round and, in a large run, a cache miss on
/// every ack, whose round had been written to long before). Positions from 64 on (groups that
/// large are allowed, never common) go to an array.
struct MemberSet {
    private var low: UInt64 = 0
    private var beyond: [Int] = []

    var count: Int { low.nonzeroBitCount + beyond.count }

    func contains(_ position: Int) -> Bool {
        position < 64 ? low & (1 << UInt64(position)) != 0 : beyond.contains(position)
    }

    /// Adds `position`; false if it was there.
    mutating func insert(_ position: Int) -> Bool {
        guard !contains(position) else { return false }
        if position < 64 { low |= 1 << UInt64(position) } else { beyond.append(position) }
        return true
    }
}
