import QuorumCrypto
import QuorumStore

/// What a faulty replica does (PROTOCOL §6). Every behaviour lives in the simulator's fault layer,
/// wrapping or replacing the honest `Replica`; honest code has no switch for any of them.
public enum ReplicaBehaviour: String, Sendable, Equatable, CaseIterable {
    /// Stops at `at_s` and never answers again.
    case crash
    /// Stops at `at_s`, restarts at `recover_s` from its durable state (locks kept only if `durable_locks`).
    case crashRecover = "crash-recover"
    /// Receives everything, answers nothing.
    case silent
    /// Honest, but each message costs `extra_ms` more CPU.
    case slow
    /// Validates records honestly but never remembers a lock: votes for every valid value of a key.
    case equivocate
    /// Votes for anything it is asked to, valid or not, without locking.
    case voteInvalid = "vote-invalid"
    /// Acknowledges commits without storing them.
    case ackWithoutStore = "ack-without-store"
    /// Lies on reads (see `lie`).
    case readLie = "read-lie"
    /// One adversary with every other colluder: votes for anything, acks without storing, and
    /// answers reads with "not found".
    case collude
}

/// How a lying replica answers reads.
public enum ReadLie: String, Sendable, Equatable, CaseIterable {
    /// "not found", even for what it holds.
    case stale = "stale-not-found"
    /// A signed vote for a different value of the key (another spender for a redeem).
    case forged = "forged-value"
    /// A genuinely certified record, but of another key.
    case otherKey = "other-key"
    /// No reply at all.
    case withhold
}

/// Attacks a Byzantine principal mounts (PROTOCOL §6).
public enum Attack: String, Sendable, Equatable, CaseIterable {
    /// Two payments spending one coin, raced to the group from two writers.
    case doubleSpend = "double-spend"
    /// A second payment citing a redeem certificate that names the first.
    case reuseRedeem = "reuse-redeem"
    /// A valid redeem sent to a group that is not the owner's.
    case wrongGroup = "wrong-group"
    /// A redeem of another principal's coin.
    case theft
    /// Outputs + fee exceed the inputs.
    case overspend
    /// Output amounts whose sum overflows 64 bits.
    case overflow
    /// A zero-input payment outside genesis.
    case mint
    /// A commit carrying a forged certificate (too few votes, duplicate or non-member signers,
    /// wrong key, epoch or network, zeroed signature).
    case forgedCertificate = "forged-certificate"
    /// Random and mutated bytes sent straight to replicas.
    case malformed
    /// Re-sends an earlier message of its own, several times.
    case replay
    /// Crashes between writes and recovers with its log: must finish the same payment (L5).
    case crash
    /// Crashes between writes and loses its log: may lock its own inputs (allowed by L4).
    case crashNoLog = "crash-no-log"
}

/// Test-only mutants: deliberately broken protocol variants the invariant checker must catch.
/// They are switches of the fault layer, never of honest code.
public enum Mutant: String, Sendable, Equatable, CaseIterable {
    case none
    /// Replicas accept any certified redeem of an input, whatever payment it names (breaks S2).
    case redeemWithoutSpender = "redeem-without-spender"
    /// Readers return a value without writing it back (breaks S11).
    case noWriteBack = "no-write-back"
}

extension Scenario {
    public struct ReplicaFault: Sendable, Equatable {
        public var behaviour: ReplicaBehaviour
        /// Replica ids; empty: chosen by `perGroup` or `count` with the run's seed.
        public var ids: [Int] = []
        /// Faulty replicas per shard (partitioned mode).
        public var perGroup = 0
        /// Shards `perGroup` applies to (empty: all).
        public var groups: [Int] = []
        /// Faulty replicas chosen from all replicas.
        public var count = 0
        public var at: UInt64 = 0
        public var recover: UInt64 = 0
        public var durableLocks = true
        public var extraDelay: UInt64 = 50 * Time.millisecond
        public var lie: ReadLie = .stale

        public init(behaviour: ReplicaBehaviour) { self.behaviour = behaviour }
    }

    public struct PrincipalAttack: Sendable, Equatable {
        public var attack: Attack
        /// Byzantine principals mounting it (chosen by seed among `groups`' principals, or all).
        public var count = 1
        /// Principal indices; overrides `count`.
        public var principals: [Int] = []
        /// Restrict the chosen principals to these shards (partitioned mode).
        public var groups: [Int] = []
        /// Probability that one of their payments is this attack instead of an honest payment.
        public var rate = 1.0

        public init(attack: Attack) { self.attack = attack }
    }

    public struct FaultSettings: Sendable, Equatable {
        public var replicas: [ReplicaFault] = []
        public var principals: [PrincipalAttack] = []
        public var mutant: Mutant = .none
        /// Liveness mode: every fault stops at this time (0: never) and the checker then demands
        /// that every pending honest payment confirms within the L1 bound.
        public var offAt: UInt64 = 0
        /// Audit reads per second of already-committed keys (checked by S11 and L2).
        public var auditReads = 0.0

        public var isEmpty: Bool { replicas.isEmpty && principals.isEmpty && mutant == .none }
    }
}
