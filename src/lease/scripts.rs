//! The Lua scripts, in one place: each is the whole of one step of the lease protocol on one node.
//!
//! Every step that reads the lock and then writes it is a script, because Redis runs a script
//! atomically: a client-side `GET` followed by `DEL` could delete a lock that expired and was
//! re-acquired by someone else in between. Keys travel as `KEYS` and values as `ARGV`, never
//! spliced into the source, so a lock name is data and cannot become code. They use only commands
//! that Redis 6+ and Valkey both run in scripts.
//!
//! The key contract (other tools may read these keys), for a lock named `K` under prefix `P`:
//! - `P{K}` holds the current holder's token, with the lease's TTL;
//! - `P{K}:holder` is a hash (`host`, `pid`, `command`, `since`) that lives and dies with it;
//! - `P{K}:fence` is the fencing-token counter; it never expires;
//! - `P{K}:released` is a pub/sub channel (not a key) on which releases are announced.
//!
//! The `{K}` hash tag puts all three in one Redis Cluster slot, so one script may touch them all.

use std::sync::LazyLock;

use redis::Script;

/// Take the lock if free and hand out the next fencing token, atomically.
///
/// `KEYS`: lock, fence, holder. `ARGV`: token, ttl in ms, host, pid, command, since, identify.
/// Returns `{1, fence, id}` (fence as a decimal string, exact beyond 2^53) when granted, or
/// `{0, pttl, id}` with the holder's remaining time in ms when the lock is busy (the waiter uses
/// it). `id` is the server's `run_id` when `identify` is `1` (Redlock mode, so that one server
/// listed under two addresses is caught without a round trip of its own), else nil.
/// The same request twice (a retry after a lost reply) is granted twice with the same fence: while
/// our token holds the lock on this node, nobody else can have raised the counter here.
/// A missing counter (first use, or a node that restarted empty) starts at the node's `TIME` in
/// microseconds, so fences keep rising across such a restart as long as that node's clock does.
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local id = false
if ARGV[7] == '1' then
  id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or false
end
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  return {1, redis.call('GET', KEYS[2]), id}
end
if cur then
  return {0, redis.call('PTTL', KEYS[1]), id}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('INCR', KEYS[2])
else
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], t[1] .. string.sub('00000' .. t[2], -6))
end
redis.call('HSET', KEYS[3], 'host', ARGV[3], 'pid', ARGV[4], 'command', ARGV[5], 'since', ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return {1, redis.call('GET', KEYS[2]), id}
",
    )
});

/// Raise the fence counter to the fence the client chose, if the lock is still ours (Redlock's
/// second phase; see `fence.rs` for why it makes fences monotonic across a quorum).
///
/// `KEYS`: lock, fence. `ARGV`: token, fence. Returns 1 if the lock was still ours, else 0.
/// Counters are canonical decimal strings, so comparing length then text compares the numbers
/// exactly, without Lua's doubles.
pub static COMMIT_FENCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
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
/// `KEYS`: lock, holder. `ARGV`: token, ttl in ms. Returns 1 if extended, 0 if the lock is no
/// longer ours. It never creates a lock that is gone: a lease that lapsed stays lapsed.
pub static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
",
    )
});

/// Compare-and-`DEL`: delete the lock (and its holder record) only if it still holds our token,
/// and announce the release to waiters.
///
/// `KEYS`: lock, holder. `ARGV`: token, release channel. Returns 1 if deleted, 0 if the lock was
/// not ours (then nothing is announced).
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[2], '')
return 1
",
    )
});

/// Read the lock's state without changing it, for `status`.
///
/// `KEYS`: lock, holder, fence. `ARGV`: the caller's token, or `''`. Returns
/// `{pttl, digest, mine, fence, holder}`: the lock's remaining TTL in ms (-2 if free), a SHA-1 of
/// its token (so that nodes can be compared without ever revealing a token), 1 if the token is the
/// caller's, the fence counter (`''` if none) and the holder hash as a flat list.
pub static STATUS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
local fence = redis.call('GET', KEYS[3]) or ''
if not v then return {-2, '', 0, fence, {}} end
local mine = 0
if v == ARGV[1] then mine = 1 end
return {redis.call('PTTL', KEYS[1]), redis.sha1hex(v), mine, fence, redis.call('HGETALL', KEYS[2])}
",
    )
});
