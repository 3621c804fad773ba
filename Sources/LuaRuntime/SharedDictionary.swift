import CLuaSpoa

/// A value held by a shared dictionary (the types Lua may store).
public enum SharedValue: Equatable, Sendable {
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
}

/// Swift access to a process-wide shared dictionary (`spoa.shared.<name>` in Lua).
/// The store is C (luaspoa_store.c): sharded locks, LRU eviction, TTLs on the
/// luaspoa clock. Lua and Swift see the same items.
public struct SharedDictionary: @unchecked Sendable {
    let handle: OpaquePointer

    public enum Failure: Error, Equatable {
        case notFound, exists, noMemory, notANumber
        /// The item alone is larger than `maxItemBytes`.
        case tooLarge
        /// The dict already exists with another capacity (items or bytes).
        case conflict(existingMaxItems: Int64)

        init?(_ code: Int32) {
            switch Int(code) {
            case LUASPOA_SD_NOT_FOUND: self = .notFound
            case LUASPOA_SD_EXISTS: self = .exists
            case LUASPOA_SD_NO_MEMORY: self = .noMemory
            case LUASPOA_SD_NOT_A_NUMBER: self = .notANumber
            case LUASPOA_SD_TOO_LARGE: self = .tooLarge
            default: return nil
            }
        }
    }

    public enum WriteMode: Int32 {
        case set = 0, safeSet = 1, add = 2, safeAdd = 3, replace = 4
    }

    /// Keys + values a dict holds unless declared with `maxBytes`.
    public static let defaultMaxBytes = Int64(LUASPOA_DICT_DEFAULT_MAX_BYTES)

    /// Returns the dict `name`, creating it on first use (same rules as `spoa.shared.declare`).
    public static func declare(_ name: String, maxItems: Int64, maxBytes: Int64 = defaultMaxBytes) throws(Failure) -> SharedDictionary {
        var existing: Int64 = 0
        let handle = luaspoa_dict_declare(name, name.utf8.count, maxItems, maxBytes, &existing)
        guard let handle else { throw .conflict(existingMaxItems: existing) }
        return SharedDictionary(handle: handle)
    }

    public static func named(_ name: String) -> SharedDictionary? {
        luaspoa_dict_find(name, name.utf8.count).map(SharedDictionary.init(handle:))
    }

    /// Empties every dict of the process (test cases start from fresh dicts).
    public static func resetAll() { luaspoa_shared_reset_all() }

    public var capacity: Int64 { luaspoa_dict_capacity(handle) }
    public var count: Int { luaspoa_dict_count(handle) }
    public var maxBytes: Int64 { luaspoa_dict_max_bytes(handle) }
    /// The largest item (key + value) a store accepts.
    public var maxItemBytes: Int64 { luaspoa_dict_max_item_bytes(handle) }
    /// Bytes of keys and values held (what `maxBytes` bounds).
    public var bytes: Int { luaspoa_dict_bytes(handle) }

    public func get(_ key: String) -> SharedValue? {
        var out = luaspoa_sval()
        var stale: Int32 = 0
        guard luaspoa_dict_get(handle, key, key.utf8.count, 0, &out, &stale) == LUASPOA_SD_OK else { return nil }
        return SharedValue(out)
    }

    /// Stores `value` (nil deletes) with a TTL in seconds (0: never expires).
    /// Returns whether a live item was evicted to make room.
    @discardableResult
    public func store(_ key: String, _ value: SharedValue?, ttl: Double = 0, mode: WriteMode = .set) throws(Failure) -> Bool {
        var forcible: Int32 = 0
        let rc = value.withSval { sval in
            luaspoa_dict_store(handle, key, key.utf8.count, sval, Self.milliseconds(ttl), mode.rawValue, &forcible)
        }
        if let failure = Failure(rc) { throw failure }
        return forcible != 0
    }

    /// Atomically adds `step`; a missing key starts at `initial` (if given) with `initialTTL`.
    public func incr(_ key: String, by step: Int64, initial: Int64? = nil, initialTTL: Double = 0) throws(Failure) -> Int64 {
        var stepValue = luaspoa_sval(type: Int32(LUASPOA_SV_INT), i: step, d: 0, s: nil, len: 0)
        var out = luaspoa_sval()
        var forcible: Int32 = 0
        let rc: Int32
        if let initial {
            var initValue = luaspoa_sval(type: Int32(LUASPOA_SV_INT), i: initial, d: 0, s: nil, len: 0)
            rc = luaspoa_dict_incr(handle, key, key.utf8.count, &stepValue, &initValue, Self.milliseconds(initialTTL), &out, &forcible)
        } else {
            rc = luaspoa_dict_incr(handle, key, key.utf8.count, &stepValue, nil, 0, &out, &forcible)
        }
        if let failure = Failure(rc) { throw failure }
        return out.i
    }

    /// Seconds left (0: never expires), nil when the key is absent or expired.
    public func ttl(_ key: String) -> Double? {
        var remaining: Int64 = 0
        guard luaspoa_dict_ttl(handle, key, key.utf8.count, &remaining) == LUASPOA_SD_OK else { return nil }
        return Double(remaining) / 1000
    }

    public func delete(_ key: String) { _ = luaspoa_dict_delete(handle, key, key.utf8.count) }

    public func flushAll() { luaspoa_dict_flush_all(handle) }

    static func milliseconds(_ seconds: Double) -> Int64 {
        let ms = Int64((seconds * 1000).rounded())
        return ms == 0 && seconds > 0 ? 1 : ms
    }
}

extension SharedValue {
    init?(_ v: luaspoa_sval) {
        switch Int(v.type) {
        case LUASPOA_SV_BOOL: self = .bool(v.i != 0)
        case LUASPOA_SV_INT: self = .int(v.i)
        case LUASPOA_SV_FLOAT: self = .double(v.d)
        case LUASPOA_SV_STRING:
            self = .string(String(decoding: UnsafeRawBufferPointer(start: v.s, count: v.len), as: UTF8.self))
        default: return nil
        }
    }
}

extension Optional where Wrapped == SharedValue {
    /// Calls `body` with the C form of the value (strings borrowed for the call).
    func withSval<R>(_ body: (UnsafePointer<luaspoa_sval>) -> R) -> R {
        var v = luaspoa_sval()
        switch self {
        case .none: v.type = Int32(LUASPOA_SV_NIL)
        case .bool(let b): v.type = Int32(LUASPOA_SV_BOOL); v.i = b ? 1 : 0
        case .int(let i): v.type = Int32(LUASPOA_SV_INT); v.i = i
        case .double(let d): v.type = Int32(LUASPOA_SV_FLOAT); v.d = d
        case .string(let s):
            var s = s
            return s.withUTF8 { bytes in
                v.type = Int32(LUASPOA_SV_STRING)
                v.s = UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self)
                v.len = bytes.count
                return body(&v)
            }
        }
        return body(&v)
    }
}

/// The clock behind `spoa.now*` and shared-dict TTLs. Tests freeze and move it.
public enum LuaClock {
    /// Freezes the clock at `epochMilliseconds` (monotonic time follows it).
    public static func freeze(atMilliseconds epochMilliseconds: Int64) { luaspoa_clock_set_ms(epochMilliseconds) }
    public static func advance(milliseconds: Int64) { luaspoa_clock_advance_ms(milliseconds) }
    public static func useSystemClock() { luaspoa_clock_real() }
    public static var isFrozen: Bool { luaspoa_clock_is_frozen() != 0 }
    public static var nowMilliseconds: Int64 { luaspoa_clock_now_ms() }
    public static var monotonicMilliseconds: Int64 { luaspoa_clock_mono_ms() }
}
