//! Decoding the scripts' replies: each script answers with a small array (see [`super::scripts`]),
//! and anything else is a server error naming the script, never a panic.

use std::time::Duration;

use redis::Value;

use super::fence;
use super::node::NodeError;
use super::{Hold, NodeView, Place};

/// What a node said to an acquire request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Acquire {
    /// It granted the lease, with this fence, in this slot (0 unless the lock is limited).
    Granted(u64, u32),
    /// Turned away: the lock may have room in this many milliseconds (negative: unknown, or the
    /// caller waits in line to be woken), and the caller's ticket if it joined the queue.
    Busy(i64, Option<u64>),
    /// The lock is in use with another limit: that limit, or `exclusive`/`shared`.
    Mismatch(String),
}

/// Decodes the acquire script's `{1, fence, id, slot}` / `{0, pttl, id, ticket}` /
/// `{2, held, id}`; `id` is the server's `run_id`, if it was asked for.
pub(super) fn acquire(value: Value) -> Result<(Acquire, Option<String>), NodeError> {
    let odd = || NodeError::Server("unexpected reply to the acquire script".to_owned());
    let Value::Array(items) = value else {
        return Err(odd());
    };
    let (reply, id) = match items.as_slice() {
        [Value::Int(1), Value::BulkString(f), id, Value::Int(slot)] => {
            let text = std::str::from_utf8(f).map_err(|_| odd())?;
            let fence = fence::parse(text).ok_or_else(|| {
                NodeError::Server(format!(
                    "the fence counter holds '{text}', which is not a non-negative integer"
                ))
            })?;
            let slot = u32::try_from(*slot).map_err(|_| odd())?;
            (Acquire::Granted(fence, slot), id)
        }
        [Value::Int(0), Value::Int(pttl), id, ticket] => {
            let ticket = match ticket {
                Value::BulkString(t) => std::str::from_utf8(t).ok().and_then(fence::parse),
                _ => None,
            };
            (Acquire::Busy(*pttl, ticket), id)
        }
        [Value::Int(2), Value::BulkString(held), id] => (
            Acquire::Mismatch(String::from_utf8_lossy(held).chars().take(32).collect()),
            id,
        ),
        _ => return Err(odd()),
    };
    let id = match id {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    Ok((reply, id))
}

/// The fields of a shared holder's or a waiter's record, which the node stores as one
/// tab-separated string.
const RECORD: [&str; 4] = ["host", "pid", "command", "since"];

/// Decodes the status script's `{fence, limit, intent, holds, waiting, next}`.
pub(super) fn status(value: Value) -> Result<NodeView, NodeError> {
    let odd = || NodeError::Server("unexpected reply to the status script".to_owned());
    let text = |v: &Value| match v {
        Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        _ => Err(odd()),
    };
    let Value::Array(items) = value else {
        return Err(odd());
    };
    let [
        fence,
        limit,
        Value::Int(intent),
        Value::Array(holds),
        Value::Int(waiting),
        next,
    ] = items.as_slice()
    else {
        return Err(odd());
    };
    let record = |text: String| -> Vec<(String, String)> {
        RECORD
            .iter()
            .zip(text.split('\t'))
            .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
            .collect()
    };
    let holds = holds
        .iter()
        .map(|hold| {
            let Value::Array(fields) = hold else {
                return Err(odd());
            };
            let [
                place,
                Value::Int(pttl),
                digest,
                Value::Int(mine),
                Value::Array(holder),
            ] = fields.as_slice()
            else {
                return Err(odd());
            };
            let place = match text(place)?.as_str() {
                "x" => Place::Exclusive,
                "s" => Place::Shared,
                slot => Place::Slot(slot.parse().map_err(|_| odd())?),
            };
            let holder = if place == Place::Shared {
                record(holder.first().map(text).transpose()?.unwrap_or_default())
            } else {
                holder
                    .chunks(2)
                    .map(|pair| match pair {
                        [k, v] => Ok((text(k)?, text(v)?)),
                        _ => Err(odd()),
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            Ok(Hold {
                place,
                ttl: u64::try_from(*pttl).ok().map(Duration::from_millis),
                digest: text(digest)?,
                mine: *mine == 1,
                holder,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NodeView {
        fence: fence::parse(&text(fence)?),
        limit: text(limit)?.parse().ok(),
        exclusive_waiting: *intent != -2,
        holds,
        waiting: u64::try_from(*waiting).unwrap_or(0),
        next: Some(text(next)?)
            .filter(|t| !t.is_empty())
            .map(record)
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn acquire_replies_decode() {
        let granted = Value::Array(vec![Value::Int(1), bulk("17"), Value::Nil, Value::Int(2)]);
        assert_eq!(acquire(granted).unwrap(), (Acquire::Granted(17, 2), None));
        let busy = Value::Array(vec![Value::Int(0), Value::Int(900), bulk("ab12"), bulk("")]);
        assert_eq!(
            acquire(busy).unwrap(),
            (Acquire::Busy(900, None), Some("ab12".to_owned()))
        );
        let queued = Value::Array(vec![Value::Int(0), Value::Int(-1), Value::Nil, bulk("17")]);
        assert_eq!(
            acquire(queued).unwrap(),
            (Acquire::Busy(-1, Some(17)), None)
        );
        let other = Value::Array(vec![Value::Int(2), bulk("3"), Value::Nil]);
        assert_eq!(
            acquire(other).unwrap(),
            (Acquire::Mismatch("3".to_owned()), None)
        );
        assert!(acquire(Value::Int(3)).is_err());
    }

    #[test]
    fn a_fence_that_is_not_a_number_is_a_server_error() {
        let bad = Value::Array(vec![Value::Int(1), bulk("-4"), Value::Nil, Value::Int(0)]);
        let Err(NodeError::Server(why)) = acquire(bad) else {
            panic!("a negative fence decoded");
        };
        assert!(why.contains("'-4'"), "{why}");
    }

    #[test]
    fn status_replies_decode_every_kind_of_hold_and_a_free_lock() {
        let hold = |place: &str, ttl: i64, mine: i64, holder: Vec<Value>| {
            Value::Array(vec![
                bulk(place),
                Value::Int(ttl),
                bulk("d1"),
                Value::Int(mine),
                Value::Array(holder),
            ])
        };
        let reply = Value::Array(vec![
            bulk("7"),
            bulk("3"),
            Value::Int(-2),
            Value::Array(vec![
                hold("x", 1500, 1, vec![bulk("host"), bulk("web1")]),
                hold("2", 900, 0, vec![]),
                hold("s", 800, 0, vec![bulk("web2\t42\treport\t1764000000")]),
            ]),
            Value::Int(2),
            bulk("web3\t7\tbackup\t1764000001"),
        ]);
        let view = status(reply).unwrap();
        assert_eq!((view.fence, view.limit), (Some(7), Some(3)));
        assert!(!view.exclusive_waiting);
        assert_eq!(
            view.holds[0],
            Hold {
                place: Place::Exclusive,
                ttl: Some(Duration::from_millis(1500)),
                digest: "d1".to_owned(),
                mine: true,
                holder: vec![("host".to_owned(), "web1".to_owned())],
            }
        );
        assert_eq!(view.holds[1].place, Place::Slot(2));
        assert_eq!(view.holds[2].place, Place::Shared);
        assert_eq!(view.holds[2].holder[1], ("pid".to_owned(), "42".to_owned()));
        assert_eq!(view.holds[2].holder.len(), 4);
        assert_eq!(view.waiting, 2);
        assert_eq!(view.next[0], ("host".to_owned(), "web3".to_owned()));

        let free = Value::Array(vec![
            bulk(""),
            bulk(""),
            Value::Int(900),
            Value::Array(vec![]),
            Value::Int(0),
            bulk(""),
        ]);
        let view = status(free).unwrap();
        assert_eq!((view.fence, view.limit), (None, None));
        assert!(view.exclusive_waiting && view.holds.is_empty());
        assert!(status(Value::Array(vec![Value::Int(1)])).is_err());
    }
}
