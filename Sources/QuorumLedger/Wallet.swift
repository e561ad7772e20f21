import QuorumCrypto

/// Why a wallet cannot build a payment.
public enum WalletError: Error, Equatable, Sendable, CustomStringConvertible {
    case insufficientFunds(available: UInt64, needed: UInt64)
    case tooManyInputsNeeded(limit: Int)
    case tooManyOutputs(count: Int, limit: Int)
    case invalidAmount(UInt64)

    public var description: String {
        switch self {
        case let .insufficientFunds(a, n): return "insufficient funds: \(a) spendable, \(n) needed"
        case let .tooManyInputsNeeded(l): return "the amount needs more than \(l) inputs"
        case let .tooManyOutputs(c, l): return "\(c) outputs exceed the limit \(l)"
        case let .invalidAmount(a): return "amount \(a) outside 1…2^63"
        }
    }
}

/// One principal's money: its unspent outputs (coins), the payments it has in flight, and the
/// durable log of PROTOCOL §3 step 0. Generic over `Proof`, whatever certifies a parent payment
/// (QuorumStore's certificate), which the wallet keeps beside each coin to attach to Prepares.
public struct Wallet<Proof: Sendable>: Sendable {
    /// An output this principal owns, with the certified payment that created it.
    public struct Coin: Sendable {
        public let input: InputRef
        public let amount: UInt64
        public let parent: Payment
        public let proof: Proof
    }

    /// A payment that has been built and logged but not yet certified.
    public struct InFlight: Sendable {
        public let payment: Payment
        public let redeems: [Redeem]
        public let coins: [Coin]
    }

    /// What survives a crash: coins, the in-flight log, the nonce counter, and the keys of the
    /// certified payments received.
    public struct Durable: Sendable {
        public internal(set) var coins: [Coin] = []
        public internal(set) var log: [InFlight] = []
        public internal(set) var nextNonce: UInt64 = 1
        /// Every certified payment `receive` has taken (its own settled ones included), whether or
        /// not it paid this principal: what makes `receive` idempotent, and what a payee asks
        /// (`hasReceived`) before validating a hand-over again. One key per payment, in place of
        /// an entry per output here and the payee's own set of payments accepted (at 1M
        /// payments: wallets and those sets 543.8 MiB, the wallets with this set 422.2 MiB).
        public internal(set) var received: Set<Digest> = []

        /// The state after a crash that lost the log (a fault the simulator injects): the coins of
        /// in-flight payments are spendable again, because nothing remembers they were promised.
        public func forgettingLog() -> Durable {
            var copy = self
            copy.coins.append(contentsOf: log.flatMap { $0.coins })
            copy.log = []
            return copy
        }
    }

    public let signer: any Signer
    /// The signer's public key, kept here: reading it through the signer loads the signer's box
    /// (a key pair wider than an existential's inline buffer), a cache miss of its own on every
    /// payment received in a large run.
    public let publicKey: PublicKey
    public let networkId: UInt32
    public let limits: LedgerLimits
    public private(set) var durable: Durable

    public init(signer: any Signer, networkId: UInt32, limits: LedgerLimits = .standard) {
        self.signer = signer
        self.publicKey = signer.publicKey
        self.networkId = networkId
        self.limits = limits
        self.durable = Durable()
    }

    /// Restores a wallet from what survived a crash. In-flight payments in the log are to be
    /// finished as they are (same key), never rebuilt (PROTOCOL §3 step 0).
    public init(signer: any Signer, networkId: UInt32, limits: LedgerLimits = .standard, restoring durable: Durable) {
        self.init(signer: signer, networkId: networkId, limits: limits)
        self.durable = durable
    }

    public var coins: [Coin] { durable.coins }
    public var inFlight: [InFlight] { durable.log }

    /// Spendable balance (coins not promised to an in-flight payment).
    public var balance: UInt64 { Amounts.checkedSum(durable.coins.map { $0.amount }) ?? Ledger.maxSupply }

    /// Takes the outputs of a certified payment that belong to this principal; false, taking
    /// nothing, if it had received the payment before (by key), even once its coins are spent.
    @discardableResult
    public mutating func receive(_ payment: Payment, proof: Proof) -> Bool {
        guard durable.received.insert(payment.key).inserted else { return false }
        for (i, output) in payment.outputs.enumerated() where output.owner == publicKey {
            let input = InputRef(parentKey: payment.key, index: UInt32(truncatingIfNeeded: i))
            durable.coins.append(Coin(input: input, amount: output.amount, parent: payment, proof: proof))
        }
        return true
    }

    /// Whether `receive` has taken the payment with key `key`.
    public func hasReceived(_ key: Digest) -> Bool { durable.received.contains(key) }

    /// Builds, signs and logs a payment of `payees` plus `fee`, spending the oldest coins first (at
    /// least `minimumInputs` of them when the wallet has that many) and returning change to this
    /// principal. The redeems are signed after the payment is logged.
    public mutating func pay(_ payees: [Output], fee: UInt64 = 0, minimumInputs: Int = 1) throws(WalletError) -> InFlight {
        for p in payees where p.amount == 0 || p.amount > Ledger.maxSupply { throw .invalidAmount(p.amount) }
        guard fee <= Ledger.maxSupply else { throw .invalidAmount(fee) }
        // Σ amounts + fee, checked as one sum (no arrays: one payment per issue).
        guard let needed = Amounts.checkedSum(payees.lazy.map { $0.amount }).flatMap({ Amounts.checkedSum($0, fee) }) else {
            throw .invalidAmount(Ledger.maxSupply)
        }
        var chosen = [Coin]()
        var total: UInt64 = 0
        let wanted = min(max(1, minimumInputs), limits.maxInputs)
        for coin in durable.coins where total < needed || chosen.count < wanted {
            guard chosen.count < limits.maxInputs else { throw .tooManyInputsNeeded(limit: limits.maxInputs) }
            chosen.append(coin)
            let (sum, overflow) = total.addingReportingOverflow(coin.amount)
            total = overflow ? .max : sum
        }
        guard total >= needed else { throw .insufficientFunds(available: total, needed: needed) }
        var outputs = payees
        if total > needed { outputs.append(Output(amount: total - needed, owner: publicKey)) }
        guard outputs.count <= limits.maxOutputs else { throw .tooManyOutputs(count: outputs.count, limit: limits.maxOutputs) }

        // Closures, not key paths: a key path into this generic type's members is instantiated at
        // run time on every call (1.7 % of a large run's profile, in swift_getKeyPath).
        let spent = chosen.map { $0.input }
        let body = PaymentBody(networkId: networkId, payer: publicKey, inputs: spent,
                               outputs: outputs, fee: fee, nonce: durable.nextNonce)
        durable.nextNonce &+= 1
        let payment = Payment.signed(body, by: signer)
        // Chosen coins are a prefix of the oldest (the loop above takes them in order).
        durable.coins.removeFirst(chosen.count)
        // Step 0: the payment is in the durable log before any redeem is signed.
        durable.log.append(InFlight(payment: payment, redeems: [], coins: chosen))
        let redeems = chosen.map { Redeem.signed(networkId: networkId, input: $0.input, spender: payment.key, by: signer) }
        let entry = InFlight(payment: payment, redeems: redeems, coins: chosen)
        durable.log[durable.log.count - 1] = entry
        return entry
    }

    /// The payment with key `key` is certified: it leaves the log and its change becomes a coin.
    public mutating func settle(_ key: Digest, proof: Proof) {
        guard let at = durable.log.firstIndex(where: { $0.payment.key == key }) else { return }
        let entry = durable.log.remove(at: at)
        receive(entry.payment, proof: proof)
    }
}
