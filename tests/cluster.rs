//! The node registry against a real Redis server (Debian package
//! `redis-server`; `scripts/test.sh` installs it). Each test starts its own
//! server on a free loopback port with a temporary directory and no
//! persistence, and drives publishers, `nodestats serve --redis` and
//! `nodestats nodes` against it.

mod common;

use common::sfu::{Serve, Sfu};

use nodestats::cluster::{
    self, Node, NodeState, Publisher, PublisherConfig, SelectorConfig, SortBy, XorShift,
};
use nodestats::{NodeStats, NodeStatsRate};
use prost::Message;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- Redis

struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(tag: &str) -> Redis {
        let dir =
            std::env::temp_dir().join(format!("nodestats-redis-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            child: None,
            port: common::free_port(),
            dir,
        };
        r.restart();
        r
    }

    /// (Re)starts the server on the same port, empty.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = self.try_con() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn try_con(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))
    }

    fn con(&self) -> redis::Connection {
        self.try_con().expect("connect to the test Redis")
    }

    fn hset(&self, key: &str, value: &[u8]) {
        let _: i64 = redis::cmd("HSET")
            .arg("nodes")
            .arg(key)
            .arg(value)
            .query(&mut self.con())
            .unwrap();
    }

    /// Replaces the fleet, atomically: the hash `nodes` holds exactly
    /// `nodes` (id, encoded entry), and no reservation is left.
    fn write_nodes(&self, nodes: impl IntoIterator<Item = (String, Vec<u8>)>) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("DEL").arg("nodes").ignore();
        pipe.cmd("DEL").arg(cluster::RESERVATIONS_KEY).ignore();
        for (id, entry) in nodes {
            pipe.cmd("HSET").arg("nodes").arg(id).arg(entry).ignore();
        }
        let _: () = pipe.query(&mut self.con()).unwrap();
    }

    fn entry(&self, key: &str) -> Option<Node> {
        let v: Option<Vec<u8>> = redis::cmd("HGET")
            .arg("nodes")
            .arg(key)
            .query(&mut self.con())
            .unwrap();
        v.map(|v| Node::decode(&v).expect("our entry decodes"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- helpers

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn nodes_cli(url: &str, extra: &[&str]) -> Output {
    Command::new(common::nodestats_bin())
        .args(["nodes", "--redis", url])
        .args(extra)
        .output()
        .expect("run nodestats nodes")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn last_line(o: &Output) -> String {
    stdout(o).lines().last().unwrap_or("").to_string()
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to serve");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |p| p.1).to_string();
    (code, body)
}

fn serve(sfu: &Sfu, redis: &Redis, id: &str) -> Serve {
    let url = redis.url();
    Serve::start(sfu, &["--redis", &url, "--node-id", id, "--region", "r1"])
}

// ---------------------------------------------------------------- tests

#[test]
fn publishers_on_several_segments_are_listed_and_selected() {
    let redis = Redis::start("several");
    let url = redis.url();
    let sfus = [("a", 3), ("b", 1), ("c", 2)].map(|(id, rooms)| (id, Sfu::new(id, rooms)));
    let publishers: Vec<Publisher> = sfus
        .iter()
        .map(|(id, sfu)| {
            let mut config = PublisherConfig::new(url.clone(), format!("ND_{id}"));
            config.region = "eu".into();
            config.ip = "10.0.0.1".into();
            let p = Publisher::start(config).unwrap();
            p.publish(&sfu.node_stats());
            p
        })
        .collect();
    let mut entries = wait_for("three entries", Duration::from_secs(5), || {
        let (e, skipped) = cluster::list(&url).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        (e.len() == 3).then_some(e)
    });
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    for (e, (id, rooms)) in entries.iter().zip([("ND_a", 3), ("ND_b", 1), ("ND_c", 2)]) {
        assert_eq!((e.key.as_str(), e.node.id.as_str()), (id, id));
        let s = e.node.stats.as_ref().unwrap();
        assert_eq!(s.num_rooms, rooms);
        assert_eq!((e.node.num_cpus, e.node.region.as_str()), (4, "eu"));
        assert_eq!(e.node.state, NodeState::Serving);
        assert!(
            (cluster::unix_now() - s.updated_at).abs() <= 1,
            "wall clock"
        );
    }

    // The library and the CLI choose the node with the fewest rooms.
    let nodes: Vec<Node> = entries.into_iter().map(|e| e.node).collect();
    let config = SelectorConfig {
        sort_by: SortBy::Rooms,
        ..SelectorConfig::default()
    };
    let mut rng = XorShift::new(1);
    let chosen = cluster::select(&nodes, &config, cluster::unix_now(), &mut rng).unwrap();
    assert_eq!(chosen.id, "ND_b");
    let o = nodes_cli(&url, &["--select", "--sort-by", "rooms"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(last_line(&o), "ND_b");

    // JSON: protobuf field names and LiveKit's availability.
    let o = nodes_cli(&url, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[1]["id"], "ND_b");
    assert_eq!(arr[1]["state"], "SERVING");
    assert_eq!(arr[1]["available"], true);
    assert_eq!(arr[1]["stats"]["num_rooms"], 1);
    assert!(
        arr[1]["stats"].get("segment_id").is_none(),
        "not a protobuf field"
    );
    // The table has a row per node and the totals.
    let table = stdout(&nodes_cli(&url, &[]));
    assert!(table.contains("ND_a") && table.contains("ND_c"), "{table}");
    assert!(table.contains("3 node(s): 6 rooms"), "{table}");

    // Draining ND_b sends the next room to ND_c.
    publishers[1].drain();
    wait_for("ND_b draining", Duration::from_secs(5), || {
        (redis.entry("ND_b")?.state == NodeState::ShuttingDown).then_some(())
    });
    assert_eq!(
        last_line(&nodes_cli(&url, &["--select", "--sort-by", "rooms"])),
        "ND_c"
    );

    // Shut down, every entry goes; then nothing is available (exit 3).
    for p in publishers {
        assert!(p.shutdown());
    }
    assert!(cluster::list(&url).unwrap().0.is_empty());
    let o = nodes_cli(&url, &["--select"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
}

#[test]
fn serve_publishes_drains_on_sigusr1_and_removes_on_sigterm_within_a_second() {
    let redis = Redis::start("sigterm");
    let sfu = Sfu::new("sigterm", 2);
    let mut s = serve(&sfu, &redis, "ND_term");
    let node = wait_for("serve's entry", Duration::from_secs(5), || {
        redis.entry("ND_term")
    });
    assert_eq!(node.region, "r1");
    assert_eq!(node.stats.unwrap().num_rooms, 2);
    let (code, metrics) = http_get(&s.addr, "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("nodestats_redis_publish_failures_total{node_id=\"ND_term\""));

    s.signal(libc::SIGUSR1);
    wait_for("SHUTTING_DOWN", Duration::from_secs(3), || {
        (redis.entry("ND_term")?.state == NodeState::ShuttingDown).then_some(())
    });

    s.signal(libc::SIGTERM);
    let t = Instant::now();
    wait_for("the entry to go", Duration::from_secs(2), || {
        redis.entry("ND_term").is_none().then_some(())
    });
    let gone = t.elapsed();
    eprintln!("SIGTERM → entry removed in {gone:?}");
    assert!(gone < Duration::from_secs(1), "{gone:?}");
    let status = wait_for("serve to exit", Duration::from_secs(5), || {
        s.child.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigkilled_node_turns_unavailable_after_5_s_and_is_swept_after_the_timeout() {
    let redis = Redis::start("sigkill");
    let url = redis.url();
    let sfu = Sfu::new("sigkill", 1);
    let mut s = serve(&sfu, &redis, "ND_dead");
    wait_for("serve's entry", Duration::from_secs(5), || {
        redis.entry("ND_dead")
    });
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let updated_at = redis.entry("ND_dead").unwrap().stats.unwrap().updated_at;

    // Until 5 s old it still counts as available (LiveKit's rule)...
    while cluster::unix_now() - updated_at < 5 {
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...then not, and a selection finds nothing.
    let v: serde_json::Value =
        serde_json::from_slice(&nodes_cli(&url, &["--json"]).stdout).unwrap();
    assert_eq!(v[0]["id"], "ND_dead");
    assert_eq!(v[0]["available"], false);
    assert_eq!(nodes_cli(&url, &["--select"]).status.code(), Some(3));
    // A sweep with a 6 s timeout leaves it while it is younger...
    let o = nodes_cli(&url, &["--sweep", "--dead-after", "6"]);
    assert!(o.status.success() && stdout(&o).is_empty(), "{o:?}");
    assert!(redis.entry("ND_dead").is_some());
    // ...and removes it once older.
    while cluster::unix_now() - updated_at <= 6 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = nodes_cli(&url, &["--sweep", "--dead-after", "6"]);
    assert_eq!(stdout(&o), "removed ND_dead\n", "{o:?}");
    assert!(redis.entry("ND_dead").is_none());
}

#[test]
fn redis_outage_spares_the_pages_and_a_restart_is_recovered() {
    let mut redis = Redis::start("restart");
    let sfu = Sfu::new("restart", 1);
    let s = serve(&sfu, &redis, "ND_phoenix");
    wait_for("serve's entry", Duration::from_secs(5), || {
        redis.entry("ND_phoenix")
    });

    redis.kill();
    let down = Instant::now();
    let failures = |body: &str| -> u64 {
        body.lines()
            .find(|l| l.starts_with("nodestats_redis_publish_failures_total{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut worst = Duration::ZERO;
    while down.elapsed() < Duration::from_millis(1500) {
        for path in ["/metrics", "/stats", "/healthz"] {
            let t = Instant::now();
            let (code, _) = http_get(&s.addr, path);
            worst = worst.max(t.elapsed());
            assert_eq!(code, 200, "{path} while Redis is down");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("slowest page while Redis was down: {worst:?}");
    assert!(
        failures(&http_get(&s.addr, "/metrics").1) > 0,
        "failures are counted"
    );

    // Restarted empty: the publisher reconnects and writes its entry again.
    redis.restart();
    let t = Instant::now();
    wait_for(
        "the entry after the restart",
        Duration::from_secs(6),
        || redis.entry("ND_phoenix"),
    );
    eprintln!("entry back {:?} after Redis restarted", t.elapsed());
}

#[test]
fn library_publisher_recovers_and_shutdown_is_prompt_with_redis_down() {
    let mut redis = Redis::start("lib-restart");
    let sfu = Sfu::new("lib-restart", 1);
    let p = Publisher::start(PublisherConfig::new(redis.url(), "ND_lib")).unwrap();
    p.publish(&sfu.node_stats());
    wait_for("entry", Duration::from_secs(5), || redis.entry("ND_lib"));
    redis.kill();
    p.publish(&sfu.node_stats());
    wait_for("a counted failure", Duration::from_secs(5), || {
        (p.failures() > 0).then_some(())
    });
    assert!(p.status().last_error().unwrap().contains(&redis.url()));
    redis.restart();
    wait_for("entry after restart", Duration::from_secs(6), || {
        redis.entry("ND_lib")
    });

    // Down again: shutdown cannot remove the entry but returns in time.
    redis.kill();
    let t = Instant::now();
    assert!(!p.shutdown());
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // A Redis that accepts connections and never answers: same bound.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", hung.local_addr().unwrap());
    let p = Publisher::start(PublisherConfig::new(url, "ND_hung")).unwrap();
    p.publish(&sfu.node_stats());
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    assert!(!p.shutdown());
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

/// `livekit.Node` and the part of `livekit.NodeStats` a LiveKit server
/// fills, declared here from livekit_internal.proto, independent of our
/// encoder. Deprecated fields are set too: readers must skip them.
#[derive(Clone, PartialEq, prost::Message)]
struct ForeignNode {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    ip: String,
    #[prost(uint32, tag = "3")]
    num_cpus: u32,
    #[prost(message, optional, tag = "4")]
    stats: Option<ForeignStats>,
    #[prost(int32, tag = "5")]
    r#type: i32,
    #[prost(int32, tag = "6")]
    state: i32,
    #[prost(string, tag = "7")]
    region: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ForeignStats {
    #[prost(int64, tag = "1")]
    started_at: i64,
    #[prost(int64, tag = "2")]
    updated_at: i64,
    #[prost(int32, tag = "3")]
    num_rooms: i32,
    #[prost(int32, tag = "4")]
    num_clients: i32,
    #[prost(float, tag = "12")]
    bytes_in_per_sec: f32,
    #[prost(float, tag = "14")]
    packets_in_per_sec: f32,
    #[prost(uint32, tag = "17")]
    num_cpus: u32,
    #[prost(float, tag = "18")]
    load_avg_last1min: f32,
    #[prost(float, tag = "21")]
    cpu_load: f32,
    #[prost(message, repeated, tag = "50")]
    rates: Vec<ForeignRate>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ForeignRate {
    #[prost(int64, tag = "3")]
    duration: i64,
    #[prost(float, tag = "8")]
    bytes_in: f32,
    #[prost(float, tag = "9")]
    bytes_out: f32,
}

#[test]
fn an_independently_encoded_node_is_listed_and_selectable() {
    let redis = Redis::start("foreign");
    let url = redis.url();
    let foreign = ForeignNode {
        id: "ND_livekit01".into(),
        ip: "192.0.2.7".into(),
        num_cpus: 16,
        stats: Some(ForeignStats {
            started_at: 1,
            updated_at: cluster::unix_now(),
            num_rooms: 4,
            num_clients: 9,
            bytes_in_per_sec: 5.0,
            packets_in_per_sec: 6.0,
            num_cpus: 16,
            load_avg_last1min: 2.0,
            cpu_load: 0.125,
            rates: vec![ForeignRate {
                duration: 10,
                bytes_in: 1000.0,
                bytes_out: 3000.0,
            }],
        }),
        r#type: 0,
        state: 1,
        region: "us-east".into(),
    };
    redis.hset("ND_livekit01", &foreign.encode_to_vec());
    // A node of ours, busier on CPU.
    let ours = Node {
        id: "ND_ours".into(),
        stats: Some(NodeStats {
            updated_at: cluster::unix_now(),
            cpu_load: 0.75,
            num_cpus: 4,
            rates: vec![NodeStatsRate::default()],
            ..NodeStats::default()
        }),
        ..Node::default()
    };
    redis.hset("ND_ours", &ours.encode());

    let (entries, skipped) = cluster::list(&url).unwrap();
    assert!(skipped.is_empty());
    let n = &entries
        .iter()
        .find(|e| e.key == "ND_livekit01")
        .unwrap()
        .node;
    assert_eq!(
        (n.id.as_str(), n.ip.as_str(), n.num_cpus),
        ("ND_livekit01", "192.0.2.7", 16)
    );
    assert_eq!(
        (n.state, n.region.as_str()),
        (NodeState::Serving, "us-east")
    );
    let s = n.stats.as_ref().unwrap();
    assert_eq!((s.num_rooms, s.num_clients, s.cpu_load), (4, 9, 0.125));
    assert_eq!(s.rates[0].bytes_in + s.rates[0].bytes_out, 4000.0);

    for (sort, want) in [
        ("cpuload", "ND_livekit01"),
        ("rooms", "ND_ours"),
        ("bytespersec", "ND_ours"),
    ] {
        let o = nodes_cli(
            &url,
            &["--select", "--selector", "cpuload", "--sort-by", sort],
        );
        assert_eq!(last_line(&o), want, "--sort-by {sort}: {o:?}");
    }
    // Region-aware: the node in the current region wins over a less busy
    // one in no known region.
    let regions =
        std::env::temp_dir().join(format!("nodestats-regions-{}.json", std::process::id()));
    std::fs::write(
        &regions,
        r#"[{"name": "us-east", "lat": 40.7, "lon": -74.0}, {"name": "eu-west", "lat": 51.5, "lon": -0.1}]"#,
    )
    .unwrap();
    let regions_arg = regions.to_str().unwrap();
    for region in ["eu-west", "us-east"] {
        let o = nodes_cli(
            &url,
            &[
                "--select",
                "--selector",
                "regionaware",
                "--sort-by",
                "rooms",
                "--region",
                region,
                "--regions",
                regions_arg,
            ],
        );
        assert_eq!(last_line(&o), "ND_livekit01", "{o:?}");
    }
    let o = nodes_cli(
        &url,
        &[
            "--select",
            "--selector",
            "regionaware",
            "--region",
            "mars",
            "--regions",
            regions_arg,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let _ = std::fs::remove_file(&regions);
}

#[test]
fn garbage_is_skipped_and_statless_entries_are_listed_and_available_like_livekit() {
    let redis = Redis::start("garbage");
    let url = redis.url();
    redis.hset("ND_garbage", b"\xff\xff\xff\xff not protobuf");
    let bare = Node {
        id: "ND_bare".into(),
        ..Node::default()
    };
    redis.hset("ND_bare", &bare.encode());
    let good = Node {
        id: "ND_good".into(),
        stats: Some(NodeStats {
            updated_at: cluster::unix_now(),
            num_rooms: 1,
            ..NodeStats::default()
        }),
        ..Node::default()
    };
    redis.hset("ND_good", &good.encode());

    // Listed in Redis order (insertion order for a small hash).
    let (entries, skipped) = cluster::list(&url).unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e.node.id.as_str()).collect();
    assert_eq!(ids, ["ND_bare", "ND_good"]);
    assert_eq!(entries[0].node.stats, None);
    let keys: Vec<&str> = skipped.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["ND_garbage"]);

    let o = nodes_cli(&url, &[]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ND_garbage"), "{err}");
    assert!(
        err.contains("\"ND_bare\" has no stats: listed and counted available"),
        "{err}"
    );
    assert!(stdout(&o).contains("ND_good") && stdout(&o).contains("ND_bare"));
    let v: serde_json::Value =
        serde_json::from_slice(&nodes_cli(&url, &["--json"]).stdout).unwrap();
    assert_eq!(v[0]["id"], "ND_bare");
    assert_eq!(v[0]["available"], true);
    assert!(v[0]["stats"].is_null());
    // A node without stats is available; LiveKit would crash sorting it, we
    // sort it last, so it is chosen only when it is the only one.
    assert_eq!(
        last_line(&nodes_cli(&url, &["--select", "--sort-by", "rooms"])),
        "ND_good"
    );
    redis.hset(
        "ND_good",
        &Node {
            state: NodeState::ShuttingDown,
            ..good
        }
        .encode(),
    );
    assert_eq!(last_line(&nodes_cli(&url, &["--select"])), "ND_bare");
    // Neither sweep nor the table removes or chokes on them.
    assert!(nodes_cli(&url, &["--sweep", "--dead-after", "0"])
        .status
        .success());
}

#[test]
fn a_bad_url_or_a_dead_redis_is_a_clear_error() {
    let port = common::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let e = cluster::list(&url).unwrap_err();
    assert!(e.to_string().contains(&url), "{e}");
    let o = nodes_cli(&url, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&url));
    assert!(Publisher::start(PublisherConfig::new("http://nope", "x")).is_err());
}

/// Numbers for the report: `nodes --select` over 1000 entries (target
/// ≤ 50 ms) and the caller's cost of `Publisher::publish` (target ≤ 1 ms).
/// The asserts are loose (shared CI machines); the printed numbers count.
#[test]
fn measure_select_over_1000_entries_and_publish_cost() {
    let redis = Redis::start("measure");
    let url = redis.url();
    let now = cluster::unix_now();
    redis.write_nodes((0..1000u32).map(|i| {
        let node = Node {
            id: format!("ND_{i:012}"),
            ip: format!("10.0.{}.{}", i / 256, i % 256),
            num_cpus: 16,
            region: ["eu", "us", "ap"][i as usize % 3].into(),
            stats: Some(NodeStats {
                updated_at: now + 600,
                num_cpus: 16,
                num_rooms: (i * 7 % 101) as i32,
                num_clients: (i * 13 % 997) as i32,
                load_avg_last1min: f64::from(i % 17),
                cpu_load: f64::from(i % 100) / 100.0,
                bytes_in: 1 << 40,
                memory_used: 1 << 33,
                memory_total: 1 << 35,
                rates: vec![NodeStatsRate {
                    duration: 10,
                    bytes_in: 1e6,
                    bytes_out: 4e6,
                    packets_in: 1e3,
                    packets_out: 4e3,
                    ..NodeStatsRate::default()
                }],
                ..NodeStats::default()
            }),
            ..Node::default()
        };
        (node.id.clone(), node.encode())
    }));

    let mut runs: Vec<Duration> = (0..7)
        .map(|_| {
            let t = Instant::now();
            let o = nodes_cli(
                &url,
                &["--select", "--selector", "sysload", "--sort-by", "rooms"],
            );
            let d = t.elapsed();
            assert!(o.status.success(), "{o:?}");
            assert!(last_line(&o).starts_with("ND_"));
            d
        })
        .collect();
    runs.sort();
    let t = Instant::now();
    let (entries, _) = cluster::list(&url).unwrap();
    let listed = t.elapsed();
    let nodes: Vec<Node> = entries.into_iter().map(|e| e.node).collect();
    let config = SelectorConfig {
        sort_by: SortBy::SysLoad,
        ..SelectorConfig::default()
    };
    let t = Instant::now();
    for _ in 0..100 {
        cluster::select(&nodes, &config, now, &mut XorShift::new(7)).unwrap();
    }
    let selected = t.elapsed() / 100;
    eprintln!(
        "MEASURE nodes --select over 1000 entries: median {:?} (min {:?}, max {:?}); library list {listed:?}, select {selected:?}",
        runs[3], runs[0], runs[6]
    );
    assert!(runs[3] < Duration::from_millis(500), "{runs:?}");

    // Publish cost: the caller's side, with the thread writing to Redis.
    let sfu = Sfu::new("measure", 5);
    let mut ns = sfu.node_stats();
    ns.rates = vec![NodeStatsRate::default(); 2];
    let p = Publisher::start(PublisherConfig::new(url, "ND_measure")).unwrap();
    let n = 20_000u32;
    let mut worst = Duration::ZERO;
    let t = Instant::now();
    for _ in 0..n {
        let one = Instant::now();
        p.publish(&ns);
        worst = worst.max(one.elapsed());
    }
    let mean = t.elapsed() / n;
    eprintln!(
        "MEASURE Publisher::publish: mean {mean:?}, worst {worst:?} over {n} calls ({} writes reached Redis)",
        p.status().published()
    );
    assert!(mean < Duration::from_millis(1), "{mean:?}");
    assert!(p.shutdown());
}

// ------------------------------------------------ selection that does not herd

/// 20 nodes written with LiveKit's own protobuf layout ([`ForeignNode`]),
/// `i` rooms on node `i`, stats from `now`; no reservations.
fn twenty_livekit_nodes(redis: &Redis, now: i64) -> Vec<String> {
    let ids: Vec<String> = (0..20).map(|i| format!("ND_sim{i:02}")).collect();
    redis.write_nodes(ids.iter().enumerate().map(|(i, id)| {
        let n = ForeignNode {
            id: id.clone(),
            ip: format!("10.0.0.{i}"),
            num_cpus: 8,
            stats: Some(ForeignStats {
                started_at: now - 3600,
                updated_at: now,
                num_rooms: i as i32,
                num_clients: 4 * i as i32,
                num_cpus: 8,
                load_avg_last1min: 0.5,
                cpu_load: 0.1 + 0.01 * i as f32,
                rates: vec![ForeignRate {
                    duration: 10,
                    bytes_in: 1e5 * i as f32,
                    bytes_out: 3e5 * i as f32,
                }],
                ..ForeignStats::default()
            }),
            r#type: 0,
            state: 1,
            region: "eu".into(),
        };
        (id.clone(), n.encode_to_vec())
    }));
    ids
}

/// Places `rooms` rooms with `procs` concurrent `nodestats nodes --select`
/// processes at a time and returns how many each node got.
fn burst(url: &str, extra: &[&str], rooms: usize, procs: usize) -> Vec<(String, usize)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let placed = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    std::thread::scope(|s| {
        for _ in 0..procs {
            s.spawn(|| {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < rooms {
                    let o = nodes_cli(url, extra);
                    assert!(o.status.success(), "{o:?}");
                    *placed.lock().unwrap().entry(last_line(&o)).or_default() += 1;
                }
            });
        }
    });
    placed.into_inner().unwrap().into_iter().collect()
}

#[test]
fn reserve_spreads_a_burst_from_concurrent_allocator_processes_where_lowest_herds() {
    let redis = Redis::start("reserve");
    let url = redis.url();
    let select = ["--select", "--sort-by", "rooms"];

    // LiveKit's `lowest`: every room of the burst goes to the emptiest node,
    // even with the nodes re-publishing (their room counts lag, as they do
    // between a placement and the room's start), so however long the burst.
    let t = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let plain = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                twenty_livekit_nodes(&redis, cluster::unix_now());
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        wait_for("the nodes", Duration::from_secs(5), || {
            (redis.entry("ND_sim19").is_some()).then_some(())
        });
        let plain = burst(&url, &select, 200, 4);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        plain
    });
    eprintln!("plain lowest: {plain:?} in {:?}", t.elapsed());
    assert_eq!(plain, [("ND_sim00".to_string(), 200)]);

    // --reserve: the same burst, within one stats interval, spreads.
    let now = cluster::unix_now();
    let ids = twenty_livekit_nodes(&redis, now);
    // An expired reservation left over from long ago, to be pruned.
    let _: i64 = redis::cmd("HSET")
        .arg(cluster::RESERVATIONS_KEY)
        .arg(format!("{}:ND_sim00", now - 100))
        .arg(50)
        .query(&mut redis.con())
        .unwrap();
    let t = Instant::now();
    let placed = burst(&url, &[&select[..], &["--reserve"]].concat(), 200, 4);
    let took = t.elapsed();
    assert!(
        cluster::unix_now() - now < 5,
        "the burst outlived the nodes' stats ({took:?}): nothing to conclude"
    );
    let count = |id: &str| placed.iter().find(|(k, _)| k == id).map_or(0, |p| p.1);
    let finals: Vec<usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| i + count(id))
        .collect();
    let spread = finals.iter().max().unwrap() - finals.iter().min().unwrap();
    eprintln!("MEASURE --reserve burst of 200 from 4 processes in {took:?}: final rooms {finals:?}, spread {spread}");
    assert_eq!(finals.iter().sum::<usize>(), 190 + 200);
    assert!(spread <= 3, "{finals:?}");

    // Every placement is in Redis, for the other allocators to see.
    let fields: Vec<(String, i64)> = redis::cmd("HGETALL")
        .arg(cluster::RESERVATIONS_KEY)
        .query(&mut redis.con())
        .unwrap();
    let reserved: i64 = fields
        .iter()
        .filter(|(f, _)| f.contains(':'))
        .map(|p| p.1)
        .sum();
    assert_eq!(reserved, 200, "{fields:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(cluster::RESERVATIONS_KEY)
        .query(&mut redis.con())
        .unwrap();
    assert!((1..=10).contains(&ttl), "the reservations expire: {ttl}");

    // Once a node's stats are newer than its reservations, they lapse: the
    // node re-published with its real rooms is judged on those alone.
    let mut n = redis.entry("ND_sim00").unwrap();
    n.stats.as_mut().unwrap().updated_at = now + 10;
    n.stats.as_mut().unwrap().num_rooms = 0;
    redis.hset("ND_sim00", &n.encode());
    let mut allocator = cluster::Allocator::connect(
        &url,
        SelectorConfig {
            sort_by: SortBy::Rooms,
            ..SelectorConfig::default()
        },
        cluster::ReserveConfig::default(),
    )
    .unwrap();
    let nodes = allocator.nodes().unwrap();
    let p = allocator.allocate(&nodes, now + 1).unwrap();
    assert_eq!((p.node.id.as_str(), p.pending), ("ND_sim00", 0));
}

/// `nodes --select --reserve` lists the nodes and reserves over one
/// connection; without `--reserve`, listing is its only one.
#[test]
fn select_with_reserve_opens_one_connection() {
    let redis = Redis::start("one-connection");
    let url = redis.url();
    twenty_livekit_nodes(&redis, cluster::unix_now());
    let mut con = redis.con();
    let mut connections = || -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .expect("INFO stats has total_connections_received")
            .trim()
            .parse()
            .unwrap()
    };
    for args in [&["--select"][..], &["--select", "--reserve"]] {
        let before = connections();
        let o = nodes_cli(&url, args);
        assert!(o.status.success(), "{o:?}");
        assert!(last_line(&o).starts_with("ND_sim"), "{o:?}");
        assert_eq!(connections() - before, 1, "connections of nodes {args:?}");
    }
    let reserved: Vec<(String, i64)> = redis::cmd("HGETALL")
        .arg(cluster::RESERVATIONS_KEY)
        .query(&mut redis.con())
        .unwrap();
    assert!(
        reserved
            .iter()
            .any(|(f, n)| f.contains(":ND_sim") && *n == 1),
        "{reserved:?}"
    );
}

#[test]
fn limits_and_ties_on_the_command_line() {
    let redis = Redis::start("limits");
    let url = redis.url();
    twenty_livekit_nodes(&redis, cluster::unix_now());
    // cpu_load is 0.1 + 0.01 i, bytes/s 4e5 i: both bounds leave nodes 5..=9.
    let o = nodes_cli(
        &url,
        &[
            "--select",
            "--sort-by",
            "rooms",
            "--limit",
            "cpuload>=0.15",
            "--limit",
            "bytespersec<4e6",
        ],
    );
    assert_eq!(last_line(&o), "ND_sim05", "{o:?}");
    // Nobody meets them: soft keeps all (node 0), hard exits 4.
    let o = nodes_cli(
        &url,
        &["--select", "--sort-by", "rooms", "--limit", "rooms>100"],
    );
    assert_eq!(last_line(&o), "ND_sim00", "{o:?}");
    let o = nodes_cli(&url, &["--select", "--limit", "rooms>100", "--hard-limits"]);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("rooms>100"));
    // A bad limit is a usage error naming it.
    let o = nodes_cli(&url, &["--select", "--limit", "memory<3"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("memory<3") && err.contains("--limit"), "{err}");
    // LiveKit's per-node limits never refuse a new room, and say so.
    let o = nodes_cli(
        &url,
        &["--select", "--sort-by", "rooms", "--max-tracks", "1"],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--limit"));
    // --ties first: the first of equal nodes in Redis order (what HKEYS
    // lists; LiveKit reads HVALS in the same order), every time.
    let keys: Vec<String> = redis::cmd("HKEYS")
        .arg("nodes")
        .query(&mut redis.con())
        .unwrap();
    for _ in 0..5 {
        let o = nodes_cli(
            &url,
            &["--select", "--sort-by", "sysload", "--ties", "first"],
        );
        assert_eq!(last_line(&o), keys[0], "{o:?}");
    }
}

/// 1 000 nodes, `i % 50` rooms on node `i`, stats from `now`; no
/// reservations.
fn thousand_nodes(redis: &Redis, now: i64) {
    redis.write_nodes((0..1000u32).map(|i| {
        let node = Node {
            id: format!("ND_{i:012}"),
            num_cpus: 16,
            stats: Some(NodeStats {
                updated_at: now,
                num_cpus: 16,
                num_rooms: (i % 50) as i32,
                num_clients: (i % 50 * 6) as i32,
                cpu_load: f64::from(i % 100) / 100.0,
                rates: vec![NodeStatsRate {
                    bytes_in: 1e6,
                    bytes_out: 4e6,
                    ..NodeStatsRate::default()
                }],
                ..NodeStats::default()
            }),
            ..Node::default()
        };
        (node.id.clone(), node.encode())
    }));
}

/// Numbers for benches/README.md: `nodes --select --reserve` over 1 000
/// nodes with 4 allocator processes at a time (target ≤ 20 ms per
/// allocation), and the library's `Allocator::allocate` alone. Loose
/// asserts: shared CI machines; the printed numbers count.
#[test]
fn measure_reserve_over_1000_nodes_with_4_concurrent_allocators() {
    let redis = Redis::start("measure-reserve");
    let url = redis.url();
    let args = ["--select", "--sort-by", "rooms", "--reserve"];
    let rooms = 80;
    // The same burst without --reserve, for its share of the cost. Each
    // burst on fresh stats, so that it ends while they are available.
    thousand_nodes(&redis, cluster::unix_now());
    let t = Instant::now();
    burst(&url, &args[..3], rooms, 4);
    let plain = t.elapsed();
    let now = cluster::unix_now();
    thousand_nodes(&redis, now);
    let t = Instant::now();
    let placed = burst(&url, &args, rooms, 4);
    let wall = t.elapsed();
    assert_eq!(placed.iter().map(|p| p.1).sum::<usize>(), rooms);
    // 20 nodes have no room, 20 one room...: none can take more than 3.
    assert!(placed.iter().all(|p| p.1 <= 3), "{placed:?}");
    // Library: one allocator's allocate (reservations read, choose, commit)
    // while three others run in threads.
    let config = SelectorConfig {
        sort_by: SortBy::Rooms,
        ..SelectorConfig::default()
    };
    let (per_call, attempts) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut a = cluster::Allocator::connect(
                        &url,
                        config.clone(),
                        cluster::ReserveConfig::default(),
                    )
                    .unwrap();
                    let nodes = a.nodes().unwrap();
                    let t = Instant::now();
                    let attempts: u32 = (0..50)
                        .map(|_| a.allocate(&nodes, now).unwrap().attempts)
                        .sum();
                    (t.elapsed() / 50, attempts)
                })
            })
            .collect();
        let all: Vec<(Duration, u32)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let attempts = f64::from(all.iter().map(|a| a.1).sum::<u32>()) / 200.0;
        (all.iter().map(|a| a.0).max().unwrap(), attempts)
    });
    eprintln!(
        "MEASURE nodes --select --reserve over 1000 nodes, 4 processes at a time: {rooms} allocations in {wall:?} = {:?} per allocation (wall / allocations), {:?} per process; library Allocator::allocate with 4 threads: {per_call:?} per call (slowest thread), {attempts:.2} commits tried per placement; without --reserve: {:?} per process",
        wall / rooms as u32,
        wall * 4 / rooms as u32,
        plain * 4 / rooms as u32
    );
    assert!(
        wall / (rooms as u32) < Duration::from_millis(500),
        "{wall:?}"
    );
}
