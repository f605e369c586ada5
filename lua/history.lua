#!lua flags=no-writes
--[[
  A customer's latest point movements (charges and payments), newest first.

  KEYS[1] history  list  "kind|amount|balance|atMs|ref", newest first

  ARGV[1] how many entries at most

  Returns
    {0, entry, entry, ...}
]]
local entries = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
table.insert(entries, 1, 0)
return entries
