import QuorumStore

/// A simulation scenario: topology + network + workload + protocol + crypto + faults + outputs,
/// each its own section (FoundationDB-style composition). Every field has a default; times are
/// integer nanoseconds inside, written in the file with their unit in the key (`_ms`, `_s`).
public struct Scenario: Sendable, Equatable {
    public var name = "unnamed"
    /// What is simulated: QuorumCoin itself, or one of the two baselines on the same network and
    /// CPU model.
    public var system: System = .quorumcoin
    /// Root of all randomness in the run; every component derives its own stream from it.
    public var seed: UInt64 = 1
    /// Payments are issued during [0, duration).
    public var duration: UInt64 = 10 * Time.second
    /// After `duration`, the run continues at most this long for in-flight payments to finish.
    public var drain: UInt64 = 30 * Time.second
    public var topology = Topology()
    public var network = NetworkSettings()
    public var workload = Workload()
    public var protocolSettings = ProtocolSettings()
    public var crypto = CryptoSettings()
    public var outputs = OutputSettings()
    public var engine = EngineSettings()
    public var faults = FaultSettings()
    public var smr = SMRSettings()
    public var bitcoin = BitcoinSettings()

    public init() {}

    public enum System: String, Sendable, Equatable, CaseIterable {
        /// Payments as records in the sharded Byzantine key-value store (the poster's design).
        case quorumcoin
        /// Baseline: one PBFT-style replicated state machine orders and executes every payment.
        case smr
        /// Baseline: Bitcoin's proof-of-work longest chain.
        case bitcoin
    }

    /// PBFT-style SMR baseline (Castro & Liskov, OSDI 1999, normal case): principals send signed
    /// payments to the leader, which batches them; pre-prepare, prepare, commit (2f+1 signed
    /// messages each) among one committee of `topology.n` replicas; every replica checks every
    /// payment's signature and executes it; the payer confirms on f+1 matching replies.
    public struct SMRSettings: Sendable, Equatable {
        /// Most payments in one batch.
        public var batch = 400
        /// The leader closes a non-full batch this long after its first payment.
        public var batchTimeout: UInt64 = 5 * Time.millisecond
        /// Simulated CPU to execute one payment against the balance table.
        public var executeCost: UInt64 = 2 * Time.microsecond
        /// Bytes of one payment on the wire (a one-input, two-output transfer).
        public var paymentBytes = 250
    }

    /// Bitcoin baseline (Nakamoto 2008; parameters from Croman et al., FC 2016 and Decker &
    /// Wattenhofer, P2P 2013): blocks arrive as a Poisson process at one mean interval over all
    /// miners (equal hash power); a miner extends the longest chain it knows; blocks propagate by
    /// gossip over the scenario's network, each hop paying transfer and validation time, so blocks
    /// found meanwhile fork; a payment confirms when its block is `confirmations` deep on the chain
    /// an observer node follows.
    public struct BitcoinSettings: Sendable, Equatable {
        public var blockInterval: UInt64 = 600 * Time.second
        public var blockBytes = 1_000_000
        public var paymentBytes = 250
        public var confirmations = 6
        /// Miners (0: one per replica of the topology, at most 10,000).
        public var miners = 0
        /// Gossip peers per miner.
        public var peers = 8
        /// Per-hop block transfer rate, bytes per second.
        public var bandwidth: UInt64 = 2_500_000
    }

    public struct Topology: Sendable, Equatable {
        /// Number of replica groups (shards) in `partitioned` mode.
        public var groups = 4
        /// Replicas per group.
        public var n = 4
        /// Byzantine replicas tolerated per group (n ≥ 3f+1).
        public var f = 1
        public var assignment: AssignmentMode = .partitioned
        /// Total replicas in `random-group` mode (0: groups × n).
        public var replicas = 0

        public var replicaCount: Int { assignment == .randomGroup && replicas > 0 ? replicas : groups * n }
    }

    public enum Latency: Sendable, Equatable {
        case constant(UInt64)
        case uniform(min: UInt64, max: UInt64)
        /// Normal, truncated at 0.
        case normal(mean: UInt64, stddev: UInt64)
        /// exp(N(mu, sigma)) milliseconds.
        case logNormal(mu: Double, sigma: Double)
        /// One-way delay between regions (ns), plus uniform jitter in [0, jitter].
        case regions(names: [String], matrix: [[UInt64]], jitter: UInt64)
    }

    /// Nodes on opposite sides cannot exchange messages during [start, heal).
    public struct Partition: Sendable, Equatable {
        public var start: UInt64
        public var heal: UInt64
        /// Replica ids on one side; everything else (other replicas, all principals) on the other.
        public var isolated: [Int]
    }

    public struct NetworkSettings: Sendable, Equatable {
        public var latency: Latency = .constant(10 * Time.millisecond)
        public var loss = 0.0
        public var duplicate = 0.0
        /// Probability a message is held back by up to `reorderDelay` extra.
        public var reorder = 0.0
        public var reorderDelay: UInt64 = 5 * Time.millisecond
        /// Uplink bytes per second per node (0: unlimited).
        public var bandwidth: UInt64 = 0
        public var partitions: [Partition] = []

        /// The smallest delay the latency model can draw (a partitioned run's window).
        var minimumDelay: UInt64 {
            switch latency {
            case let .constant(c): return c
            case let .uniform(lo, _): return lo
            case .normal, .logNormal: return 0
            case let .regions(_, matrix, _): return matrix.flatMap { $0 }.min() ?? 0
            }
        }
    }

    public enum Arrival: String, Sendable, Equatable, CaseIterable {
        /// Poisson arrivals at `rate` payments per second over all principals.
        case open
        /// Each principal keeps `inFlight` payments outstanding.
        case closed
    }

    public enum Recipients: Sendable, Equatable {
        case uniform
        /// Zipf with exponent s over principal indices (index 0 most popular).
        case zipf(Double)
    }

    public struct Workload: Sendable, Equatable {
        public var principals = 100
        /// Genesis coins per principal.
        public var coins = 4
        /// Amount of each genesis coin.
        public var coinAmount: UInt64 = 1_000_000
        public var arrival: Arrival = .open
        /// Offered payments per second (open loop).
        public var rate = 200.0
        /// Payments outstanding per principal (closed loop).
        public var inFlight = 1
        public var recipients: Recipients = .uniform
        /// Inputs per payment (the wallet spends at least this many coins when it has them).
        public var inputs = 1
        /// Payees per payment (a change output may be added).
        public var outputs = 1
        /// Each payee receives an amount uniform in 1…maxAmount.
        public var maxAmount: UInt64 = 100
        public var fee: UInt64 = 0
        /// Stop issuing after this many payments (0: no limit).
        public var payments = 0
        /// Share of payments whose payees sit in another shard than the payer (nil: payees drawn
        /// from all principals, so about (groups-1)/groups of payments cross shards).
        public var crossGroup: Double? = nil
    }

    public struct ProtocolSettings: Sendable, Equatable {
        public var variant: WriteVariant = .perRecord
        public var validation: ValidationMode = .certificate
        /// Writers and readers re-send to silent replicas this often.
        public var retry: UInt64 = 500 * Time.millisecond
        /// Replica repair round (0: off).
        public var repair: UInt64 = 200 * Time.millisecond
        public var networkId: UInt32 = 1
        public var epoch: UInt32 = 1
    }

    public enum CryptoMode: String, Sendable, Equatable, CaseIterable {
        /// Real Ed25519 and BLAKE2b through libsodium.
        case real
        /// SipHash-1-3 MACs of public key ‖ message under the run's MAC key: unforgeable inside
        /// the simulation, ~100× cheaper in wall time; simulated CPU is still charged at Ed25519 rates.
        case modelled
    }

    /// Simulated CPU: each node handles one message at a time and is busy for the cost of what it
    /// did. Defaults are this machine's measured libsodium rates.
    public struct CryptoSettings: Sendable, Equatable {
        public var mode: CryptoMode = .real
        public var signCost: UInt64 = 20 * Time.microsecond
        public var verifyCost: UInt64 = 65 * Time.microsecond
        /// Per byte of message handled (decoding and hashing; BLAKE2b ≈ 1.6 ns/byte).
        public var byteCost: UInt64 = 2
        /// Fixed cost per message handled.
        public var messageCost: UInt64 = 2 * Time.microsecond
    }

    /// How the simulator runs, not what it simulates... except that a partitioned run draws its
    /// workload and network from one stream per partition, so `partitions` is part of the
    /// scenario: the same scenario and seed give the same outputs whatever the machine.
    public struct EngineSettings: Sendable, Equatable {
        /// Shard-partitioned parallel run: the groups split into this many contiguous blocks, each
        /// simulated by its own thread, the threads at most a minimum network delay apart.
        public var partitions = 1
    }

    public struct OutputSettings: Sendable, Equatable {
        /// Width of a throughput.csv row.
        public var bucket: UInt64 = Time.second
        /// Write latency.csv (one row per payment).
        public var latencyCSV = true
    }
}

/// Time units in nanoseconds.
public enum Time {
    public static let microsecond: UInt64 = 1_000
    public static let millisecond: UInt64 = 1_000_000
    public static let second: UInt64 = 1_000_000_000
}
