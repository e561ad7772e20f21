import Testing
@testable import QuorumCrypto

/// RFC 8032 §7.1 tests 1–3 (secret key = seed, public key, message, signature), checked against an
/// independent implementation before being written here.
let rfc8032: [(seed: String, publicKey: String, message: String, signature: String)] = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]

@Suite struct Ed25519Tests {
    @Test(arguments: 0..<3) func rfc8032Vector(_ i: Int) throws {
        let v = rfc8032[i]
        let pair = Ed25519KeyPair(seed: try Bytes32(hex: v.seed))
        #expect(pair.publicKey.raw.hex == v.publicKey)
        let message = try Hex.decode(v.message)
        let signature = pair.sign(message)
        #expect(signature.hex == v.signature)
        let verifier = Ed25519Verifier()
        #expect(verifier.isValid(signature, of: message, by: pair.publicKey))
        var tampered = message
        tampered.append(0)
        #expect(!verifier.isValid(signature, of: tampered, by: pair.publicKey))
        var badSignature = signature.bytes
        badSignature[5] ^= 0x01
        #expect(!verifier.isValid(try Signature(badSignature), of: message, by: pair.publicKey))
        #expect(verifier.verifications == 3)
    }

    @Test func wrongLengthsAreTypedErrors() {
        #expect(throws: CryptoError.wrongLength(what: "public key", expected: 32, actual: 31)) {
            try PublicKey([UInt8](repeating: 1, count: 31))
        }
        #expect(throws: CryptoError.wrongLength(what: "signature", expected: 64, actual: 65)) {
            try Signature([UInt8](repeating: 1, count: 65))
        }
        #expect(throws: CryptoError.invalidHex("abc")) { try Hex.decode("abc") }
        #expect(throws: CryptoError.invalidHex("zz")) { try Hex.decode("zz") }
    }

    /// Small-order points (identity, order 2, order 4) and a non-canonical encoding are refused
    /// as keys, and libsodium's verifier refuses the trivial forgery with the identity key.
    @Test func smallOrderKeysAreRejected() throws {
        let identity = [UInt8(1)] + [UInt8](repeating: 0, count: 31)
        let orderFour = [UInt8](repeating: 0, count: 32)
        let orderTwo = [UInt8(0xec)] + [UInt8](repeating: 0xff, count: 30) + [0x7f]
        let nonCanonical = [UInt8](repeating: 0xff, count: 32)
        for bad in [identity, orderFour, orderTwo, nonCanonical] {
            #expect(throws: CryptoError.invalidPublicKey) { try PublicKey.validated(bad) }
        }
        let good = Ed25519KeyPair(seed: Bytes32(word: 7)).publicKey
        #expect(try PublicKey.validated(good.raw.bytes) == good)
        // R = identity, S = 0 "verifies" any message under the identity key in lax verifiers.
        let forged = try Signature(identity + [UInt8](repeating: 0, count: 32))
        #expect(!Ed25519Verifier().isValid(forged, of: [1, 2, 3], by: try PublicKey(identity)))
    }

    @Test func keysAreDeterministicFromSeeds() {
        let a = Ed25519KeyPair(seed: KeySeed.derive(seed: 42, label: "replica", index: 3))
        let b = Ed25519KeyPair(seed: KeySeed.derive(seed: 42, label: "replica", index: 3))
        let c = Ed25519KeyPair(seed: KeySeed.derive(seed: 42, label: "replica", index: 4))
        #expect(a.publicKey == b.publicKey)
        #expect(a.publicKey != c.publicKey)
        #expect(a.sign([9]) == b.sign([9]))
    }

    @Test func memoizedVerificationAgreesAndCounts() {
        let pair = Ed25519KeyPair(seed: Bytes32(word: 1))
        let inner = Ed25519Verifier()
        let memo = MemoizingVerifier(wrapping: inner, capacity: 2)
        let good = pair.sign([1])
        for _ in 0..<3 { #expect(memo.isValid(good, of: [1], by: pair.publicKey)) }
        #expect(!memo.isValid(good, of: [2], by: pair.publicKey))
        #expect(!memo.isValid(good, of: [2], by: pair.publicKey))
        #expect(memo.hits == 3 && memo.misses == 2 && inner.verifications == 2)
        // Past capacity the table is cleared, never wrong.
        #expect(memo.isValid(pair.sign([3]), of: [3], by: pair.publicKey))
        #expect(memo.isValid(good, of: [1], by: pair.publicKey))
    }
}

@Suite struct ModelledSignatureTests {
    /// Only the key pair of `pk` signs as `pk`; the message, the key, the unused half and the
    /// run's MAC key all matter; public keys depend on the seed alone.
    @Test func signaturesBindKeyMessageAndRun() throws {
        let scheme = ModelledVerifier(key: Bytes32(word: 7))
        let other = ModelledVerifier(key: Bytes32(word: 8))
        let a = scheme.keyPair(seed: Bytes32(word: 1)), b = scheme.keyPair(seed: Bytes32(word: 2))
        let message: [UInt8] = [1, 2, 3]
        let signature = a.sign(message)
        #expect(scheme.isValid(signature, of: message, by: a.publicKey))
        #expect(scheme.isValid(a.sign([]), of: [], by: a.publicKey))
        #expect(!scheme.isValid(signature, of: [1, 2, 4], by: a.publicKey))
        #expect(!scheme.isValid(signature, of: message, by: b.publicKey))
        #expect(!scheme.isValid(b.sign(message), of: message, by: a.publicKey))
        #expect(!scheme.isValid(Signature(r: signature.r, s: Bytes32(word: 1)), of: message, by: a.publicKey))
        #expect(!scheme.isValid(Signature(r: .zero, s: .zero), of: message, by: a.publicKey))
        // The MAC is r's first half; the second half must stay zero.
        var widened = signature
        widened.r = try Bytes32(Array(signature.r.bytes[0..<16]) + [UInt8](repeating: 0, count: 15) + [1])
        #expect(!scheme.isValid(widened, of: message, by: a.publicKey))
        #expect(signature.r.bytes[16...].allSatisfy { $0 == 0 } && signature.r != .zero)
        // Another run's scheme: same public key from the same seed, but its signatures do not carry over.
        let a2 = other.keyPair(seed: Bytes32(word: 1))
        #expect(a2.publicKey == a.publicKey)
        #expect(!scheme.isValid(a2.sign(message), of: message, by: a.publicKey))
        #expect(a.sign(message) == signature)
        // In-place bytes and arrays sign and check alike, in both schemes.
        let ed = Ed25519KeyPair(seed: Bytes32(word: 3)), edVerifier = Ed25519Verifier()
        message.withUnsafeBytes { raw in
            #expect(a.sign(bytes: raw) == signature && scheme.isValid(signature, ofBytes: raw, by: a.publicKey))
            #expect(!scheme.isValid(signature, ofBytes: raw, by: b.publicKey))
            #expect(ed.sign(bytes: raw) == ed.sign(message))
            #expect(edVerifier.isValid(ed.sign(message), ofBytes: raw, by: ed.publicKey))
            #expect(!edVerifier.isValid(ed.sign([9]), ofBytes: raw, by: ed.publicKey))
        }
    }
}

@Suite struct PackedSignatureTests {
    /// Every signature reads back byte for byte: a modelled MAC (48 zero bytes, packed inline), an
    /// RFC 8032 signature, and ones whose only nonzero tail byte is in r or in s (boxed).
    @Test func packedSignaturesReadBackExactly() throws {
        var cases = [Signature.zero]
        for v in rfc8032 { cases.append(try Signature(Hex.decode(v.signature))) }
        for at in [0, 15, 16, 31, 32, 63] {
            var bytes = [UInt8](repeating: 0, count: 64)
            bytes[at] = 0xA5
            cases.append(try Signature(bytes))
        }
        let mac = ModelledVerifier(key: Bytes32(word: 1)).keyPair(seed: Bytes32(word: 2)).sign(Array("m".utf8))
        cases.append(mac)
        for signature in cases {
            let packed = PackedSignature(signature)
            #expect(packed.signature == signature && packed.signature.bytes == signature.bytes)
            #expect(packed.isInline == signature.bytes[16...].allSatisfy { $0 == 0 })
        }
        #expect(PackedSignature(mac).isInline && !PackedSignature(cases[1]).isInline)
    }
}

@Suite struct SipHashTests {
    /// The SipHash reference's 128-bit vectors (key 00…0f, message 00…len−1), lengths 0 and 1;
    /// the MAC fills the first 16 bytes and leaves the rest zero.
    @Test func referenceVectors() throws {
        let key = SipHash128.Key(try Bytes32((0..<16).map(UInt8.init) + [UInt8](repeating: 0, count: 16)))
        let empty = [UInt8]().withUnsafeBytes { SipHash128.mac(key, $0) }
        let one = [UInt8(0)].withUnsafeBytes { SipHash128.mac(key, $0) }
        #expect(empty.hex == "a3817f04ba25a8e66df67214c7550293" + String(repeating: "0", count: 32))
        #expect(one.hex == "da87c1d86b99af44347659119b22fc45" + String(repeating: "0", count: 32))
    }

    /// The Swift SipHash over `prefix ‖ data` is SipHash: with 2-4 rounds it equals libsodium's
    /// over the joined bytes at every data length 0…300 (all tail lengths, many blocks), so the
    /// 1-3 rounds the modelled scheme runs differ only in the round counts. The 1-3 tag depends
    /// on every byte, the prefix and the key.
    @Test func swiftRoundsMatchLibsodium() throws {
        let key = SipHash128.Key(try Bytes32((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 5) }))
        let prefix = try Bytes32((0..<32).map { UInt8(truncatingIfNeeded: 200 &- $0 &* 3) })
        let data = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        for n in 0...300 {
            let part = Array(data[..<n])
            let joined = prefix.bytes + part
            let reference = joined.withUnsafeBytes { SipHash128.mac(key, $0) }
            let swift = part.withUnsafeBytes { SipHash128.mac(key, prefix: prefix, $0, compression: 2, finalization: 4) }
            #expect(swift == reference, "length \(n)")
            if n > 0 {
                var flipped = part
                flipped[n - 1] ^= 1
                let a = part.withUnsafeBytes { SipHash128.mac(key, prefix: prefix, $0, compression: 1, finalization: 3) }
                let b = flipped.withUnsafeBytes { SipHash128.mac(key, prefix: prefix, $0, compression: 1, finalization: 3) }
                #expect(a != b && a != swift, "length \(n)")
            }
        }
        let otherKey = SipHash128.Key(Bytes32(word: 1))
        let m: [UInt8] = [1, 2, 3]
        let tag = m.withUnsafeBytes { SipHash128.mac(key, prefix: prefix, $0, compression: 1, finalization: 3) }
        #expect(tag != m.withUnsafeBytes { SipHash128.mac(otherKey, prefix: prefix, $0, compression: 1, finalization: 3) })
        #expect(tag != m.withUnsafeBytes { SipHash128.mac(key, prefix: .zero, $0, compression: 1, finalization: 3) })
    }
}

@Suite struct Blake2bTests {
    /// Published BLAKE2b-256 values (the empty string and "abc").
    @Test func publishedVectors() {
        #expect(Blake2b.digest([]).hex == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
        #expect(Blake2b.digest(Array("abc".utf8)).hex == "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")
    }

    @Test func domainTagsSeparate() {
        let data: [UInt8] = [1, 2, 3]
        #expect(Blake2b.hash(.payment, data) != Blake2b.hash(.redeem, data))
        // H(tag, data) = BLAKE2b-256(len(tag) ‖ tag ‖ data).
        #expect(Blake2b.hash(.payment, data) == Blake2b.digest([6] + Array("qc/pay".utf8) + data))
        #expect(Blake2b.hash(.payment) { $0.append(data) } == Blake2b.hash(.payment, data))
    }

    @Test func bytes32OrderIsLexicographic() throws {
        let a = try Bytes32([0] + [UInt8](repeating: 0xff, count: 31))
        let b = try Bytes32([1] + [UInt8](repeating: 0, count: 31))
        #expect(a < b && !(b < a))
        #expect(Bytes32(word: 5).prefix64 == 5)
        #expect(try Bytes32(hex: b.hex) == b)
    }
}

@Suite struct RandomTests {
    /// xoshiro256** reference output for state (1, 2, 3, 4), computed independently.
    @Test func referenceSequence() {
        var rng = DeterministicRandom(state: (1, 2, 3, 4))
        let expected: [UInt64] = [11520, 0, 1_509_978_240, 1_215_971_899_390_074_240, 1_216_172_134_540_287_360]
        #expect((0..<5).map { _ in rng.next() } == expected)
    }

    @Test func streamsAreIndependentAndRepeatable() {
        var a = DeterministicRandom(seed: 7, stream: "network")
        var b = DeterministicRandom(seed: 7, stream: "network")
        var c = DeterministicRandom(seed: 7, stream: "workload")
        let xs = (0..<8).map { _ in a.next() }
        #expect(xs == (0..<8).map { _ in b.next() })
        #expect(xs != (0..<8).map { _ in c.next() })
    }

    @Test func uniformStaysInRangeAndCoversIt() {
        var rng = DeterministicRandom(seed: 1, stream: "t")
        var seen = [Int](repeating: 0, count: 7)
        for _ in 0..<7000 {
            let x = rng.uniform(below: 7)
            #expect(x >= 0 && x < 7)
            seen[x] += 1
        }
        #expect(seen.allSatisfy { $0 > 800 })
        #expect(rng.uniform(below: 0) == 0)
        var deck = Array(0..<50)
        rng.shuffle(&deck)
        #expect(deck.sorted() == Array(0..<50) && deck != Array(0..<50))
    }
}

@Suite struct DomainTagTests {
    /// A tag hashes as `len(tag) ‖ tag ‖ data` from its static text, and tags compare by text.
    @Test func tagsPrefixTheirLengthAndCompareByText() {
        let data: [UInt8] = [1, 2, 3]
        #expect(Blake2b.hash(.payment, data) == Blake2b.digest([6] + Array("qc/pay".utf8) + data))
        #expect(Blake2b.hash(.payment, bodyBytes: 3) { $0.append(UInt8(1)); $0.append(UInt8(2)); $0.append(UInt8(3)) }
                == Blake2b.hash(.payment, data))
        #expect(DomainTag("qc/pay") == .payment && DomainTag.payment != .redeem)
        #expect(Set([DomainTag.payment, DomainTag("qc/pay"), .vote]).count == 2)
        #expect(DomainTag.redeemSignature.bytes == Array("qc/rsig".utf8) && DomainTag.redeemSignature.count == 7)
    }
}
