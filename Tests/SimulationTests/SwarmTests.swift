import Testing
@testable import Simulation

/// The bounded swarm CI runs every time: 200 random valid scenarios (≤ f faulty replicas per
/// group, random attacks, networks and variants), each of which must pass every invariant.
/// A failure names its seed; `quorumsim swarm --first SEED --seeds 1` writes the scenario and
/// prints the replay command.
@Suite struct SwarmTests {
    @Test(arguments: UInt64(1)...200) func swarmSeedPassesEveryInvariant(_ seed: UInt64) throws {
        let outcome = try Swarm.run(seed: seed)
        #expect(outcome.violations.isEmpty,
                "seed \(seed): \(outcome.violations.prefix(3).map { "\($0.invariant) \($0.detail)" }) — reproduce: quorumsim swarm --first \(seed) --seeds 1")
        #expect(outcome.payments > 0)
    }

    @Test func generatedScenariosStayWithinTheFaultBound() {
        for seed in UInt64(1)...500 {
            let s = Swarm.scenario(seed: seed)
            var perShard = [Int: Int]()
            for spec in s.faults.replicas { for id in spec.ids { perShard[s.topology.assignment == .partitioned ? id / s.topology.n : 0, default: 0] += 1 } }
            #expect(perShard.values.allSatisfy { $0 <= s.topology.f }, "seed \(seed)")
            #expect(s.faults.mutant == .none)
            // Every generated scenario is a valid file: it round-trips through YAML.
            #expect((try? ScenarioFile(file: "swarm").parse(ScenarioFile.emit(s))) == s, "seed \(seed)")
        }
    }

    /// Shrinking keeps the invariant failing while it removes what does not matter.
    @Test func shrinkingReducesABreakScenario() throws {
        var s = try faultScenario("break-silent")
        s.faults.auditReads = 10
        s.faults.principals = [Scenario.PrincipalAttack(attack: .replay)]
        let small = Shrinker.shrink(s, invariant: "L1", budget: 40)
        #expect(small.faults.principals.isEmpty && small.faults.auditReads == 0)
        #expect(small.workload.principals < s.workload.principals)
        let sim = try Simulator(scenario: small)
        sim.run()
        #expect(sim.runViolations.contains { $0.invariant == "L1" })
    }
}
