import CAres
import CLuaSpoa
import Glibc
import NIOConcurrencyHelpers
import NIOCore

/// `spoa.dns` lookups (luaspoa_dns.c) with c-ares: one resolver per worker event
/// loop and server list, with its own answer cache (kept for the answers' TTL).
/// c-ares does the queries, retries, TCP fallback and resolv.conf; its sockets
/// are polled (poll(2), zero timeout) from the loop every millisecond while
/// queries are in flight, so nothing blocks the loop and nothing runs when idle.
enum LuaDNS {
    /// A lookup's time limit when the script gives none.
    static let defaultTimeout = TimeAmount.milliseconds(2000)
    /// Answers kept per resolver at most.
    static let maxCached = 10_000
    /// Longest time an answer is kept, whatever its TTL.
    static let maxTTL: Int64 = 3600

    private struct Key: Hashable {
        let loop: ObjectIdentifier
        let servers: String
    }

    private static let resolvers = NIOLockedValueBox<[Key: DNSResolver]>([:])
    private static let library: Int32 = ares_library_init(ARES_LIB_INIT_ALL)

    /// args: name, type ("A", "AAAA", "PTR", "TXT"), servers ("host:port,..."; empty: resolv.conf).
    static func start(_ wait: luaspoa_wait, on loop: any EventLoop) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        func string(_ i: Int) -> String {
            String(decoding: UnsafeRawBufferPointer(start: wait.args[i].ptr, count: wait.args[i].len), as: UTF8.self)
        }
        let name = string(0), type = string(1), servers = string(2)
        let timeout = wait.ms > 0 ? TimeAmount.milliseconds(wait.ms) : defaultTimeout
        guard library == ARES_SUCCESS else { return (loop.makeSucceededFuture(.failed("c-ares did not initialize")), {}) }
        let resolver = resolvers.withLockedValue { resolvers in
            let key = Key(loop: ObjectIdentifier(loop), servers: servers)
            if let resolver = resolvers[key] { return resolver }
            let resolver = DNSResolver(servers: servers, loop: loop)
            resolvers[key] = resolver
            return resolver
        }
        if loop.inEventLoop { return resolver.resolve(name, type: type, timeout: timeout) }
        return (loop.flatSubmit { resolver.resolve(name, type: type, timeout: timeout).future }, {})
    }

    static func describe(_ status: Int32) -> String {
        switch status {
        case ARES_ENOTFOUND: "not found"
        case ARES_ETIMEOUT: "timeout"
        case ARES_ECONNREFUSED: "connection refused"
        case ARES_EREFUSED: "refused by the server"
        case ARES_ESERVFAIL: "server failure"
        case ARES_EFORMERR, ARES_EBADRESP: "protocol error: malformed answer"
        default: "DNS failure: " + String(cString: ares_strerror(status))
        }
    }
}

/// One c-ares channel and its cache. Used only on `loop`.
private final class DNSResolver: @unchecked Sendable {
    final class Query {
        let resolver: DNSResolver
        let key: String
        let type: String
        let promise: EventLoopPromise<LuaWaitResult>
        var timer: Scheduled<Void>?
        var done = false
        init(resolver: DNSResolver, key: String, type: String, promise: EventLoopPromise<LuaWaitResult>) {
            self.resolver = resolver
            self.key = key
            self.type = type
            self.promise = promise
        }
    }

    let loop: any EventLoop
    private var channel: ares_channel?
    private var setupError: String?
    private var cache: [String: (expires: NIODeadline, result: LuaWaitResult)] = [:]
    private var inFlight = 0
    private var pumping = false

    init(servers: String, loop: any EventLoop) {
        self.loop = loop
        var options = ares_options()
        options.timeout = 1000  // ms per try (ARES_OPT_TIMEOUTMS)
        options.tries = 2
        var status = ares_init_options(&channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)
        if status == ARES_SUCCESS, !servers.isEmpty {
            status = ares_set_servers_ports_csv(channel, servers)
        }
        if status != ARES_SUCCESS {
            setupError = "DNS failure: bad servers \"\(servers)\": " + String(cString: ares_strerror(status))
        }
    }

    func resolve(_ name: String, type: String, timeout: TimeAmount) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        if let setupError { return (loop.makeSucceededFuture(.failed(setupError)), {}) }
        let key = type + " " + name.lowercased()
        if let cached = cache[key] {
            if cached.expires > .now() { return (loop.makeSucceededFuture(cached.result), {}) }
            cache[key] = nil
        }
        let query = Query(resolver: self, key: key, type: type, promise: loop.makePromise())
        query.timer = loop.assumeIsolated().scheduleTask(in: timeout) { [weak self] in self?.finish(query, .failed("timeout")) }
        let qtype: Int32 = switch type {
        case "AAAA": 28
        case "PTR": 12
        case "TXT": 16
        default: 1
        }
        inFlight += 1
        // The query holds itself (retained) until c-ares calls back, which it
        // always does: with the answer, or an error at its own timeout.
        ares_query(channel, name, 1 /* C_IN */, qtype, { arg, status, _, answer, length in
            let query = Unmanaged<Query>.fromOpaque(arg!).takeRetainedValue()
            query.resolver.answered(query, status: status, answer: answer, length: Int(length))
        }, Unmanaged.passRetained(query).toOpaque())
        pump()
        return (query.promise.futureResult, { [weak self] in self?.finish(query, .failed("cancelled")) })
    }

    private func finish(_ query: Query, _ result: LuaWaitResult) {
        guard !query.done else { return }
        query.done = true
        query.timer?.cancel()
        query.promise.succeed(result)
    }

    private func answered(_ query: Query, status: Int32, answer: UnsafeMutablePointer<UInt8>?, length: Int) {
        inFlight -= 1
        let result: LuaWaitResult
        if status == ARES_ENODATA {
            var empty = LuaWaitReply()
            empty.array(0)
            result = .values(empty)
        } else if status != ARES_SUCCESS {
            result = .failed(LuaDNS.describe(status))
        } else if let answer {
            result = Self.parse(query.type, answer, Int32(length))
            if case .values = result, let ttl = Self.minimumTTL(answer, length), ttl > 0 {
                if cache.count >= LuaDNS.maxCached {
                    let now = NIODeadline.now()
                    cache = cache.filter { $0.value.expires > now }
                    if cache.count >= LuaDNS.maxCached { cache.removeAll() }
                }
                cache[query.key] = (.now() + .seconds(min(ttl, LuaDNS.maxTTL)), result)
            }
        } else {
            result = .failed("protocol error: empty answer")
        }
        finish(query, result)
    }

    /// Lets c-ares read and write its ready sockets and handle its timeouts, every
    /// millisecond while queries are in flight.
    private func pump() {
        guard !pumping, inFlight > 0 else { return }
        pumping = true
        loop.assumeIsolated().scheduleTask(in: .milliseconds(1)) { [self] in
            pumping = false
            process()
            pump()
        }
    }

    private func process() {
        var sockets = [ares_socket_t](repeating: ARES_SOCKET_BAD, count: Int(ARES_GETSOCK_MAXNUM))
        let bits = ares_getsock(channel, &sockets, ARES_GETSOCK_MAXNUM)
        var fds: [pollfd] = []
        for i in 0..<Int(ARES_GETSOCK_MAXNUM) {
            let readable = bits & (1 << i) != 0
            let writable = bits & (1 << (i + Int(ARES_GETSOCK_MAXNUM))) != 0
            guard readable || writable else { continue }
            fds.append(pollfd(fd: sockets[i], events: Int16((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)), revents: 0))
        }
        if !fds.isEmpty, poll(&fds, nfds_t(fds.count), 0) > 0 {
            for fd in fds where fd.revents != 0 {
                let read = fd.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 ? fd.fd : ARES_SOCKET_BAD
                let write = fd.revents & Int16(POLLOUT) != 0 ? fd.fd : ARES_SOCKET_BAD
                ares_process_fd(channel, read, write)
            }
        }
        ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD)  // timeouts and retries
    }

    /// The answer's records as a list: addresses (A, AAAA), names (PTR), texts (TXT).
    private static func parse(_ type: String, _ answer: UnsafeMutablePointer<UInt8>, _ length: Int32) -> LuaWaitResult {
        var reply = LuaWaitReply()
        var status: Int32
        switch type {
        case "A":
            var records = [ares_addrttl](repeating: ares_addrttl(), count: 64)
            var count: Int32 = 64
            status = ares_parse_a_reply(answer, length, nil, &records, &count)
            reply.array(Int(count))
            for record in records.prefix(Int(count)) {
                withUnsafeBytes(of: record.ipaddr) { reply.address($0) }
            }
        case "AAAA":
            var records = [ares_addr6ttl](repeating: ares_addr6ttl(), count: 64)
            var count: Int32 = 64
            status = ares_parse_aaaa_reply(answer, length, nil, &records, &count)
            reply.array(Int(count))
            for record in records.prefix(Int(count)) {
                withUnsafeBytes(of: record.ip6addr) { reply.address($0) }
            }
        case "PTR":
            var host: UnsafeMutablePointer<hostent>?
            var dummy: UInt32 = 0
            status = ares_parse_ptr_reply(answer, length, &dummy, 4, AF_INET, &host)
            var names: [String] = []
            if status == ARES_SUCCESS, let host {
                // c-ares lists every PTR record among the aliases.
                var alias = host.pointee.h_aliases
                while let name = alias?.pointee {
                    names.append(String(cString: name))
                    alias = alias! + 1
                }
                if names.isEmpty, let name = host.pointee.h_name { names.append(String(cString: name)) }
                ares_free_hostent(host)
            }
            reply.array(names.count)
            for name in names { reply.string(name) }
        default:  // TXT: one string per record, its chunks joined
            var records: UnsafeMutablePointer<ares_txt_ext>?
            status = ares_parse_txt_reply_ext(answer, length, &records)
            var texts: [[UInt8]] = []
            var record = records
            while let r = record {
                let chunk = UnsafeBufferPointer(start: r.pointee.txt, count: r.pointee.length)
                if r.pointee.record_start != 0 || texts.isEmpty { texts.append([]) }
                texts[texts.count - 1].append(contentsOf: chunk)
                record = r.pointee.next
            }
            if let records { ares_free_data(records) }
            reply.array(texts.count)
            for text in texts { reply.bytes(text) }
        }
        if status == ARES_ENODATA {
            var empty = LuaWaitReply()
            empty.array(0)
            return .values(empty)
        }
        return status == ARES_SUCCESS ? .values(reply) : .failed(LuaDNS.describe(status))
    }

    /// The smallest TTL of the answer section (seconds), nil if malformed.
    private static func minimumTTL(_ answer: UnsafeMutablePointer<UInt8>, _ length: Int) -> Int64? {
        guard length >= 12 else { return nil }
        func u16(_ at: Int) -> Int { Int(answer[at]) << 8 | Int(answer[at + 1]) }
        /// The offset after the name at `at`.
        func skipName(_ at: Int) -> Int? {
            var name: UnsafeMutablePointer<CChar>?
            var used = 0
            guard at < length, ares_expand_name(answer + at, answer, Int32(length), &name, &used) == ARES_SUCCESS else { return nil }
            ares_free_string(name)
            return at + used
        }
        var at = 12
        for _ in 0..<u16(4) {
            guard let next = skipName(at) else { return nil }
            at = next + 4
        }
        var ttl: Int64?
        for _ in 0..<u16(6) {
            guard let next = skipName(at), next + 10 <= length else { return nil }
            let value = Int64(u16(next + 4)) << 16 | Int64(u16(next + 6))
            ttl = min(ttl ?? value, value)
            at = next + 10 + u16(next + 8)
        }
        return ttl
    }
}
