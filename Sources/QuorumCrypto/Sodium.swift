import CSodium

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
