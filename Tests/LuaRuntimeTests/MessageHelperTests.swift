import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// msg:get, msg:argname, msg:all and msg:iter over repeated, unnamed and NULL arguments.
final class MessageHelperTests: XCTestCase {
    let arguments: [(name: String, value: SpopValue)] = [
        ("ip", .ipv4(IPv4Address(192, 0, 2, 1))),
        ("h", .string("a")),
        ("", .int32(7)),
        ("h", .null),
        ("h", .string("b")),
        ("n", .null),
    ]

    func testGetArgnameAllAndIter() throws {
        let harness = try Harness("""
            spoa.register_message("m", function(txn, msg)
              local rows = {}
              for i, name, value, type in msg:iter() do
                rows[#rows + 1] = ("%d:%s:%s:%s"):format(i, name, tostring(value), type)
              end
              local v, t = msg:get("n")
              local v1, t1 = msg:get(3)
              local absent = table.pack(msg:get("zz"))
              return {
                ["txn.iter"] = table.concat(rows, " "),
                ["txn.all_h"] = table.concat(msg:all("h"), ","),
                ["txn.all_none"] = #msg:all("zz"),
                ["txn.all_ip"] = tostring(msg:all("ip")[1]),
                ["txn.get_null"] = tostring(v) .. "/" .. t,
                ["txn.get_pos"] = tostring(v1) .. "/" .. t1,
                ["txn.get_absent"] = absent.n .. "/" .. tostring(absent[1]),
                ["txn.names"] = msg:argname(1) .. "," .. msg:argname(3) .. "," .. tostring(msg:argname(7)),
                ["txn.name_field"] = msg.name,
                ["txn.null_in_args"] = tostring(msg.args.n) .. "/" .. msg:type("n"),
              }
            end)
            """)
        let vars = try harness.vars("m", arguments)
        XCTAssertEqual(vars["txn.iter"]?.text, "1:ip:192.0.2.1:ipv4 2:h:a:string 3::7:int32 4:h:nil:null 5:h:b:string 6:n:nil:null")
        XCTAssertEqual(vars["txn.all_h"]?.text, "a,b")
        XCTAssertEqual(vars["txn.all_none"], .int64(0))
        XCTAssertEqual(vars["txn.all_ip"]?.text, "192.0.2.1")
        XCTAssertEqual(vars["txn.get_null"]?.text, "nil/null")
        XCTAssertEqual(vars["txn.get_pos"]?.text, "7/int32")
        XCTAssertEqual(vars["txn.get_absent"]?.text, "1/nil")
        XCTAssertEqual(vars["txn.names"]?.text, "ip,,nil")
        XCTAssertEqual(vars["txn.name_field"]?.text, "m")
        XCTAssertEqual(vars["txn.null_in_args"]?.text, "nil/null")
    }

    func testIteratorUsedAfterTheHandlerRaises() throws {
        let harness = try Harness("""
            local saved
            spoa.register_message("keep", function(txn, msg) saved = msg end)
            spoa.register_message("use", function(txn, msg)
              local ok, err = pcall(function() for i in saved:iter() do end end)
              local ok2, err2 = pcall(function() return saved:all("h") end)
              return { ["txn.err"] = err, ["txn.err2"] = err2 }
            end)
            """)
        _ = try harness.vars("keep", arguments)
        let vars = try harness.vars("use")
        XCTAssertTrue(vars["txn.err"]?.text?.contains("msg used outside its handler") ?? false, "\(vars)")
        XCTAssertTrue(vars["txn.err2"]?.text?.contains("msg used outside its handler") ?? false, "\(vars)")
    }
}
