import Testing
import QuorumCrypto
import QuorumLedger
@testable import QuorumStore

@Suite struct MessageKindTests {
    /// The constant count the simulator's tables use matches the kinds and their indices.
    @Test func kindCountMatchesTheKinds() {
        #expect(Message.kindCount == Message.kinds.count)
    }
}

@Suite struct QuorumArithmeticTests {
    /// For every valid (n, f): two write quorums share an honest replica, writes stay live with f
    /// silent, and a read quorum meets every write quorum in f+1 replicas.
    @Test func quorumIntersections() throws {
        for f in 0...10 {
            for n in (3 * f + 1)...(3 * f + 12) {
                let q = try QuorumParameters(n: n, f: f)
                #expect(2 * q.writeQuorum - n >= f + 1)
                #expect(q.writeQuorum <= n - f)
                #expect(q.writeQuorum + q.readQuorum - n >= f + 1)
                #expect(q.readQuorum <= n - f)
            }
        }
        #expect(QuorumParameters.standard.writeQuorum == 3 && QuorumParameters.standard.readQuorum == 3)
        #expect(try QuorumParameters(n: 7, f: 2).writeQuorum == 5)
        #expect(throws: ConfigurationError.invalidQuorum(n: 3, f: 1)) { try QuorumParameters(n: 3, f: 1) }
        #expect(throws: ConfigurationError.invalidQuorum(n: 4, f: -1)) { try QuorumParameters(n: 4, f: -1) }
    }

    @Test(arguments: AssignmentMode.allCases) func groupAssignmentIsDeterministicAndSpread(_ mode: AssignmentMode) throws {
        let a = try GroupAssignment(mode: mode, beacon: Bytes32(word: 3), replicaCount: 40, groupSize: 4)
        let b = try GroupAssignment(mode: mode, beacon: Bytes32(word: 3), replicaCount: 40, groupSize: 4)
        var load = [Int](repeating: 0, count: 40)
        for i in 0..<2000 {
            let pk = Ed25519KeyPair(seed: Bytes32(word: UInt64(i))).publicKey
            let g = a.group(of: pk)
            #expect(g == b.group(of: pk))
            #expect(Set(g.members).count == 4 && g.members.allSatisfy { $0 < 40 } && g.members == g.members.sorted())
            for m in g.members { load[Int(m)] += 1 }
        }
        // 8000 memberships over 40 replicas: each near 200.
        #expect(load.allSatisfy { $0 > 120 && $0 < 300 })
        #expect(throws: ConfigurationError.self) { try GroupAssignment(mode: .partitioned, beacon: .zero, replicaCount: 10, groupSize: 4) }
    }

    /// Keys sharing their first 8 bytes (the memo's index) each get their own group, whichever
    /// was asked first, as a fresh assignment computes it.
    @Test(arguments: AssignmentMode.allCases) func keysSharingAPrefixKeepTheirOwnGroups(_ mode: AssignmentMode) throws {
        func assignment() throws -> GroupAssignment {
            try GroupAssignment(mode: mode, beacon: Bytes32(word: 3), replicaCount: 400, groupSize: 4)
        }
        let keys = (0..<40).map { PublicKey(raw: Bytes32(words: (7, 0, UInt64($0 / 4), UInt64($0)))) }
        let memoized = try assignment()
        let groups = keys.map(memoized.group(of:))
        #expect(Set(groups.map(\.id)).count > 5)  // not one group for all: the whole key counts
        for (key, group) in zip(keys, groups).reversed() {
            #expect(memoized.group(of: key) == group)
            #expect(try assignment().group(of: key) == group)
        }
    }

    /// The 256-bit remainder agrees with a big-number computation done by hand.
    @Test func shardRemainderUsesTheWholeDigest() throws {
        // 2^192 mod 1000003, computed by repeated squaring independently of dividingFullWidth.
        var expected: UInt64 = 1
        for _ in 0..<192 { expected = expected * 2 % 1_000_003 }
        #expect(GroupAssignment.remainder(of: Digest(word: 1), dividingBy: 1_000_003) == expected)
    }
}

/// Picks principals whose groups are pairwise distinct (so every hop crosses groups).
func distinctGroupPrincipals(_ c: Cluster, count: Int, first: Int = 0) -> [Int] {
    var chosen = [first]
    for i in 0..<c.principals.count where chosen.count < count {
        if !chosen.contains(where: { c.group($0).members == c.group(i).members }) { chosen.append(i) }
    }
    return chosen
}

@Suite struct WriteTests {
    @Test(arguments: WriteVariant.allCases, AssignmentMode.allCases)
    func crossGroupChainConfirmsAndValidatesInBothModes(_ variant: WriteVariant, _ mode: AssignmentMode) throws {
        let c = try Cluster(shards: 4, principals: 24, mode: mode)
        let chain = distinctGroupPrincipals(c, count: 4)
        #expect(chain.count == 4)
        let amounts: [UInt64] = [600, 500, 400]
        var payments = [CertifiedPayment]()
        for hop in 0..<3 {
            let status = try c.pay(chain[hop], [(chain[hop + 1], amounts[hop])], variant: variant)
            guard case let .committed(certified) = status else {
                Issue.record("hop \(hop) ended \(status)")
                return
            }
            payments.append(certified)
        }
        #expect(c.wallets[chain[3]].balance == 400)
        #expect(c.wallets[chain[2]].balance == 100 && c.wallets[chain[1]].balance == 100 && c.wallets[chain[0]].balance == 400)
        // Depth 3 behind the last payment: genesis → P1 → P2 → P3, each in another group.
        let last = payments[2]
        let payee = c.reader(chain[3], mode: .certificate)
        #expect(try c.validate(last, parents: [payments[1]], by: payee)?.get() == last)
        let auditor = c.reader(chain[3], mode: .closure)
        #expect(try c.validate(last, parents: [], by: auditor)?.get() == last)
        let validated = c.readers[auditor.raw]?.validated ?? []
        #expect(payments.allSatisfy { validated.contains($0.key) })
        #expect(validated.contains(c.context.genesis.payments[0].key))
        // Each record is stored by at least W members of its group.
        for p in payments {
            let holders = c.group(c.principals.firstIndex { $0.publicKey == p.payment.payer } ?? 0).members
                .filter { c.replicas[Int($0)].record(p.key) != nil }
            #expect(holders.count >= c.context.quorum.writeQuorum)
        }
    }

    /// An owner who signs two redeems of one output for two payments (PROTOCOL §6 double spend)
    /// gets at most one of them certified, whatever the delivery order.
    @Test(arguments: WriteVariant.allCases) func equivocatingOwnerCertifiesAtMostOnePayment(_ variant: WriteVariant) throws {
        var oneWon = 0
        for seed in UInt64(1)...24 {
            let c = try Cluster(principals: 4, seed: seed)
            c.shuffled = true
            var w1 = c.wallets[0], w2 = c.wallets[0]
            let e1 = try w1.pay([Output(amount: 300, owner: c.principals[1].publicKey)])
            let e2 = try w2.pay([Output(amount: 300, owner: c.principals[2].publicKey)])
            #expect(e1.redeems[0].key == e2.redeems[0].key && e1.payment.key != e2.payment.key)
            c.startWriter(e1, node: c.client(1), variant: variant)
            c.startWriter(e2, node: c.client(2), variant: variant)
            c.settle()
            let outcomes = [c.client(1), c.client(2)].compactMap { c.writers[$0.raw]?.status.certified }
            #expect(outcomes.count <= 1, "seed \(seed): both spends certified")
            #expect(c.certifiedValues(e1.redeems[0].key).count <= 1)
            // S10: no replica locked the redeem key to two values (locks are never overwritten).
            for r in c.replicas {
                if let lock = r.durable.lock(e1.redeems[0].key) {
                    #expect(lock == e1.redeems[0].valueHash || lock == e2.redeems[0].valueHash)
                }
            }
            if outcomes.count == 1 { oneWon += 1 }
        }
        #expect(oneWon > 0)  // some orders let one spend through: the race is real, not vacuous
    }

    @Test(arguments: WriteVariant.allCases) func oneSilentReplicaDoesNotStopWrites(_ variant: WriteVariant) throws {
        let c = try Cluster(principals: 4)
        c.silent = [c.group(0).members[1]]
        let status = try c.pay(0, [(1, 10)], variant: variant)
        #expect(status.certified != nil)
        if case .committed = status {} else { Issue.record("not committed: \(status)") }
    }

    /// A batched writer for a payment from principal 0 to 1, its group and the payment's key.
    func batchedWriter(_ c: Cluster) throws -> (Writer, Group, Digest) {
        let entry = try c.wallets[0].pay([Output(amount: 10, owner: c.principals[1].publicKey)])
        let node = c.client(0)
        c.startWriter(entry, node: node, variant: .batched)
        return (try #require(c.writers[node.raw]), c.group(0), entry.payment.key)
    }

    /// A writer matches a vote to its round field by field (key, type, value, group, network,
    /// epoch) without comparing whole statements: a vote duly signed by a member on a statement
    /// that differs in any one field must not count towards the certificate.
    @Test func votesOnAnyOtherStatementDoNotCount() throws {
        let c = try Cluster()
        var (writer, group, key) = try batchedWriter(c)
        let other = Digest(word: 77)
        let ctx = c.context
        func statement(network: UInt32 = 1, epoch: UInt32 = 1, group g: GroupID? = nil, type: RecordType = .batch,
                       key k: Digest? = nil, value: Digest? = nil) -> VoteStatement {
            VoteStatement(networkId: network, epoch: epoch, group: g ?? group.id, type: type, key: k ?? key, valueHash: value ?? key)
        }
        let wrong = [statement(network: 2), statement(epoch: 2), statement(group: GroupID(raw: group.id.raw + 1)),
                     statement(type: .payment), statement(key: other), statement(value: other)]
        #expect(statement() == ctx.statement(.batch, key: key, valueHash: key, group: group.id))
        func vote(_ s: VoteStatement, by member: ReplicaID) -> Message {
            let signature = s.withSigningMessage { c.replicaSigners[Int(member)].sign(bytes: $0) }
            return .vote(s, Vote(replica: member, signature: signature))
        }
        var out = Outbox()
        for s in wrong {
            for member in group.members { writer.receive(vote(s, by: member), from: NodeID(replica: member), now: 0, into: &out) }
        }
        guard case .running = writer.status else { Issue.record("votes on other statements certified the payment"); return }
        for member in group.members.prefix(ctx.quorum.writeQuorum) {
            writer.receive(vote(statement(), by: member), from: NodeID(replica: member), now: 0, into: &out)
        }
        guard case let .certified(certified) = writer.status, case let .certificate(certificate) = certified.proof else {
            Issue.record("W votes on the round's statement did not certify it"); return
        }
        #expect(certificate.statement == statement())
        #expect(throws: Never.self) {
            try ctx.verify(certificate, types: [.batch], key: key, valueHash: key, group: group, meter: CryptoMeter(ctx.verifier))
        }
    }

    /// A commit is done when W distinct members acknowledged it: an ack repeated by one member,
    /// or sent by a replica outside the group, does not count.
    @Test func acksCountOncePerMember() throws {
        let c = try Cluster()
        var (writer, group, key) = try batchedWriter(c)
        let statement = c.context.statement(.batch, key: key, valueHash: key, group: group.id)
        var out = Outbox()
        for member in group.members.prefix(c.context.quorum.writeQuorum) {
            let signature = statement.withSigningMessage { c.replicaSigners[Int(member)].sign(bytes: $0) }
            writer.receive(.vote(statement, Vote(replica: member, signature: signature)), from: NodeID(replica: member), now: 0, into: &out)
        }
        guard case .certified = writer.status else { Issue.record("W votes did not certify the payment"); return }
        let outsider = try #require((0..<ReplicaID(c.replicaSigners.count)).first { !group.contains($0) })
        let members = Array(group.members.prefix(c.context.quorum.writeQuorum - 1))
        for member in members + members + [outsider, outsider, outsider] {
            writer.receive(.ack(key), from: NodeID(replica: member), now: 0, into: &out)
        }
        guard case .certified = writer.status else { Issue.record("repeated or outside acks committed the payment"); return }
        writer.receive(.ack(key), from: NodeID(replica: group.members[c.context.quorum.writeQuorum - 1]), now: 0, into: &out)
        guard case .committed = writer.status else { Issue.record("W distinct members' acks did not commit"); return }
    }

    /// Positions past the inline 64 bits behave as the first ones.
    @Test func memberSetHoldsEachPositionOnce() {
        var set = MemberSet()
        var model = Set<Int>()
        var random = DeterministicRandom(seed: 5, stream: "member-set")
        for _ in 0..<2_000 {
            let position = random.uniform(below: 300 as Int)
            if random.uniform(below: 2 as Int) == 0 {
                #expect(set.insert(position) == model.insert(position).inserted)
            } else {
                #expect(set.contains(position) == model.contains(position))
            }
            #expect(set.count == model.count)
        }
        #expect(model.contains { $0 >= 64 } && model.contains { $0 < 64 })
    }

    /// A writer keeps no Prepare or Commit: it builds them again when its retry timer fires.
    /// Two members silent through the first sends stall a redeem's Prepare, and later the
    /// payment's Commit; once they answer again, the re-sent messages (equal to the first ones)
    /// finish the write, and every member stores the payment and its redeem.
    @Test(arguments: [WriteVariant.perRecord, .batched]) func aStalledWriteFinishesOnItsRetries(variant: WriteVariant) throws {
        let c = try Cluster(principals: 4)
        let members = c.group(0).members
        let entry = try c.wallets[0].pay([Output(amount: 10, owner: c.principals[1].publicKey)])
        let node = c.client(0)
        c.silent = Set(members.prefix(2))
        c.startWriter(entry, node: node, variant: variant)
        c.pump()
        let firstPrepares = c.log.filter { if case .prepareRedeem = $0 { return true }; if case .prepareBatch = $0 { return true }; return false }
        #expect(!firstPrepares.isEmpty)
        // Answer again, and step until the payment is certified (its Commit just sent).
        c.silent = []
        var steps = 0
        func certified() -> Bool { if case .certified? = c.writers[node.raw]?.status { return true }; return false }
        while !certified(), steps < 10_000 {
            if c.queue.isEmpty {
                // Fire the writer's due retry timer.
                guard let next = c.timers.map(\.timer.at).min() else { break }
                c.now = max(c.now, next)
                let due = c.timers.filter { $0.timer.at <= c.now && $0.node == node }
                c.timers.removeAll { $0.timer.at <= c.now && $0.node == node }
                for (_, timer) in due {
                    var out = Outbox()
                    c.writers[node.raw]?.timerFired(token: timer.token, now: c.now, into: &out)
                    c.enqueue(out, from: node)
                }
                if due.isEmpty { break }
            } else {
                c.pump(limit: 1)
            }
            steps += 1
        }
        #expect(certified())
        let resent = c.log.filter { if case .prepareRedeem = $0 { return true }; if case .prepareBatch = $0 { return true }; return false }
        #expect(resent.count > firstPrepares.count && Set(resent) == Set(firstPrepares))
        // The Commit reaches two members only: not committed until the retries reach the others.
        c.silent = Set(members.prefix(2))
        c.pump()
        guard case .certified? = c.writers[node.raw]?.status else { Issue.record("committed without W acks"); return }
        let commits = c.log.filter { if case .commit = $0 { return true }; return false }.count
        c.silent = []
        c.settle()
        guard case let .committed(done)? = c.writers[node.raw]?.status else { Issue.record("the retries did not finish the write"); return }
        #expect(c.log.filter { if case .commit = $0 { return true }; return false }.count > commits)
        for r in members {
            #expect(c.replicas[Int(r)].durable.store.contains(done.key))
            for redeem in entry.redeems { #expect(c.replicas[Int(r)].durable.store.contains(redeem.key)) }
        }
    }

    @Test func twoSilentReplicasStallButNeverFail() throws {
        let c = try Cluster(principals: 4)
        c.silent = Set(c.group(0).members.prefix(2))
        let status = try c.pay(0, [(1, 10)], variant: .perRecord)
        guard case .running = status else { Issue.record("expected a stalled write, got \(status)"); return }
    }
}

@Suite struct AttackTests {
    func setUp() throws -> (Cluster, Payment, Group) {
        let c = try Cluster(principals: 8)
        return (c, c.context.genesis.payments[0], c.group(0))
    }

    /// Sends one message to replica `r` and returns its single reply.
    func ask(_ c: Cluster, _ r: ReplicaID, _ m: Message, from: NodeID = NodeID(raw: 999)) -> Message? {
        var out = Outbox()
        c.replicas[Int(r)].receive(m, from: from, now: 0, into: &out)
        return out.messages.first?.message
    }

    func isReject(_ m: Message?, _ reason: RejectReason) -> Bool {
        if case let .reject(_, _, r)? = m { return r == reason }
        return false
    }

    func isVote(_ m: Message?) -> Bool {
        if case .vote? = m { return true }
        return false
    }

    @Test func theftWrongGroupConflictAndReplay() throws {
        let (c, g, group) = try setUp()
        let coin = InputRef(parentKey: g.key, index: 0)
        let parent = CertifiedPayment(payment: g, proof: .genesis)
        let alice = c.principals[0]
        let good = Redeem.signed(networkId: 1, input: coin, spender: Digest(word: 1), by: alice)
        let member = group.members[0]
        // Redeem sent to the wrong group.
        let outsider = ReplicaID((0..<c.replicas.count).first { !group.contains(ReplicaID($0)) } ?? 0)
        #expect(isReject(ask(c, outsider, .prepareRedeem(good, parent: parent)), .notMember))
        // Spending another's output: Bob signs a redeem of Alice's coin (sent to Bob's group).
        let thief = distinctGroupPrincipals(c, count: 2)[1]
        let stolen = Redeem.signed(networkId: 1, input: coin, spender: Digest(word: 1), by: c.principals[thief])
        #expect(isReject(ask(c, c.group(thief).members[0], .prepareRedeem(stolen, parent: parent)), .invalid))
        // A genuine vote, then replay: the same vote again, no second value.
        let first = ask(c, member, .prepareRedeem(good, parent: parent))
        #expect(isVote(first))
        #expect(ask(c, member, .prepareRedeem(good, parent: parent)) == first)
        let conflicting = Redeem.signed(networkId: 1, input: coin, spender: Digest(word: 2), by: alice)
        #expect(isReject(ask(c, member, .prepareRedeem(conflicting, parent: parent)), .conflict))
        // A parent with a forged genesis claim is refused.
        let fake = Genesis.endowment(networkId: 1, owner: alice, amount: 1_000_000, nonce: 9)
        let fakeRedeem = Redeem.signed(networkId: 1, input: InputRef(parentKey: fake.key, index: 0), spender: Digest(word: 3), by: alice)
        #expect(isReject(ask(c, member, .prepareRedeem(fakeRedeem, parent: CertifiedPayment(payment: fake, proof: .genesis))), .invalid))
    }

    @Test func invalidPaymentsAreRefused() throws {
        let (c, g, group) = try setUp()
        let alice = c.principals[0], bob = c.principals[1]
        let coin = InputRef(parentKey: g.key, index: 0)
        let parent = CertifiedPayment(payment: g, proof: .genesis)
        func pay(_ outputs: [Output], fee: UInt64 = 0, inputs: [InputRef]? = nil) -> Payment {
            Payment.signed(PaymentBody(networkId: 1, payer: alice.publicKey, inputs: inputs ?? [coin], outputs: outputs, fee: fee, nonce: 5), by: alice)
        }
        let member = group.members[0]
        let cases: [(String, Payment)] = [
            ("overspend", pay([Output(amount: 1001, owner: bob.publicKey)])),
            ("overflow", pay([Output(amount: Ledger.maxSupply, owner: bob.publicKey), Output(amount: Ledger.maxSupply, owner: bob.publicKey)])),
            ("mint", pay([Output(amount: 5, owner: alice.publicKey)], inputs: [])),
            ("fee overflow", pay([Output(amount: 1000, owner: bob.publicKey)], fee: .max)),
        ]
        for (name, p) in cases {
            let redeems = p.inputs.map { Redeem.signed(networkId: 1, input: $0, spender: p.key, by: alice) }
            #expect(isReject(ask(c, member, .prepareBatch(p, parents: [parent], redeems: redeems)), .invalid), "\(name)")
            #expect(isReject(ask(c, member, .preparePayment(p, parents: [parent], redeems: [])), .invalid), "\(name)")
        }
        // Oversized: more inputs than the cap.
        let many = (0..<17).map { InputRef(parentKey: g.key, index: UInt32($0)) }
        #expect(isReject(ask(c, member, .prepareBatch(pay([Output(amount: 1, owner: bob.publicKey)], inputs: many), parents: [parent], redeems: [])), .invalid))
    }

    /// Two payments citing one redeem: the redeem names P1, so it cannot certify P2's input.
    @Test func secondPaymentCannotReuseARedeem() throws {
        let (c, _, group) = try setUp()
        let status = try c.pay(0, [(1, 100)], variant: .perRecord)
        guard let p1 = status.certified else { Issue.record("P1 not certified"); return }
        let redeemKey = p1.payment.inputs[0].redeemKey
        guard case let .redeem(certifiedRedeem)? = c.replicas[Int(group.members[0])].record(redeemKey) else {
            Issue.record("redeem not stored"); return
        }
        let g = c.context.genesis.payments[0]
        let alice = c.principals[0]
        let p2 = Payment.signed(PaymentBody(networkId: 1, payer: alice.publicKey, inputs: p1.payment.inputs,
                                            outputs: [Output(amount: 1000, owner: alice.publicKey)], fee: 0, nonce: 77), by: alice)
        let reply = ask(c, group.members[1], .preparePayment(p2, parents: [CertifiedPayment(payment: g, proof: .genesis)], redeems: [certifiedRedeem]))
        #expect(isReject(reply, .invalid))
    }

    /// Forged and malformed certificates each fail with the matching error (PROTOCOL §6).
    @Test func forgedCertificatesAreRejected() throws {
        let (c, _, group) = try setUp()
        guard let p = try c.pay(0, [(1, 100)], variant: .batched).certified, case let .certificate(cert) = p.proof else {
            Issue.record("no certificate"); return
        }
        let meter = CryptoMeter(Ed25519Verifier())
        var seen = Set<Digest>()
        func check(_ certificate: Certificate) throws(CertificateError) {
            var fresh = Set<Digest>()
            try c.context.verify(CertifiedPayment(payment: p.payment, proof: .certificate(certificate)), meter: meter, verified: &fresh)
        }
        try check(cert)
        var few = cert; few.votes.removeLast()
        #expect(throws: CertificateError.tooFewVotes(have: 2, need: 3)) { try check(few) }
        var dup = cert; dup.votes[1] = dup.votes[0]
        #expect(throws: CertificateError.duplicateSigner(dup.votes[0].replica)) { try check(dup) }
        let outsider = ReplicaID((0..<c.replicas.count).first { !group.contains(ReplicaID($0)) } ?? 0)
        var nonMember = cert
        nonMember.votes[0] = Vote(replica: outsider, signature: c.replicaSigners[Int(outsider)].sign(cert.statement.signingMessage))
        #expect(throws: CertificateError.nonMember(outsider)) { try check(nonMember) }
        var badSig = cert; badSig.votes[2].signature = .zero
        #expect(throws: CertificateError.badSignature(cert.votes[2].replica)) { try check(badSig) }
        var tooMany = cert; tooMany.votes += cert.votes
        #expect(throws: CertificateError.tooManyVotes(have: 6, groupSize: 4)) { try check(tooMany) }
        var epoch = cert; epoch.statement.epoch = 2
        #expect(throws: CertificateError.wrongEpoch(2)) { try check(epoch) }
        var net = cert; net.statement.networkId = 9
        #expect(throws: CertificateError.wrongNetwork(9)) { try check(net) }
        var key = cert; key.statement.key = Digest(word: 5)
        #expect(throws: CertificateError.wrongKey(Digest(word: 5))) { try check(key) }
        var value = cert; value.statement.valueHash = Digest(word: 6)
        #expect(throws: CertificateError.wrongValue(Digest(word: 6))) { try check(value) }
        var type = cert; type.statement.type = .redeem
        #expect(throws: CertificateError.wrongType(.redeem)) { try check(type) }
        var otherGroup = cert; otherGroup.statement.group = GroupID(raw: 999)
        #expect(throws: CertificateError.wrongGroup(GroupID(raw: 999))) { try check(otherGroup) }
        // Certificates are values over a shared buffer: no edit of a copy reached the original,
        // and equality is by content, not by buffer.
        try check(cert)
        #expect(cert.voteList.count == 3 && Array(cert.voteList) == cert.votes)
        #expect(Certificate(statement: cert.statement, votes: cert.votes) == cert && few != cert && epoch != cert)
        // A valid certificate for another key cannot certify this payment.
        #expect(throws: CertificateError.notGenesis(p.key)) {
            try c.context.verify(CertifiedPayment(payment: p.payment, proof: .genesis), meter: meter, verified: &seen)
        }
        // Replicas refuse a commit carrying a forged certificate and store nothing.
        let forged = StoredRecord.payment(CertifiedPayment(payment: p.payment, proof: .certificate(few)))
        let fresh = try Cluster(principals: 8)
        var out = Outbox()
        fresh.replicas[Int(group.members[0])].receive(.commit([forged]), from: NodeID(raw: 999), now: 0, into: &out)
        #expect(out.messages.isEmpty && fresh.replicas[Int(group.members[0])].record(p.key) == nil)
    }
}

@Suite struct CertificateStorageTests {
    /// Votes whose signatures end in 48 zero bytes (modelled MACs) are stored in 3 words instead
    /// of 9; every form reads back exactly the votes it was made from, encodes to the same bytes
    /// and compares equal by content.
    @Test func shortAndFullVotesReadBackExactly() throws {
        let statement = VoteStatement(networkId: 1, epoch: 1, group: GroupID(raw: 3), type: .redeem,
                                      key: Digest(word: 7), valueHash: Digest(word: 8))
        func signature(_ words: [UInt64]) -> Signature {
            Signature(r: Bytes32(words: (words[0], words[1], words[2], words[3])),
                      s: Bytes32(words: (words[4], words[5], words[6], words[7])))
        }
        let short = (0..<3).map { Vote(replica: ReplicaID(100 + $0), signature: signature([UInt64($0) + 1, .max, 0, 0, 0, 0, 0, 0])) }
        let full = (0..<3).map { i in Vote(replica: .max - ReplicaID(i), signature: signature((0..<8).map { UInt64(i * 8 + $0) &* 0x9E37_79B9_7F4A_7C15 })) }
        // One vote with a nonzero third word or a nonzero s makes the whole buffer full-width.
        let mixed = [short[0], Vote(replica: 9, signature: signature([1, 2, 3, 0, 0, 0, 0, 0])), short[1]]
        let tail = [short[0], Vote(replica: 9, signature: signature([1, 2, 0, 0, 0, 0, 0, 4]))]
        for (votes, words) in [(short, 3), (full, 9), (mixed, 9), (tail, 9), ([], 3)] {
            let cert = Certificate(statement: statement, votes: votes)
            #expect(cert.wordsPerVote == words)
            #expect(Array(cert.voteList) == votes && cert.votes == votes && cert.statement == statement)
            #expect((0..<votes.count).map { cert.voteList.replica(at: $0) } == votes.map(\.replica))
            var w = ByteWriter(capacity: cert.encodedSize)
            cert.encode(into: &w)
            var expected = ByteWriter(capacity: cert.encodedSize)
            statement.encode(into: &expected)
            expected.append(UInt8(votes.count))
            for v in votes {
                expected.append(v.replica)
                expected.append(v.signature)
            }
            #expect(w.bytes == expected.bytes && w.bytes.count == cert.encodedSize)
            let decoded = try w.bytes.decode { (r: inout ByteReader) throws(DecodingError) in try Certificate.decode(from: &r) }
            #expect(decoded == cert && Array(decoded.voteList) == votes)
        }
        #expect(Certificate(statement: statement, votes: short) != Certificate(statement: statement, votes: Array(short.prefix(2))))
    }
}

/// A stored record is two words (its record and its proof), so a replica's store slot is 25
/// bytes with its prefix and control byte: a batched redeem's payment proof lives in a box.
@Suite struct StoredRecordLayoutTests {
    @Test func storedRecordsAreTwoWordsAndBatchProofsReadBack() {
        #expect(MemoryLayout<RedeemProof>.size == 8)
        #expect(MemoryLayout<CertifiedRedeem>.size == 16 && MemoryLayout<StoredRecord>.size == 16)
        #expect(SlotTable<StoredRecord>.slotBytes == 25)
        let owner = ModelledVerifier(key: Bytes32(word: 2)).keyPair(seed: Bytes32(word: 1))
        let body = PaymentBody(networkId: 1, payer: owner.publicKey, inputs: [], outputs: [], fee: 0, nonce: 1)
        let payment = Payment.signed(body, by: owner)
        let statement = VoteStatement(networkId: 1, epoch: 1, group: GroupID(raw: 0), type: .batch, key: payment.key, valueHash: payment.key)
        let certified = CertifiedPayment(payment: payment, proof: .certificate(Certificate(statement: statement, votes: [])))
        let redeem = Redeem.signed(networkId: 1, input: InputRef(parentKey: Digest(word: 3), index: 0), spender: payment.key, by: owner)
        let stored = StoredRecord.redeem(CertifiedRedeem(redeem: redeem, proof: .batch(certified)))
        guard case let .redeem(r) = stored, case let .batch(p) = r.proof else {
            Issue.record("a batched redeem's proof did not read back")
            return
        }
        #expect(p == certified && p.payment === payment && r.redeem === redeem && stored.key == redeem.key)
    }
}

@Suite struct CertificateCacheTests {
    /// A certificate whose signatures verified is not verified again in the same context, but is
    /// charged the same; its statement is still checked every time; edits, other verifiers and
    /// other contexts start afresh.
    @Test func verifiedSignaturesAreRememberedPerContextAndCharged() throws {
        let c = try Cluster(principals: 8)
        guard let p = try c.pay(0, [(1, 100)], variant: .batched).certified, case let .certificate(cert) = p.proof else {
            Issue.record("no certificate"); return
        }
        let counting = CountingVerifier(c.context.verifier)
        let context = try c.context(verifier: counting)
        let group = context.group(of: p.payment.payer)
        let meter = CryptoMeter(counting)
        func check(_ certificate: Certificate, key: Digest? = nil) throws(CertificateError) {
            try context.verify(certificate, types: [.payment, .batch], key: key ?? p.key, valueHash: p.key,
                               group: group, meter: meter)
        }
        try check(cert)
        #expect(counting.calls == 3 && meter.take().verifies == 3)
        try check(cert)
        #expect(counting.calls == 3 && meter.take().verifies == 3)
        #expect(throws: CertificateError.wrongKey(p.key)) { try check(cert, key: Digest(word: 5)) }
        var badSig = cert; badSig.votes[2].signature = .zero
        #expect(throws: CertificateError.badSignature(cert.votes[2].replica)) { try check(badSig) }
        #expect(throws: CertificateError.badSignature(cert.votes[2].replica)) { try check(badSig) }
        // A meter over another verifier, and another context, check the signatures themselves.
        let rejecting = CountingVerifier(RejectingVerifier())
        #expect(throws: CertificateError.badSignature(cert.votes[0].replica)) {
            try context.verify(cert, types: [.batch], key: p.key, valueHash: p.key, group: group, meter: CryptoMeter(rejecting))
        }
        let before = counting.calls
        let second = try c.context(verifier: counting)
        try second.verify(cert, types: [.batch], key: p.key, valueHash: p.key, group: group, meter: CryptoMeter(counting))
        #expect(counting.calls == before + 3)
    }
}

extension CertificateCacheTests {
    /// A writer's certificate, built from votes it verified one by one, counts as verified in its
    /// context (a later check calls no signature scheme, and is charged all the same); built
    /// under a meter over another verifier, it does not.
    @Test func assembledCertificatesCountAsVerifiedInTheirContext() throws {
        let c = try Cluster(principals: 2)
        let counting = CountingVerifier(c.context.verifier)
        let context = try c.context(verifier: counting)
        let group = context.group(of: c.principals[0].publicKey)
        let key = Digest(word: 9)
        let statement = VoteStatement(networkId: 1, epoch: 1, group: group.id, type: .payment, key: key, valueHash: key)
        let votes = group.members.prefix(3).map { Vote(replica: $0, signature: c.replicaSigners[Int($0)].sign(statement.signingMessage)) }
        let meter = CryptoMeter(counting)
        for vote in votes { try context.verify(vote, on: statement, group: group, meter: meter) }
        #expect(counting.calls == 3 && meter.take().verifies == 3)
        let assembled = context.certificate(of: statement, checkedVotes: votes, meter: meter)
        try context.verify(assembled, types: [.payment], key: key, valueHash: key, group: group, meter: meter)
        #expect(counting.calls == 3 && meter.take().verifies == 3)
        let elsewhere = context.certificate(of: statement, checkedVotes: votes, meter: CryptoMeter(RejectingVerifier()))
        try context.verify(elsewhere, types: [.payment], key: key, valueHash: key, group: group, meter: meter)
        #expect(counting.calls == 6 && meter.take().verifies == 3)
    }

    /// A payment certificate found valid against its payer's group is not checked against the
    /// group again for a payment with its key (charged all the same); one that passed a check
    /// against another group, or is asked about another key, is checked in full.
    @Test func paymentCertificatesCheckedForTheirPayerSkipTheGroupAfterward() throws {
        let c = try Cluster(principals: 8)
        guard let p = try c.pay(0, [(1, 100)], variant: .perRecord).certified, case let .certificate(cert) = p.proof else {
            Issue.record("no certificate"); return
        }
        let counting = CountingVerifier(c.context.verifier)
        let context = try c.context(verifier: counting)
        let meter = CryptoMeter(counting)
        for _ in 0..<3 {
            var fresh = Set<Digest>()
            try context.verify(p, meter: meter, verified: &fresh)
            #expect(counting.calls == 3 && meter.take().verifies == 3)
        }
        // The same certificate for a payment with another key: checked, and refused.
        let other = Payment.signed(PaymentBody(networkId: 1, payer: p.payment.payer, inputs: p.payment.inputs,
                                               outputs: p.payment.outputs, fee: 0, nonce: 99), by: c.principals[0])
        var none = Set<Digest>()
        #expect(throws: CertificateError.wrongKey(p.key)) {
            try context.verify(CertifiedPayment(payment: other, proof: .certificate(cert)), meter: meter, verified: &none)
        }
        // A certificate of the payment's key by another group, found valid for that group by a
        // caller that named it, is still refused for the payment, whatever the order.
        let payerGroup = context.group(of: p.payment.payer)
        guard let stranger = (0..<c.replicas.count / 4).map({ context.assignment.shard($0) }).first(where: { $0.id != payerGroup.id }) else {
            Issue.record("one group only"); return
        }
        let statement = VoteStatement(networkId: 1, epoch: 1, group: stranger.id, type: .payment, key: p.key, valueHash: p.key)
        let forged = Certificate(statement: statement, votes: stranger.members.prefix(3).map {
            Vote(replica: $0, signature: c.replicaSigners[Int($0)].sign(statement.signingMessage))
        })
        try context.verify(forged, types: [.payment], key: p.key, valueHash: p.key, group: stranger, meter: meter)
        for _ in 0..<2 {
            var fresh = Set<Digest>()
            #expect(throws: CertificateError.wrongGroup(stranger.id)) {
                try context.verify(CertifiedPayment(payment: p.payment, proof: .certificate(forged)), meter: meter, verified: &fresh)
            }
        }
    }

    /// A payment's or redeem's signature that checked valid is not verified again in the same
    /// context (every member of the group gets the same object), but is charged the same; its
    /// shape is still checked; a bad signature, another verifier and another context start afresh.
    @Test func verifiedRecordSignaturesAreRememberedPerContextAndCharged() throws {
        let c = try Cluster(principals: 2)
        let counting = CountingVerifier(c.context.verifier)
        let context = try c.context(verifier: counting)
        let owner = c.principals[0], meter = CryptoMeter(counting)
        let parent = Payment.signed(PaymentBody(networkId: 1, payer: owner.publicKey, inputs: [InputRef(parentKey: Digest(word: 1), index: 0)],
                                                outputs: [Output(amount: 5, owner: owner.publicKey)], fee: 0, nonce: 1), by: owner)
        let body = PaymentBody(networkId: 1, payer: owner.publicKey, inputs: [InputRef(parentKey: parent.key, index: 0)],
                               outputs: [Output(amount: 5, owner: c.principals[1].publicKey)], fee: 0, nonce: 2)
        let payment = Payment.signed(body, by: owner)
        let redeem = Redeem.signed(networkId: 1, input: InputRef(parentKey: parent.key, index: 0), spender: payment.key, by: owner)
        for _ in 0..<2 {
            try context.checkShape(payment, meter: meter)
            try context.checkRedeem(redeem, parent: parent, meter: meter)
            #expect(counting.calls == 2 && meter.take().verifies == 2)
        }
        // The shape and the parent are checked every time.
        #expect(throws: ValidationError.self) { try context.checkRedeem(redeem, parent: payment, meter: meter) }
        let forged = Payment(body: body, signature: .zero)
        let forgedRedeem = Redeem(networkId: 1, input: redeem.input, owner: owner.publicKey, spender: payment.key, signature: .zero)
        for _ in 0..<2 {
            #expect(throws: ValidationError.badPayerSignature) { try context.checkShape(forged, meter: meter) }
            #expect(throws: ValidationError.badRedeemSignature) { try context.checkRedeem(forgedRedeem, parent: parent, meter: meter) }
        }
        #expect(counting.calls == 6)
        let rejecting = CryptoMeter(RejectingVerifier())
        #expect(throws: ValidationError.badPayerSignature) { try context.checkShape(payment, meter: rejecting) }
        #expect(throws: ValidationError.badRedeemSignature) { try context.checkRedeem(redeem, parent: parent, meter: rejecting) }
        let second = try c.context(verifier: counting)
        try second.checkShape(payment, meter: meter)
        try second.checkRedeem(redeem, parent: parent, meter: meter)
        #expect(counting.calls == 8)
    }
}

@Suite struct SigningMessageTests {
    /// The fixed-size writers build exactly what `ByteWriter` builds (the signed bytes of the
    /// README's "Design notes").
    @Test func fixedWritersMatchByteWriter() {
        let key = Digest(word: 0x1122_3344_5566_7788), other = Digest(word: 0x99aa_bbcc_ddee_ff00)
        for type in RecordType.allCases {
            let s = VoteStatement(networkId: 0xdead_beef, epoch: 7, group: GroupID(raw: 0x0102_0304_0506_0708),
                                  type: type, key: key, valueHash: other)
            var w = ByteWriter(tag: .vote, capacity: VoteStatement.encodedSize)
            s.encode(into: &w)
            #expect(s.signingMessage == w.bytes && w.bytes.count == 1 + 7 + 81)
        }
        var p = ByteWriter(tag: .paymentSignature)
        p.append(UInt32(42)); p.append(key)
        #expect(Payment.signingMessage(networkId: 42, key: key) == p.bytes)
        var r = ByteWriter(tag: .redeemSignature)
        r.append(UInt32(42)); r.append(key); r.append(other)
        #expect(Redeem.signingMessage(networkId: 42, key: key, spender: other) == r.bytes)
    }
}

final class CountingVerifier: SignatureVerifier {
    let inner: SignatureVerifier
    var calls = 0
    init(_ inner: SignatureVerifier) { self.inner = inner }
    func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool {
        calls += 1
        return inner.isValid(signature, of: message, by: key)
    }
}

final class RejectingVerifier: SignatureVerifier {
    func isValid(_ signature: Signature, of message: [UInt8], by key: PublicKey) -> Bool { false }
}

@Suite struct ReadTests {
    @Test func readFindsCommittedAndConcludesNotFound() throws {
        let c = try Cluster(principals: 4)
        guard let p = try c.pay(0, [(1, 10)], variant: .perRecord).certified else { Issue.record("no payment"); return }
        let node = c.reader(1, mode: .certificate)
        #expect(c.read(.payment, p.key, at: c.group(0), by: node) == .some(.payment(p)))
        #expect(c.read(.payment, Digest(word: 12345), at: c.group(0), by: node) == .some(nil))
    }

    /// A writer that vanished after collecting votes: W votes answer the read, assembled into a
    /// certificate, and the reader writes it back until W replicas hold it.
    @Test func readAssemblesVotesAndWritesBack() throws {
        let c = try Cluster(principals: 4)
        let g = c.context.genesis.payments[0]
        let group = c.group(0)
        let redeem = Redeem.signed(networkId: 1, input: InputRef(parentKey: g.key, index: 0), spender: Digest(word: 8), by: c.principals[0])
        for m in group.members {
            var out = Outbox()
            c.replicas[Int(m)].receive(.prepareRedeem(redeem, parent: CertifiedPayment(payment: g, proof: .genesis)),
                                       from: NodeID(raw: 999), now: 0, into: &out)
        }
        #expect(group.members.allSatisfy { c.replicas[Int($0)].record(redeem.key) == nil })
        let node = c.reader(2, mode: .certificate)
        guard case let .redeem(found)?? = c.read(.redeem, redeem.key, at: group, by: node) else { Issue.record("not assembled"); return }
        #expect(found.redeem == redeem)
        let holders = group.members.filter { c.replicas[Int($0)].record(redeem.key) != nil }
        #expect(holders.count >= c.context.quorum.writeQuorum)
    }

    /// f lying replicas (forged value, certificate for another key, stale "not found") cannot
    /// make a read miss a committed value or accept a forged one.
    @Test func lyingReplicaCannotMisleadReads() throws {
        let c = try Cluster(principals: 4)
        guard let p = try c.pay(0, [(1, 10)], variant: .batched).certified,
              let other = try c.pay(0, [(2, 10)], variant: .batched).certified else { Issue.record("no payments"); return }
        let group = c.group(0)
        let liar = group.members[0]
        for lie in 0..<3 {
            c.byzantine[liar] = { message, from in
                guard case let .read(_, _, request) = message else { return [] }
                switch lie {
                case 0: return [(from, .readReply(request: request, .certified(.payment(other))))]
                case 1: return [(from, .readReply(request: request, .vote(.payment(other.payment), c.context.statement(.payment, key: p.key, valueHash: p.key, group: group.id), Vote(replica: liar, signature: .zero))))]
                default: return [(from, .readReply(request: request, .notFound))]
                }
            }
            let node = c.reader(3, mode: .certificate)
            #expect(c.read(.payment, p.key, at: group, by: node) == .some(.payment(p)), "lie \(lie)")
            #expect(c.read(.payment, Digest(word: 4), at: group, by: node) == .some(nil), "lie \(lie)")
        }
    }

    @Test func closureValidationRefusesAForgedHistory() throws {
        let c = try Cluster(principals: 8)
        let chain = distinctGroupPrincipals(c, count: 3)
        guard let p1 = try c.pay(chain[0], [(chain[1], 500)], variant: .perRecord).certified,
              let p2 = try c.pay(chain[1], [(chain[2], 500)], variant: .perRecord).certified else { Issue.record("no chain"); return }
        // Remove P1 from every replica: the closure cannot be read, so P2 is refused there,
        // while certificate mode (which trusts P2's voters) accepts it with P1 attached.
        for i in c.replicas.indices {
            var durable = c.replicas[i].durable
            durable.store.remove(p1.key)
            c.replicas[i] = Replica(id: c.replicas[i].id, signer: c.replicaSigners[i], context: c.context, restoring: durable)
        }
        let auditor = c.reader(chain[2], mode: .closure)
        guard case let .failure(error)? = c.validate(p2, parents: [], by: auditor) else { Issue.record("closure accepted"); return }
        #expect(error == .missing(.payment, p1.key))
        let payee = c.reader(chain[2], mode: .certificate)
        #expect(try c.validate(p2, parents: [p1], by: payee)?.get() == p2)
    }
}

@Suite struct MessageCodecTests {
    /// Every message kind seen in real runs round-trips through the canonical encoding, and the
    /// computed size matches the bytes.
    @Test func everyMessageRoundTrips() throws {
        let c = try Cluster(principals: 4, repair: 1_000)
        c.silent = [c.group(0).members[3]]
        try c.pay(0, [(1, 10)], variant: .perRecord)
        try c.pay(0, [(2, 10)], variant: .batched)
        c.silent = []
        c.settle(rounds: 10)  // repair brings the silent replica up to date
        let node = c.reader(3, mode: .certificate)
        _ = c.read(.payment, Digest(word: 1), at: c.group(0), by: node)
        let kinds = Set(c.log.map(\.kind))
        #expect(kinds.isSuperset(of: ["prepareRedeem", "preparePayment", "prepareBatch", "vote", "commit", "ack", "read",
                                      "readReply", "repairOffer", "repairRequest", "gossip"]))
        #expect(c.replicas[Int(c.group(0).members[3])].durable.store.count >= 4)
        for message in c.log {
            let bytes = message.encoded
            #expect(bytes.count == message.encodedSize, "\(message.kind)")
            #expect(try Message.decode(bytes) == message, "\(message.kind)")
        }
        let reject = Message.reject(.batch, key: Digest(word: 1), reason: .conflict)
        #expect(try Message.decode(reject.encoded) == reject)
    }

    /// Seeded random and mutated bytes go through the whole replica (decode, then handle):
    /// never a trap, each malformed input counted.
    @Test func mutatedBytesNeverTrapAReplica() throws {
        let c = try Cluster(principals: 4)
        try c.pay(0, [(1, 10)], variant: .perRecord)
        try c.pay(1, [(2, 5)], variant: .batched)
        let samples = c.log.map(\.encoded)
        var rng = DeterministicRandom(seed: 99, stream: "message-fuzz")
        var decoded = 0
        let target = Int(c.group(0).members[0])
        for round in 0..<5000 {
            var bytes = samples[rng.uniform(below: samples.count)]
            if round % 10 == 0 {
                bytes = (0..<rng.uniform(below: 400)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                for _ in 0...rng.uniform(below: 3) {
                    switch rng.uniform(below: 3) {
                    case 0: bytes[rng.uniform(below: bytes.count)] ^= UInt8(1 << rng.uniform(below: 8))
                    case 1: bytes.removeSubrange(max(2, rng.uniform(below: bytes.count))...)
                    default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: rng.uniform(below: bytes.count + 1))
                    }
                    if bytes.isEmpty { bytes = [1] }
                }
            }
            var out = Outbox()
            if c.replicas[target].receive(bytes: bytes, from: NodeID(raw: 999), now: 0, into: &out) == nil { decoded += 1 }
        }
        #expect(decoded > 50 && c.replicas[target].malformed == 5000 - decoded)
        #expect(throws: DecodingError.self) { try Message.decode([UInt8](repeating: 1, count: (1 << 20) + 1)) }
    }
}

@Suite struct RecordStoreTests {
    /// With the prefix narrowed to 2 bits, most keys collide with a held record's prefix: every
    /// record must still be found under its own key only, replaced and removed, whichever table
    /// holds it.
    @Test func collidingPrefixesNeverAnswerWrong() throws {
        let c = try Cluster(principals: 8)
        for i in 0..<6 { _ = try c.pay(i, [((i + 1) % 8, 10)], variant: .perRecord) }
        var all = [Digest: StoredRecord]()
        for r in c.replicas { for record in r.durable.store.records { all[record.key] = record } }
        let records = all.keys.sorted().compactMap { all[$0] }
        #expect(records.count >= 12)
        var store = RecordStore(prefixMask: 0x3)
        for (i, record) in records.enumerated() {
            store.insert(record)
            #expect(store.count == i + 1)
        }
        for record in records { #expect(store[record.key] == record) }
        #expect(store[Digest(word: 77)] == nil)
        #expect(Set(store.keys) == Set(all.keys))
        // Remove every other record (from either table); the rest stay findable.
        for (i, record) in records.enumerated() where i % 2 == 0 { store.remove(record.key) }
        for (i, record) in records.enumerated() { #expect((store[record.key] != nil) == (i % 2 == 1)) }
        // Re-insert: a key whose prefix slot is now free but that lives in the colliding table
        // must not end up in both.
        for record in records { store.insert(record) }
        #expect(store.count == records.count)
        for record in records { #expect(store[record.key] == record) }
    }
}

@Suite struct SlotTableTests {
    /// A `DigestMap` against a `Dictionary` under random insertions, replacements, in-place
    /// updates (inserting, or only where held and then perhaps removing), removals and lookups
    /// (copied out, or lent in place), its prefix narrowed to 2 bits so that most keys share their
    /// prefix with another (the collision table in use, and keys moving between the two as holders
    /// are removed); then its filtered copy and search.
    @Test(arguments: [UInt64.max, 0xC000_0000_0000_0000]) func digestMapMatchesADictionary(prefixMask: UInt64) {
        var map = DigestMap<Int>(prefixMask: prefixMask)
        var model = [Digest: Int]()
        var random = DeterministicRandom(seed: 11, stream: "digest-map")
        let keys = (0..<200).map { Digest(word: UInt64($0) &* 0x9E37_79B9_7F4A_7C15) }
        for step in 0..<10_000 {
            let key = keys[random.uniform(below: keys.count)]
            switch random.uniform(below: 7 as Int) {
            case 0:
                map[key] = step
                model[key] = step
            case 1:
                map[key] = nil
                model[key] = nil
            case 2:
                let old = map.update(key, default: -step) { value -> Int in
                    defer { value += 1 }
                    return value
                }
                #expect(old == model[key, default: -step])
                model[key, default: -step] += 1
            case 3:
                #expect(map.removeValue(forKey: key) == model.removeValue(forKey: key))
            case 4:
                // Kept if the changed value is even, else removed.
                let held = map.modify(key) { value in
                    value += 3
                    return value % 2 == 0
                }
                #expect(held == (model[key] != nil))
                if let value = model[key] { model[key] = (value + 3) % 2 == 0 ? value + 3 : nil }
            case 5:
                #expect(map.withValue(key) { $0.pointee * 2 } == model[key].map { $0 * 2 })
            default:
                #expect(map[key] == model[key])
            }
            #expect(map.count == model.count)
        }
        for key in keys { #expect(map[key] == model[key]) }
        let even = map.compactMapValues { $0 % 2 == 0 ? $0 / 2 : nil }
        for key in keys { #expect(even[key] == model[key].flatMap { $0 % 2 == 0 ? $0 / 2 : nil }) }
        #expect(map.contains { $0 % 2 == 0 } == model.values.contains { $0 % 2 == 0 })
        #expect(!map.contains { _ in false })
        var seen = [Digest: Int]()
        map.forEach { key, value in
            #expect(seen[key] == nil)
            seen[key] = value
        }
        #expect(seen == model)
    }

    /// A host's hints read a replica's meter and its signer's key box by offset: the meter's
    /// reference, and a box (the key pair wider than an existential's inline words) holding the
    /// key pair, its public key first, after the box's 16-byte header. Both key pair kinds.
    @Test func replicaOffsetsFindTheMeterAndTheSignersBox() throws {
        let cluster = try Cluster()
        let meterAt = try #require(Replica.meterOffset), signerAt = try #require(Replica.signerBoxOffset)
        let modelled = ModelledKeyPair(seed: Bytes32(word: 5), scheme: ModelledVerifier(key: Bytes32(word: 6)))
        let signers: [any Signer] = [cluster.replicaSigners[0], modelled]
        for signer in signers {
            var replica = Replica(id: 0, signer: signer, context: cluster.context)
            let meter = UnsafeRawPointer(Unmanaged.passUnretained(replica.meter).toOpaque())
            withUnsafeBytes(of: &replica) { raw in
                #expect(raw.load(fromByteOffset: meterAt, as: UnsafeRawPointer.self) == meter)
                let box = raw.load(fromByteOffset: signerAt, as: UnsafeRawPointer.self)
                #expect(box.loadUnaligned(fromByteOffset: 16, as: Bytes32.self) == signer.publicKey.raw)
            }
        }
    }

    /// Dropping a table releases what its entries hold (a table of plain values skips that walk).
    @Test func droppingATableReleasesItsEntries() {
        final class Tracked {}
        weak var watched: Tracked?
        do {
            var table = SlotTable<Tracked>()
            for key in 0..<20 as Range<UInt64> { table.set(key, Tracked()) }
            let object = Tracked()
            watched = object
            table.set(99, object)
            #expect(table.count == 21)
        }
        #expect(watched == nil)
    }

    /// A lookup hint names the table's storage object (whose header a change reads first): the
    /// same one in a copy until either changes, then each its own; the new one when it grows.
    @Test func lookupHintNamesTheStorage() throws {
        func owner(_ table: SlotTable<Int>) throws -> UnsafeRawPointer {
            try #require(table.lookupAddresses(1)).owner
        }
        func storage(_ table: SlotTable<Int>) throws -> UnsafeRawPointer {
            UnsafeRawPointer(Unmanaged.passUnretained(try #require(table.storageObject)).toOpaque())
        }
        var table = SlotTable<Int>()
        #expect(table.lookupAddresses(1) == nil)
        table.set(1, 10)
        #expect(try owner(table) == storage(table))
        var copy = table
        #expect(try owner(copy) == owner(table))
        copy.set(2, 20)
        let (copied, original) = (try owner(copy), try owner(table))
        #expect(try copied == storage(copy) && copied != original)
        #expect(try original == storage(table))
        for key in 3..<100 { table.set(UInt64(key), key) }
        let grown = try owner(table)
        #expect(try table.capacity > 8 && grown == storage(table))
    }

    /// Against a `Dictionary` under random insertions, replacements and removals of keys drawn
    /// from a small range (long probe runs, removals inside them, key 0), through growth; a copy
    /// taken midway keeps its contents while the original changes.
    @Test(arguments: [0, 40]) func matchesADictionary(reserved: Int) {
        var table = SlotTable<Int>()
        table.reserveCapacity(reserved)
        var model = [UInt64: Int]()
        var random = DeterministicRandom(seed: 9, stream: "slot-table")
        var snapshot: (table: SlotTable<Int>, model: [UInt64: Int])?
        for step in 0..<20_000 {
            // Keys 0…299 mixed onto few slots, and some large ones.
            let small = UInt64(random.uniform(below: 300 as Int))
            let key = random.uniform(below: 8 as Int) == 0 ? small &* 0x9E37_79B9_7F4A_7C15 : small
            switch random.uniform(below: 3 as Int) {
            case 0:
                table.set(key, step)
                model[key] = step
            case 1:
                #expect(table.remove(key) == model.removeValue(forKey: key))
            default:
                #expect(table[key] == model[key])
            }
            #expect(table.count == model.count)
            if step == 10_000 { snapshot = (table, model) }
        }
        for key in model.keys { #expect(table[key] == model[key]) }
        var seen = [Int]()
        table.forEach { seen.append(copy $0) }
        #expect(seen.sorted() == model.values.sorted())
        #expect(table.capacity >= table.count * 4 / 3)
        if let (copy, old) = snapshot {
            #expect(copy.count == old.count)
            for (key, value) in old { #expect(copy[key] == value) }
        }
    }
}
