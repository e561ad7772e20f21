import QuorumCrypto
import QuorumLedger
import QuorumStore

/// The files a run writes. Everything here is a pure function of the scenario and seed; wall-clock
/// figures go to `wall.json` only, so results compare byte for byte.
public struct RunReport {
    public var throughputCSV: String
    public var latencyCSV: String
    public var summaryJSON: String
    public var violationsCSV: String
    /// Confirm-latency quantiles of the payments issued in the steady window.
    public var latencyCDFCSV: String
    /// Payee validation time by payment depth (empty for the baselines).
    public var validationCSV: String
    public var violations: [Violation]
    public var payments: Int
    public var certified: Int
    public var confirmed: Int
    public var failed: Int
    public var events: UInt64
    public var simulatedTime: UInt64
    public var p50: UInt64?
    public var p99: UInt64?
    /// Confirmed payments per simulated second in the steady window.
    public var steadyThroughput: String
}

/// The measurement window of every system: payments confirmed during [offered/5, offered)
/// give the throughput, payments issued then give the latencies, where `offered` is how long
/// the workload offered payments: `duration`, or less when `workload.payments` stopped issuing
/// first (see `offeredUntil`). The first fifth is warm-up (empty queues, no history); the drain
/// after the offer ends only finishes stragglers.
public struct SteadyState {
    public let start: UInt64
    public let end: UInt64
    public private(set) var confirmedInWindow = 0
    public private(set) var issuedInWindow = 0
    /// Confirm latencies of payments issued in the window, sorted.
    public private(set) var latencies: [UInt64] = []

    /// When the workload stopped offering payments: `duration`, or just after the last payment
    /// started (`lastIssue`) when the run issued its `cap` of payments (`workload.payments`,
    /// 0: none) before then.
    /// Without this, a run capped early measured a window after its last payment (a capped
    /// 125,000-payment scale run reported 0 payments/s in [2.2 s, 11 s)).
    public static func offeredUntil(duration: UInt64, cap: Int, issued: Int, lastIssue: UInt64?) -> UInt64 {
        guard cap > 0, issued >= cap, let last = lastIssue else { return duration }
        return min(duration, last &+ 1)
    }

    /// - Parameter offered: how long payments were offered (`offeredUntil`).
    public init<S: Sequence>(offered: UInt64, outcomes: S) where S.Element == (issued: UInt64, confirmed: UInt64) {
        start = offered / 5
        end = max(offered, start + 1)
        for (issued, confirmed) in outcomes {
            if confirmed != PaymentRecord.never, confirmed >= start, confirmed < end { confirmedInWindow += 1 }
            guard issued >= start, issued < end else { continue }
            issuedInWindow += 1
            if confirmed != PaymentRecord.never { latencies.append(confirmed &- issued) }
        }
        latencies.sort()
    }

    public var throughput: String { fixed(UInt64(confirmedInWindow) * Time.second, end - start, 3) }

    func json(offered: Double) -> String {
        var o = JSONObject()
        o.add(raw: "window_s", "[\(fixed(start, Time.second, 3)), \(fixed(end, Time.second, 3))]")
        o.add(raw: "offered_per_s", "\(offered)")
        o.add(raw: "confirmed_per_s", throughput)
        o.add("issued_in_window", issuedInWindow)
        o.add("unconfirmed_of_issued", issuedInWindow - latencies.count)
        var lat = JSONObject()
        for (name, permille) in [("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999)] {
            lat.add(raw: name, quantile(latencies, permille).map { fixed($0, Time.millisecond, 3) } ?? "null")
        }
        lat.add(raw: "max", latencies.last.map { fixed($0, Time.millisecond, 3) } ?? "null")
        o.add(raw: "confirm_latency_ms", lat.text(indent: 2))
        return o.text(indent: 1)
    }

    /// `permille,confirm_ms`: quantiles 0, 1, …, 100 % and 99.5, 99.9 %, nearest rank.
    var cdfCSV: String {
        var csv = "permille,confirm_ms\n"
        let points = Array(stride(from: 0, through: 990, by: 10)) + [995, 999, 1000]
        for p in points {
            guard let v = quantile(latencies, max(1, p)) else { break }
            csv += "\(p),\(fixed(v, Time.millisecond, 3))\n"
        }
        return csv
    }
}

extension Simulator {
    /// Builds the CSVs and summary. `scenarioHash` identifies the resolved scenario text.
    public func report(scenarioHash: String, toolVersion: String) -> RunReport {
        let m = metrics
        let throughput = m.throughputCSV(certified: m.certified, failed: m.failed)
        var latency = "payment,payer,inputs,outputs,issued_ns,certified_ns,committed_ns,confirmed_ns,status\n"
        var certifyLatency = [UInt64](), confirmLatency = [UInt64]()
        var certified = 0, confirmed = 0, failed = 0
        for (i, r) in records.enumerated() where r.isHonest {
            let status = r.failed ? "failed" : r.confirmed != PaymentRecord.never ? "confirmed"
                : r.certified != PaymentRecord.never ? "certified" : "pending"
            if r.certified != PaymentRecord.never { certified += 1; certifyLatency.append(r.certified - r.issued) }
            if r.confirmed != PaymentRecord.never { confirmed += 1; confirmLatency.append(r.confirmed - r.issued) }
            if r.failed { failed += 1 }
            if scenario.outputs.latencyCSV {
                latency += "\(i),\(r.payer),\(r.inputs),\(r.outputs),\(r.issued),\(field(r.certified)),\(field(r.committed)),\(field(r.confirmed)),\(status)\n"
            }
        }
        certifyLatency.sort()
        confirmLatency.sort()
        let network = networkStats
        let offered = SteadyState.offeredUntil(duration: scenario.duration, cap: scenario.workload.payments,
                                               issued: records.count, lastIssue: records.last?.started)
        let steady = SteadyState(offered: offered, outcomes: records.lazy.filter(\.isHonest).map { ($0.issued, $0.confirmed) })
        var validation = "depth,validations,mean_ms,max_ms\n"
        for (depth, v) in m.validations.enumerated() where v.count > 0 {
            validation += "\(depth),\(v.count),\(fixed(v.total, UInt64(v.count) * Time.millisecond, 3)),\(fixed(v.max, Time.millisecond, 3))\n"
        }
        var json = JSONObject.runHeader(scenario, scenarioHash: scenarioHash, toolVersion: toolVersion,
                                        endTime: endTime, events: events, replicas: replicaCountForReport)
        json.add("payments_issued", records.count { $0.isHonest })
        json.add("attack_payments", records.count { !$0.isHonest })
        json.add("payments_certified", certified)
        json.add("payments_confirmed", confirmed)
        json.add("payments_failed", failed)
        json.add("payments_skipped", metrics.skipped)
        json.add("rejected_at_payee", metrics.rejectedAtPayee)
        json.add("replica_rejects", replicaRejects)
        json.add(raw: "certified_per_s", fixed(UInt64(certified) * Time.second, max(1, scenario.duration), 3))
        json.add(raw: "certify_latency_ms", percentileJSON(certifyLatency))
        json.add(raw: "confirm_latency_ms", percentileJSON(confirmLatency))
        json.add(raw: "steady", steady.json(offered: scenario.offeredRate))
        var byKind = JSONObject()
        for (i, kind) in Message.kinds.enumerated() {
            var entry = JSONObject()
            entry.add("messages", metrics.messages[i])
            entry.add("bytes", metrics.bytes[i])
            byKind.add(raw: kind, entry.text(indent: 2))
        }
        json.add(raw: "messages_by_kind", byKind.text(indent: 1))
        json.add("messages_total", metrics.messages.reduce(0, +))
        json.add("bytes_total", metrics.bytes.reduce(0, +))
        json.add("messages_lost", network.lost)
        json.add("messages_partitioned", network.cut)
        json.add("messages_duplicated", network.duplicated)
        var attacks = JSONObject()
        for (i, a) in Attack.allCases.enumerated() where attacksMounted[i] > 0 { attacks.add(a.rawValue, attacksMounted[i]) }
        json.add(raw: "attacks_mounted", attacks.text(indent: 1))
        var faulty = JSONObject()
        for i in faults.replicas.keys.sorted() { faulty.add(String(i), string: faults.replicas[i]?.behaviour.rawValue ?? "") }
        json.add(raw: "faulty_replicas", faulty.text(indent: 1))
        let locked = lockedFunds
        var lockedJSON = JSONObject()
        lockedJSON.add("total", Amounts.checkedSum(locked.map(\.amount)) ?? Ledger.maxSupply)
        lockedJSON.add("payments", locked.count)
        var byReason = [String: UInt64]()
        for l in locked { byReason[l.reason, default: 0] &+= l.amount }
        var reasons = JSONObject()
        for reason in byReason.keys.sorted() { reasons.add(reason, byReason[reason] ?? 0) }
        lockedJSON.add(raw: "by_reason", reasons.text(indent: 2))
        var who = JSONObject()
        var perPrincipal = [Int: UInt64]()
        for l in locked { perPrincipal[l.principal, default: 0] &+= l.amount }
        for p in perPrincipal.keys.sorted().prefix(100) { who.add(String(p), perPrincipal[p] ?? 0) }
        lockedJSON.add(raw: "by_principal_first_100", who.text(indent: 2))
        json.add(raw: "locked_funds", lockedJSON.text(indent: 1))
        var byInvariant = JSONObject()
        for inv in InvariantNames.all { byInvariant.add(inv, violations.count { $0.invariant == inv }) }
        json.add(raw: "violations", byInvariant.text(indent: 1))
        var csv = "invariant,time_ns,detail\n"
        for v in violations { csv += "\(v.invariant),\(v.time),\"\(v.detail.replacingOccurrences(of: "\"", with: "\"\""))\"\n" }
        return RunReport(throughputCSV: throughput, latencyCSV: latency, summaryJSON: json.text(indent: 0) + "\n",
                         violationsCSV: csv, latencyCDFCSV: steady.cdfCSV, validationCSV: validation, violations: violations,
                         payments: records.count { $0.isHonest }, certified: certified, confirmed: confirmed, failed: failed,
                         events: events, simulatedTime: endTime,
                         p50: quantile(confirmLatency, 500), p99: quantile(confirmLatency, 990),
                         steadyThroughput: steady.throughput)
    }


    var replicaCountForReport: Int { scenario.topology.replicaCount }

    private func field(_ t: UInt64) -> String { t == PaymentRecord.never ? "" : "\(t)" }
}

/// Nearest-rank quantile of sorted integers (`permille` / 1000).
func quantile(_ sorted: [UInt64], _ permille: Int) -> UInt64? {
    guard !sorted.isEmpty else { return nil }
    let rank = (sorted.count * permille + 999) / 1000
    return sorted[max(0, min(sorted.count - 1, rank - 1))]
}

/// `num / den` printed with `decimals` decimals using integer arithmetic only.
public func fixed(_ num: UInt64, _ den: UInt64, _ decimals: Int) -> String {
    var scale: UInt64 = 1
    for _ in 0..<decimals { scale *= 10 }
    let scaled = num.multipliedFullWidth(by: scale)
    let (q, _) = den.dividingFullWidth(scaled.high < den ? scaled : (high: 0, low: UInt64.max))
    let whole = q / scale, frac = q % scale
    guard decimals > 0 else { return "\(whole)" }
    let digits = String(frac)
    return "\(whole)." + String(repeating: "0", count: decimals - digits.count) + digits
}

/// A tiny JSON writer with fields in insertion order (deterministic output, no Foundation).
struct JSONObject {
    private var fields: [(String, String)] = []

    mutating func add(_ key: String, _ value: some BinaryInteger) { fields.append((key, "\(value)")) }
    mutating func add(_ key: String, string: String) { fields.append((key, JSONObject.quote(string))) }
    mutating func add(raw key: String, _ value: String) { fields.append((key, value)) }

    func text(indent: Int) -> String {
        guard !fields.isEmpty else { return "{}" }
        let pad = String(repeating: "  ", count: indent + 1)
        let body = fields.map { "\(pad)\(JSONObject.quote($0.0)): \($0.1)" }.joined(separator: ",\n")
        return "{\n" + body + "\n" + String(repeating: "  ", count: indent) + "}"
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if u.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}

extension JSONObject {
    /// The fields every system's summary.json starts with.
    static func runHeader(_ scenario: Scenario, scenarioHash: String, toolVersion: String, endTime: UInt64,
                          events: UInt64, replicas: Int) -> JSONObject {
        var json = JSONObject()
        json.add("tool_version", string: toolVersion)
        json.add("system", string: scenario.system.rawValue)
        json.add("scenario", string: scenario.name)
        json.add("scenario_hash", string: scenarioHash)
        json.add("seed", scenario.seed)
        json.add("simulated_ns", endTime)
        json.add("events", events)
        json.add("replicas", replicas)
        json.add("principals", scenario.workload.principals)
        return json
    }
}

extension Metrics {
    /// throughput.csv: one row per bucket. Baselines pass their confirmations as `certified` (a
    /// confirmed payment is final there) and no failures.
    func throughputCSV(certified: [Int], failed: [Int]?) -> String {
        var csv = "time_s,issued,certified,confirmed,failed,replica_messages,max_group_messages,mean_group_messages_milli\n"
        for b in 0..<issued.count {
            let loads = load[(b * loadGroups)..<((b + 1) * loadGroups)]
            let total = loads.reduce(0, +)
            csv += "\(UInt64(b) * bucket / Time.second),\(issued[b]),\(certified[b]),\(confirmed[b]),\(failed?[b] ?? 0),"
            csv += "\(total),\(loads.max() ?? 0),\(total * 1000 / loadGroups)\n"
        }
        return csv
    }
}

/// The invariants of PROTOCOL §7, in order.
public enum InvariantNames {
    public static let all = ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11",
                             "L1", "L2", "L3", "L4", "L5", "L6"]
}

extension Simulator {
    /// Every certified record seen in the run with its certificate, one per line, for an
    /// independent checker. Format (documented in the README): a header, the replica directory,
    /// each principal's group, then `payment|redeem <key hex> <hex of the canonical encoding>`.
    public func ledgerDump() -> String {
        var text = "# quorumcoin ledger v1 network_id=\(context.networkId) epoch=\(context.epoch) n=\(context.quorum.n) f=\(context.quorum.f) W=\(context.quorum.writeQuorum) genesis_supply=\(context.genesis.supply)\n"
        for (i, key) in context.replicaKeys.enumerated() { text += "replica \(i) \(key.raw.hex)\n" }
        for key in principalKeys {
            let g = context.group(of: key)
            text += "group \(key.raw.hex) \(g.id.raw) \(g.members.map(String.init).joined(separator: ","))\n"
        }
        for g in context.genesis.payments { text += "genesis \(g.key.hex)\n" }
        for record in checker.certifiedRecords {
            var w = ByteWriter(capacity: 512)
            record.encodeRecord(into: &w)
            switch record {
            case .payment: text += "payment \(record.key.hex) \(Hex.encode(w.bytes))\n"
            case .redeem: text += "redeem \(record.key.hex) \(Hex.encode(w.bytes))\n"
            }
        }
        return text
    }
}
