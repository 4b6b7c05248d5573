//! The exporter's HTTP server: `/metrics` (Prometheus text, or OpenMetrics
//! or the protobuf exposition when the `Accept` header prefers it, as
//! `Format::negotiate` decides; gzip when asked), `/stats`
//! (NodeStats JSON), `/healthz` and an index page.
//!
//! HTTP/1.1 itself — keep-alive, pipelining, HEAD, bodies, `Expect`,
//! header limits and timeouts — is hyper's, on a one-thread tokio runtime:
//! an idle connection costs a task and a socket, not a thread, so a
//! thousand of them do not delay a scrape. What is ours is the pages and
//! the bounds that keep the exporter small:
//!
//! - **Connections**: at most `max_connections` are served at once (every
//!   open one counts, idle or not). That is what *overloaded* means here:
//!   the next [`OVERFLOW`] connections are still read and answered
//!   `503 Service Unavailable` with `Retry-After: 1` and `Connection:
//!   close`; past those, a connection is closed at once, since answering
//!   it would be unbounded work of its own.
//! - **Time**: a request head must arrive within [`HEADER_TIMEOUT`] (also
//!   the idle time of a kept-alive connection), a body within
//!   [`BODY_TIMEOUT`], and a response write may stall for at most
//!   [`WRITE_STALL`].
//! - **Memory**: heads are capped at [`MAX_HEAD`] (431 beyond), bodies are
//!   read away and dropped up to [`MAX_BODY`] (413 beyond), and one
//!   rendered /metrics page (and its gzip) is shared by every scrape
//!   within [`PAGE_TTL`], so concurrent scrapers never render one each.
//!   Rendering runs on the server thread, so renders are serial. An idle
//!   connection costs about 1.7 KiB until its first byte, a connection
//!   with a request under way about 18 KiB (hyper's two 8 KiB buffers).

use crate::signals::stopped;
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use nodestats::{Exporter, ExporterState, Format, Snapshot};
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// A rendered /metrics page is shared by scrapes arriving within this time.
const PAGE_TTL: Duration = Duration::from_millis(100);
/// Connections served at once unless `--max-connections` says otherwise.
pub(crate) const MAX_CONNECTIONS: u32 = 4096;
/// Connections over the bound that still get a 503 answer.
const OVERFLOW: usize = 64;
/// File descriptors kept free for everything but connections.
const FD_RESERVE: usize = 64;
/// Deadline for a whole request head, and for the next one on a kept-alive
/// connection. Prometheus sends its request at once and scrapes every
/// 15 s or so: a scraper that keeps its connection longer reconnects.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The same for a connection that only gets a 503.
const BUSY_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline for reading a request body away.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a response write may make no progress.
const WRITE_STALL: Duration = Duration::from_secs(10);
/// Largest request head (hyper's minimum is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body read away before answering.
const MAX_BODY: usize = 64 * 1024;
/// How often the server looks for a stop signal.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How long a stop waits for requests in flight.
const DRAIN: Duration = Duration::from_millis(500);
/// Connections the kernel queues for accept(2).
const BACKLOG: u32 = 1024;
/// Pause after a failed accept (EMFILE and friends) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// What the pages show.
pub(crate) struct App {
    pub(crate) exporter: Exporter,
    pub(crate) state: Arc<ExporterState>,
    /// Collector update interval; health fails after three missed updates.
    pub(crate) interval: Duration,
    /// Milliseconds since `epoch` of the last collector update.
    pub(crate) last_update_ms: AtomicU64,
    pub(crate) epoch: Instant,
    /// The last rendered /metrics page.
    pub(crate) page: Mutex<Option<Page>>,
    /// Why the last collector update failed, until one succeeds.
    pub(crate) error: Mutex<Option<String>>,
}

/// A rendered /metrics page and, once someone asked for it, its gzip.
pub(crate) struct Page {
    at: Instant,
    format: Format,
    text: Bytes,
    gzip: Option<Bytes>,
}

impl App {
    /// One read of the segment with serve's own families (the Redis
    /// publisher's, the OTLP pusher's) added: what /metrics writes and
    /// OTLP pushes.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = self.exporter.snapshot();
        crate::publish::add_metrics(&mut s);
        crate::otlp::add_metrics(&mut s);
        s
    }

    /// The /metrics page in `format`, gzipped if `gzip` and compression
    /// worked. Returns the body and whether it is gzipped.
    fn metrics_page(&self, format: Format, gzip: bool) -> (Bytes, bool) {
        let mut page = self.page.lock().unwrap_or_else(|e| e.into_inner());
        let page = match &mut *page {
            Some(p) if p.at.elapsed() < PAGE_TTL && p.format == format => p,
            slot => slot.insert(Page {
                at: Instant::now(),
                format,
                text: Bytes::from(self.snapshot().write(format)),
                gzip: None,
            }),
        };
        if gzip {
            if page.gzip.is_none() {
                page.gzip = compress(&page.text);
            }
            if let Some(z) = &page.gzip {
                return (z.clone(), true);
            }
        }
        (page.text.clone(), false)
    }

    /// Whether the exporter is healthy, and if not, why. The one place
    /// that decides it, so every caller agrees.
    pub(crate) fn health(&self) -> Result<(), String> {
        use nodestats::SegmentStatus as S;
        match self.state.segment_status() {
            Some(S::Current) | None => {}
            Some(S::Replaced) => {
                return Err("the exported segment is no longer the one at its name (replaced); re-attaching\n".into())
            }
            Some(S::Removed) => {
                return Err("the exported segment was removed from its name; waiting for a new one\n".into())
            }
            Some(S::Shrunk { size, needed }) => {
                return Err(format!(
                    "the segment file shrank under the mapping ({size} of {needed} bytes); not reading it\n"
                ))
            }
        }
        if let Some(why) = self.error.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(why);
        }
        let age_ms = (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.last_update_ms.load(Ordering::Relaxed));
        let limit_ms = 3 * self.interval.as_millis() as u64 + 1000;
        if age_ms <= limit_ms {
            Ok(())
        } else {
            Err(format!(
                "collector is not updating: last update {:.1} s ago\n",
                age_ms as f64 / 1e3
            ))
        }
    }

    pub(crate) fn updated(&self) {
        self.last_update_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The last update failed: `/healthz` says why until one succeeds.
    pub(crate) fn failed(&self, why: String) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// The answer to a GET or HEAD (hyper leaves the body out for HEAD).
    fn route(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        gzip: bool,
        format: Format,
    ) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match path {
            "/metrics" => {
                let (body, gzipped) = self.metrics_page(format, gzip);
                let mut r = encoded(page(body, format.content_type()), gzipped);
                r.headers_mut().insert(
                    header::VARY,
                    HeaderValue::from_static("accept-encoding, accept"),
                );
                r
            }
            "/stats" => match self.state.latest() {
                Some(ns) => {
                    // `?format=protojson`: exactly livekit.NodeStats as Go's
                    // protojson writes it (strict decoders accept it).
                    let json = if query.split('&').any(|q| q == "format=protojson") {
                        ns.to_protojson().into_bytes()
                    } else {
                        stats_json(&ns)
                    };
                    match gzip.then(|| compress(&json)).flatten() {
                        Some(z) => encoded(page(z, "application/json"), true),
                        None => encoded(page(json.into(), "application/json"), false),
                    }
                }
                None => plain(StatusCode::SERVICE_UNAVAILABLE, "no update yet\n"),
            },
            "/healthz" => match self.health() {
                Ok(()) => plain(StatusCode::OK, "ok\n"),
                Err(why) => plain(StatusCode::SERVICE_UNAVAILABLE, why),
            },
            "/" => page(Bytes::from_static(INDEX), "text/html; charset=utf-8"),
            _ => plain(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

const INDEX: &[u8] = b"<html><body><h1>nodestats</h1><ul><li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/stats\">/stats</a></li><li><a href=\"/healthz\">/healthz</a></li></ul></body></html>\n";

fn page(body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = page(text.into(), "text/plain; charset=utf-8");
    *r.status_mut() = status;
    r
}

/// Marks a page that depends on Accept-Encoding, and whether it is gzipped.
fn encoded(mut r: Response<Full<Bytes>>, gzipped: bool) -> Response<Full<Bytes>> {
    let h = r.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// Asks the client to close the connection after this answer.
fn closing(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// gzip at the fastest level, as Prometheus's own Go client serves it:
/// the text shrinks about tenfold for about a millisecond per 100 KiB.
fn compress(data: &[u8]) -> Option<Bytes> {
    let mut z = GzEncoder::new(Vec::with_capacity(data.len() / 8), Compression::fast());
    z.write_all(data).ok()?;
    z.finish().ok().map(Bytes::from)
}

/// Whether the client takes gzip: an explicit `gzip` coding decides, else
/// `*`; either needs a q-value above zero (RFC 9110 §12.5.3).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    let items = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for item in items {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q);
        } else if coding == "*" {
            any = Some(q);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

/// Answers one request: reads its body away first (closing a socket with
/// unread input resets the connection, and the client can lose the
/// answer), then routes it — or, on an overflow connection, says busy.
async fn answer(
    app: Arc<App>,
    req: Request<Incoming>,
    busy: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    if let Err((status, why)) = read_away(body).await {
        return Ok(closing(plain(status, why)));
    }
    if busy {
        let mut r = closing(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many connections\n",
        ));
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(r);
    }
    let gzip = accepts_gzip(&parts.headers);
    let accept = parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let format = Format::negotiate((!accept.is_empty()).then_some(accept.as_str()));
    Ok(app.route(
        &parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        gzip,
        format,
    ))
}

/// Reads a request body and drops it, bounded in bytes and time; on
/// failure returns the status and text to answer with.
async fn read_away(mut body: Incoming) -> Result<(), (StatusCode, &'static str)> {
    if body.is_end_stream() {
        return Ok(());
    }
    let read = async {
        let mut left = MAX_BODY;
        while let Some(frame) = body.frame().await {
            // On an error the client went away mid-body; nobody reads this.
            let frame = frame.map_err(|_| (StatusCode::BAD_REQUEST, "broken request body\n"))?;
            let n = frame.data_ref().map_or(0, |d| d.len());
            left = left
                .checked_sub(n)
                .ok_or((StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"))?;
        }
        Ok(())
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or(Err((
            StatusCode::REQUEST_TIMEOUT,
            "request body too slow\n",
        )))
}

/// Binds `addr` and serves `app` on a thread of its own until a stop
/// signal, with the default connection bound.
pub(crate) fn start(
    addr: &str,
    app: Arc<App>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    start_with(addr, app, MAX_CONNECTIONS as usize)
}

/// Binds `addr` and serves `app` on a thread of its own until a stop
/// signal, at most `max_connections` at once (see the module docs).
/// Binding happens here, so its error reaches the caller; a non-loopback
/// address is served with a warning on stderr.
pub(crate) fn start_with(
    addr: &str,
    app: Arc<App>,
    max_connections: usize,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _in_runtime = rt.enter();
        bind(addr)?
    };
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        note!(
            "nodestats: warning: listening on {local} (--listen {addr}), not a loopback address: \
             anyone who can reach it can read /metrics and /stats"
        );
    }
    let files = raise_nofile();
    let fit = files.saturating_sub(OVERFLOW + FD_RESERVE).max(1);
    if max_connections > fit {
        note!(
            "nodestats: serving at most {fit} connections at once on {local}: the open-file limit is {files}"
        );
    }
    let max_connections = max_connections.min(fit).max(1);
    let h = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || rt.block_on(accept_loop(listener, app, max_connections)))?;
    Ok((local, h))
}

/// Listens on the first of `addr`'s addresses that binds, with a backlog
/// of [`BACKLOG`]: std's 128 overflows when hundreds of clients connect at
/// once, and a dropped SYN costs its client a one-second retransmit.
fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        let socket = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// Raises the soft open-file limit to the hard one (each connection is a
/// file descriptor) and returns the soft limit in force.
fn raise_nofile() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

async fn accept_loop(listener: TcpListener, app: Arc<App>, max_connections: usize) {
    let (stop_tx, stop) = watch::channel(());
    tokio::spawn(async move {
        while !stopped() {
            tokio::time::sleep(STOP_POLL).await;
        }
        drop(stop_tx);
    });
    let slots = Arc::new(Semaphore::new(max_connections));
    let spare = Arc::new(Semaphore::new(OVERFLOW));
    loop {
        let mut watch = stop.clone();
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = watch.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (permit, busy) = match slots.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => match spare.clone().try_acquire_owned() {
                Ok(p) => (p, true),
                // Dropping the stream closes it.
                Err(_) => continue,
            },
        };
        tokio::spawn(connection(stream, app.clone(), stop.clone(), permit, busy));
    }
    // Refuse new connections now; give the open ones a moment to finish
    // the requests they are in.
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(max_connections as u32)).await;
}

/// Serves one connection until it closes or a stop ends it gracefully.
async fn connection(
    stream: TcpStream,
    app: Arc<App>,
    mut stop: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
    busy: bool,
) {
    let header_timeout = if busy {
        BUSY_HEADER_TIMEOUT
    } else {
        HEADER_TIMEOUT
    };
    // Until its first byte, a connection is a socket and this task (about
    // 1.7 KiB in all); hyper's buffers (16 KiB) come with the request. A
    // thousand idle connections cost 2 MiB instead of 16. (`readable()`
    // would not do: it reports a fresh socket ready at once.)
    let mut first = [0u8; 1];
    match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1..)) => {}
        _ => return,
    }
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD)
        .keep_alive(!busy);
    let io = TokioIo::new(StallLimit::new(stream, WRITE_STALL));
    let service = service_fn(move |req| answer(app.clone(), req, busy));
    let conn = http.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A socket whose writes fail with `TimedOut` after making no progress for
/// `limit`: a client that stops reading cannot hold a connection (and the
/// page it was sent) for ever.
struct StallLimit {
    io: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl StallLimit {
    fn new(io: TcpStream, limit: Duration) -> Self {
        StallLimit {
            io,
            limit,
            stalled: None,
        }
    }

    /// Called when a write is pending: starts the stall clock if needed
    /// and fails once it runs out.
    fn check_stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn track<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match r {
            Poll::Pending => self.check_stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl AsyncRead for StallLimit {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallLimit {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.track(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.track(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.track(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.track(cx, r)
    }
}

/// `/stats` as JSON: the NodeStats, and the node registry's state under
/// `registry` when `serve` publishes to one.
fn stats_json(ns: &nodestats::NodeStats) -> Vec<u8> {
    match (serde_json::to_value(ns), crate::publish::stats_json()) {
        (Ok(serde_json::Value::Object(mut map)), Some(registry)) => {
            map.insert("registry".into(), registry);
            serde_json::to_vec_pretty(&map).unwrap_or_default()
        }
        _ => serde_json::to_vec_pretty(ns).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn takes_gzip(v: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        accepts_gzip(&h)
    }

    #[test]
    fn accept_encoding() {
        // What Prometheus sends.
        assert!(takes_gzip("gzip"));
        assert!(takes_gzip("br, GZIP;q=0.5"));
        assert!(takes_gzip("*"));
        assert!(takes_gzip("identity, *;q=0.1"));
        assert!(!takes_gzip("gzip;q=0"));
        assert!(!takes_gzip("gzip; q=0.0, *"));
        assert!(!takes_gzip("identity"));
        assert!(!takes_gzip("*;q=0"));
        assert!(!takes_gzip("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
