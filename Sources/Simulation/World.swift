import QuorumCrypto
import QuorumLedger
import QuorumStore

/// What the event queue holds. Enum-typed (no closures) so dispatch is a switch.
enum Event {
    case deliver(from: NodeID, to: NodeID, message: Message, size: Int32)
    case timer(node: NodeID, token: UInt64)
    /// A node's CPU finished its current message; take the next from its inbox.
    case cpuFree(node: NodeID)
    /// Open-loop Poisson arrival.
    case arrival
    /// Closed-loop (or deferred) issue by one principal, requested at `requested`.
    case issue(principal: Int32, requested: UInt64)
    /// Raw bytes (a malformed-encoding attack) delivered to a replica.
    case deliverBytes(from: NodeID, to: NodeID, bytes: [UInt8])
    /// A crashed replica restarts from its durable state.
    case restart(replica: Int32)
    /// A crashed principal recovers (with or without its durable log).
    case principalRecover(principal: Int32, keepLog: Bool)
    /// An audit read of a random certified payment.
    case auditRead
    /// The second half of a double spend, started later than the first.
    case secondSpend(principal: Int32)
}

/// One node's CPU: busy until some time, with an inbox of messages that arrived meanwhile.
struct NodeCPU<M> {
    var busyUntil: UInt64 = 0
    var inbox: [(from: NodeID, message: M, size: Int32)] = []
    /// The next message to process is `inbox[head]`; `count` mirrors `inbox.count`. Both are kept
    /// here so that asking whether the inbox is empty, which every delivered message does, reads
    /// this struct's cache line only and not the inbox buffer's header (a cache miss per message
    /// in a large run, 2 % of its time in perf).
    private(set) var head: Int32 = 0
    private var count: Int32 = 0
    var wakeScheduled = false

    var isEmpty: Bool { head == count }
    /// Messages waiting.
    var pending: Int { Int(count - head) }

    mutating func push(_ from: NodeID, _ message: M, _ size: Int32) {
        inbox.append((from, message, size))
        count += 1
    }

    mutating func pop() -> (from: NodeID, message: M, size: Int32)? {
        guard head < count else { return nil }
        let item = inbox[Int(head)]
        head += 1
        if head == count {
            inbox.removeAll(keepingCapacity: true)
            head = 0
            count = 0
        } else if head > 1024, head * 2 > count {
            inbox.removeFirst(Int(head))
            count -= head
            head = 0
        }
        return item
    }
}

/// A payment's life, one row of latency.csv.
struct PaymentRecord {
    static let never = UInt64.max
    var key: Digest
    var payer: Int32
    var inputs: UInt8
    var outputs: UInt8
    var issued: UInt64
    /// When its writer started (issue may wait for a free slot).
    var started: UInt64 = 0
    /// Σ of the amounts its inputs spend (what is locked if it never completes).
    var value: UInt64 = 0
    var certified = PaymentRecord.never
    var committed = PaymentRecord.never
    var confirmed = PaymentRecord.never
    var payeesPending: Int32
    /// Longest chain of payments back to genesis (a genesis payment's children have depth 1).
    var depth: UInt32 = 1
    var failed = false
    /// 0 for an honest payment, else 1 + the index of the `Attack` it belongs to.
    var attack: UInt8 = 0
    var isHonest: Bool { attack == 0 }
}

struct PrincipalHost {
    // Every vote and ack a payer receives reads `meter` and `writers` and nothing else here:
    // declared first, they share a cache line (they were 200 bytes apart, one miss each).
    let meter: CryptoMeter
    typealias WriterSlot = (token: UInt64, writer: Writer, payment: Int32, parents: [CertifiedPayment])
    var writers: [WriterSlot] = []
    var wallet: Wallet<PaymentProof>
    var reader: Reader
    var nextToken: UInt64 = 1
    /// Requests waiting for a free slot (open loop), by request time.
    var deferred: [UInt64] = []
    /// Hand-overs being validated: key → when the first copy arrived.
    var validating: [Digest: UInt64] = [:]
    /// Hand-overs not yet acknowledged by their payee, re-sent on the retry timer.
    var handOvers: [(payee: Int, key: Digest, message: Message)] = []
    var handOverTimerArmed = false
    /// Crashed until this time (0: up).
    var downUntil: UInt64 = 0
    /// Crash (keeping the log or not) when the next payment certificate forms.
    var crashAtCertificate: Bool?
    /// Audit reads in flight: request → (key, start).
    var audits: [UInt64: (key: Digest, start: UInt64)] = [:]
    /// The last payment this principal committed, with its parents (for reuse attacks).
    var lastCommitted: (payment: CertifiedPayment, parents: [CertifiedPayment])?
    /// The last message this principal sent (for replay attacks).
    var lastSent: (to: NodeID, message: Message)?
    /// Second halves of double spends waiting to start.
    var pendingSpends: [Wallet<PaymentProof>.InFlight] = []
}

/// Counters by time bucket and message kind.
struct Metrics {
    let bucket: UInt64
    let loadGroups: Int
    var issued: [Int] = []
    var certified: [Int] = []
    var confirmed: [Int] = []
    var failed: [Int] = []
    /// Messages handled per (bucket, load group), flattened.
    var load: [Int] = []
    var messages = [Int](repeating: 0, count: Message.kindCount)
    var bytes = [Int](repeating: 0, count: Message.kindCount)
    var skipped = 0
    var rejectedAtPayee = 0
    /// Payee validations by payment depth: count, total and largest simulated time from the
    /// hand-over's arrival to acceptance.
    var validations: [(count: Int, total: UInt64, max: UInt64)] = []

    mutating func recordValidation(depth: UInt32, ns: UInt64) {
        let d = Int(min(depth, 1 << 16))
        if d >= validations.count { validations += Array(repeating: (0, 0, 0), count: d + 1 - validations.count) }
        validations[d].count += 1
        validations[d].total &+= ns
        validations[d].max = Swift.max(validations[d].max, ns)
    }

    init(bucket: UInt64, loadGroups: Int) {
        self.bucket = max(1, bucket)
        self.loadGroups = max(1, loadGroups)
    }

    mutating func index(_ time: UInt64) -> Int {
        let i = Int(time / bucket)
        if i >= issued.count {
            let grow = i + 1 - issued.count
            issued += [Int](repeating: 0, count: grow)
            certified += [Int](repeating: 0, count: grow)
            confirmed += [Int](repeating: 0, count: grow)
            failed += [Int](repeating: 0, count: grow)
            load += [Int](repeating: 0, count: grow * loadGroups)
        }
        return i
    }
}

extension Message {
    /// Position of `kind` in `Message.kinds`.
    var kindIndex: Int {
        switch self {
        case .prepareRedeem: return 0
        case .preparePayment: return 1
        case .prepareBatch: return 2
        case .vote: return 3
        case .reject: return 4
        case .commit: return 5
        case .ack: return 6
        case .read: return 7
        case .readReply: return 8
        case .repairOffer: return 9
        case .repairRequest: return 10
        case .gossip: return 11
        case .handOver: return 12
        }
    }
}
