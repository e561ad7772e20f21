import Foundation
import Testing
import QuorumCrypto
import QuorumLedger
@testable import QuorumStore
@testable import Simulation

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The `quorumsim` binary `swift test` built (SimulationTests depends on the executable), or nil
/// with a recorded issue if it is missing.
func builtQuorumsim() -> URL? {
    let binary = packageRoot.appendingPathComponent(".build/debug/quorumsim")
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
        Issue.record("swift test builds quorumsim (SimulationTests depends on it)")
        return nil
    }
    return binary
}

/// A scenario small enough for a debug build.
let tinyYAML = """
    name: tiny
    seed: 3
    duration_s: 1
    drain_s: 10
    topology: {groups: 2, n: 4, f: 1}
    network:
      latency: {model: normal, mean_ms: 10, stddev_ms: 3}
      loss: 0.01
      duplicate: 0.01
      reorder: 0.05
    workload: {principals: 20, rate: 40, inputs: 2, outputs: 2}
    """

func tiny(_ edit: (inout Scenario) -> Void = { _ in }) throws -> Scenario {
    var s = try ScenarioFile(file: "tiny.yaml").parse(tinyYAML)
    edit(&s)
    return s
}

@Suite struct EngineTests {
    @Test func queueOrdersByTimeThenSchedulingOrder() {
        var q = EventQueue<Int>(reserving: 4)
        var rng = DeterministicRandom(seed: 5, stream: "queue")
        var pushed = [(UInt64, Int)]()
        for i in 0..<5000 {
            let t = rng.uniform(below: UInt64(300))
            q.push(i, at: t)
            pushed.append((t, i))
            if i % 7 == 0, let popped = q.pop() {
                // Compare against a stable sort of what is still pending.
                let expected = pushed.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.first!
                #expect(popped.time == expected.element.0 && popped.payload == expected.element.1)
                pushed.remove(at: expected.offset)
            }
        }
        var last: (UInt64, Int) = (0, -1)
        let remaining = pushed.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        for expected in remaining {
            guard let (time, payload) = q.pop() else { Issue.record("queue ran dry"); return }
            #expect(time == expected.0 && payload == expected.1)
            #expect((time, payload) > last)
            last = (time, payload)
        }
        #expect(q.isEmpty)
    }

    /// Times spread from nanoseconds to hours cross the calendar's current bucket, its ring and
    /// its overflow heap; every pop must still match a reference ordered by (time, sequence).
    @Test func calendarQueueMatchesAReferenceAcrossBucketsRingAndOverflow() {
        var q = EventQueue<Int>(reserving: 4)
        var rng = DeterministicRandom(seed: 9, stream: "queue")
        var reference = [(time: UInt64, id: Int)]()  // sorted by (time, id); id = push order
        var now: UInt64 = 0
        var next = 0
        for step in 0..<40_000 {
            if step % 3 != 2 || reference.isEmpty {
                let scale: [UInt64] = [1, 1_000, 70_000, 5_000_000, 900_000_000, 3_000_000_000, 7_200_000_000_000]
                let t = now &+ rng.uniform(below: scale[rng.uniform(below: scale.count)])
                q.push(next, at: t)
                let i = reference.firstIndex { ($0.time, $0.id) > (t, next) } ?? reference.count
                reference.insert((t, next), at: i)
                next += 1
            } else {
                #expect(q.nextTime == reference[0].time)
                guard let (time, id) = q.pop() else { Issue.record("queue ran dry"); return }
                #expect(time == reference[0].time && id == reference[0].id, "step \(step)")
                now = time
                reference.removeFirst()
            }
            #expect(q.count == reference.count)
        }
        while let (time, id) = q.pop() {
            #expect(time == reference[0].time && id == reference[0].id)
            reference.removeFirst()
        }
        #expect(reference.isEmpty && q.isEmpty && q.nextTime == nil)
    }

    /// Thousands of events in a few buckets ahead (ties included, some arriving through the
    /// overflow heap) take the current bucket's radix-sort path; order must match a reference.
    @Test func crowdedBucketsPopInTimeThenSequenceOrder() {
        var q = EventQueue<Int>(reserving: 4)
        var rng = DeterministicRandom(seed: 3, stream: "crowded")
        var reference = [(time: UInt64, id: Int)]()
        var next = 0
        func push(_ t: UInt64) {
            q.push(next, at: t)
            reference.append((t, next))
            next += 1
        }
        for round in 0..<3 {
            let base = UInt64(round) * 3_000_000_000  // beyond the ring: via the overflow
            for _ in 0..<2_000 { push(base &+ 1_000_000 &+ rng.uniform(below: 40_000) / 7 * 7) }
        }
        reference.sort { ($0.time, $0.id) < ($1.time, $1.id) }
        var popped = 0
        while let (time, id) = q.pop() {
            #expect(time == reference[popped].time && id == reference[popped].id, "pop \(popped)")
            popped += 1
            if popped == 100 { push(reference[99].time &+ 5) ; reference.sort { ($0.time, $0.id) < ($1.time, $1.id) } }
        }
        #expect(popped == reference.count && q.isEmpty)
    }

    /// The queue's bucket blocks are managed by hand: a copy must pop the same events as the
    /// original, independently of it, and every payload still queued must be released when the
    /// queue goes (in the current bucket, the ring and the overflow alike).
    @Test func copiedQueuesPopAloneAndDroppedQueuesReleasePayloads() {
        final class Token { let id: Int; init(_ id: Int) { self.id = id } }
        weak var watched: Token?
        weak var leftInRing: Token?
        weak var leftInOverflow: Token?
        do {
            var a = EventQueue<Token>(reserving: 4)
            let t = Token(-1)
            watched = t
            for i in 0..<300 { a.push(i == 7 ? t : Token(i), at: UInt64(i % 50) * 20_000 + UInt64(i)) }
            a.push(Token(300), at: 5_000_000_000)  // beyond the ring
            _ = a.pop()
            var b = a
            b.push(Token(301), at: 1_000)
            var fromA = [UInt64]()
            while let (time, _) = a.pop() { fromA.append(time) }
            var fromB = [UInt64]()
            while let (time, _) = b.pop() { fromB.append(time) }
            #expect(fromA.count == 300 && fromB.count == 301)
            #expect(fromA == fromB.filter { $0 != 1_000 })
            #expect(fromA == fromA.sorted())
            var c = EventQueue<Token>(reserving: 4)
            let ring = Token(400), far = Token(401)
            leftInRing = ring
            leftInOverflow = far
            c.push(Token(402), at: 1)
            c.push(ring, at: 100_000)
            c.push(far, at: 9_000_000_000)
            _ = c.pop()
        }
        #expect(watched == nil && leftInRing == nil && leftInOverflow == nil)
    }

    /// The prefetch hints read a delivery's message in place by layout: check, on the toolchain in
    /// use, that they find the message's object (a record array's storage, 32 bytes before its
    /// elements) and, a level down, the records the simulator prefetches from it.
    @Test func prefetchHintsFindUpcomingMessagesAndTheirRecords() {
        let alice = Ed25519KeyPair(seed: Bytes32(word: 1))
        func payment(_ nonce: UInt64) -> Payment {
            Payment.signed(PaymentBody(networkId: 1, payer: alice.publicKey, inputs: [],
                                       outputs: [Output(amount: 5, owner: alice.publicKey)], fee: 0, nonce: nonce), by: alice)
        }
        let (written, parent, committed) = (payment(1), payment(2), payment(3))
        func address(_ object: AnyObject) -> UnsafeRawPointer { UnsafeRawPointer(Unmanaged.passUnretained(object).toOpaque()) }
        func reference(_ object: UnsafeRawPointer?, _ offset: Int) -> UnsafeRawPointer? { object.flatMap { referencedObject($0, offset) } }
        var records = [StoredRecord]()
        records.reserveCapacity(4)
        records.append(.payment(CertifiedPayment(payment: committed, proof: .genesis)))
        let elements = records.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
        var q = EventQueue<Event>(reserving: 4)
        func object(_ k: Int) -> UnsafeRawPointer? { q.upcomingMessage(k)?.object }
        let t: UInt64 = 1 << 20  // inside the ring: the bucket is sorted when it becomes current
        q.push(.deliver(from: NodeID(raw: 1), to: NodeID(raw: 2), message: .ack(Digest(word: 9)), size: 0), at: t)
        q.push(.deliver(from: NodeID(raw: 1), to: NodeID(raw: 3), message: .commit(records), size: 0), at: t + 20)
        let write = Message.preparePayment(written, parents: [CertifiedPayment(payment: parent, proof: .genesis)], redeems: [])
        q.push(.deliver(from: NodeID(raw: 1), to: NodeID(raw: 4), message: write, size: 0), at: t + 30)
        let statement = VoteStatement(networkId: 1, epoch: 0, group: GroupID(raw: 0), type: .payment,
                                      key: written.key, valueHash: written.key)
        let signature = Signature(r: Bytes32(word: 7), s: Bytes32(word: 8))
        q.push(.deliver(from: NodeID(raw: 4), to: NodeID(raw: 1), message: .vote(statement, Vote(replica: 4, signature: signature)), size: 0),
               at: t + 35)
        let handedOver = payment(4), proof = Certificate(statement: statement, votes: [Vote(replica: 4, signature: signature)])
        let proofAddress = UnsafeRawPointer(bitPattern: UInt(bitPattern: proof.storageIdentity))
        q.push(.deliver(from: NodeID(raw: 5), to: NodeID(raw: 6),
                        message: .handOver(CertifiedPayment(payment: handedOver, proof: .certificate(proof)),
                                           parents: [CertifiedPayment(payment: parent, proof: .certificate(proof))]), size: 0),
               at: t + 38)
        q.push(.timer(node: NodeID(raw: 5), token: 0), at: t + 40)
        _ = q.pop()
        #expect(q.upcomingNode(0) == NodeID(raw: 3))
        #expect(elements != nil && object(0) == elements.map { $0 - 32 })
        #expect(q.upcomingMessage(0)?.shape == .records)
        #expect(reference(object(0), 32) == address(committed))
        #expect(q.upcomingMessage(1)?.shape == .write(parentsArray: true))
        #expect(reference(object(1), 16) == address(written))
        #expect(reference(reference(object(1), 24), 32) == address(parent))
        #expect(q.upcomingMessage(2)?.shape == .vote)
        #expect(reference(object(2), 16) == statement.boxAddress)
        // A hand-over: its payment and proof, its parents' array and, a level down, the
        // payment's outputs and the first parent's payment and proof.
        #expect(q.upcomingMessage(3)?.shape == .handOver)
        #expect(reference(object(3), 16) == address(handedOver))
        #expect(reference(object(3), 24) == proofAddress)
        #expect(reference(reference(object(3), 16), InvariantChecker.paymentOutputsOffset)
                == handedOver.outputs.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress).map { $0 - 32 } })
        #expect(reference(reference(object(3), 32), 32) == address(parent))
        #expect(reference(reference(object(3), 32), 40) == proofAddress)
        #expect(q.upcomingMessage(4) == nil)
    }

    @Test func deterministicMathMatchesLibm() {
        for i in 1..<2000 {
            let x = Double(i) * 0.013 - 13
            #expect(abs(DeterministicMath.exp(x) - Foundation.exp(x)) <= 1e-13 * Foundation.exp(x))
            let y = Double(i) * 0.37
            #expect(abs(DeterministicMath.log(y) - Foundation.log(y)) <= 1e-13 * max(1, abs(Foundation.log(y))))
        }
        #expect(fixed(1_500_000, 1_000_000, 3) == "1.500" && fixed(7, 3, 2) == "2.33" && fixed(5, 1, 0) == "5")
        #expect(decimal("0.5", unit: Time.second) == 500_000_000 && decimal("1_000", unit: 1) == 1000)
        #expect(decimal("1.", unit: 1) == nil && decimal("-1", unit: 1) == nil && decimal("x", unit: 1) == nil)
    }

    @Test func partitionsCutUntilHealAndLossDrops() {
        var settings = Scenario.NetworkSettings()
        settings.partitions = [Scenario.Partition(start: 0, heal: 100, isolated: [1])]
        var net = Network(settings: settings, replicaCount: 4, principalCount: 2, seed: 1)
        #expect(net.deliveries(from: NodeID(raw: 1), to: NodeID(raw: 2), size: 10, at: 50) == nil)
        #expect(net.deliveries(from: NodeID(raw: 0), to: NodeID(raw: 2), size: 10, at: 50) != nil)
        #expect(net.deliveries(from: NodeID(raw: 1), to: NodeID(raw: 2), size: 10, at: 100) != nil)
        settings = Scenario.NetworkSettings()
        settings.loss = 0.25
        settings.bandwidth = 1_000_000
        net = Network(settings: settings, replicaCount: 4, principalCount: 2, seed: 1)
        var delivered = 0
        for i in 0..<4000 where net.deliveries(from: NodeID(raw: 0), to: NodeID(raw: 1), size: 1000, at: UInt64(i)) != nil {
            delivered += 1
        }
        #expect(delivered > 2800 && delivered < 3200 && net.lost == 4000 - delivered)
    }
}

@Suite struct RunTests {
    @Test(arguments: [("per-record", "certificate"), ("batched", "closure"), ("batched", "certificate")])
    func smallRunConfirmsEveryPayment(_ variant: String, _ validation: String) throws {
        let scenario = try tiny {
            $0.protocolSettings.variant = .init(rawValue: variant) ?? .perRecord
            $0.protocolSettings.validation = .init(rawValue: validation) ?? .certificate
        }
        let sim = try Simulator(scenario: scenario)
        sim.run()
        let report = sim.report(scenarioHash: "x", toolVersion: "test")
        #expect(report.payments > 20)
        #expect(report.confirmed == report.payments, "\(report.summaryJSON)")
        #expect(report.failed == 0)
        #expect(report.latencyCSV.split(separator: "\n").count == report.payments + 1)
    }

    /// The prefetch of a writer's rounds reads a principal's slot and its writers' storage by
    /// layout: check, mid-run on the toolchain in use, that it finds the first writer's rounds
    /// and reads nothing through a principal that has no writer.
    /// The end-of-run passes' hints read, from a list entry, its payment object's address, and
    /// from that object its input and output arrays' storage.
    @Test func checkerHintsFindListedPaymentsAndTheirArrays() {
        let alice = Ed25519KeyPair(seed: Bytes32(word: 1))
        let payment = Payment.signed(PaymentBody(networkId: 1, payer: alice.publicKey,
                                                 inputs: [InputRef(parentKey: Digest(word: 3), index: 1)],
                                                 outputs: [Output(amount: 5, owner: alice.publicKey)], fee: 0, nonce: 1), by: alice)
        let record = CertifiedPayment(payment: payment, proof: .genesis)
        let listed: [(record: CertifiedPayment, seen: UInt64)] = [(record, 1), (record, 2)]
        let accepted: [(principal: Int, record: CertifiedPayment, time: UInt64)] = [(7, record, 1)]
        let object = UnsafeRawPointer(Unmanaged.passUnretained(payment).toOpaque())
        listed.withUnsafeBufferPointer { b in
            let base = UnsafeRawPointer(b.baseAddress!)
            #expect(InvariantChecker.listedPayment(b, base: base, 1, recordAt: 0) == object)
            #expect(InvariantChecker.listedPayment(b, base: base, 2, recordAt: 0) == nil)
        }
        accepted.withUnsafeBufferPointer { b in
            #expect(InvariantChecker.listedPayment(b, base: UnsafeRawPointer(b.baseAddress!), 0,
                                                   recordAt: InvariantChecker.acceptedRecordOffset) == object)
        }
        // An array's elements start 32 bytes into its storage.
        let inputs = payment.inputs.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) - 32 }
        let outputs = payment.outputs.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) - 32 }
        #expect(referencedObject(object, InvariantChecker.paymentInputsOffset) == inputs)
        #expect(referencedObject(object, InvariantChecker.paymentOutputsOffset) == outputs)
    }

    /// S9's hints: walking a store, the raw record `distance` places on refers to a stored
    /// record's payment and its certificate's storage (what `prefetchStored` loads).
    @Test func storeWalkHintsShowStoredRecordsObjects() {
        let alice = Ed25519KeyPair(seed: Bytes32(word: 1))
        var store = RecordStore()
        for nonce in 1...40 as ClosedRange<UInt64> {
            let payment = Payment.signed(PaymentBody(networkId: 1, payer: alice.publicKey, inputs: [],
                                                     outputs: [Output(amount: 5, owner: alice.publicKey)], fee: 0, nonce: nonce), by: alice)
            let statement = VoteStatement(networkId: 1, epoch: 1, group: GroupID(raw: 0), type: .payment, key: payment.key, valueHash: payment.key)
            let votes = (0..<3).map { Vote(replica: ReplicaID($0), signature: Signature(r: Bytes32(word: UInt64($0)), s: .zero)) }
            store.insert(.payment(CertifiedPayment(payment: payment, proof: .certificate(Certificate(statement: statement, votes: votes)))))
        }
        func address(_ o: ObjectIdentifier?) -> UnsafeRawPointer? { o.flatMap { UnsafeRawPointer(bitPattern: UInt(bitPattern: $0)) } }
        var visited = Set<[UnsafeRawPointer?]>(), hinted = [[UnsafeRawPointer?]]()
        store.forEach(hintAhead: 3, { hinted.append([referencedObject($0, 0), referencedObject($0, 8)]) }) { r in
            let identity = r.identity
            visited.insert([address(identity.record), address(identity.proof)])
        }
        #expect(visited.count == 40)
        #expect(hinted.count >= 20 && hinted.allSatisfy { visited.contains($0) })
    }

    /// A Commit's or gossip's record list may be empty (a Byzantine sender can send one).
    /// Delivered to every replica throughout a run, through the whole event loop and its
    /// prefetch stage, empty lists change none of the run's outcomes. (That the prefetch stage
    /// reads a list's count before its first record is checked in the test below: reading past
    /// an empty list's shared storage happens not to fault, so this run cannot show it.)
    @Test func emptyRecordListsPassThroughARun() throws {
        func run(_ pushEmpty: Bool) throws -> (Simulator, RunReport) {
            let sim = try Simulator(scenario: try tiny { $0.duration = Time.second / 2 })
            if pushEmpty {
                for i in 0..<sim.replicaCount {
                    for k in 0..<40 {
                        let from = NodeID(raw: UInt32((i + 1) % sim.replicaCount))
                        let message: Message = k % 2 == 0 ? .commit([]) : .gossip([])
                        sim.queue.push(.deliver(from: from, to: NodeID(raw: UInt32(i)), message: message, size: 1),
                                       at: UInt64(k) * Time.second / 80 + UInt64(i))
                    }
                }
            }
            sim.run()
            return (sim, sim.report(scenarioHash: "x", toolVersion: "t"))
        }
        let (plain, a) = try run(false)
        let (probed, b) = try run(true)
        #expect(plain.runViolations.isEmpty && probed.runViolations.isEmpty)
        #expect(b.payments == a.payments && b.confirmed == a.confirmed && b.confirmed == b.payments)
        // Each was delivered (a busy replica queues it and frees its CPU later: an event more).
        #expect(probed.events >= plain.events + UInt64(40 * probed.replicaCount))
    }

    /// The lookup hints read a record's key and principal at offsets shared by payments and
    /// redeems, a commit's certificate beside its record, and where a store's and the group
    /// memo's lookups start: check all of it on the toolchain in use.
    @Test func lookupHintsFindRecordKeysCertificatesAndTableSlots() throws {
        let keyAt = try #require(RecordLayout.keyOffset), principalAt = try #require(RecordLayout.principalOffset)
        let alice = Ed25519KeyPair(seed: Bytes32(word: 1))
        let payment = Payment.signed(PaymentBody(networkId: 1, payer: alice.publicKey, inputs: [],
                                                 outputs: [Output(amount: 5, owner: alice.publicKey)], fee: 0, nonce: 1), by: alice)
        let redeem = Redeem.signed(networkId: 1, input: InputRef(parentKey: payment.key, index: 0), spender: Digest(word: 3), by: alice)
        func word(_ object: AnyObject, _ offset: Int) -> UInt64 {
            withExtendedLifetime(object) {
                UInt64(bigEndian: UnsafeRawPointer(Unmanaged.passUnretained(object).toOpaque()).load(fromByteOffset: offset, as: UInt64.self))
            }
        }
        #expect(word(payment, keyAt) == payment.key.prefix64 && word(payment, principalAt) == alice.publicKey.raw.prefix64)
        #expect(word(redeem, keyAt) == redeem.key.prefix64 && word(redeem, principalAt) == alice.publicKey.raw.prefix64)

        let statement = VoteStatement(networkId: 1, epoch: 1, group: GroupID(raw: 0), type: .redeem, key: redeem.key, valueHash: redeem.valueHash)
        let votes = (0..<3).map { Vote(replica: ReplicaID($0), signature: Signature(r: Bytes32(word: UInt64($0)), s: .zero)) }
        let record = StoredRecord.redeem(CertifiedRedeem(redeem: redeem, proof: .certificate(Certificate(statement: statement, votes: votes))))
        var q = EventQueue<Event>(reserving: 4)
        let t: UInt64 = 1 << 20
        q.push(.deliver(from: NodeID(raw: 1), to: NodeID(raw: 2), message: .ack(Digest(word: 9)), size: 0), at: t)
        q.push(.deliver(from: NodeID(raw: 1), to: NodeID(raw: 3), message: .commit([record]), size: 0), at: t + 20)
        _ = q.pop()
        let upcoming = try #require(q.upcomingMessage(0))
        #expect(upcoming.to == NodeID(raw: 3) && upcoming.shape == .records)
        func address(_ o: ObjectIdentifier?) -> UnsafeRawPointer? { o.flatMap { UnsafeRawPointer(bitPattern: UInt(bitPattern: $0)) } }
        #expect(referencedObject(upcoming.object, 32) == address(record.identity.record))
        #expect(referencedObject(upcoming.object, 40) == address(record.identity.proof))
        #expect(upcoming.object.load(fromByteOffset: 16, as: Int.self) == 1)  // the count the hint checks first

        // A store's hint is where its lookup finds the record: the home slot, or one a few on.
        var store = RecordStore()
        #expect(store.lookupAddresses(keyPrefix: redeem.key.prefix64) == nil)
        store.insert(record)
        let hint = try #require(store.lookupAddresses(keyPrefix: redeem.key.prefix64))
        #expect(hint.control.load(as: UInt8.self) != 0 && hint.slot.load(as: UInt64.self) == redeem.key.prefix64)
        #expect(referencedObject(hint.slot, 8) == address(record.identity.record) && hint.slotBytes >= 16)
        var memo = DigestMap<Int>()
        memo[alice.publicKey.raw] = 7
        let memoHint = try #require(memo.lookupAddresses(keyPrefix: alice.publicKey.raw.prefix64))
        #expect(memoHint.control.load(as: UInt8.self) != 0 && memoHint.slot.load(as: UInt64.self) == alice.publicKey.raw.prefix64)
        // The slot holds the whole key after its prefix, then the value: all within `slotBytes`.
        #expect(memoHint.slot.loadUnaligned(fromByteOffset: 8, as: Bytes32.self) == alice.publicKey.raw)
        #expect(memoHint.slot.load(fromByteOffset: memoHint.slotBytes - 8, as: Int.self) == 7)
    }

    @Test func roundsHintFindsTheFirstWritersRounds() throws {
        let sim = try Simulator(scenario: try tiny())
        sim.runWindow(until: Time.second / 4)
        let writersAt = try #require(Simulator.principalWritersOffset), roundsAt = try #require(Simulator.writerRoundsOffset)
        var busy = 0, idle = 0
        sim.principals.withUnsafeBufferPointer { b in
            for (i, principal) in b.enumerated() {
                let found = Simulator.firstWriterRounds(UnsafeRawPointer(b.baseAddress! + i), writersAt: writersAt, roundsAt: roundsAt)
                if let first = principal.writers.first {
                    busy += 1
                    #expect(found != nil && found == first.writer.roundsAddress)
                } else {
                    idle += 1
                    #expect(found == nil)
                }
            }
        }
        #expect(busy > 0 && idle > 0)
    }

    /// The repair-log hint reads, from a replica's slot, the storage its log appends to: its
    /// count where the hint takes it (the log's end is `count` entries past the header).
    @Test func repairLogHintFindsTheLog() throws {
        let sim = try Simulator(scenario: try tiny())
        sim.runWindow(until: Time.second / 4)
        let at = try #require(Replica.repairArrayOffsets)
        var logged = 0
        sim.replicas.withUnsafeBufferPointer { b in
            for (i, replica) in b.enumerated() {
                let slot = UnsafeRawPointer(b.baseAddress! + i)
                let log = slot.load(fromByteOffset: at.log, as: UnsafeRawPointer?.self)
                guard let expected = replica.repairLogAddress else { continue }
                #expect(log == expected)
                let sizes = replica.tableSizes.first { $0.table.hasPrefix("repair log") }
                #expect(log?.load(fromByteOffset: 16, as: Int.self) == sizes?.count)
                if (sizes?.count ?? 0) > 0 { logged += 1 }
            }
        }
        #expect(logged > 0)
    }

    /// A payment cap far above what the run offers (the file format allows 10⁹) is a cap, not a
    /// size: the run must not try to reserve room for it (it aborted in malloc before).
    @Test func hugePaymentCapRunsLikeNoCap() throws {
        let capped = try Simulator(scenario: try tiny { $0.workload.payments = 1_000_000_000 })
        let free = try Simulator(scenario: try tiny())
        capped.run()
        free.run()
        let a = capped.report(scenarioHash: "x", toolVersion: "t"), b = free.report(scenarioHash: "x", toolVersion: "t")
        #expect(a.payments > 20 && a.latencyCSV == b.latencyCSV && a.throughputCSV == b.throughputCSV)
    }

    /// A run whose payment cap stops issuing before `duration` measures its steady window while
    /// payments arrive: [T/5, T) with T just after the last payment started, not [d/5, d).
    @Test func cappedRunMeasuresWhilePaymentsArrive() throws {
        #expect(SteadyState.offeredUntil(duration: 1_000, cap: 0, issued: 50, lastIssue: 400) == 1_000)
        #expect(SteadyState.offeredUntil(duration: 1_000, cap: 60, issued: 50, lastIssue: 400) == 1_000)
        #expect(SteadyState.offeredUntil(duration: 1_000, cap: 50, issued: 50, lastIssue: 400) == 401)
        #expect(SteadyState.offeredUntil(duration: 1_000, cap: 50, issued: 50, lastIssue: 5_000) == 1_000)

        let sim = try Simulator(scenario: try tiny { $0.workload.payments = 12 })  // ~0.3 s of a 1 s run
        sim.run()
        let r = sim.report(scenarioHash: "x", toolVersion: "t")
        #expect(r.payments == 12 && r.confirmed == 12)
        let window = try #require(r.summaryJSON.firstMatch(of: /"window_s": \[([0-9.]+), ([0-9.]+)\]/))
        let start = try #require(Double(window.1)), end = try #require(Double(window.2))
        let lastRow = try #require(r.latencyCSV.split(separator: "\n").last).split(separator: ",")
        let lastIssued = try #require(Double(String(lastRow[4]))) / 1e9
        // The JSON gives milliseconds.
        #expect(end < 0.9 && end > lastIssued - 0.001 && abs(start - end / 5) < 0.001, "window \(start)–\(end), last \(lastIssued)")
        let steady = try #require(Double(r.steadyThroughput))
        #expect(steady > 0)
    }

    /// L1's bound follows a chain of crash-recover faults whatever order the fault table keeps
    /// them in: a payment started during the first crash waits for the second's recovery when
    /// the second began before the first recovered (the pass once ran in the table's hash
    /// order, which changes by process, and then stopped at the first recovery half the time).
    @Test func livenessBoundFollowsOverlappingRecoveries() throws {
        func fault(_ id: Int, at: UInt64, recover: UInt64) -> Scenario.ReplicaFault {
            var f = Scenario.ReplicaFault(behaviour: .crashRecover)
            f.ids = [id]
            f.at = at
            f.recover = recover
            return f
        }
        let second = Time.second
        for order in [[0, 1], [1, 0]] {
            let faults = [fault(0, at: 1 * second, recover: 3 * second), fault(5, at: 2 * second, recover: 5 * second)]
            let sim = try Simulator(scenario: try tiny {
                $0.network.loss = 0
                $0.faults.replicas = order.map { faults[$0] }
            })
            let bound = Simulator.LivenessBound(sim)
            let slack = sim.scenario.protocolSettings.retry + 8 * sim.hopBound
            #expect(bound(start: second + second / 2) == 5 * second + slack)  // during the first crash: both
            #expect(bound(start: second / 2) == second / 2 + slack)            // before either crash
            #expect(bound(start: 6 * second) == 6 * second + slack)            // after both
        }
    }

    @Test func sameSeedSameBytesInProcessDifferentSeedDiffers() throws {
        func once(_ seed: UInt64) throws -> (RunReport, UInt64) {
            let sim = try Simulator(scenario: try tiny { $0.seed = seed }, traceEvery: 512)
            sim.run()
            return (sim.report(scenarioHash: "x", toolVersion: "t"), sim.traceDigest)
        }
        let (a, da) = try once(3), (b, db) = try once(3), (c, dc) = try once(4)
        #expect(a.throughputCSV == b.throughputCSV && a.latencyCSV == b.latencyCSV && a.summaryJSON == b.summaryJSON && da == db)
        #expect(a.latencyCSV != c.latencyCSV && da != dc)
    }

    /// The ledger dump is what the README documents: every record line decodes from its hex with
    /// `StoredRecord.decodeRecord`, carries the key it claims, and verifies against the run's context.
    @Test func ledgerDumpRecordsDecodeAndVerify() throws {
        let sim = try Simulator(scenario: try tiny { $0.protocolSettings.variant = .batched })
        sim.run()
        let lines = sim.ledgerDump().split(separator: "\n")
        #expect(lines.first?.hasPrefix("# quorumcoin ledger v1") == true)
        var payments = 0, redeems = 0
        var verified = Set<Digest>()
        let meter = CryptoMeter(sim.context.verifier)
        for line in lines where line.hasPrefix("payment ") || line.hasPrefix("redeem ") {
            let fields = line.split(separator: " ")
            #expect(fields.count == 3)
            let record = try StoredRecord.decodeRecord(try Hex.decode(String(fields[2])))
            #expect(record.key.hex == String(fields[1]))
            #expect((try? sim.context.verify(record, meter: meter, verified: &verified)) != nil, "\(line.prefix(80))")
            if case .payment = record { payments += 1 } else { redeems += 1 }
        }
        #expect(payments > 20 && redeems > 20)
    }

    /// Two separate processes (so Swift's per-process hash seeds differ, and any Dictionary or Set
    /// order that leaked into results would show) write byte-identical files.
    @Test func separateProcessesWriteIdenticalFiles() throws {
        guard let binary = builtQuorumsim() else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qc-determinism-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("tiny.yaml")
        try tinyYAML.write(to: file, atomically: true, encoding: .utf8)
        for run in ["a", "b"] {
            let p = Process()
            p.executableURL = binary
            p.arguments = ["run", file.path, "--out", dir.appendingPathComponent(run).path, "--quiet"]
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
        }
        for name in ["throughput.csv", "latency.csv", "summary.json", "scenario.resolved.yaml"] {
            let a = try Data(contentsOf: dir.appendingPathComponent("a/\(name)"))
            let b = try Data(contentsOf: dir.appendingPathComponent("b/\(name)"))
            #expect(a == b && !a.isEmpty, "\(name) differs between processes")
        }
        // The resolved scenario alone reproduces the run.
        let resolved = try String(contentsOf: dir.appendingPathComponent("a/scenario.resolved.yaml"), encoding: .utf8)
        #expect(try ScenarioFile(file: "resolved").parse(resolved) == (try tiny()))
    }
}

@Suite struct ScenarioFileTests {
    func error(_ yaml: String) -> String {
        do {
            _ = try ScenarioFile(file: "bad.yaml").parse(yaml)
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func badFilesNameFileFieldAndExpectedForm() {
        #expect(error("topology:\n  grups: 4\n") == "bad.yaml:2: field 'topology.grups': expected a known field (see `quorumsim scenario --help`); 'grups' is not one")
        #expect(error("workload:\n  principals: -5\n") == "bad.yaml:2: field 'workload.principals': expected an integer in 1…10000000")
        #expect(error("workload:\n  coin_amount: -1\n") == "bad.yaml:2: field 'workload.coin_amount': expected an unsigned integer (0 … 18446744073709551615)")
        #expect(error("topology:\n  n: 3\n  f: 1\n").hasPrefix("bad.yaml:2: field 'topology.n': expected n ≥ 3f+1"))
        #expect(error("protocol:\n  variant: fast\n") == "bad.yaml:2: field 'protocol.variant': expected one of per-record, batched")
        #expect(error("duration_s: soon\n") == "bad.yaml:1: field 'duration_s': expected a non-negative number (decimals allowed)")
        #expect(error("network:\n  latency: {model: uniform, min_ms: 9, max_ms: 3}\n").contains("'network.latency.max_ms': expected max_ms ≥ min_ms"))
        #expect(error("network:\n  loss: 1.5\n").contains("'network.loss': expected a number in 0.0…1.0"))
        #expect(error("faults: [crash]\n").contains("'faults'"))
        #expect(error("[1, 2]\n").contains("expected a mapping of sections"))
        #expect(error("a: [\n").hasPrefix("bad.yaml: field '(top level)': expected valid YAML"))
    }

    /// Every shipped scenario parses, and its resolved form parses back to the same scenario.
    @Test func shippedScenariosParseAndRoundTrip() throws {
        let folder = packageRoot.appendingPathComponent("scenarios")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 4)
        for name in files {
            let text = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            let scenario = try ScenarioFile(file: name).parse(text)
            let again = try ScenarioFile(file: "resolved").parse(ScenarioFile.emit(scenario))
            #expect(again == scenario, "\(name)")
        }
    }

    /// The field table documents every key the parser accepts, and scenarios/README.md lists them.
    @Test func everyFieldIsDocumented() throws {
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("scenarios/README.md"), encoding: .utf8)
        for field in ScenarioFields.all {
            #expect(readme.contains("`\(field.path)`"), "scenarios/README.md lacks \(field.path)")
        }
    }
}
