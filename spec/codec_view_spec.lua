-- Specs for codec views (machine/codec_view.c) and codec.header: reading
-- and writing a large snapshot in parts without copying it into strings.
local codec = require("copycat.codec")
local sessions = require("copycat.sessions")
local h = require("state_machine.helper")

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error, got success")
  return tostring(err)
end

describe("codec views", function()
  describe("codec.header", function()
    it("is what encode writes before a string's bytes, at every length form", function()
      for _, n in ipairs({ 0, 1, 31, 32, 255, 256, 65535, 65536, 70000 }) do
        for _, s in ipairs({ ("a"):rep(n), ("\xff"):rep(n) }) do
          assert.are.equal(codec.encode(s), codec.header(s) .. s, ("%d bytes"):format(n))
        end
      end
    end)

    it("refuses what is not bytes", function()
      assert.matches("copycat.codec.header: expected bytes %(a string or a codec view%), got table",
        err_of(codec.header, {}))
    end)
  end)

  describe("codec.split", function()
    local t = { 1, "two", { three = 3 }, ("\0"):rep(300), false }
    local bytes = codec.encode(t)

    it("gives each element's encoding, in order, without decoding it", function()
      local parts = codec.split(bytes)
      assert.are.equal(#t, #parts)
      local sum = 0
      for i, p in ipairs(parts) do
        assert.are.same(t[i], codec.decode(p))
        sum = sum + #p
      end
      -- the parts cover the array's body exactly (after its 1-byte header)
      assert.are.equal(#bytes - 1, sum)
    end)

    it("splits arrays of every header form", function()
      for _, n in ipairs({ 0, 15, 16, 65536 }) do
        local a = codec.array()
        for i = 1, n do a[i] = i % 7 end
        local parts = codec.split(codec.encode(a))
        assert.are.equal(n, #parts)
        if n > 0 then assert.are.equal(n % 7, codec.decode(parts[n])) end
      end
    end)

    it("refuses what is not one whole array", function()
      assert.matches("do not encode an array", err_of(codec.split, codec.encode({ a = 1 })))
      assert.matches("do not encode an array", err_of(codec.split, ""))
      assert.matches("trailing bytes", err_of(codec.split, bytes .. "\0"))
      for cut = 1, #bytes - 1 do
        assert.matches("truncated input", err_of(codec.split, bytes:sub(1, cut)), "cut at " .. cut)
      end
      assert.matches("invalid msgpack byte 0xc1", err_of(codec.split, "\x91\xc1"))
    end)

    it("bounds a declared count by the bytes there are", function()
      assert.matches("truncated input", err_of(codec.split, "\xdd\xff\xff\xff\xff\x00"))
      assert.matches("truncated input", err_of(codec.split, "\x91\xdf\xff\xff\xff\xff\x00"))
    end)
  end)

  describe("codec.payload", function()
    it("is a view of a string's bytes, for str and bin of every length form", function()
      for _, n in ipairs({ 0, 31, 32, 256, 65536 }) do
        for _, s in ipairs({ ("b"):rep(n), ("\x80"):rep(n) }) do
          local v = codec.payload(codec.encode(s))
          assert.are.equal(n, #v)
          -- a view of a string's bytes encodes back to the same bytes
          assert.are.equal(codec.encode(s), codec.header(v) .. s)
        end
      end
    end)

    it("refuses what is not exactly one string", function()
      assert.matches("do not encode a string", err_of(codec.payload, codec.encode(1)))
      assert.matches("a string of 3 bytes in 2 bytes", err_of(codec.payload, "\xa3ab"))
      assert.matches("a string of 1 bytes in 2 bytes", err_of(codec.payload, "\xa1ab"))
      assert.matches("truncated input", err_of(codec.payload, "\xda\x01"))
    end)
  end)

  describe("a view lent by machine:snapshot(true)", function()
    local body = [[
      local n = 0
      function sm.commands.add(c) n = n + c.args end
      function sm.snapshot() return n end
      function sm.restore(s) n = s end
    ]]

    it("holds the same bytes as the copy, and restores like it", function()
      local m = h.machine(body)
      h.ok(m, "add", 5)
      local copy = assert(m:snapshot())
      local view = assert(m:snapshot(true))
      assert.are.equal(#copy, #view)
      assert.are.equal(codec.encode(copy), codec.header(view) .. copy)
      local other = h.machine(body)
      assert.is_true(other:restore(view))
      assert.are.equal(copy, other:snapshot())
    end)

    it("is closed by the machine's next call, and says so when used", function()
      local m = h.machine(body)
      local view = assert(m:snapshot(true))
      local part = codec.split(view)[2]
      h.ok(m, "add", 1)
      local lent = "the view's bytes were lent for a call that has returned"
      assert.matches(lent, err_of(codec.decode, view), 1, true)
      assert.matches(lent, err_of(codec.decode, part), 1, true)
      assert.matches(lent, err_of(codec.split, view), 1, true)
      assert.are.equal(0, #view)
      assert.are.equal("copycat.codec.view (closed)", tostring(view))
      assert.matches(lent, err_of(m.restore, m, view), 1, true)
    end)
  end)

  describe("the sessions layer's snapshot in pieces", function()
    local body = [[
      local t = {}
      function sm.commands.put(c) t[c.args.k] = c.args.v end
      function sm.queries.get(q) return t[q.args] end
      function sm.snapshot() return t end
      function sm.restore(s) t = s end
    ]]

    local function layer()
      local l = sessions.new(h.machine(body))
      l:apply(1, 1, { 1000, "o", 5000 })
      assert.is_true(l:apply(2, 1, { 1001, "c", 1, 1, 0, "put", { k = "x", v = ("v"):rep(100) } })[1])
      return l
    end

    it("joins to the bytes of the whole snapshot, encoded as one value", function()
      local l = layer()
      local head, machine = l:snapshot_pieces(true)
      local n = #machine
      local whole = l:snapshot() -- a new call: the lent view is closed
      assert.are.equal(0, #machine)
      assert.are.equal(#whole, #head + n)
      assert.are.equal(head, whole:sub(1, #head))
      local v = codec.decode(whole)
      assert.are.equal(whole, codec.encode(v))
      assert.are.equal(sessions.FORMAT, v[1])
    end)

    it("restores from a view of the snapshot, and refuses damaged bytes", function()
      local l = layer()
      local snap = l:snapshot()
      local copy = sessions.new(h.machine(body))
      assert.is_true(copy:restore(codec.payload(codec.encode(snap))))
      assert.are.equal(snap, copy:snapshot())
      for _, bad in ipairs({ snap:sub(1, #snap - 1), snap .. "\0", "\x94" .. snap:sub(2), codec.encode({ 2 }) }) do
        local ok, err = sessions.new(h.machine(body)):restore(bad)
        assert.is_nil(ok)
        assert.matches("not a session snapshot of format", err)
      end
    end)
  end)
end)
