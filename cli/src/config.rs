//! `--config FILE`: a LiveKit `livekit.yaml`, of which `serve` and `nodes`
//! read the `redis:` block and `region`, and `nodes --select` also
//! `node_selector` and, of `limit`, `num_tracks` and `bytes_per_sec`.
//!
//! The rest of the file is LiveKit's and is ignored. Inside `redis:` and
//! `node_selector:` an unknown key is an error naming it, as LiveKit's own
//! loader (yaml.v3 with `KnownFields(true)`) refuses it: a file LiveKit
//! starts with is one we read, and a misspelt key is not silently dropped.
//! LiveKit's pool and timeout keys (`dial_timeout`, `read_timeout`,
//! `write_timeout`, `pool_timeout`, `pool_size`) are accepted and not used:
//! nodestats keeps its own timeouts. The other keys of `limit:` are
//! LiveKit's per-room limits (subscriptions, metadata and name sizes, ...),
//! which change between its versions: they are ignored, whatever they are.

use clap::Args;
use nodestats::cluster::{RedisConfig, Region};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The registry flags `serve` and `nodes` share.
#[derive(Args, Debug, Default)]
pub(crate) struct RegistryArgs {
    /// A LiveKit livekit.yaml: its redis: block (standalone, Sentinel or Cluster; ACL user, db, TLS), region, node_selector and limit (defaults of nodes --select). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The Redis holding the registry, redis://[USER[:PASSWORD]@]HOST:PORT[/DB] (rediss:// for TLS); replaces the whole redis: block of --config.
    #[arg(long, value_name = "URL")]
    pub(crate) redis: Option<String>,
    /// PEM file of the CA that signs the Redis servers' certificates (TLS), instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) redis_ca: Option<PathBuf>,
}

/// What `--config` gave.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LiveKitFile {
    redis: Option<RedisBlock>,
    pub(crate) region: Option<String>,
    pub(crate) node_selector: Option<NodeSelector>,
    pub(crate) limit: Option<Limits>,
}

/// LiveKit's `redis:` block (livekit/protocol `redis.RedisConfig`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RedisBlock {
    address: String,
    username: String,
    password: String,
    db: i64,
    use_tls: Option<bool>,
    sentinel_master_name: String,
    sentinel_username: String,
    sentinel_password: String,
    sentinel_addresses: Vec<String>,
    cluster_addresses: Vec<String>,
    max_redirects: Option<u32>,
    // LiveKit's, accepted and not used.
    dial_timeout: Option<IgnoredAny>,
    read_timeout: Option<IgnoredAny>,
    write_timeout: Option<IgnoredAny>,
    pool_timeout: Option<IgnoredAny>,
    pool_size: Option<IgnoredAny>,
}

/// LiveKit's `node_selector:` block: the defaults of `nodes --select`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NodeSelector {
    pub(crate) kind: Option<String>,
    pub(crate) sort_by: Option<String>,
    pub(crate) algorithm: Option<String>,
    pub(crate) cpu_load_limit: Option<f32>,
    pub(crate) sysload_limit: Option<f32>,
    pub(crate) regions: Vec<Region>,
}

/// LiveKit's `limit:` block, the keys a node's load is checked against
/// (`nodes --select`'s defaults of `--max-tracks` and
/// `--max-bytes-per-sec`); its other keys are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Limits {
    pub(crate) num_tracks: Option<i32>,
    pub(crate) bytes_per_sec: Option<f32>,
}

impl LiveKitFile {
    /// Reads and parses `path`; errors name the file and the key.
    pub(crate) fn read(path: &Path) -> Result<LiveKitFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
        LiveKitFile::parse(&text).map_err(|e| format!("--config {}: {e}", path.display()))
    }

    pub(crate) fn parse(text: &str) -> Result<LiveKitFile, String> {
        if text.trim().is_empty() {
            return Ok(LiveKitFile::default());
        }
        serde_norway::from_str::<Option<LiveKitFile>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| e.to_string())
    }

    /// The `redis:` block as a [`RedisConfig`], if there is one.
    fn redis(&self) -> Option<RedisConfig> {
        let r = self.redis.as_ref()?;
        Some(RedisConfig {
            address: r.address.clone(),
            username: r.username.clone(),
            password: r.password.clone(),
            db: r.db,
            use_tls: r.use_tls,
            sentinel_master_name: r.sentinel_master_name.clone(),
            sentinel_username: r.sentinel_username.clone(),
            sentinel_password: r.sentinel_password.clone(),
            sentinel_addresses: r.sentinel_addresses.clone(),
            cluster_addresses: r.cluster_addresses.clone(),
            max_redirects: r.max_redirects,
            ca_file: None,
        })
    }
}

impl RegistryArgs {
    /// The file of `--config`, if given.
    pub(crate) fn file(&self) -> Result<LiveKitFile, String> {
        match &self.config {
            Some(path) => LiveKitFile::read(path),
            None => Ok(LiveKitFile::default()),
        }
    }

    /// The registry: `--redis` if given, else the file's `redis:` block;
    /// `--redis-ca` on top. `None` when neither says where Redis is.
    /// Checked: a bad or contradictory configuration is an error naming
    /// the key.
    pub(crate) fn registry(&self, file: &LiveKitFile) -> Result<Option<RedisConfig>, String> {
        let mut config = match (&self.redis, file.redis()) {
            (Some(url), _) => RedisConfig::url(url.clone()),
            (None, Some(c)) => c,
            (None, None) => {
                if self.redis_ca.is_some() {
                    return Err("--redis-ca needs --redis or a redis: block in --config".into());
                }
                return Ok(None);
            }
        };
        config.ca_file.clone_from(&self.redis_ca);
        config.validate().map_err(|e| {
            let from = match (&self.redis, &self.config) {
                (None, Some(path)) => format!("--config {}: ", path.display()),
                _ => "--redis: ".into(),
            };
            format!("{from}{e}")
        })?;
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn livekit_yaml_is_read_and_the_rest_ignored() {
        let f = LiveKitFile::parse(
            "port: 7880\nrtc:\n  udp_port: 7882\n  unknown_to_us: 1\nkeys:\n  k: s\nregion: eu\n\
             redis:\n  sentinel_master_name: mymaster\n  sentinel_addresses: [\"127.0.0.1:26379\", \"127.0.0.1:26380\"]\n  \
             password: pw\n  db: 2\n  read_timeout: 200\n\
             node_selector:\n  kind: sysload\n  sort_by: rooms\n  sysload_limit: 0.7\n  regions:\n    - name: eu\n      lat: 50.1\n      lon: 8.6\n\
             limit:\n  num_tracks: 400\n  bytes_per_sec: 1.5e8\n  subscription_limit_video: 20\n  max_metadata_size: 64000\n",
        )
        .unwrap();
        let r = f.redis().unwrap();
        assert_eq!(r.sentinel_master_name, "mymaster");
        assert_eq!(r.sentinel_addresses.len(), 2);
        assert_eq!((r.password.as_str(), r.db), ("pw", 2));
        assert_eq!(f.region.as_deref(), Some("eu"));
        let s = f.node_selector.unwrap();
        assert_eq!(s.kind.as_deref(), Some("sysload"));
        assert_eq!(s.sysload_limit, Some(0.7));
        assert_eq!(s.regions[0].name, "eu");
        let l = f.limit.unwrap();
        assert_eq!((l.num_tracks, l.bytes_per_sec), (Some(400), Some(1.5e8)));
    }

    #[test]
    fn an_unknown_key_inside_redis_is_an_error_naming_it() {
        let e = LiveKitFile::parse("redis:\n  adress: h:1\n").unwrap_err();
        assert!(e.contains("adress"), "{e}");
        let e = LiveKitFile::parse("node_selector:\n  sortby: rooms\n").unwrap_err();
        assert!(e.contains("sortby"), "{e}");
        let e = LiveKitFile::parse("redis:\n  db: zero\n").unwrap_err();
        assert!(e.contains("db"), "{e}");
    }

    #[test]
    fn flags_override_the_file_and_contradictions_name_the_key() {
        let f = LiveKitFile::parse(
            "redis:\n  sentinel_master_name: m\n  sentinel_addresses: [\"a:1\"]\n  cluster_addresses: [\"b:2\"]\n",
        )
        .unwrap();
        let args = RegistryArgs {
            config: Some("x.yaml".into()),
            ..RegistryArgs::default()
        };
        let e = args.registry(&f).unwrap_err();
        assert!(
            e.contains("redis.sentinel_addresses and redis.cluster_addresses"),
            "{e}"
        );
        let args = RegistryArgs {
            config: Some("x.yaml".into()),
            redis: Some("redis://127.0.0.1:1".into()),
            ..RegistryArgs::default()
        };
        let r = args.registry(&f).unwrap().unwrap();
        assert_eq!(r.address, "redis://127.0.0.1:1");
        assert!(r.sentinel_addresses.is_empty());
        assert!(RegistryArgs::default()
            .registry(&LiveKitFile::default())
            .unwrap()
            .is_none());
    }
}
