/// A cheap signature scheme for very large runs (`crypto: modelled`): a signature is a SipHash-1-3
/// 128-bit MAC of `publicKey ‖ message` under the run's secret MAC key, in the first half of `r`
/// (the other 48 bytes zero, and checked to be). It is unforgeable inside the simulation — the
/// key lives only in the run's `ModelledVerifier` and the key pairs it issued, and a key pair
/// signs only as its own public key, so producing a signature for `pk` takes the key pair of `pk`
/// (that is, its seed), exactly as with Ed25519 — at a few hundred instructions instead of
/// Ed25519's tens of thousands (a keyed BLAKE2b took three compressions per vote: 16 % of a scale
/// run's instructions). Checking needs no per-key lookup. The protocol code is the same; only the
/// `Signer` and `SignatureVerifier` change.
public struct ModelledKeyPair: Signer {
    public let publicKey: PublicKey
    let scheme: ModelledVerifier

    /// The key pair derived from `seed` under `scheme`. Its public key is a function of the seed
    /// alone, as `Ed25519KeyPair(seed:)`'s is (but not an Ed25519 key). Two hashes, as when each
    /// pair had its own MAC secret: one would do, but would change every record key of a modelled run.
    public init(seed: Bytes32, scheme: ModelledVerifier) {
        let secret = Blake2b.hash(.modelledSignature, seed.bytes + [0])
        publicKey = PublicKey(raw: Blake2b.hash(.modelledSignature, secret.bytes + [1]))
        self.scheme = scheme
    }

    public func sign(_ message: [UInt8]) -> Signature {
        message.withUnsafeBytes { sign(bytes: $0) }
    }

    public func sign(bytes message: UnsafeRawBufferPointer) -> Signature {
        Signature(r: scheme.mac(publicKey, message), s: .zero)
    }
}

/// Issues modelled key pairs and checks their signatures.
public final class ModelledVerifier: SignatureVerifier, @unchecked Sendable {
    /// The run's MAC key (immutable after init, hence the unchecked Sendable).
    private let key: SipHash128.Key

    /// - Parameter key: the run's MAC key, derived from its seed (its first 16 bytes are used).
    public init(key: Bytes32) { self.key = SipHash128.Key(key) }

    /// The key pair derived from `seed`, signing under this scheme.
    public func keyPair(seed: Bytes32) -> ModelledKeyPair { ModelledKeyPair(seed: seed, scheme: self) }

    public func isValid(_ signature: Signature, of message: [UInt8], by publicKey: PublicKey) -> Bool {
        message.withUnsafeBytes { isValid(signature, ofBytes: $0, by: publicKey) }
    }

    public func isValid(_ signature: Signature, ofBytes message: UnsafeRawBufferPointer, by publicKey: PublicKey) -> Bool {
        signature.s == .zero && mac(publicKey, message) == signature.r
    }

    /// SipHash-1-3-128 of `publicKey ‖ message`. It was libsodium's SipHash-2-4 over the two
    /// joined in a temporary buffer: 7.5 % of a scale run's instructions, for a tag whose strength
    /// only has to keep apart the messages a run signs (nothing in the simulation holds the key
    /// but this scheme, so no node can search for a forgery).
    @inline(__always)
    func mac(_ publicKey: PublicKey, _ message: UnsafeRawBufferPointer) -> Bytes32 {
        SipHash128.mac(key, prefix: publicKey.raw, message, compression: 1, finalization: 3)
    }
}
