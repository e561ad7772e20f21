/// xoshiro256** (Blackman & Vigna, 2018): the project's only source of randomness. Seeded from
/// the scenario seed; `derive(_:)` gives each component its own stream, so adding a component does
/// not shift the draws of another. Never `SystemRandomNumberGenerator`, never the stdlib's
/// `random(in:)` (its algorithm may change between Swift versions).
public struct DeterministicRandom: Sendable {
    @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// A generator whose whole state is taken from a 32-byte seed (never all zero).
    public init(seed: Bytes32) {
        let w = seed.storage
        s0 = w.0; s1 = w.1; s2 = w.2; s3 = w.3
        if s0 | s1 | s2 | s3 == 0 { s0 = 0x9E37_79B9_7F4A_7C15 }
    }

    /// A generator with the given raw state (reference vectors; not all zero).
    public init(state: (UInt64, UInt64, UInt64, UInt64)) {
        (s0, s1, s2, s3) = state
        if s0 | s1 | s2 | s3 == 0 { s0 = 0x9E37_79B9_7F4A_7C15 }
    }

    /// A generator for stream `label` of the run seeded by `seed`: `H("qc/key", seed ‖ label)`.
    public init(seed: UInt64, stream label: String) {
        self.init(seed: Blake2b.hash(.keySeed) { w in
            w.append(seed)
            w.append(Array(label.utf8))
        })
    }

    /// A child stream, independent of this generator's future draws.
    public func derive(_ label: String) -> DeterministicRandom {
        DeterministicRandom(seed: Blake2b.hash(.keySeed) { w in
            w.append(s0); w.append(s1); w.append(s2); w.append(s3)
            w.append(Array(label.utf8))
        })
    }

    @inlinable @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inlinable @inline(__always)
    func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 &- k)) }

    /// Uniform in `0..<bound` without bias (Lemire 2019, multiply and reject). `bound` 0 gives 0.
    @inlinable
    public mutating func uniform(below bound: UInt64) -> UInt64 {
        guard bound > 0 else { return 0 }
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return m.high
    }

    /// Uniform `Int` in `0..<bound` (`bound` ≤ 0 gives 0).
    @inlinable
    public mutating func uniform(below bound: Int) -> Int {
        bound <= 0 ? 0 : Int(truncatingIfNeeded: uniform(below: UInt64(bound)))
    }

    /// Uniform in [0, 1) with 53 bits: for sampling distributions, never written to a result.
    @inlinable
    public mutating func unitInterval() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Fisher–Yates with this generator (our own: the stdlib's shuffle may change algorithm).
    public mutating func shuffle<T>(_ array: inout [T]) {
        var i = array.count
        while i > 1 {
            let j = uniform(below: i)
            i -= 1
            array.swapAt(i, j)
        }
    }
}

/// Deterministic 32-byte seeds for keys: `H("qc/key", seed ‖ label ‖ index)`.
public enum KeySeed {
    public static func derive(seed: UInt64, label: String, index: UInt64) -> Bytes32 {
        Blake2b.hash(.keySeed) { w in
            w.append(seed)
            w.append(Array(label.utf8))
            w.append(index)
        }
    }
}
