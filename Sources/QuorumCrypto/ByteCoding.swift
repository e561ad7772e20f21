/// Why bytes could not be decoded. Every decoder in QuorumCoin reports through this type and
/// never traps: any byte string from a Byzantine peer yields a value or one of these.
public enum DecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended while reading `field` (`needed` more bytes were required).
    case truncated(field: String, needed: Int)
    /// Bytes were left after a complete value.
    case trailingBytes(Int)
    /// A version byte this code does not know.
    case unknownVersion(UInt8)
    /// A tag byte (message kind, record type) this code does not know.
    case unknownTag(field: String, value: UInt8)
    /// A length prefix above the configured cap.
    case tooMany(field: String, count: Int, limit: Int)
    /// A field whose value is outside its domain (zero amount, bad flag...).
    case invalidValue(field: String, reason: String)

    public var description: String {
        switch self {
        case let .truncated(field, needed): return "truncated while reading \(field) (\(needed) more bytes needed)"
        case let .trailingBytes(n): return "\(n) trailing bytes after a complete value"
        case let .unknownVersion(v): return "unknown version \(v)"
        case let .unknownTag(field, value): return "unknown \(field) tag \(value)"
        case let .tooMany(field, count, limit): return "\(field): \(count) entries exceed the limit of \(limit)"
        case let .invalidValue(field, reason): return "\(field): \(reason)"
        }
    }
}

/// Where canonical big-endian fields are written: a growing `ByteWriter` or a fixed-size
/// `FixedWriter`, so one encoding function serves the wire and the signing messages.
public protocol ByteSink {
    mutating func append(_ v: UInt8)
    mutating func append(_ v: UInt16)
    mutating func append(_ v: UInt32)
    mutating func append(_ v: UInt64)
    mutating func append(_ v: Bytes32)
    mutating func append(_ v: PublicKey)
}

/// Appends canonical big-endian encodings.
public struct ByteWriter: ByteSink, Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// A writer whose output starts with the domain prefix `len(tag) ‖ tag`, ready to be hashed.
    public init(tag: DomainTag, capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(1 + tag.count + capacity)
        bytes.append(UInt8(truncatingIfNeeded: tag.count))
        tag.withBytes { bytes.append(contentsOf: $0) }
    }

    public mutating func append(_ v: UInt8) { bytes.append(v) }
    public mutating func append(_ v: UInt16) { appendBigEndian(v) }
    public mutating func append(_ v: UInt32) { appendBigEndian(v) }
    public mutating func append(_ v: UInt64) { appendBigEndian(v) }
    public mutating func append(_ v: Bytes32) { v.withUnsafeBytes { appendRaw($0) } }
    public mutating func append(_ v: PublicKey) { append(v.raw) }
    public mutating func append(_ v: Signature) { append(v.r); append(v.s) }
    public mutating func append(_ v: [UInt8]) { bytes.append(contentsOf: v) }

    mutating func appendBigEndian<T: FixedWidthInteger>(_ v: T) {
        var be = v.bigEndian
        withUnsafeBytes(of: &be) { appendRaw($0) }
    }

    /// Raw bytes through a typed buffer: `append(contentsOf:)` copies a typed buffer with one
    /// memcpy but iterates a raw one byte by byte (3 % of a large run's instructions).
    @inline(__always) mutating func appendRaw(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count))
    }
}

extension ByteWriter {
    /// Builds `len(tag) ‖ tag ‖ body` (at most `bodyBytes` from `body`) in a stack buffer and
    /// hands the bytes to `use`: a signing message checked or signed without allocating an
    /// array (every new array paid a runtime metadata lookup, ~500 instructions).
    @inlinable public static func withFixed<R>(tag: DomainTag, bodyBytes: Int, _ body: (inout FixedWriter) -> Void,
                                              _ use: (UnsafeRawBufferPointer) -> R) -> R {
        let count = 1 + tag.count + bodyBytes
        return withUnsafeTemporaryAllocation(byteCount: count, alignment: 1) { buffer in
            guard let base = buffer.baseAddress else { return use(UnsafeRawBufferPointer(buffer)) }
            var w = FixedWriter(base: base, capacity: count)
            w.append(UInt8(truncatingIfNeeded: tag.count))
            tag.withBytes { w.appendRaw(UnsafeRawBufferPointer($0)) }
            body(&w)
            return use(UnsafeRawBufferPointer(start: base, count: w.offset))
        }
    }
}

/// Writes big-endian fields into a fixed-capacity buffer (see `ByteWriter.withFixed`). Writing past
/// the capacity is a programming error in the caller's declared size, never reachable from input.
public struct FixedWriter: ByteSink {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let capacity: Int
    public private(set) var offset = 0

    @usableFromInline init(base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    public mutating func append(_ v: UInt8) { put(v) }
    public mutating func append(_ v: UInt16) { put(v.bigEndian) }
    public mutating func append(_ v: UInt32) { put(v.bigEndian) }
    public mutating func append(_ v: UInt64) { put(v.bigEndian) }
    public mutating func append(_ v: Bytes32) { put(v.storage) }
    public mutating func append(_ v: PublicKey) { put(v.raw.storage) }

    @inline(__always) mutating func put<T: BitwiseCopyable>(_ v: T) {
        let n = MemoryLayout<T>.size
        precondition(offset + n <= capacity, "fixed encoding longer than declared")
        base.storeBytes(of: v, toByteOffset: offset, as: T.self)
        offset += n
    }

    @inline(__always) @usableFromInline mutating func appendRaw(_ raw: UnsafeRawBufferPointer) {
        guard let from = raw.baseAddress else { return }
        precondition(offset + raw.count <= capacity, "fixed encoding longer than declared")
        (base + offset).copyMemory(from: from, byteCount: raw.count)
        offset += raw.count
    }
}

/// Reads canonical big-endian encodings with a bounds check on every read.
public struct ByteReader: ~Copyable {
    private let base: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ buffer: UnsafeRawBufferPointer) { self.base = buffer }

    public var remaining: Int { base.count - offset }

    @inline(__always) private mutating func take(_ n: Int, _ field: String) throws(DecodingError) -> Int {
        guard n <= base.count - offset else { throw .truncated(field: field, needed: n - (base.count - offset)) }
        let start = offset
        offset += n
        return start
    }

    private mutating func integer<T: FixedWidthInteger>(_ field: String) throws(DecodingError) -> T {
        let at = try take(MemoryLayout<T>.size, field)
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v = (v << 8) | T(base[at + i]) }
        return v
    }

    public mutating func u8(_ field: String) throws(DecodingError) -> UInt8 { try integer(field) }
    public mutating func u16(_ field: String) throws(DecodingError) -> UInt16 { try integer(field) }
    public mutating func u32(_ field: String) throws(DecodingError) -> UInt32 { try integer(field) }
    public mutating func u64(_ field: String) throws(DecodingError) -> UInt64 { try integer(field) }

    public mutating func bytes32(_ field: String) throws(DecodingError) -> Bytes32 {
        let at = try take(32, field)
        return Bytes32(unchecked: base, at: at)
    }

    public mutating func publicKey(_ field: String) throws(DecodingError) -> PublicKey {
        PublicKey(raw: try bytes32(field))
    }

    public mutating func signature(_ field: String) throws(DecodingError) -> Signature {
        let r = try bytes32(field)
        let s = try bytes32(field)
        return Signature(r: r, s: s)
    }

    public mutating func bytes(_ count: Int, _ field: String) throws(DecodingError) -> [UInt8] {
        let at = try take(count, field)
        return Array(UnsafeRawBufferPointer(rebasing: base[at..<at + count]))
    }

    /// A 16-bit count checked against `limit` before anything is allocated for it.
    public mutating func count(_ field: String, limit: Int) throws(DecodingError) -> Int {
        let n = Int(try u16(field))
        guard n <= limit else { throw .tooMany(field: field, count: n, limit: limit) }
        return n
    }

    /// Throws unless every byte has been consumed.
    public func finish() throws(DecodingError) {
        guard offset == base.count else { throw .trailingBytes(base.count - offset) }
    }
}

extension Array where Element == UInt8 {
    /// Runs a decoder over these bytes and requires it to consume them all.
    public func decode<T>(_ body: (inout ByteReader) throws(DecodingError) -> T) throws(DecodingError) -> T {
        let result: Result<T, DecodingError> = withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            do throws(DecodingError) {
                let value = try body(&reader)
                try reader.finish()
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
