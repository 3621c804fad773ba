import Logging
import NIOCore
import SpopBench
import SpopEngine
import XCTest

/// `luaspoa bench` against a real SpopServer over real sockets.
final class BenchRunnerTests: XCTestCase {
    private func withAgent(
        pipelining: Bool = true, setting variable: String = "ip_score",
        _ body: (Int) async throws -> Void
    ) async throws {
        let server = try SpopServer(
            configuration: .init(host: "127.0.0.1", port: 0, workers: 1, capabilities: AgentCapabilities(pipelining: pipelining)),
            logger: Logger(label: "test"),
            makeWorker: { _ in
                ClosureWorker { notify, _, ack in
                    for _ in notify.messages { try? ack.setVar(.session, variable, .uint32(50)) }
                }
            }
        )
        let channel = try await server.bind()
        do { try await body(channel.localAddress!.port!) } catch {
            try await channel.close()
            try await server.shutdown()
            throw error
        }
        try await channel.close()
        try await server.shutdown()
    }

    private func run(port: Int, connections: Int = 2, inFlight: Int = 8, message: BenchMessage = .ipv4(), expect: String = "sess.ip_score")
        async throws -> BenchResult
    {
        try await BenchRunner(configuration: BenchConfiguration(
            port: port, connections: connections, inFlight: inFlight, duration: 0.3, warmup: 0.1, threads: 1,
            message: message, expected: ExpectedVariable(expect))).run()
    }

    func testEveryAckIsCountedAndTimed() async throws {
        try await withAgent { port in
            for message in [BenchMessage.ipv4(), .request()] {
                let result = try await run(port: port, message: message)
                XCTAssertEqual(result.sample.errorCount, 0, result.report)
                XCTAssertGreaterThan(result.sample.acks, 0)
                XCTAssertEqual(Int(result.sample.histogram.totalCount), result.sample.acks)
                XCTAssertTrue(result.pipelining)
                XCTAssertTrue(result.resultLine.hasPrefix("RESULT msgs_per_s="))
            }
        }
    }

    func testAcksWithoutTheExpectedVariableAreErrors() async throws {
        try await withAgent(setting: "other") { port in
            let result = try await run(port: port)
            XCTAssertGreaterThan(result.sample.errors[BenchError.allCases.firstIndex(of: .missingVariable)!], 0)
            XCTAssertEqual(result.sample.acks, 0, "an ACK without the variable is not a success")
            XCTAssertTrue(result.report.contains("ACK without the expected variable"), result.report)
        }
    }

    func testWithoutPipeliningOneFrameIsInFlight() async throws {
        try await withAgent(pipelining: false) { port in
            let result = try await run(port: port, connections: 1, inFlight: 64)
            XCTAssertFalse(result.pipelining)
            XCTAssertEqual(result.sample.errorCount, 0, result.report)
            XCTAssertTrue(result.report.contains("1 connection(s) x 1 in flight"), result.report)
        }
    }

    func testAnAddressWithoutAgentFailsClearly() async throws {
        do {  // nothing listens on port 1 of the loopback
            _ = try await BenchRunner(configuration: BenchConfiguration(port: 1, duration: 0.1, warmup: 0)).run()
            XCTFail("connected to port 1")
        } catch let error as BenchRunError {
            XCTAssertTrue("\(error)".contains("cannot connect: 127.0.0.1:1"), "\(error)")
        }
    }
}
