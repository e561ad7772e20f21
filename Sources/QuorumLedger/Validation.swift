import QuorumCrypto

/// Why a record breaks a ledger rule (PROTOCOL §2 and §4). Each case names what was wrong and where.
public enum ValidationError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongVersion(UInt8)
    case wrongNetwork(expected: UInt32, actual: UInt32)
    /// A zero-input payment that is not one of the configured genesis payments (minting).
    case mintOutsideGenesis
    case tooManyInputs(count: Int, limit: Int)
    case noOutputs
    case tooManyOutputs(count: Int, limit: Int)
    case duplicateInput(InputRef)
    /// The parent payment of an input is not available (or not the record the input names).
    case missingParent(InputRef)
    case outputIndexOutOfRange(InputRef, outputs: Int)
    /// The input spends an output that the payer (or redeem signer) does not own.
    case notOwner(InputRef)
    /// An amount outside 1…2^63 (`what` says which: "output 2", "input 0", "fee").
    case amountOutOfRange(what: String, amount: UInt64)
    /// A sum exceeded 2^63 (never computed with an unchecked `+`).
    case sumOverflow(what: String)
    /// Σinputs ≠ Σoutputs + fee.
    case unbalanced(inputs: UInt64, outputs: UInt64, fee: UInt64)
    case badPayerSignature
    case badRedeemSignature
    /// A redeem that names a different payment than the one it is used for.
    case redeemForOtherPayment(InputRef, spender: Digest)
    /// No redeem (or certificate for it) was given for an input.
    case missingRedeem(InputRef)
    case invalidGenesis(String)

    public var description: String {
        switch self {
        case let .wrongVersion(v): return "unsupported record version \(v)"
        case let .wrongNetwork(e, a): return "record for network \(a), expected \(e)"
        case .mintOutsideGenesis: return "zero-input payment outside genesis (minting)"
        case let .tooManyInputs(c, l): return "\(c) inputs exceed the limit \(l)"
        case .noOutputs: return "payment has no outputs"
        case let .tooManyOutputs(c, l): return "\(c) outputs exceed the limit \(l)"
        case let .duplicateInput(i): return "input \(i) appears twice"
        case let .missingParent(i): return "parent of input \(i) is missing or not certified"
        case let .outputIndexOutOfRange(i, n): return "input \(i) names an output beyond the parent's \(n)"
        case let .notOwner(i): return "input \(i) spends an output the signer does not own"
        case let .amountOutOfRange(w, a): return "\(w) amount \(a) outside 1…2^63"
        case let .sumOverflow(w): return "sum of \(w) exceeds 2^63"
        case let .unbalanced(i, o, f): return "inputs \(i) ≠ outputs \(o) + fee \(f)"
        case .badPayerSignature: return "payer's signature does not verify"
        case .badRedeemSignature: return "redeem owner's signature does not verify"
        case let .redeemForOtherPayment(i, s): return "redeem of \(i) names payment \(s), not this one"
        case let .missingRedeem(i): return "no redeem for input \(i)"
        case let .invalidGenesis(why): return "invalid genesis: \(why)"
        }
    }
}

/// Overflow-checked sums of untrusted amounts: never `+` on values from the network.
public enum Amounts {
    /// Σ `values`, or nil if any partial sum exceeds `Ledger.maxSupply`.
    @inlinable public static func checkedSum<S: Sequence>(_ values: S) -> UInt64? where S.Element == UInt64 {
        var total: UInt64 = 0
        for v in values {
            let (sum, overflow) = total.addingReportingOverflow(v)
            guard !overflow, sum <= Ledger.maxSupply else { return nil }
            total = sum
        }
        return total
    }

    /// `a + b`, or nil if it overflows or exceeds `Ledger.maxSupply` (`checkedSum([a, b])`).
    @inlinable public static func checkedSum(_ a: UInt64, _ b: UInt64) -> UInt64? {
        guard a <= Ledger.maxSupply else { return nil }
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow || sum > Ledger.maxSupply ? nil : sum
    }
}

/// The genesis payments of a run: zero-input payments accepted by configuration (PROTOCOL §2).
public struct Genesis: Sendable {
    public let payments: [Payment]
    public let keys: Set<Digest>
    public let supply: UInt64

    public init(payments: [Payment]) throws(ValidationError) {
        var keys = Set<Digest>()
        var amounts = [UInt64]()
        for p in payments {
            guard p.inputs.isEmpty else { throw .invalidGenesis("payment \(p.key) has inputs") }
            guard p.body.fee == 0 else { throw .invalidGenesis("payment \(p.key) has a fee") }
            guard keys.insert(p.key).inserted else { throw .invalidGenesis("payment \(p.key) listed twice") }
            for (i, o) in p.outputs.enumerated() {
                guard o.amount >= 1, o.amount <= Ledger.maxSupply else {
                    throw .amountOutOfRange(what: "genesis output \(i)", amount: o.amount)
                }
                amounts.append(o.amount)
            }
        }
        guard let supply = Amounts.checkedSum(amounts) else { throw .sumOverflow(what: "genesis supply") }
        self.payments = payments
        self.keys = keys
        self.supply = supply
    }

    public func contains(_ key: Digest) -> Bool { keys.contains(key) }

    /// A genesis endowment: one zero-input payment per owner, signed by the owner, with a nonce so
    /// two endowments of one owner have distinct keys.
    public static func endowment(networkId: UInt32, owner: some Signer, amount: UInt64, nonce: UInt64 = 0) -> Payment {
        Payment.signed(PaymentBody(networkId: networkId, payer: owner.publicKey, inputs: [],
                                   outputs: [Output(amount: amount, owner: owner.publicKey)], fee: 0, nonce: nonce),
                       by: owner)
    }
}

/// The record-level rules of PROTOCOL §4, independent of certificates: the caller establishes
/// which parents are certified (or genesis) and which redeems are certified, then asks these rules.
/// Every check is bounded by the configured caps and uses overflow-checked sums.
public struct LedgerRules: Sendable {
    public let networkId: UInt32
    public let limits: LedgerLimits

    public init(networkId: UInt32, limits: LedgerLimits = .standard) {
        self.networkId = networkId
        self.limits = limits
    }

    /// Shape of a payment that needs nothing but the payment itself: version, network, input and
    /// output counts, duplicate inputs, output amounts, fee range, and the payer's signature.
    /// `verifyPayer` is false when the caller has already checked it (memoized per record).
    public func checkShape(_ payment: Payment, verifier: SignatureVerifier, verifyPayer: Bool = true) throws(ValidationError) {
        let body = payment.body
        guard body.version == Ledger.version else { throw .wrongVersion(body.version) }
        guard body.networkId == networkId else { throw .wrongNetwork(expected: networkId, actual: body.networkId) }
        guard !body.inputs.isEmpty else { throw .mintOutsideGenesis }
        guard body.inputs.count <= limits.maxInputs else { throw .tooManyInputs(count: body.inputs.count, limit: limits.maxInputs) }
        guard !body.outputs.isEmpty else { throw .noOutputs }
        guard body.outputs.count <= limits.maxOutputs else { throw .tooManyOutputs(count: body.outputs.count, limit: limits.maxOutputs) }
        // Pairwise over at most `maxInputs`: no set allocated per check.
        for (i, input) in body.inputs.enumerated() where body.inputs[..<i].contains(input) { throw .duplicateInput(input) }
        for (i, output) in body.outputs.enumerated() where output.amount == 0 || output.amount > Ledger.maxSupply {
            throw .amountOutOfRange(what: "output \(i)", amount: output.amount)
        }
        guard body.fee <= Ledger.maxSupply else { throw .amountOutOfRange(what: "fee", amount: body.fee) }
        if verifyPayer {
            guard payment.withSigningMessage({ verifier.isValid(payment.signature, ofBytes: $0, by: body.payer) }) else {
                throw .badPayerSignature
            }
        }
    }

    /// Value conservation and ownership against the parents: every input names an existing output
    /// owned by the payer, and Σinputs == Σoutputs + fee. `parent` returns the certified parent for
    /// a key (nil if absent or uncertified).
    public func checkBalance(_ payment: Payment, parent: (Digest) -> Payment?) throws(ValidationError) {
        let body = payment.body
        // Running checked sums (as `Amounts.checkedSum`), no arrays: every input is checked
        // before an overflow of their sum is reported, as before.
        var totalIn: UInt64? = 0
        for input in body.inputs {
            let output = try spentOutput(input, parent: parent)
            guard output.owner == body.payer else { throw .notOwner(input) }
            totalIn = totalIn.flatMap { Amounts.checkedSum($0, output.amount) }
        }
        guard let totalIn else { throw .sumOverflow(what: "inputs") }
        var sumOut: UInt64? = 0
        for output in body.outputs { sumOut = sumOut.flatMap { Amounts.checkedSum($0, output.amount) } }
        guard let totalOut = sumOut else { throw .sumOverflow(what: "outputs") }
        guard let outPlusFee = Amounts.checkedSum(totalOut, body.fee) else { throw .sumOverflow(what: "outputs + fee") }
        guard totalIn == outPlusFee else { throw .unbalanced(inputs: totalIn, outputs: totalOut, fee: body.fee) }
    }

    /// The output an input spends, with its amount range checked.
    public func spentOutput(_ input: InputRef, parent: (Digest) -> Payment?) throws(ValidationError) -> Output {
        guard let p = parent(input.parentKey), p.key == input.parentKey else { throw .missingParent(input) }
        guard Int(input.index) < p.outputs.count else { throw .outputIndexOutOfRange(input, outputs: p.outputs.count) }
        let output = p.outputs[Int(input.index)]
        guard output.amount >= 1, output.amount <= Ledger.maxSupply else {
            throw .amountOutOfRange(what: "input \(input)", amount: output.amount)
        }
        return output
    }

    /// A redeem is duly constructed (its key is always derived from its input, never decoded): right
    /// network and version, the
    /// signer owns the spent output of `parent`, and the owner's signature verifies.
    /// `verifySignature` is false when the caller has already checked it (memoized per record).
    public func checkRedeem(_ redeem: Redeem, parent: Payment, verifier: SignatureVerifier,
                            verifySignature: Bool = true) throws(ValidationError) {
        guard redeem.version == Ledger.version else { throw .wrongVersion(redeem.version) }
        guard redeem.networkId == networkId else { throw .wrongNetwork(expected: networkId, actual: redeem.networkId) }
        let output = try spentOutput(redeem.input) { $0 == parent.key ? parent : nil }
        guard output.owner == redeem.owner else { throw .notOwner(redeem.input) }
        guard !verifySignature || redeem.withSigningMessage({ verifier.isValid(redeem.signature, ofBytes: $0, by: redeem.owner) }) else {
            throw .badRedeemSignature
        }
    }
}
