// C++17 use of the nodestats C API: the header compiles as C++ (typed
// enums with a uint32_t base), handles fit RAII, threads share a writer,
// a series handle and an exporter.
//
// Built with -std=c++17 -Wall -Wextra -Wpedantic -Werror, run under
// ASan+UBSan by tests/ffi.rs (see Makefile).
#include "nodestats.h"
#include "same_code.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

// Every enum type of the API is the same uint32_t as in C (same_code.h).
static_assert(std::is_same_v<nodestats_status, uint32_t>);
static_assert(std::is_same_v<nodestats_direction, uint32_t>);
static_assert(std::is_same_v<nodestats_track_kind, uint32_t>);
static_assert(std::is_same_v<nodestats_track_source, uint32_t>);
static_assert(std::is_same_v<nodestats_connection_quality, uint32_t>);
static_assert(std::is_same_v<nodestats_metric_kind, uint32_t>);
static_assert(NODESTATS_STATUS_OK == 0 && NODESTATS_STATUS_PANIC == 18);
static_assert(NODESTATS_TRACK_SOURCE_SCREEN_SHARE_AUDIO == 4);
static_assert(NODESTATS_CONNECTION_QUALITY_LOST == 3);
static_assert(std::is_standard_layout_v<nodestats_node_stats>);
static_assert(std::is_trivially_copyable_v<nodestats_options>);

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                   \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)

namespace {

struct WriterClose {
  void operator()(nodestats_t *s) const noexcept { nodestats_close(s); }
};
struct CollectorClose {
  void operator()(nodestats_collector_t *c) const noexcept {
    nodestats_collector_close(c);
  }
};
struct SeriesClose {
  void operator()(nodestats_series_t *h) const noexcept { nodestats_series_close(h); }
};
struct ExporterClose {
  void operator()(nodestats_exporter_t *e) const noexcept {
    nodestats_exporter_close(e);
  }
};
using Writer = std::unique_ptr<nodestats_t, WriterClose>;
using Collector = std::unique_ptr<nodestats_collector_t, CollectorClose>;
using Series = std::unique_ptr<nodestats_series_t, SeriesClose>;
using Exporter = std::unique_ptr<nodestats_exporter_t, ExporterClose>;

// Throws nothing: a status other than OK ends the test with its message.
void ok(nodestats_status st, const char *what) {
  if (st != NODESTATS_STATUS_OK) {
    std::fprintf(stderr, "%s: %s\n", what, nodestats_status_str(st));
    std::exit(1);
  }
}

Writer open_writer(const char *name) {
  nodestats_t *raw = nullptr;
  ok(nodestats_open(name, &raw), "nodestats_open");
  return Writer(raw);
}

std::string json(nodestats_collector_t *c) {
  size_t need = 0;
  CHECK(nodestats_collector_json(c, nullptr, 0, &need) ==
        NODESTATS_STATUS_BUFFER_TOO_SMALL);
  std::string out(need, '\0');
  size_t len = 0;
  ok(nodestats_collector_json(c, out.data(), out.size(), &len),
     "nodestats_collector_json");
  out.resize(len);
  return out;
}

// The exporter's text; retries while it grows between calls.
std::string prometheus(const nodestats_exporter_t *e) {
  std::string out;
  size_t len = 0;
  nodestats_status st;
  while ((st = nodestats_exporter_text(e, out.data(), out.size(), &len)) ==
         NODESTATS_STATUS_BUFFER_TOO_SMALL)
    out.resize(len);
  ok(st, "nodestats_exporter_text");
  out.resize(len);
  return out;
}

bool has_line(const std::string &text, const std::string &line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

Series open_series(nodestats_t *s, const char *family,
                   std::initializer_list<const char *> labels) {
  std::vector<const char *> v(labels);
  nodestats_series_t *raw = nullptr;
  ok(nodestats_series_open(s, family, v.data(), v.size(), &raw),
     "nodestats_series_open");
  return Series(raw);
}

void test_series_and_exporter() {
  Writer w = open_writer(nullptr);
  Series loss =
      open_series(w.get(), "livekit_packet_loss_total", {"incoming", "CAMERA", "VIDEO", "US"});
  Series rtt = open_series(w.get(), "livekit_rtt_ms", {"outgoing", "CAMERA", "VIDEO", "US"});
  Series refs = open_series(w.get(), "livekit_debug_ref_count", {"cpp"});
  constexpr int threads = 4;
  constexpr uint64_t per_thread = 50000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&] {
      for (uint64_t i = 0; i < per_thread; i++) {
        nodestats_series_inc_by(loss.get(), 1);
        nodestats_series_observe(rtt.get(), 40.0);
      }
      nodestats_series_add(refs.get(), 2);
      nodestats_series_add(refs.get(), -1);
      nodestats_record_peer_connection_state(w.get(), "SUBSCRIBER", "connected");
      nodestats_record_quality(w.get(), NODESTATS_CONNECTION_QUALITY_EXCELLENT, 5.0f);
      nodestats_record_jitter(w.get(), "US", NODESTATS_DIRECTION_INCOMING,
                              NODESTATS_TRACK_SOURCE_SCREEN_SHARE_AUDIO,
                              NODESTATS_TRACK_KIND_AUDIO, 500);
    });
  }
  for (auto &t : pool)
    t.join();
  nodestats_record_quality(w.get(), static_cast<nodestats_connection_quality>(9), 1.0f);

  nodestats_exporter_t *raw = nullptr;
  ok(nodestats_exporter_open(w.get(), "cpp", "SERVER", &raw), "nodestats_exporter_open");
  Exporter e(raw);
  const std::string node = "node_id=\"cpp\",node_type=\"SERVER\"";
  const std::string stream = "{country=\"US\",direction=\"outgoing\"," + node +
                             ",source=\"CAMERA\",type=\"VIDEO\"}";
  const std::string text = prometheus(e.get());
  CHECK(has_line(text, "livekit_packet_loss_total{country=\"US\",direction=\"incoming\"," +
                           node + ",source=\"CAMERA\",type=\"VIDEO\"} 200000"));
  CHECK(has_line(text, "livekit_rtt_ms_count" + stream + " 200000"));
  CHECK(has_line(text, "livekit_rtt_ms_sum" + stream + " 8000000"));
  CHECK(has_line(text, "livekit_debug_ref_count{" + node + ",referrer=\"cpp\"} 4"));
  CHECK(has_line(text, "livekit_peer_connection_state{" + node +
                           ",state=\"connected\",transport=\"SUBSCRIBER\"} 4"));
  CHECK(has_line(text, "livekit_quality_rating_count{" + node + "} 4"));
  CHECK(has_line(text, "livekit_quality_rating_sum{" + node + "} 8"));
  CHECK(has_line(text, "livekit_jitter_us_count{country=\"US\",direction=\"incoming\"," +
                           node + ",source=\"SCREEN_SHARE_AUDIO\",type=\"AUDIO\"} 4"));

  // Bad arguments come back as statuses, the out-parameter untouched.
  nodestats_series_t *none = nullptr;
  const char *two[] = {"a", "b"};
  CHECK(nodestats_series_open(w.get(), "livekit_debug_ref_count", two, 2, &none) ==
        NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK(nodestats_series_open(w.get(), "no_such_family", two, 2, &none) ==
        NODESTATS_STATUS_UNKNOWN_FAMILY);
  CHECK(none == nullptr);
}

void test_threads_and_collector() {
  Writer w = open_writer(nullptr);
  constexpr int threads = 4;
  constexpr uint64_t per_thread = 50000;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&w, t] {
      const nodestats_direction dir =
          t % 2 ? NODESTATS_DIRECTION_OUTGOING : NODESTATS_DIRECTION_INCOMING;
      for (uint64_t i = 0; i < per_thread; i++)
        nodestats_record_packets(w.get(), dir, 1, 100, false);
      nodestats_track_published(w.get(), NODESTATS_TRACK_KIND_AUDIO);
    });
  }
  for (auto &t : pool)
    t.join();
  nodestats_room_started(w.get());
  nodestats_participant_added(w.get());
  nodestats_record_rtcp(w.get(), NODESTATS_DIRECTION_OUTGOING, 5, 1, 0);
  nodestats_record_packets(w.get(), static_cast<nodestats_direction>(42), 1, 1,
                           false);

  nodestats_node_stats ns{};
  ok(nodestats_read(w.get(), &ns), "nodestats_read");
  CHECK(ns.packets_in == threads / 2 * per_thread);
  CHECK(ns.packets_out == threads / 2 * per_thread);
  CHECK(ns.bytes_out == threads / 2 * per_thread * 100);
  CHECK(ns.num_tracks_in == threads);
  CHECK(ns.num_rooms == 1 && ns.num_clients == 1);
  CHECK(ns.nack_total == 5);

  nodestats_collector_options o;
  nodestats_collector_options_init(&o);
  o.system_probes = false;
  o.update_interval_ms = 500;
  o.rate_interval_count = 3;
  o.rate_intervals_ms[0] = 1000;
  o.rate_intervals_ms[1] = 5000;
  o.rate_intervals_ms[2] = 10000;
  nodestats_collector_t *raw = nullptr;
  ok(nodestats_collector_from(w.get(), &o, &raw), "nodestats_collector_from");
  Collector c(raw);

  std::vector<nodestats_node_stats_rate> rates(NODESTATS_MAX_RATE_INTERVALS);
  size_t n = 0;
  ok(nodestats_collector_update(c.get(), &ns, rates.data(), rates.size(), &n),
     "update");
  ok(nodestats_collector_update(c.get(), &ns, rates.data(), rates.size(), &n),
     "update");
  CHECK(n == 3);
  CHECK(ns.num_cpus == 0 && ns.memory_total == 0);
  const std::string doc = json(c.get());
  CHECK(doc.front() == '{' && doc.back() == '}');
  CHECK(doc.find("\"num_tracks_in\":4") != std::string::npos);
  CHECK(doc.find("\"segment_id\":\"" + std::string(ns.segment_id) + "\"") !=
        std::string::npos);
}

void test_errors_and_strings() {
  nodestats_t *raw = nullptr;
  CHECK(nodestats_open("", &raw) == NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK(raw == nullptr);
  CHECK(nodestats_open(nullptr, nullptr) == NODESTATS_STATUS_NULL_ARGUMENT);
  nodestats_collector_t *c = nullptr;
  CHECK(nodestats_collector_open("/nodestats-ffi-cpp-does-not-exist", nullptr,
                                 &c) == NODESTATS_STATUS_NOT_FOUND);
  CHECK(std::strcmp(nodestats_status_str(static_cast<nodestats_status>(1000)),
                    "unknown status") == 0);
  CHECK(std::string(nodestats_version()) == NODESTATS_VERSION);

  nodestats_options o;
  nodestats_options_init(&o);
  o.disposition = NODESTATS_DISPOSITION_CREATE;
  o.shards = 1;
  ok(nodestats_open_with(&o, &raw), "nodestats_open_with");
  Writer w(raw);
  uint32_t slot = 7;
  ok(nodestats_writer_slot(w.get(), &slot), "nodestats_writer_slot");
  CHECK(slot == 0);
}

} // namespace

int main() {
  test_threads_and_collector();
  std::puts("ok test_threads_and_collector");
  test_errors_and_strings();
  std::puts("ok test_errors_and_strings");
  test_series_and_exporter();
  std::puts("ok test_series_and_exporter");
  CHECK(same_code_in_c_and_cpp() == 0);
  std::puts("ok same_code_in_c_and_cpp");
  std::puts("4 passed, 0 failed");
  return 0;
}
