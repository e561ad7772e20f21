import CSodium

/// Anything that can sign on behalf of one public key. Protocol code signs only through this,
/// so a modelled scheme can replace Ed25519 in very large runs.
public protocol Signer: Sendable {
    var publicKey: PublicKey { get }
    func sign(_ message: [UInt8]) -> Signature
    /// Signs bytes in place (a message built in a stack buffer, not an array).
    func sign(bytes message: UnsafeRawBufferPointer) -> Signature
}

extension Signer {
    public func sign(bytes message: UnsafeRawBufferPointer) -> Signature { sign(Array(message)) }
}

/// An Ed25519 key pair derived deterministically from a 32-byte seed (RFC 8032 §5.1.5: the seed
/// is the "secret key" of the RFC's test vectors).
public struct Ed25519KeyPair: Signer {
    public let publicKey: PublicKey
    /// libsodium's 64-byte secret key (seed ‖ public key).
    private let secretKey: [UInt8]

    public init(seed: Bytes32) {
        Sodium.ensureReady()
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        seed.withUnsafeBytes { s in
            _ = LibsodiumClock.time { crypto_sign_seed_keypair(&pk, &sk, s.bytePointer) }
        }
        // Lengths are fixed above, so this cannot throw.
        self.publicKey = PublicKey(raw: (try? Bytes32(pk)) ?? .zero)
        self.secretKey = sk
    }

    public func sign(_ message: [UInt8]) -> Signature {
        var sig = (Bytes32.zero, Bytes32.zero)
        withUnsafeMutableBytes(of: &sig) { out in
            _ = LibsodiumClock.time {
                crypto_sign_detached(out.mutableBytePointer, nil, message, UInt64(message.count), secretKey)
            }
        }
        return Signature(r: sig.0, s: sig.1)
    }
}

extension PublicKey {
    /// Accepts 32 bytes only if they encode a point of Ed25519's prime-order subgroup: canonical,
    /// on the curve, not of small order (`crypto_core_ed25519_is_valid_point`).
    public static func validated<C: Collection>(_ bytes: C) throws(CryptoError) -> PublicKey where C.Element == UInt8 {
        let key = try PublicKey(bytes)
        guard key.isValidPoint else { throw .invalidPublicKey }
        return key
    }

    /// Whether this key is a canonical point of prime order (not small order).
    public var isValidPoint: Bool {
        Sodium.ensureReady()
        return raw.withUnsafeBytes { crypto_core_ed25519_is_valid_point($0.bytePointer) == 1 }
    }
}

/// Checks signatures. A pure function of (key, message, signature), so it may be memoized;
/// implementations count their work so the simulator can charge CPU time.
public protocol SignatureVerifier: AnyObject {
    func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool
    /// Checks a signature over bytes in place (a message built in a stack buffer, not an array).
    func isValid(_ signature: Signature, ofBytes message: UnsafeRawBufferPointer, by key: PublicKey) -> Bool
}

extension SignatureVerifier {
    public func isValid(_ signature: Signature, ofBytes message: UnsafeRawBufferPointer, by key: PublicKey) -> Bool {
        isValid(signature, of: Array(message), by: key)
    }
}

/// Ed25519 verification by libsodium. libsodium 1.0.18 rejects non-canonical S, small-order R and
/// small-order or non-canonical public keys (strong unforgeability).
public final class Ed25519Verifier: SignatureVerifier {
    public private(set) var verifications = 0
    public init() { Sodium.ensureReady() }

    public func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool {
        verifications += 1
        var sig = (signature.r, signature.s)
        return withUnsafeBytes(of: &sig) { s in
            key.raw.withUnsafeBytes { k in
                LibsodiumClock.time {
                    crypto_sign_verify_detached(s.bytePointer, message, UInt64(message.count), k.bytePointer)
                } == 0
            }
        }
    }
}
