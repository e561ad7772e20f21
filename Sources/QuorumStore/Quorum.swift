import QuorumCrypto

/// Why a configuration cannot be used.
public enum ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidQuorum(n: Int, f: Int)
    case invalidTopology(String)

    public var description: String {
        switch self {
        case let .invalidQuorum(n, f): return "group size n = \(n) with f = \(f) needs f ≥ 0 and 3f+1 ≤ n ≤ 255"
        case let .invalidTopology(why): return why
        }
    }
}

/// Group size and fault bound, with the quorum sizes of Malkhi & Reiter's dissemination quorums
/// (PROTOCOL §1): W = ⌈(n + f + 1) / 2⌉ so two W-sets share ≥ f+1 replicas; R = n + f + 1 − W so a
/// read quorum meets every write quorum in an honest replica.
public struct QuorumParameters: Sendable, Hashable, CustomStringConvertible {
    public let n: Int
    public let f: Int

    public init(n: Int, f: Int) throws(ConfigurationError) {
        guard f >= 0, n <= 255, n >= 3 * f + 1 else { throw .invalidQuorum(n: n, f: f) }
        self.n = n
        self.f = f
    }

    private init(checkedN n: Int, f: Int) {
        self.n = n
        self.f = f
    }

    /// The default group: n = 4, f = 1.
    public static let standard = QuorumParameters(checkedN: 4, f: 1)

    /// Votes (or acks) that make a write: ⌈(n + f + 1) / 2⌉ (= 2f+1 for n = 3f+1).
    public var writeQuorum: Int { (n + f + 2) / 2 }

    /// Replies after which a read without a certificate concludes "not found": n + f + 1 − W.
    public var readQuorum: Int { n + f + 1 - writeQuorum }

    public var description: String { "n=\(n) f=\(f) W=\(writeQuorum) R=\(readQuorum)" }
}
