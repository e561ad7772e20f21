import CSodium

/// The one gate to libsodium's start-up. `sodium_init` is idempotent and thread-safe; it picks
/// the fastest implementation for this CPU. Every entry point that calls libsodium goes through it.
enum Sodium {
    static let ready: Bool = sodium_init() >= 0

    @inline(__always) static func ensureReady() {
        precondition(ready, "libsodium failed to initialise")  // environment fault, not input
    }
}
