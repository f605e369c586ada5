--[[ include: waiting_count(concert) -> the concert's WAITING tokens: the seqs it issued (seq)
  less the waiters who left (leftn) and those admitted (admitted), fields of the concert hash
  (include/admission), so that a join writes no counter of its own. ]]
local function waiting_count(concert)
  local v = redis.call('HMGET', concert, 'seq', 'leftn', 'admitted')
  return (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0) - (tonumber(v[3]) or 0)
end
