import QuorumCrypto
import QuorumLedger
import QuorumStore

/// Byzantine principals (PROTOCOL §6). An attacker is a principal of the run whose payments are
/// sometimes replaced by an attack; everything it sends goes through the same network and is
/// handled by the same honest replicas. Attack payments are recorded apart from honest ones.
extension Simulator {
    /// Mounts `attack` for principal `p`; false when it cannot (no coin, no history): the caller
    /// then issues an honest payment.
    func mountAttack(_ p: Int, _ attack: Attack, requested: UInt64) -> Bool {
        let me = principals[p].wallet.signer
        let group = context.group(of: me.publicKey)
        let networkId = context.networkId
        guard let coin = principals[p].wallet.coins.first else { return false }
        let coinParent = CertifiedPayment(payment: coin.parent, proof: coin.proof)
        let nonce = attackRandom.next()
        func body(_ inputs: [InputRef], _ outputs: [Output], fee: UInt64 = 0) -> PaymentBody {
            PaymentBody(networkId: networkId, payer: me.publicKey, inputs: inputs, outputs: outputs, fee: fee, nonce: nonce)
        }
        func launchSigned(_ b: PaymentBody, parents: [CertifiedPayment], redeemSigner: any Signer) {
            let payment = Payment.signed(b, by: me)
            let redeems = b.inputs.map { Redeem.signed(networkId: networkId, input: $0, spender: payment.key, by: redeemSigner) }
            launch(p, payment: payment, redeems: redeems, parents: parents, requested: requested, attack: attack)
        }
        switch attack {
        case .doubleSpend:
            // Two payments on the same oldest coin.
            var twin = principals[p].wallet
            let first = choosePayees(for: p), second = choosePayees(for: p)
            guard let e1 = try? principals[p].wallet.pay(first), let e2 = try? twin.pay(second),
                  e1.payment.key != e2.payment.key else { return false }
            launch(p, e1, requested: requested, attack: .doubleSpend)
            principals[p].pendingSpends.append(e2)
            // Half the time both race at once (the replicas split), else the second comes up to 2 s later.
            let delay = attackRandom.chance(0.5) ? 0 : attackRandom.uniform(below: 2 * Time.second)
            queue.push(.secondSpend(principal: Int32(p)), at: now &+ delay)
        case .reuseRedeem:
            // A second payment citing the certified redeems of the payer's last payment.
            guard let (last, parents) = principals[p].lastCommitted, case .certificate = last.proof else { return false }
            var certified = [CertifiedRedeem]()
            for input in last.payment.inputs {
                let found = group.members.lazy.compactMap { m -> CertifiedRedeem? in
                    if case let .redeem(r)? = self.replicas[Int(m)].record(input.redeemKey) { return r }
                    return nil
                }.first
                guard let found else { return false }
                certified.append(found)
            }
            let total = Amounts.checkedSum(last.payment.inputs.compactMap { input in
                parents.first { $0.key == input.parentKey }.map { $0.payment.outputs[Int(input.index)].amount }
            }) ?? 0
            guard total > 0 else { return false }
            let payment = Payment.signed(body(last.payment.inputs, [Output(amount: total, owner: me.publicKey)]), by: me)
            launch(p, payment: payment, redeems: [], parents: parents, requested: requested, attack: attack, certifiedRedeems: certified)
        case .wrongGroup:
            guard let other = (0..<replicaCount).first(where: { !group.contains(ReplicaID($0)) }) else { return false }
            let target = context.assignment.mode == .partitioned
                ? context.assignment.shard(other / context.quorum.n).members : [ReplicaID(other)]
            let redeem = Redeem.signed(networkId: networkId, input: coin.input, spender: Digest(word: nonce), by: me)
            out.removeAll()
            out.send(.prepareRedeem(redeem, parent: coinParent), to: target)
            emit(from: node(ofPrincipal: p), cost: costs.signCost)
        case .theft:
            let victim = (p + 1 + attackRandom.uniform(below: max(1, principals.count - 1))) % principals.count
            let loot = context.genesis.payments[victim]
            let input = InputRef(parentKey: loot.key, index: 0)
            launchSigned(body([input], [Output(amount: loot.outputs[0].amount, owner: me.publicKey)]),
                         parents: [CertifiedPayment(payment: loot, proof: .genesis)], redeemSigner: me)
        case .overspend:
            launchSigned(body([coin.input], [Output(amount: coin.amount &+ 1, owner: principalKeys[(p + 1) % principalKeys.count])]),
                         parents: [coinParent], redeemSigner: me)
        case .overflow:
            let huge = Output(amount: Ledger.maxSupply, owner: me.publicKey)
            launchSigned(body([coin.input], [huge, huge]), parents: [coinParent], redeemSigner: me)
        case .mint:
            launchSigned(body([], [Output(amount: 1_000_000, owner: me.publicKey)]), parents: [], redeemSigner: me)
        case .forgedCertificate:
            forgeCertificate(p, group: group, body: body([], [Output(amount: 1_000_000, owner: me.publicKey)]))
        case .malformed:
            sendMalformed(p, group: group, coin: coin, parent: coinParent)
        case .replay:
            guard let last = principals[p].lastSent else { return false }
            out.removeAll()
            for _ in 0..<3 { out.send(last.message, to: last.to) }
            emit(from: node(ofPrincipal: p), cost: costs.messageCost)
        case .crash, .crashNoLog:
            // An honest payment, interrupted when its certificate forms (between writes).
            principals[p].crashAtCertificate = attack == .crash
            attacksMounted[Attack.allCases.firstIndex(of: attack) ?? 0] += 1
            return false
        }
        attacksMounted[Attack.allCases.firstIndex(of: attack) ?? 0] += 1
        return true
    }

    func startSecondSpend(_ p: Int) {
        guard !principals[p].pendingSpends.isEmpty, principals[p].downUntil <= now else { return }
        let entry = principals[p].pendingSpends.removeFirst()
        launch(p, entry, requested: now, attack: .doubleSpend)
    }

    /// A minted payment committed with a certificate that is wrong in one of PROTOCOL §6's ways.
    private func forgeCertificate(_ p: Int, group: Group, body: PaymentBody) {
        let payment = Payment.signed(body, by: principals[p].wallet.signer)
        let statement = context.statement(.payment, key: payment.key, valueHash: payment.key, group: group.id)
        let quorum = context.quorum.writeQuorum
        var votes = group.members.prefix(quorum).map { Vote(replica: $0, signature: .zero) }
        var s = statement
        switch attackRandom.uniform(below: 6) {
        case 0: votes.removeLast()  // too few votes
        case 1: votes = Array(repeating: votes[0], count: quorum)  // duplicate signer
        case 2: votes[0].replica = ReplicaID((0..<replicaCount).first { !group.contains(ReplicaID($0)) } ?? 0)  // non-member
        case 3: s.key = Digest(word: attackRandom.next())  // wrong key
        case 4: s.epoch &+= 1  // wrong epoch
        default: s.networkId &+= 1  // wrong network
        }
        // A genuine certificate of another payment, re-labelled, when the attacker has one.
        if let (last, _) = principals[p].lastCommitted, case let .certificate(real) = last.proof, attackRandom.chance(0.5) {
            votes = real.votes
        }
        let forged = CertifiedPayment(payment: payment, proof: .certificate(Certificate(statement: s, votes: votes)))
        out.removeAll()
        out.send(.commit([.payment(forged)]), to: group.members)
        emit(from: node(ofPrincipal: p), cost: costs.signCost)
    }

    /// Random and mutated encodings, straight to the group's replicas as bytes.
    private func sendMalformed(_ p: Int, group: Group, coin: Wallet<PaymentProof>.Coin, parent: CertifiedPayment) {
        let redeem = Redeem.signed(networkId: context.networkId, input: coin.input, spender: Digest(word: attackRandom.next()),
                                   by: principals[p].wallet.signer)
        var bytes = Message.prepareRedeem(redeem, parent: parent).encoded
        switch attackRandom.uniform(below: 4) {
        case 0:
            bytes = (0..<attackRandom.uniform(below: 512)).map { _ in UInt8(truncatingIfNeeded: attackRandom.next()) }
        case 1:
            bytes.removeSubrange(attackRandom.uniform(below: bytes.count)...)
        case 2:
            for _ in 0..<4 { bytes[attackRandom.uniform(below: bytes.count)] ^= UInt8(truncatingIfNeeded: attackRandom.next() | 1) }
        default:
            bytes += [UInt8](repeating: 0xff, count: 1 + attackRandom.uniform(below: 64))  // oversized / trailing
        }
        let from = node(ofPrincipal: p)
        let base = max(now, cpu[Int(from.raw)].busyUntil)
        for m in group.members {
            guard let (at, _) = network.deliveries(from: from, to: NodeID(replica: m), size: bytes.count, at: base) else { continue }
            queue.push(.deliverBytes(from: from, to: NodeID(replica: m), bytes: bytes), at: at)
        }
    }
}
