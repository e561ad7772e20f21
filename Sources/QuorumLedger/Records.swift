import QuorumCrypto

/// Fixed ledger constants (PROTOCOL §2).
public enum Ledger {
    /// Total supply never exceeds 2^63; every amount lies in 1…maxSupply.
    public static let maxSupply: UInt64 = 1 << 63
    /// The only record encoding version this code writes and accepts.
    public static let version: UInt8 = 1
}

/// Caps on untrusted encodings. Decoders check counts against these before allocating.
public struct LedgerLimits: Sendable, Hashable {
    public var maxInputs: Int
    public var maxOutputs: Int
    public init(maxInputs: Int = 16, maxOutputs: Int = 16) {
        self.maxInputs = maxInputs
        self.maxOutputs = maxOutputs
    }
    public static let standard = LedgerLimits()
}

/// `{ amount, owner }`: value paid to one public key.
public struct Output: Hashable, Sendable {
    public var amount: UInt64
    public var owner: PublicKey
    public init(amount: UInt64, owner: PublicKey) {
        self.amount = amount
        self.owner = owner
    }
    static let encodedSize = 8 + 32
}

/// `{ parentKey, index }`: names output `index` of the payment whose key is `parentKey`.
public struct InputRef: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var parentKey: Digest
    public var index: UInt32
    public init(parentKey: Digest, index: UInt32) {
        self.parentKey = parentKey
        self.index = index
    }

    /// The key of the redeem record that spends this output: `H("qc/rdm", parentKey ‖ index)`.
    public var redeemKey: Digest {
        Blake2b.hash(.redeem, bodyBytes: 36) { w in
            w.append(parentKey)
            w.append(index)
        }
    }

    public static func < (a: InputRef, b: InputRef) -> Bool {
        (a.parentKey, a.index) < (b.parentKey, b.index)
    }
    /// Sets and dictionaries hash the key's words and the index with one mixer rather than
    /// SipHash (every wallet inserts each coin it receives into such a set).
    @inlinable public func _rawHashValue(seed: Int) -> Int {
        parentKey._rawHashValue(seed: seed ^ Int(truncatingIfNeeded: UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
    }
    public var description: String { "\(parentKey)#\(index)" }
    static let encodedSize = 32 + 4
}

/// The signed part of a payment. Its canonical encoding is hashed into the payment's key.
public struct PaymentBody: Hashable, Sendable {
    public var version: UInt8
    public var networkId: UInt32
    public var payer: PublicKey
    public var inputs: [InputRef]
    public var outputs: [Output]
    public var fee: UInt64
    public var nonce: UInt64

    public init(version: UInt8 = Ledger.version, networkId: UInt32, payer: PublicKey,
                inputs: [InputRef], outputs: [Output], fee: UInt64, nonce: UInt64) {
        self.version = version
        self.networkId = networkId
        self.payer = payer
        self.inputs = inputs
        self.outputs = outputs
        self.fee = fee
        self.nonce = nonce
    }

    /// version u8 ‖ networkId u32 ‖ payer 32 ‖ n u16 ‖ inputs ‖ m u16 ‖ outputs ‖ fee u64 ‖ nonce u64.
    public func encode<W: ByteSink>(into w: inout W) {
        w.append(version)
        w.append(networkId)
        w.append(payer)
        w.append(UInt16(truncatingIfNeeded: inputs.count))
        for input in inputs {
            w.append(input.parentKey)
            w.append(input.index)
        }
        w.append(UInt16(truncatingIfNeeded: outputs.count))
        for output in outputs {
            w.append(output.amount)
            w.append(output.owner)
        }
        w.append(fee)
        w.append(nonce)
    }

    public var encodedSize: Int {
        1 + 4 + 32 + 2 + inputs.count * InputRef.encodedSize + 2 + outputs.count * Output.encodedSize + 8 + 8
    }

    public static func decode(from r: inout ByteReader, limits: LedgerLimits) throws(DecodingError) -> PaymentBody {
        let version = try r.u8("payment.version")
        guard version == Ledger.version else { throw .unknownVersion(version) }
        let networkId = try r.u32("payment.networkId")
        let payer = try r.publicKey("payment.payer")
        let inputCount = try r.count("payment.inputs", limit: limits.maxInputs)
        var inputs = [InputRef]()
        inputs.reserveCapacity(inputCount)
        for _ in 0..<inputCount {
            let key = try r.bytes32("payment.input.parentKey")
            let index = try r.u32("payment.input.index")
            inputs.append(InputRef(parentKey: key, index: index))
        }
        let outputCount = try r.count("payment.outputs", limit: limits.maxOutputs)
        var outputs = [Output]()
        outputs.reserveCapacity(outputCount)
        for _ in 0..<outputCount {
            let amount = try r.u64("payment.output.amount")
            let owner = try r.publicKey("payment.output.owner")
            outputs.append(Output(amount: amount, owner: owner))
        }
        let fee = try r.u64("payment.fee")
        let nonce = try r.u64("payment.nonce")
        return PaymentBody(version: version, networkId: networkId, payer: payer, inputs: inputs,
                           outputs: outputs, fee: fee, nonce: nonce)
    }

    /// `K = H("qc/pay", body)`, hashed from a stack buffer of exactly `encodedSize` bytes.
    public var key: Digest {
        Blake2b.hash(.payment, bodyBytes: encodedSize) { encode(into: &$0) }
    }
}

/// A payment record: body plus the payer's signature. Immutable; `key` is computed once. A class,
/// so the many messages, events and stores that hold one share it instead of copying ~170 bytes.
public final class Payment: Hashable, Sendable, CustomStringConvertible {
    /// `K = H("qc/pay", body)`, where this record is stored. Declared first, then the body, so
    /// the key shares the object's first cache line with its reference count, and the key and
    /// the payer sit at the same offsets as a `Redeem`'s key and owner (16 and 56): a host's
    /// prefetch hints read either from a record without knowing which kind it is.
    public let key: Digest
    public let body: PaymentBody
    /// The payer's signature (kept packed: see `PackedSignature`).
    public var signature: Signature { packedSignature.signature }
    private let packedSignature: PackedSignature
    /// The encoded size, fixed at construction: every send of a message carrying this payment
    /// asks for it, and computing it reads the input and output arrays' headers (two cold lines
    /// in a large run, 1.3 % of its last-level misses).
    public let encodedSize: Int
    /// The serial of the context (QuorumStore's `ProtocolContext`) under whose verifier the
    /// payer's signature checked valid, 0 for none yet: body and signature never change, so later
    /// checks in that context skip the signature, as a certificate's do. Last, so the fields hints
    /// read keep their offsets. A partitioned run's threads share no record.
    package nonisolated(unsafe) var signatureValidIn: UInt64 = 0

    public convenience init(body: PaymentBody, signature: Signature) {
        self.init(body: body, signature: signature, key: body.key)
    }

    /// Builds and signs a payment.
    public static func signed(_ body: PaymentBody, by signer: some Signer) -> Payment {
        let key = body.key
        let signature = withSigningMessage(networkId: body.networkId, key: key) { signer.sign(bytes: $0) }
        return Payment(body: body, signature: signature, key: key)
    }

    private init(body: PaymentBody, signature: Signature, key: Digest) {
        self.body = body
        self.packedSignature = PackedSignature(signature)
        self.key = key
        self.encodedSize = body.encodedSize + 64
    }

    /// What the payer signs: `len ‖ "qc/psig" ‖ networkId ‖ K`. K commits to the whole body.
    public static func signingMessage(networkId: UInt32, key: Digest) -> [UInt8] {
        withSigningMessage(networkId: networkId, key: key) { Array($0) }
    }

    /// The signing message in a stack buffer, handed to `use` (what checks and signing use).
    @inlinable public static func withSigningMessage<R>(networkId: UInt32, key: Digest, _ use: (UnsafeRawBufferPointer) -> R) -> R {
        ByteWriter.withFixed(tag: .paymentSignature, bodyBytes: 36, { w in
            w.append(networkId)
            w.append(key)
        }, use)
    }

    public var signingMessage: [UInt8] { Payment.signingMessage(networkId: body.networkId, key: key) }

    /// `signingMessage` in a stack buffer.
    @inlinable public func withSigningMessage<R>(_ use: (UnsafeRawBufferPointer) -> R) -> R {
        Payment.withSigningMessage(networkId: body.networkId, key: key, use)
    }

    public var payer: PublicKey { body.payer }
    public var inputs: [InputRef] { body.inputs }
    public var outputs: [Output] { body.outputs }

    public func encode(into w: inout ByteWriter) {
        body.encode(into: &w)
        w.append(signature)
    }

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: encodedSize)
        encode(into: &w)
        return w.bytes
    }

    public static func decode(from r: inout ByteReader, limits: LedgerLimits) throws(DecodingError) -> Payment {
        let body = try PaymentBody.decode(from: &r, limits: limits)
        let signature = try r.signature("payment.signature")
        return Payment(body: body, signature: signature)
    }

    /// Decodes exactly one payment from `bytes` (trailing bytes are an error).
    public static func decode(_ bytes: [UInt8], limits: LedgerLimits = .standard) throws(DecodingError) -> Payment {
        try bytes.decode { (r: inout ByteReader) throws(DecodingError) in try decode(from: &r, limits: limits) }
    }

    public var description: String { "payment \(key) by \(payer) (\(inputs.count) in, \(outputs.count) out)" }

    public static func == (a: Payment, b: Payment) -> Bool { a === b || (a.key == b.key && a.signature == b.signature) }
    public func hash(into hasher: inout Hasher) { hasher.combine(key) }
}

/// A redeem record: output (parentKey, index) is spent by the payment whose key is `spender`.
/// Signed by the output's owner; stored at `H("qc/rdm", parentKey ‖ index)` (PROTOCOL §2).
/// `owner` is carried so that anyone can find the owner's group from the record alone; replicas
/// check it against the parent payment before voting. Immutable; a class for the same reason as
/// `Payment`.
public final class Redeem: Hashable, Sendable, CustomStringConvertible {
    /// Where this record is stored (derived from `input`). The first four fields are laid out as
    /// a `Payment`'s key and body begin (key, version, network, principal): see `Payment.key`.
    public let key: Digest
    public let version: UInt8
    public let networkId: UInt32
    public let owner: PublicKey
    public let input: InputRef
    public let spender: Digest
    /// The owner's signature (kept packed: see `PackedSignature`).
    public var signature: Signature { packedSignature.signature }
    private let packedSignature: PackedSignature
    /// The value a replica locks `key` to: `H("qc/rval", spender)`. The signature is an
    /// authenticator, not part of the value, so a re-signed redeem for the same spender is the
    /// same value and the lock cannot be split by signature malleability. Kept, not recomputed:
    /// a payment's redeem is asked for it about eighteen times on its way through a run.
    public let valueHash: Digest
    /// As `Payment.signatureValidIn`, for the owner's signature.
    package nonisolated(unsafe) var signatureValidIn: UInt64 = 0

    public convenience init(version: UInt8 = Ledger.version, networkId: UInt32, input: InputRef, owner: PublicKey,
                            spender: Digest, signature: Signature) {
        self.init(version: version, networkId: networkId, input: input, key: input.redeemKey, owner: owner,
                  spender: spender, signature: signature)
    }

    /// `key` must be `input.redeemKey` (callers that just computed it pass it in).
    private init(version: UInt8, networkId: UInt32, input: InputRef, key: Digest, owner: PublicKey,
                 spender: Digest, signature: Signature) {
        self.version = version
        self.networkId = networkId
        self.input = input
        self.owner = owner
        self.spender = spender
        self.packedSignature = PackedSignature(signature)
        self.key = key
        self.valueHash = Redeem.valueHash(spender: spender)
    }

    /// The owner's redeem of `input` for the payment `spender`.
    public static func signed(networkId: UInt32, input: InputRef, spender: Digest, by signer: some Signer) -> Redeem {
        let key = input.redeemKey
        let signature = withSigningMessage(networkId: networkId, key: key, spender: spender) { signer.sign(bytes: $0) }
        return Redeem(version: Ledger.version, networkId: networkId, input: input, key: key, owner: signer.publicKey,
                      spender: spender, signature: signature)
    }

    /// What the owner signs: `len ‖ "qc/rsig" ‖ networkId ‖ k ‖ K`.
    public static func signingMessage(networkId: UInt32, key: Digest, spender: Digest) -> [UInt8] {
        withSigningMessage(networkId: networkId, key: key, spender: spender) { Array($0) }
    }

    /// The signing message in a stack buffer, handed to `use` (what checks and signing use).
    @inlinable public static func withSigningMessage<R>(networkId: UInt32, key: Digest, spender: Digest,
                                                       _ use: (UnsafeRawBufferPointer) -> R) -> R {
        ByteWriter.withFixed(tag: .redeemSignature, bodyBytes: 68, { w in
            w.append(networkId)
            w.append(key)
            w.append(spender)
        }, use)
    }

    /// `signingMessage` in a stack buffer.
    @inlinable public func withSigningMessage<R>(_ use: (UnsafeRawBufferPointer) -> R) -> R {
        Redeem.withSigningMessage(networkId: networkId, key: key, spender: spender, use)
    }

    public var signingMessage: [UInt8] { Redeem.signingMessage(networkId: networkId, key: key, spender: spender) }

    public static func valueHash(spender: Digest) -> Digest {
        Blake2b.hash(.redeemValue, bodyBytes: 32) { $0.append(spender) }
    }

    public func encode(into w: inout ByteWriter) {
        w.append(version)
        w.append(networkId)
        w.append(input.parentKey)
        w.append(input.index)
        w.append(owner)
        w.append(spender)
        w.append(signature)
    }

    public static let encodedSize = 1 + 4 + 32 + 4 + 32 + 32 + 64

    public static func decode(from r: inout ByteReader) throws(DecodingError) -> Redeem {
        let version = try r.u8("redeem.version")
        guard version == Ledger.version else { throw .unknownVersion(version) }
        let networkId = try r.u32("redeem.networkId")
        let parentKey = try r.bytes32("redeem.parentKey")
        let index = try r.u32("redeem.index")
        let owner = try r.publicKey("redeem.owner")
        let spender = try r.bytes32("redeem.spender")
        let signature = try r.signature("redeem.signature")
        return Redeem(version: version, networkId: networkId, input: InputRef(parentKey: parentKey, index: index),
                      owner: owner, spender: spender, signature: signature)
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> Redeem {
        try bytes.decode { (r: inout ByteReader) throws(DecodingError) in try decode(from: &r) }
    }

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: Redeem.encodedSize)
        encode(into: &w)
        return w.bytes
    }

    public var description: String { "redeem \(key) of \(input) for \(spender)" }

    public static func == (a: Redeem, b: Redeem) -> Bool {
        a === b || (a.key == b.key && a.spender == b.spender && a.owner == b.owner && a.signature == b.signature
                    && a.networkId == b.networkId && a.version == b.version && a.input == b.input)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(key)
        hasher.combine(spender)
    }
}
