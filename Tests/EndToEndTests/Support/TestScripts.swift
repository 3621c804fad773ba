// Lua scripts the end-to-end tests load into the agent. They use only the
// documented API (docs/lua-api.md).

import Foundation

enum TestScripts {
    /// The shipped example, scripts/ip_reputation.lua.
    static var ipReputationPath: String { E2EPaths.repoFile("scripts/ip_reputation.lua").path }

    static func ipReputation() throws -> String {
        try String(contentsOfFile: ipReputationPath, encoding: .utf8)
    }

    /// Handlers used by the probe and HAProxy tests.
    ///
    /// * report (also registered as demo, types, m): reports what it received as
    ///   txn.name, txn.nargs, txn.a<i>_t (type), txn.a<i>_v (value; addresses as
    ///   text, binaries as hex), txn.a<i>_len (strings/binaries), txn.named_<name>
    ///   (= msg:type(name) for every named, non-NULL argument).
    /// * pre / emit: every outgoing type, inference, scopes, unset and the
    ///   return-table form.
    /// * boom / ok: a handler that raises next to a well-behaved one.
    /// * big: length and FNV-1a hash of a (large) argument.
    static let library = #"""
    local function hex(s)
      return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
    end

    local function fnv1a32(s)
      local h = 2166136261
      for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff end
      return h
    end

    local function report(txn, msg)
      txn:set_var("txn.name", msg.name)
      txn:set_var("txn.nargs", msg.nargs)
      for i = 1, msg.nargs do
        local t, v = msg:type(i), msg.args[i]
        local p = "txn.a" .. i
        txn:set_var(p .. "_t", t)
        if t == "ipv4" or t == "ipv6" then
          txn:set_var(p .. "_v", tostring(v))
        elseif t == "binary" then
          txn:set_var(p .. "_v", hex(v))
          txn:set_var(p .. "_len", #v)
        elseif t == "string" then
          txn:set_var(p .. "_v", v)
          txn:set_var(p .. "_len", #v)
        elseif t ~= "null" then
          txn:set_var(p .. "_v", v)          -- integer -> INT64, boolean -> BOOL
        end
      end
      for k, _ in pairs(msg.args) do
        if type(k) == "string" then txn:set_var("txn.named_" .. k, msg:type(k)) end
      end
    end
    for _, n in ipairs{ "report", "demo", "types", "m" } do spoa.register_message(n, report) end

    spoa.register_message("pre", function(txn, msg)
      txn:set_var("txn.o_null", "before")
      txn:set_var("txn.gone", "before")
      txn:set_var("txn.r_unset", "before")
    end)

    spoa.register_message("emit", function(txn, msg)
      txn:set_var("txn.o_i32", spoa.int32(-1))
      txn:set_var("txn.o_u32", spoa.uint32(4294967295))
      txn:set_var("txn.o_i64", spoa.int64(math.mininteger))
      txn:set_var("txn.o_u64", spoa.uint64((1 << 62) + 1))
      txn:set_var("txn.o_bool", spoa.boolean(true))
      txn:set_var("txn.o_boolf", spoa.boolean(false))
      txn:set_var("txn.o_str", spoa.string("hello world"))
      txn:set_var("txn.o_bin", spoa.binary("A\0B"))
      txn:set_var("txn.o_v4", spoa.ipv4("192.0.2.1"))
      txn:set_var("txn.o_v6", spoa.ipv6("2001:db8::2"))
      txn:set_var("txn.o_null", spoa.null)
      -- inferred types
      txn:set_var("txn.i_int", 42)
      txn:set_var("txn.i_neg", -42)
      txn:set_var("txn.i_bool", true)
      txn:set_var("txn.i_str", "text")
      local ip = msg.args.ip or msg.args[1]
      if ip ~= nil then txn:set_var("txn.i_addr", ip) end
      -- every scope
      txn:set_var("proc.s_proc", 0)
      txn:set_var("sess.s_sess", 1)
      txn:set_var("req.s_req", 3)
      txn:set_var("res.s_res", 4)
      txn:unset_var("txn.gone")
      -- the declarative form, encoded after the calls above in sorted key order
      return { ["txn.r_b"] = 2, ["txn.r_a"] = 1, ["txn.r_unset"] = spoa.unset }
    end)

    spoa.register_message("boom", function(txn, msg)
      txn:set_var("txn.boom_partial", 1)
      error("deliberate failure in the boom handler")
    end)

    spoa.register_message("ok", function(txn, msg)
      txn:set_var("txn.ok", 1)
    end)

    -- An ACK that cannot fit in the negotiated max-frame-size.
    spoa.register_message("huge", function(txn, msg)
      txn:set_var("txn.huge", string.rep("x", msg.args.n))
    end)

    -- Values the API refuses: the handler raises, its actions are dropped.
    spoa.register_message("badvalue", function(txn, msg)
      txn:set_var("txn.before_bad", 1)
      txn:set_var("txn.bad", 2.5)
    end)

    -- Repeated argument names: msg.args.k is the first occurrence.
    spoa.register_message("first_of", function(txn, msg)
      txn:set_var("txn.first", msg.args.k)
      txn:set_var("txn.second", msg.args[2])
    end)

    -- Busy for about msg.args.ms milliseconds (CPU time), then answers.
    spoa.register_message("slow", function(txn, msg)
      local stop = os.clock() + (msg.args.ms or 1) / 1000
      while os.clock() < stop do end
      txn:set_var("txn.slow", 1)
    end)

    spoa.register_message("big", function(txn, msg)
      local s = msg.args.big or msg.args[1] or ""
      txn:set_var("txn.big_len", #s)
      txn:set_var("txn.big_hash", fnv1a32(s))
    end)
    """#

    /// ip_reputation.lua followed by the test library, as one script.
    static func combined() throws -> String {
        try ipReputation() + "\n-- ---- end-to-end test handlers ----\ndo\n" + library + "\nend\n"
    }
}
