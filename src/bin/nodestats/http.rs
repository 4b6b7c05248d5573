//! A small HTTP/1.1 server for `/metrics`, `/stats` and `/healthz`: GET
//! only, one request per connection, bounded concurrency, read and write
//! timeouts. Enough for Prometheus scrapes and people with curl; no
//! dependency to audit.

use crate::stopped;
use nodestats::{Exporter, ExporterState};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A rendered /metrics page is shared by scrapes arriving within this time.
const PAGE_TTL: Duration = Duration::from_millis(100);
/// Threads handling connections.
const WORKERS: usize = 8;
/// Accepted connections waiting for a worker; more get a 503 straight away.
const QUEUE: usize = 256;
/// Deadline for reading the whole request head. A silent client holds a
/// worker at most this long.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Write timeout for a response.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Write timeout for the acceptor's own 503 answer.
const BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// How long the accept loop sleeps in poll(2) between stop checks.
const POLL_MS: i32 = 100;
const MAX_REQUEST: usize = 8 * 1024;

/// What the pages show.
pub(crate) struct App {
    pub(crate) exporter: Exporter,
    pub(crate) state: Arc<ExporterState>,
    /// Collector update interval; /healthz fails after three missed updates.
    pub(crate) interval: Duration,
    /// Milliseconds since `epoch` of the last collector update.
    pub(crate) last_update_ms: AtomicU64,
    pub(crate) epoch: Instant,
    /// The last rendered /metrics page. Rendering happens under this lock,
    /// so concurrent scrapes wait for one render instead of each building
    /// its own page: memory stays at one page however many scrapers come.
    pub(crate) page: Mutex<Option<(Instant, Arc<String>)>>,
}

impl App {
    fn metrics_page(&self) -> Arc<String> {
        let mut page = self.page.lock().unwrap_or_else(|e| e.into_inner());
        match &*page {
            Some((at, text)) if at.elapsed() < PAGE_TTL => text.clone(),
            _ => {
                let text = Arc::new(crate::publish::with_metrics(self.exporter.text()));
                *page = Some((Instant::now(), text.clone()));
                text
            }
        }
    }

    pub(crate) fn updated(&self) {
        self.last_update_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Binds `addr` and serves in a background thread until a stop signal.
///
/// A fixed pool of [`WORKERS`] threads handles connections taken from a
/// bounded queue; when the queue is full the acceptor answers 503 itself.
/// A fixed set of threads keeps the exporter's memory flat under load:
/// a thread per connection let the allocator spread pages over as many
/// arenas as there were short-lived threads.
pub(crate) fn start(
    addr: &str,
    app: Arc<App>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let (tx, rx) = mpsc::sync_channel::<TcpStream>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..WORKERS {
        let (rx, app) = (rx.clone(), app.clone());
        std::thread::Builder::new()
            .name(format!("http-{i}"))
            .spawn(move || loop {
                // The lock is held only while waiting for the next
                // connection; handling happens after it is released.
                let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                match next {
                    Ok(stream) => handle(stream, &app),
                    Err(_) => return,
                }
            })?;
    }
    let h = std::thread::Builder::new()
        .name("http-accept".into())
        .spawn(move || {
            while !stopped() {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        match tx.try_send(stream) {
                            Ok(()) => {}
                            Err(mpsc::TrySendError::Full(stream)) => {
                                let _ = stream.set_write_timeout(Some(BUSY_TIMEOUT));
                                let _ = respond(stream, 503, "text/plain", b"busy\n");
                            }
                            Err(mpsc::TrySendError::Disconnected(_)) => return,
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        wait_readable(&listener, POLL_MS);
                    }
                    // EMFILE and friends: back off instead of spinning.
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            // Dropping the sender ends the workers once they are idle.
        })?;
    Ok((local, h))
}

/// Waits until `listener` has a connection or `ms` milliseconds pass, so
/// the accept loop sees a stop signal promptly without busy polling.
fn wait_readable(listener: &TcpListener, ms: i32) {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the fd stays
    // open because `listener` is borrowed. Errors (EINTR) just return.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

fn handle(mut stream: TcpStream, app: &App) {
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    // One deadline for the whole request head: a client trickling a byte
    // at a time cannot hold a worker longer than HEAD_TIMEOUT.
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > MAX_REQUEST {
            let _ = respond(&mut stream, 431, "text/plain", b"request too large\n");
            drain(stream, Instant::now() + Duration::from_secs(1));
            return;
        }
    }
    let line = buf.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let _ = match (method, path) {
        ("GET", "/metrics") => {
            let body = app.metrics_page();
            respond(stream, 200, "text/plain; version=0.0.4; charset=utf-8", body.as_bytes())
        }
        ("GET", "/stats") => match app.state.latest() {
            Some(ns) => {
                let body = serde_json::to_vec_pretty(&ns).unwrap_or_default();
                respond(stream, 200, "application/json", &body)
            }
            None => respond(stream, 503, "text/plain", b"no update yet\n"),
        },
        ("GET", "/healthz") => {
            let age = app
                .epoch
                .elapsed()
                .as_millis()
                .saturating_sub(app.last_update_ms.load(Ordering::Relaxed) as u128);
            if age <= 3 * app.interval.as_millis() + 1000 {
                respond(stream, 200, "text/plain", b"ok\n")
            } else {
                respond(stream, 503, "text/plain", b"collector is not updating\n")
            }
        }
        ("GET", "/") => respond(
            stream,
            200,
            "text/html; charset=utf-8",
            b"<html><body><h1>nodestats</h1><ul><li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/stats\">/stats</a></li><li><a href=\"/healthz\">/healthz</a></li></ul></body></html>\n",
        ),
        ("GET", _) => respond(stream, 404, "text/plain", b"not found\n"),
        _ => respond(stream, 405, "text/plain", b"only GET\n"),
    };
}

/// Closing a socket with unread input makes the kernel reset the
/// connection, and the client may lose the answer already sent. So after an
/// early answer, stop sending and read the rest away (bounded in bytes and
/// time) before closing.
fn drain(mut stream: TcpStream, deadline: Instant) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut chunk = [0u8; 4096];
    let mut left = 1 << 20;
    while left > 0 {
        let t = deadline.saturating_duration_since(Instant::now());
        if t.is_zero() || stream.set_read_timeout(Some(t)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => left -= n.min(left),
        }
    }
}

fn respond(mut stream: impl Write, code: u16, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}
