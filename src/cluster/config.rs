//! Where the registry lives — one Redis, a master watched by Sentinel, or a
//! Redis Cluster — described as LiveKit's `redis:` block describes it, and
//! the connection to it.

use super::error::ClusterError;
use redis::{ConnectionAddr, ConnectionInfo, ConnectionLike, RedisConnectionInfo, RedisResult};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// LiveKit's default for `max_redirects` (its `GetMaxRedirects`).
pub const DEFAULT_MAX_REDIRECTS: u32 = 2;

/// How to reach the Redis that holds the hash `nodes`: the keys of
/// LiveKit's `redis:` block in `livekit.yaml`, with the same names and
/// meaning, plus a CA file for TLS (LiveKit has none: it trusts the
/// system's roots only).
///
/// Exactly one mode is used:
/// * **standalone**: `address`, `host:port` as LiveKit writes it, or a URL
///   `redis://[USER[:PASSWORD]@]HOST:PORT[/DB]` (`rediss://` for TLS);
/// * **Sentinel**: `sentinel_master_name` and `sentinel_addresses`; the
///   master is asked of the sentinels (in order) at every (re)connection;
/// * **Cluster**: `cluster_addresses` (seed nodes); MOVED/ASK redirects are
///   followed up to `max_redirects` times (LiveKit's default 2).
///
/// `username`/`password` (ACL) and `db` apply to the data nodes;
/// `sentinel_username`/`sentinel_password` to the sentinels. Contradictions
/// LiveKit resolves silently (both Sentinel and Cluster set, an address
/// next to either, `db` in a Cluster, `use_tls: false` with `rediss://`)
/// are errors here, each naming the key: [`validate`](Self::validate).
///
/// `Debug` never shows a password.
#[derive(Clone, Default, PartialEq)]
pub struct RedisConfig {
    /// `host:port` or a `redis://` / `rediss://` URL (standalone).
    pub address: String,
    /// ACL user of the data nodes (empty: `default`).
    pub username: String,
    /// Password of the data nodes (empty: none).
    pub password: String,
    /// Database index (standalone and Sentinel; Cluster has only 0).
    pub db: i64,
    /// TLS to every server; `None` when not said (then `rediss://` decides).
    pub use_tls: Option<bool>,
    /// The master's name in Sentinel (Sentinel mode).
    pub sentinel_master_name: String,
    /// ACL user of the sentinels.
    pub sentinel_username: String,
    /// Password of the sentinels.
    pub sentinel_password: String,
    /// `host:port` of each sentinel.
    pub sentinel_addresses: Vec<String>,
    /// `host:port` of some nodes of the Redis Cluster (Cluster mode).
    pub cluster_addresses: Vec<String>,
    /// Redirects followed per command in a Cluster (`None`: 2).
    pub max_redirects: Option<u32>,
    /// PEM file of the CA(s) that sign the servers' certificates, used
    /// instead of the system's roots (not a LiveKit key).
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &str| if s.is_empty() { "" } else { "***" };
        f.debug_struct("RedisConfig")
            .field("address", &super::error::redact(&self.address))
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("db", &self.db)
            .field("use_tls", &self.use_tls)
            .field("sentinel_master_name", &self.sentinel_master_name)
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &hidden(&self.sentinel_password))
            .field("sentinel_addresses", &self.sentinel_addresses)
            .field("cluster_addresses", &self.cluster_addresses)
            .field("max_redirects", &self.max_redirects)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The checked configuration, ready to connect.
#[derive(Clone)]
pub(crate) struct Plan {
    mode: Mode,
    /// PEM of `ca_file`, read once.
    #[cfg_attr(not(feature = "cluster-tls"), allow(dead_code))]
    ca: Option<Vec<u8>>,
    /// For messages: the target without any secret.
    describe: String,
}

#[derive(Clone)]
enum Mode {
    Single(ConnectionInfo),
    Sentinel {
        name: String,
        sentinels: Vec<ConnectionInfo>,
        /// db and credentials of the master, whatever its address.
        master: RedisConnectionInfo,
        tls: bool,
    },
    Cluster {
        nodes: Vec<ConnectionInfo>,
        max_redirects: u32,
    },
}

impl RedisConfig {
    /// A standalone Redis at `url` (`redis://…`, `rediss://…` or
    /// `host:port`), the form of `--redis`.
    pub fn url(url: impl Into<String>) -> Self {
        RedisConfig {
            address: url.into(),
            ..RedisConfig::default()
        }
    }

    /// Checks the configuration without connecting: every contradiction
    /// or malformed value is an error naming the key (`redis.db`, …).
    pub fn validate(&self) -> Result<(), ClusterError> {
        self.plan().map(drop)
    }

    /// The target as messages show it: the mode and addresses, never a
    /// password.
    pub fn describe(&self) -> String {
        describe(self)
    }

    /// Connects (through the sentinels or to the cluster as configured),
    /// with `timeout` for each connect and as the read/write timeout of the
    /// connection. Errors name the target, never a password.
    pub fn connect(&self, timeout: Duration) -> Result<RegistryConnection, ClusterError> {
        self.plan()?.connect(timeout)
    }

    pub(crate) fn plan(&self) -> Result<Plan, ClusterError> {
        let tls_said = self.use_tls;
        let sentinel = !self.sentinel_addresses.is_empty() || !self.sentinel_master_name.is_empty();
        let cluster = !self.cluster_addresses.is_empty();
        if sentinel && cluster {
            return Err(bad(
                "redis.sentinel_addresses and redis.cluster_addresses are both set: a registry is either behind Sentinel or in a Redis Cluster; remove one",
            ));
        }
        if !self.address.is_empty() && (sentinel || cluster) {
            let other = if sentinel {
                "redis.sentinel_addresses"
            } else {
                "redis.cluster_addresses"
            };
            return Err(bad(format!(
                "redis.address is set together with {other}: the address would be ignored; remove one"
            )));
        }
        if self.max_redirects.is_some() && !cluster {
            return Err(bad(
                "redis.max_redirects applies to a Redis Cluster only (redis.cluster_addresses)",
            ));
        }
        if self.db < 0 {
            return Err(bad(format!("redis.db must be 0 or more, got {}", self.db)));
        }
        let creds = RedisConnectionInfo {
            db: self.db,
            username: non_empty(&self.username),
            password: non_empty(&self.password),
            ..RedisConnectionInfo::default()
        };
        let (mode, tls) = if sentinel {
            if self.sentinel_master_name.is_empty() {
                return Err(bad(
                    "redis.sentinel_master_name is empty: Sentinel mode needs the master's name",
                ));
            }
            if self.sentinel_addresses.is_empty() {
                return Err(bad(
                    "redis.sentinel_addresses is empty: Sentinel mode needs at least one sentinel",
                ));
            }
            let tls = tls_said.unwrap_or(false);
            let sentinel_creds = RedisConnectionInfo {
                username: non_empty(&self.sentinel_username),
                password: non_empty(&self.sentinel_password),
                ..RedisConnectionInfo::default()
            };
            let sentinels = list(
                "redis.sentinel_addresses",
                &self.sentinel_addresses,
                tls,
                &sentinel_creds,
            )?;
            let mode = Mode::Sentinel {
                name: self.sentinel_master_name.clone(),
                sentinels,
                master: creds,
                tls,
            };
            (mode, tls)
        } else if cluster {
            if self.db != 0 {
                return Err(bad(format!(
                    "redis.db is {} but a Redis Cluster has only database 0",
                    self.db
                )));
            }
            let tls = tls_said.unwrap_or(false);
            let nodes = list(
                "redis.cluster_addresses",
                &self.cluster_addresses,
                tls,
                &creds,
            )?;
            let mode = Mode::Cluster {
                nodes,
                max_redirects: self.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS),
            };
            (mode, tls)
        } else {
            if self.address.is_empty() {
                return Err(bad(
                    "redis: none of address, sentinel_addresses or cluster_addresses is set",
                ));
            }
            let info = single(self, creds)?;
            let tls = matches!(info.addr, ConnectionAddr::TcpTls { .. });
            (Mode::Single(info), tls)
        };
        if tls && !cfg!(feature = "cluster-tls") {
            return Err(bad(
                "TLS to Redis (rediss:// or redis.use_tls) needs nodestats built with the `cluster-tls` feature",
            ));
        }
        let ca = match &self.ca_file {
            None => None,
            Some(_) if !tls => {
                return Err(bad(
                    "a CA file (--redis-ca) is given but TLS is not used (rediss:// or redis.use_tls: true)",
                ))
            }
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                bad(format!(
                    "cannot read the CA file (--redis-ca) {}: {e}",
                    path.display()
                ))
            })?),
        };
        Ok(Plan {
            mode,
            ca,
            describe: describe(self),
        })
    }
}

fn bad(what: impl Into<String>) -> ClusterError {
    ClusterError::config(what)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn describe(c: &RedisConfig) -> String {
    let user = |u: &str| {
        if u.is_empty() {
            String::new()
        } else {
            format!(" as user {u:?}")
        }
    };
    if !c.sentinel_addresses.is_empty() || !c.sentinel_master_name.is_empty() {
        format!(
            "master {:?} via sentinels {}{}",
            c.sentinel_master_name,
            c.sentinel_addresses.join(","),
            user(&c.username)
        )
    } else if !c.cluster_addresses.is_empty() {
        format!(
            "cluster {}{}",
            c.cluster_addresses.join(","),
            user(&c.username)
        )
    } else {
        let mut s = super::error::redact(&c.address);
        if c.db != 0 {
            s = format!("{s} db {}", c.db);
        }
        format!("{s}{}", user(&c.username))
    }
}

/// `host:port` (or `[v6]:port`) of `key`.
fn host_port(key: &str, s: &str, tls: bool) -> Result<ConnectionAddr, ClusterError> {
    let fail = |why: &str| bad(format!("{key} {s:?}: {why}"));
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| fail("expected HOST:PORT"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', '@', ' ']) || host.contains("://") {
        return Err(fail("expected HOST:PORT"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| fail("the port is not a number from 1 to 65535"))?;
    Ok(tcp(host.to_string(), port, tls))
}

fn tcp(host: String, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

/// The servers listed under `key`, each with `creds`.
fn list(
    key: &str,
    addrs: &[String],
    tls: bool,
    creds: &RedisConnectionInfo,
) -> Result<Vec<ConnectionInfo>, ClusterError> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Ok(ConnectionInfo {
                addr: host_port(&format!("{key}[{i}]"), a, tls)?,
                redis: creds.clone(),
            })
        })
        .collect()
}

/// The standalone address: a URL or `host:port`, merged with the keys.
fn single(c: &RedisConfig, creds: RedisConnectionInfo) -> Result<ConnectionInfo, ClusterError> {
    let a = c.address.as_str();
    let Some((scheme, _)) = a.split_once("://") else {
        return Ok(ConnectionInfo {
            addr: host_port("redis.address", a, c.use_tls.unwrap_or(false))?,
            redis: creds,
        });
    };
    let shown = super::error::redact(a);
    let url_tls = match scheme {
        "redis" => false,
        "rediss" => true,
        _ => {
            return Err(bad(format!(
                "redis.address {shown:?}: expected HOST:PORT, redis:// or rediss://"
            )))
        }
    };
    if let Some(said) = c.use_tls {
        if said != url_tls {
            return Err(bad(format!(
                "redis.use_tls is {said} but redis.address is a {scheme}:// URL; make them agree"
            )));
        }
    }
    let mut info: ConnectionInfo =
        redis::IntoConnectionInfo::into_connection_info(a).map_err(|e| {
            bad(format!(
                "redis.address {shown:?} is not a usable Redis URL: {e}"
            ))
        })?;
    if let ConnectionAddr::TcpTls { tls_params, .. } = &mut info.addr {
        *tls_params = None;
    }
    let url_db = info.redis.db;
    if creds.db != 0 && url_db != 0 && creds.db != url_db {
        return Err(bad(format!(
            "redis.db is {} but redis.address selects database {url_db}; make them agree",
            creds.db
        )));
    }
    info.redis.db = if url_db != 0 { url_db } else { creds.db };
    if info.redis.username.is_none() {
        info.redis.username = creds.username;
    }
    if info.redis.password.is_none() {
        info.redis.password = creds.password;
    }
    Ok(info)
}

impl Plan {
    pub(crate) fn describe(&self) -> &str {
        &self.describe
    }

    pub(crate) fn is_sentinel(&self) -> bool {
        matches!(self.mode, Mode::Sentinel { .. })
    }

    pub(crate) fn connect(&self, timeout: Duration) -> Result<RegistryConnection, ClusterError> {
        let fail = |what: &str, e| ClusterError::new(&self.describe, what.to_string(), Some(e));
        match &self.mode {
            Mode::Single(info) => self
                .open(info.clone(), timeout)
                .map(RegistryConnection::Single)
                .map_err(|e| fail("cannot connect", e)),
            Mode::Sentinel {
                name,
                sentinels,
                master,
                tls,
            } => self.via_sentinels(name, sentinels, master, *tls, timeout),
            Mode::Cluster {
                nodes,
                max_redirects,
            } => self
                .cluster(nodes, *max_redirects, timeout)
                .map(|c| RegistryConnection::Cluster(Box::new(c)))
                .map_err(|e| fail("cannot connect to the cluster", e)),
        }
    }

    /// One server, with the CA if any, timeouts set, AUTH and SELECT done.
    fn open(&self, info: ConnectionInfo, timeout: Duration) -> RedisResult<redis::Connection> {
        let client = self.client(info)?;
        let con = client.get_connection_with_timeout(timeout)?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        Ok(con)
    }

    #[cfg(feature = "cluster-tls")]
    fn client(&self, info: ConnectionInfo) -> RedisResult<redis::Client> {
        match (&self.ca, &info.addr) {
            (Some(ca), ConnectionAddr::TcpTls { .. }) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
            _ => redis::Client::open(info),
        }
    }

    #[cfg(not(feature = "cluster-tls"))]
    fn client(&self, info: ConnectionInfo) -> RedisResult<redis::Client> {
        redis::Client::open(info)
    }

    /// Asks each sentinel in turn for the master and connects to the first
    /// answer that is a master indeed (a sentinel that has not seen the
    /// failover yet may name the old one, now a replica or dead).
    fn via_sentinels(
        &self,
        name: &str,
        sentinels: &[ConnectionInfo],
        master: &RedisConnectionInfo,
        tls: bool,
        timeout: Duration,
    ) -> Result<RegistryConnection, ClusterError> {
        let mut why = Vec::new();
        for s in sentinels {
            let at = addr_text(&s.addr);
            let found = self.open(s.clone(), timeout).and_then(|mut con| {
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(name)
                    .query::<Option<(String, u16)>>(&mut con)
            });
            let (host, port) = match found {
                Ok(Some(hp)) => hp,
                Ok(None) => {
                    why.push(format!("sentinel {at} does not know master {name:?}"));
                    continue;
                }
                Err(e) => {
                    why.push(format!("sentinel {at}: {}", super::error::reason(&e)));
                    continue;
                }
            };
            let info = ConnectionInfo {
                addr: tcp(host.clone(), port, tls),
                redis: master.clone(),
            };
            let mut con = match self.open(info, timeout) {
                Ok(con) => con,
                Err(e) => {
                    why.push(format!(
                        "master {host}:{port} (from sentinel {at}): {}",
                        super::error::reason(&e)
                    ));
                    continue;
                }
            };
            match redis::cmd("ROLE").query::<redis::Value>(&mut con) {
                Ok(role) if is_master(&role) => return Ok(RegistryConnection::Single(con)),
                // A user allowed the registry's commands but not ROLE: trust
                // the sentinel.
                Err(e) if e.code() == Some("NOPERM") => return Ok(RegistryConnection::Single(con)),
                Ok(_) => why.push(format!(
                    "sentinel {at} names {host}:{port}, which is not a master (yet)"
                )),
                Err(e) => why.push(format!(
                    "master {host}:{port} (from sentinel {at}): {}",
                    super::error::reason(&e)
                )),
            }
        }
        Err(ClusterError::new(
            &self.describe,
            format!("no master reachable: {}", why.join("; ")),
            None,
        ))
    }

    fn cluster(
        &self,
        nodes: &[ConnectionInfo],
        max_redirects: u32,
        timeout: Duration,
    ) -> RedisResult<redis::cluster::ClusterConnection> {
        let first = nodes.first().map(|n| n.redis.clone()).unwrap_or_default();
        let mut b = redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(max_redirects);
        if let Some(u) = first.username {
            b = b.username(u);
        }
        if let Some(p) = first.password {
            b = b.password(p);
        }
        #[cfg(feature = "cluster-tls")]
        if let Some(ca) = &self.ca {
            b = b.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            });
        }
        let con = b.build()?.get_connection()?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        Ok(con)
    }
}

fn addr_text(a: &ConnectionAddr) -> String {
    match a {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            format!("{h}:{p}")
        }
        other => other.to_string(),
    }
}

fn is_master(role: &redis::Value) -> bool {
    match role {
        redis::Value::Array(items) => matches!(
            items.first(),
            Some(redis::Value::BulkString(b)) if b == b"master"
        ),
        _ => false,
    }
}

/// A connection to the registry: one server (standalone, or the master
/// Sentinel named) or a Redis Cluster. Run commands on it as on any
/// `redis` connection: `redis::cmd("HGET").arg(..).query(&mut con)`.
#[allow(missing_debug_implementations)]
pub enum RegistryConnection {
    /// A standalone server or the current master.
    Single(redis::Connection),
    /// A Redis Cluster (redirects followed).
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl RegistryConnection {
    /// Sets the read and write timeout of the underlying socket(s).
    pub fn set_timeouts(&self, timeout: Duration) -> RedisResult<()> {
        match self {
            RegistryConnection::Single(c) => {
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))
            }
            RegistryConnection::Cluster(c) => {
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))
            }
        }
    }
}

impl ConnectionLike for RegistryConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<redis::Value> {
        match self {
            RegistryConnection::Single(c) => c.req_packed_command(cmd),
            RegistryConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<redis::Value>> {
        match self {
            RegistryConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            RegistryConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> RedisResult<redis::Value> {
        match self {
            RegistryConnection::Single(c) => c.req_command(cmd),
            RegistryConnection::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RegistryConnection::Single(c) => c.get_db(),
            RegistryConnection::Cluster(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            RegistryConnection::Single(c) => c.check_connection(),
            RegistryConnection::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            RegistryConnection::Single(c) => c.is_open(),
            RegistryConnection::Cluster(c) => c.is_open(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: &RedisConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn contradictions_and_bad_values_name_the_key() {
        let s = RedisConfig {
            sentinel_master_name: "m".into(),
            sentinel_addresses: vec!["a:1".into()],
            cluster_addresses: vec!["b:2".into()],
            ..RedisConfig::default()
        };
        assert!(err(&s).contains("redis.sentinel_addresses and redis.cluster_addresses"));
        let c = RedisConfig {
            cluster_addresses: vec!["b:2".into()],
            db: 3,
            ..RedisConfig::default()
        };
        assert!(err(&c).contains("redis.db is 3"), "{}", err(&c));
        let c = RedisConfig {
            cluster_addresses: vec!["b:2".into(), "nohost".into()],
            ..RedisConfig::default()
        };
        assert!(err(&c).contains("redis.cluster_addresses[1] \"nohost\""));
        let c = RedisConfig {
            address: "h:notaport".into(),
            ..RedisConfig::default()
        };
        assert!(err(&c).contains("redis.address \"h:notaport\": the port"));
        let c = RedisConfig {
            address: "rediss://h:1".into(),
            use_tls: Some(false),
            ..RedisConfig::default()
        };
        assert!(err(&c).contains("redis.use_tls is false"));
        let c = RedisConfig {
            address: "redis://h:1/2".into(),
            db: 5,
            ..RedisConfig::default()
        };
        assert!(err(&c).contains("redis.db is 5"));
        let c = RedisConfig {
            sentinel_addresses: vec!["a:1".into()],
            ..RedisConfig::default()
        };
        assert!(err(&c).contains("redis.sentinel_master_name"));
        let c = RedisConfig {
            address: "h:1".into(),
            max_redirects: Some(3),
            ..RedisConfig::default()
        };
        assert!(err(&c).contains("redis.max_redirects"));
        let c = RedisConfig {
            address: "h:1".into(),
            ca_file: Some("/nonexistent".into()),
            ..RedisConfig::default()
        };
        assert!(err(&c).contains("--redis-ca"));
        assert!(err(&RedisConfig::default()).contains("none of address"));
        let c = RedisConfig {
            address: "http://h:1".into(),
            ..RedisConfig::default()
        };
        assert!(err(&c).contains("redis.address"));
        // Good ones.
        for ok in [
            RedisConfig::url("redis://u:pw@127.0.0.1:6379/2"),
            RedisConfig::url("127.0.0.1:6379"),
            RedisConfig::url("[::1]:6379"),
            RedisConfig {
                sentinel_master_name: "m".into(),
                sentinel_addresses: vec!["a:1".into(), "b:2".into()],
                db: 1,
                ..RedisConfig::default()
            },
            RedisConfig {
                cluster_addresses: vec!["a:1".into()],
                max_redirects: Some(5),
                ..RedisConfig::default()
            },
        ] {
            ok.validate().unwrap();
        }
    }

    #[test]
    fn passwords_stay_out_of_debug_and_descriptions() {
        let c = RedisConfig {
            address: "redis://u:hunter2@h:1".into(),
            password: "hunter3".into(),
            sentinel_password: "hunter4".into(),
            ..RedisConfig::default()
        };
        let shown = format!("{c:?} {}", c.describe());
        for secret in ["hunter2", "hunter3", "hunter4"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn url_and_keys_merge() {
        let c = RedisConfig {
            address: "redis://127.0.0.1:6379".into(),
            username: "alice".into(),
            password: "pw".into(),
            db: 4,
            ..RedisConfig::default()
        };
        let Mode::Single(info) = c.plan().unwrap().mode else {
            panic!("standalone")
        };
        assert_eq!(info.redis.db, 4);
        assert_eq!(info.redis.username.as_deref(), Some("alice"));
        assert_eq!(info.redis.password.as_deref(), Some("pw"));
    }
}
