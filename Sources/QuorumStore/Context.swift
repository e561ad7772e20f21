import QuorumCrypto
import QuorumLedger
import Synchronization

/// Counts the cryptographic work one node performs, so a host can charge simulated CPU time.
/// Wraps the run's shared verifier (which may memoize): the count is per check, memo hit or not.
public final class CryptoMeter: SignatureVerifier {
    public let inner: SignatureVerifier
    // Counted on every signature check of a run: no dynamic exclusivity check (no access to
    // them overlaps another; the counters are never passed inout).
    @exclusivity(unchecked) public private(set) var verifies = 0
    @exclusivity(unchecked) public private(set) var signs = 0

    public init(_ inner: SignatureVerifier) { self.inner = inner }

    public func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool {
        verifies += 1
        return inner.isValid(signature, of: message, by: key)
    }

    public func isValid(_ signature: Signature, ofBytes message: UnsafeRawBufferPointer, by key: PublicKey) -> Bool {
        verifies += 1
        return inner.isValid(signature, ofBytes: message, by: key)
    }

    public func sign(_ message: [UInt8], with signer: any Signer) -> Signature {
        signs += 1
        return signer.sign(message)
    }

    public func sign(bytes message: UnsafeRawBufferPointer, with signer: any Signer) -> Signature {
        signs += 1
        return signer.sign(bytes: message)
    }

    /// Counts `count` checks whose result is already known (a certificate whose signatures this
    /// run has verified): the simulated CPU is charged as if they ran.
    public func charge(verifications count: Int) { verifies += count }

    /// The work done since the last call, and a reset.
    public func take() -> (verifies: Int, signs: Int) {
        defer { verifies = 0; signs = 0 }
        return (verifies, signs)
    }
}

/// How a payment is known to be certified.
public enum PaymentProof: Hashable, Sendable {
    /// One of the configured genesis payments: accepted by configuration.
    case genesis
    /// A certificate of type `payment` or `batch` over (K, K) from G(payer).
    case certificate(Certificate)
}

/// A payment with its proof.
public struct CertifiedPayment: Hashable, Sendable {
    public let payment: Payment
    public let proof: PaymentProof
    public init(payment: Payment, proof: PaymentProof) {
        self.payment = payment
        self.proof = proof
    }
    public var key: Digest { payment.key }

    /// The payment with `key` among `parents` (the last such, should a Byzantine sender attach
    /// two copies: equal keys mean equal bodies, so either serves), found by a scan rather than
    /// a dictionary built per check: a payment has at most `maxInputs` parents.
    @inlinable public static func parent(_ key: Digest, in parents: [CertifiedPayment]) -> Payment? {
        parents.last(where: { $0.payment.key == key })?.payment
    }
}

/// How a redeem is known to be certified.
public enum RedeemProof: Hashable, Sendable {
    /// A certificate of type `redeem` over (k, H("qc/rval", spender)) from G(owner).
    case certificate(Certificate)
    /// The `batched` variant: the spending payment's `batch` certificate, whose inputs include this
    /// redeem's output (one vote locked all inputs and the payment together). Boxed (`indirect`),
    /// so a proof is one word and a stored record two: a replica's store slot shrinks from 33 to
    /// 25 bytes, for a box allocated per batched redeem.
    indirect case batch(CertifiedPayment)
}

/// A redeem with its proof.
public struct CertifiedRedeem: Hashable, Sendable {
    public let redeem: Redeem
    public let proof: RedeemProof
    public init(redeem: Redeem, proof: RedeemProof) {
        self.redeem = redeem
        self.proof = proof
    }
    public var key: Digest { redeem.key }
}

/// A certified record as the key-value store holds it.
public enum StoredRecord: Hashable, Sendable {
    case payment(CertifiedPayment)
    case redeem(CertifiedRedeem)

    public var key: Digest {
        switch self {
        case let .payment(p): return p.key
        case let .redeem(r): return r.key
        }
    }

    /// The principal whose group holds this record: the payer, or the redeem's owner.
    public var principal: PublicKey {
        switch self {
        case let .payment(p): return p.payment.payer
        case let .redeem(r): return r.redeem.owner
        }
    }

    /// The objects this record is made of (its payment or redeem, its certificate's buffer, a
    /// batch proof's payment and certificate): two records with one identity are the same
    /// immutable objects, so a check of one holds for the other while both are alive. Reading it
    /// follows no reference.
    public var identity: Identity {
        switch self {
        case let .payment(p):
            return Identity(record: ObjectIdentifier(p.payment), proof: p.proof.storageIdentity, batchProof: nil)
        case let .redeem(r):
            switch r.proof {
            case let .certificate(c):
                return Identity(record: ObjectIdentifier(r.redeem), proof: c.storageIdentity, batchProof: nil)
            case let .batch(p):
                return Identity(record: ObjectIdentifier(r.redeem), proof: ObjectIdentifier(p.payment),
                                batchProof: p.proof.storageIdentity)
            }
        }
    }

    /// See `identity`. Hashed with the 64-bit mixer: its words are addresses. (A batch proof
    /// needs no flag: its `proof` is a payment, never a certificate buffer.)
    public struct Identity: Hashable, Sendable {
        let record: ObjectIdentifier
        /// The certificate's buffer, or a batch proof's payment.
        let proof: ObjectIdentifier?
        /// A batch proof's certificate buffer.
        let batchProof: ObjectIdentifier?

        public func _rawHashValue(seed: Int) -> Int {
            func word(_ o: ObjectIdentifier?) -> UInt64 { o.map { UInt64(UInt(bitPattern: $0)) } ?? 0 }
            var h = mix64(word(record) ^ UInt64(truncatingIfNeeded: seed))
            h = mix64(h ^ word(proof))
            h = mix64(h ^ word(batchProof))
            return Int(truncatingIfNeeded: h)
        }
    }
}

extension PaymentProof {
    /// The certificate's shared buffer; nil for genesis.
    var storageIdentity: ObjectIdentifier? {
        if case let .certificate(c) = self { return c.storageIdentity }
        return nil
    }
}

/// Why a certified record was refused.
public enum RecordError: Error, Equatable, Sendable, CustomStringConvertible {
    case certificate(CertificateError)
    case ledger(ValidationError)
    /// A batch proof whose payment is not the redeem's spender or does not spend its output.
    case batchMismatch

    public var description: String {
        switch self {
        case let .certificate(e): return e.description
        case let .ledger(e): return e.description
        case .batchMismatch: return "batch certificate does not cover this redeem"
        }
    }
}

/// Everything every node of one deployment agrees on: network and epoch, quorum sizes, ledger
/// rules, genesis, the replica directory, the group assignment, and the run's signature verifier.
/// Shared by reference; immutable apart from the assignment's memo.
public final class ProtocolContext {
    public let networkId: UInt32
    public let epoch: UInt32
    public let quorum: QuorumParameters
    public let rules: LedgerRules
    public let genesis: Genesis
    /// Public key of replica i at index i.
    public let replicaKeys: [PublicKey]
    public let assignment: GroupAssignment
    public let verifier: SignatureVerifier
    /// Unique per context in this process (never 0): what a certificate records when its
    /// signatures verified here, so an identical later check skips them.
    let serial: UInt64

    private static let serials = Atomic<UInt64>(0)

    public init(networkId: UInt32, epoch: UInt32, quorum: QuorumParameters, limits: LedgerLimits = .standard,
                genesis: Genesis, replicaKeys: [PublicKey], assignment: GroupAssignment,
                verifier: SignatureVerifier) throws(ConfigurationError) {
        guard assignment.groupSize == quorum.n else {
            throw .invalidTopology("group assignment uses n = \(assignment.groupSize), quorum says n = \(quorum.n)")
        }
        guard assignment.replicaCount == replicaKeys.count else {
            throw .invalidTopology("\(replicaKeys.count) replica keys for \(assignment.replicaCount) replicas")
        }
        self.networkId = networkId
        self.epoch = epoch
        self.quorum = quorum
        self.rules = LedgerRules(networkId: networkId, limits: limits)
        self.genesis = genesis
        self.replicaKeys = replicaKeys
        self.assignment = assignment
        self.verifier = verifier
        self.serial = ProtocolContext.serials.add(1, ordering: .relaxed).newValue
    }

    public var replicaCount: Int { replicaKeys.count }

    /// G(p).
    public func group(of principal: PublicKey) -> Group { assignment.group(of: principal) }

    /// The statement members of `group` sign for (type, key, valueHash) in this network and epoch.
    public func statement(_ type: RecordType, key: Digest, valueHash: Digest, group: GroupID) -> VoteStatement {
        VoteStatement(networkId: networkId, epoch: epoch, group: group, type: type, key: key, valueHash: valueHash)
    }

    /// Checks one vote: the signer is a member of `group` and its signature verifies.
    public func verify(_ vote: Vote, on statement: VoteStatement, group: Group, meter: CryptoMeter) throws(CertificateError) {
        guard group.contains(vote.replica), Int(vote.replica) < replicaKeys.count else { throw .nonMember(vote.replica) }
        guard statement.withSigningMessage({ meter.isValid(vote.signature, ofBytes: $0, by: replicaKeys[Int(vote.replica)]) }) else {
            throw .badSignature(vote.replica)
        }
    }

    /// A certificate of `votes` on `statement`, each vote already checked by `verify(_:on:group:meter:)`
    /// under `meter` (a writer's quorum). When `meter` runs over this context's verifier, the
    /// certificate is marked as its signatures verified here, as a first full check would mark it:
    /// each (key, message, signature) was verified once in this run, and the next check of the
    /// certificate still checks its statement, group, vote count and signers (and charges the same
    /// simulated CPU). Votes not checked that way must go through `Certificate.init`.
    public func certificate(of statement: VoteStatement, checkedVotes votes: [Vote], meter: CryptoMeter) -> Certificate {
        let certificate = Certificate(statement: statement, votes: votes)
        if meter.inner === verifier { certificate.signaturesValidIn = serial }
        return certificate
    }

    /// `rules.checkShape`, the payer's signature verified once per payment object in this context
    /// (`Payment.signatureValidIn`, as a certificate's signatures are): a payment's Prepare
    /// reaches every member of its group with the same object. Later checks still check the
    /// shape, and charge `meter` the verification all the same. A meter over another verifier
    /// verifies for itself.
    public func checkShape(_ payment: Payment, meter: CryptoMeter) throws(ValidationError) {
        let shared = meter.inner === verifier
        let known = shared && payment.signatureValidIn == serial
        try rules.checkShape(payment, verifier: meter, verifyPayer: !known)
        if known { meter.charge(verifications: 1) } else if shared { payment.signatureValidIn = serial }
    }

    /// `rules.checkRedeem`, the owner's signature verified once per redeem object in this context
    /// (as `checkShape(_:meter:)`).
    public func checkRedeem(_ redeem: Redeem, parent: Payment, meter: CryptoMeter) throws(ValidationError) {
        let shared = meter.inner === verifier
        let known = shared && redeem.signatureValidIn == serial
        try rules.checkRedeem(redeem, parent: parent, verifier: meter, verifySignature: !known)
        if known { meter.charge(verifications: 1) } else if shared { redeem.signatureValidIn = serial }
    }

    /// Checks a certificate against what it must certify (PROTOCOL §1): network, epoch, group,
    /// type, key and value, W…n votes from distinct members, every signature valid. Bounded by n.
    public func verify(_ certificate: Certificate, types: [RecordType], key: Digest, valueHash: Digest,
                       group: Group, meter: CryptoMeter) throws(CertificateError) {
        try verify(certificate, typeMask: types.reduce(0) { $0 | ProtocolContext.mask($1) }, key: key, valueHash: valueHash,
                   group: group, meter: meter)
    }

    /// A set of record types as bits (`1 << rawValue`).
    static func mask(_ type: RecordType) -> UInt8 { 1 << (type.rawValue & 7) }

    /// The mark's top bit: a full check found the certificate valid against the group of the
    /// payer of the payment whose key it certifies (`verify(_:meter:verified:)`). Serials stay
    /// below it.
    @inline(__always) static var payerGroupChecked: UInt64 { 1 << 63 }

    /// `payerGroup`: `group` is G(payer) of the payment whose key is `key` (so a pass marks the
    /// certificate `payerGroupChecked`).
    func verify(_ certificate: Certificate, typeMask: UInt8, key: Digest, valueHash: Digest,
                group: Group, meter: CryptoMeter, payerGroup: Bool = false) throws(CertificateError) {
        let s = certificate.header
        guard s.networkId == networkId else { throw .wrongNetwork(s.networkId) }
        guard s.epoch == epoch else { throw .wrongEpoch(s.epoch) }
        guard s.group == group.id else { throw .wrongGroup(s.group) }
        guard typeMask & ProtocolContext.mask(s.type) != 0 else { throw .wrongType(s.type) }
        guard s.key == key else { throw .wrongKey(s.key) }
        guard s.valueHash == valueHash else { throw .wrongValue(s.valueHash) }
        let votes = certificate.voteList
        guard votes.count <= group.members.count else { throw .tooManyVotes(have: votes.count, groupSize: group.members.count) }
        guard votes.count >= quorum.writeQuorum else { throw .tooFewVotes(have: votes.count, need: quorum.writeQuorum) }
        // Pairwise over at most n votes: no scratch array to allocate on every check. Signers
        // only: a vote's signature is read where it is verified.
        for i in 0..<votes.count {
            let replica = votes.replica(at: i)
            for earlier in 0..<i where votes.replica(at: earlier) == replica { throw .duplicateSigner(replica) }
            guard group.contains(replica) else { throw .nonMember(replica) }
        }
        // A certificate is immutable and shared by every node it reaches: once its signatures
        // verified in this context, under its verifier, they are valid for every later check
        // (the statement, membership and count checks above still run each time). Simulated CPU
        // is charged per check all the same. A meter over another verifier checks for itself.
        let shared = meter.inner === verifier
        let mark = certificate.signaturesValidIn
        if shared, mark & ~ProtocolContext.payerGroupChecked == serial {
            meter.charge(verifications: votes.count)
            if payerGroup, mark != serial | ProtocolContext.payerGroupChecked {
                certificate.signaturesValidIn = serial | ProtocolContext.payerGroupChecked
            }
            return
        }
        let bad: ReplicaID? = s.withSigningMessage { message in
            for vote in votes where !meter.isValid(vote.signature, ofBytes: message, by: replicaKeys[Int(vote.replica)]) {
                return vote.replica
            }
            return nil
        }
        if let bad { throw .badSignature(bad) }
        if shared { certificate.signaturesValidIn = serial | (payerGroup ? ProtocolContext.payerGroupChecked : 0) }
    }

    /// Certificate types that prove a payment or a redeem (built once, not per check).
    /// (Bit masks, not arrays: a shared array would be reference-counted by every check, from
    /// every thread of a partitioned run.)
    @inline(__always) static var paymentProofTypes: UInt8 { mask(.payment) | mask(.batch) }
    @inline(__always) static var redeemProofTypes: UInt8 { mask(.redeem) }

    /// A payment's proof: a configured genesis payment, or a `payment`/`batch` certificate on (K, K)
    /// from G(payer).
    /// `verified` caches keys of payments already shown certified (certified records never change),
    /// so each node checks a payment's certificate once.
    public func verify<V: VerifiedPayments>(_ record: CertifiedPayment, meter: CryptoMeter, verified: inout V) throws(CertificateError) {
        let key = record.payment.key
        if verified.isVerified(key) { return }
        switch record.proof {
        case .genesis:
            guard genesis.contains(key) else { throw .notGenesis(key) }
        case let .certificate(certificate):
            // Found valid in this context against G(payer) of a payment with this key: the key
            // fixes the body, so the payer and its group are that check's, and so are its verdicts
            // on the group, count, signers and signatures (the certificate never changes). Only the
            // statement's binding to this key is read again (no look-up of the payer's group, a
            // cold line in a large run); charged as a full check.
            let s = certificate.header
            if meter.inner === verifier, s.signaturesValidIn == serial | ProtocolContext.payerGroupChecked,
               s.networkId == networkId, s.epoch == epoch, ProtocolContext.paymentProofTypes & ProtocolContext.mask(s.type) != 0,
               s.key == key, s.valueHash == key {
                meter.charge(verifications: Int(s.count))
            } else {
                try verify(certificate, typeMask: ProtocolContext.paymentProofTypes, key: key, valueHash: key,
                           group: group(of: record.payment.payer), meter: meter, payerGroup: true)
            }
        }
        verified.markVerified(key)
    }

    /// A redeem's proof: a `redeem` certificate on (k, H(spender)) from G(owner), or the batch
    /// certificate of the payment it names, which must spend this redeem's output. In the batch
    /// case the owner's signature is checked too, so a stored redeem is always duly signed.
    public func verify<V: VerifiedPayments>(_ record: CertifiedRedeem, meter: CryptoMeter, verified: inout V) throws(RecordError) {
        let redeem = record.redeem
        switch record.proof {
        case let .certificate(certificate):
            do {
                try verify(certificate, typeMask: ProtocolContext.redeemProofTypes, key: redeem.key, valueHash: redeem.valueHash,
                           group: group(of: redeem.owner), meter: meter)
            } catch { throw .certificate(error) }
        case let .batch(spender):
            let p = spender.payment
            guard p.key == redeem.spender, p.payer == redeem.owner, p.inputs.contains(redeem.input),
                  case let .certificate(c) = spender.proof, c.statementType == .batch else { throw .batchMismatch }
            do { try verify(spender, meter: meter, verified: &verified) } catch { throw .certificate(error) }
            guard redeem.networkId == networkId,
                  redeem.withSigningMessage({ meter.isValid(redeem.signature, ofBytes: $0, by: redeem.owner) }) else {
                throw .ledger(.badRedeemSignature)
            }
        }
    }

    public func verify<V: VerifiedPayments>(_ record: StoredRecord, meter: CryptoMeter, verified: inout V) throws(RecordError) {
        switch record {
        case let .payment(p):
            do { try verify(p, meter: meter, verified: &verified) } catch { throw .certificate(error) }
        case let .redeem(r):
            try verify(r, meter: meter, verified: &verified)
        }
    }
}

/// Keys of payments a node has already shown certified: the cache `ProtocolContext.verify`
/// consults and fills. A `Set<Digest>` is one; a replica's counts what it stores as verified too.
public protocol VerifiedPayments {
    func isVerified(_ key: Digest) -> Bool
    mutating func markVerified(_ key: Digest)
}

extension Set: VerifiedPayments where Element == Digest {
    @inlinable public func isVerified(_ key: Digest) -> Bool { contains(key) }
    @inlinable public mutating func markVerified(_ key: Digest) { insert(key) }
}

extension Wallet.InFlight where Proof == PaymentProof {
    /// The certified parents of this payment's inputs, one per distinct parent, in input order:
    /// what its Prepares carry.
    public var certifiedParents: [CertifiedPayment] {
        var parents = [CertifiedPayment]()
        for coin in coins where !parents.contains(where: { $0.key == coin.parent.key }) {
            parents.append(CertifiedPayment(payment: coin.parent, proof: coin.proof))
        }
        return parents
    }
}
