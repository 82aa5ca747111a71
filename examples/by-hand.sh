#!/bin/sh
# A lease by hand, for a script whose steps cannot be one command under
# `rlock run`: acquire, work while a background loop extends the lease,
# release in a trap on any exit.
#
# Environment: RLOCK_REDIS (the node URLs, as for rlock); RLOCK_TTL (the
# lease's time to live, default here 5m) and EXTEND_EVERY (seconds
# between extensions, default 60: well under the TTL).
set -eu
: "${RLOCK_TTL:=5m}" "${EXTEND_EVERY:=60}"
export RLOCK_TTL

# Prints `export RLOCK_KEY=... RLOCK_TOKEN=... RLOCK_FENCE=...`: what
# `rlock extend` and `rlock release` read. An assignment rather than
# `eval "$(...)"`, so that set -e exits here (75) if the lock is busy.
lease=$(rlock acquire -k nightly-etl --format shell)
eval "$lease"

# If the lease is lost, stop the script (TERM: exit 124) rather than
# work on without the lock.
( while sleep "$EXTEND_EVERY"; do
    rlock extend || { kill -TERM $$; exit 1; }
  done ) &
extender=$!
trap 'exit 124' TERM
trap 'kill "$extender" 2>/dev/null; rlock release' EXIT

for step in extract transform load; do
  echo "$step with fence $RLOCK_FENCE"
  sleep 1   # the work
done
