import { createHash } from 'node:crypto';

/*
 * The Redis side of the Redis broker: two Lua scripts, each run atomically by
 * Redis, so that every node sees one order per channel and no reader ever sees
 * a half-published message.
 *
 * Keys of one channel (the `{channel}` hash tag keeps them in one Cluster slot):
 *   <prefix>{<channel>}.h   hash   epoch, seq (last sequence), bytes (data bytes in the stream)
 *   <prefix>{<channel>}.s   stream entry id `<seq>-0`, fields t (ms), d (data), e (event, '' for none)
 * Pub/sub channel:
 *   <prefix>{<channel>}     payload `epoch \n seq \n time \n event \n data`
 *
 * The hash is the channel's identity. When it is missing (Redis lost its data,
 * or the key expired after a long idle time) the script starts a new epoch
 * with the random one the caller passes in, and drops any stream left behind,
 * so a sequence number is never reused within an epoch.
 */

/** Shared Lua: ensure the epoch, trim history, refresh expiry. */
const COMMON = `
local meta, stream = KEYS[1], KEYS[2]
local newEpoch = ARGV[1]
local maxMessages, maxBytes, maxAge = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = tonumber(ARGV[5])
local metaTtl = tonumber(ARGV[6])
if now == nil then
  -- One clock for every node: Redis's, so history age does not depend on whose clock is right.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ensureEpoch()
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch then return epoch end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', newEpoch, 'seq', 0, 'bytes', 0)
  return newEpoch
end

-- Drop the oldest entries while any limit is passed. Entries are looked at one
-- batch at a time, so the usual case (one message over the count) reads one or two.
local function trim()
  local len = redis.call('XLEN', stream)
  local bytes = tonumber(redis.call('HGET', meta, 'bytes') or '0')
  if len == 0 then
    if bytes ~= 0 then redis.call('HSET', meta, 'bytes', 0) end
    return
  end
  local oldestAllowed = now - maxAge
  local dropped, droppedBytes, lastSeq = 0, 0, nil
  local start = '-'
  local done = false
  while not done do
    local want = math.min(math.max(len - dropped - maxMessages, 1), 100)
    local batch = redis.call('XRANGE', stream, start, '+', 'COUNT', want)
    if #batch == 0 then break end
    for _, entry in ipairs(batch) do
      local fields = entry[2]
      local t, size = 0, 0
      for i = 1, #fields, 2 do
        if fields[i] == 't' then t = tonumber(fields[i + 1]) elseif fields[i] == 'd' then size = #fields[i + 1] end
      end
      if len - dropped > maxMessages or bytes - droppedBytes > maxBytes or t < oldestAllowed then
        dropped = dropped + 1
        droppedBytes = droppedBytes + size
        lastSeq = tonumber(string.match(entry[1], '^(%d+)'))
        start = '(' .. entry[1]
      else
        done = true
        break
      end
    end
  end
  if dropped > 0 then
    redis.call('XTRIM', stream, 'MINID', (lastSeq + 1) .. '-0')
    redis.call('HINCRBY', meta, 'bytes', -droppedBytes)
  end
end

local function oldestSeq(headSeq)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if first then return tonumber(string.match(first[1], '^(%d+)')) end
  return headSeq + 1
end
`;

/**
 * KEYS: meta, stream. ARGV: newEpoch, maxMessages, maxBytes, maxAgeMs, now
 * ('' = Redis time), metaTtlMs, data, event ('' = none), pub/sub channel,
 * client id to exclude ('' = none). The excluded id travels in the pub/sub
 * payload only (after the event name and a space: neither may hold one),
 * never in the stream, so history is the same for everyone.
 * Returns { epoch, seq, time }.
 */
export const PUBLISH_SCRIPT = `${COMMON}
local data, event, pubsub, exclude = ARGV[7], ARGV[8], ARGV[9], ARGV[10] or ''
local epoch = ensureEpoch()
local seq = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('XADD', stream, seq .. '-0', 't', now, 'd', data, 'e', event)
redis.call('HINCRBY', meta, 'bytes', #data)
trim()
-- The newest message ages out after maxAge; then the stream may go, the hash stays longer.
redis.call('PEXPIRE', stream, maxAge + 1000)
redis.call('PEXPIRE', meta, metaTtl)
local live = event
if exclude ~= '' then live = event .. ' ' .. exclude end
redis.call('PUBLISH', pubsub, epoch .. '\\n' .. seq .. '\\n' .. now .. '\\n' .. live .. '\\n' .. data)
return { epoch, seq, now }
`;

/**
 * KEYS: meta, stream. ARGV: newEpoch, maxMessages, maxBytes, maxAgeMs, now,
 * metaTtlMs, mode ('after' | 'head' | 'last' | 'check' | 'stats'), afterSeq,
 * seenEpoch (for 'check': like 'last', but first start a new epoch if the
 * channel is still in seenEpoch and its head is below afterSeq).
 * Returns { epoch, headSeq, oldestSeq, entries... } where entries are flat
 * quadruples seq, time, event, data: every entry after afterSeq ('after'),
 * none ('head'), or the newest one ('last'); for 'stats', { epoch, headSeq,
 * oldestSeq, messages, bytes }.
 */
export const READ_SCRIPT = `${COMMON}
local mode, afterSeq = ARGV[7], tonumber(ARGV[8])
local epoch = ensureEpoch()
if mode == 'check' and epoch == ARGV[9] and tonumber(redis.call('HGET', meta, 'seq')) < afterSeq then
  -- A node saw position afterSeq in this epoch, and Redis no longer has it: Redis went
  -- back in time (restart from an older AOF/RDB, failover to a lagging replica). The
  -- positions after the head would be handed out again to other messages, which
  -- subscribers would take for ones they already have. Start a new epoch instead.
  redis.call('DEL', meta)
  epoch = ensureEpoch()
end
trim()
redis.call('PEXPIRE', meta, metaTtl)
local headSeq = tonumber(redis.call('HGET', meta, 'seq'))
local out = { epoch, headSeq, oldestSeq(headSeq) }
local entries = {}
if mode == 'after' then
  entries = redis.call('XRANGE', stream, (afterSeq + 1) .. '-0', '+')
elseif mode == 'last' or mode == 'check' then
  entries = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
elseif mode == 'stats' then
  out[4] = redis.call('XLEN', stream)
  out[5] = tonumber(redis.call('HGET', meta, 'bytes') or '0')
end
for _, entry in ipairs(entries) do
  local fields = entry[2]
  local t, d, e = 0, '', ''
  for i = 1, #fields, 2 do
    local f = fields[i]
    if f == 't' then t = fields[i + 1] elseif f == 'd' then d = fields[i + 1] elseif f == 'e' then e = fields[i + 1] end
  end
  out[#out + 1] = tonumber(string.match(entry[1], '^(%d+)'))
  out[#out + 1] = tonumber(t)
  out[#out + 1] = e
  out[#out + 1] = d
end
return out
`;

export interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

export const publishScript = script(PUBLISH_SCRIPT);
export const readScript = script(READ_SCRIPT);
