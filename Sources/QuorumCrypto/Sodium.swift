import CSodium
import Glibc

/// The one gate to libsodium's start-up. `sodium_init` is idempotent and thread-safe; it picks
/// the fastest implementation for this CPU. Every entry point that calls libsodium goes through it.
enum Sodium {
    static let ready: Bool = sodium_init() >= 0

    @inline(__always) static func ensureReady() {
        precondition(ready, "libsodium failed to initialise")  // environment fault, not input
    }
}

extension UnsafeRawBufferPointer {
    /// The bytes as a C `unsigned char *`; for an empty buffer, a pointer to a static zero byte
    /// (libsodium reads nothing from it), so no force-unwrap is needed.
    @inline(__always) var bytePointer: UnsafePointer<UInt8> {
        baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) } ?? Sodium.emptyByte
    }
}

extension UnsafeMutableRawBufferPointer {
    /// The bytes as a C `unsigned char *` (callers pass fixed-size, non-empty buffers).
    @inline(__always) var mutableBytePointer: UnsafeMutablePointer<UInt8> {
        baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) } ?? Sodium.scratchByte
    }
}

extension Sodium {
    nonisolated(unsafe) static let emptyByte: UnsafePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        p.initialize(to: 0)
        return UnsafePointer(p)
    }()
    nonisolated(unsafe) static let scratchByte: UnsafeMutablePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 64)
        p.initialize(repeating: 0, count: 64)
        return p
    }()
}

/// Wall time spent inside libsodium's Ed25519 and BLAKE2b calls, summed while `isOn`: how
/// `quorumsim bench` checks that a real-crypto run spends most of its time in libsodium. It
/// measures the tool, never the simulated system: nothing in a run reads it, and with it off
/// (always, outside the bench) each call pays one branch.
public enum LibsodiumClock {
    nonisolated(unsafe) public static var isOn = false
    nonisolated(unsafe) public private(set) static var nanoseconds: UInt64 = 0
    nonisolated(unsafe) public private(set) static var calls = 0

    public static func reset() {
        nanoseconds = 0
        calls = 0
    }

    @inline(__always) static func time<T>(_ body: () -> T) -> T {
        guard isOn else { return body() }
        let start = monotonic()
        let result = body()
        nanoseconds &+= monotonic() &- start
        calls += 1
        return result
    }

    private static func monotonic() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(truncatingIfNeeded: t.tv_sec) &* 1_000_000_000 &+ UInt64(truncatingIfNeeded: t.tv_nsec)
    }
}
