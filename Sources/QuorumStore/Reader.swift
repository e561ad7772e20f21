import QuorumCrypto
import QuorumLedger

/// How a reader (a payee) decides that a payment it was handed is valid (PROTOCOL §5).
public enum ValidationMode: String, Sendable, Hashable, CaseIterable {
    /// Check the payment's certificate and its direct inputs: O(W) signatures per parent whatever
    /// the history, relying on the voters' checks by induction (PROTOCOL §4).
    case certificate
    /// The poster's literal rule: re-validate every record of the payment's DAG back to genesis,
    /// reading what is missing by Q-RPC, with a cache of what was validated.
    case closure
}

/// Why a reader refused a payment.
public enum ReaderError: Error, Equatable, Sendable, CustomStringConvertible {
    case record(RecordError)
    case ledger(ValidationError)
    /// A record of the payment's history could not be read (Q-RPC concluded "not found").
    case missing(RecordType, Digest)
    /// A redeem read for an input names another payment, or does not spend that input.
    case redeemMismatch(InputRef)
    /// An ancestor failed validation.
    case invalidAncestor(Digest)

    public var description: String {
        switch self {
        case let .record(e): return e.description
        case let .ledger(e): return e.description
        case let .missing(t, k): return "\(t) \(k) not found"
        case let .redeemMismatch(i): return "redeem for \(i) does not name this payment"
        case let .invalidAncestor(k): return "ancestor \(k) is invalid"
        }
    }
}

/// A client's reading side as a sans-I/O state machine: Q-RPC reads with write-back, and payment
/// validation in `certificate` or `closure` mode.
///
/// Q-RPC (PROTOCOL §5): ask the whole group; finish on a reply carrying a valid certificate or on W
/// matching verified votes (assembled into one); conclude "not found" after R = n + f + 1 − W
/// replies without either. f+1 matching votes are never enough. Before a value is returned it is
/// written back until W replicas hold it, so a later read cannot miss it.
public struct Reader {
    public enum Completion: Sendable {
        /// A Q-RPC finished: the certified record, or nil for "not found".
        case read(request: UInt64, key: Digest, record: StoredRecord?)
        /// A payment handed to `validate` was accepted or refused.
        case validated(key: Digest, result: Result<CertifiedPayment, ReaderError>)
    }

    struct ReadState {
        let type: RecordType
        let key: Digest
        let group: Group
        var replied: [ReplicaID] = []
        var votes: [VoteStatement: (value: VotedValue, votes: [Vote])] = [:]
        var found: StoredRecord?
        /// Replicas known to hold the certified record (replied with it, or acked write-back).
        var holders: [ReplicaID] = []
        var writtenBack: [ReplicaID] = []
    }

    enum Purpose {
        case plain
        case parent(child: Digest)
        case redeem(child: Digest, input: InputRef)
    }

    struct ClosureNode {
        let record: CertifiedPayment
        var waiting: Int
        var dependents: [Digest] = []
        var redeems: [InputRef: Redeem] = [:]
        var isRoot = false
    }

    public let context: ProtocolContext
    public let meter: CryptoMeter
    public let mode: ValidationMode
    public let retryInterval: UInt64
    /// Token of this reader's retry timer, chosen by the host.
    public let timerToken: UInt64

    private var nextRequest: UInt64 = 1
    private var reads: [UInt64: ReadState] = [:]
    private var purposes: [UInt64: Purpose] = [:]
    private var timerArmed = false
    private var verifiedPayments: Set<Digest> = []
    /// Payments whose whole history was validated (closure mode), genesis included.
    public private(set) var validated: Set<Digest> = []
    private var known: [Digest: CertifiedPayment] = [:]
    private var pending: [Digest: ClosureNode] = [:]
    private var completions: [Completion] = []

    public init(context: ProtocolContext, meter: CryptoMeter, mode: ValidationMode, retryInterval: UInt64,
                timerToken: UInt64 = 0) {
        self.context = context
        self.meter = meter
        self.mode = mode
        self.retryInterval = max(1, retryInterval)
        self.timerToken = timerToken
    }

    /// Q-RPCs still running.
    public var outstandingReads: Int { reads.count }

    // MARK: Q-RPC

    /// Starts a Q-RPC for (type, key) at `group`; returns its request number.
    public mutating func read(_ type: RecordType, key: Digest, at group: Group, now: UInt64, into out: inout Outbox) -> UInt64 {
        startRead(type, key: key, at: group, purpose: .plain, now: now, into: &out)
    }

    private mutating func startRead(_ type: RecordType, key: Digest, at group: Group, purpose: Purpose, now: UInt64,
                                    into out: inout Outbox) -> UInt64 {
        let request = nextRequest
        nextRequest &+= 1
        reads[request] = ReadState(type: type, key: key, group: group)
        purposes[request] = purpose
        out.send(.read(type, key: key, request: request), to: group.members)
        armTimer(now: now, into: &out)
        return request
    }

    public mutating func receive(_ message: Message, from sender: NodeID, now: UInt64, into out: inout Outbox) -> [Completion] {
        switch message {
        case let .readReply(request, result):
            readReply(request, result, from: sender.raw, now: now, into: &out)
        case let .ack(key) where !reads.isEmpty:
            // Every ack a payer gets comes here; sorting even an empty key set allocates.
            for request in reads.keys.sorted() where reads[request]?.key == key {
                guard var state = reads[request], state.found != nil, state.writtenBack.contains(sender.raw),
                      !state.holders.contains(sender.raw) else { continue }
                state.holders.append(sender.raw)
                reads[request] = state
                finishIfDone(request, now: now, into: &out)
            }
        default:
            break
        }
        defer { completions.removeAll() }
        return completions
    }

    /// The retry timer: re-ask members that have not replied, re-send write-backs not acknowledged.
    public mutating func timerFired(token: UInt64, now: UInt64, into out: inout Outbox) {
        guard token == timerToken else { return }
        timerArmed = false
        for request in reads.keys.sorted() {
            guard let state = reads[request] else { continue }
            for member in state.group.members where !state.replied.contains(member) {
                out.send(.read(state.type, key: state.key, request: request), to: NodeID(replica: member))
            }
            if let record = state.found {
                for member in state.writtenBack where !state.holders.contains(member) {
                    out.send(.commit([record]), to: NodeID(replica: member))
                }
            }
        }
        armTimer(now: now, into: &out)
    }

    private mutating func armTimer(now: UInt64, into out: inout Outbox) {
        guard !timerArmed, !reads.isEmpty else { return }
        timerArmed = true
        out.setTimer(at: now &+ retryInterval, token: timerToken)
    }

    private mutating func readReply(_ request: UInt64, _ result: ReadResult, from replica: ReplicaID, now: UInt64,
                                    into out: inout Outbox) {
        guard var state = reads[request], state.group.contains(replica), !state.replied.contains(replica) else { return }
        state.replied.append(replica)
        var holds = false
        switch result {
        case let .certified(record):
            if let found = state.found {
                holds = record == found
            } else if record.key == state.key, matches(record, state.type),
                      (try? context.verify(record, meter: meter, verified: &verifiedPayments)) != nil {
                state.found = record
                holds = true
            }
        case let .vote(value, statement, vote):
            guard state.found == nil, vote.replica == replica, statement.key == state.key,
                  consistent(value, statement, state) else { break }
            do { try context.verify(vote, on: statement, group: state.group, meter: meter) } catch { break }
            var entry = state.votes[statement] ?? (value, [])
            entry.votes.append(vote)
            state.votes[statement] = entry
            if entry.votes.count >= context.quorum.writeQuorum {
                state.found = assemble(value, Certificate(statement: statement, votes: entry.votes))
            }
        case .notFound:
            break
        }
        if holds { state.holders.append(replica) }
        if let record = state.found {
            // Write back to every replier that lacks the record (PROTOCOL §5).
            for member in state.replied where !state.holders.contains(member) && !state.writtenBack.contains(member) {
                state.writtenBack.append(member)
                out.send(.commit([record]), to: NodeID(replica: member))
            }
        }
        reads[request] = state
        finishIfDone(request, now: now, into: &out)
    }

    private func matches(_ record: StoredRecord, _ type: RecordType) -> Bool {
        switch record {
        case .payment: return type != .redeem
        case .redeem: return type == .redeem
        }
    }

    /// A vote's statement must be about the value it comes with, in the group being read.
    private func consistent(_ value: VotedValue, _ statement: VoteStatement, _ state: ReadState) -> Bool {
        guard statement.networkId == context.networkId, statement.epoch == context.epoch,
              statement.group == state.group.id else { return false }
        switch value {
        case let .payment(p):
            return state.type != .redeem && statement.type != .redeem && p.key == state.key && statement.valueHash == p.key
                && context.group(of: p.payer) == state.group
        case let .redeem(r):
            return state.type == .redeem && statement.type == .redeem && r.key == state.key
                && statement.valueHash == r.valueHash && context.group(of: r.owner) == state.group
        }
    }

    private func assemble(_ value: VotedValue, _ certificate: Certificate) -> StoredRecord {
        switch value {
        case let .payment(p): return .payment(CertifiedPayment(payment: p, proof: .certificate(certificate)))
        case let .redeem(r): return .redeem(CertifiedRedeem(redeem: r, proof: .certificate(certificate)))
        }
    }

    private mutating func finishIfDone(_ request: UInt64, now: UInt64, into out: inout Outbox) {
        guard let state = reads[request] else { return }
        let outcome: StoredRecord?
        if let record = state.found {
            guard state.holders.count >= context.quorum.writeQuorum else { return }
            outcome = record
        } else {
            guard state.replied.count >= context.quorum.readQuorum else { return }
            outcome = nil
        }
        reads[request] = nil
        let purpose = purposes.removeValue(forKey: request) ?? .plain
        switch purpose {
        case .plain:
            completions.append(.read(request: request, key: state.key, record: outcome))
        case let .parent(child):
            parentRead(outcome, key: state.key, child: child, now: now, into: &out)
        case let .redeem(child, input):
            redeemRead(outcome, input: input, child: child)
        }
    }

    // MARK: Validation

    /// Validates a payment handed to this reader with the certified parents of its inputs.
    /// Certificate mode answers at once; closure mode may read missing history first. The answer
    /// comes back as a `.validated` completion (from this call or a later `receive`).
    public mutating func validate(_ record: CertifiedPayment, parents: [CertifiedPayment], now: UInt64,
                                  into out: inout Outbox) -> [Completion] {
        defer { completions.removeAll() }
        switch mode {
        case .certificate:
            completions.append(.validated(key: record.key, result: checkDirect(record, parents: parents)))
        case .closure:
            for parent in parents { known[parent.key] = parent }
            begin(record, dependent: nil, root: true, now: now, into: &out)
        }
        return completions
    }

    private mutating func checkDirect(_ record: CertifiedPayment, parents: [CertifiedPayment]) -> Result<CertifiedPayment, ReaderError> {
        do {
            try context.verify(record, meter: meter, verified: &verifiedPayments)
        } catch { return .failure(.record(.certificate(error))) }
        if case .genesis = record.proof { return .success(record) }
        for parent in parents where record.payment.inputs.contains(where: { $0.parentKey == parent.key }) {
            do { try context.verify(parent, meter: meter, verified: &verifiedPayments) } catch {
                return .failure(.record(.certificate(error)))
            }
        }
        do {
            try context.checkShape(record.payment, meter: meter)
            // Every parent an input names was verified just above.
            try context.rules.checkBalance(record.payment) { CertifiedPayment.parent($0, in: parents) }
        } catch { return .failure(.ledger(error)) }
        return .success(record)
    }

    /// Closure mode: start validating `record` (reading its parents and redeems) unless known.
    private mutating func begin(_ record: CertifiedPayment, dependent: Digest?, root: Bool, now: UInt64, into out: inout Outbox) {
        let key = record.key
        if validated.contains(key) {
            if root { completions.append(.validated(key: key, result: .success(record))) }
            if let d = dependent { dependencyDone(d) }
            return
        }
        if pending[key] != nil {
            if let d = dependent { pending[key]?.dependents.append(d) }
            if root { pending[key]?.isRoot = true }
            return
        }
        do { try context.verify(record, meter: meter, verified: &verifiedPayments) } catch {
            return failed(key, .record(.certificate(error)), root: root, dependent: dependent)
        }
        known[key] = record
        if case .genesis = record.proof {
            validated.insert(key)
            if root { completions.append(.validated(key: key, result: .success(record))) }
            if let d = dependent { dependencyDone(d) }
            return
        }
        do { try context.checkShape(record.payment, meter: meter) } catch {
            return failed(key, .ledger(error), root: root, dependent: dependent)
        }
        let inputs = record.payment.inputs
        let parentKeys = Array(Set(inputs.map(\.parentKey))).sorted()
        var node = ClosureNode(record: record, waiting: parentKeys.count + inputs.count)
        node.isRoot = root
        if let d = dependent { node.dependents.append(d) }
        pending[key] = node
        // The payer's group holds this payment's redeems and (cached from its Prepare) its parents.
        let group = context.group(of: record.payment.payer)
        for input in inputs {
            _ = startRead(.redeem, key: input.redeemKey, at: group, purpose: .redeem(child: key, input: input), now: now, into: &out)
        }
        for parentKey in parentKeys {
            if let parent = known[parentKey] {
                begin(parent, dependent: key, root: false, now: now, into: &out)
            } else {
                _ = startRead(.payment, key: parentKey, at: group, purpose: .parent(child: key), now: now, into: &out)
            }
        }
    }

    private mutating func parentRead(_ record: StoredRecord?, key: Digest, child: Digest, now: UInt64, into out: inout Outbox) {
        guard pending[child] != nil else { return }
        guard case let .payment(parent)? = record, parent.key == key else {
            return failed(child, .missing(.payment, key), root: false, dependent: nil)
        }
        begin(parent, dependent: child, root: false, now: now, into: &out)
    }

    private mutating func redeemRead(_ record: StoredRecord?, input: InputRef, child: Digest) {
        guard pending[child] != nil else { return }
        guard case let .redeem(certified)? = record, certified.redeem.input == input,
              certified.redeem.spender == child else {
            return failed(child, record == nil ? .missing(.redeem, input.redeemKey) : .redeemMismatch(input), root: false, dependent: nil)
        }
        pending[child]?.redeems[input] = certified.redeem
        dependencyDone(child)
    }

    private mutating func dependencyDone(_ key: Digest) {
        guard var node = pending[key] else { return }
        node.waiting -= 1
        pending[key] = node
        guard node.waiting == 0 else { return }
        // All parents validated and all redeems read: check balance, ownership and each redeem.
        let payment = node.record.payment
        do throws(ValidationError) {
            try context.rules.checkBalance(payment) { known[$0]?.payment }
            for input in payment.inputs {
                guard let redeem = node.redeems[input], let parent = known[input.parentKey] else { throw ValidationError.missingRedeem(input) }
                try context.checkRedeem(redeem, parent: parent.payment, meter: meter)
            }
        } catch {
            return failed(key, .ledger(error), root: node.isRoot, dependent: nil)
        }
        pending[key] = nil
        validated.insert(key)
        if node.isRoot { completions.append(.validated(key: key, result: .success(node.record))) }
        for d in node.dependents { dependencyDone(d) }
    }

    private mutating func failed(_ key: Digest, _ error: ReaderError, root: Bool, dependent: Digest?) {
        let node = pending.removeValue(forKey: key)
        if root || node?.isRoot == true { completions.append(.validated(key: key, result: .failure(error))) }
        var dependents = node?.dependents ?? []
        if let d = dependent { dependents.append(d) }
        for d in dependents where pending[d] != nil { failed(d, .invalidAncestor(key), root: false, dependent: nil) }
    }
}
