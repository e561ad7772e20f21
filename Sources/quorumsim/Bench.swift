import ArgumentParser
import Foundation
import QuorumCrypto

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure crypto rates on this machine (release build; median of repeated runs).")

    @Option(help: "Repetitions per figure (the median is reported).")
    var repeats = 5

    @Option(help: "Operations per repetition for signatures (hashes: 100×).")
    var operations = 4000

    func run() {
        print("quorumsim bench — crypto (median of \(repeats) runs)")
        let pair = Ed25519KeyPair(seed: Bytes32(word: 1))
        let messages = (0..<operations).map { i in (0..<96).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) } }
        let sign = median { for m in messages { _ = pair.sign(m) } }
        let signatures = messages.map { pair.sign($0) }
        let verifier = Ed25519Verifier()
        var ok = true
        let verify = median { for (m, s) in zip(messages, signatures) { ok = verifier.isValid(s, of: m, by: pair.publicKey) && ok } }
        let block = [UInt8](repeating: 7, count: 200)
        let hashes = operations * 100
        let hash = median { for _ in 0..<hashes { _ = Blake2b.digest(block) } }
        print(row("Ed25519 sign", Double(operations) / sign, "/s"))
        print(row("Ed25519 verify", Double(operations) / verify, "/s") + (ok ? "" : "  (VERIFY FAILED)"))
        print(row("BLAKE2b-256 of 200 B", Double(hashes) / hash, "/s"))
    }

    private func median(_ body: () -> Void) -> Double {
        var times = [Double]()
        for _ in 0..<max(1, repeats) {
            let start = ContinuousClock.now
            body()
            times.append(seconds(ContinuousClock.now - start))
        }
        return times.sorted()[times.count / 2]
    }

    private func row(_ name: String, _ value: Double, _ unit: String) -> String {
        name.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%12.0f", value) + " " + unit
    }
}
