//! rlock's own connection to a Redis server: the socket, the handshake, and one deadline per
//! request.
//!
//! The redis crate's connection bounds each `read` by a socket timeout, not the request: a server
//! that drips a byte every half second keeps a request alive for ever, and a reply announcing two
//! billion elements is allocated before a single one arrives. So rlock owns the socket (TCP, Unix
//! or TLS through rustls) and the framing, and hands the redis crate only what it is good at:
//! commands, scripts ([`Conn`] implements [`redis::ConnectionLike`]) and decoding a reply that is
//! known to be complete. Each request has a deadline on the boot clock; every read and write is
//! given the time left before it, reads interrupted by a signal are resumed, and a reply must be
//! complete, and at most [`MAX_REPLY`] bytes, by then. An aggregate announcing more elements
//! than that many bytes could hold is refused before anything is allocated for it.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use redis::{ConnectionLike, RedisError, RedisResult, Value};
use rustls::{ClientConfig, ClientConnection, StreamOwned, pki_types::ServerName};

use crate::clock::{self, Stamp};

/// The largest reply rlock reads: its scripts answer in a few hundred bytes.
pub const MAX_REPLY: usize = 1 << 20;
/// How deeply aggregates may nest in a reply (rlock's replies nest two deep).
const MAX_DEPTH: usize = 8;

/// Where a server listens.
#[derive(Clone, Debug)]
pub enum Addr {
    /// Host and port, in the clear.
    Tcp(String, u16),
    /// Host and port, through TLS with this configuration.
    Tls(String, u16, Arc<ClientConfig>),
    /// A Unix socket.
    Unix(PathBuf),
}

/// How to open and prepare a connection: the address and what the handshake sends.
#[derive(Clone, Debug)]
pub struct Target {
    /// Where the server listens.
    pub addr: Addr,
    /// The ACL user, if not `default`.
    pub user: Option<String>,
    /// The password, if the server wants one.
    pub password: Option<String>,
    /// The database to `SELECT` (0 is not selected).
    pub db: i64,
}

/// An open connection: the socket, and the bytes read but not yet consumed.
pub struct Conn {
    stream: Stream,
    /// Bytes received that are not yet a complete reply.
    buf: Vec<u8>,
    /// When the current request must have its answer.
    deadline: Stamp,
    /// The database selected, for [`ConnectionLike::get_db`].
    db: i64,
    /// Whether an error left the connection in an unknown state.
    broken: bool,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<StreamOwned<ClientConnection, Timed>>),
}

/// The TCP socket under TLS, which re-arms its timeouts before every read and write: rustls
/// reads and writes several times per call while it handshakes, and each must get only the
/// time left, or a server dripping its handshake would outlast the deadline.
struct Timed {
    sock: TcpStream,
    deadline: Stamp,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.timeouts(Some(left(self.deadline)?))?;
        self.sock.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.timeouts(Some(left(self.deadline)?))?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

impl Target {
    /// Connects, authenticates and selects the database, all before `deadline`.
    pub fn connect(&self, deadline: Stamp) -> RedisResult<Conn> {
        let stream = match &self.addr {
            Addr::Tcp(host, port) => Stream::Tcp(tcp(host, *port, deadline)?),
            Addr::Tls(host, port, config) => {
                let name = ServerName::try_from(host.clone()).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("'{host}' is not a valid TLS server name"),
                    )
                })?;
                let tls =
                    ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
                let sock = Timed {
                    sock: tcp(host, *port, deadline)?,
                    deadline,
                };
                Stream::Tls(Box::new(StreamOwned::new(tls, sock)))
            }
            Addr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        };
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
            deadline,
            db: 0,
            broken: false,
        };
        if let Some(password) = &self.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &self.user {
                auth.arg(user);
            }
            auth.arg(password).query::<()>(&mut conn)?;
        }
        if self.db != 0 {
            redis::cmd("SELECT").arg(self.db).query::<()>(&mut conn)?;
            conn.db = self.db;
        }
        Ok(conn)
    }
}

/// A TCP connection to `host:port`, trying each address it resolves to until `deadline`.
fn tcp(host: &str, port: u16, deadline: Stamp) -> io::Result<TcpStream> {
    let mut failure = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, left(deadline)?) {
            Ok(stream) => {
                // Every request is a small message whose answer we wait for.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => failure = Some(e),
        }
    }
    Err(failure.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("'{host}' resolves to no address"),
        )
    }))
}

/// The time left before `deadline`; a timeout error once it has passed (zero would mean "no
/// timeout" to a socket).
fn left(deadline: Stamp) -> io::Result<Duration> {
    let left = deadline.remaining();
    if left.is_zero() {
        return Err(io::Error::from(io::ErrorKind::TimedOut));
    }
    Ok(left.max(Duration::from_millis(1)))
}

impl Conn {
    /// Sets the deadline of the requests that follow.
    pub fn set_deadline(&mut self, deadline: Stamp) {
        self.deadline = deadline;
    }

    /// Reads the next reply (a pub/sub message, say) before `deadline`; a timeout leaves the
    /// connection usable, with any part of a reply already read kept for the next call.
    pub fn recv_until(&mut self, deadline: Stamp) -> RedisResult<Value> {
        self.deadline = deadline;
        self.recv()
    }

    /// Gives the socket the time left, for reads and writes alike.
    fn arm(&mut self) -> io::Result<()> {
        let left = Some(left(self.deadline)?);
        match &mut self.stream {
            Stream::Tcp(s) => s.timeouts(left),
            Stream::Unix(s) => s.timeouts(left),
            Stream::Tls(s) => {
                s.sock.deadline = self.deadline;
                Ok(())
            }
        }
    }

    /// Writes all of `bytes` before the deadline.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut sent = 0;
        while sent < bytes.len() {
            self.arm()?;
            match self.stream.write(&bytes[sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) if self.again(&e) => {}
                Err(e) => return Err(e),
            }
        }
        loop {
            self.arm()?;
            match self.stream.flush() {
                Ok(()) => return Ok(()),
                Err(e) if self.again(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one complete reply before the deadline.
    fn recv(&mut self) -> RedisResult<Value> {
        loop {
            match reply_len(&self.buf) {
                Ok(Some(len)) => {
                    let value = redis::parse_redis_value(&self.buf[..len]);
                    self.buf.drain(..len);
                    return value;
                }
                Ok(None) if self.buf.len() < MAX_REPLY => {}
                Ok(None) => return Err(Bad::TooLong.into()),
                Err(bad) => return Err(bad.into()),
            }
            self.fill()?;
        }
    }

    /// Reads what has arrived (at least a byte) into the buffer, before the deadline.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        loop {
            self.arm()?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if self.again(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether an I/O error only means "try again": a signal interrupted the call, or the socket
    /// timed out a moment before the deadline (timers are coarse). Past the deadline, the next
    /// [`arm`](Self::arm) fails with the timeout.
    fn again(&self, e: &io::Error) -> bool {
        match e.kind() {
            io::ErrorKind::Interrupted => true,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                !self.deadline.remaining().is_zero()
            }
            _ => false,
        }
    }

    /// Runs `f`, marking the connection broken if it fails other than with a server's error
    /// reply.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Conn) -> RedisResult<T>) -> RedisResult<T> {
        let result = f(self);
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.guard(|conn| {
            conn.send(cmd)?;
            conn.recv()
        })
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.guard(|conn| {
            conn.send(cmd)?;
            let mut replies = Vec::with_capacity(count);
            for i in 0..offset + count {
                let reply = conn.recv()?;
                if i >= offset {
                    replies.push(reply);
                }
            }
            Ok(replies)
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        self.deadline = clock::now() + Duration::from_secs(1);
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        !self.broken
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A socket whose reads and writes can be bounded in time.
trait Socket {
    fn timeouts(&self, d: Option<Duration>) -> io::Result<()>;
}

impl Socket for TcpStream {
    fn timeouts(&self, d: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(d)?;
        self.set_write_timeout(d)
    }
}

impl Socket for UnixStream {
    fn timeouts(&self, d: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(d)?;
        self.set_write_timeout(d)
    }
}

/// Why bytes from the server are not a reply rlock will read.
#[derive(Debug, PartialEq, Eq)]
enum Bad {
    /// Not the Redis protocol.
    Garbage,
    /// A string of this many bytes, or an aggregate of this many elements, beyond [`MAX_REPLY`].
    TooBig(i64, &'static str),
    /// More than [`MAX_REPLY`] bytes without a complete reply.
    TooLong,
    /// Aggregates nested beyond [`MAX_DEPTH`].
    TooDeep,
}

impl From<Bad> for RedisError {
    fn from(bad: Bad) -> RedisError {
        let what = match bad {
            Bad::Garbage => "answered with something other than the Redis protocol".to_owned(),
            Bad::TooBig(n, unit) => {
                format!(
                    "announced a reply of {n} {unit}, beyond rlock's limit of {MAX_REPLY} bytes"
                )
            }
            Bad::TooLong => format!("sent more than {MAX_REPLY} bytes without completing a reply"),
            Bad::TooDeep => format!("sent a reply nested more than {MAX_DEPTH} deep"),
        };
        RedisError::from(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} (is this a Redis server?)"),
        ))
    }
}

/// The length of the complete reply at the start of `buf`, `None` if more bytes are needed.
///
/// It only scans: nothing is allocated for what a reply announces, so a length that the bytes
/// cannot back is refused before anything trusts it.
fn reply_len(buf: &[u8]) -> Result<Option<usize>, Bad> {
    scan(buf, 0, 0)
}

/// Where the reply starting at `at` ends (see [`reply_len`]).
fn scan(buf: &[u8], at: usize, depth: usize) -> Result<Option<usize>, Bad> {
    if depth > MAX_DEPTH {
        return Err(Bad::TooDeep);
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    if !b"+-:$*".contains(&kind) {
        return Err(Bad::Garbage);
    }
    let Some(eol) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[at + 1..at + eol];
    let next = at + eol + 2;
    match kind {
        b'+' | b'-' => Ok(Some(next)),
        b':' => number(line).map(|_| Some(next)),
        b'$' => match number(line)? {
            -1 => Ok(Some(next)),
            n => {
                let n = size(n).map_err(|big| {
                    if big {
                        Bad::TooBig(n, "bytes")
                    } else {
                        Bad::Garbage
                    }
                })?;
                let end = next + n + 2;
                if buf.len() < end {
                    Ok(None)
                } else if &buf[end - 2..end] == b"\r\n" {
                    Ok(Some(end))
                } else {
                    Err(Bad::Garbage)
                }
            }
        },
        _ => match number(line)? {
            -1 => Ok(Some(next)),
            n => {
                // Every element takes at least three bytes (`+\r\n`).
                let count = size(n).map_err(|big| {
                    if big {
                        Bad::TooBig(n, "elements")
                    } else {
                        Bad::Garbage
                    }
                })?;
                if count > MAX_REPLY / 3 {
                    return Err(Bad::TooBig(n, "elements"));
                }
                let mut end = next;
                for _ in 0..count {
                    match scan(buf, end, depth + 1)? {
                        Some(e) => end = e,
                        None => return Ok(None),
                    }
                }
                Ok(Some(end))
            }
        },
    }
}

/// A RESP length or integer.
fn number(line: &[u8]) -> Result<i64, Bad> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Bad::Garbage)
}

/// A length `n` within [`MAX_REPLY`]; `Err(true)` if beyond it, `Err(false)` if negative.
fn size(n: i64) -> Result<usize, bool> {
    match usize::try_from(n) {
        Ok(n) if n <= MAX_REPLY => Ok(n),
        Ok(_) => Err(true),
        Err(_) => Err(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_replies_are_measured_and_partial_ones_wait() {
        let reply = b"*5\r\n:-2\r\n$0\r\n\r\n:0\r\n$3\r\nabc\r\n*1\r\n+OK\r\n";
        assert_eq!(reply_len(reply), Ok(Some(reply.len())));
        for cut in 0..reply.len() {
            assert_eq!(reply_len(&reply[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(reply_len(b"-ERR no\r\n+OK\r\n"), Ok(Some(9)));
        assert_eq!(reply_len(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(reply_len(b"*-1\r\n"), Ok(Some(5)));
    }

    #[test]
    fn what_is_not_redis_or_too_big_is_refused_before_it_is_read() {
        assert_eq!(
            reply_len(b"HTTP/1.1 400 Bad Request\r\n"),
            Err(Bad::Garbage)
        );
        assert_eq!(
            reply_len(b"*2147483647\r\n"),
            Err(Bad::TooBig(2_147_483_647, "elements"))
        );
        assert_eq!(
            reply_len(b"$2147483647\r\n"),
            Err(Bad::TooBig(2_147_483_647, "bytes"))
        );
        assert_eq!(reply_len(b"$3\r\nabcd\r\n"), Err(Bad::Garbage));
        assert_eq!(reply_len(b":x\r\n"), Err(Bad::Garbage));
        assert_eq!(reply_len(b"*-5\r\n"), Err(Bad::Garbage));
        assert_eq!(reply_len(&b"*1\r\n".repeat(20)), Err(Bad::TooDeep));
    }
}
