import CSodium

/// A cheap signature scheme for very large runs (`crypto: modelled`): a signature is a keyed
/// BLAKE2b-256 MAC of `publicKey ‖ message` under the run's secret MAC key. It is unforgeable
/// inside the simulation — the key lives only in the run's `ModelledVerifier` and the key pairs it
/// issued, and a key pair signs only as its own public key, so producing a signature for `pk`
/// takes the key pair of `pk` (that is, its seed), exactly as with Ed25519 — at about a hundredth
/// of Ed25519's cost. Checking needs no per-key lookup (a run has 100,000 principals: a registry
/// of their secrets was a hash-table miss on every check). The protocol code is the same; only the
/// `Signer` and `SignatureVerifier` change.
public struct ModelledKeyPair: Signer {
    public let publicKey: PublicKey
    let scheme: ModelledVerifier

    /// The key pair derived from `seed` under `scheme`. Its public key is a function of the seed
    /// alone, as `Ed25519KeyPair(seed:)`'s is (but not an Ed25519 key).
    public init(seed: Bytes32, scheme: ModelledVerifier) {
        let secret = Blake2b.hash(.modelledSignature, seed.bytes + [0])
        publicKey = PublicKey(raw: Blake2b.hash(.modelledSignature, secret.bytes + [1]))
        self.scheme = scheme
    }

    public func sign(_ message: [UInt8]) -> Signature {
        Signature(r: scheme.mac(publicKey, message), s: .zero)
    }
}

/// Issues modelled key pairs and checks their signatures.
public final class ModelledVerifier: SignatureVerifier, @unchecked Sendable {
    /// The run's MAC key (immutable after init, hence the unchecked Sendable).
    private let key: Bytes32

    /// - Parameter key: the run's MAC key, derived from its seed.
    public init(key: Bytes32) { self.key = key }

    /// The key pair derived from `seed`, signing under this scheme.
    public func keyPair(seed: Bytes32) -> ModelledKeyPair { ModelledKeyPair(seed: seed, scheme: self) }

    public func isValid(_ signature: Signature, of message: [UInt8], by publicKey: PublicKey) -> Bool {
        signature.s == .zero && mac(publicKey, message) == signature.r
    }

    /// Keyed BLAKE2b-256 of `publicKey ‖ message` (libsodium's `crypto_generichash`, streamed so
    /// nothing is copied).
    private static let stateBytes = max(512, crypto_generichash_statebytes())

    func mac(_ publicKey: PublicKey, _ message: [UInt8]) -> Bytes32 {
        Sodium.ensureReady()
        var out = Bytes32.zero
        // The state is opaque to Swift (an aligned C struct): room for it on the stack.
        withUnsafeTemporaryAllocation(byteCount: ModelledVerifier.stateBytes, alignment: 64) { buffer in
            guard let base = buffer.baseAddress else { return }
            let state = OpaquePointer(base)
            key.withUnsafeBytes { k in _ = crypto_generichash_init(state, k.bytePointer, 32, 32) }
            publicKey.raw.withUnsafeBytes { p in _ = crypto_generichash_update(state, p.bytePointer, 32) }
            message.withUnsafeBufferPointer { m in
                _ = crypto_generichash_update(state, m.baseAddress ?? Sodium.emptyByte, UInt64(m.count))
            }
            withUnsafeMutableBytes(of: &out.storage) { o in _ = crypto_generichash_final(state, o.mutableBytePointer, 32) }
        }
        return out
    }
}
