/// A cheap signature scheme for very large runs (`crypto: modelled`): a signature is a keyed
/// BLAKE2b-256 MAC of the message under the signer's secret, checked by a registry of the run's
/// keys. It is unforgeable inside the simulation — only the holder of a key pair can produce its
/// MAC, and Byzantine code signs only with the keys it holds — at about a hundredth of Ed25519's
/// cost. The protocol code is the same; only the `Signer` and `SignatureVerifier` change.
public struct ModelledKeyPair: Signer {
    public let publicKey: PublicKey
    let secret: Bytes32

    /// A key pair derived from a seed, as `Ed25519KeyPair(seed:)` is (but not an Ed25519 key).
    public init(seed: Bytes32) {
        secret = Blake2b.hash(.modelledSignature, seed.bytes + [0])
        publicKey = PublicKey(raw: Blake2b.hash(.modelledSignature, secret.bytes + [1]))
    }

    public func sign(_ message: [UInt8]) -> Signature {
        Signature(r: ModelledKeyPair.mac(secret, message), s: .zero)
    }

    /// Keyed BLAKE2b-256 of the message (libsodium's `crypto_generichash` with a key).
    static func mac(_ secret: Bytes32, _ message: [UInt8]) -> Bytes32 {
        Blake2b.keyed(secret, message)
    }
}

/// Verifies modelled signatures against the run's registry of key pairs.
public final class ModelledVerifier: SignatureVerifier {
    private var secrets: [PublicKey: Bytes32] = [:]
    public private(set) var verifications = 0

    public init() {}

    /// Makes `pair`'s signatures checkable (done once per key pair when a run is built).
    public func register(_ pair: ModelledKeyPair) { secrets[pair.publicKey] = pair.secret }

    public func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool {
        verifications += 1
        guard let secret = secrets[key], signature.s == .zero else { return false }
        return ModelledKeyPair.mac(secret, message) == signature.r
    }
}
