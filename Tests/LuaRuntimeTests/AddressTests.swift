import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// Address objects: predicates, conversions, comparison, CIDRs (spoa.cidr, in_cidr).
final class AddressTests: XCTestCase {
    /// Runs `checks` (Lua lines `r.name = expr`) in a handler that receives the
    /// given arguments, and returns r's entries as strings.
    func evaluate(_ checks: String, _ arguments: [(name: String, value: SpopValue)] = [],
                  file: StaticString = #filePath, line: UInt = #line) throws -> [String: String] {
        let harness = try Harness("""
            spoa.register_message("eval", function(txn, msg)
              local r = {}
            \(checks)
              local out = {}
              for k, v in pairs(r) do out["txn." .. k] = tostring(v) end
              return out
            end)
            """)
        let vars = try harness.vars("eval", arguments, file: file, line: line)
        XCTAssertTrue(harness.errorLogs.isEmpty, "\(harness.errorLogs.map(\.message))", file: file, line: line)
        return vars.reduce(into: [:]) { $0[String($1.key.dropFirst(4))] = $1.value.text }
    }

    func testPredicatesOnBothFamilies() throws {
        let cases: [(String, String)] = [
            // address, "v4 v6 loopback private link_local multicast unspecified v4_mapped"
            ("127.0.0.1", "1 0 1 0 0 0 0 0"), ("10.1.2.3", "1 0 0 1 0 0 0 0"),
            ("172.31.255.255", "1 0 0 1 0 0 0 0"), ("172.32.0.1", "1 0 0 0 0 0 0 0"),
            ("192.168.0.1", "1 0 0 1 0 0 0 0"), ("169.254.1.1", "1 0 0 0 1 0 0 0"),
            ("224.0.0.1", "1 0 0 0 0 1 0 0"), ("239.255.255.255", "1 0 0 0 0 1 0 0"),
            ("0.0.0.0", "1 0 0 0 0 0 1 0"), ("8.8.8.8", "1 0 0 0 0 0 0 0"),
            ("::1", "0 1 1 0 0 0 0 0"), ("fd00::1", "0 1 0 1 0 0 0 0"), ("fc00::", "0 1 0 1 0 0 0 0"),
            ("fe80::1", "0 1 0 0 1 0 0 0"), ("febf::1", "0 1 0 0 1 0 0 0"), ("fec0::1", "0 1 0 0 0 0 0 0"),
            ("ff02::1", "0 1 0 0 0 1 0 0"), ("::", "0 1 0 0 0 0 1 0"),
            ("::ffff:10.0.0.1", "0 1 0 0 0 0 0 1"), ("2001:db8::1", "0 1 0 0 0 0 0 0"),
        ]
        let lua = cases.enumerated().map { index, c in
            """
              do
                local a = assert(spoa.addr("\(c.0)"))
                local t = {}
                for _, m in ipairs({"is_v4", "is_v6", "is_loopback", "is_private", "is_link_local",
                                    "is_multicast", "is_unspecified", "is_v4_mapped"}) do
                  t[#t + 1] = a[m](a) and "1" or "0"
                end
                r.c\(index) = table.concat(t, " ")
              end
            """
        }.joined(separator: "\n")
        let results = try evaluate(lua)
        for (index, c) in cases.enumerated() {
            XCTAssertEqual(results["c\(index)"], c.1, c.0)
        }
    }

    func testConversionsAndConstructors() throws {
        let results = try evaluate("""
              local m = spoa.addr("::ffff:192.0.2.7")
              r.unmapped = m:unmap()
              r.unmapped_family = m:unmap():family()
              local plain = spoa.addr("2001:db8::1")
              r.unmap_self = rawequal(plain:unmap(), plain)
              r.mask24 = spoa.addr("192.0.2.77"):mask(24)
              r.mask0 = spoa.addr("192.0.2.77"):mask(0)
              r.mask64 = spoa.addr("2001:db8:1:2:3:4:5:6"):mask(64)
              r.mask_odd = spoa.addr("2001:db8:ffff::"):mask(37)
              r.bytes_len = #spoa.addr("192.0.2.1"):bytes() .. "/" .. #spoa.addr("::1"):bytes()
              r.bytes_hex = (spoa.addr("192.0.2.1"):key():gsub(".", function(c) return ("%02x"):format(c:byte()) end))
              r.from_bytes = spoa.addr_from_bytes("\\192\\0\\2\\1")
              r.round_trip = spoa.addr_from_bytes(spoa.addr("2001:db8::9"):bytes())
              local none, err = spoa.addr_from_bytes("abc")
              r.from_bad = tostring(none) .. "|" .. err
              local bad, why = spoa.addr("300.1.1.1")
              r.bad_text = tostring(bad) .. "|" .. why
              r.is_addr = tostring(spoa.is_addr(m)) .. tostring(spoa.is_addr("1.2.3.4"))
              r.mask_err = select(2, pcall(function() return spoa.addr("1.2.3.4"):mask(33) end))
            """)
        XCTAssertEqual(results["unmapped"], "192.0.2.7")
        XCTAssertEqual(results["unmapped_family"], "4")
        XCTAssertEqual(results["unmap_self"], "true")
        XCTAssertEqual(results["mask24"], "192.0.2.0")
        XCTAssertEqual(results["mask0"], "0.0.0.0")
        XCTAssertEqual(results["mask64"], "2001:db8:1:2::")
        XCTAssertEqual(results["mask_odd"], "2001:db8:f800::")
        XCTAssertEqual(results["bytes_len"], "4/16")
        XCTAssertEqual(results["bytes_hex"], "c0000201")
        XCTAssertEqual(results["from_bytes"], "192.0.2.1")
        XCTAssertEqual(results["round_trip"], "2001:db8::9")
        XCTAssertEqual(results["from_bad"], "nil|address bytes must be 4 or 16 bytes long, got 3")
        XCTAssertEqual(results["bad_text"], "nil|invalid IP address: 300.1.1.1")
        XCTAssertEqual(results["is_addr"], "truefalse")
        XCTAssertTrue(results["mask_err"]?.contains("mask: prefix length 33 out of range for IPv4 (0..32)") ?? false,
                      "\(results["mask_err"] ?? "nil")")
    }

    func testEqualityOrderingAndKeys() throws {
        let results = try evaluate("""
              local a, b = spoa.addr("10.0.0.2"), spoa.addr("10.0.0.2")
              local c = spoa.addr("10.0.0.10")
              r.eq = a == b
              r.eq_string = a == "10.0.0.2"                 -- the documented pitfall: always false
              r.equals_string = a:equals("10.0.0.2")
              r.equals_addr = a:equals(c)
              r.equals_garbage = a:equals("nope")
              r.lt = tostring(a < c) .. tostring(c < a) .. tostring(a <= b)
              r.v4_before_v6 = spoa.addr("255.255.255.255") < spoa.addr("::")
              local t = {}
              t[a] = 1
              r.identity_key = tostring(t[b])             -- identity, not value
              t[a:key()] = 1
              r.value_key = tostring(t[b:key()])
              local sorted = { spoa.addr("::1"), c, a, spoa.addr("9.9.9.9") }
              table.sort(sorted)
              for i = 1, #sorted do sorted[i] = tostring(sorted[i]) end
              r.sorted = table.concat(sorted, ",")
              r.mapped_key_differs = spoa.addr("::ffff:10.0.0.2"):key() ~= a:key()
              r.concat = "ip=" .. a
            """)
        XCTAssertEqual(results["eq"], "true")
        XCTAssertEqual(results["eq_string"], "false")
        XCTAssertEqual(results["equals_string"], "true")
        XCTAssertEqual(results["equals_addr"], "false")
        XCTAssertEqual(results["equals_garbage"], "false")
        XCTAssertEqual(results["lt"], "truefalsetrue")
        XCTAssertEqual(results["v4_before_v6"], "true")
        XCTAssertEqual(results["identity_key"], "nil")
        XCTAssertEqual(results["value_key"], "1")
        XCTAssertEqual(results["sorted"], "9.9.9.9,10.0.0.2,10.0.0.10,::1")
        XCTAssertEqual(results["mapped_key_differs"], "true")
        XCTAssertEqual(results["concat"], "ip=10.0.0.2")
    }

    func testCidrObjectsAndInCidr() throws {
        let results = try evaluate("""
              local n = assert(spoa.cidr("10.1.2.3/8"))
              r.text = n
              r.prefix = n:prefix()
              r.network = n:network()
              r.contains = tostring(n:contains(spoa.addr("10.200.0.1"))) .. tostring(n:contains("11.0.0.1"))
                .. tostring(n:contains(spoa.addr("::ffff:10.0.0.1")))
              r.host = spoa.cidr("192.0.2.1")
              r.v6 = spoa.cidr("2001:DB8::/32")
              r.eq = spoa.cidr("10.0.0.0/8") == n
              local bad, err = spoa.cidr("10.0.0.0/33")
              r.bad_len = tostring(bad) .. "|" .. err
              r.bad_addr = select(2, spoa.cidr("10.0.0/8"))
              r.bad_digits = select(2, spoa.cidr("10.0.0.0/+8"))
              local ip = msg.args.ip
              r.in_str = tostring(ip:in_cidr("192.0.2.0/24")) .. tostring(ip:in_cidr("192.0.3.0/24"))
              r.in_net = ip:in_cidr(spoa.cidr("192.0.0.0/16"))
              r.in_all = ip:in_cidr("0.0.0.0/0")
              r.in_other_family = ip:in_cidr("::/0")
              for i = 1, 3 do r.cached = ip:in_cidr("192.0.2.0/24") end
              r.in_bad = select(2, pcall(ip.in_cidr, ip, "192.0.2.0/99"))
              r.in_type = select(2, pcall(ip.in_cidr, ip, 42))
            """, [("ip", .ipv4(IPv4Address(192, 0, 2, 10)))])
        XCTAssertEqual(results["text"], "10.0.0.0/8")
        XCTAssertEqual(results["prefix"], "8")
        XCTAssertEqual(results["network"], "10.0.0.0")
        XCTAssertEqual(results["contains"], "truefalsefalse")
        XCTAssertEqual(results["host"], "192.0.2.1/32")
        XCTAssertEqual(results["v6"], "2001:db8::/32")
        XCTAssertEqual(results["eq"], "true")
        XCTAssertEqual(results["bad_len"], "nil|invalid CIDR \"10.0.0.0/33\": prefix length must be 0..32")
        XCTAssertEqual(results["bad_addr"], "invalid CIDR \"10.0.0/8\": bad address \"10.0.0\"")
        XCTAssertEqual(results["bad_digits"], "invalid CIDR \"10.0.0.0/+8\": prefix length must be 0..32")
        XCTAssertEqual(results["in_str"], "truefalse")
        XCTAssertEqual(results["in_net"], "true")
        XCTAssertEqual(results["in_all"], "true")
        XCTAssertEqual(results["in_other_family"], "false")
        XCTAssertEqual(results["cached"], "true")
        XCTAssertTrue(results["in_bad"]?.contains("in_cidr: invalid CIDR \"192.0.2.0/99\": prefix length must be 0..32") ?? false)
        XCTAssertTrue(results["in_type"]?.contains("in_cidr: CIDR string or spoa.cidr() expected, got number") ?? false)
    }
}
