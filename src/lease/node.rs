//! One Redis node: its address, a lazily opened connection, and every request bounded in time.
//!
//! A node can fail in ways a lock tool must survive: refuse connections, accept them and never
//! answer (a paused server: the kernel still completes the TCP handshake), or answer late. So every
//! request carries a deadline that bounds connect, write and read, and a connection that failed or
//! timed out is dropped, never reused: its late reply would otherwise be read as the answer to the
//! next request. A connection the server closed while idle (its `timeout`, `CLIENT KILL`, a load
//! balancer) is reopened once within the same deadline, which is safe because every script is
//! idempotent for its token. Errors name the node by its redacted URL, never quote credentials,
//! say what a server's refusal means (a replica, out of memory), and are one line.

use std::fmt;
use std::time::Duration;

use redis::{ErrorKind, FromRedisValue, RedisError, Script, ServerErrorKind};

use super::conn::Conn;
use super::endpoint::{Endpoint, Tls};
use crate::clock::Stamp;

/// One Redis master of the lock.
pub struct Node {
    /// How to reach it.
    endpoint: Endpoint,
    /// Where a cluster's `MOVED` reply sent us last: the owner of the lock's slot.
    route: Option<Endpoint>,
    /// The URL with credentials masked: how the node appears in every message.
    name: String,
    /// The configured per-request timeout, for messages ("no answer within 100ms").
    timeout: Duration,
    /// The open connection, if the last request left it in a known state.
    conn: Option<Conn>,
    /// The password in the URL, to mask should a library message quote it.
    password: Option<String>,
}

/// Why a request to a node did not produce an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeError {
    /// No answer before the deadline.
    TimedOut(Duration),
    /// Nothing listens at the address.
    Refused,
    /// The server rejected the credentials.
    Auth,
    /// The ACL user may not run a command, or touch a key or channel, that rlock needs.
    Denied(String),
    /// The server answered with an error.
    Server(String),
    /// The server is in a state in which it refuses rlock's requests (a read-only replica, out
    /// of memory, busy with a script, loading its data), said in words.
    Refusing(String),
    /// The server wants a password and the URL gives none.
    NeedsPassword,
    /// The connection failed otherwise.
    Io(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::TimedOut(d) => {
                write!(f, "no answer within {}", humantime::format_duration(*d))
            }
            NodeError::Refused => f.write_str("connection refused"),
            NodeError::Auth => {
                f.write_str("authentication failed (check the user name and password)")
            }
            NodeError::Denied(e) => write!(
                f,
                "permission denied ({e}); the ACL user needs the rules in README.md, 'Connecting'"
            ),
            NodeError::Server(e) => write!(f, "answered with an error: {e}"),
            NodeError::NeedsPassword => f.write_str(
                "the server requires a password: give it in the URL (redis://:PASSWORD@host), \
                 through RLOCK_REDIS or --redis-file so that ps does not show it",
            ),
            NodeError::Refusing(e) | NodeError::Io(e) => f.write_str(e),
        }
    }
}

impl Node {
    /// A node for `url`, not yet connected; `Err` is a message for a usage error.
    pub fn new(url: &str, timeout: Duration, tls: &Tls) -> Result<Node, String> {
        let name = redact(url);
        let endpoint = Endpoint::parse(url, &name, tls)?;
        let password = endpoint.password().map(str::to_owned);
        Ok(Node {
            endpoint,
            route: None,
            name,
            timeout,
            conn: None,
            password,
        })
    }

    /// The node's redacted URL.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How to reach the node, for connections of other kinds (pub/sub).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The server's address, to detect the same address listed twice (`None` behind Sentinel).
    pub fn addr(&self) -> Option<&redis::ConnectionAddr> {
        self.endpoint.addr()
    }

    /// Runs `script` with `keys` and `args`, answering before `deadline` or failing.
    pub fn eval<T: FromRedisValue>(
        &mut self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
        deadline: Stamp,
    ) -> Result<T, NodeError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        self.request(deadline, |conn| invocation.invoke(conn))
    }

    /// Runs `cmd`, a read-only command, answering before `deadline` or failing.
    pub fn query<T: FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        deadline: Stamp,
    ) -> Result<T, NodeError> {
        self.request(deadline, |conn| cmd.query(conn))
    }

    /// Another node of the same cluster, at `host:port`, with this one's credentials, database
    /// and TLS settings; `None` for a form that cannot be redirected (Unix socket, Sentinel).
    pub fn at(&self, host: &str, port: u16) -> Option<Node> {
        let scheme = self.name.split_once("://").map_or("redis", |(s, _)| s);
        let shown = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        Some(Node {
            endpoint: self.endpoint.at(host, port)?,
            route: None,
            name: format!("{scheme}://{shown}:{port}"),
            timeout: self.timeout,
            conn: None,
            password: self.password.clone(),
        })
    }

    /// Runs one request on a connection whose socket timeouts end at `deadline`, following a
    /// cluster's redirections.
    fn request<T>(
        &mut self,
        deadline: Stamp,
        op: impl Fn(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T, NodeError> {
        for _ in 0..=MAX_REDIRECTS {
            let (to, ask) = match self.try_request(deadline, &op) {
                Try::Done(result) => return result,
                Try::Redirected { to, ask } => (to, ask),
            };
            let target = to
                .rsplit_once(':')
                .and_then(|(host, port)| self.endpoint.at(host, port.parse().ok()?))
                .ok_or_else(|| {
                    NodeError::Server(format!(
                        "the cluster redirected to {to}, which rlock cannot reach"
                    ))
                })?;
            if ask {
                return self.ask(&target, deadline, &op);
            }
            // The slot lives there now: go there for this request and the next ones.
            self.route = Some(target);
            self.conn = None;
        }
        Err(NodeError::Server(format!(
            "the cluster redirected rlock more than {MAX_REDIRECTS} times: is it resharding?"
        )))
    }

    /// Runs `op` once on `target`, a node importing the lock's slot, after `ASKING`. `ASKING`
    /// covers one command, and a target that lacks the script answers `EVALSHA` with `NOSCRIPT`,
    /// loads it, and then sends us back: the second try finds the script loaded.
    fn ask<T>(
        &self,
        target: &Endpoint,
        deadline: Stamp,
        op: &impl Fn(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T, NodeError> {
        let mut conn = target.connect(deadline).map_err(|e| self.failure(&e))?;
        let mut ask = || {
            timed(&mut conn, deadline, |conn| {
                redis::cmd("ASKING").query::<()>(conn)?;
                op(conn)
            })
        };
        match ask() {
            Err(e) if e.redirect_node().is_some() => ask(),
            result => result,
        }
        .map_err(|e| self.failure(&e))
    }

    /// One try of [`request`](Self::request), on the node a redirection last pointed to.
    fn try_request<T>(
        &mut self,
        deadline: Stamp,
        op: &impl Fn(&mut Conn) -> redis::RedisResult<T>,
    ) -> Try<T> {
        if self.conn.is_none() {
            let endpoint = self.route.as_ref().unwrap_or(&self.endpoint);
            match endpoint.connect(deadline) {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => return Try::Done(Err(self.failure(&e))),
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut result = timed(conn, deadline, op);
        if result.as_ref().is_err_and(dropped) && !deadline.remaining().is_zero() {
            // The server closed a connection it found idle (its `timeout`, `CLIENT KILL`, a load
            // balancer): ask once more on a fresh one. Every script is idempotent for its token,
            // so a request that did run before the connection dropped does no harm twice.
            let endpoint = self.route.as_ref().unwrap_or(&self.endpoint);
            result = endpoint.connect(deadline).and_then(|fresh| {
                *conn = fresh;
                timed(conn, deadline, op)
            });
        }
        while result.as_ref().is_err_and(|e| e.code() == Some("TRYAGAIN")) {
            // A multi-key script in a slot that is being migrated, some keys already moved:
            // Redis asks to try again shortly.
            if deadline.remaining() <= TRY_AGAIN {
                break;
            }
            std::thread::sleep(TRY_AGAIN);
            result = timed(conn, deadline, op);
        }
        if let Err(e) = &result
            && let Some((to, _slot)) = e.redirect_node()
        {
            let ask = e.kind() == ErrorKind::Server(ServerErrorKind::Ask);
            return Try::Redirected {
                to: to.to_owned(),
                ask,
            };
        }
        let result = result.map_err(|e| self.failure(&e));
        if result
            .as_ref()
            .is_err_and(|e| !matches!(e, NodeError::Server(_)))
        {
            // The connection's state is unknown (a reply may still be in flight): start over.
            self.conn = None;
        }
        Try::Done(result)
    }

    /// What the user needs to know of `e`, with the password masked and, for the usual TLS
    /// mistakes, a hint.
    fn failure(&self, e: &RedisError) -> NodeError {
        match classify(e, self.timeout, self.password.as_deref()) {
            NodeError::Auth if self.password.is_none() => NodeError::NeedsPassword,
            NodeError::Io(text) => {
                let hint = if text.contains("invalid peer certificate") {
                    " (the server's certificate is not trusted: give its CA with --tls-ca)"
                } else if text.contains("CertificateRequired") {
                    " (the server wants a client certificate: give --tls-cert and --tls-key)"
                } else if text.contains("reset by peer") && self.name.starts_with("redis://") {
                    " (if this port speaks TLS, use a rediss:// URL)"
                } else {
                    ""
                };
                NodeError::Io(one_line(&(text + hint)))
            }
            NodeError::Server(text) => NodeError::Server(one_line(&text)),
            NodeError::Denied(text) => NodeError::Denied(one_line(&text)),
            other => other,
        }
    }
}

/// How many cluster redirections one request follows.
const MAX_REDIRECTS: u32 = 5;
/// The pause before retrying a request a cluster answered with `TRYAGAIN`.
const TRY_AGAIN: Duration = Duration::from_millis(10);

/// The outcome of one try of a request.
enum Try<T> {
    /// An answer, or a failure.
    Done(Result<T, NodeError>),
    /// A cluster's `MOVED` (or, with `ask`, `ASK`) to `to`, `host:port`.
    Redirected { to: String, ask: bool },
}

/// Runs `op` on `conn`, all of it ending by `deadline`.
fn timed<T>(
    conn: &mut Conn,
    deadline: Stamp,
    op: impl FnOnce(&mut Conn) -> redis::RedisResult<T>,
) -> redis::RedisResult<T> {
    conn.set_deadline(deadline);
    op(conn)
}

/// Whether `e` says the connection was closed under us: end of file, reset, broken pipe.
fn dropped(e: &RedisError) -> bool {
    e.is_connection_dropped() && !e.is_connection_refusal()
}

/// Turns a client error into what the user needs to know, with `secret` masked.
fn classify(e: &RedisError, timeout: Duration, secret: Option<&str>) -> NodeError {
    let scrub = |text: String| match secret {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text,
    };
    if e.is_timeout() {
        NodeError::TimedOut(timeout)
    } else if e.is_connection_refusal() {
        NodeError::Refused
    } else if e.kind() == ErrorKind::AuthenticationFailed
        || e.code().is_some_and(|c| c == "NOAUTH" || c == "WRONGPASS")
        // Redis refuses a long command from a client that has not authenticated with this
        // (and closes the connection) before it would say NOAUTH.
        || e.to_string().contains("Protocol error: unauthenticated")
    {
        NodeError::Auth
    } else if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm)
        || e.to_string().contains("NOPERM")
    {
        NodeError::Denied(scrub(e.to_string()))
    } else if let Some(meaning) = e.code().and_then(refusal) {
        NodeError::Refusing(meaning.to_owned())
    } else if matches!(e.kind(), ErrorKind::Server(_)) {
        NodeError::Server(scrub(e.to_string()))
    } else {
        NodeError::Io(scrub(e.to_string()))
    }
}

/// What an error code says about the server's state, for the codes that mean "not now" or "not
/// here" rather than a bug.
fn refusal(code: &str) -> Option<&'static str> {
    Some(match code {
        "READONLY" => "node is a read-only replica (READONLY): give rlock the primary",
        "OOM" => "out of memory (OOM): the server reached its maxmemory and refuses writes",
        "BUSY" => "the server is busy running a script (BUSY)",
        "LOADING" => "the server is loading its data into memory (LOADING)",
        "MASTERDOWN" => "the replica lost its link to its primary (MASTERDOWN)",
        "MISCONF" => "the server refuses writes after a failed snapshot (MISCONF)",
        _ => return None,
    })
}

/// The most characters of a server's or library's text that a message quotes.
const MAX_QUOTE: usize = 300;

/// `text` as one line of at most [`MAX_QUOTE`] characters: whatever a server sends ends up in
/// rlock's one-line diagnostics.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTE)
        .collect();
    if text.chars().nth(MAX_QUOTE).is_some() {
        line.push('…');
    }
    line
}

/// Runs `op` on every node at once and returns the results in node order.
///
/// Latency is the slowest node's, not the sum: each node gets its own thread (the first runs on
/// the caller's, so the single-node path spawns nothing). `op` returns `None` for a node it skips.
pub fn on_all<T: Send>(
    nodes: &mut [Node],
    op: impl Fn(usize, &mut Node) -> Option<T> + Sync,
) -> Vec<Option<T>> {
    let op = &op;
    match nodes {
        [] => Vec::new(),
        [only] => vec![op(0, only)],
        [first, rest @ ..] => std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .iter_mut()
                .enumerate()
                .map(|(i, node)| scope.spawn(move || op(i + 1, node)))
                .collect();
            let mut results = vec![op(0, first)];
            results.extend(handles.into_iter().map(|h| h.join().unwrap_or(None)));
            results
        }),
    }
}

/// `url` with any password masked, for messages: `redis://user:***@host:6379/0`.
///
/// It must hold for URLs that do not parse too, since they are quoted in the error that says so:
/// a password may hold `/`, `?` or `#` unescaped, so the credentials run to the *last* `@`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    // A Unix socket URL has no authority: its path starts at once, credentials in the query.
    let (authority, tail) = match rest.rfind('@') {
        Some(at) if !rest.starts_with('/') => {
            let (userinfo, host_and_tail) = rest.split_at(at);
            let masked = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            (masked, host_and_tail)
        }
        _ => (String::new(), rest),
    };
    // redis+unix URLs carry the password in the query (`?pass=...`).
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _))
                        if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
                    {
                        format!("{k}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

    #[test]
    fn redaction_masks_passwords_and_keeps_the_rest() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("redis://:s3cret@h:1/2"), "redis://:***@h:1/2");
        assert_eq!(redact("redis://alice:s3cret@h"), "redis://alice:***@h");
        assert_eq!(redact("rediss://tok@h:6380"), "rediss://***@h:6380");
        assert_eq!(redact("redis://a:b@c@h/0"), "redis://a:***@h/0");
        assert_eq!(
            redact("redis+unix:///run/r.sock?db=1&pass=s3cret"),
            "redis+unix:///run/r.sock?db=1&pass=***"
        );
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(redact("redis://u:Pa55/w0?r#d@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(
            redact("redis+sentinel://:pw@a:1,b:2/svc"),
            "redis+sentinel://:***@a:1,b:2/svc"
        );
    }

    #[test]
    fn quoted_text_is_one_line_and_capped() {
        assert_eq!(one_line("a\r\nb\tc"), "a  b c");
        let long = one_line(&"x".repeat(1000));
        assert_eq!(long.chars().count(), MAX_QUOTE + 1);
        assert!(long.ends_with('…'));
        assert_eq!(one_line(&"é".repeat(MAX_QUOTE)), "é".repeat(MAX_QUOTE));
    }

    #[test]
    fn refusals_are_said_in_words() {
        assert!(refusal("READONLY").unwrap().contains("read-only replica"));
        assert!(refusal("OOM").unwrap().contains("out of memory"));
        assert_eq!(refusal("ERR"), None);
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_its_password() {
        let err = Node::new("http://u:s3cret@h", Duration::from_secs(1), &Tls::default())
            .err()
            .unwrap();
        assert!(err.contains("http://u:***@h"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn on_all_keeps_node_order_and_skips() {
        let mut nodes: Vec<Node> = (0..4)
            .map(|i| {
                Node::new(
                    &format!("redis://127.0.0.1:{}", 1000 + i),
                    Duration::from_secs(1),
                    &Tls::default(),
                )
                .unwrap()
            })
            .collect();
        let got = on_all(&mut nodes, |i, n| (i != 2).then(|| n.name().to_owned()));
        assert_eq!(
            got,
            vec![
                Some("redis://127.0.0.1:1000".to_owned()),
                Some("redis://127.0.0.1:1001".to_owned()),
                None,
                Some("redis://127.0.0.1:1003".to_owned())
            ]
        );
    }

    #[test]
    fn an_unreachable_node_is_refused_within_its_deadline() {
        let mut node = Node::new(
            "redis://127.0.0.1:1",
            Duration::from_millis(200),
            &Tls::default(),
        )
        .unwrap();
        let got: Result<i64, _> = node.eval(
            &super::super::scripts::RELEASE,
            &["k", "h"],
            &["t"],
            clock::now() + Duration::from_millis(200),
        );
        assert_eq!(got, Err(NodeError::Refused));
    }
}
