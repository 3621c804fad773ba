import AsyncHTTPClient
import CLuaSpoa
import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// `spoa.httpclient()` requests (luaspoa_http.c): one `HTTPClient` for the
/// process, with a keep-alive pool per host; each request runs on the event loop
/// of the worker that makes it, so its handler resumes there without a hop.
public enum LuaHTTP {
    /// A request's time limit when the script gives none (HAProxy's httpclient
    /// connect timeout); a handler's deadline usually ends the wait before.
    static let defaultTimeout = TimeAmount.seconds(5)
    /// Bytes of a response body kept in memory at most; a longer one fails.
    public static let maxBodySize = 1 << 20
    /// Connections per host and worker loop: more requests queue for one.
    public static let maxConnectionsPerHost = 16

    private struct Shared {
        var client: HTTPClient?
        var stopped = false
    }
    private static let shared = NIOLockedValueBox(Shared())
    private static let loops = KnownLoops()
    private static func client(for loop: any EventLoop) throws -> HTTPClient {
        loops.add(loop)
        return try shared.withLockedValue { shared in
            if shared.stopped { throw StopError() }
            if let client = shared.client { return client }
            let client = HTTPClient(eventLoopGroupProvider: .shared(loops), configuration: configuration)
            shared.client = client
            return client
        }
    }

    /// The client's configuration; public for the benchmark that runs AsyncHTTPClient alone.
    public static var configuration: HTTPClient.Configuration {
        // HostSlots caps the connections per host and loop; the pool's own
        // limit is per host over all loops, so it must not be the lower one.
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,  // as HAProxy's httpclient: the script sees the 3xx
            timeout: .init(connect: defaultTimeout),
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnectionsPerHost * 256))
        // A refused connection fails the request at once instead of retrying
        // until its timeout: the script decides what a down API means.
        configuration.connectionPool.retryConnectionEstablishment = false
        // No spans: without a tracer the client skips their per-request work.
        configuration.tracing.tracer = nil
        return configuration
    }

    /// Closes the pooled connections; later requests fail. The agent calls it when it stops.
    public static func shutdown() async {
        let client = shared.withLockedValue { shared in
            shared.stopped = true
            defer { shared.client = nil }
            return shared.client
        }
        try? await client?.shutdown()
    }

    private struct StopError: Error, CustomStringConvertible {
        var description: String { "the agent is stopping" }
    }

    /// Starts the request `wait` describes on `loop`; the future completes there.
    /// The request's strings are copied before this returns.
    static func start(_ wait: luaspoa_wait, on loop: any EventLoop) -> (future: EventLoopFuture<LuaWaitResult>, cancel: () -> Void) {
        let request: HTTPClient.Request
        let client: HTTPClient
        do {
            request = try makeRequest(wait)
            client = try self.client(for: loop)
        } catch {
            return (loop.makeSucceededFuture(.failed(describe(error))), {})
        }
        let deadline = NIODeadline.now() + (wait.ms > 0 ? TimeAmount.milliseconds(wait.ms) : defaultTimeout)
        let promise = loop.makePromise(of: LuaWaitResult.self)
        let slots = HostSlots.of(loop)
        let host = "\(request.scheme)://\(request.host):\(request.port)"
        let running = RunningRequest()
        loop.execute {
            if let failure = slots.backoffs.admit(host) {
                promise.succeed(.failed(failure))
                return
            }
            slots.acquire(host) {
                guard !running.cancelled, NIODeadline.now() < deadline else {
                    slots.release(host)
                    slots.backoffs.abandoned(host)
                    promise.succeed(.failed(running.cancelled ? "cancelled" : "timeout"))
                    return
                }
                let task = client.execute(
                    request: request, delegate: ResponseAccumulator(request: request, maxBodySize: maxBodySize),
                    // Preferred, not required: AsyncHTTPClient closes a connection
                    // opened for a required loop as soon as it is idle with no request
                    // of that loop queued in the pool, so under load (requests waiting
                    // in HostSlots, not in the pool) every request opened and closed
                    // one. Connections open on the requesting loop, are leased there
                    // first and stay pooled.
                    eventLoop: .delegate(on: loop), deadline: deadline)
                running.task = task
                task.futureResult.hop(to: loop).whenComplete { result in
                    slots.release(host)
                    switch result {
                    case .success(let response):
                        slots.backoffs.connected(host, failure: nil)
                        promise.succeed(.values(reply(response)))
                    case .failure(let error):
                        let reason = describe(error)
                        if isConnectFailure(error) {
                            slots.backoffs.connected(host, failure: reason)
                        } else if (error as? HTTPClientError) == .cancelled {
                            slots.backoffs.abandoned(host)
                        } else {
                            slots.backoffs.connected(host, failure: nil)  // it answered, if badly
                        }
                        promise.succeed(.failed(reason))
                    }
                }
            }
        }
        return (promise.futureResult, {
            running.cancelled = true
            running.task?.cancel()
        })
    }

    /// args: method, url, body (ptr NULL: none), CA file (ptr NULL: the system's
    /// trust roots), then header name, value pairs.
    private static func makeRequest(_ wait: luaspoa_wait) throws -> HTTPClient.Request {
        func string(_ i: Int) -> String {
            let arg = wait.args[i]
            return String(decoding: UnsafeRawBufferPointer(start: arg.ptr, count: arg.len), as: UTF8.self)
        }
        var headers = HTTPHeaders()
        for i in stride(from: 4, to: Int(wait.nargs) - 1, by: 2) {
            headers.add(name: string(i), value: string(i + 1))
        }
        let body = wait.args[2]
        var tls: TLSConfiguration?
        if wait.args[3].ptr != nil {
            // A private CA (or a self-signed server): its own pool of connections.
            tls = .makeClientConfiguration()
            tls?.trustRoots = .file(string(3))
        }
        return try HTTPClient.Request(
            url: string(1), method: HTTPMethod(rawValue: string(0)), headers: headers,
            body: body.ptr.map { .byteBuffer(ByteBuffer(bytes: UnsafeRawBufferPointer(start: $0, count: body.len))) },
            tlsConfiguration: tls)
    }

    /// { status =, reason =, headers = { [lowercased name] = { [0] = v1, [1] = v2 } }, body = }:
    /// the layout of HAProxy's httpclient, so its scripts read `headers["x"][0]` here too.
    static func reply(_ response: HTTPClient.Response) -> LuaWaitReply {
        var reply = LuaWaitReply()
        reply.map(4)
        reply.string("status")
        reply.int(Int64(response.status.code))
        reply.string("reason")
        reply.string(response.status.reasonPhrase)
        reply.string("headers")
        var names: [String] = []
        var values: [String: [String]] = [:]
        for (name, value) in response.headers {
            let name = name.lowercased()
            if values[name] == nil { names.append(name) }
            values[name, default: []].append(value)
        }
        reply.map(names.count)
        for name in names {
            reply.string(name)
            let list = values[name]!
            reply.map(list.count)
            for (index, value) in list.enumerated() {
                reply.int(Int64(index))
                reply.string(value)
            }
        }
        reply.string("body")
        if let body = response.body {
            reply.bytes(body.readableBytesView)
        } else {
            reply.string("")
        }
        return reply
    }

    /// Whether the host could not be reached (what backs off from it).
    static func isConnectFailure(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError {
            return error == .connectTimeout
        }
        return Upstream.isConnectFailure(error)
    }

    /// A short reason for the script's `nil, err`.
    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout, .connectTimeout, .getConnectionFromPoolTimeout,
                 .tlsHandshakeTimeout:
                return "timeout"
            case .remoteConnectionClosed: return "connection closed"
            case .invalidURL, .emptyHost, .emptyScheme: return "invalid url"
            case .cancelled: return "cancelled"
            default: return "\(error)"
            }
        }
        if error is ResponseAccumulator.ResponseTooBigError { return "response larger than \(maxBodySize) bytes" }
        if error is HTTPParserError { return "protocol error: \(error)" }
        if error is NIOSSLError || error is BoringSSLError { return "TLS failure: \(error)" }
        return Upstream.describe(error)
    }
}

/// A request of a handler; used only on its loop.
private final class RunningRequest: @unchecked Sendable {
    var task: HTTPClient.Task<HTTPClient.Response>?
    var cancelled = false
}

/// Requests in flight per host on one event loop, and those waiting for a slot;
/// and the back-off of the hosts that could not be reached.
/// The cap on connections per host is kept here, per worker loop, so that one
/// worker's burst does not take every connection of the others.
/// Each request in flight holds one connection: they are the `busy` connections
/// of `luaspoa_upstream_connections` (AsyncHTTPClient does not tell how many
/// idle ones its pool keeps). Used only on its loop.
private final class HostSlots: @unchecked Sendable {
    private static let all = NIOLockedValueBox<[ObjectIdentifier: HostSlots]>([:])
    private var active: [String: Int] = [:]
    private var waiting: [String: CircularBuffer<() -> Void>] = [:]
    var backoffs = Backoffs()

    static func of(_ loop: any EventLoop) -> HostSlots {
        all.withLockedValue { all in
            if let slots = all[ObjectIdentifier(loop)] { return slots }
            let slots = HostSlots()
            all[ObjectIdentifier(loop)] = slots
            return slots
        }
    }

    /// Runs `body` once fewer than the cap of requests to `host` are in flight.
    func acquire(_ host: String, _ body: @escaping () -> Void) {
        if active[host, default: 0] < LuaHTTP.maxConnectionsPerHost {
            active[host, default: 0] += 1
            UpstreamConnections.add("http", host, .busy, 1)
            body()
        } else {
            waiting[host, default: []].append(body)
        }
    }

    func release(_ host: String) {
        if let next = waiting[host]?.popFirst() {
            next()  // the slot passes on
        } else {
            active[host, default: 1] -= 1
            UpstreamConnections.add("http", host, .busy, -1)
            if active[host] == 0 { active[host] = nil; waiting[host] = nil }
        }
    }
}

/// The event loops requests ran on so far, as the client's group: AsyncHTTPClient
/// wants a request's loop to be in its client's group, and the workers' loops
/// belong to SpopServer's group, which this library does not see. Not ours to
/// shut down.
private final class KnownLoops: EventLoopGroup, @unchecked Sendable {
    private let lock = NIOLock()
    private var loops: [any EventLoop] = []

    func add(_ loop: any EventLoop) {
        lock.withLock {
            if !loops.contains(where: { $0 === loop }) { loops.append(loop) }
        }
    }

    func next() -> any EventLoop {
        lock.withLock { loops.randomElement() } ?? Upstream.backgroundLoop
    }

    func makeIterator() -> EventLoopIterator {
        EventLoopIterator(lock.withLock { loops })
    }

    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        queue.async { callback(nil) }
    }
}
