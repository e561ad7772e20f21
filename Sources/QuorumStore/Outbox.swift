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

    public init() {}

    public mutating func send(_ message: Message, to node: NodeID) {
        messages.append((node, message))
    }

    /// Sends `message` to each replica in `replicas`, in the given order.
    public mutating func send(_ message: Message, to replicas: [ReplicaID]) {
        for r in replicas { messages.append((NodeID(replica: r), message)) }
    }

    public mutating func setTimer(at time: UInt64, token: UInt64 = 0) {
        timers.append(Timer(at: time, token: token))
    }

    /// Drops queued messages (a host's fault layer uses this to model a crash mid-send).
    public mutating func removeMessages(where drop: (NodeID, Message) -> Bool) {
        messages.removeAll { drop($0.to, $0.message) }
    }

    public var isEmpty: Bool { messages.isEmpty && timers.isEmpty }

    public mutating func removeAll() {
        messages.removeAll(keepingCapacity: true)
        timers.removeAll(keepingCapacity: true)
    }
}
