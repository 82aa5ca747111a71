//! Decoding the scripts' replies: each script answers with a small array (see [`super::scripts`]),
//! and anything else is a server error naming the script, never a panic.

use std::time::Duration;

use redis::Value;

use super::NodeView;
use super::fence;
use super::node::NodeError;

/// What a node said to an acquire request.
pub(super) enum Acquire {
    /// It granted the lease, with this fence.
    Granted(u64),
    /// Someone else holds the lock, for this many more milliseconds (negative: no expiry).
    Busy(i64),
}

/// Decodes the acquire script's `{1, fence, id}` / `{0, pttl, id}`; `id` is the server's
/// `run_id`, if it was asked for.
pub(super) fn acquire(value: Value) -> Result<(Acquire, Option<String>), NodeError> {
    let odd = || NodeError::Server("unexpected reply to the acquire script".to_owned());
    let Value::Array(items) = value else {
        return Err(odd());
    };
    let (reply, id) = match items.as_slice() {
        [Value::Int(1), Value::BulkString(f), id] => {
            let text = std::str::from_utf8(f).map_err(|_| odd())?;
            let fence = fence::parse(text).ok_or_else(|| {
                NodeError::Server(format!(
                    "the fence counter holds '{text}', which is not a non-negative integer"
                ))
            })?;
            (Acquire::Granted(fence), id)
        }
        [Value::Int(0), Value::Int(pttl), id] => (Acquire::Busy(*pttl), id),
        _ => return Err(odd()),
    };
    let id = match id {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    Ok((reply, id))
}

/// Decodes the status script's `{pttl, digest, mine, fence, holder}`.
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
        Value::Int(pttl),
        digest,
        Value::Int(mine),
        fence,
        Value::Array(holder),
    ] = items.as_slice()
    else {
        return Err(odd());
    };
    let digest = text(digest)?;
    let fence = text(fence)?;
    let holder = holder
        .chunks(2)
        .map(|pair| match pair {
            [k, v] => Ok((text(k)?, text(v)?)),
            _ => Err(odd()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NodeView {
        ttl: u64::try_from(*pttl).ok().map(Duration::from_millis),
        mine: *mine == 1,
        fence: fence::parse(&fence),
        digest: (!digest.is_empty()).then_some(digest),
        holder,
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
        let granted = Value::Array(vec![Value::Int(1), bulk("17"), Value::Nil]);
        assert!(matches!(acquire(granted), Ok((Acquire::Granted(17), None))));
        let busy = Value::Array(vec![Value::Int(0), Value::Int(900), bulk("ab12")]);
        assert!(matches!(acquire(busy), Ok((Acquire::Busy(900), Some(id))) if id == "ab12"));
        assert!(acquire(Value::Int(3)).is_err());
    }

    #[test]
    fn a_fence_that_is_not_a_number_is_a_server_error() {
        let bad = Value::Array(vec![Value::Int(1), bulk("-4"), Value::Nil]);
        let Err(NodeError::Server(why)) = acquire(bad) else {
            panic!("a negative fence decoded");
        };
        assert!(why.contains("'-4'"), "{why}");
    }

    #[test]
    fn status_replies_decode_a_holder_and_a_free_lock() {
        let held = Value::Array(vec![
            Value::Int(1500),
            bulk("d1"),
            Value::Int(1),
            bulk("7"),
            Value::Array(vec![bulk("host"), bulk("web1")]),
        ]);
        assert_eq!(
            status(held).unwrap(),
            NodeView {
                ttl: Some(Duration::from_millis(1500)),
                digest: Some("d1".to_owned()),
                mine: true,
                fence: Some(7),
                holder: vec![("host".to_owned(), "web1".to_owned())],
            }
        );
        let free = Value::Array(vec![
            Value::Int(-2),
            bulk(""),
            Value::Int(0),
            bulk(""),
            Value::Array(vec![]),
        ]);
        let view = status(free).unwrap();
        assert_eq!((view.ttl, view.digest, view.fence), (None, None, None));
        assert!(status(Value::Array(vec![Value::Int(1)])).is_err());
    }
}
