import Testing
import QuorumCrypto
@testable import QuorumLedger

let network: UInt32 = 7
let alice = Ed25519KeyPair(seed: KeySeed.derive(seed: 1, label: "principal", index: 0))
let bob = Ed25519KeyPair(seed: KeySeed.derive(seed: 1, label: "principal", index: 1))
var verifier: Ed25519Verifier { Ed25519Verifier() }
let rules = LedgerRules(networkId: network)

func genesis(_ owner: Ed25519KeyPair, _ amount: UInt64, nonce: UInt64 = 0) -> Payment {
    Genesis.endowment(networkId: network, owner: owner, amount: amount, nonce: nonce)
}

func payment(by payer: Ed25519KeyPair, inputs: [InputRef], outputs: [Output], fee: UInt64 = 0, nonce: UInt64 = 1) -> Payment {
    Payment.signed(PaymentBody(networkId: network, payer: payer.publicKey, inputs: inputs, outputs: outputs, fee: fee, nonce: nonce), by: payer)
}

@Suite struct EncodingTests {
    @Test func paymentRoundTripsAndKeyIsHashOfBody() throws {
        let g = genesis(alice, 100)
        let p = payment(by: alice, inputs: [InputRef(parentKey: g.key, index: 0)],
                        outputs: [Output(amount: 60, owner: bob.publicKey), Output(amount: 39, owner: alice.publicKey)], fee: 1)
        let bytes = p.encoded
        #expect(bytes.count == p.encodedSize)
        let decoded = try Payment.decode(bytes)
        #expect(decoded == p && decoded.body == p.body && decoded.key == p.key)
        // K = H("qc/pay", body): the body is everything but the trailing 64-byte signature.
        #expect(p.key == Blake2b.hash(.payment, Array(bytes.dropLast(64))))
    }

    @Test func redeemRoundTripsAndKeyIsDerivedFromItsInput() throws {
        let input = InputRef(parentKey: Digest(word: 9), index: 3)
        let r = Redeem.signed(networkId: network, input: input, spender: Digest(word: 10), by: alice)
        #expect(try Redeem.decode(r.encoded) == r)
        #expect(r.encoded.count == Redeem.encodedSize)
        // k = H("qc/rdm", parentKey ‖ index)
        #expect(r.key == Blake2b.hash(.redeem, Digest(word: 9).bytes + [0, 0, 0, 3]))
        #expect(r.valueHash == Redeem.valueHash(spender: Digest(word: 10)))
    }

    @Test func strictDecoding() throws {
        let p = payment(by: alice, inputs: [InputRef(parentKey: .zero, index: 0)], outputs: [Output(amount: 1, owner: bob.publicKey)])
        let bytes = p.encoded
        #expect(throws: DecodingError.trailingBytes(1)) { try Payment.decode(bytes + [0]) }
        #expect(throws: DecodingError.truncated(field: "payment.signature", needed: 1)) { try Payment.decode(Array(bytes.dropLast())) }
        var version = bytes
        version[0] = 2
        #expect(throws: DecodingError.unknownVersion(2)) { try Payment.decode(version) }
        // Input count field sits after version (1), network (4) and payer (32).
        var many = bytes
        many[37] = 0
        many[38] = 17
        #expect(throws: DecodingError.tooMany(field: "payment.inputs", count: 17, limit: 16)) { try Payment.decode(many) }
        many[37] = 0xff
        many[38] = 0xff
        #expect(throws: DecodingError.tooMany(field: "payment.inputs", count: 65535, limit: 16)) { try Payment.decode(many) }
        #expect(throws: DecodingError.truncated(field: "redeem.version", needed: 1)) { try Redeem.decode([]) }
    }

    /// Thousands of seeded random and mutated byte strings: decoding returns a value or a typed
    /// error, never traps, and whatever decodes re-encodes to the same bytes.
    @Test func fuzzedDecodingNeverTraps() {
        var rng = DeterministicRandom(seed: 2026, stream: "ledger-fuzz")
        let g = genesis(alice, 100)
        let seeds: [[UInt8]] = [
            payment(by: alice, inputs: [InputRef(parentKey: g.key, index: 0), InputRef(parentKey: g.key, index: 1)],
                    outputs: [Output(amount: 1, owner: bob.publicKey)]).encoded,
            Redeem.signed(networkId: network, input: InputRef(parentKey: g.key, index: 0), spender: g.key, by: alice).encoded,
        ]
        var decoded = 0
        for round in 0..<6000 {
            var bytes: [UInt8]
            if round % 3 == 0 {
                bytes = (0..<rng.uniform(below: 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                bytes = seeds[round % 2]
                for _ in 0...rng.uniform(below: 4) {
                    switch rng.uniform(below: 4) {
                    case 0 where !bytes.isEmpty: bytes[rng.uniform(below: bytes.count)] ^= UInt8(1 << rng.uniform(below: 8))
                    case 1 where !bytes.isEmpty: bytes.removeSubrange(rng.uniform(below: bytes.count)...)
                    case 2: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: rng.uniform(below: bytes.count + 1))
                    default: if !bytes.isEmpty { bytes[rng.uniform(below: bytes.count)] = 0xff }
                    }
                }
            }
            if let p = try? Payment.decode(bytes) { decoded += 1; #expect(p.encoded == bytes) }
            if let r = try? Redeem.decode(bytes) { decoded += 1; #expect(r.encoded == bytes) }
        }
        #expect(decoded > 100)  // the mutations do reach the decoders' success path too
    }
}

@Suite struct ValidationTests {
    let g = genesis(alice, 100)
    var coin: InputRef { InputRef(parentKey: g.key, index: 0) }
    func parents(_ key: Digest) -> Payment? { key == g.key ? g : nil }

    func check(_ p: Payment) throws(ValidationError) {
        try rules.checkShape(p, verifier: verifier)
        try rules.checkBalance(p, parent: parents)
    }

    @Test func validPaymentPasses() throws {
        try check(payment(by: alice, inputs: [coin], outputs: [Output(amount: 90, owner: bob.publicKey)], fee: 10))
    }

    @Test func eachRuleHasItsError() {
        let bobOut = [Output(amount: 100, owner: bob.publicKey)]
        #expect(throws: ValidationError.mintOutsideGenesis) { try check(payment(by: alice, inputs: [], outputs: bobOut)) }
        #expect(throws: ValidationError.duplicateInput(coin)) { try check(payment(by: alice, inputs: [coin, coin], outputs: bobOut)) }
        #expect(throws: ValidationError.noOutputs) { try check(payment(by: alice, inputs: [coin], outputs: [], fee: 100)) }
        #expect(throws: ValidationError.amountOutOfRange(what: "output 0", amount: 0)) {
            try check(payment(by: alice, inputs: [coin], outputs: [Output(amount: 0, owner: bob.publicKey)], fee: 100))
        }
        // Overspend: outputs + fee > inputs.
        #expect(throws: ValidationError.unbalanced(inputs: 100, outputs: 100, fee: 1)) {
            try check(payment(by: alice, inputs: [coin], outputs: bobOut, fee: 1))
        }
        // Overflowing amounts: 2^63 + 2^63 would wrap a UInt64.
        let huge = Output(amount: Ledger.maxSupply, owner: bob.publicKey)
        #expect(throws: ValidationError.sumOverflow(what: "outputs")) { try check(payment(by: alice, inputs: [coin], outputs: [huge, huge])) }
        #expect(throws: ValidationError.amountOutOfRange(what: "output 0", amount: UInt64.max)) {
            try check(payment(by: alice, inputs: [coin], outputs: [Output(amount: .max, owner: bob.publicKey)]))
        }
        #expect(throws: ValidationError.amountOutOfRange(what: "fee", amount: UInt64.max)) {
            try check(payment(by: alice, inputs: [coin], outputs: bobOut, fee: .max))
        }
        #expect(throws: ValidationError.sumOverflow(what: "outputs + fee")) {
            try check(payment(by: alice, inputs: [coin], outputs: [huge], fee: Ledger.maxSupply))
        }
        // Theft: Bob spends Alice's output.
        #expect(throws: ValidationError.notOwner(coin)) { try check(payment(by: bob, inputs: [coin], outputs: bobOut)) }
        let missing = InputRef(parentKey: Digest(word: 1), index: 0)
        #expect(throws: ValidationError.missingParent(missing)) { try check(payment(by: alice, inputs: [missing], outputs: bobOut)) }
        let beyond = InputRef(parentKey: g.key, index: 1)
        #expect(throws: ValidationError.outputIndexOutOfRange(beyond, outputs: 1)) { try check(payment(by: alice, inputs: [beyond], outputs: bobOut)) }
        let forged = Payment(body: payment(by: alice, inputs: [coin], outputs: bobOut).body, signature: bob.sign([1]))
        #expect(throws: ValidationError.badPayerSignature) { try check(forged) }
        let foreign = Payment.signed(PaymentBody(networkId: 8, payer: alice.publicKey, inputs: [coin], outputs: bobOut, fee: 0, nonce: 1), by: alice)
        #expect(throws: ValidationError.wrongNetwork(expected: 7, actual: 8)) { try check(foreign) }
        let tooMany = (0..<17).map { _ in Output(amount: 1, owner: bob.publicKey) }
        #expect(throws: ValidationError.tooManyOutputs(count: 17, limit: 16)) { try check(payment(by: alice, inputs: [coin], outputs: tooMany, fee: 83)) }
    }

    @Test func redeemRules() {
        let spender = Digest(word: 3)
        let good = Redeem.signed(networkId: network, input: coin, spender: spender, by: alice)
        #expect((try? rules.checkRedeem(good, parent: g, verifier: verifier)) != nil)
        let stolen = Redeem.signed(networkId: network, input: coin, spender: spender, by: bob)
        #expect(throws: ValidationError.notOwner(coin)) { try rules.checkRedeem(stolen, parent: g, verifier: verifier) }
        let resigned = Redeem(networkId: network, input: coin, owner: alice.publicKey, spender: Digest(word: 4), signature: good.signature)
        #expect(throws: ValidationError.badRedeemSignature) { try rules.checkRedeem(resigned, parent: g, verifier: verifier) }
    }

    @Test func genesisRules() throws {
        let a = genesis(alice, 5)
        #expect(try Genesis(payments: [a, genesis(bob, 7)]).supply == 12)
        #expect(throws: ValidationError.invalidGenesis("payment \(a.key) listed twice")) { try Genesis(payments: [a, a]) }
        let over = [genesis(alice, Ledger.maxSupply), genesis(bob, 1)]
        #expect(throws: ValidationError.sumOverflow(what: "genesis supply")) { try Genesis(payments: over) }
        let withInput = payment(by: alice, inputs: [coin], outputs: [Output(amount: 1, owner: alice.publicKey)])
        #expect(throws: ValidationError.invalidGenesis("payment \(withInput.key) has inputs")) { try Genesis(payments: [withInput]) }
    }
}

@Suite struct WalletTests {
    @Test func paysOldestCoinsFirstWithChangeAndLogsBeforeRedeems() throws {
        var wallet = Wallet<Int>(signer: alice, networkId: network)
        let g1 = genesis(alice, 30, nonce: 1), g2 = genesis(alice, 50, nonce: 2)
        wallet.receive(g1, proof: 1)
        wallet.receive(g2, proof: 2)
        wallet.receive(g2, proof: 2)  // idempotent
        #expect(wallet.balance == 80)
        let entry = try wallet.pay([Output(amount: 40, owner: bob.publicKey)], fee: 2)
        #expect(entry.payment.inputs == [InputRef(parentKey: g1.key, index: 0), InputRef(parentKey: g2.key, index: 0)])
        #expect(entry.payment.outputs.last == Output(amount: 38, owner: alice.publicKey))
        #expect(entry.redeems.map(\.spender) == [entry.payment.key, entry.payment.key])
        #expect(wallet.inFlight.map(\.payment.key) == [entry.payment.key])
        #expect(wallet.balance == 0)
        #expect(throws: WalletError.insufficientFunds(available: 0, needed: 1)) { try wallet.pay([Output(amount: 1, owner: bob.publicKey)]) }
        // Every record the wallet builds passes the ledger rules.
        try rules.checkShape(entry.payment, verifier: verifier)
        try rules.checkBalance(entry.payment) { key in [g1, g2].first(where: { $0.key == key }) }
        wallet.settle(entry.payment.key, proof: 3)
        #expect(wallet.balance == 38 && wallet.inFlight.isEmpty)
    }

    @Test func restoringKeepsTheLogUnlessLost() throws {
        var wallet = Wallet<Int>(signer: alice, networkId: network)
        wallet.receive(genesis(alice, 10), proof: 0)
        let entry = try wallet.pay([Output(amount: 10, owner: bob.publicKey)])
        let kept = Wallet<Int>(signer: alice, networkId: network, restoring: wallet.durable)
        #expect(kept.inFlight.first?.payment.key == entry.payment.key && kept.balance == 0)
        let lost = Wallet<Int>(signer: alice, networkId: network, restoring: wallet.durable.forgettingLog())
        #expect(lost.inFlight.isEmpty && lost.balance == 10)
    }

    /// `receive` takes a payment once, by key: not again once its coins are spent, nor after a
    /// crash, and a payment paying someone else is remembered too (a payee asks `hasReceived`).
    @Test func receivesEachPaymentOnceEvenAfterSpendingOrACrash() throws {
        var wallet = Wallet<Int>(signer: alice, networkId: network)
        let g = genesis(alice, 10), other = genesis(bob, 5)
        let tookG = wallet.receive(g, proof: 0), tookOther = wallet.receive(other, proof: 0)
        #expect(tookG && tookOther)
        #expect(wallet.hasReceived(g.key) && wallet.hasReceived(other.key) && wallet.balance == 10)
        let entry = try wallet.pay([Output(amount: 4, owner: bob.publicKey)])
        wallet.settle(entry.payment.key, proof: 1)
        #expect(wallet.balance == 6 && wallet.hasReceived(entry.payment.key))
        let again = wallet.receive(g, proof: 0)  // its coin is spent: not taken again
        let change = wallet.receive(entry.payment, proof: 1)  // its change was taken by `settle`
        #expect(!again && !change)
        #expect(wallet.balance == 6 && wallet.coins.count == 1)
        var restored = Wallet<Int>(signer: alice, networkId: network, restoring: wallet.durable.forgettingLog())
        let afterCrash = restored.receive(g, proof: 0)
        #expect(!afterCrash)
        #expect(restored.balance == 6 && restored.hasReceived(g.key) && !restored.hasReceived(genesis(bob, 7).key))
    }
}
