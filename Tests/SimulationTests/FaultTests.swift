import Foundation
import Testing
import QuorumCrypto
import QuorumLedger
import QuorumStore
@testable import Simulation

func faultScenario(_ name: String, _ edit: (inout Scenario) -> Void = { _ in }) throws -> Scenario {
    let url = packageRoot.appendingPathComponent("scenarios/faults/\(name).yaml")
    var s = try ScenarioFile(file: url.path).parse(try String(contentsOf: url, encoding: .utf8))
    edit(&s)
    return s
}

func violated(_ scenario: Scenario) throws -> Set<String> {
    let sim = try Simulator(scenario: scenario)
    sim.run()
    return Set(sim.runViolations.map(\.invariant))
}

/// Each break scenario of PROTOCOL §7 fails exactly the invariants it should, and its version
/// within the fault bound (or without the mutant) passes them all.
@Suite struct BreakScenarioTests {
    static let cases: [(file: String, breaks: Set<String>, twin: String)] = [
        ("break-collusion", ["S1", "S2", "S3", "S8"], "f+1 → f colluders"),
        ("break-collusion-quorum", ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8"], "2f+1 → f colluders"),
        ("break-volatile-locks", ["S1", "S10"], "durable locks"),
        ("break-redeem-without-spender", ["S2"], "no mutant"),
        ("break-no-write-back", ["S11"], "no mutant"),
        ("break-silent", ["L1"], "f silent"),
    ]

    @Test(arguments: 0..<6) func breakScenarioFailsItsInvariants(_ i: Int) throws {
        let c = BreakScenarioTests.cases[i]
        let found = try violated(try faultScenario(c.file))
        #expect(found.isSuperset(of: c.breaks), "\(c.file): expected \(c.breaks.sorted()), got \(found.sorted())")
    }

    @Test(arguments: 0..<6) func twinWithinTheBoundPasses(_ i: Int) throws {
        let c = BreakScenarioTests.cases[i]
        let twin = try faultScenario(c.file) { s in
            switch c.file {
            case "break-collusion", "break-collusion-quorum":
                s.faults.replicas[0].perGroup = 1
            case "break-volatile-locks":
                s.faults.replicas[1].durableLocks = true
            case "break-redeem-without-spender", "break-no-write-back":
                s.faults.mutant = .none
            case "break-silent":
                s.faults.replicas[0].perGroup = 1
            default:
                break
            }
        }
        let found = try violated(twin)
        #expect(found.isEmpty, "\(c.file) with \(c.twin): \(found.sorted())")
    }
}

/// Every other fault and attack scenario stays within the bound: no invariant may fail.
@Suite struct FaultScenarioTests {
    static let files: [String] = {
        let folder = packageRoot.appendingPathComponent("scenarios/faults")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") && !$0.hasPrefix("break-") }.map { String($0.dropLast(5)) }.sorted()
    }()

    @Test func oneScenarioPerFaultAndAttack() {
        for b in ReplicaBehaviour.allCases {
            #expect(FaultScenarioTests.files.contains { $0.hasPrefix(b.rawValue) || ($0 == "collude-f" && b == .collude) }, "\(b.rawValue)")
        }
        for a in Attack.allCases { #expect(FaultScenarioTests.files.contains("attack-\(a.rawValue)"), "\(a.rawValue)") }
        for lie in ReadLie.allCases { #expect(FaultScenarioTests.files.contains("read-lie-\(lie.rawValue)")) }
    }

    @Test(arguments: FaultScenarioTests.files) func withinTheBoundEveryInvariantHolds(_ file: String) throws {
        let sim = try Simulator(scenario: try faultScenario(file))
        sim.run()
        #expect(sim.runViolations.isEmpty, "\(file): \(sim.runViolations.prefix(3).map { "\($0.invariant) \($0.detail)" })")
        let report = sim.report(scenarioHash: "t", toolVersion: "t")
        // Every payment finished: certified, or refused (only an attacker's own payments can be,
        // on coins its attacks locked; honest principals' funds are held to L4 above).
        #expect(report.payments > 100 && report.certified + report.failed == report.payments, "\(file): \(report.certified)+\(report.failed)/\(report.payments)")
    }
}

/// S9 and L2–L6 have no break condition in PROTOCOL §7 that an honest protocol can reach, so the
/// checker is shown to catch them on crafted evidence: a checker that never fails proves nothing.
@Suite struct CheckerTests {
    func setUp() throws -> (Simulator, InvariantChecker.World) {
        let sim = try Simulator(scenario: try tiny { $0.duration = Time.second / 2 })
        sim.run()
        #expect(sim.runViolations.isEmpty)
        let world = InvariantChecker.World(
            honestReplicas: [], storedRecords: { _, _ in }, holds: { _, _ in false }, honestPayments: { _ in }, end: sim.endTime, lockedHonest: [], recoveredUnfinished: [],
            stuckHonestReplicas: [], repairDeadline: nil, groupMembers: { _ in [] }, honestLive: { _ in true }, committedAt: { _ in nil })
        return (sim, world)
    }

    func fails(_ sim: Simulator, _ world: InvariantChecker.World, _ edit: (InvariantChecker) -> Void = { _ in }) -> Set<String> {
        let checker = InvariantChecker(context: sim.context)
        edit(checker)
        return Set(checker.finish(world).map(\.invariant))
    }

    @Test func cleanWorldPasses() throws {
        let (sim, world) = try setUp()
        #expect(fails(sim, world).isEmpty)
    }

    @Test func s9CatchesABadCertificateInAnHonestStore() throws {
        let (sim, base) = try setUp()
        let g = sim.context.genesis.payments[0]
        let forged = CertifiedPayment(payment: Payment.signed(PaymentBody(networkId: 1, payer: g.payer, inputs: [InputRef(parentKey: g.key, index: 0)],
                                                                          outputs: [Output(amount: 5, owner: g.payer)], fee: 0, nonce: 9),
                                                              by: sim.principals[0].wallet.signer),
                                      proof: .certificate(Certificate(statement: sim.context.statement(.payment, key: .zero, valueHash: .zero, group: GroupID(raw: 0)), votes: [])))
        var world = base
        world.honestReplicas = [0]
        world.storedRecords = { _, visit in visit(.payment(forged)) }
        #expect(fails(sim, world) == ["S9"])
    }

    /// S9 judges each stored record on its own, whatever order the store yields them in: a
    /// batch-proved redeem whose embedded spender carries a forged certificate fails even when
    /// the same store also holds that payment with its real certificate, listed first or last.
    @Test func s9JudgesEachRecordAlone() throws {
        let (sim, base) = try setUp()
        var pair: (StoredRecord, StoredRecord)?
        search: for replica in sim.replicas {
            let store = replica.durable.store
            for k in store.keys.sorted() {
                guard case let .redeem(r)? = store[k], case let .payment(p)? = store[r.redeem.spender] else { continue }
                let forged = Certificate(statement: sim.context.statement(.batch, key: p.key, valueHash: p.key, group: GroupID(raw: 0)), votes: [])
                pair = (.payment(p), .redeem(CertifiedRedeem(redeem: r.redeem, proof: .batch(CertifiedPayment(payment: p.payment, proof: .certificate(forged))))))
                break search
            }
        }
        let (good, bad) = try #require(pair)
        var world = base
        world.honestReplicas = [0]
        world.storedRecords = { _, visit in [good].forEach { visit($0) } }
        #expect(fails(sim, world).isEmpty)
        world.storedRecords = { _, visit in [good, bad].forEach { visit($0) } }
        #expect(fails(sim, world) == ["S9"])
        world.storedRecords = { _, visit in [bad, good].forEach { visit($0) } }
        #expect(fails(sim, world) == ["S9"])
    }

    /// S9 judges every replica's store, though the replicas of a group share record objects (a
    /// memo of verdicts by key would carry one store's verdict to another): the same payment
    /// under a forged certificate fails at the replica holding it, whichever replica comes
    /// first, and a bad record held twice fails at both.
    @Test func s9JudgesSharedRecordsPerReplica() throws {
        let (sim, base) = try setUp()
        var found: CertifiedPayment?
        search: for replica in sim.replicas {
            for k in replica.durable.store.keys.sorted() {
                if case let .payment(p)? = replica.durable.store[k], case .certificate = p.proof { found = p; break search }
            }
        }
        let good = try #require(found)
        let forged = StoredRecord.payment(CertifiedPayment(payment: good.payment, proof: .certificate(Certificate(
            statement: sim.context.statement(.payment, key: good.key, valueHash: good.key, group: GroupID(raw: 0)), votes: []))))
        func flagged(_ stores: [[StoredRecord]]) -> [String] {
            var world = base
            world.honestReplicas = Array(stores.indices)
            world.storedRecords = { i, visit in stores[i].forEach { visit($0) } }
            let checker = InvariantChecker(context: sim.context)
            return checker.finish(world).filter { $0.invariant == "S9" }.map(\.detail).sorted()
        }
        let bad = "stores \(good.key) with an invalid certificate"
        #expect(flagged([[.payment(good)], [.payment(good)]]).isEmpty)
        #expect(flagged([[.payment(good)], [forged]]) == ["replica 1 \(bad)"])
        #expect(flagged([[forged], [.payment(good)]]) == ["replica 0 \(bad)"])
        #expect(flagged([[forged], [.payment(good)], [forged]]) == ["replica 0 \(bad)", "replica 2 \(bad)"])
    }

    /// The checker's claims table against a `Dictionary`, under random updates and lookups of 48
    /// claims, each reached through either of two equal redeem objects or none (the end-of-run
    /// checks have none), its slot narrowed to 2 bits so that most claims land on a slot another
    /// holds: those live in the `Dictionary` beside the slots, and every answer must stay that
    /// claim's own.
    @Test(arguments: [UInt64.max, 0x3]) func claimTableMatchesADictionary(slotMask: UInt64) {
        let owner = ModelledVerifier(key: Bytes32(word: 2)).keyPair(seed: Bytes32(word: 1))
        let body = PaymentBody(networkId: 1, payer: owner.publicKey, inputs: [], outputs: [], fee: 0, nonce: 1)
        let payment = Payment.signed(body, by: owner)
        let proof = RedeemProof.batch(CertifiedPayment(payment: payment, proof: .certificate(Certificate(
            statement: VoteStatement(networkId: 1, epoch: 1, group: GroupID(raw: 0), type: .batch, key: payment.key, valueHash: payment.key), votes: []))))
        typealias Claim = InvariantChecker.RedeemClaim
        var claims = [Claim]()
        var redeems = [Claim: (Redeem, Redeem)]()
        for parent in 0..<12 {
            for spender in 0..<4 {
                let input = InputRef(parentKey: Digest(word: UInt64(parent) &* 0x9E37_79B9_7F4A_7C15), index: UInt32(spender % 2))
                let spenderKey = Digest(word: UInt64(100 + spender))
                let claim = Claim(input: input, spender: spenderKey)
                claims.append(claim)
                redeems[claim] = (Redeem.signed(networkId: 1, input: input, spender: spenderKey, by: owner),
                                  Redeem.signed(networkId: 1, input: input, spender: spenderKey, by: owner))
            }
        }
        var table = InvariantChecker.ClaimTable(slotMask: slotMask)
        var model = [Claim: (signed: Bool, recorded: Bool)]()
        var random = DeterministicRandom(seed: 5, stream: "claim-table")
        for _ in 0..<4_000 {
            let claim = claims[random.uniform(below: claims.count)]
            guard let (a, b) = redeems[claim] else { continue }
            let redeem = random.uniform(below: 2 as Int) == 0 ? a : b
            switch random.uniform(below: 3 as Int) {
            case 0:
                table.update(claim, of: redeem) { $0.signed = true }
                model[claim, default: (false, false)].signed = true
            case 1:
                table.update(claim, of: redeem) { $0.record = CertifiedRedeem(redeem: redeem, proof: proof) }
                model[claim, default: (false, false)].recorded = true
            default:
                let through: Redeem? = [nil, a, b][random.uniform(below: 3)]
                let facts = table.withFacts(claim, of: through) { (signed: $0.signed, recorded: $0.record != nil) }
                #expect(facts?.signed == model[claim]?.signed && facts?.recorded == model[claim]?.recorded)
                if let r = table.withFacts(claim, { $0.record?.redeem }) ?? nil {
                    #expect(r.input == claim.input && r.spender == claim.spender)
                }
            }
        }
        for claim in claims {
            let facts = table.withFacts(claim) { (signed: $0.signed, recorded: $0.record != nil) }
            #expect(facts?.signed == model[claim]?.signed && facts?.recorded == model[claim]?.recorded)
        }
        let recorded = table.records.map { Claim(input: $0.redeem.input, spender: $0.redeem.spender) }
        #expect(recorded.count == Set(recorded).count)
        #expect(Set(recorded) == Set(model.filter { $0.value.recorded }.keys))
        // Four slots for 48 claims: most are in the Dictionary. All ones: none are.
        #expect(slotMask == .max ? table.collidingCount == 0 : table.collidingCount >= 40)
    }

    @Test func livenessCheckersFire() throws {
        let (sim, base) = try setUp()
        let key = sim.records[0].key
        var world = base
        world.committedAt = { $0 == key ? 10 : nil }
        #expect(fails(sim, world) { $0.observeRead(key: key, start: 20, end: 30, found: false) } == ["L2"])
        world = base
        world.lockedHonest = [LockedFunds(principal: 3, amount: 7, reason: "refused")]
        #expect(fails(sim, world) == ["L4"])
        world = base
        world.recoveredUnfinished = [key]
        #expect(fails(sim, world) == ["L5"])
        world = base
        world.stuckHonestReplicas = [2]
        #expect(fails(sim, world) == ["L6"])
        world = base
        world.honestPayments = { $0((key, 0, PaymentRecord.never, 5)) }
        #expect(fails(sim, world) == ["L1"])
        // L3: a certified, committed payment missing at an honest member of its group.
        let checker = InvariantChecker(context: sim.context)
        let members = sim.context.group(of: sim.principals[Int(sim.records[0].payer)].wallet.publicKey).members.map(Int.init)
        for replica in sim.replicas {
            let store = replica.durable.store
            for k in store.keys.sorted() { if let r = store[k] { checker.observe(.commit([r]), from: NodeID(raw: 0), honestSender: true, at: 1) } }
        }
        world = base
        world.committedAt = { $0 == key ? 1 : nil }
        world.repairDeadline = sim.endTime
        world.groupMembers = { _ in members }
        world.honestReplicas = Array(members.dropFirst())
        #expect(Set(checker.finish(world).map(\.invariant)) == ["L3"])
    }
}
