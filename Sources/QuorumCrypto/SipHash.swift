import CSodium

/// SipHash-2-4 with a 128-bit output (libsodium's `crypto_shorthash_siphashx24`): a PRF keyed by
/// 16 bytes, designed as a MAC for short inputs. The modelled signature scheme's MAC: at the
/// 100–200 bytes of a signing message it costs about a sixth of a keyed BLAKE2b, which needs a
/// whole compression for its key block before the first byte of data.
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
