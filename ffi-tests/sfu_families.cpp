// The C++ twin of examples/sfu_families.c: the same SFU families declared
// from several worker processes and recorded with the same values, through
// RAII handles. tests/ffi.rs runs both and checks what `nodestats serve`
// exports.
//
//   sfu_families_cpp SEGMENT [WORKERS]   # prints "ready", waits for EOF
#include <nodestats.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

void must(nodestats_status st, const std::string &what) {
  if (st != NODESTATS_STATUS_OK)
    throw std::runtime_error(what + ": " + nodestats_status_str(st));
}

void expect(nodestats_status st, nodestats_status want, const std::string &what) {
  if (st != want)
    throw std::runtime_error(what + ": got " + nodestats_status_str(st));
}

struct CloseStats {
  void operator()(nodestats_t *s) const { nodestats_close(s); }
};
struct CloseSeries {
  void operator()(nodestats_series_t *h) const { nodestats_series_close(h); }
};
struct CloseThread {
  void operator()(nodestats_thread_t *t) const { nodestats_thread_close(t); }
};
struct CloseThreadSeries {
  void operator()(nodestats_thread_series_t *h) const {
    nodestats_thread_series_close(h);
  }
};
using Stats = std::unique_ptr<nodestats_t, CloseStats>;
using Series = std::unique_ptr<nodestats_series_t, CloseSeries>;
using Thread = std::unique_ptr<nodestats_thread_t, CloseThread>;
using ThreadSeries = std::unique_ptr<nodestats_thread_series_t, CloseThreadSeries>;

Stats open(const char *name) {
  nodestats_t *s = nullptr;
  must(nodestats_open(name, &s), "open");
  return Stats(s);
}

Series series(const Stats &s, const char *family,
              std::vector<const char *> labels = {}) {
  nodestats_series_t *h = nullptr;
  must(nodestats_series_open(s.get(), family, labels.data(), labels.size(), &h), family);
  return Series(h);
}

ThreadSeries thread_series(const Thread &t, const char *family,
                           std::vector<const char *> labels = {}) {
  nodestats_thread_series_t *h = nullptr;
  must(nodestats_thread_series_open(t.get(), family, labels.data(), labels.size(), &h),
       family);
  return ThreadSeries(h);
}

struct Family {
  const char *name;
  const char *help;
  nodestats_metric_kind kind;
  std::vector<const char *> labels;
  std::vector<double> buckets;
  uint32_t max_series;
  const char *unit;
};

void declare(const Stats &s, const Family &f) {
  nodestats_family_spec spec;
  nodestats_family_spec_init(&spec);
  spec.name = f.name;
  spec.help = f.help;
  spec.kind = f.kind;
  spec.label_names = f.labels.data();
  spec.n_labels = f.labels.size();
  spec.buckets = f.buckets.data();
  spec.n_buckets = f.buckets.size();
  spec.max_series = f.max_series;
  spec.unit = f.unit;
  must(nodestats_family_declare(s.get(), &spec), std::string("declare ") + f.name);
}

void declare_all(const Stats &s) {
  const std::array<Family, 6> families{{
      {"sfu_rtp_packets_total", "RTP packets forwarded, by direction and media.",
       NODESTATS_METRIC_KIND_COUNTER, {"direction", "media"}, {}, 0, nullptr},
      {"sfu_rtcp_feedback_total", "RTCP feedback messages received, by type.",
       NODESTATS_METRIC_KIND_COUNTER, {"type"}, {}, 0, nullptr},
      {"sfu_keyframe_requests_total", "Keyframe requests sent to publishers.",
       NODESTATS_METRIC_KIND_COUNTER, {}, {}, 0, nullptr},
      {"sfu_transports", "Open transports, by protocol.", NODESTATS_METRIC_KIND_GAUGE,
       {"protocol"}, {}, 0, nullptr},
      {"sfu_forward_delay_seconds", "Time from receiving a packet to forwarding it.",
       NODESTATS_METRIC_KIND_HISTOGRAM, {},
       {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05}, 0, "seconds"},
      {"sfu_room_bytes_total",
       "Bytes forwarded, by room (at most 4 rooms, then __overflow__).",
       NODESTATS_METRIC_KIND_COUNTER, {"room"}, {}, 4, nullptr},
  }};
  for (const Family &f : families)
    declare(s, f);
  // A native histogram: schema 3 from 0.1 to 10000 ms, no classic buckets.
  nodestats_family_spec rtt;
  nodestats_family_spec_init(&rtt);
  rtt.name = "sfu_rtt_ms";
  rtt.help = "Round-trip time to peers.";
  rtt.kind = NODESTATS_METRIC_KIND_HISTOGRAM;
  rtt.unit = "ms";
  rtt.native = true;
  rtt.native_min = 0.1;
  rtt.native_max = 10000;
  must(nodestats_family_declare(s.get(), &rtt), "declare sfu_rtt_ms");
}

void check_refusals(const Stats &s) {
  const char *other[] = {"direction"};
  nodestats_family_spec f;
  nodestats_family_spec_init(&f);
  f.name = "sfu_rtp_packets_total";
  f.label_names = other;
  f.n_labels = 1;
  expect(nodestats_family_declare(s.get(), &f), NODESTATS_STATUS_FAMILY_CONFLICT,
         "a conflicting declaration");
  nodestats_family_spec_init(&f);
  f.name = "sfu-bad-name";
  expect(nodestats_family_declare(s.get(), &f), NODESTATS_STATUS_INVALID_ARGUMENT,
         "an invalid metric name");
  nodestats_series_t *h = nullptr;
  expect(nodestats_series_open(s.get(), "sfu_not_declared_total", nullptr, 0, &h),
         NODESTATS_STATUS_UNKNOWN_FAMILY, "an undeclared family");
}

void worker(const char *name, int id) {
  Stats s = open(name);
  declare_all(s);
  nodestats_thread_t *raw = nullptr;
  must(nodestats_thread_open(s.get(), &raw), "thread open");
  Thread t(raw);
  ThreadSeries rx = thread_series(t, "sfu_rtp_packets_total", {"incoming", "video"});
  ThreadSeries delay = thread_series(t, "sfu_forward_delay_seconds");
  Series tx = series(s, "sfu_rtp_packets_total", {"outgoing", "audio"});
  Series nacks = series(s, "sfu_rtcp_feedback_total", {"nack"});
  Series plis = series(s, "sfu_rtcp_feedback_total", {"pli"});
  Series kf = series(s, "sfu_keyframe_requests_total");
  Series transports = series(s, "sfu_transports", {"udp"});
  Series rtt = series(s, "sfu_rtt_ms");

  nodestats_series_add(transports.get(), 1);
  for (int i = 0; i < 1000; i++) {
    nodestats_thread_series_inc_by(rx.get(), 1);
    nodestats_thread_series_observe(delay.get(), i % 2 ? 0.002 : 0.0003);
    nodestats_series_inc_by(tx.get(), 2);
    nodestats_series_observe(rtt.get(), 10 + i % 100);
  }
  nodestats_series_inc_by(nacks.get(), 30);
  nodestats_series_inc_by(plis.get(), 3);
  nodestats_series_inc_by(kf.get(), 3);
  for (int r = 0; r < 6; r++) {
    std::string room = "room-" + std::to_string((r + id) % 6);
    nodestats_series_inc_by(series(s, "sfu_room_bytes_total", {room.c_str()}).get(), 1200);
  }
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SEGMENT [WORKERS]\n", argv[0]);
    return 1;
  }
  const char *name = argv[1];
  int workers = argc > 2 ? std::atoi(argv[2]) : 4;
  try {
    Stats s = open(name);
    declare_all(s);
    check_refusals(s);
    Series held = series(s, "sfu_transports", {"tcp"});
    nodestats_series_add(held.get(), 2);
    for (int i = 0; i < workers; i++) {
      pid_t pid = fork();
      if (pid < 0)
        throw std::runtime_error("fork failed");
      if (pid == 0) {
        int code = 0;
        try {
          worker(name, i);
        } catch (const std::exception &e) {
          std::fprintf(stderr, "worker %d: %s\n", i, e.what());
          code = 1;
        }
        std::_Exit(code);
      }
    }
    int failed = 0;
    for (int i = 0; i < workers; i++) {
      int status = 0;
      if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        failed++;
    }
    if (failed)
      throw std::runtime_error(std::to_string(failed) + " workers failed");
    std::printf("ready %d workers\n", workers);
    std::fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
    nodestats_segment_unlink(name);
    return 1;
  }
  must(nodestats_segment_unlink(name), "unlink");
  return 0;
}
