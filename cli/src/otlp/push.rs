//! The pusher: a thread of its own with a one-thread runtime, so nothing
//! it waits for (a slow, hung or refusing receiver) can reach the HTTP
//! server's thread, and its encoding never delays a scrape.
//!
//! Every interval it takes a fresh snapshot and POSTs it. A request that
//! fails with 429, 502, 503 or 504, or gets no answer within the timeout,
//! is retried with exponential backoff and jitter, not before the
//! receiver's `Retry-After` (the backoff never exceeds one interval).
//! Cumulative data needs only the latest
//! snapshot: one still undelivered when the next interval comes is
//! dropped (counted `stale`) and the new one goes instead. Any other
//! status drops the snapshot (counted `rejected`); retrying would get the
//! same answer.

use super::{encode, Config, Stats, STATS};
use crate::http::App;
use crate::signals::stopped;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// First retry delay (before jitter); doubles per failure.
const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest retry delay (before jitter), and never more than one interval:
/// a receiver that stays down gets about one request per interval.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest `Retry-After` honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);
/// Largest response body read (a status message or a partial success).
const MAX_RESPONSE: usize = 64 * 1024;
/// How often a sleeping pusher looks for a stop signal.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Starts pushing `app`'s families as `config` says, on a thread of its
/// own, until a stop signal.
pub(crate) fn start(config: Config, app: Arc<App>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let stats = STATS.get_or_init(Default::default).clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("otlp".into())
        .spawn(move || {
            let pusher = Pusher {
                config,
                app,
                stats,
                conn: None,
                seed: seed(),
            };
            rt.block_on(pusher.run());
        })
}

/// What one request came to.
enum Outcome {
    Delivered,
    /// Try again, not before this.
    Retry(Option<Duration>),
    Rejected,
}

struct Pusher {
    config: Config,
    app: Arc<App>,
    stats: Arc<Stats>,
    /// A kept-alive connection and the task driving it.
    conn: Option<(SendRequest<Full<Bytes>>, JoinHandle<()>)>,
    seed: u64,
}

impl Pusher {
    async fn run(mut self) {
        let interval = self.config.interval;
        let backoff_max = BACKOFF_MAX.min(interval);
        let mut next = Instant::now() + interval;
        let mut pending: Option<Bytes> = None;
        let mut not_before = Instant::now();
        let mut backoff = BACKOFF_START.min(backoff_max);
        loop {
            let wake = match pending {
                Some(_) => next.min(not_before),
                None => next,
            };
            if !sleep_until(wake).await {
                break;
            }
            let now = Instant::now();
            if now >= next {
                if pending.is_some() {
                    self.stats.dropped_stale.fetch_add(1, Ordering::Relaxed);
                }
                pending = Some(self.body());
                while next <= now {
                    next += interval;
                }
            }
            let Some(body) = pending.clone() else {
                continue;
            };
            if Instant::now() < not_before {
                continue;
            }
            match self.send(body).await {
                Outcome::Delivered => {
                    pending = None;
                    backoff = BACKOFF_START.min(backoff_max);
                }
                Outcome::Rejected => {
                    pending = None;
                    backoff = BACKOFF_START.min(backoff_max);
                    self.stats.dropped_rejected.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Retry(after) => {
                    let wait = self.jitter(backoff).max(after.unwrap_or_default());
                    not_before = Instant::now() + wait;
                    backoff = (backoff * 2).min(backoff_max);
                }
            }
        }
        if let Some((_, task)) = self.conn.take() {
            task.abort();
        }
    }

    /// A fresh snapshot, encoded.
    fn body(&self) -> Bytes {
        let snapshot = self.app.snapshot();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Bytes::from(encode::body(
            &snapshot,
            &self.config.resource,
            now,
            self.config.gzip,
        ))
    }

    /// `d` scaled by a random factor in [0.5, 1).
    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64: spreading retries needs no cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        d.mul_f64(0.5 + (self.seed >> 11) as f64 / (1u64 << 54) as f64)
    }

    /// One POST of `body`, within the timeout; counts its outcome.
    async fn send(&mut self, body: Bytes) -> Outcome {
        let timeout = self.config.timeout;
        let answer = tokio::time::timeout(timeout, self.request(body)).await;
        let s = &self.stats;
        let (outcome, error) = match answer {
            Err(_) => (
                Outcome::Retry(None),
                Some(format!("no answer within {} s", timeout.as_secs_f64())),
            ),
            Ok(Err(e)) => (Outcome::Retry(None), Some(e)),
            Ok(Ok((status, retry_after, body))) if status.is_success() => {
                if let Ok(r) = <ExportMetricsServiceResponse as prost::Message>::decode(body) {
                    if let Some(p) = r.partial_success {
                        let n = p.rejected_data_points.max(0) as u64;
                        s.rejected_points.fetch_add(n, Ordering::Relaxed);
                    }
                }
                let _ = retry_after;
                (Outcome::Delivered, None)
            }
            Ok(Ok((status, retry_after, _))) => {
                let why = format!("HTTP {status}");
                match status {
                    StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT => (Outcome::Retry(retry_after), Some(why)),
                    _ => (Outcome::Rejected, Some(why)),
                }
            }
        };
        let counter = match (&outcome, &error) {
            (Outcome::Delivered, _) => &s.success,
            (Outcome::Rejected, _) => &s.rejected,
            (Outcome::Retry(_), Some(e)) if e.starts_with("HTTP ") => &s.retryable,
            (Outcome::Retry(_), _) => &s.error,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Delivered) {
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            s.last_success_ms.store(ms, Ordering::Relaxed);
        }
        if error.is_some() {
            // The connection may be in any state: start afresh.
            if let Some((_, task)) = self.conn.take() {
                task.abort();
            }
        }
        *s.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
        outcome
    }

    /// Sends `body` and reads the answer: its status, `Retry-After` and
    /// (bounded) body.
    async fn request(
        &mut self,
        body: Bytes,
    ) -> Result<(StatusCode, Option<Duration>, Bytes), String> {
        let mut req = Request::post(self.config.path.as_str())
            .header(header::HOST, self.config.authority.as_str())
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header(
                header::USER_AGENT,
                concat!("nodestats/", env!("CARGO_PKG_VERSION")),
            );
        if self.config.gzip {
            req = req.header(header::CONTENT_ENCODING, "gzip");
        }
        for (k, v) in &self.config.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let sender = self.connection().await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(retry_after);
        let body = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok((status, retry_after, body))
    }

    /// The kept-alive connection, or a new one.
    async fn connection(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if self.conn.as_ref().is_some_and(|c| c.0.is_closed()) {
            if let Some((_, task)) = self.conn.take() {
                task.abort();
            }
        }
        if self.conn.is_none() {
            let stream = tokio::net::TcpStream::connect(self.config.authority.as_str())
                .await
                .map_err(|e| format!("connect {}: {e}", self.config.authority))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("connect {}: {e}", self.config.authority))?;
            let task = tokio::spawn(async move {
                let _ = conn.await;
            });
            self.conn = Some((sender, task));
        }
        let Some((sender, _)) = self.conn.as_mut() else {
            return Err("no connection".into());
        };
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        Ok(sender)
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date, at most
/// [`RETRY_AFTER_MAX`].
fn retry_after(v: &HeaderValue) -> Option<Duration> {
    let v = v.to_str().ok()?.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(v)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    };
    Some(d.min(RETRY_AFTER_MAX))
}

/// Sleeps until `t` unless a stop signal comes first; false if it did.
async fn sleep_until(t: Instant) -> bool {
    loop {
        if stopped() {
            return false;
        }
        let left = t.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::time::sleep(left.min(STOP_POLL)).await;
    }
}

/// A seed for the jitter, different per process and start.
fn seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (u64::from(std::process::id()) << 32)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_values() {
        let h = |s: &str| retry_after(&HeaderValue::from_str(s).unwrap());
        assert_eq!(h("3"), Some(Duration::from_secs(3)));
        assert_eq!(h(" 0 "), Some(Duration::ZERO));
        assert_eq!(h("999999"), Some(RETRY_AFTER_MAX));
        assert_eq!(h("soon"), None);
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let d = h(&later).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(h("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
    }
}
