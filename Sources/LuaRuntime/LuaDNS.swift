import CAres
import CLuaSpoa
import Foundation
import Glibc
import NIOConcurrencyHelpers
import NIOCore

/// `spoa.dns` lookups (luaspoa_dns.c) with c-ares: one resolver per worker event
/// loop and server list, with its own answer cache (kept for the answers' TTL).
/// c-ares does the queries, retries, TCP fallback and resolv.conf. Its sockets are
/// watched by one thread of the process (`DNSSocketWatcher`), which hands a ready
/// socket to its resolver's loop; its timeouts are a timer of the loop, due at
/// `ares_timeout` while queries are in flight. Nothing blocks the loop, and
/// nothing runs when no query is in flight.
enum LuaDNS {
    /// A lookup's time limit when the script gives none.
    static let defaultTimeout = TimeAmount.milliseconds(2000)
    /// Answers kept per resolver at most.
    static let maxCached = 10_000
    /// Longest time an answer is kept, whatever its TTL.
    static let maxTTL: Int64 = 3600

    private struct Key: LoopKeyed {
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

    /// Ends the resolvers of `loop` (their lookups fail). Call it on `loop`.
    static func close(on loop: any EventLoop) {
        for resolver in resolvers.removeAll(of: loop) { resolver.close() }
    }

    static func describe(_ status: Int32) -> String {
        switch status {
        case ARES_ENOTFOUND: "not found"
        case ARES_ETIMEOUT: "timeout"
        case ARES_ECONNREFUSED: "connection refused"
        case ARES_EREFUSED: "refused by the server"
        case ARES_ESERVFAIL: "server failure"
        case ARES_EFORMERR, ARES_EBADRESP: "protocol error: malformed answer"
        case ARES_EDESTRUCTION, ARES_ECANCELLED: "the agent is stopping"
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
    /// c-ares' next timeout (retries, giving up), while queries are in flight.
    private var timeoutTask: Scheduled<Void>?
    /// The sockets c-ares wants watched: readable, writable.
    private var wanted: [ares_socket_t: (read: Bool, write: Bool)] = [:]

    init(servers: String, loop: any EventLoop) {
        self.loop = loop
        var options = ares_options()
        options.timeout = 1000  // ms per try (ARES_OPT_TIMEOUTMS)
        options.tries = 2
        options.sock_state_cb = { data, fd, read, write in
            Unmanaged<DNSResolver>.fromOpaque(data!).takeUnretainedValue().socketState(fd, read: read != 0, write: write != 0)
        }
        // Unretained: the channel ends (close) before its resolver.
        options.sock_state_cb_data = Unmanaged.passUnretained(self).toOpaque()
        var status = ares_init_options(&channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB)
        if status == ARES_SUCCESS, !servers.isEmpty {
            status = ares_set_servers_ports_csv(channel, servers)
        }
        if status != ARES_SUCCESS {
            setupError = "DNS failure: bad servers \"\(servers)\": " + String(cString: ares_strerror(status))
        }
    }

    /// Ends the channel: c-ares fails its lookups (ARES_EDESTRUCTION) and closes its sockets.
    func close() {
        guard let channel else { return }
        self.channel = nil
        setupError = LuaDNS.describe(ARES_EDESTRUCTION)
        ares_destroy(channel)  // unwatches its sockets (socketState) as it closes them
        timeoutTask?.cancel()
        timeoutTask = nil
        cache.removeAll()
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
        scheduleTimeout()
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
        if inFlight == 0 {
            timeoutTask?.cancel()
            timeoutTask = nil
        }
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

    /// c-ares (inside an ares_* call, so on the loop) wants `fd` watched for
    /// reading or writing, or no longer (closed).
    fileprivate func socketState(_ fd: ares_socket_t, read: Bool, write: Bool) {
        if read || write {
            wanted[fd] = (read, write)
            DNSSocketWatcher.shared.watch(fd, read: read, write: write, for: self)
        } else {
            wanted[fd] = nil
            DNSSocketWatcher.shared.unwatch(fd)
        }
    }

    /// The watcher saw `fd` ready (and stopped watching it): c-ares reads or writes
    /// it, and it is watched again if c-ares still wants it.
    fileprivate func ready(_ fd: ares_socket_t, read: Bool, write: Bool) {
        guard let channel, wanted[fd] != nil else { return }  // closed meanwhile
        ares_process_fd(channel, read ? fd : ARES_SOCKET_BAD, write ? fd : ARES_SOCKET_BAD)
        if let want = wanted[fd] { DNSSocketWatcher.shared.watch(fd, read: want.read, write: want.write, for: self) }
        scheduleTimeout()
    }

    /// Sets the timer to c-ares' next timeout while queries are in flight.
    private func scheduleTimeout() {
        timeoutTask?.cancel()
        timeoutTask = nil
        guard let channel, inFlight > 0 else { return }
        var longest = timeval(tv_sec: 3600, tv_usec: 0)
        var next = timeval()
        guard let due = ares_timeout(channel, &longest, &next) else { return }
        let delay = TimeAmount.seconds(Int64(due.pointee.tv_sec)) + .microseconds(Int64(due.pointee.tv_usec))
        timeoutTask = loop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self, let channel = self.channel else { return }
            ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD)  // retries, timeouts
            self.scheduleTimeout()
        }
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

/// Waits for c-ares' sockets to be ready, for every resolver of the process, on a
/// thread of its own (`luaspoa-dns`, in poll(2); c-ares 1.18 has no event thread,
/// and NIO does not watch a descriptor it does not own). A watch is one-shot: a
/// ready socket is dropped from the set and handed to its resolver's loop, which
/// lets c-ares read it and watches it again; so the thread never spins on a socket
/// the loop has not read yet.
private final class DNSSocketWatcher: @unchecked Sendable {
    static let shared = DNSSocketWatcher()
    private let lock = NIOLock()
    private var sockets: [Int32: (events: Int16, resolver: DNSResolver)] = [:]
    /// Written to wake the thread when the set changes.
    private var wake: [Int32] = [-1, -1]

    private init() {
        if pipe(&wake) == 0 {
            for fd in wake { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        }
        let thread = Thread { [self] in run() }
        thread.name = "luaspoa-dns"
        thread.start()
    }

    func watch(_ fd: Int32, read: Bool, write: Bool, for resolver: DNSResolver) {
        let events = Int16((read ? POLLIN : 0) | (write ? POLLOUT : 0))
        lock.withLock { sockets[fd] = (events, resolver) }
        signal()
    }

    func unwatch(_ fd: Int32) {
        lock.withLock { sockets[fd] = nil }
        signal()
    }

    private func signal() {
        var byte: UInt8 = 1
        _ = Glibc.write(wake[1], &byte, 1)  // a full pipe already wakes it
    }

    private func run() {
        var drain = [UInt8](repeating: 0, count: 64)
        while true {
            var fds = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)]
            lock.withLock {
                for (fd, socket) in sockets { fds.append(pollfd(fd: fd, events: socket.events, revents: 0)) }
            }
            guard poll(&fds, nfds_t(fds.count), -1) > 0 else { continue }
            if fds[0].revents != 0 { while Glibc.read(wake[0], &drain, drain.count) > 0 {} }
            for ready in fds.dropFirst() where ready.revents != 0 {
                guard let socket = lock.withLock({ sockets.removeValue(forKey: ready.fd) }) else { continue }
                let read = ready.revents & Int16(POLLIN | POLLERR | POLLHUP | POLLNVAL) != 0
                let write = ready.revents & Int16(POLLOUT) != 0
                let resolver = socket.resolver
                resolver.loop.execute { resolver.ready(ready.fd, read: read, write: write) }
            }
        }
    }
}
