#!/bin/sh
# A fenced resource in files: DIR/value is written only by a holder whose fencing token is
# greater than the last one accepted (DIR/fence), so that a holder whose lease has ended (it was
# paused, or its packets were late) cannot overwrite a newer holder's value.
#
#   rlock -k publish -- fenced-write.sh /srv/resource "new value"
#
# Exit 0: written. Exit 1: rejected (a newer holder has written; stop). RLOCK_FENCE comes from
# rlock. The check and the write happen under one local flock(1), so that they are atomic.
set -eu
[ $# -eq 2 ] || { echo "usage: fenced-write.sh DIR VALUE (under rlock)" >&2; exit 2; }
dir=$1 value=$2
fence=${RLOCK_FENCE:?not set: run this under rlock}
case $fence in '' | *[!0-9]*) echo "fenced-write: RLOCK_FENCE '$fence' is not a number" >&2; exit 2 ;; esac

exec 9>>"$dir/lock"
flock 9
last=$(cat "$dir/fence" 2>/dev/null || echo 0)
if [ "$fence" -le "$last" ]; then
  echo "fenced-write: stale fence $fence (the resource has seen $last): write rejected" >&2
  exit 1
fi
# The fence first: if we die between the two renames, a stale holder is still refused.
printf '%s\n' "$fence" >"$dir/fence.new" && mv "$dir/fence.new" "$dir/fence"
printf '%s\n' "$value" >"$dir/value.new" && mv "$dir/value.new" "$dir/value"
