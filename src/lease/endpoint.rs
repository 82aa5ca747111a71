//! How to reach a node: the forms a Redis URL takes, TLS, Sentinel and Cluster redirections.
//!
//! To the lease protocol a node is one Redis server that answers scripts. How it is reached is
//! this module's business, and every form ends in the same [`Conn`], rlock's own connection:
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
use std::sync::Arc;

use redis::{
    ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError, RedisResult,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::conn::{Addr, Conn, Target};
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
    Direct {
        /// The URL as the redis crate parsed it: the address, to spot one server listed twice.
        info: ConnectionInfo,
        /// How to connect.
        target: Target,
    },
    /// The primary a Sentinel names.
    Sentinel(Sentinel),
}

/// A Sentinel-managed primary.
#[derive(Clone)]
pub struct Sentinel {
    /// The Sentinels, asked in order until one names the primary.
    sentinels: Vec<Target>,
    /// The monitored service's name.
    service: String,
    /// How to talk to the primary once found (credentials, database): a template whose address
    /// is replaced by the one Sentinel gives.
    primary: Target,
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
        let addr = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Addr::Tcp(host.clone(), *port),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => Addr::Tls(host.clone(), *port, tls_config(tls, *insecure)?),
            ConnectionAddr::Unix(path) => Addr::Unix(path.clone()),
            _ => return Err(invalid("an address form rlock does not support".to_owned())),
        };
        let target = target(&info, addr);
        Ok(Endpoint::Direct { info, target })
    }

    /// The fixed address, to spot one server listed twice (`None` behind a Sentinel).
    pub fn addr(&self) -> Option<&ConnectionAddr> {
        match self {
            Endpoint::Direct { info, .. } => Some(info.addr()),
            Endpoint::Sentinel(_) => None,
        }
    }

    /// The password, to mask should a library message quote it.
    pub fn password(&self) -> Option<&str> {
        match self {
            Endpoint::Direct { target, .. } => target.password.as_deref(),
            Endpoint::Sentinel(s) => s.primary.password.as_deref(),
        }
    }

    /// Opens a connection before `deadline`.
    pub fn connect(&self, deadline: Stamp) -> RedisResult<Conn> {
        match self {
            Endpoint::Direct { target, .. } => target.connect(deadline),
            Endpoint::Sentinel(sentinel) => sentinel.connect(deadline),
        }
    }

    /// The same server settings (credentials, database, TLS) at `host:port`: where a cluster's
    /// `MOVED`/`ASK` reply sends us. `None` for a form that cannot be redirected.
    pub fn at(&self, host: &str, port: u16) -> Option<Endpoint> {
        let Endpoint::Direct { info, target } = self else {
            return None;
        };
        let (addr, to) = match (info.addr(), &target.addr) {
            (ConnectionAddr::Tcp(..), _) => (
                ConnectionAddr::Tcp(host.to_owned(), port),
                Addr::Tcp(host.to_owned(), port),
            ),
            (
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                },
                Addr::Tls(_, _, config),
            ) => (
                ConnectionAddr::TcpTls {
                    host: host.to_owned(),
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                Addr::Tls(host.to_owned(), port, Arc::clone(config)),
            ),
            _ => return None,
        };
        Some(Endpoint::Direct {
            info: info.clone().set_addr(addr),
            target: Target {
                addr: to,
                ..target.clone()
            },
        })
    }
}

impl Sentinel {
    /// Asks each Sentinel in turn for the primary, and connects to it once it confirms its role.
    fn connect(&self, deadline: Stamp) -> RedisResult<Conn> {
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

    fn primary_via(&self, sentinel: &Target, deadline: Stamp) -> RedisResult<Conn> {
        let mut conn = sentinel.connect(deadline)?;
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
        let primary = Target {
            addr: Addr::Tcp(host.clone(), port),
            ..self.primary.clone()
        };
        let mut conn = primary.connect(deadline)?;
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

/// What to connect to for `info`, at `addr`: its credentials and database.
fn target(info: &ConnectionInfo, addr: Addr) -> Target {
    let settings = info.redis_settings();
    Target {
        addr,
        user: settings.username().map(str::to_owned),
        password: settings.password().map(str::to_owned),
        db: settings.db(),
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
        let ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
            return Err(format!("bad Sentinel address '{host}'"));
        };
        // Sentinels are asked without credentials: those in the URL are the primary's.
        sentinels.push(Target {
            addr: Addr::Tcp(host, port),
            user: None,
            password: None,
            db: 0,
        });
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
        primary: target(&template, Addr::Tcp("primary".to_owned(), 0)),
    })
}

/// The TLS client configuration `tls` describes, its files read now so that a missing one is a
/// usage error: trust `--tls-ca` or else the system's roots, present `--tls-cert`/`--tls-key` if
/// given, and verify nothing if `insecure` (`--tls-insecure`, or the URL's `#insecure`).
fn tls_config(tls: &Tls, insecure: bool) -> Result<Arc<ClientConfig>, String> {
    let read = |what: &str, path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
    };
    let certs = |what: &str, path: &Path| {
        let pem = read(what, path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{what} {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{what} {}: no PEM certificate in it",
                path.display()
            ));
        }
        Ok(certs)
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut roots = RootCertStore::empty();
    if let Some(ca) = &tls.ca {
        for cert in certs("--tls-ca", ca)? {
            roots
                .add(cert)
                .map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        }
    } else if !insecure && !tls.insecure {
        // Unreadable entries are skipped: one bad file must not hide the others.
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    }
    let builder = builder.with_root_certificates(roots);
    let mut config = match &tls.client {
        Some((cert, key)) => {
            let chain = certs("--tls-cert", cert)?;
            let key = PrivateKeyDer::from_pem_slice(&read("--tls-key", key)?)
                .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("--tls-cert and --tls-key: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    if insecure || tls.insecure {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(AnyCertificate(
                provider.signature_verification_algorithms,
            )));
    }
    Ok(Arc::new(config))
}

/// The `--tls-insecure` verifier: any certificate, for any name, is accepted (signatures are
/// still checked, so the handshake itself is sound).
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
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
            .map(|t| match &t.addr {
                Addr::Tcp(host, port) => format!("{host}:{port}"),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(addrs, ["10.0.0.1:5000", "10.0.0.2:26379"]);
        assert_eq!(s.primary.user.as_deref(), Some("alice"));
        assert_eq!(s.primary.password.as_deref(), Some("s@cret"));
        assert_eq!(s.primary.db, 3);
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
