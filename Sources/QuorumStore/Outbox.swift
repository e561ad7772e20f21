/// What a state machine asks its host to do after an input: messages to send and timers to set.
/// Hosts reuse one outbox (`removeAll`) so the hot path does not allocate per event.
public struct Outbox: Sendable {
    public struct Timer: Hashable, Sendable {
        /// Absolute time in nanoseconds.
        public var at: UInt64
        /// Meaning is the machine's own (a replica's repair round, a writer's retry...).
        public var token: UInt64
    }

    public private(set) var messages: [(to: NodeID, message: Message)] = []
    public private(set) var timers: [Timer] = []
    /// For each message, whether it is the message before it sent again to another node (a
    /// broadcast's later copies): hosts may skip work that depends on the message alone.
    public private(set) var repeatsPrevious: [Bool] = []

    public init() {}

    public mutating func send(_ message: Message, to node: NodeID) {
        messages.append((node, message))
        repeatsPrevious.append(false)
    }

    /// Sends `message` to each replica in `replicas`, in the given order.
    public mutating func send(_ message: Message, to replicas: [ReplicaID]) {
        for (i, r) in replicas.enumerated() {
            messages.append((NodeID(replica: r), message))
            repeatsPrevious.append(i > 0)
        }
    }

    public mutating func setTimer(at time: UInt64, token: UInt64 = 0) {
        timers.append(Timer(at: time, token: token))
    }

    /// Drops queued messages (a host's fault layer uses this to model a crash mid-send).
    public mutating func removeMessages(where drop: (NodeID, Message) -> Bool) {
        var keptMessages: [(to: NodeID, message: Message)] = []
        var keptRepeats: [Bool] = []
        var previousKept = false
        for (i, entry) in messages.enumerated() {
            guard !drop(entry.to, entry.message) else { previousKept = false; continue }
            keptMessages.append(entry)
            // Still a repeat only if the copy before it stayed.
            keptRepeats.append(repeatsPrevious[i] && previousKept)
            previousKept = true
        }
        messages = keptMessages
        repeatsPrevious = keptRepeats
    }

    public var isEmpty: Bool { messages.isEmpty && timers.isEmpty }

    /// Empties the outbox, keeping its capacity. By `popLast`: `removeAll(keepingCapacity:)`
    /// goes through a generic `replaceSubrange` (a metadata lookup and ~120 instructions per
    /// array, on every event), and an outbox holds a handful of entries.
    public mutating func removeAll() {
        while messages.popLast() != nil {}
        while repeatsPrevious.popLast() != nil {}
        while timers.popLast() != nil {}
    }
}
