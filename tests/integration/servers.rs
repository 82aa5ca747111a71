//! Fixtures for the deployments of `connecting.rs`: TLS (with certificates made at test time),
//! ACL users and passwords, Unix sockets, a Sentinel-managed primary and replica, and a
//! three-primary Redis Cluster.
//!
//! `support::RedisServer` is one plain server; these are the shapes real deployments take, and
//! each needs its own start-up arguments and its own readiness condition (a replica in sync, a
//! Sentinel that knows the replica, a cluster whose every node says `cluster_state:ok`). Every
//! server here also listens on a plain loopback port or socket that only the fixture uses (the
//! *admin* URL), so that a test can look at keys directly whatever rlock is given (the test's
//! Redis client has no TLS). As in `support`, each process gets its own temp directory and a
//! kernel-chosen port, is killed and reaped on drop (also when a test panics), and its log is
//! printed if it fails to start. Readiness is polled with deadlines, never slept for.
//!
//! A test calls `support::skip` and returns only when a server feature is missing from the machine
//! (`openssl`, a `redis-server` built without TLS, `redis-cli`); `.ci/run` installs them all.

// Each test uses a different subset of these fixtures.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use redis::{FromRedisValue, Value};

use crate::support::{command, free_port, launch_redis, skip, temp_dir, wait_for, wait_or_kill};

/// How long a freshly spawned server may take to answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect/read/write timeout of the fixture's own connections.
const CONN_TIMEOUT: Duration = Duration::from_secs(2);
/// Interval of the polling loops in this module.
const POLL: Duration = Duration::from_millis(10);

/// The smallest ACL with which rlock works on keys under its default prefix `rlock:`, found by
/// trial against Redis 7.0: run, `--wait`, acquire, extend, release and status (single node and
/// Redlock) leave no denial in `ACL LOG` with it, and each rule below is there because a denial
/// showed it was needed.
///
/// - `~rlock:*` and `&rlock:*`: the lock, holder and fence keys, and the release channel.
/// - `+evalsha +script|load`: every step is a script, sent by hash and loaded on `NOSCRIPT`.
/// - `+get +set +del +exists +incr +pexpire +pttl +time +hset +hgetall +publish`: what the
///   scripts call (Redis checks a script's commands against the caller's ACL too); `TIME` starts
///   a missing fence counter.
/// - `+info`: the acquire script reads `INFO server` for the node's `run_id` in Redlock mode.
/// - `+subscribe +unsubscribe +punsubscribe`: `--wait` listens for releases.
///
/// Add `+select` for a URL with a database number other than 0, and `+role` for a
/// `redis+sentinel://` URL (rlock asks the named primary to confirm its role). `reset` first
/// makes the line safe to run again on an existing user. Replace `PASSWORD`.
pub const MINIMAL_ACL: &str = "ACL SETUSER rlock reset on >PASSWORD ~rlock:* &rlock:* \
     +evalsha +script|load +get +set +del +exists +incr +pexpire +pttl +time +hset +hgetall \
     +hget +hdel +zadd +zrem +zscore +zcard +zrange +zrangebyscore +zcount +publish +subscribe \
     +unsubscribe +punsubscribe +info +scan";

/// Why the TLS tests cannot run here, or `None` if they can.
pub fn tls_unavailable() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        if Command::new("openssl").arg("version").output().is_err() {
            return Some("openssl is not installed (apt-get install openssl)".to_owned());
        }
        // A redis-server built without TLS links no OpenSSL; Debian's is built with it.
        let binary = which("redis-server")?;
        let bytes = fs::read(&binary).unwrap_or_default();
        let linked = bytes.windows(11).any(|w| w == b"SSL_CTX_new");
        (!linked).then(|| format!("{} was built without TLS", binary.display()))
    })
    .clone()
}

/// Why the Cluster tests cannot run here (`redis-cli` creates the cluster), or `None`.
pub fn cluster_unavailable() -> Option<String> {
    which("redis-cli")
        .is_none()
        .then(|| "redis-cli is not installed (apt-get install redis-tools)".to_owned())
}

/// The first `program` on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Runs a helper program to completion within `timeout` (killing it after), panicking unless it
/// succeeds; returns its output.
#[track_caller]
fn run_tool(cmd: &mut Command, timeout: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    wait_or_kill(&mut child, timeout, &shown);
    let out = child.wait_with_output().expect("collect output");
    assert!(
        out.status.success(),
        "{shown} failed ({})\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What to start in one attempt: the arguments, and where the fixture itself connects.
struct Plan {
    /// `redis-server` arguments.
    args: Vec<OsString>,
    /// The URL the fixture uses (a plain port or socket, with the admin password if any).
    admin: String,
    /// The plain TCP port, if the server has one.
    port: u16,
    /// A second port the plan chose (TLS or cluster bus), if any.
    extra_port: u16,
}

/// One `redis-server` (or Sentinel) process, killed and reaped on drop.
pub struct Server {
    /// The running process.
    child: Option<Child>,
    /// Its name in messages and its log's file name.
    name: String,
    /// Where the fixture connects (see [`Plan::admin`]).
    admin: String,
    /// The plain TCP port (0 for a Unix-socket-only server).
    port: u16,
    /// The TLS port of a TLS server, or the bus port of a cluster node.
    extra_port: u16,
    /// The directory holding its log (and any files it writes).
    dir: PathBuf,
}

impl Server {
    /// Starts `redis-server` with what `plan` returns (asked again, with new ports, for each of
    /// up to 5 attempts) and waits until that very process answers on its admin URL.
    fn launch(name: &str, dir: &Path, mut plan: impl FnMut() -> Plan) -> Server {
        let log = dir.join(format!("{name}.log"));
        let mut failures = Vec::new();
        for _ in 0..5 {
            let Plan {
                args,
                admin,
                port,
                extra_port,
            } = plan();
            let mut cmd = Command::new("redis-server");
            cmd.args(&args).arg("--logfile").arg(&log);
            let out = dir.join(format!("{name}.out"));
            match launch_redis(cmd, dir, &out, &admin) {
                Ok(child) => {
                    return Server {
                        child: Some(child),
                        name: name.to_owned(),
                        admin,
                        port,
                        extra_port,
                        dir: dir.to_owned(),
                    };
                }
                Err(failure) => failures.push(format!("{admin}: {failure}")),
            }
        }
        let read = |file: &Path| fs::read_to_string(file).unwrap_or_default();
        panic!(
            "{name} failed to start:\n{}\n--- {name}.log ---\n{}--- stdout/stderr ---\n{}",
            failures.join("\n"),
            read(&log),
            read(&dir.join(format!("{name}.out")))
        );
    }

    /// The plain TCP port (0 for a Unix-socket-only server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT` on the plain port, without credentials.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, as Sentinel and Cluster commands name nodes.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Any command on a fresh admin connection; error replies come back as `Value::ServerError`.
    #[track_caller]
    pub fn cmd(&self, args: &[&str]) -> Value {
        command(&mut self.conn(), args, &self.name)
    }

    /// A command whose reply converts to `T`; panics on an error reply.
    #[track_caller]
    pub fn query<T: FromRedisValue>(&self, args: &[&str]) -> T {
        let reply = self.cmd(args);
        T::from_redis_value(reply)
            .unwrap_or_else(|e| panic!("{args:?} on {}: unexpected reply: {e}", self.name))
    }

    /// `GET key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.query(&["GET", key])
    }

    /// `GET key` in database `db`.
    pub fn get_in_db(&self, db: u8, key: &str) -> Option<String> {
        let ((), value): ((), Option<String>) = redis::pipe()
            .cmd("SELECT")
            .arg(db)
            .cmd("GET")
            .arg(key)
            .query(&mut self.conn())
            .unwrap_or_else(|e| panic!("GET {key} in db {db} on {}: {e}", self.name));
        value
    }

    /// `GET key` after `ASKING`: how a cluster node that imports `key`'s slot serves it.
    pub fn get_after_asking(&self, key: &str) -> Option<String> {
        let ((), value): ((), Option<String>) = redis::pipe()
            .cmd("ASKING")
            .cmd("GET")
            .arg(key)
            .query(&mut self.conn())
            .unwrap_or_else(|e| panic!("ASKING, GET {key} on {}: {e}", self.name));
        value
    }

    /// `EXISTS key`.
    pub fn exists(&self, key: &str) -> bool {
        self.query(&["EXISTS", key])
    }

    /// One `field:value` line of `INFO section`.
    pub fn info(&self, section: &str, field: &str) -> Option<String> {
        let info: String = self.query(&["INFO", section]);
        let prefix = format!("{field}:");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|value| value.trim().to_owned())
    }

    /// A new admin connection with 2 s timeouts.
    fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(self.admin.as_str()).expect("a valid admin URL");
        let con = client
            .get_connection_with_timeout(CONN_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name));
        con.set_read_timeout(Some(CONN_TIMEOUT))
            .expect("set read timeout");
        con.set_write_timeout(Some(CONN_TIMEOUT))
            .expect("set write timeout");
        con
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join(format!("{}.log", self.name))).unwrap_or_default()
    }
}

impl Drop for Server {
    /// SIGKILLs and reaps the process.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Arguments every fixture server gets: loopback only, no persistence, files in `dir`.
fn base_args(dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        .iter()
        .map(OsString::from)
        .collect();
    args.extend(["--daemonize".into(), "no".into(), "--dir".into()]);
    args.push(dir.as_os_str().to_owned());
    args
}

/// Appends string arguments to `args`.
fn push(args: &mut Vec<OsString>, more: &[&str]) {
    args.extend(more.iter().map(OsString::from));
}

// ---------------------------------------------------------------------------------------------
// Plain servers with passwords and ACL users

/// A server on a plain port; `password`, if given, is the default user's (`requirepass`).
pub fn plain_server(password: Option<&str>) -> (Server, tempfile::TempDir) {
    let dir = temp_dir();
    let server = Server::launch("redis", dir.path(), || {
        let port = free_port();
        let mut args = base_args(dir.path());
        push(&mut args, &["--port", &port.to_string()]);
        if let Some(password) = password {
            push(&mut args, &["--requirepass", password]);
        }
        let admin = match password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        };
        Plan {
            args,
            admin,
            port,
            extra_port: 0,
        }
    });
    (server, dir)
}

/// Runs [`MINIMAL_ACL`] on `server`, for user `rlock` with `password`.
pub fn add_minimal_acl_user(server: &Server, password: &str) {
    let line = MINIMAL_ACL.replace("PASSWORD", password);
    let args: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(server.cmd(&args), Value::Okay, "{line}");
}

/// One `ACL LOG` entry: a denied command, key or channel, or a failed login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclDenial {
    /// `command`, `key`, `channel` or `auth`.
    pub reason: String,
    /// What was denied: the command (`script|load`), key or channel name.
    pub object: String,
    /// The user it was denied to.
    pub username: String,
}

/// The entries of `ACL LOG` (all of them: without a count it shows 10), newest first.
pub fn acl_log(server: &Server) -> Vec<AclDenial> {
    let Value::Array(entries) = server.cmd(&["ACL", "LOG", "1000"]) else {
        panic!("ACL LOG is an array");
    };
    entries
        .into_iter()
        .map(|entry| {
            let Value::Array(fields) = entry else {
                panic!("an ACL LOG entry is an array");
            };
            let text = |v: &Value| String::from_redis_value(v.clone()).unwrap_or_default();
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|kv| text(&kv[0]) == name)
                    .map(|kv| text(&kv[1]))
                    .unwrap_or_default()
            };
            AclDenial {
                reason: field("reason"),
                object: field("object"),
                username: field("username"),
            }
        })
        .collect()
}

/// The rules of [`MINIMAL_ACL`] after the password: `~rlock:*`, `&rlock:*`, `+evalsha`, ...
pub fn minimal_acl_rules() -> Vec<&'static str> {
    MINIMAL_ACL
        .split_whitespace()
        .skip_while(|token| !token.starts_with('>'))
        .skip(1)
        .collect()
}

/// Creates `user` with [`MINIMAL_ACL`] less `rule`, and `password`.
pub fn add_acl_user_without(server: &Server, user: &str, rule: &str, password: &str) {
    let line = MINIMAL_ACL.replace("PASSWORD", password);
    let mut args: Vec<&str> = line.split_whitespace().filter(|t| *t != rule).collect();
    assert_eq!(args[2], "rlock", "the line is ACL SETUSER rlock ...");
    args[2] = user;
    assert_eq!(server.cmd(&args), Value::Okay, "{args:?}");
}

// ---------------------------------------------------------------------------------------------
// TLS

/// Certificates made with the `openssl` CLI: a CA, a server certificate it signed for
/// `IP:127.0.0.1` and `DNS:localhost`, a client certificate it signed, and an unrelated CA.
pub struct Certs {
    /// Holds every file below.
    dir: tempfile::TempDir,
}

impl Certs {
    /// Makes the certificates (EC P-256 keys: quick to generate), valid for two days.
    pub fn make() -> Certs {
        let dir = temp_dir();
        let openssl = |args: &[&str]| {
            run_tool(
                Command::new("openssl").args(args).current_dir(dir.path()),
                Duration::from_secs(20),
            );
        };
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        for (name, cn) in [("ca", "rlock test CA"), ("other-ca", "unrelated CA")] {
            let (keyout, out, subj) = (
                format!("{name}.key"),
                format!("{name}.crt"),
                format!("/CN={cn}"),
            );
            let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subj];
            args.extend(key);
            args.extend(["-keyout", &keyout, "-out", &out]);
            args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
            openssl(&args);
        }
        for (name, cn, ext) in [
            (
                "server",
                "localhost",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "rlock client", "extendedKeyUsage=clientAuth\n"),
        ] {
            let (keyout, csr, crt, extfile) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            let ext = format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n{ext}");
            fs::write(dir.path().join(&extfile), ext).expect("write extension file");
            let subj = format!("/CN={cn}");
            let mut args = vec!["req", "-subj", &subj, "-keyout", &keyout, "-out", &csr];
            args.extend(key);
            openssl(&args);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-days",
                "2",
                "-CAcreateserial",
                "-extfile",
                &extfile,
                "-out",
                &crt,
            ]);
        }
        Certs { dir }
    }

    /// The CA that signed the server and client certificates (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A CA that signed nothing here.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.crt")
    }

    /// The client certificate (PEM).
    pub fn client_cert(&self) -> PathBuf {
        self.dir.path().join("client.crt")
    }

    /// The client certificate's private key (PEM).
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }

    /// The server certificate (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    /// The server's private key (PEM).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

/// A TLS server: `rediss://127.0.0.1:TLS_PORT` for rlock, a plain port for the fixture.
pub struct TlsServer {
    /// The process (its admin URL is the plain port).
    pub server: Server,
    /// The certificates it uses, and the client's.
    pub certs: Certs,
    /// Holds the log.
    _dir: tempfile::TempDir,
}

impl TlsServer {
    /// Starts a TLS server; with `require_client_cert`, it refuses clients without a certificate
    /// signed by the CA (mutual TLS). `password`, if given, is the default user's.
    pub fn start(require_client_cert: bool, password: Option<&str>) -> TlsServer {
        let certs = Certs::make();
        let dir = temp_dir();
        let server = Server::launch("redis-tls", dir.path(), || {
            let (port, tls_port) = (free_port(), free_port());
            let mut args = base_args(dir.path());
            push(&mut args, &["--port", &port.to_string()]);
            push(&mut args, &["--tls-port", &tls_port.to_string()]);
            for (flag, file) in [
                ("--tls-cert-file", certs.server_cert()),
                ("--tls-key-file", certs.server_key()),
                ("--tls-ca-cert-file", certs.ca()),
            ] {
                args.push(flag.into());
                args.push(file.into());
            }
            let auth = if require_client_cert { "yes" } else { "no" };
            push(&mut args, &["--tls-auth-clients", auth]);
            if let Some(password) = password {
                push(&mut args, &["--requirepass", password]);
            }
            let admin = match password {
                Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
                None => format!("redis://127.0.0.1:{port}"),
            };
            Plan {
                args,
                admin,
                port,
                extra_port: tls_port,
            }
        });
        TlsServer {
            server,
            certs,
            _dir: dir,
        }
    }

    /// `rediss://127.0.0.1:TLS_PORT`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.server.extra_port)
    }

    /// `rediss://:PASSWORD@127.0.0.1:TLS_PORT`.
    pub fn url_with_password(&self, password: &str) -> String {
        format!("rediss://:{password}@127.0.0.1:{}", self.server.extra_port)
    }

    /// The TLS port.
    pub fn tls_port(&self) -> u16 {
        self.server.extra_port
    }

    /// `redis-cli --tls … PING` on the TLS port with `extra` arguments; its stdout, or the error.
    pub fn redis_cli_ping<S: AsRef<OsStr>>(&self, extra: &[S]) -> Result<String, String> {
        let out = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.tls_port().to_string(),
                "--tls",
            ])
            .args(extra)
            .arg("PING")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if stdout.trim() == "PONG" {
            Ok(stdout)
        } else {
            Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Unix sockets

/// A server that listens only on a Unix socket (`--port 0`), mode 700.
pub struct UnixServer {
    /// The process.
    pub server: Server,
    /// Holds the socket and the log.
    dir: tempfile::TempDir,
}

impl UnixServer {
    /// Starts a server on `DIR/redis.sock`.
    pub fn start() -> UnixServer {
        let dir = temp_dir();
        let socket = dir.path().join("redis.sock");
        let server = Server::launch("redis-unix", dir.path(), || {
            let mut args = base_args(dir.path());
            push(&mut args, &["--port", "0", "--unixsocketperm", "700"]);
            args.push("--unixsocket".into());
            args.push(socket.clone().into());
            Plan {
                args,
                admin: format!("redis+unix://{}", socket.display()),
                port: 0,
                extra_port: 0,
            }
        });
        UnixServer { server, dir }
    }

    /// The socket's path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }
}

// ---------------------------------------------------------------------------------------------
// Sentinel

/// A Sentinel-managed service: a primary, a replica in sync with it, and one Sentinel that
/// knows both (quorum 1, so that `SENTINEL FAILOVER` needs no other Sentinel's vote).
pub struct SentinelSet {
    /// The primary at start.
    pub primary: Server,
    /// The replica at start.
    pub replica: Server,
    /// The Sentinel.
    pub sentinel: Server,
    /// Holds the logs and the Sentinel's configuration file.
    _dir: tempfile::TempDir,
}

/// The service name the Sentinel monitors.
pub const SERVICE: &str = "rlockservice";

impl SentinelSet {
    /// Starts the three processes and waits until the replica is in sync and the Sentinel lists
    /// it. `password`, if given, is required by the primary and the replica (the Sentinel itself
    /// has none; it is told the password with `auth-pass`).
    pub fn start(password: Option<&str>) -> SentinelSet {
        let dir = temp_dir();
        let data_node = |name: &str, replica_of: Option<u16>| {
            let node_dir = dir.path().join(name);
            fs::create_dir(&node_dir).expect("create node dir");
            Server::launch(name, &node_dir, || {
                let port = free_port();
                let mut args = base_args(&node_dir);
                push(&mut args, &["--port", &port.to_string()]);
                // Replicas sync at once instead of after the default 5 s batching delay.
                push(&mut args, &["--repl-diskless-sync-delay", "0"]);
                if let Some(password) = password {
                    push(&mut args, &["--requirepass", password]);
                    push(&mut args, &["--masterauth", password]);
                }
                if let Some(primary) = replica_of {
                    push(
                        &mut args,
                        &["--replicaof", "127.0.0.1", &primary.to_string()],
                    );
                }
                let admin = match password {
                    Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
                    None => format!("redis://127.0.0.1:{port}"),
                };
                Plan {
                    args,
                    admin,
                    port,
                    extra_port: 0,
                }
            })
        };
        let primary = data_node("primary", None);
        let replica = data_node("replica", Some(primary.port()));
        wait_for("the replica to sync", STARTUP_TIMEOUT, || {
            replica.info("replication", "master_link_status").as_deref() == Some("up")
        });

        // Started after the sync so that its first look at the primary already lists the
        // replica (it looks again only every 10 s).
        let sentinel_dir = dir.path().join("sentinel");
        fs::create_dir(&sentinel_dir).expect("create sentinel dir");
        let conf = sentinel_dir.join("sentinel.conf");
        let sentinel = Server::launch("sentinel", &sentinel_dir, || {
            let port = free_port();
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {SERVICE} 1000\n\
                 sentinel failover-timeout {SERVICE} 5000\n",
                sentinel_dir.display(),
                primary.port()
            );
            if let Some(password) = password {
                let _ = writeln!(text, "sentinel auth-pass {SERVICE} {password}");
            }
            // Sentinel rewrites its configuration file, so it must be a writable file of its own.
            fs::write(&conf, text).expect("write sentinel.conf");
            Plan {
                args: vec![conf.clone().into(), "--sentinel".into()],
                admin: format!("redis://127.0.0.1:{port}"),
                port,
                extra_port: 0,
            }
        });
        let set = SentinelSet {
            primary,
            replica,
            sentinel,
            _dir: dir,
        };
        wait_for("the Sentinel to know the replica", STARTUP_TIMEOUT, || {
            set.promotable_replicas().contains(&set.replica.addr())
        });
        set
    }

    /// `redis+sentinel://127.0.0.1:SENTINEL_PORT/SERVICE`, with `userinfo@` (for the primary)
    /// if given.
    pub fn url(&self, userinfo: Option<&str>) -> String {
        let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        format!("redis+sentinel://{auth}{}/{SERVICE}", self.sentinel.addr())
    }

    /// `HOST:PORT` of the primary the Sentinel names now.
    pub fn primary_addr(&self) -> String {
        let addr: Vec<String> =
            self.sentinel
                .query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE]);
        addr.join(":")
    }

    /// `HOST:PORT` of each replica the Sentinel could promote now: connected (flags exactly
    /// `slave`), and with an `INFO` reply of its own less than 5 s old. Until the Sentinel has
    /// asked a new replica for `INFO`, `SENTINEL FAILOVER` answers `NOGOODSLAVE`.
    fn promotable_replicas(&self) -> Vec<String> {
        let Value::Array(replicas) = self.sentinel.cmd(&["SENTINEL", "REPLICAS", SERVICE]) else {
            return Vec::new();
        };
        replicas
            .into_iter()
            .filter_map(|r| {
                let fields: Vec<String> = FromRedisValue::from_redis_value(r).ok()?;
                let at = |k: &str| {
                    let i = fields.iter().position(|f| f == k)?;
                    fields.get(i + 1).cloned()
                };
                let fresh = at("info-refresh")?.parse::<u64>().ok()? < 5000;
                let addr = format!("{}:{}", at("ip")?, at("port")?);
                (at("flags")? == "slave" && fresh).then_some(addr)
            })
            .collect()
    }

    /// Asks the Sentinel to fail over to the replica and waits until it names the replica and
    /// the replica says it is a primary.
    pub fn fail_over(&self) {
        assert_eq!(
            self.sentinel.cmd(&["SENTINEL", "FAILOVER", SERVICE]),
            Value::Okay
        );
        wait_for("the failover to the replica", STARTUP_TIMEOUT, || {
            self.primary_addr() == self.replica.addr()
                && self.replica.info("replication", "role").as_deref() == Some("master")
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster

/// A Redis Cluster of three primaries (no replicas) made with `redis-cli --cluster create`.
pub struct Cluster {
    /// The nodes, in the order given to `--cluster create`: slots 0-5460, 5461-10922,
    /// 10923-16383.
    pub nodes: Vec<Server>,
    /// Holds each node's directory (log and `nodes.conf`).
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three nodes, joins them, and waits until each reports `cluster_state:ok`.
    pub fn start() -> Cluster {
        let dir = temp_dir();
        let nodes: Vec<Server> = thread::scope(|scope| {
            let handles: Vec<_> = (1..=3)
                .map(|i| {
                    let node_dir = dir.path().join(format!("node{i}"));
                    scope.spawn(move || {
                        fs::create_dir(&node_dir).expect("create node dir");
                        Server::launch(&format!("node{i}"), &node_dir, || {
                            let (port, bus) = (free_port(), free_port());
                            let mut args = base_args(&node_dir);
                            push(&mut args, &["--port", &port.to_string()]);
                            push(&mut args, &["--cluster-enabled", "yes"]);
                            // An explicit bus port: PORT+10000 may be taken or out of range.
                            push(&mut args, &["--cluster-port", &bus.to_string()]);
                            args.push("--cluster-config-file".into());
                            args.push(node_dir.join("nodes.conf").into());
                            Plan {
                                args,
                                admin: format!("redis://127.0.0.1:{port}"),
                                port,
                                extra_port: bus,
                            }
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a cluster node failed to start"))
                .collect()
        });
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(nodes.iter().map(Server::addr));
        create.arg("--cluster-yes");
        run_tool(&mut create, Duration::from_secs(30));
        let cluster = Cluster { nodes, _dir: dir };
        wait_for("cluster_state:ok on every node", STARTUP_TIMEOUT, || {
            cluster.nodes.iter().all(|n| {
                let info: String = n.query(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok")
            })
        });
        cluster
    }

    /// The seed node: the one rlock is given.
    pub fn seed(&self) -> &Server {
        &self.nodes[0]
    }

    /// The node that owns `key`'s slot, by `CLUSTER KEYSLOT` and `CLUSTER SLOTS` on the seed.
    pub fn owner_of(&self, key: &str) -> &Server {
        let slot: i64 = self.seed().query(&["CLUSTER", "KEYSLOT", key]);
        let Value::Array(ranges) = self.seed().cmd(&["CLUSTER", "SLOTS"]) else {
            panic!("CLUSTER SLOTS is an array");
        };
        for range in ranges {
            let Value::Array(range) = range else { continue };
            let (Ok(first), Ok(last)) = (
                i64::from_redis_value(range[0].clone()),
                i64::from_redis_value(range[1].clone()),
            ) else {
                continue;
            };
            if (first..=last).contains(&slot) {
                let Value::Array(primary) = &range[2] else {
                    panic!("CLUSTER SLOTS entry without a primary")
                };
                let port = i64::from_redis_value(primary[1].clone()).expect("a port");
                return self
                    .nodes
                    .iter()
                    .find(|n| i64::from(n.port()) == port)
                    .expect("the owner is one of the three nodes");
            }
        }
        panic!("no node owns slot {slot}")
    }

    /// Starts moving the slot of `keys` (one slot: they share a hash tag) from `from` to `to`,
    /// the way `redis-cli --cluster reshard` does, and moves the keys: `to` is set to IMPORTING,
    /// `from` to MIGRATING, and `MIGRATE` copies the keys over. The slot stays mid-migration, so
    /// `from` answers `ASK` for the keys, and `to` serves them only after `ASKING`.
    pub fn migrate_keys(&self, keys: &[&str], from: &Server, to: &Server) {
        let slot: i64 = self.seed().query(&["CLUSTER", "KEYSLOT", keys[0]]);
        let slot = slot.to_string();
        let (from_id, to_id): (String, String) = (
            from.query(&["CLUSTER", "MYID"]),
            to.query(&["CLUSTER", "MYID"]),
        );
        let ok = |reply: Value| assert_eq!(reply, Value::Okay);
        ok(to.cmd(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]));
        ok(from.cmd(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]));
        let port = to.port().to_string();
        let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        migrate.extend(keys);
        ok(from.cmd(&migrate));
    }

    /// The first lock name `PREFIX-N` whose lock key (`rlock:{NAME}`) lives on `node`.
    pub fn lock_name_on(&self, node: &Server, prefix: &str) -> String {
        (0..1000)
            .map(|n| format!("{prefix}-{n}"))
            .find(|name| self.owner_of(&format!("rlock:{{{name}}}")).port() == node.port())
            .expect("a lock name in 1000 lands on every node")
    }
}

// ---------------------------------------------------------------------------------------------
// Smoke tests of these fixtures, without rlock: when a `connecting` test fails, these say
// whether the fixture or rlock is at fault.

#[test]
fn the_tls_fixture_answers_with_its_ca_and_refuses_other_cas_and_missing_client_certs() {
    if let Some(why) = tls_unavailable() {
        return skip(&why);
    }
    let tls = TlsServer::start(false, None);
    let ca = tls.certs.ca();
    tls.redis_cli_ping(&[OsStr::new("--cacert"), ca.as_os_str()])
        .expect("PONG with the right CA");
    let other = tls.certs.other_ca();
    let refused = tls.redis_cli_ping(&[OsStr::new("--cacert"), other.as_os_str()]);
    assert!(refused.is_err_and(|e| e.contains("certificate verify failed")));

    let mtls = TlsServer::start(true, None);
    let ca = mtls.certs.ca();
    assert!(
        mtls.redis_cli_ping(&[OsStr::new("--cacert"), ca.as_os_str()])
            .is_err(),
        "no client certificate, no PONG"
    );
    let (cert, key) = (mtls.certs.client_cert(), mtls.certs.client_key());
    mtls.redis_cli_ping(&[
        OsStr::new("--cacert"),
        ca.as_os_str(),
        OsStr::new("--cert"),
        cert.as_os_str(),
        OsStr::new("--key"),
        key.as_os_str(),
    ])
    .expect("PONG with the client certificate");
}

#[test]
fn the_minimal_acl_user_can_run_scripts_on_rlock_keys_only() {
    let (server, _dir) = plain_server(None);
    add_minimal_acl_user(&server, "pw");
    let user = format!("redis://rlock:pw@127.0.0.1:{}", server.port());
    let client = redis::Client::open(user.as_str()).expect("a valid URL");
    let mut con = client
        .get_connection_with_timeout(CONN_TIMEOUT)
        .expect("the user logs in");
    let script = "return redis.call('SET', KEYS[1], 'v')";
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(script)
        .query(&mut con)
        .expect("SCRIPT LOAD is granted");
    let mut evalsha = |key: &str| {
        redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(1)
            .arg(key)
            .query::<Value>(&mut con)
    };
    assert!(evalsha("rlock:{job}").is_ok_and(|v| v == Value::Okay));
    assert!(evalsha("other").is_err(), "keys outside rlock:* are denied");
    let eval = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("rlock:{job}")
        .query::<Value>(&mut con);
    assert!(eval.is_err(), "EVAL is not granted");
}

#[test]
fn the_unix_socket_fixture_listens_on_no_tcp_port() {
    let unix = UnixServer::start();
    assert_eq!(unix.server.query::<String>(&["PING"]), "PONG");
    assert_eq!(unix.server.info("server", "tcp_port").as_deref(), Some("0"));
    assert!(unix.socket().exists());
}

#[test]
fn the_sentinel_fixture_fails_over_to_the_replica() {
    let set = SentinelSet::start(None);
    assert_eq!(set.primary_addr(), set.primary.addr());
    set.primary.cmd(&["SET", "k", "v"]);
    wait_for("the write to replicate", STARTUP_TIMEOUT, || {
        set.replica.get("k").as_deref() == Some("v")
    });
    set.fail_over();
    assert_eq!(set.primary_addr(), set.replica.addr());
    assert_eq!(set.replica.query::<Value>(&["SET", "k2", "v"]), Value::Okay);
}

#[test]
fn the_cluster_fixture_spreads_slots_over_three_primaries() {
    if let Some(why) = cluster_unavailable() {
        return skip(&why);
    }
    let cluster = Cluster::start();
    for node in &cluster.nodes {
        let name = cluster.lock_name_on(node, "job");
        let key = format!("rlock:{{{name}}}");
        assert_eq!(cluster.owner_of(&key).port(), node.port());
        assert_eq!(node.query::<Value>(&["SET", &key, "v"]), Value::Okay);
    }
}
