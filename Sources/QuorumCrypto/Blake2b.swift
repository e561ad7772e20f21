import CSodium

/// A domain-separation tag: every hash in QuorumCoin is `BLAKE2b-256(len(tag) ‖ tag ‖ data)`, so
/// a payment key can never equal a redeem key or a vote message (PROTOCOL §2).
public struct DomainTag: Sendable, Hashable {
    /// The tag's text, a compile-time constant: no tag is a heap object, so hashing retains
    /// nothing shared (the threads of a partitioned run hash at once, and release builds count
    /// references without atomic instructions: a shared array's count would be raced on).
    @usableFromInline let text: StaticString

    public init(_ text: StaticString) {
        precondition(text.utf8CodeUnitCount < 256 && text.hasPointerRepresentation)  // compile-time constants only
        self.text = text
    }

    /// The tag's bytes (a new array: hashing code uses `withBytes`).
    public var bytes: [UInt8] { withBytes { Array($0) } }
    public var count: Int { text.utf8CodeUnitCount }

    /// Calls `body` with the tag's bytes, in place.
    @inlinable public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R { text.withUTF8Buffer(body) }

    public static func == (a: DomainTag, b: DomainTag) -> Bool { a.withBytes { x in b.withBytes { y in x.elementsEqual(y) } } }
    public func hash(into hasher: inout Hasher) { withBytes { hasher.combine(bytes: UnsafeRawBufferPointer($0)) } }

    /// Payment key `K = H("qc/pay", body)`.
    public static let payment = DomainTag("qc/pay")
    /// Redeem key `k = H("qc/rdm", parentKey ‖ index)`.
    public static let redeem = DomainTag("qc/rdm")
    /// What a redeem's owner signs: `("qc/rsig", networkId, k, K)`.
    public static let redeemSignature = DomainTag("qc/rsig")
    /// What a payer signs: `("qc/psig", networkId, K)` (K already commits to the whole body).
    public static let paymentSignature = DomainTag("qc/psig")
    /// Value hash of a redeem: `H("qc/rval", spender)`.
    public static let redeemValue = DomainTag("qc/rval")
    /// What a replica signs when it votes.
    public static let vote = DomainTag("qc/vote")
    /// Principal → shard in `partitioned` mode.
    public static let shard = DomainTag("qc/shard")
    /// Seed of the sampler that picks a principal's group in `random-group` mode.
    public static let group = DomainTag("qc/group")
    /// Deriving key seeds and sub-seeds from a scenario seed.
    public static let keySeed = DomainTag("qc/key")
    /// Fingerprints of checked signatures in the verification memo.
    public static let verifyMemo = DomainTag("qc/memo")
    /// The modelled signature scheme's MAC.
    public static let modelledSignature = DomainTag("qc/msig")
}

/// BLAKE2b-256 through libsodium's `crypto_generichash`.
public enum Blake2b {
    /// Plain BLAKE2b-256 of `data` with no tag (published test vectors use this form).
    public static func digest(_ data: [UInt8]) -> Digest {
        data.withUnsafeBytes { digest($0) }
    }

    /// `BLAKE2b-256(len(tag) ‖ tag ‖ data)`.
    public static func hash(_ tag: DomainTag, _ data: [UInt8]) -> Digest {
        var writer = ByteWriter(tag: tag, capacity: data.count)
        writer.append(data)
        return digest(writer.bytes)
    }

    /// Hashes the canonical bytes that `build` writes, under `tag`.
    public static func hash(_ tag: DomainTag, capacity: Int = 64, _ build: (inout ByteWriter) -> Void) -> Digest {
        var writer = ByteWriter(tag: tag, capacity: capacity)
        build(&writer)
        return digest(writer.bytes)
    }

    /// Hashes exactly `bodyBytes` bytes that `build` writes, under `tag`, from a stack buffer:
    /// the same digest as `hash(_:capacity:_:)`, without a heap array per hash (record keys and
    /// redeem value hashes are computed several times per payment). Writing more than
    /// `bodyBytes` is a programming error (`FixedWriter` traps); writing fewer hashes what was written.
    public static func hash(_ tag: DomainTag, bodyBytes: Int, _ build: (inout FixedWriter) -> Void) -> Digest {
        ByteWriter.withFixed(tag: tag, bodyBytes: bodyBytes, build) { bytes in digest(bytes) }
    }

    /// Plain BLAKE2b-256 of raw bytes (what every hash here ends in).
    public static func digest(_ bytes: UnsafeRawBufferPointer) -> Digest {
        Sodium.ensureReady()
        var out = Digest.zero
        withUnsafeMutableBytes(of: &out.storage) { o in
            _ = LibsodiumClock.time { crypto_generichash(o.mutableBytePointer, 32, bytes.bytePointer, UInt64(bytes.count), nil, 0) }
        }
        return out
    }
}
