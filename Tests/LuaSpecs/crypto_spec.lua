-- spoa.crypto against published vectors (NIST FIPS 180 examples, RFC 1321,
-- RFC 4231 HMAC, RFC 4648 base64). Run by ModuleSpecTests, or:
--     luaspoa test Tests/LuaSpecs/empty.lua Tests/LuaSpecs/crypto_spec.lua
local T = spoa.test
local c = spoa.crypto

local function unhex(s) return (assert(c.hex.decode(s))) end

T.case("digests of NIST and RFC 1321 examples", function()
  T.eq(c.sha256("abc", "hex"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  T.eq(c.sha256("", "hex"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  T.eq(c.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "hex"),
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
  T.eq(c.sha1("abc", "hex"), "a9993e364706816aba3e25717850c26c9cd0d89d")
  T.eq(c.sha512("abc", "hex"),
       "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" ..
       "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
  T.eq(c.md5("abc", "hex"), "900150983cd24fb0d6963f7d28e17f72")
  T.eq(c.sha256("abc"), unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "raw by default")
  T.eq(c.sha256("abc", "raw"), c.sha256("abc"))
end)

T.case("a digest fed in many chunks equals the one-shot value", function()
  -- 200 KiB crosses LUASPOA_CRYPTO_CHUNK (64 KiB) boundaries; the value is what
  -- `head -c 204800 /dev/zero | tr '\0' a | sha256sum` prints.
  T.eq(c.sha256(string.rep("a", 204800), "hex"), "4b4f0f46ac02d177dea0ab36a66a657840e2fb98b20bb27a688db4d8ea9cd22c")
end)

T.case("RFC 4231 HMAC test cases 1, 2 and 6", function()
  T.eq(c.hmac("sha256", string.rep("\x0b", 20), "Hi There", "hex"),
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
  T.eq(c.hmac("sha512", string.rep("\x0b", 20), "Hi There", "hex"),
       "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde" ..
       "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854")
  T.eq(c.hmac("sha256", "Jefe", "what do ya want for nothing?", "hex"),
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
  T.eq(c.hmac("sha256", string.rep("\xaa", 131), "Test Using Larger Than Block-Size Key - Hash Key First", "hex"),
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
  T.eq(#c.hmac("sha1", "k", "d"), 20)
  local ok, err = pcall(c.hmac, "sha3", "k", "d")
  T.eq(ok, false)
  T.ok(err:find("unknown digest 'sha3'", 1, true), err)
end)

T.case("RFC 4648 section 10 base64 vectors, both ways", function()
  local vectors = { { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
                    { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" } }
  for _, v in ipairs(vectors) do
    T.eq(c.base64.encode(v[1]), v[2])
    T.eq(c.base64.decode(v[2]), v[1])
    T.eq(c.base64url.encode(v[1]), (v[2]:gsub("=", "")), "base64url has no padding")
    T.eq(c.base64url.decode((v[2]:gsub("=", ""))), v[1])
  end
  T.eq(c.base64.decode("Zm9vYg"), "foob", "missing padding is accepted")
  T.eq(c.base64.encode("\xfb\xff\xbf"), "+/+/")
  T.eq(c.base64url.encode("\xfb\xff\xbf"), "-_-_")
  T.eq(c.base64url.decode("-_-_"), "\xfb\xff\xbf")
  local big = c.random_bytes(4096):rep(40)
  T.eq(c.base64.decode(c.base64.encode(big)), big, "160 KiB round trip over chunk boundaries")
  T.eq(c.base64url.decode(c.base64url.encode(big .. "x")), big .. "x")
end)

T.case("malformed base64 and hex are nil, err", function()
  local function fails(f, s, want)
    local v, err = f(s)
    T.eq(v, nil, s)
    T.eq(err, want, s)
  end
  fails(c.base64.decode, "Zm9v!", "invalid base64 length")
  fails(c.base64.decode, "Zm9v Zm9", "invalid base64 character at position 5")
  fails(c.base64.decode, "-_-_", "invalid base64 character at position 1")
  fails(c.base64url.decode, "+/+/", "invalid base64 character at position 1")
  fails(c.base64.decode, "Zg=a", "invalid base64 character at position 3")
  fails(c.base64.decode, "Z===", "invalid base64 character at position 2")
  fails(c.hex.decode, "abc", "invalid hex length")
  fails(c.hex.decode, "0g", "invalid hex character at position 2")
  T.eq(c.hex.encode("FOOBAR"), "464f4f424152")
  T.eq(c.hex.decode("666F6F626172"), "foobar", "upper case accepted")
  T.eq(c.hex.encode(""), "")
end)

T.case("random_bytes is bounded", function()
  T.eq(#c.random_bytes(0), 0)
  T.eq(#c.random_bytes(32), 32)
  T.ok(c.random_bytes(32) ~= c.random_bytes(32))
  T.eq((pcall(c.random_bytes, 4097)), false)
  T.eq((pcall(c.random_bytes, -1)), false)
end)

T.case("equals", function()
  T.eq(c.equals("abc", "abc"), true)
  T.eq(c.equals("abc", "abd"), false)
  T.eq(c.equals("abc", "abcd"), false)
  T.eq(c.equals("", ""), true)
end)

T.case("AES-256-GCM seal and open", function()
  local key = c.sha256("a key")
  local sealed = c.seal(key, "attack at dawn", "cookie:v1")
  T.eq(#sealed, 12 + #"attack at dawn" + 16)
  T.eq(c.open(key, sealed, "cookie:v1"), "attack at dawn")
  T.ok(c.seal(key, "attack at dawn", "cookie:v1") ~= sealed, "a fresh nonce each time")
  local function refused(k, s, aad)
    local v, err = c.open(k, s, aad)
    T.eq(v, nil)
    T.eq(err, "authentication failed")
  end
  refused(c.sha256("another key"), sealed, "cookie:v1")
  refused(key, sealed, "cookie:v2")
  refused(key, sealed, nil)
  for _, i in ipairs({ 1, 13, #sealed }) do
    refused(key, sealed:sub(1, i - 1) .. string.char(sealed:byte(i) ~ 1) .. sealed:sub(i + 1), "cookie:v1")
  end
  refused(key, sealed:sub(1, 27), "cookie:v1")
  refused(key, "", "cookie:v1")
  T.eq(c.open(key, c.seal(key, "")), "")
  local big = string.rep("x", 300000)
  T.eq(c.open(key, c.seal(key, big, "a"), "a"), big, "chunked")
  local ok, err = pcall(c.seal, "short", "x")
  T.eq(ok, false)
  T.ok(err:find("32 bytes", 1, true), err)
end)
