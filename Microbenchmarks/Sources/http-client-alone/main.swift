// http-client-alone URL SECONDS LOOPS WARMUP -- AsyncHTTPClient by itself, as
// `spoa.httpclient` uses it: LuaHTTP's configuration, one pool for LOOPS event
// loops (the agent's workers), each request on its loop with a deadline and its
// body accumulated. Each loop runs LuaHTTP.maxConnectionsPerHost chains of
// requests, one after another, so as many connections are busy as the agent keeps
// per worker. benchmarks/run.sh runs it beside luaspoa and wrk: the client's own
// CPU per request is the floor of luaspoa's HTTP path.
//
// Prints "RESULT requests_per_s=N cpu_us_per_request=N errors=N" for the measured
// window: user and system time of this process over the requests completed in it.
import AsyncHTTPClient
import Foundation
import LuaRuntime
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

let arguments = CommandLine.arguments
guard arguments.count == 5, let seconds = UInt32(arguments[2]), let loops = Int(arguments[3]),
      let warmup = UInt32(arguments[4]) else {
    FileHandle.standardError.write("usage: http-client-alone URL SECONDS LOOPS WARMUP\n".data(using: .utf8)!)
    exit(2)
}
let url = arguments[1]

struct Counts {
    var measuring = false
    var stopped = false
    var requests = 0
    var errors = 0
}
let counts = NIOLockedValueBox(Counts())
let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
let client = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: LuaHTTP.configuration)

/// One request on `loop`, then the next once it is answered.
@Sendable func chain(on loop: any EventLoop) {
    let request = try! HTTPClient.Request(url: url)
    client.execute(
        request: request, delegate: ResponseAccumulator(request: request, maxBodySize: LuaHTTP.maxBodySize),
        eventLoop: .delegate(on: loop), deadline: .now() + .seconds(2)
    ).futureResult.hop(to: loop).whenComplete { result in
        let stopped = counts.withLockedValue { counts in
            if counts.measuring {
                counts.requests += 1
                if case .failure = result { counts.errors += 1 }
            }
            return counts.stopped
        }
        if !stopped { chain(on: loop) }
    }
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    return user + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

for loop in group.makeIterator() {
    for _ in 0..<LuaHTTP.maxConnectionsPerHost { loop.execute { chain(on: loop) } }
}
sleep(warmup)
let cpuBefore = cpuSeconds()
counts.withLockedValue { $0.measuring = true }
sleep(seconds)
let final = counts.withLockedValue { counts in
    counts.measuring = false
    counts.stopped = true
    return counts
}
let cpu = cpuSeconds() - cpuBefore
print(String(format: "RESULT requests_per_s=%.0f cpu_us_per_request=%.1f errors=%d",
             Double(final.requests) / Double(seconds), final.requests > 0 ? cpu / Double(final.requests) * 1e6 : 0, final.errors))
sleep(1)  // the chains in flight end
try? client.syncShutdown()
