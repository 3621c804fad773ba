// Raw SPOP over TCP against a real luaspoa process (no HAProxy): the golden
// frames of docs/spop-protocol.md §11, every error status the agent must send, and
// many/garbage connections.

import Foundation
import SpopTestFrames
import XCTest

final class ProbeTests: CombinedAgentTestCase {
    override var agentName: String { "probe-agent" }

    // MARK: helpers

    func connect() throws -> TCPConn { try TCPConn(port: port) }

    func connected() throws -> TCPConn {
        let c = try connect()
        _ = try c.handshake()
        return c
    }

    /// Expect AGENT-DISCONNECT with `status`, then the close; then check a fresh connection works.
    func assertDisconnect(_ c: TCPConn, status: UInt64, _ what: String,
                          file: StaticString = #filePath, line: UInt = #line) {
        do {
            let f = try c.expectFrame(timeout: 5, "AGENT-DISCONNECT")
            XCTAssertEqual(f.type, SpopType.agentDisconnect.rawValue, "\(what): expected AGENT-DISCONNECT, got \(f)", file: file, line: line)
            XCTAssertEqual(f.flags, SpopFlags.fin, "\(what): flags", file: file, line: line)
            XCTAssertEqual(f.streamID, 0, file: file, line: line)
            XCTAssertEqual(f.frameID, 0, file: file, line: line)
            let kv = try f.kv()
            XCTAssertEqual(kv["status-code"]?.intValue, Int64(status), "\(what): status-code in \(kv)", file: file, line: line)
            if case .uint32 = kv["status-code"] {} else {
                XCTFail("\(what): status-code should be UINT32, got \(String(describing: kv["status-code"]))", file: file, line: line)
            }
            XCTAssertNotNil(kv["message"]?.stringValue, "\(what): message STRING missing in \(kv)", file: file, line: line)
            if let m = kv["message"]?.stringValue { XCTAssertLessThanOrEqual(m.utf8.count, 255, file: file, line: line) }
            let rest = try c.waitForClose(timeout: 5)
            XCTAssertTrue(rest.isEmpty, "\(what): bytes after AGENT-DISCONNECT: \(hexString(rest))", file: file, line: line)
        } catch {
            XCTFail("\(what): \(error)\nagent log:\n\(agent.logTail())", file: file, line: line)
        }
        assertAgentServes(port, agent, file: file, line: line)
    }

    func ack(_ c: TCPConn, file: StaticString = #filePath, line: UInt = #line) throws -> SpopFrame {
        let f = try c.expectFrame(timeout: 5, "ACK")
        XCTAssertEqual(f.type, SpopType.ack.rawValue, "expected ACK, got \(f)", file: file, line: line)
        XCTAssertEqual(f.flags, SpopFlags.fin, "ACK flags", file: file, line: line)
        return f
    }

    // MARK: handshake

    func testHelloGoldenFrame() throws {
        let c = try connect()
        c.send(hexBytes(Golden.haproxyHello))
        let f = try c.expectFrame(timeout: 5, "AGENT-HELLO")
        XCTAssertEqual(f.type, SpopType.agentHello.rawValue, "\(f)")
        XCTAssertEqual(f.flags, 0x0000_0001, "AGENT-HELLO flags must be exactly FIN")
        XCTAssertEqual(f.streamID, 0)
        XCTAssertEqual(f.frameID, 0)
        let kvList = try f.kvList()
        let kv = try f.kv()
        XCTAssertEqual(kvList.count, Set(kvList.map { $0.0 }).count, "duplicate keys: \(kvList)")
        XCTAssertEqual(kv["version"], .str("2.0"))
        XCTAssertEqual(kv["max-frame-size"], .uint32(16380))
        let caps = kv["capabilities"]?.stringValue?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
        XCTAssertEqual(Set(caps), ["pipelining", "fragmentation"], "capabilities \(String(describing: kv["capabilities"]))")
        XCTAssertFalse(caps.contains("async"))
    }

    func testHelloNegotiatesSmallerOfferedMaxFrameSize() throws {
        for offered: UInt64 in [256, 1000, 4096] {
            let c = try connect()
            let f = try c.handshake(haproxyHello(maxFrameSize: offered))
            XCTAssertEqual(try f.kv()["max-frame-size"], .uint32(offered))
        }
        // A bigger offer is capped at the agent's own default.
        let c = try connect()
        XCTAssertEqual(try c.handshake(haproxyHello(maxFrameSize: 65532)).kv()["max-frame-size"], .uint32(16380))
    }

    func testMaxFrameSizeOption() throws {
        let (a2, p2) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "agent-mfs",
                                      extraArgs: ["--max-frame-size", "4096"])
        let c = try TCPConn(port: p2)
        XCTAssertEqual(try c.handshake(hexBytes(Golden.haproxyHello)).kv()["max-frame-size"], .uint32(4096))
        let c2 = try TCPConn(port: p2)
        XCTAssertEqual(try c2.handshake(haproxyHello(maxFrameSize: 1024)).kv()["max-frame-size"], .uint32(1024))
        // The negotiated limit applies: a frame of 4097 bytes is too big.
        c.send(be32(4097))
        let f = try c.expectFrame(timeout: 5, "AGENT-DISCONNECT")
        XCTAssertEqual(f.type, SpopType.agentDisconnect.rawValue, "\(f)")
        XCTAssertEqual(try f.kv()["status-code"]?.intValue, 3)
        assertAgentServes(p2, a2)
    }

    func testHealthCheckGetsHelloThenClose() throws {
        let c = try connect()
        c.send(hexBytes(Golden.healthCheckHello))
        let f = try c.expectFrame(timeout: 5, "AGENT-HELLO")
        XCTAssertEqual(f.type, SpopType.agentHello.rawValue, "\(f)")
        XCTAssertEqual(f.flags, 0x0000_0001)
        let kv = try f.kv()
        XCTAssertEqual(kv["version"], .str("2.0"))
        XCTAssertEqual(kv["max-frame-size"], .uint32(16380))
        XCTAssertNotNil(kv["capabilities"]?.stringValue)
        let rest = try c.waitForClose(timeout: 5)
        XCTAssertTrue(rest.isEmpty, "bytes after the health-check AGENT-HELLO: \(hexString(rest))")
        assertAgentServes(port, agent)
    }

    // MARK: NOTIFY / ACK

    func testNotifyGoldenFrameShippedScript() throws {
        let c = try connected()
        c.send(hexBytes(Golden.notifyCheckClientIP))
        let f = try ack(c)
        XCTAssertEqual(f.streamID, 300)
        XCTAssertEqual(f.frameID, 1)
        let acts = try f.actions()
        let m = actionMap(acts)
        // ip_reputation.lua: 192.0.2.10 is neither loopback nor private -> fnv1a32 % 100.
        XCTAssertEqual(m["sess.ip_score"], .uint32(UInt64(fnv1a32("192.0.2.10") % 100)), "\(acts)")
        XCTAssertEqual(m["sess.ip_score"], .uint32(28))
        XCTAssertEqual(m["txn.ip_family"], .str("ipv4"))

        // The same from HAProxy 3.1+ (sid 5 / fid 1).
        c.send(hexBytes(Golden.notifyCheckClientIPv31))
        let f2 = try ack(c)
        XCTAssertEqual(f2.streamID, 5)
        XCTAssertEqual(f2.frameID, 1)
        XCTAssertEqual(actionMap(try f2.actions())["sess.ip_score"], .uint32(28))
    }

    func testShippedScriptScores() throws {
        let c = try connected()
        let cases: [(SpopValue, UInt64, String)] = [
            (.ipv4([127, 0, 0, 1]), 100, "ipv4"),
            (.ipv4([127, 9, 8, 7]), 100, "ipv4"),
            (.ipv4([10, 1, 2, 3]), 90, "ipv4"),
            (.ipv4([172, 16, 0, 1]), 90, "ipv4"),
            (.ipv4([172, 31, 255, 1]), 90, "ipv4"),
            (.ipv4([192, 168, 1, 1]), 90, "ipv4"),
            (.ipv4([172, 32, 0, 1]), UInt64(fnv1a32("172.32.0.1") % 100), "ipv4"),
            (.ipv4([8, 8, 8, 8]), UInt64(fnv1a32("8.8.8.8") % 100), "ipv4"),
            (.ipv6([UInt8](repeating: 0, count: 15) + [1]), 100, "ipv6"),
            (.ipv6([0xfd, 0x12, 0x34, 0x56] + [UInt8](repeating: 0, count: 11) + [1]), 90, "ipv6"),
            (.ipv6([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]), UInt64(fnv1a32("2001:db8::1") % 100), "ipv6"),
            // Listed in scripts/ip_reputation.lst (longest prefix wins, "!" falls back to the hash).
            (.ipv4([198, 51, 100, 7]), 3, "ipv4"),
            (.ipv4([198, 51, 100, 70]), 60, "ipv4"),
            (.ipv4([203, 0, 113, 9]), 15, "ipv4"),
            (.ipv4([203, 0, 113, 200]), UInt64(fnv1a32("203.0.113.200") % 100), "ipv4"),
            (.ipv6([0x20, 0x01, 0x0d, 0xb8, 0x0b, 0xad] + [UInt8](repeating: 0, count: 9) + [1]), 1, "ipv6"),
            (.ipv6([UInt8](repeating: 0, count: 10) + [0xff, 0xff, 198, 51, 100, 7]), 3, "ipv6"),
        ]
        for (i, (ip, score, fam)) in cases.enumerated() {
            // Named (args ip=src) and unnamed (args src) forms.
            for name in ["ip", ""] {
                c.send(notifyFrame(streamID: UInt64(i), frameID: name.isEmpty ? 2 : 1,
                                   [SpopMessage(name: "check-client-ip", args: [(name, ip)])]))
                let f = try ack(c)
                XCTAssertEqual(f.streamID, UInt64(i))
                let m = actionMap(try f.actions())
                XCTAssertEqual(m["sess.ip_score"], .uint32(score), "\(ip) name=\(name.debugDescription)")
                XCTAssertEqual(m["txn.ip_family"], .str(fam), "\(ip)")
            }
        }
    }

    func testNotifyEveryArgumentFormGolden() throws {
        let c = try connected()
        c.send(hexBytes(Golden.notifyEveryArgumentForm))
        let f = try ack(c)
        XCTAssertEqual(f.streamID, 7)
        XCTAssertEqual(f.frameID, 1)
        let m = actionMap(try f.actions())
        XCTAssertEqual(m["txn.name"], .str("demo"))
        XCTAssertEqual(m["txn.nargs"]??.intValue, 5)
        XCTAssertEqual(m["txn.a1_t"], .str("null"))
        XCTAssertFalse(m.keys.contains("txn.a1_v"), "a NULL argument has no value")
        XCTAssertEqual(m["txn.a2_t"], .str("boolean"))
        XCTAssertEqual(m["txn.a2_v"], .bool(true))
        XCTAssertEqual(m["txn.a3_t"], .str("int64"))
        XCTAssertEqual(m["txn.a3_v"], .int64(-2))
        XCTAssertEqual(m["txn.a4_t"], .str("ipv6"))
        XCTAssertEqual(m["txn.a4_v"], .str("2001:db8::1"))
        XCTAssertEqual(m["txn.a5_t"], .str("string"))
        XCTAssertEqual(m["txn.a5_v"], .str(""))
        XCTAssertEqual(m["txn.a5_len"]??.intValue, 0)
        // by name
        XCTAssertEqual(m["txn.named_b"], .str("boolean"))
        XCTAssertEqual(m["txn.named_n"], .str("int64"))
        XCTAssertEqual(m["txn.named_v6"], .str("ipv6"))
        XCTAssertEqual(m["txn.named_e"], .str("string"))
    }

    func testAllTenIncomingTypes() throws {
        let c = try connected()
        let v6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [0x42]
        c.send(notifyFrame(streamID: 1, frameID: 1, [SpopMessage(name: "types", args: [
            ("n", .null), ("b", .bool(false)), ("i32", .int32(-7)), ("u32", .uint32(4_294_967_295)),
            ("i64", .int64(Int64.min)), ("u64", .uint64(UInt64.max)), ("v4", .ipv4([192, 0, 2, 1])),
            ("v6", .ipv6(v6)), ("s", .str("héllo")), ("bin", .binary([0x00, 0x41, 0x42, 0x00])),
        ])]))
        let f = try ack(c)
        let m = actionMap(try f.actions())
        let expectTypes = ["null", "boolean", "int32", "uint32", "int64", "uint64", "ipv4", "ipv6", "string", "binary"]
        for (i, t) in expectTypes.enumerated() {
            XCTAssertEqual(m["txn.a\(i + 1)_t"], .str(t), "type of argument \(i + 1)")
        }
        XCTAssertEqual(m["txn.nargs"]??.intValue, 10)
        XCTAssertFalse(m.keys.contains("txn.a1_v"))
        XCTAssertEqual(m["txn.a2_v"], .bool(false))
        XCTAssertEqual(m["txn.a3_v"], .int64(-7))
        XCTAssertEqual(m["txn.a4_v"], .int64(4_294_967_295))
        XCTAssertEqual(m["txn.a5_v"], .int64(Int64.min))
        XCTAssertEqual(m["txn.a6_v"], .int64(-1), "UINT64 2^64-1 reads as the Lua integer -1")
        XCTAssertEqual(m["txn.a7_v"], .str("192.0.2.1"))
        XCTAssertEqual(m["txn.a8_v"], .str("2001:db8::42"))
        XCTAssertEqual(m["txn.a9_v"], .str("héllo"))
        XCTAssertEqual(m["txn.a9_len"]??.intValue, 6)
        XCTAssertEqual(m["txn.a10_v"], .str("00414200"))
        XCTAssertEqual(m["txn.a10_len"]??.intValue, 4)
        XCTAssertEqual(m["txn.named_u64"], .str("uint64"))
        XCTAssertFalse(m.keys.contains("txn.named_n"), "a NULL argument is nil in msg.args")
    }

    func testEveryOutgoingType() throws {
        let c = try connected()
        c.send(notifyFrame(streamID: 9, frameID: 3, [SpopMessage(name: "emit", args: [("ip", .ipv4([198, 51, 100, 7]))])]))
        let f = try ack(c)
        XCTAssertEqual(f.streamID, 9)
        XCTAssertEqual(f.frameID, 3)
        let acts = try f.actions()
        let m = actionMap(acts)
        XCTAssertEqual(m["txn.o_i32"], .int32(-1))
        XCTAssertEqual(m["txn.o_u32"], .uint32(4_294_967_295))
        XCTAssertEqual(m["txn.o_i64"], .int64(Int64.min))
        XCTAssertEqual(m["txn.o_u64"], .uint64((1 << 62) + 1))
        XCTAssertEqual(m["txn.o_bool"], .bool(true))
        XCTAssertEqual(m["txn.o_boolf"], .bool(false))
        XCTAssertEqual(m["txn.o_str"], .str("hello world"))
        XCTAssertEqual(m["txn.o_bin"], .binary([0x41, 0x00, 0x42]))
        XCTAssertEqual(m["txn.o_v4"], .ipv4([192, 0, 2, 1]))
        XCTAssertEqual(m["txn.o_v6"], .ipv6([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2]))
        XCTAssertEqual(m["txn.o_null"], .some(.null), "spoa.null is a SET-VAR with a NULL value")
        XCTAssertEqual(m["txn.i_int"], .int64(42))
        XCTAssertEqual(m["txn.i_neg"], .int64(-42))
        XCTAssertEqual(m["txn.i_bool"], .bool(true))
        XCTAssertEqual(m["txn.i_str"], .str("text"))
        XCTAssertEqual(m["txn.i_addr"], .ipv4([198, 51, 100, 7]))
        XCTAssertEqual(m["proc.s_proc"], .int64(0))
        XCTAssertEqual(m["sess.s_sess"], .int64(1))
        XCTAssertEqual(m["req.s_req"], .int64(3))
        XCTAssertEqual(m["res.s_res"], .int64(4))
        // unset_var and spoa.unset are UNSET-VAR actions.
        XCTAssertTrue(acts.contains { $0.kind == .unset && $0.fullName == "txn.gone" }, "\(acts)")
        XCTAssertTrue(acts.contains { $0.kind == .unset && $0.fullName == "txn.r_unset" }, "\(acts)")
        // Calls first in call order, then the returned table in sorted key order.
        let names = acts.map(\.fullName)
        XCTAssertEqual(Array(names.suffix(3)), ["txn.r_a", "txn.r_b", "txn.r_unset"], "\(names)")
        XCTAssertEqual(names.first, "txn.o_i32")

        // Exact wire bytes of the sign-extended INT32 -1 (§3.3): 02 + 10-byte varint.
        let needle = rawStr("o_i32") + hexBytes("02 ff f0 fe fe fe fe fe fe fe 0e")
        XCTAssertTrue(hexString(f.payload).contains(hexString(needle)), "INT32 -1 not sign-extended: \(hexString(f.payload))")
    }

    func testPipelinedNotifiesOnOneConnection() throws {
        let c = try connected()
        var batch: [UInt8] = []
        let n = 200
        for i in 0..<n {
            // 2.6-style ids (including stream-id 0) and large varints.
            batch += notifyFrame(streamID: UInt64(i) * 1_000_003, frameID: UInt64(i % 3 + 1),
                                 [SpopMessage(name: "check-client-ip", args: [("ip", .ipv4([10, 0, UInt8(i / 256), UInt8(i % 256)]))])])
        }
        c.send(batch)   // coalesced: many frames per TCP segment
        var seen = Set<String>()
        for _ in 0..<n {
            let f = try ack(c)
            seen.insert("\(f.streamID)/\(f.frameID)")
            XCTAssertEqual(actionMap(try f.actions())["sess.ip_score"], .uint32(90))
        }
        let expected = Set((0..<n).map { "\(UInt64($0) * 1_000_003)/\($0 % 3 + 1)" })
        XCTAssertEqual(seen, expected)
    }

    func testHandlerErrorStillAcks() throws {
        let c = try connected()
        c.send(notifyFrame(streamID: 11, frameID: 1, [SpopMessage(name: "boom", args: []), SpopMessage(name: "ok", args: [])]))
        let f = try ack(c)
        XCTAssertEqual(f.streamID, 11)
        let m = actionMap(try f.actions())
        XCTAssertEqual(m["txn.ok"], .int64(1))
        XCTAssertFalse(m.keys.contains("txn.boom_partial"), "a raising handler contributes no actions")
        // Unknown message: still an ACK.
        c.send(notifyFrame(streamID: 12, frameID: 1, [SpopMessage(name: "no-such-message", args: [("x", .int64(1))])]))
        let f2 = try ack(c)
        XCTAssertEqual(f2.streamID, 12)
        XCTAssertTrue(try f2.actions().isEmpty)
    }

    func testEmptyNotifyGetsEmptyAck() throws {
        let c = try connected()
        c.send(spopFrame(type: SpopType.notify.rawValue, streamID: 1, frameID: 1, payload: []))
        let f = try ack(c)
        XCTAssertEqual(f.streamID, 1)
        XCTAssertEqual(f.frameID, 1)
        XCTAssertTrue(f.payload.isEmpty, "\(f)")
    }

    // MARK: fragmentation

    func testFragmentedNotifyGolden() throws {
        let c = try connected()
        c.send(hexBytes(Golden.fragmentFirst))
        c.send(hexBytes(Golden.fragmentLast))
        let f = try ack(c)
        XCTAssertEqual(f.streamID, 300)
        XCTAssertEqual(f.frameID, 2)
        let m = actionMap(try f.actions())
        XCTAssertEqual(m["txn.name"], .str("m"))
        XCTAssertEqual(m["txn.a1_v"], .str("ABCDEFGHIJ"))
    }

    func testFragmentedNotifyManyPieces() throws {
        let c = try connected()
        let s = String((0..<40_000).map { Character(UnicodeScalar(UInt8(65 + $0 % 26))) })
        let payload = messagesPayload([SpopMessage(name: "big", args: [("big", .str(s))])])
        var frames: [UInt8] = []
        var off = 0
        var first = true
        while off < payload.count {
            let end = min(off + 10_000, payload.count)
            let last = end == payload.count
            frames += spopFrame(type: first ? SpopType.notify.rawValue : SpopType.unset.rawValue,
                                flags: last ? SpopFlags.fin : 0, streamID: 77, frameID: 5, payload: Array(payload[off..<end]))
            first = false
            off = end
        }
        c.send(frames)
        let f = try ack(c)
        XCTAssertEqual(f.streamID, 77)
        XCTAssertEqual(f.frameID, 5)
        let m = actionMap(try f.actions())
        XCTAssertEqual(m["txn.big_len"]??.intValue, 40_000)
        XCTAssertEqual(m["txn.big_hash"]??.intValue, Int64(fnv1a32(s)))
    }

    func testFragmentAbortSendsNothing() throws {
        let c = try connected()
        c.send(hexBytes(Golden.fragmentFirst))
        c.send(hexBytes(Golden.fragmentAbort))
        // The next frame on the wire must be the ACK of this NOTIFY, not anything for the aborted one.
        c.send(hexBytes(Golden.notifyCheckClientIP))
        let f = try ack(c)
        XCTAssertEqual(f.streamID, 300)
        XCTAssertEqual(f.frameID, 1, "got a reply for the aborted fragmented NOTIFY: \(f)")
        // A stray abort for ids nobody tracks is ignored too.
        c.send(hexBytes(Golden.fragmentAbort))
        c.send(hexBytes(Golden.notifyCheckClientIP))
        XCTAssertEqual(try ack(c).frameID, 1)
    }

    // MARK: disconnect

    func testHAProxyDisconnectGetsNormalReply() throws {
        let c = try connected()
        c.send(hexBytes(Golden.haproxyDisconnectTimeout))
        let f = try c.expectFrame(timeout: 5, "AGENT-DISCONNECT")
        XCTAssertEqual(f.type, SpopType.agentDisconnect.rawValue, "\(f)")
        XCTAssertEqual(try f.kv()["status-code"], .uint32(0))
        // The reply of §11.8 byte for byte is the natural encoding; accept any message text.
        XCTAssertEqual(f.flags, SpopFlags.fin)
        XCTAssertTrue(try c.waitForClose(timeout: 5).isEmpty)
        assertAgentServes(port, agent)
    }

    func testPlainCloseIsNormal() throws {
        for _ in 0..<20 {
            let c = try connected()
            c.send(Array(hexBytes(Golden.notifyCheckClientIP).prefix(10)))   // even in the middle of a frame
            c.shutdownAndClose()
        }
        assertAgentServes(port, agent)
    }

    // MARK: error statuses

    /// --max-notify-size bounds reassembly: the fragment that crosses it gets status 3.
    func testMaxNotifySizeRefusesALargerFragmentedNotify() throws {
        let (_, p2) = try startAgent(scriptPath: TestScripts.ipReputationPath, name: "agent-mns",
                                     extraArgs: ["--max-notify-size", "20000"])
        let c = try TCPConn(port: p2)
        _ = try c.handshake(hexBytes(Golden.haproxyHello))
        let s = String(repeating: "x", count: 30_000)
        let payload = messagesPayload([SpopMessage(name: "big", args: [("big", .str(s))])])
        c.send(spopFrame(type: SpopType.notify.rawValue, flags: 0, streamID: 9, frameID: 1, payload: Array(payload[0..<10_000])))
        c.send(spopFrame(type: SpopType.unset.rawValue, flags: 0, streamID: 9, frameID: 1, payload: Array(payload[10_000..<20_000])))
        c.send(spopFrame(type: SpopType.unset.rawValue, flags: SpopFlags.fin, streamID: 9, frameID: 1,
                         payload: Array(payload[20_000...])))
        assertDisconnect(c, status: 3, "reassembled NOTIFY over --max-notify-size")
        // The agent goes on serving.
        XCTAssertEqual(try TCPConn(port: p2).handshake(hexBytes(Golden.haproxyHello)).type, SpopType.agentHello.rawValue)
    }

    func testStatus3FrameTooBigBeforeBody() throws {
        // After the handshake: LEN 16381 > negotiated 16380, body never sent.
        let c = try connected()
        c.send(be32(16381))
        assertDisconnect(c, status: 3, "LEN 16381 after handshake")
        // Before the handshake, with a huge LEN.
        let c2 = try connect()
        c2.send(be32(0x7fff_ffff))
        assertDisconnect(c2, status: 3, "LEN 2^31-1 before handshake")
        // Negotiated lower limit applies.
        let c3 = try connect()
        _ = try c3.handshake(haproxyHello(maxFrameSize: 300))
        c3.send(be32(301))
        assertDisconnect(c3, status: 3, "LEN 301 with negotiated 300")
    }

    func testStatus4ShortFrame() throws {
        let c = try connect()
        c.send(hexBytes("00 00 00 03 01 00 00"))
        assertDisconnect(c, status: 4, "LEN 3 before handshake")
        let c2 = try connected()
        c2.send(hexBytes("00 00 00 06 03 00 00 00 01 00"))
        assertDisconnect(c2, status: 4, "LEN 6 after handshake")
        let c3 = try connect()
        c3.send(hexBytes("00 00 00 00"))
        assertDisconnect(c3, status: 4, "LEN 0")
    }

    func testStatus4NotifyBeforeHello() throws {
        let c = try connect()
        c.send(hexBytes(Golden.notifyCheckClientIP))
        assertDisconnect(c, status: 4, "NOTIFY as first frame")
        let c2 = try connect()
        c2.send(hexBytes(Golden.fragmentLast))
        assertDisconnect(c2, status: 4, "UNSET as first frame")
    }

    func testStatus4HelloWithNonZeroIds() throws {
        let c = try connect()
        c.send(haproxyHello(streamID: 1, frameID: 0))
        assertDisconnect(c, status: 4, "HELLO stream-id 1")
        let c2 = try connect()
        c2.send(haproxyHello(streamID: 0, frameID: 300))
        assertDisconnect(c2, status: 4, "HELLO frame-id 300")
    }

    func testStatus4SecondHello() throws {
        let c = try connected()
        c.send(hexBytes(Golden.haproxyHello))
        assertDisconnect(c, status: 4, "second HELLO")
    }

    func testStatus4MalformedNotify() throws {
        let cases: [(String, [UInt8])] = [
            ("message name longer than the frame",
             spopFrame(type: 3, streamID: 1, frameID: 1, payload: [0x0f] + Array("check".utf8))),
            ("NB-ARGS 2 with one argument",
             spopFrame(type: 3, streamID: 1, frameID: 1, payload: rawStr("m") + [2] + rawStr("a") + [0x04, 0x05])),
            ("IPV4 cut after 2 bytes",
             spopFrame(type: 3, streamID: 1, frameID: 1, payload: rawStr("check-client-ip") + [1] + rawStr("ip") + [0x06, 0xc0, 0x00])),
            ("STRING length beyond the frame",
             spopFrame(type: 3, streamID: 1, frameID: 1, payload: rawStr("m") + [1] + rawStr("s") + [0x08, 0x20, 0x41])),
            ("varint cut in the middle",
             spopFrame(type: 3, streamID: 1, frameID: 1, payload: rawStr("m") + [1] + rawStr("i") + [0x04, 0xff, 0xf0])),
            ("stream-id varint runs past the frame",
             be32(7) + [0x03, 0, 0, 0, 1, 0xff, 0xff]),
        ]
        for (what, bytes) in cases {
            let c = try connected()
            c.send(bytes)
            assertDisconnect(c, status: 4, what)
        }
    }

    func testStatus5MissingSupportedVersions() throws {
        let c = try connect()
        c.send(haproxyHello(omit: ["supported-versions"]))
        assertDisconnect(c, status: 5, "HELLO without supported-versions")
    }

    func testStatus6MissingMaxFrameSize() throws {
        let c = try connect()
        c.send(haproxyHello(omit: ["max-frame-size"]))
        assertDisconnect(c, status: 6, "HELLO without max-frame-size")
    }

    func testStatus7MissingCapabilities() throws {
        let c = try connect()
        c.send(haproxyHello(omit: ["capabilities"]))
        assertDisconnect(c, status: 7, "HELLO without capabilities")
    }

    func testStatus8UnsupportedVersion() throws {
        for v in ["1.0", "3.0", "1.0, 3.5"] {
            let c = try connect()
            c.send(haproxyHello(versions: v))
            assertDisconnect(c, status: 8, "supported-versions \(v.debugDescription)")
        }
        // A list that contains a 2.x entry is fine.
        let ok = try connect()
        XCTAssertEqual(try ok.handshake(haproxyHello(versions: " 1.0 , 2.0 ")).kv()["version"], .str("2.0"))
    }

    func testStatus9MaxFrameSizeTooSmall() throws {
        let c = try connect()
        c.send(haproxyHello(maxFrameSize: 255))
        assertDisconnect(c, status: 9, "max-frame-size 255")
    }

    func testStatus10HelloWithoutFin() throws {
        let c = try connect()
        c.send(haproxyHello(flags: 0))
        assertDisconnect(c, status: 10, "HELLO without FIN")
    }

    func testStatus11InterlacedFrames() throws {
        // A new NOTIFY with other ids while a fragmented one is pending.
        let c = try connected()
        c.send(hexBytes(Golden.fragmentFirst))
        c.send(notifyFrame(streamID: 301, frameID: 1, [SpopMessage(name: "ok", args: [])]))
        assertDisconnect(c, status: 11, "NOTIFY 301/1 during fragmented 300/2")
        // An UNSET with other ids.
        let c2 = try connected()
        c2.send(hexBytes(Golden.fragmentFirst))
        c2.send(spopFrame(type: 0, flags: SpopFlags.fin, streamID: 300, frameID: 3, payload: Array("EFGHIJ".utf8)))
        assertDisconnect(c2, status: 11, "UNSET 300/3 during fragmented 300/2")
    }

    func testStatus12UnsetWithoutPendingNotify() throws {
        let c = try connected()
        c.send(hexBytes(Golden.fragmentLast))
        assertDisconnect(c, status: 12, "UNSET FIN with nothing pending")
    }

    // MARK: scale and robustness

    func testManyConcurrentConnections() throws {
        let n = 300
        var conns: [TCPConn] = []
        for _ in 0..<n { conns.append(try connect()) }
        for c in conns { c.send(hexBytes(Golden.haproxyHello)) }
        for (i, c) in conns.enumerated() {
            let f = try c.expectFrame(timeout: 20, "AGENT-HELLO #\(i)")
            XCTAssertEqual(f.type, SpopType.agentHello.rawValue)
        }
        for (i, c) in conns.enumerated() {
            c.send(notifyFrame(streamID: UInt64(i), frameID: 1,
                               [SpopMessage(name: "check-client-ip", args: [("ip", .ipv4([127, 0, 0, 1]))])]))
        }
        var ok = 0
        for (i, c) in conns.enumerated() {
            let f = try c.expectFrame(timeout: 20, "ACK #\(i)")
            if f.type == SpopType.ack.rawValue, f.streamID == UInt64(i), f.frameID == 1,
               actionMap(try f.actions())["sess.ip_score"] == .uint32(100) {
                ok += 1
            }
        }
        XCTAssertEqual(ok, n)
        conns.removeAll()
        assertAgentServes(port, agent)
    }

    func testGarbageNeverCrashesTheAgent() throws {
        var rng = SplitMix64(seed: 0x5eed_1234)
        for round in 0..<60 {
            let c = try connect()
            var bytes: [UInt8] = []
            switch round % 4 {
            case 0: break                                     // pure garbage
            case 1: bytes += hexBytes(Golden.haproxyHello)                 // garbage after a good handshake
            case 2: bytes += be32(UInt32(7 + rng.next() % 200))  // plausible length, garbage body
            default: bytes += hexBytes(Golden.haproxyHello) + [0x00, 0x00, 0x00, 0x20, 0x03]  // a NOTIFY header then garbage
            }
            let count = Int(rng.next() % 2000) + 1
            for _ in 0..<count { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
            c.send(bytes)
            // Whatever the agent answers, it must not hang forever on a complete garbage frame
            // nor die; read for a short while then drop the connection.
            _ = try? c.waitForClose(timeout: 0.3)
            c.shutdownAndClose()
            XCTAssertTrue(agent.isRunning, "agent died after garbage round \(round): \(hexString(bytes.prefix(64)))\n\(agent.logTail())")
            if !agent.isRunning { return }
        }
        assertAgentServes(port, agent)
    }
}

/// Deterministic pseudo-random numbers for reproducible garbage.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
