-- emrflow.digest: MD5 and the SHA family through OpenSSL. Expected values are the
-- published test vectors (RFC 1321, FIPS 180-4 "abc" and the empty message).
local digest = require "emrflow.digest"

local VECTORS = {
  { "MD5", "", "d41d8cd98f00b204e9800998ecf8427e" },
  { "MD5", "abc", "900150983cd24fb0d6963f7d28e17f72" },
  { "MD5", "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
  { "SHA-1", "", "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
  { "SHA-1", "abc", "a9993e364706816aba3e25717850c26c9cd0d89d" },
  { "SHA-256", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
  { "SHA-256", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
  { "SHA-256", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
  { "SHA-384", "abc",
    "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7" },
  { "SHA-384", "",
    "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b" },
  { "SHA-512", "abc",
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd" ..
    "454d4423643ce80e2a9ac94fa54ca49f" },
  { "SHA-512", "",
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f" ..
    "63b931bd47417a81a538327af927da3e" },
}

local function tohex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

describe("emrflow.digest", function()
  for _, v in ipairs(VECTORS) do
    it(("%s(%q)"):format(v[1], v[2]), function()
      assert.are.equal(v[3], digest.hex(v[1], v[2]))
      local raw = digest.raw(v[1], v[2])
      assert.are.equal(#v[3] / 2, #raw)
      assert.are.equal(v[3], tohex(raw))
    end)
  end

  it("takes the algorithm name in any case", function()
    assert.are.equal(digest.hex("SHA-256", "x"), digest.hex("sha-256", "x"))
    assert.are.equal(digest.hex("MD5", "x"), digest.hex("Md5", "x"))
  end)

  it("hashes binary data with NUL bytes, and a million bytes", function()
    assert.are_not.equal(digest.hex("SHA-1", "a\0b"), digest.hex("SHA-1", "a\0c"))
    assert.are.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      digest.hex("SHA-256", ("a"):rep(1000000)))
  end)

  it("raises an error naming an unknown algorithm", function()
    for _, alg in ipairs { "SHA3-256", "sha256", "", "SHA-2" } do
      local ok, err = pcall(digest.hex, alg, "x")
      assert.is_false(ok)
      assert.are.equal("digest", err.code)
      assert.matches("unknown digest algorithm '" .. alg:gsub("%-", "%%-") .. "'", err.message)
    end
  end)

  it("raises clearly for data or names that are not strings", function()
    local ok, err = pcall(digest.raw, "MD5", nil)
    assert.is_false(ok)
    assert.matches("must be a string", err.message)
    ok, err = pcall(digest.hex, nil, "x")
    assert.is_false(ok)
    assert.matches("must be a string", err.message)
  end)
end)
