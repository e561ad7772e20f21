import CSodium

/// SipHash with a 128-bit output: a PRF keyed by 16 bytes, designed as a MAC for short inputs.
/// `mac(_:_:)` is SipHash-2-4 (libsodium's `crypto_shorthash_siphashx24`), kept as the reference
/// the tests check the Swift `mac(_:prefix:_:compression:finalization:)` below against; that one
/// takes the round counts, and the modelled signature scheme runs it with 1-3. At the 100–200 bytes of a signing message SipHash costs a
/// fraction of a keyed BLAKE2b, which needs a whole compression for its key block before the
/// first byte of data.
public enum SipHash128 {
    /// A 16-byte key: the low half of `key`'s bytes, in order.
    public struct Key: Sendable {
        let words: (UInt64, UInt64)
        public init(_ key: Bytes32) { words = (key.storage.0, key.storage.1) }
    }

    /// The 16-byte tag of `data` under `key`, as the first half of a `Bytes32` (the rest zero).
    public static func mac(_ key: Key, _ data: UnsafeRawBufferPointer) -> Bytes32 {
        Sodium.ensureReady()
        var out = Bytes32.zero
        var k = key.words
        withUnsafeMutableBytes(of: &out.storage) { o in
            withUnsafeBytes(of: &k) { kb in
                _ = crypto_shorthash_siphashx24(o.mutableBytePointer, data.bytePointer, UInt64(data.count), kb.bytePointer)
            }
        }
        return out
    }
}

extension SipHash128 {
    /// SipHash-c-d with a 128-bit output of `prefix ‖ data` (the prefix's 32 bytes are four
    /// whole blocks, so nothing is copied to join them), in Swift. With c = 2, d = 4 it is
    /// `mac(_:_:)` of the joined bytes (a test checks it against libsodium at every length up
    /// to 300); the modelled signature scheme runs it with c = 1, d = 3, the rounds Swift's and
    /// Rust's hash tables use: about half the work of 2-4 for a 150-byte signing message.
    @inline(__always)
    public static func mac(_ key: Key, prefix: Bytes32, _ data: UnsafeRawBufferPointer, compression c: Int, finalization d: Int) -> Bytes32 {
        let k0 = UInt64(littleEndian: key.words.0), k1 = UInt64(littleEndian: key.words.1)
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ k0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ k1 ^ 0xee
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ k0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ k1
        @inline(__always) func round() {
            v0 &+= v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
            v2 &+= v3; v3 = v3.rotatedLeft(16); v3 ^= v2
            v0 &+= v3; v3 = v3.rotatedLeft(21); v3 ^= v0
            v2 &+= v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
        }
        @inline(__always) func absorb(_ m: UInt64) {
            v3 ^= m
            for _ in 0..<c { round() }
            v0 ^= m
        }
        withUnsafeBytes(of: prefix.storage) { p in
            for i in stride(from: 0, to: 32, by: 8) { absorb(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self))) }
        }
        let n = data.count
        let whole = n & ~7
        var i = 0
        while i < whole {
            absorb(UInt64(littleEndian: data.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            i += 8
        }
        var last = UInt64(truncatingIfNeeded: 32 &+ n) << 56
        var shift: UInt64 = 0
        while i < n {
            last |= UInt64(data[i]) << shift
            shift += 8
            i += 1
        }
        absorb(last)
        v2 ^= 0xee
        for _ in 0..<d { round() }
        let low = v0 ^ v1 ^ v2 ^ v3
        v1 ^= 0xdd
        for _ in 0..<d { round() }
        let high = v0 ^ v1 ^ v2 ^ v3
        var out = Bytes32.zero
        withUnsafeMutableBytes(of: &out.storage) { o in
            o.storeBytes(of: low.littleEndian, toByteOffset: 0, as: UInt64.self)
            o.storeBytes(of: high.littleEndian, toByteOffset: 8, as: UInt64.self)
        }
        return out
    }
}

extension UInt64 {
    @inline(__always) fileprivate func rotatedLeft(_ k: UInt64) -> UInt64 { (self &<< k) | (self &>> (64 &- k)) }
}
