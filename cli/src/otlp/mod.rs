//! `serve --otlp-endpoint`: push every family as OTLP/HTTP protobuf
//! (`ExportMetricsServiceRequest`) every interval, configured by flags or
//! by the standard OpenTelemetry variables (flags win):
//!
//! | flag | variable | default |
//! |---|---|---|
//! | `--otlp-endpoint URL` | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (as is), `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/metrics`) | off |
//! | `--otlp-interval SECS` | `OTEL_METRIC_EXPORT_INTERVAL` (ms) | 60 s |
//! | `--otlp-timeout SECS` | `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT` (ms) | 10 s |
//! | `--otlp-header K=V` | `OTEL_EXPORTER_OTLP_METRICS_HEADERS`, `OTEL_EXPORTER_OTLP_HEADERS` | none |
//! | `--otlp-compression gzip\|none` | `OTEL_EXPORTER_OTLP_METRICS_COMPRESSION`, `OTEL_EXPORTER_OTLP_COMPRESSION` | none |
//! | | `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME` | `service.name=nodestats` |
//!
//! Pushing runs on a thread of its own ([`push`]); its outcomes are
//! families of their own on /metrics ([`add_metrics`]).

pub(crate) mod encode;
mod push;

use clap::Args;
use nodestats::{Error, Snapshot};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub(crate) use push::start;

#[derive(Args, Debug, Default)]
pub(crate) struct OtlpArgs {
    /// Push every family as OTLP/HTTP protobuf to this URL (a URL without a path gets /v1/metrics); also OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Seconds between OTLP pushes (default: OTEL_METRIC_EXPORT_INTERVAL in ms, else 60).
    #[arg(long, value_name = "SECS")]
    otlp_interval: Option<f64>,
    /// Seconds one OTLP request may take (default: OTEL_EXPORTER_OTLP_[METRICS_]TIMEOUT in ms, else 10).
    #[arg(long, value_name = "SECS")]
    otlp_timeout: Option<f64>,
    /// A header sent with every OTLP request (repeatable); replaces OTEL_EXPORTER_OTLP_[METRICS_]HEADERS.
    #[arg(long = "otlp-header", value_name = "KEY=VALUE")]
    otlp_headers: Vec<String>,
    /// Compress OTLP requests: gzip or none (default: OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION, else none).
    #[arg(long, value_name = "gzip|none")]
    otlp_compression: Option<String>,
}

/// Where and how to push.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    /// `host:port` to connect to.
    pub(crate) authority: String,
    /// Path and query of the request.
    pub(crate) path: String,
    /// The URL as configured, for messages.
    pub(crate) url: String,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) gzip: bool,
    /// Resource attributes, `service.name` first.
    pub(crate) resource: Vec<(String, String)>,
}

/// Who the node is, for the resource attributes.
pub(crate) struct Node<'a> {
    pub(crate) id: &'a str,
    pub(crate) node_type: &'a str,
    pub(crate) region: Option<&'a str>,
}

fn config_error(msg: String) -> Error {
    Error::Config(msg)
}

/// Milliseconds from a variable, as a duration.
fn env_ms(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Result<Option<Duration>, Error> {
    for name in names {
        if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
            let ms: u64 = v.trim().parse().map_err(|_| {
                config_error(format!(
                    "{name}={v:?}: expected a whole number of milliseconds"
                ))
            })?;
            if ms == 0 {
                return Err(config_error(format!("{name}: must be more than 0 ms")));
            }
            return Ok(Some(Duration::from_millis(ms)));
        }
    }
    Ok(None)
}

fn secs(flag: &str, v: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            config_error(format!(
                "{flag} must be a positive number of seconds, got {v}"
            ))
        })
}

/// Percent-decodes a W3C-baggage style value (`OTEL_*_HEADERS`,
/// `OTEL_RESOURCE_ATTRIBUTES`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k1=v1,k2=v2` with percent-encoded values, as the OpenTelemetry
/// variables write lists. Entries without `=` or with an empty key are
/// refused.
fn key_values(name: &str, v: &str) -> Result<Vec<(String, String)>, Error> {
    v.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|e| match e.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((percent_decode(k.trim()), percent_decode(v.trim())))
            }
            _ => Err(config_error(format!("{name}: {e:?} is not KEY=VALUE"))),
        })
        .collect()
}

/// Splits `http://host[:port][/path]`; only plain HTTP (no TLS here: push
/// to a local collector, which forwards over TLS).
fn parse_url(url: &str) -> Result<(String, String), Error> {
    let bad = |why: &str| config_error(format!("OTLP endpoint {url:?}: {why}"));
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(bad(
                "https is not supported; push over http to a local OpenTelemetry Collector, which can forward over TLS",
            ))
        }
        _ => return Err(bad("expected http://HOST[:PORT][/PATH]")),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("expected http://HOST[:PORT][/PATH]"));
    }
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok((authority, path))
}

impl OtlpArgs {
    /// The push configuration from the flags and `env` (a variable
    /// lookup), or `None` when no endpoint is configured.
    pub(crate) fn config(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        node: &Node<'_>,
    ) -> Result<Option<Config>, Error> {
        let set = |n: &str| env(n).filter(|v| !v.trim().is_empty());
        let url = match &self.otlp_endpoint {
            Some(u) => {
                let (_, path) = parse_url(u)?;
                if path.is_empty() || path == "/" {
                    format!("{}/v1/metrics", u.trim_end_matches('/'))
                } else {
                    u.clone()
                }
            }
            None => {
                // The variables configure an OpenTelemetry SDK; these two
                // turn its metrics export off.
                let disabled = set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim() == "true")
                    || set("OTEL_METRICS_EXPORTER").is_some_and(|v| v.trim() == "none");
                match (
                    set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
                    set("OTEL_EXPORTER_OTLP_ENDPOINT"),
                ) {
                    _ if disabled => return Ok(None),
                    (Some(u), _) => u.trim().to_string(),
                    (None, Some(base)) => {
                        format!("{}/v1/metrics", base.trim().trim_end_matches('/'))
                    }
                    (None, None) => return Ok(None),
                }
            }
        };
        let (authority, path) = parse_url(&url)?;
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        for var in [
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(p) = set(var) {
                if p.trim() != "http/protobuf" {
                    return Err(config_error(format!(
                        "{var}={p:?}: nodestats pushes OTLP as http/protobuf only"
                    )));
                }
                break;
            }
        }
        let interval = match self.otlp_interval {
            Some(s) => secs("--otlp-interval", s)?,
            None => {
                env_ms(env, &["OTEL_METRIC_EXPORT_INTERVAL"])?.unwrap_or(Duration::from_secs(60))
            }
        };
        let timeout = match self.otlp_timeout {
            Some(s) => secs("--otlp-timeout", s)?,
            None => env_ms(
                env,
                &[
                    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                ],
            )?
            .unwrap_or(Duration::from_secs(10)),
        };
        let headers = if self.otlp_headers.is_empty() {
            match set("OTEL_EXPORTER_OTLP_METRICS_HEADERS") {
                Some(v) => key_values("OTEL_EXPORTER_OTLP_METRICS_HEADERS", &v)?,
                None => match set("OTEL_EXPORTER_OTLP_HEADERS") {
                    Some(v) => key_values("OTEL_EXPORTER_OTLP_HEADERS", &v)?,
                    None => Vec::new(),
                },
            }
        } else {
            self.otlp_headers
                .iter()
                .map(|h| match h.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        Ok((k.trim().to_string(), v.trim().to_string()))
                    }
                    _ => Err(config_error(format!(
                        "--otlp-header {h:?}: expected KEY=VALUE"
                    ))),
                })
                .collect::<Result<_, _>>()?
        };
        for (k, v) in &headers {
            let name_ok = hyper::header::HeaderName::from_bytes(k.as_bytes()).is_ok();
            if !name_ok || hyper::header::HeaderValue::from_str(v).is_err() {
                return Err(config_error(format!(
                    "OTLP header {k:?}: not a valid HTTP header"
                )));
            }
        }
        let compression = match &self.otlp_compression {
            Some(c) => Some(("--otlp-compression", c.clone())),
            None => set("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION")
                .map(|c| ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", c))
                .or_else(|| {
                    set("OTEL_EXPORTER_OTLP_COMPRESSION")
                        .map(|c| ("OTEL_EXPORTER_OTLP_COMPRESSION", c))
                }),
        };
        let gzip = match compression {
            None => false,
            Some((_, c)) if c.trim() == "gzip" => true,
            Some((_, c)) if c.trim() == "none" => false,
            Some((from, c)) => {
                return Err(config_error(format!("{from} {c:?}: expected gzip or none")))
            }
        };
        Ok(Some(Config {
            authority,
            path,
            url,
            interval,
            timeout,
            headers,
            gzip,
            resource: resource(env, node)?,
        }))
    }
}

/// The resource attributes: `OTEL_RESOURCE_ATTRIBUTES`, then the node's
/// (`service.instance.id` and `node_id` = the node id, `node_type`,
/// `region` when given), `service.name` from `OTEL_SERVICE_NAME`, else
/// from the variable, else `nodestats`; `service.name` first.
fn resource(
    env: &dyn Fn(&str) -> Option<String>,
    node: &Node<'_>,
) -> Result<Vec<(String, String)>, Error> {
    let mut attrs = match env("OTEL_RESOURCE_ATTRIBUTES") {
        Some(v) => key_values("OTEL_RESOURCE_ATTRIBUTES", &v)?,
        None => Vec::new(),
    };
    let mut put = |k: &str, v: &str, replace: bool| match attrs.iter_mut().find(|a| a.0 == k) {
        Some(a) if replace => a.1 = v.to_string(),
        Some(_) => {}
        None => attrs.push((k.to_string(), v.to_string())),
    };
    put("service.instance.id", node.id, false);
    put("node_id", node.id, true);
    put("node_type", node.node_type, true);
    if let Some(r) = node.region {
        put("region", r, true);
    }
    match env("OTEL_SERVICE_NAME").filter(|v| !v.trim().is_empty()) {
        Some(n) => put("service.name", n.trim(), true),
        None => put("service.name", "nodestats", false),
    }
    let at = attrs
        .iter()
        .position(|a| a.0 == "service.name")
        .unwrap_or(0);
    attrs[..=at].rotate_right(1);
    Ok(attrs)
}

/// The pusher's counters, shown on /metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Requests by outcome: accepted, retryable failure (429, 502, 503,
    /// 504), rejected (any other status), no answer (connection, timeout).
    pub(crate) success: AtomicU64,
    pub(crate) retryable: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) error: AtomicU64,
    /// Snapshots never delivered: replaced by a newer one while retrying,
    /// or refused by the receiver.
    pub(crate) dropped_stale: AtomicU64,
    pub(crate) dropped_rejected: AtomicU64,
    /// Data points the receiver said it rejected (OTLP partial success).
    pub(crate) rejected_points: AtomicU64,
    /// Unix ms of the last accepted push, 0 before.
    pub(crate) last_success_ms: AtomicU64,
    /// Why the last request failed, until one succeeds.
    pub(crate) last_error: Mutex<Option<String>>,
}

/// The running pusher's counters, for the /metrics page.
static STATS: OnceLock<std::sync::Arc<Stats>> = OnceLock::new();

/// Adds the pusher's families to a /metrics snapshot (nothing without a
/// configured endpoint).
pub(crate) fn add_metrics(snapshot: &mut Snapshot) {
    let Some(s) = STATS.get() else {
        return;
    };
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    const EXPORTS: &str = "nodestats_otlp_exports_total";
    const EXPORTS_HELP: &str = "OTLP export requests by result: success, retryable (429, 502, 503, 504; retried), rejected (other statuses; dropped), error (no answer: connection or timeout; retried).";
    for (result, v) in [
        ("success", &s.success),
        ("retryable", &s.retryable),
        ("rejected", &s.rejected),
        ("error", &s.error),
    ] {
        snapshot.add_counter(EXPORTS, EXPORTS_HELP, &[("result", result)], n(v));
    }
    const DROPPED: &str = "nodestats_otlp_dropped_total";
    const DROPPED_HELP: &str = "OTLP snapshots never delivered, by reason: stale (a newer one replaced it while retrying), rejected (the receiver refused it).";
    for (reason, v) in [
        ("stale", &s.dropped_stale),
        ("rejected", &s.dropped_rejected),
    ] {
        snapshot.add_counter(DROPPED, DROPPED_HELP, &[("reason", reason)], n(v));
    }
    snapshot.add_counter(
        "nodestats_otlp_rejected_points_total",
        "Data points an OTLP receiver accepted the request of but rejected (partial success).",
        &[],
        n(&s.rejected_points),
    );
    let last = s.last_success_ms.load(Ordering::Relaxed);
    if last > 0 {
        snapshot.add_gauge(
            "nodestats_otlp_last_success_timestamp_seconds",
            "When an OTLP push was last accepted, Unix seconds.",
            &[],
            last as f64 / 1e3,
        );
    }
    if let Some(why) = s
        .last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        snapshot.add_gauge(
            "nodestats_otlp_last_error_info",
            "1 while the last OTLP request failed; the label says why.",
            &[("error", &why)],
            1.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(args: &OtlpArgs, vars: &[(&str, &str)]) -> Result<Option<Config>, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let node = Node {
            id: "ND_1",
            node_type: "SERVER",
            region: Some("eu"),
        };
        args.config(&|k| vars.get(k).cloned(), &node)
    }

    #[test]
    fn endpoints() {
        let none = OtlpArgs::default();
        assert_eq!(cfg(&none, &[]).unwrap(), None);
        let c = cfg(
            &none,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318/")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.authority.as_str(), c.path.as_str()),
            ("col:4318", "/v1/metrics")
        );
        let c = cfg(
            &none,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col:4318"),
                (
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "http://m:9/custom?x=1",
                ),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.authority.as_str(), c.path.as_str()),
            ("m:9", "/custom?x=1")
        );
        let c = cfg(
            &none,
            &[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m")],
        )
        .unwrap()
        .unwrap();
        assert_eq!((c.authority.as_str(), c.path.as_str()), ("m:80", "/"));
        let flag = OtlpArgs {
            otlp_endpoint: Some("http://[::1]:4318".into()),
            ..Default::default()
        };
        let c = cfg(
            &flag,
            &[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9/x")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.authority.as_str(), c.path.as_str()),
            ("[::1]:4318", "/v1/metrics")
        );
        assert!(cfg(
            &none,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://col:4318")]
        )
        .is_err());
        assert!(cfg(&none, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "col:4318")]).is_err());
        assert!(cfg(
            &none,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:1"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            ]
        )
        .is_err());
        assert_eq!(
            cfg(
                &none,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:1"),
                    ("OTEL_METRICS_EXPORTER", "none")
                ]
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn settings_and_precedence() {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:1"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "700"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=se%20cret,x-b=2"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=sfu,node_id=bogus",
            ),
        ];
        let c = cfg(&OtlpArgs::default(), &env).unwrap().unwrap();
        assert_eq!(c.interval, Duration::from_millis(1500));
        assert_eq!(c.timeout, Duration::from_millis(700));
        assert_eq!(
            c.headers,
            vec![
                ("api-key".into(), "se cret".into()),
                ("x-b".into(), "2".into())
            ]
        );
        assert!(c.gzip);
        let r: Vec<(&str, &str)> = c
            .resource
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            r,
            [
                ("service.name", "sfu"),
                ("deployment.environment", "prod"),
                ("node_id", "ND_1"),
                ("service.instance.id", "ND_1"),
                ("node_type", "SERVER"),
                ("region", "eu"),
            ]
        );
        let flags = OtlpArgs {
            otlp_interval: Some(2.0),
            otlp_timeout: Some(0.5),
            otlp_headers: vec!["a=b".into()],
            otlp_compression: Some("none".into()),
            ..Default::default()
        };
        let mut env2 = env.to_vec();
        env2.push(("OTEL_SERVICE_NAME", "media"));
        let c = cfg(&flags, &env2).unwrap().unwrap();
        assert_eq!(
            (c.interval, c.timeout),
            (Duration::from_secs(2), Duration::from_millis(500))
        );
        assert_eq!(c.headers, vec![("a".into(), "b".into())]);
        assert!(!c.gzip);
        assert_eq!(c.resource[0], ("service.name".into(), "media".into()));
        let c = cfg(&OtlpArgs::default(), &env[..1]).unwrap().unwrap();
        assert_eq!(c.resource[0], ("service.name".into(), "nodestats".into()));
        assert_eq!(
            (c.interval, c.timeout, c.gzip),
            (Duration::from_secs(60), Duration::from_secs(10), false)
        );
        for bad in [
            ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "bad header=1"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_RESOURCE_ATTRIBUTES", "=x"),
        ] {
            assert!(
                cfg(&OtlpArgs::default(), &[env[0], bad]).is_err(),
                "{bad:?}"
            );
        }
        assert!(cfg(
            &OtlpArgs {
                otlp_interval: Some(0.0),
                ..Default::default()
            },
            &env
        )
        .is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Cc%"), "a b,c%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
