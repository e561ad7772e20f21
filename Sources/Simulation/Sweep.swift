import QuorumCrypto
import Yams

/// One run of a sweep: the base scenario with `overrides` applied and `seed`.
public struct SweepPoint: Sendable {
    /// Position in the sweep's enumeration (cases × grid × seeds); rows of points.csv follow it.
    public let index: Int
    /// Content address of the point (its overrides and seed): its folder name, stable when
    /// other points are added to or removed from the sweep file.
    public let id: String
    public let seed: UInt64
    public let overrides: [(path: String, value: String)]
    /// The overrides that vary across the sweep, as points.csv columns.
    public let labels: [(path: String, value: String)]
}

/// A parsed sweep file. Format (documented in scenarios/README.md):
///
///     name: groups                  # results go to results/<name>/ (with --quick: <name>-quick)
///     base: ../scenarios/x.yaml     # relative to the sweep file
///     seeds: 3                      # 1, 2, 3; or a list [1, 7]
///     set: {duration_s: 2}          # overrides for every point
///     cases:                        # optional: overrides that vary together, one map per case
///       - {topology.groups: 1, workload.rate: 1000}
///     grid:                         # cartesian product, crossed with the cases
///       system: [quorumcoin, smr]
///     quick: {seeds: 1, cases: [...]}   # replaces seeds/set/cases/grid keys under --quick
public struct SweepPlan: Sendable {
    public let name: String
    public let file: String
    /// The base scenario's path as written (relative to the sweep file) and resolved.
    public let base: String
    public let points: [SweepPoint]
    /// Override paths that vary across points, in column order.
    public let varied: [String]

    public static let keys = ["name", "base", "seeds", "set", "cases", "grid", "quick"]

    /// `directory` is the sweep file's folder, to resolve `base` against.
    public init(text: String, file: String, directory: String, quick: Bool) throws(ScenarioError) {
        self.file = file
        func fail(_ node: Node?, _ field: String, _ expected: String) -> ScenarioError {
            ScenarioError(file: file, field: field, line: node?.mark.map { $0.line }, expected: expected)
        }
        let parsed: Node?
        do { parsed = try Yams.compose(yaml: text) } catch {
            throw ScenarioError(file: file, field: "", line: nil, expected: "valid YAML (\(error))")
        }
        guard let parsed, var root = parsed.mapping else { throw fail(parsed, "", "a mapping with name, base, seeds, grid") }
        for key in root.keys.compactMap(\.string) where !SweepPlan.keys.contains(key) {
            throw fail(root[key], key, "one of " + SweepPlan.keys.joined(separator: ", ") + " (unknown field)")
        }
        if quick, let q = root["quick"] {
            guard let qm = q.mapping else { throw fail(q, "quick", "a mapping of seeds, set, cases, grid") }
            for (k, v) in qm {
                guard let key = k.string, ["seeds", "set", "cases", "grid"].contains(key) else {
                    throw fail(k, "quick", "keys among seeds, set, cases, grid")
                }
                root[key] = v
            }
        }
        guard let name = root["name"]?.string, !name.isEmpty,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw fail(root["name"], "name", "a name of letters, digits, - and _ (the results folder)")
        }
        self.name = quick ? name + "-quick" : name
        guard let base = root["base"]?.string, !base.isEmpty else { throw fail(root["base"], "base", "the base scenario's path") }
        self.base = base.hasPrefix("/") ? base : (directory.isEmpty ? base : directory + "/" + base)

        var seeds: [UInt64] = [1]
        if let s = root["seeds"] {
            if let list = s.sequence {
                seeds = []
                for item in list {
                    guard let v = item.string.flatMap({ UInt64($0) }) else { throw fail(item, "seeds", "a list of unsigned integers") }
                    seeds.append(v)
                }
            } else if let count = s.string.flatMap({ Int($0) }), count >= 1, count <= 10_000 {
                seeds = (1...count).map { UInt64($0) }
            } else {
                throw fail(s, "seeds", "a count (1…10000) or a list of seeds")
            }
            guard !seeds.isEmpty else { throw fail(s, "seeds", "at least one seed") }
        }

        func pairs(_ node: Node, _ field: String) throws(ScenarioError) -> [(String, String)] {
            guard let m = node.mapping else { throw fail(node, field, "a mapping of dotted field paths to values") }
            var out = [(String, String)]()
            for (k, v) in m {
                guard let key = k.string, !key.isEmpty else { throw fail(k, field, "dotted field paths as keys") }
                out.append((key, SweepPlan.flow(v)))
            }
            return out
        }
        let fixed = try root["set"].map { n throws(ScenarioError) in try pairs(n, "set") } ?? []
        var cases: [[(String, String)]] = [[]]
        if let c = root["cases"] {
            guard let list = c.sequence, !list.isEmpty else { throw fail(c, "cases", "a non-empty list of mappings") }
            cases = []
            for (i, item) in list.enumerated() { cases.append(try pairs(item, "cases[\(i)]")) }
        }
        var axes: [(String, [String])] = []
        if let g = root["grid"] {
            guard let m = g.mapping else { throw fail(g, "grid", "a mapping of field paths to lists of values") }
            for (k, v) in m {
                guard let key = k.string, let values = v.sequence, !values.isEmpty else {
                    throw fail(v, "grid.\(k.string ?? "?")", "a non-empty list of values")
                }
                axes.append((key, values.map(SweepPlan.flow)))
            }
        }
        var combos: [[(String, String)]] = [[]]
        for (key, values) in axes {
            combos = combos.flatMap { prefix in values.map { prefix + [(key, $0)] } }
        }
        var varied = [String]()
        for c in cases { for (k, _) in c where !varied.contains(k) { varied.append(k) } }
        for (k, _) in axes where !varied.contains(k) { varied.append(k) }
        if cases.count <= 1 { varied.removeAll { k in !axes.contains { $0.0 == k } } }
        self.varied = varied

        var points = [SweepPoint]()
        var seen = Set<String>()
        for c in cases {
            for combo in combos {
                for seed in seeds {
                    let overrides = fixed + c + combo
                    var labels = [(path: String, value: String)]()
                    for key in varied {
                        labels.append((key, (c + combo).last { $0.0 == key }?.1 ?? ""))
                    }
                    var text = "seed=\(seed)\n"
                    for (k, v) in overrides { text += "\(k)=\(v)\n" }
                    let id = String(Blake2b.digest(Array(text.utf8)).hex.prefix(12))
                    guard seen.insert(id).inserted else {
                        throw fail(nil, "grid", "distinct points (two points have the same overrides and seed)")
                    }
                    points.append(SweepPoint(index: points.count, id: id, seed: seed,
                                             overrides: overrides.map { (path: $0.0, value: $0.1) }, labels: labels))
                }
            }
        }
        self.points = points
    }

    /// A YAML node as one line of flow YAML (what `--set path=value` takes).
    static func flow(_ node: Node) -> String {
        switch node {
        case let .scalar(s):
            let plain = s.string.allSatisfy { $0.isLetter || $0.isNumber || "._-+/".contains($0) }
            return plain && !s.string.isEmpty && s.style != .doubleQuoted && s.style != .singleQuoted ? s.string : JSONObject.quote(s.string)
        case let .sequence(seq):
            return "[" + seq.map(flow).joined(separator: ", ") + "]"
        case let .mapping(m):
            return "{" + m.map { flow($0.key) + ": " + flow($0.value) }.joined(separator: ", ") + "}"
        case let .alias(a):
            return a.anchor.rawValue
        }
    }
}
