import QuorumCrypto
import QuorumStore

/// Per-message delay, loss, duplication, reordering, bandwidth and partitions (issue 3 §2).
/// Draws from its own seeded stream, so changing the workload does not shift network draws.
struct Network {
    let settings: Scenario.NetworkSettings
    private var rng: DeterministicRandom
    /// Region index per node (replicas and principals round-robin over the regions).
    private let regionOf: [Int32]
    private var uplinkFree: [UInt64]
    private let isolated: [Set<UInt32>]

    private(set) var lost = 0
    private(set) var cut = 0
    private(set) var duplicated = 0

    init(settings: Scenario.NetworkSettings, replicaCount: Int, principalCount: Int, seed: UInt64, stream: String = "network") {
        self.settings = settings
        self.rng = DeterministicRandom(seed: seed, stream: stream)
        let total = replicaCount + principalCount
        if case let .regions(names, _, _) = settings.latency, !names.isEmpty {
            regionOf = (0..<total).map { node in
                Int32(node < replicaCount ? node % names.count : (node - replicaCount) % names.count)
            }
        } else {
            regionOf = []
        }
        uplinkFree = settings.bandwidth > 0 ? [UInt64](repeating: 0, count: total) : []
        isolated = settings.partitions.map { Set($0.isolated.map { UInt32($0) }) }
    }

    /// Arrival times of a message sent at `time` (empty when dropped; two when duplicated).
    mutating func deliveries(from: NodeID, to: NodeID, size: Int, at time: UInt64) -> (UInt64, UInt64?)? {
        for (i, p) in settings.partitions.enumerated() where time >= p.start && time < p.heal {
            if isolated[i].contains(from.raw) != isolated[i].contains(to.raw) {
                cut += 1
                return nil
            }
        }
        if rng.chance(settings.loss) {
            lost += 1
            return nil
        }
        var depart = time
        if settings.bandwidth > 0 {
            let start = max(time, uplinkFree[Int(from.raw)])
            depart = start &+ UInt64(size) &* Time.second / settings.bandwidth
            uplinkFree[Int(from.raw)] = depart
        }
        let first = depart &+ delay(from, to)
        var second: UInt64?
        if rng.chance(settings.duplicate) {
            duplicated += 1
            second = depart &+ delay(from, to)
        }
        return (first, second)
    }

    /// Adds another partition's counts (a partitioned run's report).
    mutating func absorbCounts(_ other: Network) {
        lost += other.lost
        cut += other.cut
        duplicated += other.duplicated
    }

    private mutating func delay(_ from: NodeID, _ to: NodeID) -> UInt64 {
        var d: UInt64
        switch settings.latency {
        case let .constant(c):
            d = c
        case let .uniform(lo, hi):
            d = lo &+ rng.uniform(below: (hi - lo) &+ 1)
        case let .normal(mean, stddev):
            let x = Double(mean) + Double(stddev) * rng.standardNormal()
            d = x <= 0 ? 0 : UInt64(x)
        case let .logNormal(mu, sigma):
            let ms = DeterministicMath.exp(mu + sigma * rng.standardNormal())
            d = ms >= 1e9 ? UInt64(1e15) : UInt64(ms * 1e6)
        case let .regions(_, matrix, jitter):
            let a = Int(regionOf[Int(from.raw)]), b = Int(regionOf[Int(to.raw)])
            d = matrix[a][b] &+ (jitter > 0 ? rng.uniform(below: jitter + 1) : 0)
        }
        if rng.chance(settings.reorder) { d &+= rng.uniform(below: settings.reorderDelay + 1) }
        return d
    }
}
