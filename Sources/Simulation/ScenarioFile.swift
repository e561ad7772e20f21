import QuorumStore
import Yams

/// A scenario file that cannot be used: names the file, the field (dotted path), the line, and the
/// expected form.
public struct ScenarioError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let field: String
    public let line: Int?
    public let expected: String

    public var description: String {
        let at = line.map { ":\($0)" } ?? ""
        return "\(file)\(at): field '\(field.isEmpty ? "(top level)" : field)': expected \(expected)"
    }
}

/// Every field of a scenario file: its dotted path, default (as written in YAML) and meaning.
/// Drives the parser's unknown-field check, `quorumsim scenario --help` and scenarios/README.md.
public enum ScenarioFields {
    public static let all: [(path: String, default: String, doc: String)] = [
        ("name", "unnamed", "Label written into summary.json."),
        ("system", "quorumcoin", "What runs: quorumcoin (the sharded store), smr (baseline: one PBFT-style committee orders everything) or bitcoin (baseline: proof-of-work chain). Baselines use the same network, workload and CPU costs; see the smr.* and bitcoin.* fields and README \"Baselines\"."),
        ("seed", "1", "Root of all randomness (unsigned 64-bit). `--seed` overrides it."),
        ("duration_s", "10", "Payments are issued during [0, duration) simulated seconds (decimal allowed)."),
        ("drain_s", "30", "After duration, at most this long for in-flight payments to finish."),
        ("topology.groups", "4", "Replica groups (shards) in partitioned mode; total replicas = groups × n."),
        ("topology.n", "4", "Replicas per group (n ≥ 3f+1, ≤ 255)."),
        ("topology.f", "1", "Byzantine replicas tolerated per group."),
        ("topology.assignment", "partitioned", "partitioned (disjoint shards) or random-group (n replicas sampled per principal)."),
        ("topology.replicas", "0", "Total replicas in random-group mode (0: groups × n)."),
        ("network.latency.model", "constant", "constant | uniform | normal | lognormal | regions."),
        ("network.latency.ms", "10", "constant: one-way delay in milliseconds (decimal allowed)."),
        ("network.latency.min_ms", "5", "uniform: lower bound."),
        ("network.latency.max_ms", "15", "uniform: upper bound."),
        ("network.latency.mean_ms", "10", "normal: mean (truncated at 0)."),
        ("network.latency.stddev_ms", "2", "normal: standard deviation."),
        ("network.latency.mu", "2.3", "lognormal: mean of ln(delay in ms)."),
        ("network.latency.sigma", "0.3", "lognormal: standard deviation of ln(delay in ms)."),
        ("network.latency.regions", "[]", "regions: region names; replica i and principal j sit in region i mod R and j mod R."),
        ("network.latency.matrix_ms", "[]", "regions: R×R one-way delays in milliseconds."),
        ("network.latency.jitter_ms", "0", "regions: extra delay uniform in [0, jitter]."),
        ("network.loss", "0", "Probability a message is lost."),
        ("network.duplicate", "0", "Probability a message is delivered twice."),
        ("network.reorder", "0", "Probability a message is held back by up to reorder_ms."),
        ("network.reorder_ms", "5", "Maximum extra delay of a reordered message."),
        ("network.bandwidth_mbps", "0", "Uplink per node in megabits per second (0: unlimited)."),
        ("network.partitions", "[]", "List of {start_s, heal_s, replicas: [ids]}: those replicas are cut from every other node in [start, heal)."),
        ("workload.principals", "100", "Principals (each an Ed25519 key pair)."),
        ("workload.coins", "4", "Genesis coins per principal."),
        ("workload.coin_amount", "1000000", "Amount of each genesis coin."),
        ("workload.arrival", "open", "open (Poisson at `rate`) or closed (`in_flight` outstanding per principal)."),
        ("workload.rate", "200", "Open loop: offered payments per second, all principals together."),
        ("workload.in_flight", "1", "Payments a principal may have outstanding (closed loop: always has)."),
        ("workload.recipients", "uniform", "uniform or zipf."),
        ("workload.zipf_s", "1", "zipf: exponent."),
        ("workload.inputs", "1", "Inputs per payment (the wallet spends at least this many coins)."),
        ("workload.outputs", "1", "Payees per payment (plus a change output when needed)."),
        ("workload.max_amount", "100", "Each payee gets an amount uniform in 1…max_amount."),
        ("workload.fee", "0", "Fee per payment."),
        ("workload.payments", "0", "Stop issuing after this many payments (0: no limit); the steady window then ends when the last one starts."),
        ("workload.cross_group", "uniform", "Partitioned mode: share (0…1) of payments whose payees sit in another shard than the payer, drawn uniformly (overrides zipf); uniform: payees drawn from all principals."),
        ("protocol.variant", "per-record", "per-record (redeems, then payment) or batched (one round locks all)."),
        ("protocol.validation", "certificate", "Payee validation: certificate (direct inputs) or closure (whole history)."),
        ("protocol.retry_ms", "500", "Writers and readers re-send to silent replicas this often."),
        ("protocol.repair_ms", "200", "Replica repair round (0: off)."),
        ("protocol.network_id", "1", "Network id bound into every signature."),
        ("protocol.epoch", "1", "Epoch bound into every vote."),
        ("crypto.mode", "real", "real: Ed25519 from libsodium; modelled: SipHash-1-3 MACs of public key ‖ message under the run's MAC key (for huge runs; CPU still charged at Ed25519 rates)."),
        ("crypto.sign_us", "20", "Simulated CPU per signature (µs; default: measured ≈ 51k signs/s, `quorumsim bench`)."),
        ("crypto.verify_us", "65", "Simulated CPU per verification (µs; default: measured ≈ 15k verifies/s)."),
        ("crypto.byte_ns", "2", "Simulated CPU per message byte handled (ns)."),
        ("crypto.message_us", "2", "Simulated CPU per message handled (µs)."),
        ("faults.replicas", "[]", "List of faulty-replica specs (fields `faults.replicas[].*`). At most one behaviour per replica."),
        ("faults.replicas[].behaviour", "-", "crash | crash-recover | silent | slow | equivocate | vote-invalid | ack-without-store | read-lie | collude."),
        ("faults.replicas[].ids", "[]", "Replica ids with this behaviour; if empty, `per_group` or `count` picks them with the seed."),
        ("faults.replicas[].per_group", "0", "Faulty replicas per shard (partitioned mode), in `groups` or all shards."),
        ("faults.replicas[].groups", "[]", "Shards `per_group` applies to (empty: all)."),
        ("faults.replicas[].count", "0", "Faulty replicas picked among all replicas."),
        ("faults.replicas[].at_s", "0", "crash, crash-recover: when the replica stops."),
        ("faults.replicas[].recover_s", "0", "crash-recover: when it restarts from its durable state."),
        ("faults.replicas[].durable_locks", "true", "crash-recover: whether its locks survived (false breaks S1/S10 with f Byzantine)."),
        ("faults.replicas[].extra_ms", "50", "slow: extra CPU time per message."),
        ("faults.replicas[].lie", "stale-not-found", "read-lie: stale-not-found | forged-value | other-key | withhold."),
        ("faults.principals", "[]", "List of Byzantine-principal attacks (fields `faults.principals[].*`)."),
        ("faults.principals[].attack", "-", "double-spend | reuse-redeem | wrong-group | theft | overspend | overflow | mint | forged-certificate | malformed | replay | crash | crash-no-log."),
        ("faults.principals[].count", "1", "Principals mounting it, picked with the seed."),
        ("faults.principals[].principals", "[]", "Principal indices mounting it (overrides count)."),
        ("faults.principals[].groups", "[]", "Pick the principals among those of these shards."),
        ("faults.principals[].rate", "1", "Probability that one of their payments is this attack."),
        ("faults.mutant", "none", "Test-only protocol mutant: none | redeem-without-spender | no-write-back."),
        ("faults.off_at_s", "0", "Liveness mode: all faults stop at this time (0: never); pending honest payments must then confirm."),
        ("faults.audit_reads", "0", "Reads per second of random committed keys by random principals (checked by S11 and L2)."),
        ("smr.batch", "400", "smr: most payments the leader puts in one batch."),
        ("smr.batch_timeout_ms", "5", "smr: the leader closes a non-full batch this long after its first payment."),
        ("smr.execute_us", "2", "smr: simulated CPU per payment executed against the balance table."),
        ("smr.payment_bytes", "250", "smr: bytes of one payment on the wire."),
        ("bitcoin.block_interval_s", "600", "bitcoin: mean time between blocks over all miners (exponential)."),
        ("bitcoin.block_bytes", "1000000", "bitcoin: block size limit in bytes."),
        ("bitcoin.payment_bytes", "250", "bitcoin: bytes of one payment (so a block holds block_bytes / payment_bytes)."),
        ("bitcoin.confirmations", "6", "bitcoin: a payment confirms when its block is this many blocks deep."),
        ("bitcoin.miners", "0", "bitcoin: miners with equal hash power (0: one per replica of the topology, at most 10000)."),
        ("bitcoin.peers", "8", "bitcoin: gossip peers each miner relays a new block to."),
        ("bitcoin.bandwidth_mbps", "20", "bitcoin: per-hop block transfer rate in megabits per second."),
        ("outputs.bucket_s", "1", "Width of one throughput.csv row in seconds."),
        ("outputs.latency_csv", "true", "Write latency.csv (one row per payment)."),
        ("engine.partitions", "1", "Threads that simulate the run, each a contiguous block of groups (needs `assignment: partitioned`, no faults, a latency model with a positive minimum; see the README). Part of the scenario: a partitioned run draws its workload and network per partition."),
    ]
}

/// Reads and writes scenario YAML. Strict: unknown fields, wrong types and out-of-range values
/// are errors naming the file, field and expected form; missing fields take their defaults.
public struct ScenarioFile {
    let file: String
    private var known: Set<String> { Set(ScenarioFields.all.map(\.path)) }

    public init(file: String) { self.file = file }

    public func parse(_ text: String) throws(ScenarioError) -> Scenario {
        try parse(text, overrides: [])
    }

    /// Parses `text` with `overrides` applied first: each sets the field at a dotted path (e.g.
    /// `topology.groups`) to a YAML value (`16`, `batched`, `[{behaviour: silent, per_group: 1}]`),
    /// creating sections as needed. Sweeps and `quorumsim run --set` use this; an error in an
    /// overridden field names the override.
    public func parse(_ text: String, overrides: [(path: String, value: String)]) throws(ScenarioError) -> Scenario {
        var root: Node
        do {
            root = try Yams.compose(yaml: text) ?? Node.mapping(Node.Mapping([]))
        } catch {
            throw ScenarioError(file: file, field: "", line: nil, expected: "valid YAML (\(error))")
        }
        guard root.mapping != nil else { throw fail(root, "", "a mapping of sections") }
        for (path, value) in overrides {
            let where_ = "\(file) (--set \(path)=\(value))"
            let node: Node
            do {
                guard let v = try Yams.compose(yaml: value) else {
                    throw ScenarioError(file: where_, field: path, line: nil, expected: "a YAML value")
                }
                node = v
            } catch let e as ScenarioError { throw e } catch {
                throw ScenarioError(file: where_, field: path, line: nil, expected: "a valid YAML value (\(error))")
            }
            let keys = path.split(separator: ".").map(String.init)
            guard !keys.isEmpty, let updated = Self.setting(root, keys[...], to: node) else {
                throw ScenarioError(file: where_, field: path, line: nil, expected: "a dotted path through mappings")
            }
            root = updated
        }
        do {
            return try parse(root: root)
        } catch {
            if let o = overrides.last(where: { error.field == $0.path || error.field.hasPrefix($0.path + ".") || error.field.hasPrefix($0.path + "[") }) {
                throw ScenarioError(file: "\(file) (--set \(o.path)=\(o.value))", field: error.field, line: nil, expected: error.expected)
            }
            throw error
        }
    }

    private static func setting(_ node: Node, _ keys: ArraySlice<String>, to value: Node) -> Node? {
        guard let key = keys.first else { return value }
        guard var mapping = node.mapping else { return nil }
        let child = mapping[key] ?? Node.mapping(Node.Mapping([]))
        guard let updated = setting(child, keys.dropFirst(), to: value) else { return nil }
        mapping[key] = updated
        return Node.mapping(mapping)
    }

    private func parse(root: Node) throws(ScenarioError) -> Scenario {
        try checkKeys(root, prefix: "")
        var s = Scenario()
        let d = Scenario()
        s.name = try string(root, "name") ?? d.name
        s.system = try choice(root, "system", "system", Scenario.System.self) ?? d.system
        s.seed = try unsigned(root, "seed") ?? d.seed
        s.duration = try duration(root, "duration_s", unit: Time.second) ?? d.duration
        s.drain = try duration(root, "drain_s", unit: Time.second) ?? d.drain
        if let t = root["topology"] {
            s.topology.groups = try int(t, "topology.groups", "groups", min: 1, max: 1_000_000) ?? d.topology.groups
            s.topology.n = try int(t, "topology.n", "n", min: 1, max: 255) ?? d.topology.n
            s.topology.f = try int(t, "topology.f", "f", min: 0, max: 84) ?? d.topology.f
            s.topology.assignment = try choice(t, "topology.assignment", "assignment", AssignmentMode.self) ?? d.topology.assignment
            s.topology.replicas = try int(t, "topology.replicas", "replicas", min: 0, max: 10_000_000) ?? 0
            guard s.topology.n >= 3 * s.topology.f + 1 else {
                throw fail(t["n"] ?? t, "topology.n", "n ≥ 3f+1 (n = \(s.topology.n), f = \(s.topology.f))")
            }
            if s.topology.assignment == .randomGroup, s.topology.replicas > 0, s.topology.replicas < s.topology.n {
                throw fail(t["replicas"] ?? t, "topology.replicas", "at least n replicas")
            }
        }
        if let n = root["network"] { s.network = try network(n) }
        if let w = root["workload"] { s.workload = try workload(w) }
        if let p = root["protocol"] {
            s.protocolSettings.variant = try choice(p, "protocol.variant", "variant", WriteVariant.self) ?? d.protocolSettings.variant
            s.protocolSettings.validation = try choice(p, "protocol.validation", "validation", ValidationMode.self) ?? d.protocolSettings.validation
            s.protocolSettings.retry = try duration(p, "protocol.retry_ms", key: "retry_ms", unit: Time.millisecond) ?? d.protocolSettings.retry
            s.protocolSettings.repair = try duration(p, "protocol.repair_ms", key: "repair_ms", unit: Time.millisecond) ?? d.protocolSettings.repair
            s.protocolSettings.networkId = UInt32(try int(p, "protocol.network_id", "network_id", min: 0, max: Int(UInt32.max)) ?? 1)
            s.protocolSettings.epoch = UInt32(try int(p, "protocol.epoch", "epoch", min: 0, max: Int(UInt32.max)) ?? 1)
            guard s.protocolSettings.retry > 0 else { throw fail(p, "protocol.retry_ms", "a positive number of milliseconds") }
        }
        if let c = root["crypto"] {
            s.crypto.mode = try choice(c, "crypto.mode", "mode", Scenario.CryptoMode.self) ?? d.crypto.mode
            s.crypto.signCost = try duration(c, "crypto.sign_us", key: "sign_us", unit: Time.microsecond) ?? d.crypto.signCost
            s.crypto.verifyCost = try duration(c, "crypto.verify_us", key: "verify_us", unit: Time.microsecond) ?? d.crypto.verifyCost
            s.crypto.byteCost = try duration(c, "crypto.byte_ns", key: "byte_ns", unit: 1) ?? d.crypto.byteCost
            s.crypto.messageCost = try duration(c, "crypto.message_us", key: "message_us", unit: Time.microsecond) ?? d.crypto.messageCost
        }
        if let f = root["faults"] { s.faults = try faults(f, topology: s.topology, principals: s.workload.principals) }
        if let m = root["smr"] {
            s.smr.batch = try int(m, "smr.batch", "batch", min: 1, max: 1_000_000) ?? d.smr.batch
            s.smr.batchTimeout = try duration(m, "smr.batch_timeout_ms", key: "batch_timeout_ms", unit: Time.millisecond) ?? d.smr.batchTimeout
            s.smr.executeCost = try duration(m, "smr.execute_us", key: "execute_us", unit: Time.microsecond) ?? d.smr.executeCost
            s.smr.paymentBytes = try int(m, "smr.payment_bytes", "payment_bytes", min: 1, max: 1 << 20) ?? d.smr.paymentBytes
        }
        if let b = root["bitcoin"] {
            s.bitcoin.blockInterval = try duration(b, "bitcoin.block_interval_s", key: "block_interval_s", unit: Time.second) ?? d.bitcoin.blockInterval
            s.bitcoin.blockBytes = try int(b, "bitcoin.block_bytes", "block_bytes", min: 1, max: 1 << 32) ?? d.bitcoin.blockBytes
            s.bitcoin.paymentBytes = try int(b, "bitcoin.payment_bytes", "payment_bytes", min: 1, max: 1 << 20) ?? d.bitcoin.paymentBytes
            s.bitcoin.confirmations = try int(b, "bitcoin.confirmations", "confirmations", min: 1, max: 1000) ?? d.bitcoin.confirmations
            s.bitcoin.miners = try int(b, "bitcoin.miners", "miners", min: 0, max: 10_000) ?? d.bitcoin.miners
            s.bitcoin.peers = try int(b, "bitcoin.peers", "peers", min: 1, max: 1000) ?? d.bitcoin.peers
            let mbps = try unsigned(b, "bandwidth_mbps", path: "bitcoin.bandwidth_mbps") ?? d.bitcoin.bandwidth / 125_000
            guard mbps > 0, mbps < 1 << 40 else { throw fail(b, "bitcoin.bandwidth_mbps", "a positive number of megabits per second") }
            s.bitcoin.bandwidth = mbps * 125_000
            guard s.bitcoin.blockInterval > 0 else { throw fail(b, "bitcoin.block_interval_s", "a positive number of seconds") }
            guard s.bitcoin.blockBytes >= s.bitcoin.paymentBytes else {
                throw fail(b, "bitcoin.block_bytes", "at least payment_bytes (\(s.bitcoin.paymentBytes))")
            }
        }
        if let o = root["outputs"] {
            s.outputs.bucket = try duration(o, "outputs.bucket_s", key: "bucket_s", unit: Time.second) ?? d.outputs.bucket
            s.outputs.latencyCSV = try bool(o, "outputs.latency_csv", "latency_csv") ?? true
            guard s.outputs.bucket > 0 else { throw fail(o, "outputs.bucket_s", "a positive number of seconds") }
        }
        if let e = root["engine"] {
            s.engine.partitions = try int(e, "engine.partitions", "partitions", min: 1, max: 64) ?? d.engine.partitions
        }
        return s
    }

    private func network(_ n: Node) throws(ScenarioError) -> Scenario.NetworkSettings {
        var s = Scenario.NetworkSettings()
        if let l = n["latency"] {
            let model = try string(l, "network.latency.model", key: "model") ?? "constant"
            func ms(_ key: String, _ fallback: UInt64) throws(ScenarioError) -> UInt64 {
                try duration(l, "network.latency.\(key)", key: key, unit: Time.millisecond) ?? fallback
            }
            switch model {
            case "constant":
                s.latency = .constant(try ms("ms", 10 * Time.millisecond))
            case "uniform":
                let lo = try ms("min_ms", 5 * Time.millisecond), hi = try ms("max_ms", 15 * Time.millisecond)
                guard lo <= hi else { throw fail(l, "network.latency.max_ms", "max_ms ≥ min_ms") }
                s.latency = .uniform(min: lo, max: hi)
            case "normal":
                s.latency = .normal(mean: try ms("mean_ms", 10 * Time.millisecond), stddev: try ms("stddev_ms", 2 * Time.millisecond))
            case "lognormal":
                let mu = try number(l, "network.latency.mu", "mu", min: -20, max: 20) ?? 2.3
                let sigma = try number(l, "network.latency.sigma", "sigma", min: 0, max: 5) ?? 0.3
                s.latency = .logNormal(mu: mu, sigma: sigma)
            case "regions":
                guard let names = l["regions"]?.sequence?.compactMap({ $0.string }), !names.isEmpty else {
                    throw fail(l, "network.latency.regions", "a non-empty list of region names")
                }
                guard let rows = l["matrix_ms"]?.sequence, rows.count == names.count else {
                    throw fail(l, "network.latency.matrix_ms", "a \(names.count)×\(names.count) list of lists of milliseconds")
                }
                var matrix = [[UInt64]]()
                for (i, row) in rows.enumerated() {
                    guard let cells = row.sequence, cells.count == names.count else {
                        throw fail(row, "network.latency.matrix_ms[\(i)]", "a list of \(names.count) milliseconds")
                    }
                    var values = [UInt64]()
                    for (j, cell) in cells.enumerated() {
                        guard let v = cell.string.flatMap({ decimal($0, unit: Time.millisecond) }) else {
                            throw fail(cell, "network.latency.matrix_ms[\(i)][\(j)]", "a non-negative number of milliseconds")
                        }
                        values.append(v)
                    }
                    matrix.append(values)
                }
                s.latency = .regions(names: names, matrix: matrix, jitter: try ms("jitter_ms", 0))
            default:
                throw fail(l["model"] ?? l, "network.latency.model", "one of constant, uniform, normal, lognormal, regions")
            }
        }
        s.loss = try probability(n, "network.loss", "loss") ?? 0
        s.duplicate = try probability(n, "network.duplicate", "duplicate") ?? 0
        s.reorder = try probability(n, "network.reorder", "reorder") ?? 0
        s.reorderDelay = try duration(n, "network.reorder_ms", key: "reorder_ms", unit: Time.millisecond) ?? s.reorderDelay
        s.bandwidth = (try unsigned(n, "bandwidth_mbps", path: "network.bandwidth_mbps") ?? 0) &* 125_000
        if let parts = n["partitions"] {
            guard let list = parts.sequence else { throw fail(parts, "network.partitions", "a list of partitions") }
            for (i, p) in list.enumerated() {
                let path = "network.partitions[\(i)]"
                guard let map = p.mapping else { throw fail(p, path, "a mapping {start_s, heal_s, replicas}") }
                for key in map.keys.compactMap(\.string) where !["start_s", "heal_s", "replicas"].contains(key) {
                    throw fail(p, "\(path).\(key)", "one of start_s, heal_s, replicas (unknown field)")
                }
                let start = try duration(p, "\(path).start_s", key: "start_s", unit: Time.second) ?? 0
                guard let heal = try duration(p, "\(path).heal_s", key: "heal_s", unit: Time.second), heal >= start else {
                    throw fail(p, "\(path).heal_s", "a heal time ≥ start_s")
                }
                guard let ids = p["replicas"]?.sequence?.map({ $0.int }), ids.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                    throw fail(p, "\(path).replicas", "a list of replica ids")
                }
                s.partitions.append(Scenario.Partition(start: start, heal: heal, isolated: ids.compactMap { $0 }))
            }
        }
        return s
    }

    private func workload(_ w: Node) throws(ScenarioError) -> Scenario.Workload {
        var s = Scenario.Workload()
        s.principals = try int(w, "workload.principals", "principals", min: 1, max: 10_000_000) ?? s.principals
        s.coins = try int(w, "workload.coins", "coins", min: 1, max: 16) ?? s.coins
        s.coinAmount = try unsigned(w, "coin_amount", path: "workload.coin_amount") ?? s.coinAmount
        s.arrival = try choice(w, "workload.arrival", "arrival", Scenario.Arrival.self) ?? s.arrival
        s.rate = try number(w, "workload.rate", "rate", min: 0, max: 1e9) ?? s.rate
        s.inFlight = try int(w, "workload.in_flight", "in_flight", min: 1, max: 16) ?? s.inFlight
        let recipients = try string(w, "workload.recipients", key: "recipients") ?? "uniform"
        switch recipients {
        case "uniform": s.recipients = .uniform
        case "zipf": s.recipients = .zipf(try number(w, "workload.zipf_s", "zipf_s", min: 0, max: 10) ?? 1)
        default: throw fail(w["recipients"] ?? w, "workload.recipients", "uniform or zipf")
        }
        s.inputs = try int(w, "workload.inputs", "inputs", min: 1, max: 16) ?? s.inputs
        s.outputs = try int(w, "workload.outputs", "outputs", min: 1, max: 15) ?? s.outputs
        s.maxAmount = try unsigned(w, "max_amount", path: "workload.max_amount") ?? s.maxAmount
        s.fee = try unsigned(w, "fee", path: "workload.fee") ?? s.fee
        s.payments = try int(w, "workload.payments", "payments", min: 0, max: 1_000_000_000) ?? 0
        if let v = w["cross_group"], v.string != "uniform" {
            s.crossGroup = try probability(w, "workload.cross_group", "cross_group")
        }
        guard s.maxAmount >= 1 else { throw fail(w, "workload.max_amount", "at least 1") }
        guard s.coinAmount >= 1, s.coinAmount.multipliedReportingOverflow(by: UInt64(s.coins * s.principals)).overflow == false,
              s.coinAmount * UInt64(s.coins * s.principals) <= 1 << 63 else {
            throw fail(w, "workload.coin_amount", "an amount ≥ 1 whose total over all coins stays ≤ 2^63")
        }
        return s
    }

    private func faults(_ f: Node, topology: Scenario.Topology, principals: Int) throws(ScenarioError) -> Scenario.FaultSettings {
        var s = Scenario.FaultSettings()
        s.mutant = try choice(f, "faults.mutant", "mutant", Mutant.self) ?? .none
        s.offAt = try duration(f, "faults.off_at_s", key: "off_at_s", unit: Time.second) ?? 0
        s.auditReads = try number(f, "faults.audit_reads", "audit_reads", min: 0, max: 1e7) ?? 0
        let replicaCount = topology.replicaCount
        for (i, item) in try list(f, "replicas", path: "faults.replicas").enumerated() {
            let path = "faults.replicas[\(i)]"
            try onlyKeys(item, path, ["behaviour", "ids", "per_group", "groups", "count", "at_s", "recover_s",
                                      "durable_locks", "extra_ms", "lie"])
            guard let behaviour = try choice(item, "\(path).behaviour", "behaviour", ReplicaBehaviour.self) else {
                throw fail(item, "\(path).behaviour", "a behaviour: " + ReplicaBehaviour.allCases.map(\.rawValue).joined(separator: ", "))
            }
            var spec = Scenario.ReplicaFault(behaviour: behaviour)
            spec.ids = try integers(item, "\(path).ids", "ids", below: replicaCount)
            spec.perGroup = try int(item, "\(path).per_group", "per_group", min: 0, max: 255) ?? 0
            spec.groups = try integers(item, "\(path).groups", "groups", below: topology.groups)
            spec.count = try int(item, "\(path).count", "count", min: 0, max: replicaCount) ?? 0
            spec.at = try duration(item, "\(path).at_s", key: "at_s", unit: Time.second) ?? 0
            spec.recover = try duration(item, "\(path).recover_s", key: "recover_s", unit: Time.second) ?? 0
            spec.durableLocks = try bool(item, "\(path).durable_locks", "durable_locks") ?? true
            spec.extraDelay = try duration(item, "\(path).extra_ms", key: "extra_ms", unit: Time.millisecond) ?? spec.extraDelay
            spec.lie = try choice(item, "\(path).lie", "lie", ReadLie.self) ?? .stale
            if spec.perGroup > 0, topology.assignment != .partitioned {
                throw fail(item, "\(path).per_group", "per_group only in partitioned mode (use count)")
            }
            if spec.perGroup > topology.n { throw fail(item, "\(path).per_group", "at most n = \(topology.n)") }
            if spec.ids.isEmpty, spec.perGroup == 0, spec.count == 0 {
                throw fail(item, path, "ids, per_group or count to say which replicas")
            }
            if behaviour == .crashRecover, spec.recover < spec.at {
                throw fail(item, "\(path).recover_s", "a restart time ≥ at_s")
            }
            s.replicas.append(spec)
        }
        for (i, item) in try list(f, "principals", path: "faults.principals").enumerated() {
            let path = "faults.principals[\(i)]"
            try onlyKeys(item, path, ["attack", "count", "principals", "groups", "rate"])
            guard let attack = try choice(item, "\(path).attack", "attack", Attack.self) else {
                throw fail(item, "\(path).attack", "an attack: " + Attack.allCases.map(\.rawValue).joined(separator: ", "))
            }
            var spec = Scenario.PrincipalAttack(attack: attack)
            spec.count = try int(item, "\(path).count", "count", min: 0, max: principals) ?? 1
            spec.principals = try integers(item, "\(path).principals", "principals", below: principals)
            spec.groups = try integers(item, "\(path).groups", "groups", below: topology.groups)
            spec.rate = try probability(item, "\(path).rate", "rate") ?? 1
            s.principals.append(spec)
        }
        return s
    }

    private func list(_ node: Node, _ key: String, path: String) throws(ScenarioError) -> [Node] {
        guard let v = node[key] else { return [] }
        guard let items = v.sequence else { throw fail(v, path, "a list") }
        for (i, item) in items.enumerated() where item.mapping == nil { throw fail(item, "\(path)[\(i)]", "a mapping") }
        return Array(items)
    }

    private func onlyKeys(_ node: Node, _ path: String, _ keys: [String]) throws(ScenarioError) {
        for key in node.mapping?.keys.compactMap(\.string) ?? [] where !keys.contains(key) {
            throw fail(node, "\(path).\(key)", "one of " + keys.joined(separator: ", ") + " (unknown field)")
        }
    }

    private func integers(_ node: Node, _ path: String, _ key: String, below limit: Int) throws(ScenarioError) -> [Int] {
        guard let v = node[key] else { return [] }
        guard let items = v.sequence else { throw fail(v, path, "a list of integers in 0…\(limit - 1)") }
        var values = [Int]()
        for item in items {
            guard let text = item.scalar?.string, let x = Int(text), x >= 0, x < limit else {
                throw fail(item, path, "a list of integers in 0…\(limit - 1)")
            }
            values.append(x)
        }
        return values
    }

    // MARK: Field access

    private func checkKeys(_ node: Node, prefix: String) throws(ScenarioError) {
        guard let map = node.mapping else { return }
        for (k, v) in map {
            guard let key = k.string else { throw fail(k, prefix, "string keys") }
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            if known.contains(path) { continue }
            if known.contains(where: { $0.hasPrefix(path + ".") }) {
                guard v.mapping != nil else { throw fail(v, path, "a mapping") }
                try checkKeys(v, prefix: path)
                continue
            }
            throw fail(k, path, "a known field (see `quorumsim scenario --help`); '\(key)' is not one")
        }
    }

    private func fail(_ node: Node, _ field: String, _ expected: String) -> ScenarioError {
        ScenarioError(file: file, field: field, line: node.mark.map { $0.line }, expected: expected)
    }

    private func string(_ node: Node, _ path: String, key: String? = nil) throws(ScenarioError) -> String? {
        guard let v = node[key ?? path] else { return nil }
        guard let s = v.string else { throw fail(v, path, "a string") }
        return s
    }

    private func unsigned(_ node: Node, _ key: String, path: String? = nil) throws(ScenarioError) -> UInt64? {
        guard let v = node[key] else { return nil }
        guard let text = v.scalar?.string, let value = UInt64(text.replacingUnderscores()) else {
            throw fail(v, path ?? key, "an unsigned integer (0 … 18446744073709551615)")
        }
        return value
    }

    private func int(_ node: Node, _ path: String, _ key: String, min: Int, max: Int) throws(ScenarioError) -> Int? {
        guard let v = node[key] else { return nil }
        guard let text = v.scalar?.string, let value = Int(text.replacingUnderscores()), value >= min, value <= max else {
            throw fail(v, path, "an integer in \(min)…\(max)")
        }
        return value
    }

    private func number(_ node: Node, _ path: String, _ key: String, min: Double, max: Double) throws(ScenarioError) -> Double? {
        guard let v = node[key] else { return nil }
        guard let text = v.scalar?.string, let value = Double(text), value >= min, value <= max else {
            throw fail(v, path, "a number in \(min)…\(max)")
        }
        return value
    }

    private func probability(_ node: Node, _ path: String, _ key: String) throws(ScenarioError) -> Double? {
        try number(node, path, key, min: 0, max: 1)
    }

    private func bool(_ node: Node, _ path: String, _ key: String) throws(ScenarioError) -> Bool? {
        guard let v = node[key] else { return nil }
        switch v.scalar?.string {
        case "true": return true
        case "false": return false
        default: throw fail(v, path, "true or false")
        }
    }

    private func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ path: String, _ key: String, _ type: T.Type) throws(ScenarioError) -> T? where T.RawValue == String {
        guard let v = node[key] else { return nil }
        guard let text = v.string, let value = T(rawValue: text) else {
            throw fail(v, path, "one of " + T.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return value
    }

    /// A non-negative decimal in `unit`s, converted exactly to nanoseconds (up to 9 decimals).
    private func duration(_ node: Node, _ path: String, key: String? = nil, unit: UInt64) throws(ScenarioError) -> UInt64? {
        guard let v = node[key ?? path] else { return nil }
        guard let text = v.scalar?.string, let value = decimal(text, unit: unit) else {
            throw fail(v, path, "a non-negative number (decimals allowed)")
        }
        return value
    }
}

/// Parses "12", "0.5", "1_000" into `value × unit` exactly, or nil if malformed or too large.
func decimal(_ text: String, unit: UInt64) -> UInt64? {
    let parts = text.replacingUnderscores().split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count <= 2, let wholePart = parts.first, !wholePart.isEmpty || parts.count == 2 else { return nil }
    let whole = wholePart.isEmpty ? 0 : UInt64(wholePart)
    guard let whole else { return nil }
    var result = whole.multipliedReportingOverflow(by: unit)
    guard !result.overflow else { return nil }
    if parts.count == 2 {
        let frac = parts[1]
        guard !frac.isEmpty, frac.count <= 18, frac.allSatisfy({ $0.isASCII && $0.isNumber }), let digits = UInt64(frac) else { return nil }
        var scale: UInt64 = 1
        for _ in 0..<frac.count { scale *= 10 }
        let part = digits.multipliedFullWidth(by: unit)
        guard part.high < scale else { return nil }
        let (q, _) = scale.dividingFullWidth(part)
        result = result.partialValue.addingReportingOverflow(q)
        guard !result.overflow else { return nil }
    }
    return result.partialValue
}

extension String {
    func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}

extension ScenarioFile {
    /// The scenario with every default filled in, as YAML that parses back to the same scenario
    /// (written beside a run's outputs so the run can be repeated from its folder alone).
    public static func emit(_ s: Scenario) -> String {
        func d(_ ns: UInt64, _ unit: UInt64) -> String {
            let whole = ns / unit, rest = ns % unit
            guard rest > 0 else { return "\(whole)" }
            var digits = String(rest)
            digits = String(repeating: "0", count: String(unit - 1).count - digits.count) + digits
            while digits.hasSuffix("0") { digits.removeLast() }
            return "\(whole).\(digits)"
        }
        func q(_ text: String) -> String { JSONObject.quote(text) }
        var y = "# Resolved scenario: every field with its value (defaults filled in).\n"
        y += "name: \(q(s.name))\nsystem: \(s.system.rawValue)\nseed: \(s.seed)\nduration_s: \(d(s.duration, Time.second))\ndrain_s: \(d(s.drain, Time.second))\n"
        let t = s.topology
        y += "topology:\n  groups: \(t.groups)\n  n: \(t.n)\n  f: \(t.f)\n  assignment: \(t.assignment.rawValue)\n  replicas: \(t.replicas)\n"
        let n = s.network
        y += "network:\n  latency:\n"
        switch n.latency {
        case let .constant(c): y += "    model: constant\n    ms: \(d(c, Time.millisecond))\n"
        case let .uniform(lo, hi): y += "    model: uniform\n    min_ms: \(d(lo, Time.millisecond))\n    max_ms: \(d(hi, Time.millisecond))\n"
        case let .normal(m, sd): y += "    model: normal\n    mean_ms: \(d(m, Time.millisecond))\n    stddev_ms: \(d(sd, Time.millisecond))\n"
        case let .logNormal(mu, sigma): y += "    model: lognormal\n    mu: \(mu)\n    sigma: \(sigma)\n"
        case let .regions(names, matrix, jitter):
            y += "    model: regions\n    regions: [\(names.map(q).joined(separator: ", "))]\n    matrix_ms:\n"
            for row in matrix { y += "      - [\(row.map { d($0, Time.millisecond) }.joined(separator: ", "))]\n" }
            y += "    jitter_ms: \(d(jitter, Time.millisecond))\n"
        }
        y += "  loss: \(n.loss)\n  duplicate: \(n.duplicate)\n  reorder: \(n.reorder)\n  reorder_ms: \(d(n.reorderDelay, Time.millisecond))\n"
        y += "  bandwidth_mbps: \(n.bandwidth / 125_000)\n"
        if n.partitions.isEmpty {
            y += "  partitions: []\n"
        } else {
            y += "  partitions:\n"
            for p in n.partitions {
                y += "    - start_s: \(d(p.start, Time.second))\n      heal_s: \(d(p.heal, Time.second))\n"
                y += "      replicas: [\(p.isolated.map(String.init).joined(separator: ", "))]\n"
            }
        }
        let w = s.workload
        y += "workload:\n  principals: \(w.principals)\n  coins: \(w.coins)\n  coin_amount: \(w.coinAmount)\n"
        y += "  arrival: \(w.arrival.rawValue)\n  rate: \(w.rate)\n  in_flight: \(w.inFlight)\n"
        switch w.recipients {
        case .uniform: y += "  recipients: uniform\n"
        case let .zipf(e): y += "  recipients: zipf\n  zipf_s: \(e)\n"
        }
        y += "  inputs: \(w.inputs)\n  outputs: \(w.outputs)\n  max_amount: \(w.maxAmount)\n  fee: \(w.fee)\n  payments: \(w.payments)\n"
        y += "  cross_group: \(w.crossGroup.map { "\($0)" } ?? "uniform")\n"
        let p = s.protocolSettings
        y += "protocol:\n  variant: \(p.variant.rawValue)\n  validation: \(p.validation.rawValue)\n"
        y += "  retry_ms: \(d(p.retry, Time.millisecond))\n  repair_ms: \(d(p.repair, Time.millisecond))\n"
        y += "  network_id: \(p.networkId)\n  epoch: \(p.epoch)\n"
        let c = s.crypto
        y += "crypto:\n  mode: \(c.mode.rawValue)\n  sign_us: \(d(c.signCost, Time.microsecond))\n  verify_us: \(d(c.verifyCost, Time.microsecond))\n"
        y += "  byte_ns: \(c.byteCost)\n  message_us: \(d(c.messageCost, Time.microsecond))\n"
        y += emitFaults(s.faults, d)
        let m = s.smr, b = s.bitcoin
        y += "smr:\n  batch: \(m.batch)\n  batch_timeout_ms: \(d(m.batchTimeout, Time.millisecond))\n"
        y += "  execute_us: \(d(m.executeCost, Time.microsecond))\n  payment_bytes: \(m.paymentBytes)\n"
        y += "bitcoin:\n  block_interval_s: \(d(b.blockInterval, Time.second))\n  block_bytes: \(b.blockBytes)\n"
        y += "  payment_bytes: \(b.paymentBytes)\n  confirmations: \(b.confirmations)\n  miners: \(b.miners)\n"
        y += "  peers: \(b.peers)\n  bandwidth_mbps: \(b.bandwidth / 125_000)\n"
        y += "outputs:\n  bucket_s: \(d(s.outputs.bucket, Time.second))\n  latency_csv: \(s.outputs.latencyCSV)\n"
        // Only when set: a one-thread run's resolved scenario (and its hash) stays what it was.
        if s.engine != Scenario.EngineSettings() { y += "engine:\n  partitions: \(s.engine.partitions)\n" }
        return y
    }
}

extension ScenarioFile {
    static func emitFaults(_ f: Scenario.FaultSettings, _ d: (UInt64, UInt64) -> String) -> String {
        func ints(_ xs: [Int]) -> String { "[" + xs.map(String.init).joined(separator: ", ") + "]" }
        var y = "faults:\n"
        if f.replicas.isEmpty { y += "  replicas: []\n" } else {
            y += "  replicas:\n"
            for r in f.replicas {
                y += "    - behaviour: \(r.behaviour.rawValue)\n      ids: \(ints(r.ids))\n      per_group: \(r.perGroup)\n"
                y += "      groups: \(ints(r.groups))\n      count: \(r.count)\n      at_s: \(d(r.at, Time.second))\n"
                y += "      recover_s: \(d(r.recover, Time.second))\n      durable_locks: \(r.durableLocks)\n"
                y += "      extra_ms: \(d(r.extraDelay, Time.millisecond))\n      lie: \(r.lie.rawValue)\n"
            }
        }
        if f.principals.isEmpty { y += "  principals: []\n" } else {
            y += "  principals:\n"
            for p in f.principals {
                y += "    - attack: \(p.attack.rawValue)\n      count: \(p.count)\n      principals: \(ints(p.principals))\n"
                y += "      groups: \(ints(p.groups))\n      rate: \(p.rate)\n"
            }
        }
        y += "  mutant: \(f.mutant.rawValue)\n  off_at_s: \(d(f.offAt, Time.second))\n  audit_reads: \(f.auditReads)\n"
        return y
    }
}
