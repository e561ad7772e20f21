import QuorumCrypto
import QuorumLedger

/// Why a replica refused to vote.
public enum RejectReason: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// The key is locked to another value (an input already promised to another payment).
    case conflict = 1
    /// The record or one of its proofs is invalid.
    case invalid = 2
    /// This replica is not in the record's group.
    case notMember = 3

    public var description: String {
        switch self {
        case .conflict: return "conflict"
        case .invalid: return "invalid"
        case .notMember: return "not a member"
        }
    }
}

/// A value a replica has voted for but holds no certificate of.
public enum VotedValue: Hashable, Sendable {
    case payment(Payment)
    case redeem(Redeem)
}

/// A replica's answer to a Read.
public enum ReadResult: Hashable, Sendable {
    case certified(StoredRecord)
    /// The replica's own vote for the value it locked, so W of them can be assembled (PROTOCOL §5).
    case vote(VotedValue, VoteStatement, Vote)
    case notFound
}

/// Everything replicas and clients send each other (PROTOCOL §3–§5).
///
/// Every case whose payload is wider than one reference is `indirect`, so a message is one
/// pointer (8 bytes) wherever it is queued or copied: a queued event is 32 bytes, not 64. A
/// message sent to a whole group is one box shared by every copy.
public enum Message: Hashable, Sendable {
    /// Per-record step 1: lock a redeem; the parent payment and its proof come along.
    indirect case prepareRedeem(Redeem, parent: CertifiedPayment)
    /// Per-record step 2: vote for a payment whose redeems are certified.
    indirect case preparePayment(Payment, parents: [CertifiedPayment], redeems: [CertifiedRedeem])
    /// The `batched` variant: lock every input and vote for the payment at once.
    indirect case prepareBatch(Payment, parents: [CertifiedPayment], redeems: [Redeem])
    indirect case vote(VoteStatement, Vote)
    indirect case reject(RecordType, key: Digest, reason: RejectReason)
    /// Store certified records (one record, or a batched payment with its redeems).
    case commit([StoredRecord])
    indirect case ack(Digest)
    indirect case read(RecordType, key: Digest, request: UInt64)
    indirect case readReply(request: UInt64, ReadResult)
    /// Repair: "I hold these certified records of our group" (sequence-numbered batch).
    indirect case repairOffer(sequence: UInt64, keys: [Digest])
    /// Repair: acknowledges an offer and names the keys the sender lacks.
    indirect case repairRequest(sequence: UInt64, missing: [Digest])
    /// Repair: certified records pushed to a group peer (no ack).
    case gossip([StoredRecord])
    /// Step 3: the payer hands a certified payment and its certified parents to a payee.
    indirect case handOver(CertifiedPayment, parents: [CertifiedPayment])

    /// A short name for metrics and logs.
    public var kind: String {
        switch self {
        case .prepareRedeem: return "prepareRedeem"
        case .preparePayment: return "preparePayment"
        case .prepareBatch: return "prepareBatch"
        case .vote: return "vote"
        case .reject: return "reject"
        case .commit: return "commit"
        case .ack: return "ack"
        case .read: return "read"
        case .readReply: return "readReply"
        case .repairOffer: return "repairOffer"
        case .repairRequest: return "repairRequest"
        case .gossip: return "gossip"
        case .handOver: return "handOver"
        }
    }

    public static let kinds = ["prepareRedeem", "preparePayment", "prepareBatch", "vote", "reject", "commit",
                               "ack", "read", "readReply", "repairOffer", "repairRequest", "gossip", "handOver"]
    /// `kinds.count`, as a constant: counting tables are built by each thread of a partitioned
    /// run, and reading the shared `kinds` array from several threads at once would race on its
    /// (non-atomic, in release builds) reference count.
    public static let kindCount = 13
}

/// Caps on decoded messages: every count is checked before anything is allocated for it.
public struct MessageLimits: Sendable, Hashable {
    public var ledger: LedgerLimits
    /// Records in one commit or gossip message.
    public var maxRecords: Int
    /// Keys in one repair offer or request.
    public var maxRepairKeys: Int

    public init(ledger: LedgerLimits = .standard, maxRecords: Int = 64, maxRepairKeys: Int = 256) {
        self.ledger = ledger
        self.maxRecords = maxRecords
        self.maxRepairKeys = maxRepairKeys
    }
    public static let standard = MessageLimits()

    /// Largest encoding accepted before decoding starts (oversized inputs are refused unread).
    public var maxMessageBytes: Int { 1 << 20 }
}

// MARK: - Canonical encoding

extension Message {
    static let version: UInt8 = 1

    private var tag: UInt8 {
        switch self {
        case .prepareRedeem: return 1
        case .preparePayment: return 2
        case .prepareBatch: return 3
        case .vote: return 4
        case .reject: return 5
        case .commit: return 6
        case .ack: return 7
        case .read: return 8
        case .readReply: return 9
        case .repairOffer: return 10
        case .repairRequest: return 11
        case .gossip: return 12
        case .handOver: return 13
        }
    }

    /// version u8 ‖ tag u8 ‖ fields. Lists carry a u16 count.
    public func encode(into w: inout ByteWriter) {
        w.append(Message.version)
        w.append(tag)
        switch self {
        case let .prepareRedeem(redeem, parent):
            redeem.encode(into: &w)
            parent.encode(into: &w)
        case let .preparePayment(payment, parents, redeems):
            payment.encode(into: &w)
            w.appendList(parents) { $1.encode(into: &$0) }
            w.appendList(redeems) { $1.encode(into: &$0) }
        case let .prepareBatch(payment, parents, redeems):
            payment.encode(into: &w)
            w.appendList(parents) { $1.encode(into: &$0) }
            w.appendList(redeems) { $1.encode(into: &$0) }
        case let .vote(statement, vote):
            statement.encode(into: &w)
            w.append(vote.replica)
            w.append(vote.signature)
        case let .reject(type, key, reason):
            w.append(type.rawValue)
            w.append(key)
            w.append(reason.rawValue)
        case let .commit(records), let .gossip(records):
            w.appendList(records) { $1.encode(into: &$0) }
        case let .ack(key):
            w.append(key)
        case let .read(type, key, request):
            w.append(type.rawValue)
            w.append(key)
            w.append(request)
        case let .readReply(request, result):
            w.append(request)
            result.encode(into: &w)
        case let .repairOffer(sequence, keys), let .repairRequest(sequence, keys):
            w.append(sequence)
            w.appendList(keys) { $0.append($1) }
        case let .handOver(payment, parents):
            payment.encode(into: &w)
            w.appendList(parents) { $1.encode(into: &$0) }
        }
    }

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: encodedSize)
        encode(into: &w)
        return w.bytes
    }

    /// Bytes on the wire, computed without encoding (used for bandwidth and metrics).
    public var encodedSize: Int {
        let body: Int
        switch self {
        case let .prepareRedeem(_, parent):
            body = Redeem.encodedSize + parent.encodedSize
        case let .preparePayment(payment, parents, redeems):
            body = payment.encodedSize + 2 + parents.reduce(0) { $0 + $1.encodedSize } + 2 + redeems.reduce(0) { $0 + $1.encodedSize }
        case let .prepareBatch(payment, parents, redeems):
            body = payment.encodedSize + 2 + parents.reduce(0) { $0 + $1.encodedSize } + 2 + redeems.count * Redeem.encodedSize
        case .vote:
            body = VoteStatement.encodedSize + 4 + 64
        case .reject:
            body = 1 + 32 + 1
        case let .commit(records), let .gossip(records):
            body = 2 + records.reduce(0) { $0 + $1.encodedSize }
        case .ack:
            body = 32
        case .read:
            body = 1 + 32 + 8
        case let .readReply(_, result):
            body = 8 + result.encodedSize
        case let .repairOffer(_, keys), let .repairRequest(_, keys):
            body = 8 + 2 + 32 * keys.count
        case let .handOver(payment, parents):
            body = payment.encodedSize + 2 + parents.reduce(0) { $0 + $1.encodedSize }
        }
        return 2 + body
    }

    /// Decodes one message; any byte string yields a message or a `DecodingError`, never a trap.
    public static func decode(_ bytes: [UInt8], limits: MessageLimits = .standard) throws(DecodingError) -> Message {
        guard bytes.count <= limits.maxMessageBytes else {
            throw .tooMany(field: "message bytes", count: bytes.count, limit: limits.maxMessageBytes)
        }
        return try bytes.decode { (r: inout ByteReader) throws(DecodingError) in try decode(from: &r, limits: limits) }
    }

    public static func decode(from r: inout ByteReader, limits: MessageLimits) throws(DecodingError) -> Message {
        let version = try r.u8("message.version")
        guard version == Message.version else { throw .unknownVersion(version) }
        let tag = try r.u8("message.tag")
        let ledger = limits.ledger
        switch tag {
        case 1:
            let redeem = try Redeem.decode(from: &r)
            let parent = try CertifiedPayment.decode(from: &r, limits: ledger)
            return .prepareRedeem(redeem, parent: parent)
        case 2:
            let payment = try Payment.decode(from: &r, limits: ledger)
            let parents = try r.list("prepare.parents", limit: ledger.maxInputs) { (r: inout ByteReader) throws(DecodingError) in
                try CertifiedPayment.decode(from: &r, limits: ledger)
            }
            let redeems = try r.list("prepare.redeems", limit: ledger.maxInputs) { (r: inout ByteReader) throws(DecodingError) in
                try CertifiedRedeem.decode(from: &r, limits: ledger)
            }
            return .preparePayment(payment, parents: parents, redeems: redeems)
        case 3:
            let payment = try Payment.decode(from: &r, limits: ledger)
            let parents = try r.list("prepare.parents", limit: ledger.maxInputs) { (r: inout ByteReader) throws(DecodingError) in
                try CertifiedPayment.decode(from: &r, limits: ledger)
            }
            let redeems = try r.list("prepare.redeems", limit: ledger.maxInputs) { (r: inout ByteReader) throws(DecodingError) in
                try Redeem.decode(from: &r)
            }
            return .prepareBatch(payment, parents: parents, redeems: redeems)
        case 4:
            let statement = try VoteStatement.decode(from: &r)
            let replica = try r.u32("vote.replica")
            let signature = try r.signature("vote.signature")
            return .vote(statement, Vote(replica: replica, signature: signature))
        case 5:
            let type = try r.recordType("reject.type")
            let key = try r.bytes32("reject.key")
            let code = try r.u8("reject.reason")
            guard let reason = RejectReason(rawValue: code) else { throw .unknownTag(field: "reject.reason", value: code) }
            return .reject(type, key: key, reason: reason)
        case 6, 12:
            let records = try r.list("records", limit: limits.maxRecords) { (r: inout ByteReader) throws(DecodingError) in
                try StoredRecord.decode(from: &r, limits: ledger)
            }
            return tag == 6 ? .commit(records) : .gossip(records)
        case 7:
            return .ack(try r.bytes32("ack.key"))
        case 8:
            let type = try r.recordType("read.type")
            let key = try r.bytes32("read.key")
            let request = try r.u64("read.request")
            return .read(type, key: key, request: request)
        case 9:
            let request = try r.u64("readReply.request")
            return .readReply(request: request, try ReadResult.decode(from: &r, limits: ledger))
        case 10, 11:
            let sequence = try r.u64("repair.sequence")
            let keys = try r.list("repair.keys", limit: limits.maxRepairKeys) { (r: inout ByteReader) throws(DecodingError) in
                try r.bytes32("repair.key")
            }
            return tag == 10 ? .repairOffer(sequence: sequence, keys: keys) : .repairRequest(sequence: sequence, missing: keys)
        case 13:
            let payment = try CertifiedPayment.decode(from: &r, limits: ledger)
            let parents = try r.list("handOver.parents", limit: ledger.maxInputs) { (r: inout ByteReader) throws(DecodingError) in
                try CertifiedPayment.decode(from: &r, limits: ledger)
            }
            return .handOver(payment, parents: parents)
        default:
            throw .unknownTag(field: "message", value: tag)
        }
    }
}

extension CertifiedPayment {
    var encodedSize: Int {
        switch proof {
        case .genesis: return payment.encodedSize + 1
        case let .certificate(c): return payment.encodedSize + 1 + c.encodedSize
        }
    }

    func encode(into w: inout ByteWriter) {
        payment.encode(into: &w)
        switch proof {
        case .genesis:
            w.append(UInt8(0))
        case let .certificate(c):
            w.append(UInt8(1))
            c.encode(into: &w)
        }
    }

    static func decode(from r: inout ByteReader, limits: LedgerLimits) throws(DecodingError) -> CertifiedPayment {
        let payment = try Payment.decode(from: &r, limits: limits)
        let tag = try r.u8("paymentProof")
        switch tag {
        case 0: return CertifiedPayment(payment: payment, proof: .genesis)
        case 1: return CertifiedPayment(payment: payment, proof: .certificate(try Certificate.decode(from: &r)))
        default: throw .unknownTag(field: "paymentProof", value: tag)
        }
    }
}

extension CertifiedRedeem {
    var encodedSize: Int {
        switch proof {
        case let .certificate(c): return Redeem.encodedSize + 1 + c.encodedSize
        case let .batch(p): return Redeem.encodedSize + 1 + p.encodedSize
        }
    }

    func encode(into w: inout ByteWriter) {
        redeem.encode(into: &w)
        switch proof {
        case let .certificate(c):
            w.append(UInt8(1))
            c.encode(into: &w)
        case let .batch(p):
            w.append(UInt8(2))
            p.encode(into: &w)
        }
    }

    static func decode(from r: inout ByteReader, limits: LedgerLimits) throws(DecodingError) -> CertifiedRedeem {
        let redeem = try Redeem.decode(from: &r)
        let tag = try r.u8("redeemProof")
        switch tag {
        case 1: return CertifiedRedeem(redeem: redeem, proof: .certificate(try Certificate.decode(from: &r)))
        case 2: return CertifiedRedeem(redeem: redeem, proof: .batch(try CertifiedPayment.decode(from: &r, limits: limits)))
        default: throw .unknownTag(field: "redeemProof", value: tag)
        }
    }
}

extension StoredRecord {
    /// The canonical encoding of this record with its proof (the form `Message` carries).
    public func encodeRecord(into w: inout ByteWriter) { encode(into: &w) }

    /// Decodes one record with its proof (the inverse of `encodeRecord`).
    public static func decodeRecord(_ bytes: [UInt8], limits: LedgerLimits = .standard) throws(DecodingError) -> StoredRecord {
        try bytes.decode { (r: inout ByteReader) throws(DecodingError) in try decode(from: &r, limits: limits) }
    }

    var encodedSize: Int {
        switch self {
        case let .payment(p): return 1 + p.encodedSize
        case let .redeem(r): return 1 + r.encodedSize
        }
    }

    func encode(into w: inout ByteWriter) {
        switch self {
        case let .payment(p):
            w.append(UInt8(1))
            p.encode(into: &w)
        case let .redeem(r):
            w.append(UInt8(2))
            r.encode(into: &w)
        }
    }

    static func decode(from r: inout ByteReader, limits: LedgerLimits) throws(DecodingError) -> StoredRecord {
        let tag = try r.u8("record")
        switch tag {
        case 1: return .payment(try CertifiedPayment.decode(from: &r, limits: limits))
        case 2: return .redeem(try CertifiedRedeem.decode(from: &r, limits: limits))
        default: throw .unknownTag(field: "record", value: tag)
        }
    }
}

extension ReadResult {
    var encodedSize: Int {
        switch self {
        case .notFound: return 1
        case let .certified(record): return 1 + record.encodedSize
        case let .vote(value, _, _):
            let valueSize: Int
            switch value {
            case let .payment(p): valueSize = p.encodedSize
            case .redeem: valueSize = Redeem.encodedSize
            }
            return 1 + 1 + valueSize + VoteStatement.encodedSize + 4 + 64
        }
    }

    func encode(into w: inout ByteWriter) {
        switch self {
        case .notFound:
            w.append(UInt8(0))
        case let .certified(record):
            w.append(UInt8(1))
            record.encode(into: &w)
        case let .vote(value, statement, vote):
            w.append(UInt8(2))
            switch value {
            case let .payment(p):
                w.append(UInt8(1))
                p.encode(into: &w)
            case let .redeem(r):
                w.append(UInt8(2))
                r.encode(into: &w)
            }
            statement.encode(into: &w)
            w.append(vote.replica)
            w.append(vote.signature)
        }
    }

    static func decode(from r: inout ByteReader, limits: LedgerLimits) throws(DecodingError) -> ReadResult {
        let tag = try r.u8("readResult")
        switch tag {
        case 0:
            return .notFound
        case 1:
            return .certified(try StoredRecord.decode(from: &r, limits: limits))
        case 2:
            let valueTag = try r.u8("readResult.value")
            let value: VotedValue
            switch valueTag {
            case 1: value = .payment(try Payment.decode(from: &r, limits: limits))
            case 2: value = .redeem(try Redeem.decode(from: &r))
            default: throw .unknownTag(field: "readResult.value", value: valueTag)
            }
            let statement = try VoteStatement.decode(from: &r)
            let replica = try r.u32("readResult.vote.replica")
            let signature = try r.signature("readResult.vote.signature")
            return .vote(value, statement, Vote(replica: replica, signature: signature))
        default:
            throw .unknownTag(field: "readResult", value: tag)
        }
    }
}

extension ByteWriter {
    mutating func appendList<T>(_ items: [T], _ encode: (inout ByteWriter, T) -> Void) {
        append(UInt16(truncatingIfNeeded: items.count))
        for item in items { encode(&self, item) }
    }
}

extension ByteReader {
    mutating func list<T>(_ field: String, limit: Int,
                          _ element: (inout ByteReader) throws(DecodingError) -> T) throws(DecodingError) -> [T] {
        let n = try count(field, limit: limit)
        var items = [T]()
        items.reserveCapacity(n)
        for _ in 0..<n { items.append(try element(&self)) }
        return items
    }

    mutating func recordType(_ field: String) throws(DecodingError) -> RecordType {
        let tag = try u8(field)
        guard let type = RecordType(rawValue: tag) else { throw .unknownTag(field: field, value: tag) }
        return type
    }
}
