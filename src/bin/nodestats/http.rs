//! A small HTTP/1.1 server for `/metrics`, `/stats` and `/healthz`: GET
//! only, one request per connection, bounded concurrency, read and write
//! timeouts. Enough for Prometheus scrapes and people with curl; no
//! dependency to audit.

use crate::stopped;
use nodestats::prom::{Exporter, ExporterState};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A rendered /metrics page is shared by scrapes arriving within this time.
const PAGE_TTL: Duration = Duration::from_millis(100);
/// Connections handled at once; more get a 503 straight away.
const MAX_IN_FLIGHT: usize = 128;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
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
                let text = Arc::new(self.exporter.text());
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
pub(crate) fn start(
    addr: &str,
    app: Arc<App>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let h = std::thread::spawn(move || {
        while !stopped() {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    if in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
                        in_flight.fetch_sub(1, Ordering::AcqRel);
                        let _ = respond(stream, 503, "text/plain", b"busy\n");
                        continue;
                    }
                    let (app, n) = (app.clone(), in_flight.clone());
                    std::thread::spawn(move || {
                        handle(stream, &app);
                        n.fetch_sub(1, Ordering::AcqRel);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    Ok((local, h))
}

fn handle(mut stream: TcpStream, app: &App) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > MAX_REQUEST {
            let _ = respond(stream, 431, "text/plain", b"request too large\n");
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

fn respond(mut stream: TcpStream, code: u16, ctype: &str, body: &[u8]) -> std::io::Result<()> {
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
