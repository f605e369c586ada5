#!lua
--[[
  An operator adds presale codes to a concert (engine/access_codes.py: a call's codes in
  batches of this script): each new code with its uses. Never past the concert's bound on
  codes: the codes of the whole call not written yet (ARGV[3]) must fit, so a call that would
  pass it is refused at its first batch, nothing written (one refused at a later batch, as
  another call took the room meanwhile, is undone by the engine). A code already there (two random
  80-bit codes alike: never seen, but not overwritten) is answered back for the engine to
  replace.

  KEYS[1] concert  hash  the concert (must exist)
  KEYS[2] codes    hash  presale code -> uses left

  ARGV[1] uses of each new code
  ARGV[2] codes the concert may hold at most
  ARGV[3] codes of this call still to write, these included
  ARGV[4..] the codes

  Returns
    {0, {code, ...}}  written; the codes that were there already (not written)
    {3}               no such concert
    {54, have}        the call's codes would pass the bound: the concert has `have`
]]

local concert, codes = KEYS[1], KEYS[2]
local uses, most, pending = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

if redis.call('EXISTS', concert) == 0 then return {3} end
local have = redis.call('HLEN', codes)
if have + pending > most then return {54, have} end
local taken = {}
for i = 4, #ARGV do
  if redis.call('HSETNX', codes, ARGV[i], uses) == 0 then taken[#taken + 1] = ARGV[i] end
end
return {0, taken}
