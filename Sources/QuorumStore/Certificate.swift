import QuorumCrypto
import QuorumLedger

/// What a vote or certificate is about.
public enum RecordType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A payment certified in the per-record variant (its redeems were certified first).
    case payment = 1
    /// A redeem record certified on its own.
    case redeem = 2
    /// A payment and all its redeems certified by one vote (the `batched` variant).
    case batch = 3

    public var description: String {
        switch self {
        case .payment: return "payment"
        case .redeem: return "redeem"
        case .batch: return "batch"
        }
    }
}

/// The statement a replica signs when it votes: bound to network id, epoch, group, record type,
/// key and value hash (PROTOCOL §1), so a vote cannot be replayed anywhere else.
///
/// A value type whose 81 bytes of fields live in one shared immutable box: statements travel in
/// every vote and certificate, so copies are a reference, and a setter makes a new box.
public struct VoteStatement: Hashable, Sendable {
    final class Box: Sendable {
        let networkId: UInt32, epoch: UInt32, group: GroupID, type: RecordType, key: Digest, valueHash: Digest
        init(_ networkId: UInt32, _ epoch: UInt32, _ group: GroupID, _ type: RecordType, _ key: Digest, _ valueHash: Digest) {
            self.networkId = networkId; self.epoch = epoch; self.group = group
            self.type = type; self.key = key; self.valueHash = valueHash
        }
    }
    private var box: Box
    /// The box's address, for tests of the simulator's prefetch hints.
    var boxAddress: UnsafeRawPointer { UnsafeRawPointer(Unmanaged.passUnretained(box).toOpaque()) }

    public init(networkId: UInt32, epoch: UInt32, group: GroupID, type: RecordType, key: Digest, valueHash: Digest) {
        box = Box(networkId, epoch, group, type, key, valueHash)
    }

    public var networkId: UInt32 {
        get { box.networkId }
        set { box = Box(newValue, box.epoch, box.group, box.type, box.key, box.valueHash) }
    }
    public var epoch: UInt32 {
        get { box.epoch }
        set { box = Box(box.networkId, newValue, box.group, box.type, box.key, box.valueHash) }
    }
    public var group: GroupID {
        get { box.group }
        set { box = Box(box.networkId, box.epoch, newValue, box.type, box.key, box.valueHash) }
    }
    public var type: RecordType {
        get { box.type }
        set { box = Box(box.networkId, box.epoch, box.group, newValue, box.key, box.valueHash) }
    }
    public var key: Digest {
        get { box.key }
        set { box = Box(box.networkId, box.epoch, box.group, box.type, newValue, box.valueHash) }
    }
    public var valueHash: Digest {
        get { box.valueHash }
        set { box = Box(box.networkId, box.epoch, box.group, box.type, box.key, newValue) }
    }

    public static func == (a: VoteStatement, b: VoteStatement) -> Bool {
        a.box === b.box || (a.key == b.key && a.valueHash == b.valueHash && a.type == b.type && a.group == b.group
                            && a.epoch == b.epoch && a.networkId == b.networkId)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(key)
        hasher.combine(valueHash)
    }

    public static let encodedSize = 4 + 4 + 8 + 1 + 32 + 32

    public func encode<W: ByteSink>(into w: inout W) {
        let b = box
        VoteStatement.encode(b.networkId, b.epoch, b.group, b.type, b.key, b.valueHash, into: &w)
    }

    /// A statement's fields in canonical order: what `encode` writes, and what a certificate,
    /// which keeps the fields inline, writes without building a statement.
    static func encode<W: ByteSink>(_ networkId: UInt32, _ epoch: UInt32, _ group: GroupID, _ type: RecordType,
                                    _ key: Digest, _ valueHash: Digest, into w: inout W) {
        w.append(networkId)
        w.append(epoch)
        w.append(group.raw)
        w.append(type.rawValue)
        w.append(key)
        w.append(valueHash)
    }

    public static func decode(from r: inout ByteReader) throws(DecodingError) -> VoteStatement {
        let networkId = try r.u32("statement.networkId")
        let epoch = try r.u32("statement.epoch")
        let group = GroupID(raw: try r.u64("statement.group"))
        let tag = try r.u8("statement.type")
        guard let type = RecordType(rawValue: tag) else { throw .unknownTag(field: "statement.type", value: tag) }
        let key = try r.bytes32("statement.key")
        let valueHash = try r.bytes32("statement.valueHash")
        return VoteStatement(networkId: networkId, epoch: epoch, group: group, type: type, key: key, valueHash: valueHash)
    }

    /// The bytes a replica signs: `len ‖ "qc/vote" ‖ statement`.
    public var signingMessage: [UInt8] { withSigningMessage { Array($0) } }

    /// `signingMessage` in a stack buffer, handed to `use` (what voting and checks use).
    public func withSigningMessage<R>(_ use: (UnsafeRawBufferPointer) -> R) -> R {
        ByteWriter.withFixed(tag: .vote, bodyBytes: VoteStatement.encodedSize, { encode(into: &$0) }, use)
    }
}

/// One replica's signature on a statement.
public struct Vote: Hashable, Sendable {
    public var replica: ReplicaID
    /// Packed: a vote message's box and a writer's list of votes hold 24 bytes for a modelled
    /// signature rather than 64 (a vote box of one cache line, not two, read by the writer on
    /// every vote of a large run).
    private var packed: PackedSignature
    public var signature: Signature {
        get { packed.signature }
        set { packed = PackedSignature(newValue) }
    }
    public init(replica: ReplicaID, signature: Signature) {
        self.replica = replica
        self.packed = PackedSignature(signature)
    }
    public static func == (a: Vote, b: Vote) -> Bool { a.replica == b.replica && a.signature == b.signature }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(replica)
        hasher.combine(signature)
    }
}

/// ≥ W votes from distinct members of the right group on one statement. A value type over a
/// shared immutable buffer: the replicas that store a record share its certificate. (Sendable
/// because the buffer is written once, when made, and never mutated: `ManagedBuffer` itself is
/// not `Sendable`.)
public struct Certificate: Hashable, @unchecked Sendable {
    /// The statement's fields inline (a separate statement box would be a second heap block and
    /// a second cache line to reach on every check), the vote count and layout, and the cache mark.
    struct Header {
        let networkId: UInt32
        let epoch: UInt32
        let group: GroupID
        let type: RecordType
        /// Words each vote takes in the buffer: `Storage.fullWords` or `Storage.shortWords`.
        let wordsPerVote: UInt8
        /// Votes held (a buffer of 2^32 votes could not be allocated).
        let count: UInt32
        let key: Digest
        let valueHash: Digest
        /// The serial of the `ProtocolContext` that found every vote's signature valid over
        /// the statement (0: none yet), its top bit set once a full check also found the
        /// certificate valid for its payment's payer (`ProtocolContext.payerGroupChecked`).
        /// Contents never change, so a second check of the same certificate in that context need
        /// not verify them again (see `ProtocolContext.verify`).
        var signaturesValidIn: UInt64 = 0

        var statement: VoteStatement {
            VoteStatement(networkId: networkId, epoch: epoch, group: group, type: type, key: key, valueHash: valueHash)
        }

        func sameStatement(as other: Header) -> Bool {
            key == other.key && valueHash == other.valueHash && type == other.type && group == other.group
                && epoch == other.epoch && networkId == other.networkId
        }

        /// The statement's canonical encoding (as `VoteStatement.encode`), from the fields inline.
        func encodeStatement<W: ByteSink>(into w: inout W) {
            VoteStatement.encode(networkId, epoch, group, type, key, valueHash, into: &w)
        }

        /// The bytes a replica signs for this statement (as `VoteStatement.withSigningMessage`).
        func withSigningMessage<R>(_ use: (UnsafeRawBufferPointer) -> R) -> R {
            ByteWriter.withFixed(tag: .vote, bodyBytes: VoteStatement.encodedSize, { encodeStatement(into: &$0) }, use)
        }
    }

    /// The statement and its votes in one allocation. A million-payment run holds 2.2 million
    /// certificates; a separate vote array would add a 32-byte header and a heap block to each.
    ///
    /// A vote is stored as words: the replica, then the signature's eight words, or, when the
    /// last 48 bytes of every signature are zero (the modelled scheme's 16-byte MACs), just the
    /// first two. Both forms read back the same `Vote`s; the short one holds three votes in 72
    /// bytes instead of 216 (about 300 bytes less per payment of a modelled-crypto run).
    final class Storage: ManagedBuffer<Header, UInt64> {
        static let fullWords = 9
        static let shortWords = 3

        static func make<C: Collection<Vote>>(_ statement: VoteStatement, _ votes: C) -> Storage {
            let count = votes.count
            let short = votes.allSatisfy { $0.signature.isHeadOnly }
            let per = short ? shortWords : fullWords
            let storage = unsafeDowncast(Storage.create(minimumCapacity: count * per) { _ in
                Header(networkId: statement.networkId, epoch: statement.epoch, group: statement.group, type: statement.type,
                       wordsPerVote: UInt8(per), count: UInt32(truncatingIfNeeded: count), key: statement.key,
                       valueHash: statement.valueHash)
            }, to: Storage.self)
            storage.withUnsafeMutablePointerToElements { elements in
                for (i, vote) in zip(0..<count, votes) {
                    let at = elements + i * per
                    let r = vote.signature.r.words
                    at.initialize(to: UInt64(vote.replica))
                    (at + 1).initialize(to: r.0)
                    (at + 2).initialize(to: r.1)
                    guard !short else { continue }
                    let s = vote.signature.s.words
                    (at + 3).initialize(to: r.2)
                    (at + 4).initialize(to: r.3)
                    (at + 5).initialize(to: s.0)
                    (at + 6).initialize(to: s.1)
                    (at + 7).initialize(to: s.2)
                    (at + 8).initialize(to: s.3)
                }
            }
            return storage
        }

        /// The replica of vote `i` (the caller checks `i < count`): its first word, without
        /// rebuilding the signature.
        @inline(__always) func replica(_ i: Int) -> ReplicaID {
            withUnsafeMutablePointers { header, elements in
                ReplicaID(truncatingIfNeeded: elements[i * Int(header.pointee.wordsPerVote)])
            }
        }

        /// Vote `i` (the caller checks `i < count`).
        @inline(__always) func vote(_ i: Int) -> Vote {
            withUnsafeMutablePointers { header, elements in
                let per = Int(header.pointee.wordsPerVote)
                let at = elements + i * per
                let replica = ReplicaID(truncatingIfNeeded: at[0])
                if per == Storage.shortWords { return Vote(replica: replica, signature: Signature(head: (at[1], at[2]))) }
                return Vote(replica: replica, signature: Signature(r: Bytes32(words: (at[1], at[2], at[3], at[4])),
                                                                  s: Bytes32(words: (at[5], at[6], at[7], at[8]))))
            }
        }
    }
    private var storage: Storage
    /// The shared buffer's identity (see `StoredRecord.identity`).
    var storageIdentity: ObjectIdentifier { ObjectIdentifier(storage) }

    public init(statement: VoteStatement, votes: [Vote]) {
        storage = .make(statement, votes)
    }

    /// The statement, built from the fields the buffer holds (checks read `header` instead).
    public var statement: VoteStatement {
        get { header.statement }
        set { storage = .make(newValue, voteList) }
    }

    /// The record type certified (what a batch proof checks without building the statement).
    public var statementType: RecordType { storage.withUnsafeMutablePointerToHeader { $0.pointee.type } }

    /// The statement's fields, vote count and cache mark, copied out. Through the header pointer:
    /// `ManagedBuffer.header` is a class property, and each read of it paid a dynamic exclusivity
    /// check (swift_beginAccess).
    var header: Header { storage.withUnsafeMutablePointerToHeader { $0.pointee } }

    /// Serial of the context in which all signatures were found valid (0: none). One aligned word:
    /// a race between threads sharing a certificate can only cause a redundant verification.
    var signaturesValidIn: UInt64 {
        get { storage.withUnsafeMutablePointerToHeader { $0.pointee.signaturesValidIn } }
        nonmutating set { storage.withUnsafeMutablePointerToHeader { $0.pointee.signaturesValidIn = newValue } }
    }

    /// Words per stored vote: 3 when every signature's last 48 bytes are zero, else 9.
    var wordsPerVote: Int { storage.withUnsafeMutablePointerToHeader { Int($0.pointee.wordsPerVote) } }

    /// The votes, read in place (no copy): what verification and encoding use.
    public var voteList: VoteList { VoteList(storage: storage) }

    /// The votes as an array (a copy; setting it makes a new certificate buffer).
    public var votes: [Vote] {
        get { Array(voteList) }
        set { storage = .make(statement, newValue) }
    }

    /// A certificate's votes, in order, without copying them out of its buffer.
    public struct VoteList: RandomAccessCollection, @unchecked Sendable {
        let storage: Storage
        public var startIndex: Int { 0 }
        public var endIndex: Int { storage.withUnsafeMutablePointerToHeader { Int($0.pointee.count) } }
        public subscript(position: Int) -> Vote {
            precondition(position >= 0 && position < endIndex, "vote index out of range")
            return storage.vote(position)
        }

        /// `self[position].replica`, read without the signature (what signer checks need).
        public func replica(at position: Int) -> ReplicaID {
            precondition(position >= 0 && position < endIndex, "vote index out of range")
            return storage.replica(position)
        }
    }

    public static func == (a: Certificate, b: Certificate) -> Bool {
        a.storage === b.storage || (a.header.sameStatement(as: b.header) && a.voteList.elementsEqual(b.voteList))
    }

    public func hash(into hasher: inout Hasher) {
        let h = header
        hasher.combine(h.key)
        hasher.combine(h.valueHash)
        hasher.combine(voteList.count)
    }

    /// Votes a certificate may carry at most (also the decoder's cap): a group has ≤ 255 members.
    public static let maxVotes = 255

    public var encodedSize: Int { VoteStatement.encodedSize + 1 + voteList.count * (4 + 64) }

    public func encode(into w: inout ByteWriter) {
        header.encodeStatement(into: &w)
        let votes = voteList
        w.append(UInt8(truncatingIfNeeded: votes.count))
        for v in votes {
            w.append(v.replica)
            w.append(v.signature)
        }
    }

    public static func decode(from r: inout ByteReader) throws(DecodingError) -> Certificate {
        let statement = try VoteStatement.decode(from: &r)
        let count = Int(try r.u8("certificate.votes"))
        var votes = [Vote]()
        votes.reserveCapacity(count)
        for _ in 0..<count {
            let replica = try r.u32("certificate.vote.replica")
            let signature = try r.signature("certificate.vote.signature")
            votes.append(Vote(replica: replica, signature: signature))
        }
        return Certificate(statement: statement, votes: votes)
    }
}

/// Why a certificate is not acceptable. Each case says which check failed.
public enum CertificateError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooFewVotes(have: Int, need: Int)
    case tooManyVotes(have: Int, groupSize: Int)
    case duplicateSigner(ReplicaID)
    case nonMember(ReplicaID)
    case wrongNetwork(UInt32)
    case wrongEpoch(UInt32)
    case wrongGroup(GroupID)
    case wrongType(RecordType)
    case wrongKey(Digest)
    case wrongValue(Digest)
    case badSignature(ReplicaID)
    /// A genesis proof for a record that is not a configured genesis payment.
    case notGenesis(Digest)

    public var description: String {
        switch self {
        case let .tooFewVotes(h, n): return "certificate has \(h) votes, needs \(n)"
        case let .tooManyVotes(h, g): return "certificate has \(h) votes for a group of \(g)"
        case let .duplicateSigner(r): return "replica \(r) signs twice"
        case let .nonMember(r): return "replica \(r) is not in the group"
        case let .wrongNetwork(n): return "certificate for network \(n)"
        case let .wrongEpoch(e): return "certificate for epoch \(e)"
        case let .wrongGroup(g): return "certificate from group \(g), not the record's group"
        case let .wrongType(t): return "certificate of type \(t) where another was required"
        case let .wrongKey(k): return "certificate for key \(k), not this record"
        case let .wrongValue(v): return "certificate for value \(v), not this record's"
        case let .badSignature(r): return "replica \(r)'s signature does not verify"
        case let .notGenesis(k): return "record \(k) claims genesis but is not configured"
        }
    }
}
