--- copycat.codec: msgpack encoding of Lua values (C, see docs/codec.md).
---
--- codec.encode(value) -> string; codec.decode(string) -> value;
--- codec.array(t) / codec.map(t) mark a table's encoding explicitly;
--- codec.is_array(t) / codec.is_map(t) tell the marks.
return require("copycat.core").codec
