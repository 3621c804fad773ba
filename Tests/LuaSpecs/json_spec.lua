-- spoa.json (json-c). Run by ModuleSpecTests, or:
--     luaspoa test Tests/LuaSpecs/empty.lua Tests/LuaSpecs/json_spec.lua
local T = spoa.test
local J = spoa.json

T.case("decode: types, integers kept as integers, null", function()
  local v = assert(J.decode('{"id": 123456789012345678, "x": 1.5, "n": null, "ok": true, "s": "a\\u00e9\\n", "a": [1, "2", [3]]}'))
  T.eq(v.id, 123456789012345678)
  T.eq(math.type(v.id), "integer")
  T.eq(math.type(v.x), "float")
  T.eq(v.n, J.null)
  T.eq(v.ok, true)
  T.eq(v.s, "a\u{e9}\n")
  T.eq(v.a, { 1, "2", { 3 } })
  T.eq(J.decode("42"), 42)
  T.eq(math.type(J.decode("42")), "integer")
  T.eq(J.decode(' "top" '), "top")
  T.eq(J.decode("null"), J.null)
  T.eq(math.type(J.decode("18446744073709551615")), "float", "beyond int64: a float")
end)

T.case("encode: integers, floats that stay floats, arrays, objects, null", function()
  T.eq(J.encode(123456789012345678), "123456789012345678")
  T.eq(J.encode(3.0), "3.0")
  T.eq(J.encode(0.1), "0.1")
  T.eq(J.encode({ 1, 2, "x", true }), '[1,2,"x",true]')
  T.eq(J.encode({ a = J.null }), '{"a":null}')
  T.eq(J.encode({}), "{}")
  T.eq(J.encode(setmetatable({}, J.array_mt)), "[]")
  T.eq(J.encode({ [1] = "a", [3] = "c" }), '{"1":"a","3":"c"}', "a sparse table is an object")
  T.eq(J.encode('a"b\\c/\1'), '"a\\"b\\\\c/\\u0001"')
  T.eq(J.encode(nil), "null")
  for _, text in ipairs({ '{"k":[1,2.5,{"z":null}],"s":"x"}', "[]", "{}", '[-1,0,1e+300]' }) do
    T.eq(J.decode(J.encode(J.decode(text))), J.decode(text), text)
  end
end)

T.case("encode refuses what JSON cannot say", function()
  local function refused(v, want)
    local text, err = J.encode(v)
    T.eq(text, nil)
    T.eq(err, want)
  end
  refused(function() end, "cannot encode a function")
  refused({ f = coroutine.create(function() end) }, "cannot encode a thread")
  refused(0 / 0, "cannot encode NaN or infinity")
  refused(math.huge, "cannot encode NaN or infinity")
  refused({ [true] = 1 }, "table keys must be strings or numbers")
  refused({ ["a\0b"] = 1 }, "table key contains a NUL byte")
  local cycle = {}; cycle.self = cycle
  refused(cycle, "nesting deeper than 64 (or a cycle)")
  local big = string.rep("x", 1 << 20)
  local many = {}
  for i = 1, 17 do many[i] = big end
  refused(many, "JSON text larger than 16 MiB")
  T.eq(#J.encode({ big, big }), 2 * (1 << 20) + 7)
end)

T.case("malformed text is nil, err with the byte", function()
  local cases = {
    { "", "unexpected end of JSON text" },
    { "[1,", "unexpected end of data at byte 3" },
    { "[1] x", "unexpected character at byte 4" },
    { "[1] [2]", "unexpected character at byte 4" },
    { '"\xff"', "invalid utf-8 string at byte 1" },
    { "NaN", "NaN or Infinity is not JSON" },
    { "{\"a\" 1}", nil },
    { "[01]", nil },
    { "tru", nil },
  }
  for _, c in ipairs(cases) do
    local v, err = J.decode(c[1])
    T.eq(v, nil, c[1])
    T.eq(type(err), "string", c[1])
    if c[2] then T.eq(err, c[2], c[1]) end
  end
  T.eq(J.decode(string.rep("[", 63) .. string.rep("]", 63)) ~= nil, true, "63 levels")
  local v, err = J.decode(string.rep("[", 100) .. string.rep("]", 100))
  T.eq(v, nil)
  T.ok(err:find("nesting too deep", 1, true), err)
end)

-- Fuzz-ish: truncations, byte flips and random bytes must all be a value or
-- nil, err: never a crash, never an error raised. Deterministic (fixed seed).
T.case("hostile input never raises", function()
  local seed = 12345
  local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
  local doc = '{"a":[1,2.5e3,-0,{"b":"c\\u0041\\"","d":[true,false,null]}],"e":{"f":{"g":[[[]]]}},"h":"\\ud83d\\ude00"}'
  T.ok(J.decode(doc), "the seed document is valid")
  local tried = 0
  local function try(text)
    local ok, v, err = pcall(J.decode, text)
    T.eq(ok, true, text)
    T.ok(v ~= nil or type(err) == "string", text)
    tried = tried + 1
  end
  for i = 0, #doc do try(doc:sub(1, i)) end
  local specials = { "\0", "\"", "\\", "[", "]", "{", "}", ",", ":", "\xff", "\xc3", "e", "-", ".", "u" }
  for _ = 1, 3000 do
    local i = rand(#doc) + 1
    local c = rand(2) == 0 and specials[rand(#specials) + 1] or string.char(rand(256))
    try(doc:sub(1, i - 1) .. c .. doc:sub(i + 1))
  end
  for _ = 1, 500 do
    local bytes = {}
    for j = 1, rand(64) do bytes[j] = string.char(rand(256)) end
    try(table.concat(bytes))
  end
  T.eq(tried, #doc + 1 + 3500)
end)

T.case("large texts are read in chunks", function()
  local items = {}
  for i = 1, 20000 do items[i] = i end
  local text = J.encode(items)
  T.ok(#text > 100000)
  local back = assert(J.decode(text))
  T.eq(#back, 20000)
  T.eq(back[20000], 20000)
end)
