/// Remembers the outcome of each distinct (key, message, signature) triple so that a run verifies
/// it once, however many simulated nodes check it. Verification is a pure function, so this
/// changes wall time only, never a result. Simulated CPU cost is charged by the caller per check,
/// memoized or not.
public final class MemoizingVerifier: SignatureVerifier {
    /// A 128-bit BLAKE2b fingerprint of (key, signature, message): entries stay small, and a
    /// false match would need a 128-bit collision.
    struct Entry: Hashable {
        let a: UInt64
        let b: UInt64
        /// A fingerprint is already uniform: seed and mix one word (as `Bytes32` does).
        func _rawHashValue(seed: Int) -> Int {
            Bytes32(storage: (a, b, 0, 0))._rawHashValue(seed: seed)
        }
    }

    private let inner: SignatureVerifier
    private var memo: [Entry: Bool] = [:]
    private let capacity: Int
    public private(set) var hits = 0
    public private(set) var misses = 0

    /// - Parameter capacity: entries kept before the table is cleared (bounds memory on long runs).
    public init(wrapping inner: SignatureVerifier, capacity: Int = 4_000_000) {
        self.inner = inner
        self.capacity = max(1, capacity)
    }

    public func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool {
        let digest = Blake2b.hash(.verifyMemo, capacity: 96 + message.count) { w in
            w.append(key)
            w.append(signature)
            w.append(message)
        }
        let words = digest.bigEndianWords
        let entry = Entry(a: words[0], b: words[1])
        if let known = memo[entry] {
            hits += 1
            return known
        }
        misses += 1
        let result = inner.isValid(signature, of: message, by: key)
        if memo.count >= capacity { memo.removeAll(keepingCapacity: true) }
        memo[entry] = result
        return result
    }
}
