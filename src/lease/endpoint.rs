//! How to reach a node: the forms a Redis URL takes, TLS, Sentinel and Cluster redirections.
//!
//! To the lease protocol a node is one Redis server that answers scripts. How it is reached is
//! this module's business, and every form ends in the same `redis::Connection`:
//! - `redis://`, `rediss://` (TLS, verified against the system's roots or `--tls-ca`),
//!   `redis+unix://` and `unix://`: one fixed address, parsed by the redis crate.
//! - `redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]`: the primary that a
//!   Sentinel names *now*, asked afresh for every connection so that rlock follows a failover. The
//!   primary must confirm with `ROLE` that it is one: a Sentinel with a stale view must not send us
//!   to a replica, which would refuse the scripts' writes. Credentials are the primary's; Sentinels
//!   are asked without.
//! - A Redis Cluster through one seed address: a `MOVED` reply names the node that owns the lock's
//!   slot, and [`Endpoint::at`] gives the way there. (The key contract's hash tag keeps a lock's
//!   keys in one slot, so one node always answers a whole script.)
//!
//! Every step is bounded by the caller's deadline: a Sentinel that accepts and never answers must
//! not stall an acquisition.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::{
    ClientTlsConfig, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError,
    RedisResult, TlsCertificates,
};

use crate::clock::Stamp;

/// The default Sentinel port.
const SENTINEL_PORT: u16 = 26379;

/// TLS settings shared by every `rediss://` node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// A PEM file of the CAs to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// PEM files of a client certificate and its key, for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Accept any certificate: for tests only, and warned about.
    pub insecure: bool,
}

impl Tls {
    /// Whether any TLS option was given.
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some() || self.insecure
    }
}

/// One node's way in.
#[derive(Clone)]
pub enum Endpoint {
    /// A fixed address.
    Direct(redis::Client),
    /// The primary a Sentinel names.
    Sentinel(Sentinel),
}

/// A Sentinel-managed primary.
#[derive(Clone)]
pub struct Sentinel {
    /// The Sentinels, asked in order until one names the primary.
    sentinels: Vec<redis::Client>,
    /// The monitored service's name.
    service: String,
    /// How to talk to the primary once found (credentials, database): a template whose address
    /// is replaced by the one Sentinel gives.
    primary: ConnectionInfo,
}

impl Endpoint {
    /// Parses `url`, reading any TLS files it needs. `Err` is a one-line message; it quotes the
    /// URL only as `name` (redacted).
    pub fn parse(url: &str, name: &str, tls: &Tls) -> Result<Endpoint, String> {
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            return parse_sentinel(rest)
                .map(Endpoint::Sentinel)
                .map_err(|detail| {
                    format!(
                        "invalid Sentinel URL '{name}' ({detail}); expected \
                     redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]"
                    )
                });
        }
        let invalid = |detail: String| {
            format!(
                "invalid Redis URL '{name}' ({detail}); expected redis://[USER:PASSWORD@]HOST[:PORT][/DB], \
                 rediss://..., redis+unix:///PATH or redis+sentinel://HOST:PORT/SERVICE"
            )
        };
        let info = url
            .into_connection_info()
            .map_err(|e| invalid(e.to_string().replace(url, name)))?;
        let mut info = tuned(info);
        let client = match info.addr().clone() {
            ConnectionAddr::TcpTls { host, port, .. } => {
                if tls.insecure {
                    info = info.set_addr(ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: true,
                        tls_params: None,
                    });
                }
                redis::Client::build_with_tls(info, certificates(tls)?)
            }
            _ => redis::Client::open(info),
        };
        client
            .map(Endpoint::Direct)
            .map_err(|e| invalid(e.to_string()))
    }

    /// The fixed address, to spot one server listed twice (`None` behind a Sentinel).
    pub fn addr(&self) -> Option<&ConnectionAddr> {
        match self {
            Endpoint::Direct(client) => Some(client.get_connection_info().addr()),
            Endpoint::Sentinel(_) => None,
        }
    }

    /// The password, to mask should a library message quote it.
    pub fn password(&self) -> Option<&str> {
        match self {
            Endpoint::Direct(client) => client.get_connection_info().redis_settings().password(),
            Endpoint::Sentinel(s) => s.primary.redis_settings().password(),
        }
    }

    /// Opens a connection before `deadline`.
    pub fn connect(&self, deadline: Stamp) -> RedisResult<redis::Connection> {
        match self {
            Endpoint::Direct(client) => client.get_connection_with_timeout(left(deadline)?),
            Endpoint::Sentinel(sentinel) => sentinel.connect(deadline),
        }
    }

    /// The same server settings (credentials, database, TLS) at `host:port`: where a cluster's
    /// `MOVED`/`ASK` reply sends us. `None` for a form that cannot be redirected.
    pub fn at(&self, host: &str, port: u16) -> Option<Endpoint> {
        let Endpoint::Direct(client) = self else {
            return None;
        };
        let info = client.get_connection_info().clone();
        let addr = match info.addr().clone() {
            ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host.to_owned(), port),
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure,
                tls_params,
            },
            _ => return None,
        };
        redis::Client::open(info.set_addr(addr))
            .ok()
            .map(Endpoint::Direct)
    }
}

impl Sentinel {
    /// Asks each Sentinel in turn for the primary, and connects to it once it confirms its role.
    fn connect(&self, deadline: Stamp) -> RedisResult<redis::Connection> {
        let mut failure = None;
        for sentinel in &self.sentinels {
            match self.primary_via(sentinel, deadline) {
                Ok(conn) => return Ok(conn),
                Err(e) if e.is_timeout() && deadline.remaining().is_zero() => return Err(e),
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.unwrap_or_else(|| fail("no Sentinel given")))
    }

    fn primary_via(
        &self,
        sentinel: &redis::Client,
        deadline: Stamp,
    ) -> RedisResult<redis::Connection> {
        let mut conn = sentinel.get_connection_with_timeout(left(deadline)?)?;
        bound(&conn, deadline)?;
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.service)
            .query(&mut conn)?;
        let Some((host, port)) = addr else {
            return Err(fail(format!(
                "Sentinel knows no service named '{}'",
                self.service
            )));
        };
        let primary = redis::Client::open(
            self.primary
                .clone()
                .set_addr(ConnectionAddr::Tcp(host.clone(), port)),
        )?;
        let mut conn = primary.get_connection_with_timeout(left(deadline)?)?;
        bound(&conn, deadline)?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn)?;
        match role.first() {
            Some(redis::Value::BulkString(r)) if r == b"master" => Ok(conn),
            _ => Err(fail(format!(
                "Sentinel names {host}:{port} the primary of '{}', but it is not (a failover in progress?)",
                self.service
            ))),
        }
    }
}

/// Parses what follows `redis+sentinel://`.
fn parse_sentinel(rest: &str) -> Result<Sentinel, String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let (service, db) = path.split_once('/').unwrap_or((path, ""));
    if service.is_empty() {
        return Err("no service name".to_owned());
    }
    if hosts.is_empty() {
        return Err("no Sentinel address".to_owned());
    }
    let mut sentinels = Vec::new();
    for host in hosts.split(',') {
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(h, _)| !h.ends_with(':'))
        {
            host.to_owned()
        } else {
            format!("{host}:{SENTINEL_PORT}")
        };
        let info = format!("redis://{with_port}")
            .into_connection_info()
            .map_err(|_| format!("bad Sentinel address '{host}'"))?;
        sentinels.push(
            redis::Client::open(tuned(info))
                .map_err(|_| format!("bad Sentinel address '{host}'"))?,
        );
    }
    // The primary's settings, parsed by the redis crate from an equivalent plain URL so that
    // percent-encoded credentials and the database number mean what they mean everywhere else.
    let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let template = format!("redis://{userinfo}primary/{db}")
        .into_connection_info()
        .map_err(|_| "bad credentials or database number".to_owned())?;
    Ok(Sentinel {
        sentinels,
        service: service.to_owned(),
        primary: tuned(template),
    })
}

/// rlock's connection settings: the handshake skips `CLIENT SETINFO` (two pipelined replies the
/// library would wait a full timeout for each, on a server that accepts but does not answer), and
/// `TCP_NODELAY` is on, since every request is a small message whose answer we wait for.
fn tuned(info: ConnectionInfo) -> ConnectionInfo {
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    info.set_redis_settings(settings).set_tcp_settings(tcp)
}

/// The certificates `tls` names, read now so that a missing file is a usage error.
fn certificates(tls: &Tls) -> Result<TlsCertificates, String> {
    let read = |what: &str, path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
    };
    let client_tls = match &tls.client {
        Some((cert, key)) => Some(ClientTlsConfig {
            client_cert: read("--tls-cert", cert)?,
            client_key: read("--tls-key", key)?,
        }),
        None => None,
    };
    let root_cert = tls
        .ca
        .as_deref()
        .map(|ca| read("--tls-ca", ca))
        .transpose()?;
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// The time left before `deadline`, at least a millisecond (zero means "no timeout" to sockets).
fn left(deadline: Stamp) -> RedisResult<Duration> {
    let left = deadline.remaining();
    if left.is_zero() {
        return Err(RedisError::from(std::io::Error::from(
            std::io::ErrorKind::TimedOut,
        )));
    }
    Ok(left.max(Duration::from_millis(1)))
}

/// Bounds `conn`'s reads and writes by `deadline`; a timeout error once it has passed.
pub(super) fn bound(conn: &redis::Connection, deadline: Stamp) -> RedisResult<()> {
    let left = left(deadline)?;
    conn.set_read_timeout(Some(left))?;
    conn.set_write_timeout(Some(left))
}

fn fail(detail: impl Into<String>) -> RedisError {
    RedisError::from((ErrorKind::Client, "Sentinel", detail.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_sentinels_service_credentials_and_database() {
        let s = parse_sentinel("alice:s%40cret@10.0.0.1:5000,10.0.0.2/mymaster/3").unwrap();
        assert_eq!(s.service, "mymaster");
        let addrs: Vec<String> = s
            .sentinels
            .iter()
            .map(|c| c.get_connection_info().addr().to_string())
            .collect();
        assert_eq!(addrs, ["10.0.0.1:5000", "10.0.0.2:26379"]);
        let settings = s.primary.redis_settings();
        assert_eq!(settings.username(), Some("alice"));
        assert_eq!(settings.password(), Some("s@cret"));
        assert_eq!(settings.db(), 3);
    }

    #[test]
    fn sentinel_urls_without_a_service_are_refused() {
        assert!(parse_sentinel("h:1").err().unwrap().contains("service"));
        assert!(
            parse_sentinel("/svc")
                .err()
                .unwrap()
                .contains("Sentinel address")
        );
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let tls = Tls {
            ca: Some("/nonexistent/ca.pem".into()),
            ..Tls::default()
        };
        let Err(err) = Endpoint::parse("rediss://h:1", "rediss://h:1", &tls) else {
            panic!("accepted a missing CA file");
        };
        assert!(err.contains("--tls-ca /nonexistent/ca.pem"), "{err}");
    }
}
