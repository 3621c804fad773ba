-- Pattern-function cases for luaspoa_strlib.c: patterns.expected is the text
-- this chunk returns under stock Lua 5.4.4 (luaL_openlibs, written with fwrite).
-- StringLibraryTests checks that luaspoa's own find/match/gmatch/gsub give the same.
local function ser(...)
  local n = select("#", ...)
  local t = {}
  for i = 1, n do local v = select(i, ...); t[#t+1] = type(v) .. ":" .. tostring(v) end
  return table.concat(t, ",")
end
local out = {}
local function case(name, f, ...)
  local r = table.pack(pcall(f, ...))
  -- Positions and function names in messages depend on the host, not the matcher.
  if not r[1] then r[2] = tostring(r[2]):gsub("^[^:]*:%d+: ", ""):gsub("(bad argument #%d+) to '[^']*'", "%1") end
  out[#out+1] = name .. " => " .. ser(table.unpack(r, 1, r.n))
end
local subjects = { "", "hello world", "  trim me  ", "a,b,,c", "x = 1; y = 22", "(foo(bar))baz", "THE (quick) fox",
  "key=val&k2=v2", "aaa", "\0a\0b", "192.168.1.10", "line1\nline2\n", "%d%%", "[]^-", "áé" }
local patterns = { "", "o", "l+", "l*", "l-", "l?", "^h", "d$", "^$", ".", "%a+", "%A+", "%s*(.-)%s*$", "^%s*(.-)%s*$",
  "(%w+)=(%w+)", "()ll()", "%b()", "%f[%w]%w+", "%f[%W]", "[%a_][%w_]*", "[^,]*", "[]]", "[^]]", "[a-c]+", "[%-]",
  "(a)(a)(a)", "(a*(.)%w(%s*))", "%d+%.%d+", "(%d+)%.(%d+)%.(%d+)%.(%d+)", "%%", "[%]]", "(h)(.)%2", "(.)%1",
  "x*", "a-b", "%x+", "%p", "%c", "%u+", "%l+", "%g+", "[%d%a]+", "[a-]", "[-a]", "^(%w+)", "(%w+)$", "$", "^",
  "%", "[a", "%b", "%bx", "%f", "%fx", "(", ")", "%1", "(()", "%0", "((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))",
  "\0", "%z", "[\0-a]", ".-$", "(.-)%s", "[%s%p]+", "%S+", "^(.-)=(.*)$", ".*", "(.*)", "[^%s]+$" }
for si, s in ipairs(subjects) do
  for pi, p in ipairs(patterns) do
    local id = si .. "/" .. pi
    case("find " .. id, string.find, s, p)
    case("find3 " .. id, string.find, s, p, 3)
    case("findneg " .. id, string.find, s, p, -4)
    case("findplain " .. id, string.find, s, p, 1, true)
    case("match " .. id, string.match, s, p)
    case("match2 " .. id, string.match, s, p, 2)
    case("gsub " .. id, string.gsub, s, p, "<%0>")
    case("gsubn " .. id, string.gsub, s, p, "[%1]", 2)
    case("gsubf " .. id, string.gsub, s, p, function(a, b) if a == "l" then return false end return "{" .. tostring(a) .. "|" .. tostring(b) .. "}" end)
    case("gsubt " .. id, string.gsub, s, p, { l = "L", o = 0, a = true })
    case("gmatch " .. id, function() local r = {} for a, b in string.gmatch(s, p) do r[#r+1] = tostring(a) .. "/" .. tostring(b) if #r > 50 then break end end return table.concat(r, ";") end)
    case("gmatch2 " .. id, function() local r = {} for a in string.gmatch(s, p, 3) do r[#r+1] = tostring(a) if #r > 50 then break end end return table.concat(r, ";") end)
  end
end
case("gsub %q", string.gsub, "abc", "b", "%")
case("gsub %x", string.gsub, "abc", "b", "%x")
case("gsub badrepl", string.gsub, "abc", "b", function() return {} end)
case("gsub badarg", string.gsub, "abc", "b", true)
case("gsub pos", string.gsub, "abc", "()b()", "%1-%2")
case("gsub pos0", string.gsub, "abc", "()", "%1")
case("find init big", string.find, "abc", "b", 10)
case("find init len+1", string.find, "abc", "", 4)
case("find init len+2", string.find, "abc", "", 5)
case("gmatch init big", function() local r = {} for a in ("abc"):gmatch("", 10) do r[#r+1] = a end return #r end)
case("rep", string.rep, "ab", 3, ",")
case("rep0", string.rep, "ab", 0)
case("repneg", string.rep, "ab", -1, "x")
case("rep1sep", string.rep, "ab", 1, ",")
case("repempty", string.rep, "", 5)
case("repemptysep", string.rep, "", 3, "-")
case("lower", string.lower, "HeLLo \0 W")
case("upper", string.upper, "HeLLo \0 w")
case("meta", function() return ("x=1"):match("(%w)=(%d)") end)
case("format", string.format, "%s %d %q", "a", 5, "b\n")
case("pack", function() return #string.pack("i4 s1 z c3", 7, "ab", "cd", "xyz") end)
case("matchint", string.match, 12345, "3(%d)")
case("toomany", string.match, string.rep("a", 40), string.rep("(a)", 33))
return table.concat(out, "\n")
