--[[ include: gates(g, now) -> nil when a new token may be made, having spent what it
  needed, else the refusal (nothing written): a new token's gates, a presale code and a proof
  of work, checked and spent in the script that makes the token, so that one use of a code or
  one solution makes one token whatever the concurrency. Only a NEW token passes here: a
  re-issue of a live token needs neither.
  g: the gates as the caller read them:
    g.code_required  1 while the concert is in presale (setting accessCodeRequired)
    g.codes          hash  presale code -> its uses left (made by operators only)
    g.code           the code given ("" none)
    g.complexity     the proof of work's complexity (setting challengeComplexity; 0: off)
    g.solution       "" none given, "-" refused by the engine (signature, proof, concert), or
                     the challenge it solves (64 hex, its signature and proof checked)
    g.expires        when that challenge expires (ms)
    g.solved         the key that remembers the solution spent (nil without one)
  Refusals: {50} no code, {51} an unknown or used-up code, {52, complexity} no solution,
  {53, reason, complexity} a solution refused: reason 0 by the engine, 1 expired, 2 spent
  on a token already (the complexity: for the engine's fresh challenge in the answer).
  Spent: one use of the code (its field stays at 0 uses left, for the operators' export);
  the solution's key, which expires with its challenge (its only reader is this check). ]]
local function gates(g, now)
  local uses = nil
  if g.code_required == 1 then
    if g.code == '' then return {50} end
    uses = tonumber(redis.call('HGET', g.codes, g.code))
    if not uses or uses < 1 then return {51} end
  end
  if g.complexity > 0 then
    local why = nil
    if g.solution == '' then return {52, g.complexity} end
    if g.solution == '-' then
      why = 0
    elseif g.expires <= now then
      why = 1
    -- The solution's record, written only if it is new: the last check, so that a refusal
    -- still writes nothing (the code's use is spent below, once nothing can refuse).
    elseif not redis.call('SET', g.solved, '1', 'PXAT', g.expires, 'NX') then
      why = 2
    end
    if why then return {53, why, g.complexity} end
  end
  if uses then redis.call('HINCRBY', g.codes, g.code, -1) end
  return nil
end
