//! The registry past one Redis, against real servers the tests start on
//! loopback (Debian's `redis-server`, also run as a sentinel with
//! `--sentinel`; `scripts/test.sh` installs it): a 3-master Redis Cluster,
//! a master/replica pair under three sentinels with the master SIGKILLed
//! while `serve --config livekit.yaml` publishes, registries that refuse us
//! (password, ACL user, database), servers that hang or trickle bytes, and
//! hostile node entries. Every server and directory is removed by a Drop
//! guard, on failure too.

mod common;

use common::sfu::{Serve, Sfu};
use common::TempDir;
use nodestats::cluster::{self, Node, NodeState, RedisConfig};
use nodestats::NodeStats;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- servers

/// A child process killed (SIGKILL) and reaped when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-server` on `port` with `args`, its files in `dir`; waits until it
/// answers PING (with `auth` if given).
fn redis_server(dir: &TempDir, port: u16, args: &[&str]) -> Proc {
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .arg("--dir")
        .arg(dir.dir())
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian package redis-server; scripts/test.sh installs it)");
    let p = Proc(Some(child));
    wait_for("redis-server to answer", Duration::from_secs(10), || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(b"PING\r\n").ok()?;
        let mut b = [0u8; 64];
        let n = s.read(&mut b).ok()?;
        // +PONG, or -NOAUTH from a server with a password: it is up.
        (n > 0).then_some(())
    });
    p
}

fn con(port: u16) -> redis::Connection {
    con_as(port, "")
}

/// A connection with the password `pw` (none if empty).
fn con_as(port: u16, pw: &str) -> redis::Connection {
    let auth = if pw.is_empty() {
        String::new()
    } else {
        format!(":{pw}@")
    };
    redis::Client::open(format!("redis://{auth}127.0.0.1:{port}"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect to a test server")
}

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn entry(con: &mut impl redis::ConnectionLike, id: &str) -> Option<Node> {
    let v: Option<Vec<u8>> = redis::cmd("HGET").arg("nodes").arg(id).query(con).ok()?;
    v.map(|v| Node::decode(&v).expect("our entry decodes"))
}

// ---------------------------------------------------------------- serve

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to serve");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |p| p.1).to_string();
    (code, body)
}

fn metric(body: &str, name: &str) -> Option<String> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .map(str::to_string)
}

fn nodes(args: &[&str]) -> Output {
    Command::new(common::nodestats_bin())
        .arg("nodes")
        .args(args)
        .output()
        .expect("run nodestats nodes")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Times GET /metrics, /stats and /healthz in turn until stopped; each must
/// answer 200. `finish` gives (requests, worst, p99).
struct Scraper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Duration>>>,
}

impl Scraper {
    fn start(addr: &str) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let addr = addr.to_string();
        let thread = std::thread::spawn(move || {
            let mut times = Vec::new();
            for path in ["/metrics", "/stats", "/healthz"].iter().cycle() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let t = Instant::now();
                let (code, _) = http_get(&addr, path);
                assert_eq!(code, 200, "{path} during the failover");
                times.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(10));
            }
            times
        });
        Scraper {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, Duration, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let mut t = self.thread.take().unwrap().join().expect("scraper");
        t.sort();
        let p99 = t[(t.len() * 99 / 100).min(t.len() - 1)];
        (t.len(), *t.last().unwrap(), p99)
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- Cluster

#[test]
fn a_three_master_redis_cluster_holds_the_registry() {
    let dir = TempDir::new("registry-cluster");
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let _servers: Vec<Proc> = ports
        .iter()
        .map(|p| {
            let conf = dir.path(&format!("nodes-{p}.conf"));
            redis_server(
                &dir,
                *p,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "2000",
                ],
            )
        })
        .collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli (Debian package redis-tools, with redis-server)");
    assert!(created.status.success(), "{}", text(&created.stdout));
    for p in &ports {
        wait_for("cluster_state:ok", Duration::from_secs(20), || {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con(*p)).ok()?;
            info.contains("cluster_state:ok").then_some(())
        });
    }
    // The node that owns the slot of `nodes` (the others answer MOVED); it
    // is listed last so the client must be sent on from another.
    let owner = ports
        .iter()
        .copied()
        .find(|p| {
            redis::cmd("HLEN")
                .arg("nodes")
                .query::<i64>(&mut con(*p))
                .is_ok()
        })
        .expect("one node owns the slot of `nodes`");
    let mut seeds: Vec<String> = ports
        .iter()
        .filter(|p| **p != owner)
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    seeds.push(format!("\"127.0.0.1:{owner}\""));
    let yaml = dir.join("livekit.yaml");
    std::fs::write(
        &yaml,
        format!(
            "port: 7880\nregion: eu-west\nredis:\n  cluster_addresses: [{}]\n  max_redirects: 3\n",
            seeds.join(", ")
        ),
    )
    .unwrap();
    let yaml = yaml.to_str().unwrap();

    let sfu = Sfu::new("cluster", 1);
    let s = Serve::start(&sfu, &["--config", yaml, "--node-id", "ND_clustered"]);
    let node = wait_for("the entry in the cluster", Duration::from_secs(10), || {
        entry(&mut con(owner), "ND_clustered")
    });
    assert_eq!(node.region, "eu-west", "region comes from --config");
    assert_eq!(node.state, NodeState::Serving);

    // The library and `nodes` read it through the cluster.
    let config = RedisConfig {
        cluster_addresses: seeds
            .iter()
            .map(|s| s.trim_matches('"').to_string())
            .collect(),
        ..RedisConfig::default()
    };
    let (entries, _) = cluster::list_from(&config, Duration::from_secs(5)).unwrap();
    assert_eq!(entries.len(), 1);
    let o = nodes(&["--config", yaml]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("ND_clustered"));
    let o = nodes(&["--config", yaml, "--select"]);
    assert_eq!(text(&o.stdout), "ND_clustered\n", "{}", text(&o.stderr));
    let (_, m) = http_get(&s.addr, "/metrics");
    assert!(
        metric(&m, "nodestats_registry_up").is_some_and(|l| l.ends_with(" 1")),
        "{m}"
    );
    // The slot of `nodes` moves to another master while serve publishes:
    // its next write is answered MOVED and must follow to the new owner.
    let target = *ports.iter().find(|p| **p != owner).unwrap();
    let id_of = |p: u16| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut con(p))
            .unwrap()
    };
    let (from_id, to_id) = (id_of(owner), id_of(target));
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("nodes")
        .query(&mut con(owner))
        .unwrap();
    let setslot = |p: u16, how: &str, id: &str| {
        let _: String = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(id)
            .query(&mut con(p))
            .unwrap();
    };
    setslot(target, "IMPORTING", &from_id);
    setslot(owner, "MIGRATING", &to_id);
    let _: String = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(target)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg("nodes")
        .query(&mut con(owner))
        .unwrap();
    for p in &ports {
        setslot(*p, "NODE", &to_id);
    }
    let moved = Instant::now();
    // Remove the migrated entry; serve writes it again on the new owner.
    let _: i64 = redis::cmd("HDEL")
        .arg("nodes")
        .arg("ND_clustered")
        .query(&mut con(target))
        .unwrap();
    wait_for(
        "the entry on the slot's new owner",
        Duration::from_secs(10),
        || entry(&mut con(target), "ND_clustered"),
    );
    eprintln!(
        "cluster: slot of `nodes` moved; entry written on the new owner {:?} later",
        moved.elapsed()
    );
    let (_, m) = http_get(&s.addr, "/metrics");
    let failures = metric(&m, "nodestats_redis_publish_failures_total").unwrap_or_default();
    assert!(
        failures.ends_with(" 0"),
        "the redirect was followed, not failed and retried: {failures}"
    );
    let owner = target;

    // A dead entry is swept through the cluster (EVAL routed by its key).
    let dead = Node {
        id: "ND_dead".into(),
        stats: Some(NodeStats {
            updated_at: cluster::unix_now() - 600,
            ..NodeStats::default()
        }),
        ..Node::default()
    };
    let _: i64 = redis::cmd("HSET")
        .arg("nodes")
        .arg("ND_dead")
        .arg(dead.encode())
        .query(&mut con(owner))
        .unwrap();
    let o = nodes(&["--config", yaml, "--sweep", "--dead-after", "60"]);
    assert_eq!(text(&o.stdout), "removed ND_dead\n", "{}", text(&o.stderr));
    assert!(entry(&mut con(owner), "ND_clustered").is_some());

    // A clean stop removes the entry from the cluster.
    let mut s = s;
    s.signal(libc::SIGTERM);
    wait_for("the entry removed", Duration::from_secs(5), || {
        entry(&mut con(owner), "ND_clustered")
            .is_none()
            .then_some(())
    });
    s.kill();
}

// ---------------------------------------------------------------- Sentinel

#[test]
fn sentinel_failover_is_followed_within_seconds_and_the_pages_stay_fast() {
    let dir = TempDir::new("registry-sentinel");
    // Passwords everywhere, as in production: the data nodes' (`password`)
    // and the sentinels' own (`sentinel_password`).
    let (mpw, spw) = ("pw-Master-4e21", "pw-Sentinel-b7c9");
    let (pm, pr) = (common::free_port(), common::free_port());
    let auth = ["--requirepass", mpw, "--masterauth", mpw];
    let mut master = redis_server(&dir, pm, &auth);
    let mut replica_args = auth.to_vec();
    let pm_text = pm.to_string();
    replica_args.extend(["--replicaof", "127.0.0.1", &pm_text]);
    let _replica = redis_server(&dir, pr, &replica_args);
    let data = |p: u16| con_as(p, mpw);
    let sports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let _sentinels: Vec<Proc> = sports
        .iter()
        .map(|p| {
            let conf = dir.join(&format!("sentinel-{p}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {p}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor mymaster 127.0.0.1 {pm} 2\n\
                     sentinel down-after-milliseconds mymaster 1000\n\
                     sentinel failover-timeout mymaster 3000\n\
                     sentinel parallel-syncs mymaster 1\n\
                     sentinel auth-pass mymaster {mpw}\n\
                     requirepass {spw}\nsentinel sentinel-pass {spw}\n",
                    dir.dir().display()
                ),
            )
            .unwrap();
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .args(["--loglevel", "warning"])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel");
            Proc(Some(child))
        })
        .collect();
    // Every sentinel must know the replica and the two other sentinels
    // before a failover can happen (replicas are found by INFO every 10 s).
    for p in &sports {
        wait_for(
            "sentinels to see the replica and each other",
            Duration::from_secs(40),
            || {
                let mut c = redis::Client::open(format!("redis://:{spw}@127.0.0.1:{p}"))
                    .ok()?
                    .get_connection_with_timeout(Duration::from_secs(1))
                    .ok()?;
                let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("replicas")
                    .arg("mymaster")
                    .query(&mut c)
                    .ok()?;
                let others: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("sentinels")
                    .arg("mymaster")
                    .query(&mut c)
                    .ok()?;
                (replicas.len() == 1 && others.len() == 2).then_some(())
            },
        );
    }
    let yaml = dir.join("livekit.yaml");
    std::fs::write(
        &yaml,
        format!(
            "port: 7880\nrtc:\n  tcp_port: 7881\nkeys:\n  APIkey: secretsecretsecretsecretsecretsecret\n\
             redis:\n  sentinel_master_name: mymaster\n  sentinel_addresses:\n{}  db: 0\n  read_timeout: 200\n  \
             password: {mpw}\n  sentinel_password: {spw}\n",
            sports
                .iter()
                .map(|p| format!("    - 127.0.0.1:{p}\n"))
                .collect::<String>()
        ),
    )
    .unwrap();
    let yaml = yaml.to_str().unwrap();

    let sfu = Sfu::new("sentinel", 1);
    let s = Serve::start(&sfu, &["--config", yaml, "--node-id", "ND_fo"]);
    wait_for("the entry on the master", Duration::from_secs(10), || {
        entry(&mut data(pm), "ND_fo")
    });
    let baseline = Scraper::start(&s.addr);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, base_worst, base_p99) = baseline.finish();
    let scraper = Scraper::start(&s.addr);
    std::thread::sleep(Duration::from_millis(300));

    // SIGKILL the master; the sentinels promote the replica.
    master.kill();
    let killed = Instant::now();
    let sentinel = sports[0];
    let promoted = wait_for("the promotion", Duration::from_secs(60), || {
        let mut c = redis::Client::open(format!("redis://:{spw}@127.0.0.1:{sentinel}"))
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query(&mut c)
            .ok()?;
        (port == pr).then(Instant::now)
    });
    // The new master holds the replicated entry: remove it, and time its
    // return (writes to a replica are refused, so none came before).
    let _: i64 = redis::cmd("HDEL")
        .arg("nodes")
        .arg("ND_fo")
        .query(&mut data(pr))
        .unwrap();
    wait_for(
        "the entry on the new master",
        Duration::from_secs(30),
        || entry(&mut data(pr), "ND_fo"),
    );
    let resumed = promoted.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let (scrapes, worst, p99) = scraper.finish();
    eprintln!(
        "sentinel failover: promotion {:.2} s after SIGKILL; publishing resumed {:.3} s after the promotion \
         (target 5 s); pages during it: {scrapes} requests, p99 {p99:?}, worst {worst:?} \
         (before: p99 {base_p99:?}, worst {base_worst:?})",
        (promoted - killed).as_secs_f64(),
        resumed.as_secs_f64()
    );
    // Generous for a busy CI machine; the printed number is the measure.
    assert!(resumed < Duration::from_secs(15), "{resumed:?}");
    assert!(worst < Duration::from_secs(3), "slowest page {worst:?}");
    let (code, _) = http_get(&s.addr, "/healthz");
    assert_eq!(code, 200);

    // `nodes` follows the sentinels to the new master.
    let o = nodes(&["--config", yaml, "--select"]);
    assert_eq!(text(&o.stdout), "ND_fo\n", "{}", text(&o.stderr));
    let (_, st) = http_get(&s.addr, "/stats");
    for shown in [s.stderr(), text(&o.stderr), st] {
        assert!(!shown.contains(mpw) && !shown.contains(spw), "{shown}");
    }
}

// ---------------------------------------------------------------- refusals

#[test]
fn a_refusing_registry_is_said_exported_and_shown_and_no_password_leaks() {
    let dir = TempDir::new("registry-auth");
    let port = common::free_port();
    let good = "pw-Good-7c1d";
    let mut server = redis_server(
        &dir,
        port,
        &[
            "--requirepass",
            good,
            "--databases",
            "4",
            "--user",
            "alice",
            "on",
            ">pw-Alice-55aa",
            "~*",
            "+@all",
        ],
    );
    let sfu = Sfu::new("auth", 1);
    let cases: [(&str, String, &str); 4] = [
        (
            "pw-Wrong-91b2",
            format!("redis://:pw-Wrong-91b2@127.0.0.1:{port}"),
            "authentication failed",
        ),
        (
            "pw-Ghost-31f0",
            format!("redis://ghost:pw-Ghost-31f0@127.0.0.1:{port}"),
            "authentication failed",
        ),
        (
            "",
            format!("redis://127.0.0.1:{port}"),
            "requires a password",
        ),
        (
            good,
            format!("redis://:{good}@127.0.0.1:{port}/9"),
            "database index",
        ),
    ];
    for (secret, url, why) in &cases {
        let s = Serve::start(&sfu, &["--redis", url, "--node-id", "ND_refused"]);
        let said = wait_for(why, Duration::from_secs(10), || {
            let e = s.stderr();
            e.contains(why).then_some(e)
        });
        let (_, m) = http_get(&s.addr, "/metrics");
        let (_, st) = http_get(&s.addr, "/stats");
        let (code, _) = http_get(&s.addr, "/healthz");
        assert_eq!(code, 200, "/healthz does not depend on Redis");
        assert!(
            metric(&m, "nodestats_registry_up").is_some_and(|l| l.ends_with(" 0")),
            "{m}"
        );
        let info = metric(&m, "nodestats_registry_error_info").expect("the reason is exported");
        assert!(info.contains(why), "{info}");
        let stats: serde_json::Value = serde_json::from_str(&st).unwrap();
        assert_eq!(stats["registry"]["up"], false, "{st}");
        assert!(
            stats["registry"]["error"].as_str().unwrap().contains(why),
            "{st}"
        );
        // Said once while the reason stays the same.
        std::thread::sleep(Duration::from_millis(1000));
        let e = s.stderr();
        assert_eq!(
            e.matches("cannot publish").count(),
            1,
            "said once per reason: {e}"
        );
        for place in [&said, &e, &m, &st] {
            if !secret.is_empty() {
                assert!(!place.contains(secret), "password shown: {place}");
            }
            assert!(!place.contains(good), "password shown: {place}");
        }
    }

    // The ACL user with its password gets in; then the reason changes
    // (Redis gone) and changes back (up again): said each time.
    let url = format!("redis://alice:pw-Alice-55aa@127.0.0.1:{port}/2");
    let s = Serve::start(&sfu, &["--redis", &url, "--node-id", "ND_alice"]);
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    wait_for("alice's entry in db 2", Duration::from_secs(10), || {
        entry(&mut c, "ND_alice")
    });
    server.kill();
    wait_for("the outage said", Duration::from_secs(10), || {
        s.stderr().contains("cannot publish").then_some(())
    });
    let _server = redis_server(
        &dir,
        port,
        &["--user", "alice", "on", ">pw-Alice-55aa", "~*", "+@all"],
    );
    wait_for("the recovery said", Duration::from_secs(10), || {
        s.stderr().contains("again").then_some(())
    });
    let e = s.stderr();
    assert!(!e.contains("pw-Alice-55aa"), "{e}");
    let (_, m) = http_get(&s.addr, "/metrics");
    assert!(
        metric(&m, "nodestats_registry_up").is_some_and(|l| l.ends_with(" 1")),
        "{m}"
    );
    assert!(metric(&m, "nodestats_registry_error_info").is_none(), "{m}");
}

#[test]
fn bad_or_contradictory_config_is_an_error_naming_the_key() {
    let dir = TempDir::new("registry-config");
    for (yaml, key) in [
        ("redis:\n  adress: 127.0.0.1:6379\n", "adress"),
        (
            "redis:\n  sentinel_master_name: m\n  sentinel_addresses: [\"127.0.0.1:1\"]\n  cluster_addresses: [\"127.0.0.1:2\"]\n",
            "redis.sentinel_addresses and redis.cluster_addresses",
        ),
        (
            "redis:\n  cluster_addresses: [\"127.0.0.1:2\"]\n  db: 3\n",
            "redis.db",
        ),
        (
            "redis:\n  address: rediss://127.0.0.1:1\n  use_tls: false\n",
            "redis.use_tls",
        ),
        ("redis:\n  address: 127.0.0.1\n", "redis.address"),
        ("node_selector:\n  kind: fastest\n", "node_selector.kind"),
    ] {
        let f = dir.join("livekit.yaml");
        std::fs::write(&f, yaml).unwrap();
        let f = f.to_str().unwrap();
        let mut args = vec!["--config", f, "--timeout", "2"];
        if key.starts_with("node_selector") {
            args.extend(["--redis", "redis://127.0.0.1:1", "--select"]);
        }
        let o = nodes(&args);
        assert_eq!(o.status.code(), Some(1), "{yaml}");
        let e = text(&o.stderr);
        assert!(e.contains(key), "{yaml} → {e}");
    }
}

// ---------------------------------------------------------------- deadlines

/// A "Redis" that accepts and then never answers, or trickles one byte of a
/// reply that never ends every 100 ms.
struct FakeRedis {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl FakeRedis {
    fn start(trickle: bool) -> FakeRedis {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok((mut s, _)) = l.accept() {
                    if trickle {
                        // A bulk reply of a million bytes, sent one by one.
                        let _ = s.write_all(b"$1000000\r\n");
                    }
                    held.push(s);
                }
                if trickle {
                    for s in &mut held {
                        let _ = s.write_all(b"a");
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        FakeRedis { addr, stop }
    }
}

impl Drop for FakeRedis {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn nodes_gives_up_at_its_timeout_against_a_hung_or_trickling_server() {
    for trickle in [false, true] {
        let fake = FakeRedis::start(trickle);
        let url = format!("redis://{}", fake.addr);
        let t = Instant::now();
        let o = nodes(&["--redis", &url, "--timeout", "1"]);
        let took = t.elapsed();
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains("timed out"), "trickle {trickle}: {e}");
        assert!(o.stdout.is_empty());
        eprintln!(
            "nodes --timeout 1 against a {} server: {took:?}",
            if trickle { "trickling" } else { "hung" }
        );
        // The bound is the point; the margin is for a busy machine.
        assert!(took < Duration::from_secs(4), "{took:?}");
    }

    // Sentinels that hang: the same bound over all of them.
    let fakes = [FakeRedis::start(false), FakeRedis::start(true)];
    let dir = TempDir::new("registry-hung-sentinels");
    let yaml = dir.join("livekit.yaml");
    std::fs::write(
        &yaml,
        format!(
            "redis:\n  sentinel_master_name: m\n  sentinel_addresses: [\"{}\", \"{}\"]\n",
            fakes[0].addr, fakes[1].addr
        ),
    )
    .unwrap();
    let t = Instant::now();
    let o = nodes(&["--config", yaml.to_str().unwrap(), "--timeout", "1.5"]);
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("timed out"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // A server whose error text carries escape sequences: escaped.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten().take(4) {
            // Every command is answered with the error.
            let mut b = [0u8; 4096];
            while let Ok(n @ 1..) = s.read(&mut b) {
                let commands = b[..n].iter().filter(|&&c| c == b'*').count().max(1);
                for _ in 0..commands {
                    let _ = s.write_all(b"-ERR \x1b]0;pwned\x07\x1b[2J gotcha\r\n");
                }
            }
        }
    });
    let o = nodes(&["--redis", &format!("redis://{addr}"), "--timeout", "3"]);
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("gotcha") && e.contains("\\x1b]0;pwned"), "{e}");
    assert!(!e.contains('\u{1b}') && !e.contains('\u{7}'), "{e:?}");
}

// ---------------------------------------------------------------- hostile

#[test]
fn hostile_node_entries_cannot_reach_the_terminal_or_forge_the_choice() {
    let dir = TempDir::new("registry-hostile");
    let port = common::free_port();
    let _server = redis_server(&dir, port, &[]);
    let url = format!("redis://127.0.0.1:{port}");
    let now = cluster::unix_now();
    let node = |id: &str, region: &str, rooms: i32| Node {
        id: id.to_string(),
        ip: "10.0.0.1\u{1b}[2J".into(),
        num_cpus: 4,
        stats: Some(NodeStats {
            updated_at: now,
            num_rooms: rooms,
            num_cpus: 4,
            ..NodeStats::default()
        }),
        node_type: 0,
        state: NodeState::Serving,
        region: region.to_string(),
    };
    let hostile = [
        node("ND_\u{1b}[31mred\u{1b}[0m", "\u{1b}]0;owned\u{7}", 0),
        node("ND_evil\nND_forged", "eu", 0),
        node("ND_bidi\u{202e}lve", "eu", 0),
    ];
    let mut c = con(port);
    for n in hostile.iter().chain([&node("ND_good", "eu", 5)]) {
        let _: i64 = redis::cmd("HSET")
            .arg("nodes")
            .arg(&n.id)
            .arg(n.encode())
            .query(&mut c)
            .unwrap();
    }

    // For people: escaped, nothing raw reaches the terminal.
    let o = nodes(&["--redis", &url]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    for raw in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!out.contains(raw), "raw {raw:?} in the table: {out}");
    }
    assert!(out.contains("ND_\\x1b[31mred"), "{out}");
    assert!(out.contains("ND_evil\\x0aND_forged"), "{out}");
    assert!(out.contains("ND_bidi\\u{202e}lve"), "{out}");
    assert_eq!(out.lines().count(), 1 + 4 + 1, "one line per node: {out}");

    // For machines: the chosen id alone, never one that could forge a line
    // (the hostile ones have fewer rooms and would be chosen).
    for _ in 0..5 {
        let o = nodes(&["--redis", &url, "--select", "--sort-by", "rooms"]);
        assert_eq!(text(&o.stdout), "ND_good\n", "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains("left out of the choice"));
    }
    // JSON: escaped, and the ids read back exactly.
    let o = nodes(&["--redis", &url, "--json"]);
    let out = text(&o.stdout);
    assert!(!out.contains('\u{1b}'), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    for h in &hostile {
        assert!(ids.contains(&h.id.as_str()), "{ids:?}");
    }
}

#[test]
fn node_selector_and_limit_of_the_config_are_defaults_and_flags_override_them() {
    let dir = TempDir::new("registry-selector");
    let port = common::free_port();
    let _server = redis_server(&dir, port, &[]);
    let now = cluster::unix_now();
    let mut c = con(port);
    for (id, rooms, clients) in [("ND_fewrooms", 1, 90), ("ND_fewclients", 9, 2)] {
        let n = Node {
            id: id.into(),
            num_cpus: 4,
            stats: Some(NodeStats {
                updated_at: now,
                num_rooms: rooms,
                num_clients: clients,
                num_cpus: 4,
                ..NodeStats::default()
            }),
            state: NodeState::Serving,
            ..Node::default()
        };
        let _: i64 = redis::cmd("HSET")
            .arg("nodes")
            .arg(id)
            .arg(n.encode())
            .query(&mut c)
            .unwrap();
    }
    let yaml = dir.join("livekit.yaml");
    std::fs::write(
        &yaml,
        format!(
            "redis:\n  address: 127.0.0.1:{port}\nnode_selector:\n  kind: any\n  sort_by: rooms\n  cpu_load_limit: 0.8\n\
             limit:\n  num_tracks: 1\n  bytes_per_sec: 1e9\n  subscription_limit_video: 20\n  max_room_name_length: 64\n"
        ),
    )
    .unwrap();
    let yaml = yaml.to_str().unwrap();
    // limit.num_tracks is --max-tracks: it refuses no new room, and says so.
    let note = "do not refuse a new room";
    let o = nodes(&["--config", yaml, "--select"]);
    assert!(text(&o.stderr).contains(note), "{}", text(&o.stderr));
    let o = nodes(&["--config", yaml, "--select", "--max-tracks", "0"]);
    assert!(text(&o.stderr).contains(note), "bytes_per_sec is on");
    let off = ["--max-tracks", "0", "--max-bytes-per-sec", "0"];
    let o = nodes(&[&["--config", yaml, "--select"][..], &off].concat());
    assert!(!text(&o.stderr).contains(note), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "ND_fewrooms\n", "{}", text(&o.stderr));
    for _ in 0..3 {
        let o = nodes(&["--config", yaml, "--select"]);
        assert_eq!(text(&o.stdout), "ND_fewrooms\n", "{}", text(&o.stderr));
        let o = nodes(&["--config", yaml, "--select", "--sort-by", "clients"]);
        assert_eq!(text(&o.stdout), "ND_fewclients\n", "{}", text(&o.stderr));
    }
}

// ---------------------------------------------------------------- TLS

/// Runs `openssl` (Debian package openssl; scripts/test.sh installs it).
fn openssl(dir: &TempDir, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir.dir())
        .args(args)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o.stderr));
}

#[test]
fn tls_with_a_private_ca_from_use_tls_or_rediss() {
    let dir = TempDir::new("registry-tls");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=nodestats test CA",
    ];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(&dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&dir, &csr);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
    let port = common::free_port();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
        ])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .args(["--tls-cert-file", &dir.path("server.crt")])
        .args(["--tls-key-file", &dir.path("server.key")])
        .args(["--tls-ca-cert-file", &dir.path("ca.crt")])
        .args(["--tls-auth-clients", "no"])
        .arg("--dir")
        .arg(dir.dir())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server with TLS");
    let _server = Proc(Some(child));
    wait_for("the TLS port", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let ca = dir.path("ca.crt");
    let yaml = dir.join("livekit.yaml");
    std::fs::write(
        &yaml,
        format!("redis:\n  address: 127.0.0.1:{port}\n  use_tls: true\n"),
    )
    .unwrap();
    let yaml = yaml.to_str().unwrap();

    let sfu = Sfu::new("tls", 1);
    let s = Serve::start(
        &sfu,
        &["--config", yaml, "--redis-ca", &ca, "--node-id", "ND_tls"],
    );
    let url = format!("rediss://127.0.0.1:{port}");
    let listed = wait_for("the entry over TLS", Duration::from_secs(10), || {
        let o = nodes(&["--redis", &url, "--redis-ca", &ca, "--select"]);
        o.status.success().then(|| text(&o.stdout))
    });
    assert_eq!(listed, "ND_tls\n");
    // Without the CA the server's certificate is not trusted.
    let o = nodes(&["--redis", &url, "--timeout", "3"]);
    assert_eq!(o.status.code(), Some(1));
    let e = text(&o.stderr);
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // Plain TCP to a TLS port does not pass for a registry.
    let o = nodes(&[
        "--redis",
        &format!("redis://127.0.0.1:{port}"),
        "--timeout",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    drop(s);
}
