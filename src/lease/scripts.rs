//! The Lua scripts, in one place: each is the whole of one step of the lease protocol on one node.
//!
//! Every step that reads the lock and then writes it is a script, because Redis runs a script
//! atomically: a client-side `GET` followed by `DEL` could delete a lock that expired and was
//! re-acquired by someone else in between. Keys travel as `KEYS` and values as `ARGV`, never
//! spliced into the source, so a lock name is data and cannot become code. They use only commands
//! that Redis 6+ and Valkey both run in scripts.
//!
//! The key contract (other tools may read these keys), for a lock named `K` under prefix `P`:
//! - `P{K}` holds the exclusive holder's token, with the lease's TTL;
//! - `P{K}:holder` is a hash (`host`, `pid`, `command`, `since`) that lives and dies with it;
//! - `P{K}:fence` is the fencing-token counter, one for every mode and slot; it never expires;
//! - `P{K}:released` is a pub/sub channel (not a key) on which releases are announced;
//! - with `--limit N`: `P{K}:slot:I` (I in 0..N) holds slot I's token and `P{K}:slot:I:holder`
//!   its holder hash, each like `P{K}` and `P{K}:holder`; `P{K}:limit` holds N while any slot may
//!   be held, so that a client asking for another limit is refused instead of over-admitting;
//! - with `--shared`: `P{K}:readers` is a sorted set of the shared holders' tokens, each scored
//!   with its expiry in milliseconds on the node's clock, and `P{K}:readers:holder` a hash from
//!   token to holder record (`host`, `pid`, `command`, `since`, tab-separated); both keys expire
//!   with their last holder. Every script drops expired members before it judges, so each shared
//!   holder expires on its own, measured by the server, whatever the others do;
//! - `P{K}:intent` is an exclusive waiter's mark (its waiter id, a short expiry): while it lives, no
//!   new shared holder is admitted, so a stream of shared holders cannot starve the writer;
//! - `P{K}:queue` orders the waiters: a sorted set of waiter ids scored with their tickets;
//!   `P{K}:alive` scores the same ids with their heartbeat's expiry (ms, node clock), and
//!   `P{K}:waiters` maps them to their records. A waiter whose heartbeat lapsed is dropped by the
//!   next script that looks; the three keys expire with the last heartbeat. A release wakes the
//!   first live waiter alone, on `P{K}:w:ID`, or everyone on `P{K}:released` if nobody is queued.
//!
//! The `{K}` hash tag puts them all in one Redis Cluster slot, so one script may touch them all;
//! slot and reader keys are derived inside the scripts from `P{K}`, which is always `KEYS[1]`.
//!
//! Modes exclude each other as a reader-writer lock does: an exclusive holder excludes every other
//! holder, shared holders exclude only exclusive ones; a limited lock is a set of N exclusive
//! slots. A limited lock and an exclusive or shared one on the same key are a usage error, reported
//! by the acquire script, since one of the two clients has the limit wrong.

use std::sync::LazyLock;

use redis::Script;

/// Lua shared by the scripts: the derived key names and the small reads every mode needs.
const PRELUDE: &str = r"
local base = KEYS[1]
local readers = base .. ':readers'
local rholders = readers .. ':holder'
local limitk = base .. ':limit'
local intent = base .. ':intent'
local function slot_key(i) return base .. ':slot:' .. i end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live_readers(now)
  local gone = redis.call('ZRANGEBYSCORE', readers, '-inf', now)
  for _, t in ipairs(gone) do
    redis.call('ZREM', readers, t)
    redis.call('HDEL', rholders, t)
  end
  return redis.call('ZCARD', readers)
end
local function readers_left(now)
  local last = redis.call('ZRANGE', readers, -1, -1, 'WITHSCORES')
  if #last == 0 then return -2 end
  return tonumber(last[2]) - now
end
local function readers_expire(now)
  local left = readers_left(now)
  if left <= 0 then
    redis.call('DEL', readers, rholders)
  else
    redis.call('PEXPIRE', readers, left)
    redis.call('PEXPIRE', rholders, left)
  end
end
local queue = base .. ':queue'
local alive = base .. ':alive'
local waiters = base .. ':waiters'
local function queue_head(now)
  local gone = redis.call('ZRANGEBYSCORE', alive, '-inf', now)
  for _, w in ipairs(gone) do
    redis.call('ZREM', alive, w)
    redis.call('ZREM', queue, w)
    redis.call('HDEL', waiters, w)
  end
  return redis.call('ZRANGE', queue, 0, 0)[1]
end
local function queue_expire(now)
  local last = redis.call('ZRANGE', alive, -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('DEL', queue, alive, waiters)
    return
  end
  local left = tonumber(last[2]) - now
  redis.call('PEXPIRE', queue, left)
  redis.call('PEXPIRE', alive, left)
  redis.call('PEXPIRE', waiters, left)
end
local function leave(w, now)
  local was = redis.call('ZREM', queue, w)
  redis.call('ZREM', alive, w)
  redis.call('HDEL', waiters, w)
  queue_expire(now)
  return was == 1
end
local function wake_head(now)
  local head = queue_head(now)
  if head then redis.call('PUBLISH', base .. ':w:' .. head, '') end
  return head
end
local function find(token)
  if redis.call('GET', base) == token then return 'x' end
  local s = redis.call('ZSCORE', readers, token)
  if s then
    if tonumber(s) > now_ms() then return 's' end
    return false
  end
  local n = tonumber(redis.call('GET', limitk) or '0') or 0
  for i = 0, n - 1 do
    if redis.call('GET', slot_key(i)) == token then return i end
  end
  return false
end
";

/// A script made of [`PRELUDE`] and `body`.
fn with_prelude(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// Take the lock if free and hand out the next fencing token, atomically; keep waiters in order.
///
/// `KEYS`: lock (`P{K}`), fence. `ARGV`: token, ttl in ms, host, pid, command, since, identify,
/// mode (`x` exclusive, `s` shared, `l` limited), limit N (with `l`), intent expiry in ms (`0`:
/// not waiting, set no intent), waiter id, join (`1`: a waiter that queues if turned away), its
/// ticket (`''`: the node's `TIME` in microseconds), and the heartbeat's expiry in ms.
///
/// Returns `{1, fence, id, slot}` when granted (fence as a decimal string, exact beyond 2^53;
/// slot 0 unless limited), `{0, pttl, id, ticket}` when turned away, with the time in ms until
/// the lock may have room (-1 for a waiter that is not first in line, which waits to be woken)
/// and the caller's ticket in the queue (`''` if it did not join), or `{2, held, id}` when the
/// lock is used with another limit: `held` is that limit, or `exclusive`/`shared` for a limited
/// request on a lock used without one. `id` is the server's `run_id` when `identify` is `1`
/// (Redlock mode, so that one server listed under two addresses is caught without a round trip of
/// its own), else nil.
///
/// The queue only ever turns callers away: a node grants nobody while a live waiter is queued
/// ahead of the caller, and a caller that is not queued counts as behind every waiter. So it
/// decides who may *try*; who *holds* is decided by the lock as before.
///
/// The same request twice (a retry after a lost reply) is granted twice with the same fence: while
/// our token holds the lock on this node, nobody else can have raised the counter here. A missing
/// counter (first use, or a node that restarted empty) starts at the node's `TIME` in
/// microseconds, so fences keep rising across such a restart as long as that node's clock does.
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r"
local token, ttl, mode, me = ARGV[1], tonumber(ARGV[2]), ARGV[8], ARGV[11]
local id = false
if ARGV[7] == '1' then
  id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or false
end
local function next_fence()
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('INCR', KEYS[2])
  else
    local t = redis.call('TIME')
    redis.call('SET', KEYS[2], t[1] .. string.sub('00000' .. t[2], -6))
  end
  return redis.call('GET', KEYS[2])
end
local function record(key)
  redis.call('HSET', key, 'host', ARGV[3], 'pid', ARGV[4], 'command', ARGV[5], 'since', ARGV[6])
  redis.call('PEXPIRE', key, ttl)
end
local now = now_ms()
local head = queue_head(now)
local ahead = head and head ~= me
local function away(pttl)
  if ARGV[12] ~= '1' then return {0, pttl, id, ''} end
  local ticket = ARGV[13]
  if ticket == '' then
    ticket = redis.call('ZSCORE', queue, me)
    if not ticket then
      local t = redis.call('TIME')
      ticket = t[1] .. string.sub('00000' .. t[2], -6)
    end
  end
  redis.call('ZADD', queue, ticket, me)
  redis.call('ZADD', alive, now + tonumber(ARGV[14]), me)
  redis.call('HSET', waiters, me, ARGV[3] .. '	' .. ARGV[4] .. '	' .. ARGV[5] .. '	' .. ARGV[6])
  queue_expire(now)
  if redis.call('ZRANGE', queue, 0, 0)[1] ~= me then pttl = -1 end
  return {0, pttl, id, ticket}
end
local function granted(fence, slot, room)
  leave(me, now)
  if room then wake_head(now) end
  return {1, fence, id, slot}
end
local limit = redis.call('GET', limitk)
if mode == 'l' then
  if limit and limit ~= ARGV[9] then return {2, limit, id} end
  if redis.call('EXISTS', base) == 1 then return {2, 'exclusive', id} end
  if live_readers(now) > 0 then return {2, 'shared', id} end
  local n = tonumber(ARGV[9])
  local free, more, soonest = false, false, -1
  for i = 0, n - 1 do
    local k = slot_key(i)
    local cur = redis.call('GET', k)
    if cur == token then
      redis.call('PEXPIRE', k, ttl)
      redis.call('PEXPIRE', k .. ':holder', ttl)
      return {1, redis.call('GET', KEYS[2]), id, i}
    end
    if not cur then
      if free then more = true else free = i end
    else
      local p = redis.call('PTTL', k)
      if p >= 0 and (soonest < 0 or p < soonest) then soonest = p end
    end
  end
  if not free then return away(soonest) end
  if ahead then return away(-1) end
  redis.call('SET', slot_key(free), token, 'PX', ttl)
  record(slot_key(free) .. ':holder')
  redis.call('SET', limitk, ARGV[9], 'PX', math.max(redis.call('PTTL', limitk), ttl))
  return granted(next_fence(), free, more)
end
if limit then return {2, limit, id} end
local cur = redis.call('GET', base)
if mode == 's' then
  local score = redis.call('ZSCORE', readers, token)
  if score and tonumber(score) > now then
    redis.call('ZADD', readers, now + ttl, token)
    readers_expire(now)
    return {1, redis.call('GET', KEYS[2]), id, 0}
  end
  if cur then return away(redis.call('PTTL', base)) end
  local waiting = redis.call('PTTL', intent)
  if waiting ~= -2 then return away(waiting) end
  if ahead then return away(-1) end
  live_readers(now)
  redis.call('ZADD', readers, now + ttl, token)
  redis.call('HSET', rholders, token, ARGV[3] .. '	' .. ARGV[4] .. '	' .. ARGV[5] .. '	' .. ARGV[6])
  readers_expire(now)
  return granted(next_fence(), 0, true)
end
if cur == token then
  redis.call('PEXPIRE', base, ttl)
  redis.call('PEXPIRE', base .. ':holder', ttl)
  return {1, redis.call('GET', KEYS[2]), id, 0}
end
if ARGV[10] ~= '0' and cur and redis.call('GET', intent) == me then
  redis.call('PEXPIRE', intent, ARGV[10])
end
if cur then return away(redis.call('PTTL', base)) end
if live_readers(now) > 0 then
  if ARGV[10] ~= '0' then
    local other = redis.call('GET', intent)
    if not other or other == me then
      redis.call('SET', intent, me, 'PX', ARGV[10])
    end
  end
  return away(readers_left(now))
end
if ahead then return away(-1) end
redis.call('SET', base, token, 'PX', ttl)
record(base .. ':holder')
if redis.call('GET', intent) == me then redis.call('DEL', intent) end
return granted(next_fence(), 0, false)
",
    )
});

/// Raise the fence counter to the fence the client chose, if the lock is still ours (Redlock's
/// second phase; see `fence.rs` for why it makes fences monotonic across a quorum).
///
/// `KEYS`: lock, fence. `ARGV`: token, fence. Returns 1 if the token still held the lock (in any
/// mode), else 0. Counters are canonical decimal strings, so comparing length then text compares
/// the numbers exactly, without Lua's doubles.
pub static COMMIT_FENCE: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r"
if not find(ARGV[1]) then return 0 end
local cur = redis.call('GET', KEYS[2]) or ''
if #cur < #ARGV[2] or (#cur == #ARGV[2] and cur < ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
",
    )
});

/// Compare-and-`PEXPIRE`: push the lease's expiry out only if the lock still holds our token.
///
/// `KEYS`: lock. `ARGV`: token, ttl in ms. Returns where the token holds the lock (its slot, 0
/// when exclusive or shared), or -1 if the lock is no longer ours. The token is looked for in
/// every mode, so a script that took a lease with `--shared` or `--limit` extends it without
/// repeating the option; the client counts only the nodes that agree on one slot, so a grant of
/// another slot that an undo could not reach never passes for a vote. It never creates a lock that
/// is gone: a lease that lapsed stays lapsed.
pub static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r"
local token, ttl = ARGV[1], tonumber(ARGV[2])
local at = find(token)
if not at then return -1 end
if at == 'x' then
  redis.call('PEXPIRE', base .. ':holder', ttl)
  redis.call('PEXPIRE', base, ttl)
  return 0
end
if at == 's' then
  local now = now_ms()
  redis.call('ZADD', readers, 'XX', now + ttl, token)
  readers_expire(now)
  return 0
end
redis.call('PEXPIRE', slot_key(at) .. ':holder', ttl)
if redis.call('PTTL', limitk) < ttl then redis.call('PEXPIRE', limitk, ttl) end
redis.call('PEXPIRE', slot_key(at), ttl)
return at
",
    )
});

/// Compare-and-`DEL`: delete our hold on the lock (and its holder record) only if it still holds
/// our token, in whatever mode, and announce the release: to the first waiter in line alone, on
/// its own channel `P{K}:w:ID`, or on the release channel when nobody is queued.
///
/// `KEYS`: lock. `ARGV`: token, release channel, announce (`1`; `0` for the undo of a failed
/// attempt, which freed nothing anyone was promised). Returns 1 if deleted, 0 if the lock was not
/// ours (then nothing is announced). The last slot of a limited lock to go takes the limit with it.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r"
local token = ARGV[1]
local at = find(token)
if not at then
  redis.call('ZREM', readers, token)
  redis.call('HDEL', rholders, token)
  return 0
end
if at == 'x' then
  redis.call('DEL', base, base .. ':holder')
elseif at == 's' then
  redis.call('ZREM', readers, token)
  redis.call('HDEL', rholders, token)
else
  redis.call('DEL', slot_key(at), slot_key(at) .. ':holder')
  local n = tonumber(redis.call('GET', limitk) or '0') or 0
  local any = false
  for i = 0, n - 1 do
    if redis.call('EXISTS', slot_key(i)) == 1 then any = true; break end
  end
  if not any then redis.call('DEL', limitk) end
end
if ARGV[3] ~= '0' and not wake_head(now_ms()) then redis.call('PUBLISH', ARGV[2], '') end
return 1
",
    )
});

/// Read the lock's state without changing it, for `status`.
///
/// `KEYS`: lock, fence. `ARGV`: the caller's token (or `''`), and the number of slots to look at
/// at least (the caller's `--limit`, or 0; the stored limit counts too). Returns
/// `{fence, limit, intent, holders, waiting, next}`: the fence counter (`''` if none), the stored
/// limit (`''` if none), the exclusive waiter's mark's PTTL (-2 if none), and one `{place, pttl,
/// digest, mine, holder}` per hold: place `x` (exclusive), `s` (shared) or a slot number; a
/// SHA-1 of its token (so that nodes can be compared without ever revealing a token); 1 if the
/// token is the caller's; the holder hash as a flat list (a shared holder's record as one tab-separated string).
/// At most 1000 shared holders are listed. Then the number of live waiters in the queue and the
/// first one's record (tab-separated, `''` if none).
pub static STATUS: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r"
local token = ARGV[1]
local out = {}
local function add(place, value, pttl, holder)
  local mine = 0
  if value == token then mine = 1 end
  out[#out + 1] = {place, pttl, redis.sha1hex(value), mine, holder}
end
local v = redis.call('GET', base)
if v then add('x', v, redis.call('PTTL', base), redis.call('HGETALL', base .. ':holder')) end
local limit = redis.call('GET', limitk) or ''
local n = math.max(tonumber(ARGV[2]) or 0, tonumber(limit) or 0)
for i = 0, n - 1 do
  local k = slot_key(i)
  local t = redis.call('GET', k)
  if t then add(tostring(i), t, redis.call('PTTL', k), redis.call('HGETALL', k .. ':holder')) end
end
local now = now_ms()
local rs = redis.call('ZRANGEBYSCORE', readers, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1000)
for j = 1, #rs, 2 do
  add('s', rs[j], tonumber(rs[j + 1]) - now, {redis.call('HGET', rholders, rs[j]) or ''})
end
local waiting, next = redis.call('ZCOUNT', alive, '(' .. now, '+inf'), ''
for _, w in ipairs(redis.call('ZRANGE', queue, 0, 99)) do
  local beat = redis.call('ZSCORE', alive, w)
  if beat and tonumber(beat) > now then
    next = redis.call('HGET', waiters, w) or ''
    break
  end
end
return {redis.call('GET', KEYS[2]) or '', limit, redis.call('PTTL', intent), out, waiting, next}
",
    )
});

/// A waiter leaves the queue: it takes back its exclusive waiter's mark if it is still its own,
/// and, if it gives up, wakes whoever is first in line now, so that nobody waits for a waiter that
/// left. A waiter that leaves because it was granted wakes nobody: the lock is taken.
///
/// `KEYS`: lock. `ARGV`: waiter id, release channel, wake (`1` when giving up, else `0`). Returns
/// 1.
pub static WITHDRAW: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r"
local now = now_ms()
local first = queue_head(now) == ARGV[1]
leave(ARGV[1], now)
local marked = redis.call('GET', intent) == ARGV[1]
if marked then redis.call('DEL', intent) end
if ARGV[3] == '1' then
  if first then wake_head(now) end
  if marked then redis.call('PUBLISH', ARGV[2], '') end
end
return 1
",
    )
});

/// Break the lock: delete every hold of it (exclusive, every slot, every shared holder) and the
/// exclusive waiter's mark, whatever the tokens, and announce it. An operator's action for a stuck
/// lock; the fence counter is left alone, so a resource that checks fences refuses the old holder
/// once a later one has used it.
///
/// `KEYS`: lock. `ARGV`: release channel, the number of slots to clear at least. Returns how many
/// holds it ended.
pub static BREAK: LazyLock<Script> = LazyLock::new(|| {
    with_prelude(
        r"
local ended = redis.call('EXISTS', base)
redis.call('DEL', base, base .. ':holder')
local n = math.max(tonumber(redis.call('GET', limitk) or '0') or 0, tonumber(ARGV[2]) or 0)
for i = 0, n - 1 do
  ended = ended + redis.call('EXISTS', slot_key(i))
  redis.call('DEL', slot_key(i), slot_key(i) .. ':holder')
end
ended = ended + redis.call('ZCARD', readers)
redis.call('DEL', limitk, readers, rholders, intent)
if ended > 0 then redis.call('PUBLISH', ARGV[1], '') end
return ended
",
    )
});
