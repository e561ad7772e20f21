/// Errors raised when bytes from outside do not form a valid cryptographic value.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A value had the wrong number of bytes (`what` names it: "public key", "signature", ...).
    case wrongLength(what: String, expected: Int, actual: Int)
    /// A public key is not a canonical encoding of a point in Ed25519's prime-order subgroup
    /// (small-order points such as the identity are rejected here).
    case invalidPublicKey
    /// A hex string had an odd length or a non-hex character.
    case invalidHex(String)

    public var description: String {
        switch self {
        case let .wrongLength(what, expected, actual):
            return "\(what) must be \(expected) bytes, got \(actual)"
        case .invalidPublicKey:
            return "public key is not a valid Ed25519 point of prime order"
        case let .invalidHex(text):
            return "not a hex string: \(text.prefix(40))"
        }
    }
}

/// 32 bytes held inline (no heap allocation), used for digests, keys and seeds.
///
/// The storage is a homogeneous tuple, whose layout Swift guarantees to be contiguous, so
/// `withUnsafeBytes` hands libsodium the bytes in order. Ordering is lexicographic on the bytes.
public struct Bytes32: Hashable, Comparable, Sendable {
    @usableFromInline var storage: (UInt64, UInt64, UInt64, UInt64)

    /// All-zero bytes.
    public static let zero = Bytes32(storage: (0, 0, 0, 0))

    @inlinable init(storage: (UInt64, UInt64, UInt64, UInt64)) { self.storage = storage }

    /// Copies exactly 32 bytes; throws `CryptoError.wrongLength` otherwise.
    public init<C: Collection>(_ bytes: C, what: String = "value") throws(CryptoError) where C.Element == UInt8 {
        guard bytes.count == 32 else {
            throw .wrongLength(what: what, expected: 32, actual: bytes.count)
        }
        self.storage = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &storage) { raw in
            var i = 0
            for b in bytes { raw[i] = b; i += 1 }
        }
    }

    /// Reads 32 bytes starting at `offset` of a buffer the caller has bounds-checked.
    @inlinable init(unchecked buffer: UnsafeRawBufferPointer, at offset: Int) {
        self.storage = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + 32]))
        }
    }

    /// A value whose first 8 bytes are `value` big-endian and the rest zero (tests, seeds).
    public init(word value: UInt64) {
        self.storage = (value.bigEndian, 0, 0, 0)
    }

    /// Parses 64 hex characters.
    public init(hex: String) throws(CryptoError) {
        let bytes = try Hex.decode(hex)
        try self.init(bytes)
    }

    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = storage
        return try Swift.withUnsafeBytes(of: &copy, body)
    }

    /// The 32 bytes as an array.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Lower-case hex.
    public var hex: String { Hex.encode(bytes) }

    /// The 32 bytes as four big-endian 64-bit words (most significant first).
    public var bigEndianWords: [UInt64] {
        [UInt64(bigEndian: storage.0), UInt64(bigEndian: storage.1),
         UInt64(bigEndian: storage.2), UInt64(bigEndian: storage.3)]
    }

    /// The 32 bytes as four words in memory order (native endianness): for storing the value in
    /// word-sized slots and reading it back exactly, not for arithmetic.
    @inlinable public var words: (UInt64, UInt64, UInt64, UInt64) { storage }

    /// The value whose memory-order words are `words` (the inverse of `words`).
    @inlinable public init(words: (UInt64, UInt64, UInt64, UInt64)) { self.storage = words }

    /// The first 8 bytes read big-endian: a well-mixed number for a digest (bucketing, sharding).
    @inlinable public var prefix64: UInt64 { UInt64(bigEndian: storage.0) }

    @inlinable public static func == (a: Bytes32, b: Bytes32) -> Bool {
        a.storage.0 == b.storage.0 && a.storage.1 == b.storage.1
            && a.storage.2 == b.storage.2 && a.storage.3 == b.storage.3
    }

    @inlinable public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.0)
        hasher.combine(storage.1)
        hasher.combine(storage.2)
        hasher.combine(storage.3)
    }

    /// What `Set` and `Dictionary` hash with: the four words folded and finalised with a 64-bit
    /// mixer (murmur3's), seeded by the table. Digests and keys are uniformly distributed, so this
    /// spreads them as well as SipHash at a fraction of its cost (hashing 32-byte keys was ~7 % of
    /// a large run). Only the hash table's internal layout depends on it, never an output.
    @inlinable public func _rawHashValue(seed: Int) -> Int {
        let folded = storage.0 ^ (storage.1 &* 0x9E37_79B9_7F4A_7C15) ^ (storage.2 &* 0xC2B2_AE3D_27D4_EB4F)
            ^ (storage.3 &* 0x1656_67B1_9E37_79F9)
        return Int(truncatingIfNeeded: mix64(folded ^ UInt64(truncatingIfNeeded: seed)))
    }

    @inlinable public static func < (a: Bytes32, b: Bytes32) -> Bool {
        let x = (UInt64(bigEndian: a.storage.0), UInt64(bigEndian: a.storage.1),
                 UInt64(bigEndian: a.storage.2), UInt64(bigEndian: a.storage.3))
        let y = (UInt64(bigEndian: b.storage.0), UInt64(bigEndian: b.storage.1),
                 UInt64(bigEndian: b.storage.2), UInt64(bigEndian: b.storage.3))
        return x < y
    }
}

/// murmur3's 64-bit finalizer: the project's hash-table keys (digests, keys, their prefixes) hash
/// with it instead of SipHash, their bits being uniform already.
@inlinable public func mix64(_ value: UInt64) -> UInt64 {
    var x = value
    x ^= x >> 33
    x &*= 0xFF51_AFD7_ED55_8CCD
    x ^= x >> 33
    x &*= 0xC4CE_B9FE_1A85_EC53
    x ^= x >> 33
    return x
}

extension Bytes32: CustomStringConvertible {
    /// The first 8 bytes in hex: enough to tell values apart in logs.
    public var description: String { String(hex.prefix(16)) }
}

/// A BLAKE2b-256 digest (record keys, value hashes).
public typealias Digest = Bytes32

/// An Ed25519 public key: 32 bytes. Constructing one checks only the length; use
/// `PublicKey.validated(_:)` where a key enters the system from outside and must be a usable point.
public struct PublicKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: Bytes32
    @inlinable public init(raw: Bytes32) { self.raw = raw }
    public init<C: Collection>(_ bytes: C) throws(CryptoError) where C.Element == UInt8 {
        self.raw = try Bytes32(bytes, what: "public key")
    }
    @inlinable public static func < (a: PublicKey, b: PublicKey) -> Bool { a.raw < b.raw }
    @inlinable public func _rawHashValue(seed: Int) -> Int { raw._rawHashValue(seed: seed) }
    public var description: String { "pk:" + raw.description }
}

/// An Ed25519 signature: 64 bytes held inline.
public struct Signature: Hashable, Sendable {
    public var r: Bytes32
    public var s: Bytes32
    @inlinable public init(r: Bytes32, s: Bytes32) { self.r = r; self.s = s }

    public init<C: Collection>(_ bytes: C) throws(CryptoError) where C.Element == UInt8 {
        guard bytes.count == 64 else {
            throw .wrongLength(what: "signature", expected: 64, actual: bytes.count)
        }
        let array = Array(bytes)
        self.r = try Bytes32(array[0..<32], what: "signature")
        self.s = try Bytes32(array[32..<64], what: "signature")
    }

    /// All-zero bytes: never a valid signature (used by tests and forged-certificate attacks).
    public static let zero = Signature(r: .zero, s: .zero)

    /// Whether the last 48 bytes are all zero, as in a modelled signature (a 16-byte MAC): such a
    /// signature is its `head` alone, and compact stores keep only that.
    @inlinable public var isHeadOnly: Bool {
        let w = r.words
        return w.2 == 0 && w.3 == 0 && s == .zero
    }

    /// The first 16 bytes as two memory-order words (see `Bytes32.words`).
    @inlinable public var head: (UInt64, UInt64) { (r.words.0, r.words.1) }

    /// The signature whose first 16 bytes are `head` and whose other 48 are zero.
    @inlinable public init(head: (UInt64, UInt64)) {
        self.init(r: Bytes32(words: (head.0, head.1, 0, 0)), s: .zero)
    }

    public var bytes: [UInt8] { r.bytes + s.bytes }
    public var hex: String { Hex.encode(bytes) }
}

/// A signature as a record keeps it: the first 16 bytes inline and the other 48 in a box only when
/// they are not all zero. A modelled signature is a 16-byte MAC and 48 zero bytes, so the million
/// payments and redeems of a modelled run hold 24 bytes each instead of 64; an Ed25519 signature
/// reads back from the box. `signature` returns exactly what was packed.
public struct PackedSignature: Sendable {
    private final class Tail: Sendable {
        let r: (UInt64, UInt64), s: Bytes32
        init(r: (UInt64, UInt64), s: Bytes32) { self.r = r; self.s = s }
    }
    private let head: (UInt64, UInt64)
    private let tail: Tail?

    public init(_ signature: Signature) {
        let r = signature.r.words
        head = signature.head
        tail = signature.isHeadOnly ? nil : Tail(r: (r.2, r.3), s: signature.s)
    }

    /// Whether the last 48 bytes were all zero and nothing was boxed.
    var isInline: Bool { tail == nil }

    public var signature: Signature {
        guard let tail else { return Signature(head: head) }
        return Signature(r: Bytes32(words: (head.0, head.1, tail.r.0, tail.r.1)), s: tail.s)
    }
}

/// Hex helpers (lower case). Decoding rejects odd lengths and non-hex characters.
public enum Hex {
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) throws(CryptoError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { throw .invalidHex(text) }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { throw .invalidHex(text) }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
