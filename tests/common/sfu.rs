//! An SFU's segment and `nodestats serve` exporting it, for the tests that
//! drive the registry (`tests/cluster.rs`, `tests/registry.rs`).

use super::{nodestats_bin, ShmName};
use nodestats::{Collector, CollectorConfig, NodeStats, SegmentOptions, Stats};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A named segment with rooms open, unlinked when dropped.
pub struct Sfu {
    pub stats: Stats,
    pub name: ShmName,
}

impl Sfu {
    /// The segment `/nodestats-sfu-<tag>-<pid>` with `rooms` rooms open.
    pub fn new(tag: &str, rooms: u32) -> Sfu {
        let name = ShmName::new(&format!("sfu-{tag}"));
        let stats = Stats::open(&SegmentOptions::new().name(name.to_string())).unwrap();
        for _ in 0..rooms {
            stats.room_started();
        }
        Sfu { stats, name }
    }

    /// Its NodeStats now (no system probes; 4 CPUs).
    pub fn node_stats(&self) -> NodeStats {
        let config = CollectorConfig {
            system: None,
            ..CollectorConfig::default()
        };
        let mut ns = Collector::new(self.stats.segment().clone(), config)
            .unwrap()
            .update();
        ns.num_cpus = 4;
        ns
    }
}

/// `nodestats serve` of an [`Sfu`], collector updates every 0.2 s, its
/// stderr collected line by line; killed (SIGKILL) and reaped when dropped.
pub struct Serve {
    pub child: Child,
    /// Where it listens, `127.0.0.1:<port>`.
    pub addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    /// Starts `serve --segment <sfu> --listen 127.0.0.1:0 --interval 0.2`
    /// and `extra`; returns once it printed its address.
    pub fn start(sfu: &Sfu, extra: &[&str]) -> Serve {
        let mut child = Command::new(nodestats_bin())
            .args(["serve", "--segment", &sfu.name, "--listen", "127.0.0.1:0"])
            .args(["--interval", "0.2"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nodestats serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut serve = Serve {
            child,
            addr: String::new(),
            stderr,
        };
        let printed = super::printed_address(&mut serve.child);
        serve.addr = printed
            .unwrap_or_else(|line| panic!("no address in {line:?}; stderr: {}", serve.stderr()));
        serve
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends it signal `sig`.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(r, 0, "kill {pid}");
    }

    /// Kills (SIGKILL) and reaps it, if it still runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}
