/// Elementary functions from IEEE-754 `+ − × ÷` and `squareRoot()` only, which are correctly
/// rounded everywhere, so sampled delays are the same bits on every machine and Swift version
/// (libm's `exp`/`log` are not required to be). Accurate to a few ulps over the ranges used here.
enum DeterministicMath {
    static let ln2 = 0.693_147_180_559_945_3

    /// e^x for |x| < 700.
    static func exp(_ x: Double) -> Double {
        guard x > -700 else { return 0 }
        guard x < 700 else { return .greatestFiniteMagnitude }
        // x = k·ln2 + r with |r| ≤ ln2/2; e^x = 2^k · e^r.
        let k = (x / ln2).rounded(.toNearestOrEven)
        let r = x - k * ln2
        var term = 1.0, sum = 1.0
        for i in 1...20 {
            term *= r / Double(i)
            sum += term
        }
        return sum * power2(Int(k))
    }

    /// Natural logarithm for x > 0.
    static func log(_ x: Double) -> Double {
        guard x > 0 else { return -.greatestFiniteMagnitude }
        // x = m · 2^e with m in [1, 2): log x = e·ln2 + 2·atanh((m−1)/(m+1)).
        let e = x.exponent
        let m = x.significand
        let s = (m - 1) / (m + 1)
        let s2 = s * s
        var term = s, sum = 0.0
        var i = 1.0
        while i < 60 {
            sum += term / i
            term *= s2
            i += 2
        }
        return Double(e) * ln2 + 2 * sum
    }

    static func power2(_ k: Int) -> Double {
        Double(sign: .plus, exponent: k, significand: 1)
    }

    /// x^y for x > 0.
    static func pow(_ x: Double, _ y: Double) -> Double { exp(y * log(x)) }
}

extension DeterministicRandom {
    /// Standard normal by Marsaglia's polar method (log and square root only).
    mutating func standardNormal() -> Double {
        while true {
            let u = 2 * unitInterval() - 1
            let v = 2 * unitInterval() - 1
            let s = u * u + v * v
            if s > 0 && s < 1 {
                return u * (-2 * DeterministicMath.log(s) / s).squareRoot()
            }
        }
    }

    /// Exponential with the given mean (inverse transform).
    mutating func exponential(mean: Double) -> Double {
        -mean * DeterministicMath.log(1 - unitInterval())
    }

    /// True with probability p.
    mutating func chance(_ p: Double) -> Bool { p > 0 && unitInterval() < p }

    /// Gap to the next arrival of a Poisson process at `rate` per second, in nanoseconds
    /// (capped at 10^15 ns).
    mutating func poissonGap(perSecond rate: Double) -> UInt64 {
        let gap = exponential(mean: 1e9 / rate)
        return gap >= 1e15 ? UInt64(1e15) : UInt64(gap)
    }
}

import QuorumCrypto
