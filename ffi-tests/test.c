/*
 * C11 tests of the nodestats C API: every function, NULL and bad
 * arguments, damaged segment files, threads sharing a handle, and several
 * processes writing one named segment while the parent reads (one of them
 * killed with SIGKILL mid-run). Labeled series, LiveKit's labeled
 * recording calls and the Prometheus exporter are checked line by line in
 * the exporter's text, also across a fork.
 *
 * Built with -std=c11 -Wall -Wextra -Wpedantic -Werror, run under
 * ASan+UBSan and valgrind by tests/ffi.rs (see Makefile).
 */
#define _POSIX_C_SOURCE 200809L

#include "nodestats.h"
#include "same_code.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_STATUS(call, want)                                               \
  do {                                                                         \
    nodestats_status got_ = (call);                                            \
    if (got_ != (want)) {                                                      \
      fprintf(stderr, "%s:%d: %s returned %u (%s), want %u (%s)\n", __FILE__,  \
              __LINE__, #call, (unsigned)got_, nodestats_status_str(got_),     \
              (unsigned)(want), nodestats_status_str(want));                   \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_EQ_U64(a, b)                                                     \
  do {                                                                         \
    uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                           \
    if (a_ != b_) {                                                            \
      fprintf(stderr, "%s:%d: %s == %" PRIu64 ", want %s == %" PRIu64 "\n",    \
              __FILE__, __LINE__, #a, a_, #b, b_);                             \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

/* A scratch directory for segment files and the named segment of the
 * multi-process test, both removed at exit (also when a check fails). */
static char scratch[64];
static char shm_name[96];
static char shm_name2[96];

static void path_in_scratch(char *buf, size_t cap, const char *leaf) {
  int n = snprintf(buf, cap, "%s/%s", scratch, leaf);
  CHECK(n > 0 && (size_t)n < cap);
}

static void write_file(const char *path, const unsigned char *bytes,
                       size_t len) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  CHECK(fwrite(bytes, 1, len, f) == len);
  CHECK(fclose(f) == 0);
}

static nodestats_t *open_anonymous(void) {
  nodestats_t *s = NULL;
  CHECK_STATUS(nodestats_open(NULL, &s), NODESTATS_STATUS_OK);
  CHECK(s != NULL);
  return s;
}

static nodestats_node_stats read_stats(const nodestats_t *s) {
  nodestats_node_stats ns;
  CHECK_STATUS(nodestats_read(s, &ns), NODESTATS_STATUS_OK);
  return ns;
}

/* The exporter's whole text (free it), read with the size protocol: ask
 * with no buffer, then fill one of exactly the reported size. */
static char *exporter_text(const nodestats_exporter_t *e) {
  size_t len = 0;
  CHECK_STATUS(nodestats_exporter_text(e, NULL, 0, &len),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  const size_t need = len;
  CHECK(need > 1);
  char *buf = malloc(need);
  CHECK(buf != NULL);
  CHECK_STATUS(nodestats_exporter_text(e, buf, need, &len), NODESTATS_STATUS_OK);
  CHECK(len == need - 1 && strlen(buf) == len);
  return buf;
}

/* How many whole lines of `text` are exactly `line`. */
static int count_lines(const char *text, const char *line) {
  const size_t n = strlen(line);
  int count = 0;
  for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
    if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
      count++;
  return count;
}

/* How many lines of `text` start with `prefix`. */
static int count_prefixed(const char *text, const char *prefix) {
  const size_t n = strlen(prefix);
  int count = 0;
  for (const char *p = text; p != NULL && *p != '\0';) {
    if (strncmp(p, prefix, n) == 0)
      count++;
    p = strchr(p, '\n');
    if (p != NULL)
      p++;
  }
  return count;
}

#define CHECK_LINE(text, line)                                                 \
  do {                                                                         \
    if (count_lines((text), (line)) != 1) {                                    \
      fprintf(stderr, "%s:%d: want the line once:\n%s\nin:\n%s\n", __FILE__,  \
              __LINE__, (line), (text));                                       \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

/* Const labels of the exporters below, as they print (labels are sorted). */
#define NODE "node_id=\"n1\",node_type=\"SERVER\""

/* The scrape of livekit_rtt_ms{outgoing, MICROPHONE, AUDIO, DE} after
 * observations of 10, 60 and 20000 ms. */
static void check_rtt_10_60_20000(const char *text) {
#define RTT "livekit_rtt_ms_bucket{country=\"DE\",direction=\"outgoing\"," NODE \
            ",source=\"MICROPHONE\",type=\"AUDIO\","
  CHECK_LINE(text, RTT "le=\"50\"} 1");
  CHECK_LINE(text, RTT "le=\"100\"} 2");
  CHECK_LINE(text, RTT "le=\"5000\"} 2");
  CHECK_LINE(text, RTT "le=\"10000\"} 2");
  CHECK_LINE(text, RTT "le=\"+Inf\"} 3");
#undef RTT
  CHECK_LINE(text, "livekit_rtt_ms_sum{country=\"DE\",direction=\"outgoing\"," NODE
                   ",source=\"MICROPHONE\",type=\"AUDIO\"} 20070");
  CHECK_LINE(text, "livekit_rtt_ms_count{country=\"DE\",direction=\"outgoing\"," NODE
                   ",source=\"MICROPHONE\",type=\"AUDIO\"} 3");
}

static nodestats_exporter_t *open_exporter(const nodestats_t *s) {
  nodestats_exporter_t *e = NULL;
  CHECK_STATUS(nodestats_exporter_open(s, "n1", "SERVER", &e),
               NODESTATS_STATUS_OK);
  CHECK(e != NULL);
  return e;
}

static void test_version(void) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", NODESTATS_VERSION_MAJOR,
           NODESTATS_VERSION_MINOR, NODESTATS_VERSION_PATCH);
  CHECK(strcmp(want, NODESTATS_VERSION) == 0);
  CHECK(strcmp(nodestats_version(), NODESTATS_VERSION) == 0);
}

static void test_status_strings(void) {
  for (uint32_t v = NODESTATS_STATUS_OK; v <= NODESTATS_STATUS_UNKNOWN_FAMILY;
       v++) {
    const char *s = nodestats_status_str((nodestats_status)v);
    CHECK(s != NULL && *s != '\0');
    CHECK(strcmp(s, "unknown status") != 0);
    for (uint32_t w = 0; w < v; w++)
      CHECK(strcmp(s, nodestats_status_str((nodestats_status)w)) != 0);
  }
  CHECK(strcmp(nodestats_status_str(
                   (nodestats_status)(NODESTATS_STATUS_UNKNOWN_FAMILY + 1)),
               "unknown status") == 0);
  CHECK(strcmp(nodestats_status_str((nodestats_status)0xffffffffu),
               "unknown status") == 0);
  CHECK(strcmp(nodestats_status_str(NODESTATS_STATUS_OK), "ok") == 0);
}

static void test_null_arguments(void) {
  nodestats_t *const sentinel = (nodestats_t *)(uintptr_t)0x1;
  nodestats_t *s = sentinel;
  nodestats_options opts;
  nodestats_options_init(&opts);
  nodestats_collector_options copts;
  nodestats_collector_options_init(&copts);
  nodestats_node_stats ns;
  nodestats_node_stats_rate rates[2];
  size_t len = 0;
  char buf[8];

  CHECK_STATUS(nodestats_open(NULL, NULL), NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_open_with(NULL, &s), NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_open_with(&opts, NULL), NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK(s == sentinel); /* out untouched on error */
  CHECK_STATUS(nodestats_read(NULL, &ns), NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_writer_slot(NULL, &(uint32_t){0}),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_segment_unlink(NULL), NODESTATS_STATUS_NULL_ARGUMENT);

  nodestats_collector_t *c = (nodestats_collector_t *)(uintptr_t)0x1;
  CHECK_STATUS(nodestats_collector_open(NULL, &copts, &c),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_collector_open("/nodestats-x", &copts, NULL),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_collector_from(NULL, &copts, &c),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK(c == (nodestats_collector_t *)(uintptr_t)0x1);
  CHECK_STATUS(nodestats_collector_update(NULL, &ns, rates, 2, &len),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_collector_json(NULL, buf, sizeof buf, &len),
               NODESTATS_STATUS_NULL_ARGUMENT);

  /* NULL handles and option structs are no-ops where nothing can fail. */
  nodestats_close(NULL);
  nodestats_collector_close(NULL);
  nodestats_options_init(NULL);
  nodestats_collector_options_init(NULL);
  nodestats_record_packets(NULL, NODESTATS_DIRECTION_INCOMING, 1, 1, false);
  nodestats_record_packet(NULL, NODESTATS_DIRECTION_INCOMING, 1, false);
  nodestats_record_rtcp(NULL, NODESTATS_DIRECTION_OUTGOING, 1, 1, 1);
  nodestats_room_started(NULL);
  nodestats_track_published(NULL, NODESTATS_TRACK_KIND_AUDIO);
  nodestats_forward_latency(NULL, 1);

  /* With a real handle, the other pointers are still checked. */
  s = open_anonymous();
  CHECK_STATUS(nodestats_read(s, NULL), NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_writer_slot(s, NULL), NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_collector_from(s, NULL, NULL),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_collector_from(s, NULL, &c), NODESTATS_STATUS_OK);
  CHECK_STATUS(nodestats_collector_update(c, NULL, rates, 2, &len),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_collector_json(c, NULL, 8, &len),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_collector_json(c, buf, sizeof buf, NULL),
               NODESTATS_STATUS_NULL_ARGUMENT);
  nodestats_collector_close(c);
  nodestats_close(s);
}

/* Calls every recording function with known values and checks what
 * NodeStats reports. */
static void test_every_recording_function(void) {
  nodestats_t *s = open_anonymous();
  const nodestats_direction IN = NODESTATS_DIRECTION_INCOMING;
  const nodestats_direction OUT = NODESTATS_DIRECTION_OUTGOING;

  nodestats_record_packets(s, IN, 10, 1000, false);
  nodestats_record_packets(s, IN, 2, 200, true);
  nodestats_record_packets(s, OUT, 5, 500, false);
  nodestats_record_packets(s, OUT, 3, 300, true);
  nodestats_record_packet(s, IN, 100, false);
  nodestats_record_rtcp(s, IN, 4, 1, 1);
  nodestats_record_rtcp(s, OUT, 2, 0, 0);

  nodestats_participant_signal_connected(s, 3);
  nodestats_participant_join_failed(s, 1);
  nodestats_participant_join_validation_failed(s, 1);
  nodestats_participant_join_upgrade_failed(s, 1);
  nodestats_participant_join_write_initial_response_failed(s, 1);
  nodestats_participant_rtc_init(s, 2);
  nodestats_participant_rtc_connected(s, 4);
  nodestats_participant_rtc_active(s, 1, false);
  nodestats_participant_rtc_active(s, 2, true);
  nodestats_participant_rtc_canceled(s, 1, false);
  nodestats_participant_rtc_canceled(s, 1, true);
  nodestats_participant_rtc_success(s, 5, false);
  nodestats_participant_rtc_failure(s, 1, true);

  nodestats_track_publish_attempt(s, NODESTATS_TRACK_KIND_AUDIO);
  nodestats_track_publish_attempt(s, NODESTATS_TRACK_KIND_VIDEO);
  nodestats_track_publish_success(s, NODESTATS_TRACK_KIND_DATA);
  nodestats_track_publish_cancels(s, NODESTATS_TRACK_KIND_VIDEO, 3);
  nodestats_track_published(s, NODESTATS_TRACK_KIND_AUDIO);
  nodestats_track_published(s, NODESTATS_TRACK_KIND_AUDIO);
  nodestats_track_unpublished(s, NODESTATS_TRACK_KIND_AUDIO);
  nodestats_track_published(s, NODESTATS_TRACK_KIND_VIDEO);
  nodestats_track_subscribe_attempt(s);
  nodestats_track_subscribe_attempt(s);
  nodestats_track_subscribe_attempt(s);
  nodestats_track_subscribe_success(s, NODESTATS_TRACK_KIND_VIDEO);
  nodestats_track_subscribe_success(s, NODESTATS_TRACK_KIND_VIDEO);
  nodestats_track_unsubscribed(s, NODESTATS_TRACK_KIND_VIDEO);
  nodestats_track_subscribe_failure(s, true);
  nodestats_track_subscribe_failure(s, false);
  nodestats_track_subscribe_cancels(s, 2);

  nodestats_room_started(s);
  nodestats_room_started(s);
  nodestats_room_ended(s);
  nodestats_participant_added(s);
  nodestats_participant_added(s);
  nodestats_participant_added(s);
  nodestats_participant_removed(s);
  nodestats_connection_added(s, IN);
  nodestats_connection_added(s, OUT);
  nodestats_connection_removed(s, OUT);
  nodestats_forward_latency(s, 1500);
  nodestats_forward_jitter(s, 200);

  /* Enum values C made up are ignored, not undefined behaviour. */
  nodestats_record_packets(s, (nodestats_direction)7, 1000, 1000, false);
  nodestats_record_packet(s, (nodestats_direction)0xffffffffu, 1000, true);
  nodestats_record_rtcp(s, (nodestats_direction)2, 1000, 1000, 1000);
  nodestats_connection_added(s, (nodestats_direction)9);
  nodestats_track_published(s, (nodestats_track_kind)3);
  nodestats_track_subscribe_success(s, (nodestats_track_kind)0x80000000u);
  nodestats_track_publish_cancels(s, (nodestats_track_kind)99, 1000);

  nodestats_node_stats ns = read_stats(s);
  CHECK_EQ_U64(ns.packets_in, 13);
  CHECK_EQ_U64(ns.bytes_in, 1300);
  CHECK_EQ_U64(ns.packets_out, 8);
  CHECK_EQ_U64(ns.bytes_out, 800);
  CHECK_EQ_U64(ns.retransmit_packets_out, 3);
  CHECK_EQ_U64(ns.retransmit_bytes_out, 300);
  CHECK_EQ_U64(ns.nack_total, 6);
  CHECK_EQ_U64(ns.participant_signal_connected, 3);
  CHECK_EQ_U64(ns.participant_rtc_init, 2);
  CHECK_EQ_U64(ns.participant_rtc_connected, 4);
  CHECK_EQ_U64(ns.participant_rtc_active, 3);
  CHECK_EQ_U64(ns.participant_rtc_canceled, 2);
  CHECK_EQ_U64(ns.num_track_publish_attempts, 2);
  CHECK_EQ_U64(ns.num_track_publish_success, 1);
  CHECK_EQ_U64(ns.num_track_publish_cancels, 3);
  CHECK_EQ_U64(ns.num_tracks_in, 2);
  CHECK_EQ_U64(ns.num_track_subscribe_attempts, 3);
  CHECK_EQ_U64(ns.num_track_subscribe_success, 2);
  CHECK_EQ_U64(ns.num_tracks_out, 1);
  CHECK_EQ_U64(ns.num_track_subscribe_cancels, 3);
  CHECK_EQ_U64(ns.num_rooms, 1);
  CHECK_EQ_U64(ns.num_clients, 2);
  CHECK_EQ_U64(ns.forward_latency, 1500);
  CHECK_EQ_U64(ns.forward_jitter, 200);
  CHECK_EQ_U64(ns.live_writers, 1);
  /* nodestats_read reads no system probes. */
  CHECK_EQ_U64(ns.num_cpus, 0);
  CHECK_EQ_U64(ns.udp_in_errors, NODESTATS_UNAVAILABLE);
  CHECK(strlen(ns.segment_id) == NODESTATS_SEGMENT_ID_SIZE - 1);
  CHECK(strspn(ns.segment_id, "0123456789abcdef") == strlen(ns.segment_id));

  uint32_t slot = 99;
  CHECK_STATUS(nodestats_writer_slot(s, &slot), NODESTATS_STATUS_OK);
  CHECK(slot == 0);
  nodestats_close(s);
}

static void test_collector(void) {
  nodestats_t *s = open_anonymous();
  nodestats_record_packets(s, NODESTATS_DIRECTION_INCOMING, 7, 700, false);
  nodestats_room_started(s);

  nodestats_collector_options o;
  nodestats_collector_options_init(&o);
  CHECK(o.update_interval_ms == 2000);
  CHECK(o.rate_interval_count == 1 && o.rate_intervals_ms[0] == 10000);
  CHECK(o.system_probes);

  /* Bad configurations. */
  nodestats_collector_t *c = NULL;
  nodestats_collector_options bad = o;
  bad.update_interval_ms = 0;
  CHECK_STATUS(nodestats_collector_from(s, &bad, &c), NODESTATS_STATUS_CONFIG);
  bad = o;
  bad.rate_interval_count = 0;
  CHECK_STATUS(nodestats_collector_from(s, &bad, &c), NODESTATS_STATUS_CONFIG);
  bad = o;
  bad.rate_intervals_ms[0] = 0;
  CHECK_STATUS(nodestats_collector_from(s, &bad, &c), NODESTATS_STATUS_CONFIG);
  bad = o;
  bad.rate_interval_count = NODESTATS_MAX_RATE_INTERVALS + 1;
  CHECK_STATUS(nodestats_collector_from(s, &bad, &c),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK(c == NULL);

  o.update_interval_ms = 100;
  o.rate_interval_count = 2;
  o.rate_intervals_ms[0] = 100;
  /* Long enough that the window cannot be complete before the checks
     below, however slowly a loaded machine (or valgrind) runs them. */
  o.rate_intervals_ms[1] = 600000;
  o.cpu_count_override = 3.0;
  CHECK_STATUS(nodestats_collector_from(s, &o, &c), NODESTATS_STATUS_OK);

  nodestats_node_stats ns;
  nodestats_node_stats_rate rates[NODESTATS_MAX_RATE_INTERVALS];
  size_t n = 0;
  /* Too little room for the rates: nothing is updated. */
  CHECK_STATUS(nodestats_collector_update(c, &ns, rates, 1, &n),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  CHECK(n == 2);
  /* No rates wanted. */
  CHECK_STATUS(nodestats_collector_update(c, &ns, NULL, 0, &n),
               NODESTATS_STATUS_OK);
  CHECK(n == 0);
  CHECK_EQ_U64(ns.packets_in, 7);
  CHECK_EQ_U64(ns.num_cpus, 3);

  nodestats_record_packets(s, NODESTATS_DIRECTION_INCOMING, 3, 300, false);
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  CHECK_STATUS(nodestats_collector_update(c, &ns, rates, 8, NULL),
               NODESTATS_STATUS_OK);
  CHECK_STATUS(nodestats_collector_update(c, &ns, rates, 8, &n),
               NODESTATS_STATUS_OK);
  CHECK(n == 2);
  CHECK_EQ_U64(ns.packets_in, 10);
  CHECK_EQ_U64(ns.num_rooms, 1);
  CHECK(rates[0].interval_seconds == 0.1 && rates[1].interval_seconds == 600.0);
  CHECK(rates[1].window_seconds > 0.0 && !rates[1].complete);
  CHECK(rates[1].packets_in > 0.0);

  /* JSON: ask for the size, then fill an exact buffer. */
  size_t len = 0;
  CHECK_STATUS(nodestats_collector_json(c, NULL, 0, &len),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  size_t need = len;
  CHECK(need > 2);
  char *buf = malloc(need);
  CHECK(buf != NULL);
  memset(buf, 'x', need);
  CHECK_STATUS(nodestats_collector_json(c, buf, need - 1, &len),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  CHECK(len == need && buf[0] == 'x');
  CHECK_STATUS(nodestats_collector_json(c, buf, need, &len),
               NODESTATS_STATUS_OK);
  CHECK(len == need - 1 && strlen(buf) == len);
  CHECK(buf[0] == '{' && buf[len - 1] == '}');
  CHECK(strstr(buf, "\"packets_in\":10") != NULL);
  CHECK(strstr(buf, "\"num_rooms\":1") != NULL);
  CHECK(strstr(buf, "\"rates\":[{") != NULL);
  free(buf);

  /* The collector keeps the segment after the writer is closed; the
   * writer's gauges are gone, its counters stay. */
  nodestats_close(s);
  CHECK_STATUS(nodestats_collector_update(c, &ns, rates, 8, &n),
               NODESTATS_STATUS_OK);
  CHECK_EQ_U64(ns.packets_in, 10);
  CHECK_EQ_U64(ns.num_rooms, 0);
  nodestats_collector_close(c);

  /* A collector with the default options, JSON before any update. */
  s = open_anonymous();
  CHECK_STATUS(nodestats_collector_from(s, NULL, &c), NODESTATS_STATUS_OK);
  char small[4096];
  CHECK_STATUS(nodestats_collector_json(c, small, sizeof small, &len),
               NODESTATS_STATUS_OK);
  CHECK(strstr(small, "\"packets_in\":0") != NULL);
  nodestats_collector_close(c);
  nodestats_close(s);
}

static void test_open_with(void) {
  nodestats_options o;
  memset(&o, 0xff, sizeof o);
  nodestats_options_init(&o);
  CHECK(o.name == NULL);
  CHECK(o.disposition == NODESTATS_DISPOSITION_CREATE_OR_ATTACH);
  CHECK(o.mode == 0600 && o.shards == 0 && o.writer_slots == 128);
  CHECK(!o.allow_foreign_owner);
  CHECK(o.write_mode == NODESTATS_WRITE_MODE_AUTO);

  nodestats_t *s = NULL;
  CHECK_STATUS(nodestats_open_with(&o, &s), NODESTATS_STATUS_OK);
  nodestats_close(s);

  nodestats_options bad = o;
  bad.shards = 3;
  CHECK_STATUS(nodestats_open_with(&bad, &s), NODESTATS_STATUS_CONFIG);
  bad = o;
  bad.writer_slots = 0;
  CHECK_STATUS(nodestats_open_with(&bad, &s), NODESTATS_STATUS_CONFIG);
  bad = o;
  bad.disposition = (nodestats_disposition)9;
  CHECK_STATUS(nodestats_open_with(&bad, &s), NODESTATS_STATUS_INVALID_ARGUMENT);
  bad = o;
  bad.write_mode = (nodestats_write_mode)3;
  CHECK_STATUS(nodestats_open_with(&bad, &s), NODESTATS_STATUS_INVALID_ARGUMENT);
  bad = o;
  bad.write_mode = NODESTATS_WRITE_MODE_ATOMIC;
  CHECK_STATUS(nodestats_open_with(&bad, &s), NODESTATS_STATUS_OK);
  nodestats_record_packets(s, NODESTATS_DIRECTION_INCOMING, 2, 20, false);
  CHECK_EQ_U64(read_stats(s).packets_in, 2);
  nodestats_close(s);
  bad = o;
  bad.disposition = NODESTATS_DISPOSITION_ATTACH; /* attach needs a name */
  CHECK_STATUS(nodestats_open_with(&bad, &s), NODESTATS_STATUS_INVALID_ARGUMENT);
  bad = o;
  bad.name = "";
  CHECK_STATUS(nodestats_open_with(&bad, &s), NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(nodestats_open("", &s), NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(nodestats_open("/bad\xff\xfename", &s),
               NODESTATS_STATUS_INVALID_ARGUMENT);

  char path[128];
  path_in_scratch(path, sizeof path, "open-with.seg");
  o.name = path;
  o.disposition = NODESTATS_DISPOSITION_ATTACH;
  CHECK_STATUS(nodestats_open_with(&o, &s), NODESTATS_STATUS_NOT_FOUND);
  nodestats_collector_t *c = NULL;
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c),
               NODESTATS_STATUS_NOT_FOUND);
  CHECK_STATUS(nodestats_segment_unlink(path), NODESTATS_STATUS_NOT_FOUND);

  o.disposition = NODESTATS_DISPOSITION_CREATE;
  o.shards = 2;
  o.writer_slots = 1;
  o.mode = 0640;
  nodestats_t *first = NULL;
  CHECK_STATUS(nodestats_open_with(&o, &first), NODESTATS_STATUS_OK);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
  CHECK_STATUS(nodestats_open_with(&o, &s), NODESTATS_STATUS_ALREADY_EXISTS);

  /* One writer slot: a second writer is refused until the first closes. */
  o.disposition = NODESTATS_DISPOSITION_ATTACH;
  s = NULL;
  CHECK_STATUS(nodestats_open_with(&o, &s), NODESTATS_STATUS_NO_WRITER_SLOT);
  CHECK_STATUS(nodestats_open(path, &s), NODESTATS_STATUS_NO_WRITER_SLOT);
  CHECK(s == NULL);
  nodestats_record_packets(first, NODESTATS_DIRECTION_OUTGOING, 4, 40, false);
  nodestats_close(first);
  CHECK_STATUS(nodestats_open_with(&o, &s), NODESTATS_STATUS_OK);
  CHECK_EQ_U64(read_stats(s).packets_out, 4);

  /* A read-only collector on the file. */
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c), NODESTATS_STATUS_OK);
  nodestats_node_stats ns;
  CHECK_STATUS(nodestats_collector_update(c, &ns, NULL, 0, NULL),
               NODESTATS_STATUS_OK);
  CHECK_EQ_U64(ns.packets_out, 4);
  nodestats_collector_close(c);
  nodestats_close(s);
  CHECK_STATUS(nodestats_segment_unlink(path), NODESTATS_STATUS_OK);
}

/* The SFU restarts (its segment is removed and made anew) and an operator
   shrinks the file under a live collector: the C collector follows the
   name, and a shrunk file is a status, never a SIGBUS. */
static void test_collector_follows_the_segment(void) {
  char path[128];
  path_in_scratch(path, sizeof path, "follow.seg");
  nodestats_t *first = NULL;
  CHECK_STATUS(nodestats_open(path, &first), NODESTATS_STATUS_OK);
  nodestats_record_packets(first, NODESTATS_DIRECTION_INCOMING, 100, 1000, false);
  nodestats_collector_t *c = NULL;
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c), NODESTATS_STATUS_OK);
  nodestats_node_stats ns;
  CHECK_STATUS(nodestats_collector_update(c, &ns, NULL, 0, NULL), NODESTATS_STATUS_OK);
  CHECK_EQ_U64(ns.packets_in, 100);

  /* Restart: a new segment at the name. */
  nodestats_close(first);
  CHECK_STATUS(nodestats_segment_unlink(path), NODESTATS_STATUS_OK);
  nodestats_t *second = NULL;
  CHECK_STATUS(nodestats_open(path, &second), NODESTATS_STATUS_OK);
  nodestats_record_packets(second, NODESTATS_DIRECTION_INCOMING, 7, 70, false);
  CHECK_STATUS(nodestats_collector_update(c, &ns, NULL, 0, NULL), NODESTATS_STATUS_OK);
  CHECK_EQ_U64(ns.packets_in, 7);

  /* `truncate -s 4096` under the live collector. */
  CHECK(truncate(path, 4096) == 0);
  ns.packets_in = 12345;
  CHECK_STATUS(nodestats_collector_update(c, &ns, NULL, 0, NULL),
               NODESTATS_STATUS_SIZE_MISMATCH);
  CHECK_EQ_U64(ns.packets_in, 12345); /* out untouched on error */

  /* A valid segment back at the name: read again. */
  CHECK_STATUS(nodestats_segment_unlink(path), NODESTATS_STATUS_OK);
  nodestats_t *third = NULL;
  CHECK_STATUS(nodestats_open(path, &third), NODESTATS_STATUS_OK);
  nodestats_record_packets(third, NODESTATS_DIRECTION_INCOMING, 3, 30, false);
  CHECK_STATUS(nodestats_collector_update(c, &ns, NULL, 0, NULL), NODESTATS_STATUS_OK);
  CHECK_EQ_U64(ns.packets_in, 3);
  nodestats_collector_close(c);
  /* The writer whose file was shrunk must not record again (its mapping
     would fault); closing it is fine. */
  nodestats_close(second);
  nodestats_close(third);
  CHECK_STATUS(nodestats_segment_unlink(path), NODESTATS_STATUS_OK);
}

/* Damaged segment files give their status, never a crash. */
static void test_invalid_segments(void) {
  char path[128];
  nodestats_t *s = (nodestats_t *)(uintptr_t)0x1;
  nodestats_collector_t *c = (nodestats_collector_t *)(uintptr_t)0x1;
  unsigned char header[256];

  /* Garbage. */
  path_in_scratch(path, sizeof path, "garbage.seg");
  memset(header, 0xab, sizeof header);
  write_file(path, header, sizeof header);
  CHECK_STATUS(nodestats_open(path, &s), NODESTATS_STATUS_BAD_MAGIC);
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c),
               NODESTATS_STATUS_BAD_MAGIC);

  /* Shorter than a header, and empty. */
  path_in_scratch(path, sizeof path, "short.seg");
  write_file(path, (const unsigned char *)"NODESTAT\1", 10);
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c),
               NODESTATS_STATUS_TRUNCATED);
  CHECK_STATUS(nodestats_open(path, &s), NODESTATS_STATUS_TRUNCATED);
  path_in_scratch(path, sizeof path, "empty.seg");
  write_file(path, header, 0);
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c),
               NODESTATS_STATUS_TRUNCATED);

  /* The right magic, a future major version: word 1 = 99, init word
   * (31) = "READY\0\0\1". All words are little-endian. */
  memset(header, 0, sizeof header);
  memcpy(header, "NODESTAT", 8);
  header[8] = 99;
  memcpy(header + 31 * 8, "READY\0\0\1", 8);
  path_in_scratch(path, sizeof path, "version.seg");
  write_file(path, header, sizeof header);
  CHECK_STATUS(nodestats_open(path, &s), NODESTATS_STATUS_UNSUPPORTED_VERSION);
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c),
               NODESTATS_STATUS_UNSUPPORTED_VERSION);

  /* A creator that died before the init word. */
  memset(header + 31 * 8, 0, 8);
  header[8] = 1;
  path_in_scratch(path, sizeof path, "uninit.seg");
  write_file(path, header, sizeof header);
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c),
               NODESTATS_STATUS_NOT_INITIALIZED);

  /* A real segment whose file grew after creation. */
  path_in_scratch(path, sizeof path, "resized.seg");
  nodestats_t *w = NULL;
  CHECK_STATUS(nodestats_open(path, &w), NODESTATS_STATUS_OK);
  nodestats_close(w);
  struct stat st;
  CHECK(stat(path, &st) == 0);
  CHECK(truncate(path, st.st_size + 4096) == 0);
  CHECK_STATUS(nodestats_open(path, &s), NODESTATS_STATUS_SIZE_MISMATCH);
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c),
               NODESTATS_STATUS_SIZE_MISMATCH);

  /* Not a regular file: a directory, for readers and writers alike. */
  CHECK_STATUS(nodestats_collector_open(scratch, NULL, &c),
               NODESTATS_STATUS_NOT_REGULAR_FILE);
  CHECK_STATUS(nodestats_open(scratch, &s), NODESTATS_STATUS_NOT_REGULAR_FILE);

  CHECK(s == (nodestats_t *)(uintptr_t)0x1);
  CHECK(c == (nodestats_collector_t *)(uintptr_t)0x1);
}

enum { THREADS = 4, PER_THREAD = 100000 };

static void *record_incoming(void *arg) {
  nodestats_t *s = arg;
  for (int i = 0; i < PER_THREAD; i++)
    nodestats_record_packets(s, NODESTATS_DIRECTION_INCOMING, 1, 10, false);
  return NULL;
}

/* One handle shared by several threads. */
static void test_threads_share_a_handle(void) {
  nodestats_t *s = open_anonymous();
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    CHECK(pthread_create(&t[i], NULL, record_incoming, s) == 0);
  for (int i = 0; i < THREADS; i++)
    CHECK(pthread_join(t[i], NULL) == 0);
  nodestats_node_stats ns = read_stats(s);
  CHECK_EQ_U64(ns.packets_in, (uint64_t)THREADS * PER_THREAD);
  CHECK_EQ_U64(ns.bytes_in, (uint64_t)THREADS * PER_THREAD * 10);
  nodestats_close(s);
}

enum { CHILDREN = 4, CHILD_THREADS = 2, KILLED_PACKETS = 54321 };

/* A child process: its own handle, CHILD_THREADS threads recording. Exits
 * with 0 when every call succeeded. Never touches the parent's handle. */
static void child_writer(const char *name) {
  nodestats_t *s = NULL;
  if (nodestats_open(name, &s) != NODESTATS_STATUS_OK)
    _exit(10);
  nodestats_room_started(s);
  nodestats_participant_added(s);
  pthread_t t[CHILD_THREADS];
  for (int i = 0; i < CHILD_THREADS; i++)
    if (pthread_create(&t[i], NULL, record_incoming, s) != 0)
      _exit(11);
  for (int i = 0; i < CHILD_THREADS; i++)
    if (pthread_join(t[i], NULL) != 0)
      _exit(12);
  nodestats_record_rtcp(s, NODESTATS_DIRECTION_INCOMING, 1, 0, 0);
  nodestats_close(s);
  _exit(0);
}

/* A child that records KILLED_PACKETS incoming packets one by one, tells
 * the parent through `ack`, then records outgoing packets until killed. */
static void child_killed(const char *name, int ack) {
  nodestats_t *s = NULL;
  if (nodestats_open(name, &s) != NODESTATS_STATUS_OK)
    _exit(20);
  nodestats_room_started(s);
  nodestats_room_started(s);
  nodestats_track_published(s, NODESTATS_TRACK_KIND_VIDEO);
  for (int i = 0; i < KILLED_PACKETS; i++)
    nodestats_record_packet(s, NODESTATS_DIRECTION_INCOMING, 3, false);
  if (write(ack, "k", 1) != 1)
    _exit(21);
  for (;;)
    nodestats_record_packets(s, NODESTATS_DIRECTION_OUTGOING, 1, 1, false);
}

static void test_multiprocess(void) {
  char *name = shm_name;
  snprintf(shm_name, sizeof shm_name, "/nodestats-ffi-test-%ld-%ld",
           (long)getpid(), (long)time(NULL));
  nodestats_options o;
  nodestats_options_init(&o);
  o.name = name;
  o.disposition = NODESTATS_DISPOSITION_CREATE;
  nodestats_t *parent = NULL;
  CHECK_STATUS(nodestats_open_with(&o, &parent), NODESTATS_STATUS_OK);
  nodestats_room_started(parent);

  fflush(NULL);
  pid_t kids[CHILDREN];
  for (int i = 0; i < CHILDREN; i++) {
    kids[i] = fork();
    CHECK(kids[i] >= 0);
    if (kids[i] == 0)
      child_writer(name);
  }
  for (int i = 0; i < CHILDREN; i++) {
    int st = 0;
    CHECK(waitpid(kids[i], &st, 0) == kids[i]);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "child %d: wait status %#x\n", i, st);
      exit(1);
    }
  }
  const uint64_t written = (uint64_t)CHILDREN * CHILD_THREADS * PER_THREAD;
  nodestats_node_stats ns = read_stats(parent);
  CHECK_EQ_U64(ns.packets_in, written);
  CHECK_EQ_U64(ns.bytes_in, written * 10);
  CHECK_EQ_U64(ns.nack_total, CHILDREN);
  CHECK_EQ_U64(ns.num_rooms, 1);   /* the children closed: only ours */
  CHECK_EQ_U64(ns.num_clients, 0);
  CHECK_EQ_U64(ns.live_writers, 1);

  /* A child killed mid-run keeps every packet it acknowledged, and its
   * gauges vanish with it. */
  int pipefd[2];
  CHECK(pipe(pipefd) == 0);
  fflush(NULL);
  pid_t victim = fork();
  CHECK(victim >= 0);
  if (victim == 0) {
    close(pipefd[0]);
    child_killed(name, pipefd[1]);
  }
  close(pipefd[1]);
  char byte = 0;
  ssize_t got;
  do {
    got = read(pipefd[0], &byte, 1);
  } while (got < 0 && errno == EINTR);
  CHECK(got == 1 && byte == 'k');
  close(pipefd[0]);

  ns = read_stats(parent);
  CHECK_EQ_U64(ns.packets_in, written + KILLED_PACKETS);
  CHECK_EQ_U64(ns.bytes_in, written * 10 + KILLED_PACKETS * 3);
  CHECK_EQ_U64(ns.num_rooms, 3);
  CHECK_EQ_U64(ns.num_tracks_in, 1);
  CHECK_EQ_U64(ns.live_writers, 2);

  /* Kill it mid-run: once it is recording after the ack. */
  while (read_stats(parent).packets_out == 0)
    sched_yield();
  CHECK(kill(victim, SIGKILL) == 0);
  int st = 0;
  CHECK(waitpid(victim, &st, 0) == victim);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

  ns = read_stats(parent);
  CHECK_EQ_U64(ns.packets_in, written + KILLED_PACKETS);
  CHECK_EQ_U64(ns.bytes_in, written * 10 + KILLED_PACKETS * 3);
  CHECK(ns.packets_out > 0); /* recorded after the ack, until the kill */
  /* A kill between record_packets' two adds (packets, then bytes) can
   * leave the last call's bytes out: at most one call's worth. */
  CHECK(ns.bytes_out == ns.packets_out || ns.bytes_out + 1 == ns.packets_out);
  CHECK_EQ_U64(ns.num_rooms, 1);
  CHECK_EQ_U64(ns.num_tracks_in, 0);
  CHECK_EQ_U64(ns.live_writers, 1);

  /* A read-only collector in this process sees the same. */
  nodestats_collector_t *c = NULL;
  CHECK_STATUS(nodestats_collector_open(name, NULL, &c), NODESTATS_STATUS_OK);
  nodestats_node_stats cs;
  CHECK_STATUS(nodestats_collector_update(c, &cs, NULL, 0, NULL),
               NODESTATS_STATUS_OK);
  CHECK_EQ_U64(cs.packets_in, ns.packets_in);
  CHECK_EQ_U64(cs.num_rooms, 1);
  CHECK(strcmp(cs.segment_id, ns.segment_id) == 0);
  nodestats_collector_close(c);

  CHECK_STATUS(nodestats_segment_unlink(name), NODESTATS_STATUS_OK);
  CHECK_STATUS(nodestats_collector_open(name, NULL, &c),
               NODESTATS_STATUS_NOT_FOUND);
  nodestats_close(parent);
}

static void test_series_handles(void) {
  nodestats_t *s = open_anonymous();
  nodestats_series_t *const sentinel = (nodestats_series_t *)(uintptr_t)0x1;
  nodestats_series_t *h = sentinel;
  const char *const loss[5] = {"incoming", "CAMERA", "VIDEO", "US", "extra"};
  const char *const LOSS = "livekit_packet_loss_total";

  /* NULL arguments. */
  CHECK_STATUS(nodestats_series_open(NULL, LOSS, loss, 4, &h),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_series_open(s, NULL, loss, 4, &h),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_series_open(s, LOSS, loss, 4, NULL),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_series_open(s, LOSS, NULL, 4, &h),
               NODESTATS_STATUS_NULL_ARGUMENT);
  const char *const with_null[4] = {"incoming", NULL, "VIDEO", "US"};
  CHECK_STATUS(nodestats_series_open(s, LOSS, with_null, 4, &h),
               NODESTATS_STATUS_NULL_ARGUMENT);
  /* Unknown or non-UTF-8 family names. */
  CHECK_STATUS(nodestats_series_open(s, "livekit_packet_loss", loss, 4, &h),
               NODESTATS_STATUS_UNKNOWN_FAMILY);
  CHECK_STATUS(nodestats_series_open(s, "", loss, 4, &h),
               NODESTATS_STATUS_UNKNOWN_FAMILY);
  CHECK_STATUS(nodestats_series_open(s, "livekit_rtt_ms\xff", loss, 4, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  /* Wrong label counts. */
  CHECK_STATUS(nodestats_series_open(s, LOSS, loss, 3, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(nodestats_series_open(s, LOSS, loss, 5, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(nodestats_series_open(s, LOSS, NULL, 0, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(nodestats_series_open(s, "livekit_forward_latency_ns", loss, 1, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  /* A label that is not UTF-8 (a truncated sequence, a stray byte). */
  const char *const bad_utf8[4] = {"incoming", "CAMERA", "VIDEO", "\xc3("};
  CHECK_STATUS(nodestats_series_open(s, LOSS, bad_utf8, 4, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  const char *const bad_byte[4] = {"incoming", "CAMERA", "\x80", "US"};
  CHECK_STATUS(nodestats_series_open(s, LOSS, bad_byte, 4, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  /* Series the fixed counters and gauges already export. */
  CHECK_STATUS(nodestats_series_open(s, "livekit_room_total", NULL, 0, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  const char *const fixed_packets[3] = {"incoming", "initial", ""};
  CHECK_STATUS(nodestats_series_open(s, "livekit_packet_total", fixed_packets, 3, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  const char *const fixed_failure[2] = {"failure", ""};
  CHECK_STATUS(nodestats_series_open(s, "livekit_track_subscribe_counter",
                                     fixed_failure, 2, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK(h == sentinel); /* out untouched on error */

  /* NULL handles are no-ops. */
  nodestats_series_inc_by(NULL, 1);
  nodestats_series_add(NULL, 1);
  nodestats_series_observe(NULL, 1.0);
  nodestats_series_close(NULL);

  /* A counter, through two handles on the same series: 41 + 1. Calls of
   * another kind are ignored. */
  nodestats_series_t *counter = NULL, *again = NULL;
  CHECK_STATUS(nodestats_series_open(s, LOSS, loss, 4, &counter),
               NODESTATS_STATUS_OK);
  CHECK_STATUS(nodestats_series_open(s, LOSS, loss, 4, &again),
               NODESTATS_STATUS_OK);
  nodestats_series_inc_by(counter, 41);
  nodestats_series_inc_by(again, 1);
  nodestats_series_observe(counter, 5.0);
  nodestats_series_add(counter, 100);
  nodestats_series_close(again);

  /* A gauge: +5 -2. */
  nodestats_series_t *gauge = NULL;
  const char *const stream[3] = {"server", "Svc", "Stream"};
  CHECK_STATUS(nodestats_series_open(s, "livekit_psrpc_stream_count", stream,
                                     3, &gauge),
               NODESTATS_STATUS_OK);
  nodestats_series_add(gauge, 5);
  nodestats_series_add(gauge, -2);
  nodestats_series_inc_by(gauge, 100);
  nodestats_series_observe(gauge, 100.0);

  /* A histogram: 10 and 60 and 20000 ms. */
  nodestats_series_t *rtt = NULL;
  const char *const rtt_labels[4] = {"outgoing", "MICROPHONE", "AUDIO", "DE"};
  CHECK_STATUS(nodestats_series_open(s, "livekit_rtt_ms", rtt_labels, 4, &rtt),
               NODESTATS_STATUS_OK);
  nodestats_series_observe(rtt, 10.0);
  nodestats_series_observe(rtt, 60.0);
  nodestats_series_observe(rtt, 20000.0);
  nodestats_series_inc_by(rtt, 100);
  nodestats_series_add(rtt, 100);

  /* A family without labels: labels may be NULL. */
  nodestats_series_t *fwd = NULL;
  CHECK_STATUS(nodestats_series_open(s, "livekit_forward_latency_ns", NULL, 0, &fwd),
               NODESTATS_STATUS_OK);
  nodestats_series_observe(fwd, 1500.0);

  /* Exporter arguments. */
  nodestats_exporter_t *e = (nodestats_exporter_t *)(uintptr_t)0x1;
  CHECK_STATUS(nodestats_exporter_open(NULL, "n1", "SERVER", &e),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_open(s, NULL, "SERVER", &e),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_open(s, "n1", NULL, &e),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_open(s, "n1", "SERVER", NULL),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_open(s, "n\xff", "SERVER", &e),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK(e == (nodestats_exporter_t *)(uintptr_t)0x1);
  nodestats_exporter_close(NULL);
  e = open_exporter(s);
  size_t len = 0;
  char small[8];
  CHECK_STATUS(nodestats_exporter_text(NULL, small, sizeof small, &len),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_text(e, NULL, 8, &len),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_text(e, small, sizeof small, NULL),
               NODESTATS_STATUS_NULL_ARGUMENT);

  /* Too small a buffer: untouched, the size reported; then that size. */
  len = 0;
  memset(small, 'x', sizeof small);
  CHECK_STATUS(nodestats_exporter_text(e, small, sizeof small, &len),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  CHECK(len > sizeof small && small[0] == 'x');
  const size_t need = len;
  char *text = malloc(need);
  CHECK(text != NULL);
  memset(text, 'x', need);
  CHECK_STATUS(nodestats_exporter_text(e, text, need - 1, &len),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  CHECK(len == need && text[0] == 'x');
  CHECK_STATUS(nodestats_exporter_text(e, text, need, &len), NODESTATS_STATUS_OK);
  CHECK(len == need - 1 && strlen(text) == len && text[len - 1] == '\n');

  CHECK_LINE(text, "livekit_packet_loss_total{country=\"US\",direction=\"incoming\"," NODE
                   ",source=\"CAMERA\",type=\"VIDEO\"} 42");
  CHECK_LINE(text, "livekit_psrpc_stream_count{method=\"Stream\"," NODE
                   ",role=\"server\",service=\"Svc\"} 3");
  check_rtt_10_60_20000(text);
  CHECK_LINE(text, "livekit_forward_latency_ns_count{" NODE "} 1");
  CHECK_LINE(text, "livekit_forward_latency_ns_sum{" NODE "} 1500");
  /* Three new entries: the one series of a family without labels is the
   * family's overflow entry, written at creation. */
  CHECK_LINE(text, "nodestats_series_registered{" NODE "} 3");
  /* Labeled media series count in NodeStats too. */
  CHECK_EQ_U64(read_stats(s).packets_in, 0);
  free(text);

  /* Handles keep the segment: they outlive the writer. */
  nodestats_close(s);
  nodestats_series_inc_by(counter, 8);
  text = exporter_text(e);
  CHECK_LINE(text, "livekit_packet_loss_total{country=\"US\",direction=\"incoming\"," NODE
                   ",source=\"CAMERA\",type=\"VIDEO\"} 50");
  /* A gauge handle's values are its writer's: it keeps the writer's slot
     (and so the gauge) alive until it is closed too. */
  CHECK_LINE(text, "nodestats_live_writers{" NODE "} 1");
  free(text);
  nodestats_series_close(gauge);
  text = exporter_text(e);
  CHECK_LINE(text, "nodestats_live_writers{" NODE "} 0");
  free(text);
  nodestats_series_close(counter);
  nodestats_series_close(rtt);
  nodestats_series_close(fwd);
  nodestats_exporter_close(e);
}

/* Reads a protobuf varint at *p (before end) into *v; false if cut short. */
static bool read_varint(const unsigned char **p, const unsigned char *end, uint64_t *v) {
  *v = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
    const unsigned char b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

/* Every format through nodestats_exporter_write: the same size protocol as
 * the text, OpenMetrics' counters and `# EOF`, the protobuf framing, content
 * types, and the choice from an Accept header. */
static void test_exporter_formats(void) {
  CHECK(NODESTATS_HAS_EXPORTER_WRITE == 1);
  nodestats_t *s = open_anonymous();
  nodestats_record_packets(s, NODESTATS_DIRECTION_INCOMING, 5, 6000, false);
  nodestats_exporter_t *e = open_exporter(s);

  size_t len = 0;
  CHECK_STATUS(nodestats_exporter_write(e, NODESTATS_FORMAT_OPENMETRICS, NULL, 0, &len),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  const size_t need = len;
  char *om = malloc(need);
  CHECK(om != NULL);
  memset(om, 'x', need);
  CHECK_STATUS(nodestats_exporter_write(e, NODESTATS_FORMAT_OPENMETRICS, om, need - 1, &len),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  CHECK(len == need && om[0] == 'x');
  CHECK_STATUS(nodestats_exporter_write(e, NODESTATS_FORMAT_OPENMETRICS, om, need, &len),
               NODESTATS_STATUS_OK);
  CHECK(len == need - 1 && strlen(om) == len);
  CHECK(len > 6 && strcmp(om + len - 6, "# EOF\n") == 0);
  CHECK_LINE(om, "# TYPE livekit_packet counter");
  CHECK_LINE(om, "livekit_packet_total{country=\"\",direction=\"incoming\"," NODE
                 ",transmission=\"initial\"} 5");
  /* LiveKit's counter without `_total` keeps its name, typed unknown. */
  CHECK_LINE(om, "# TYPE livekit_packet_bytes unknown");
  CHECK_LINE(om, "livekit_packet_bytes{country=\"\",direction=\"incoming\"," NODE
                 ",transmission=\"initial\"} 6000");
  free(om);

  /* Text through the same call equals nodestats_exporter_text. */
  char *text = exporter_text(e);
  len = 0;
  CHECK_STATUS(nodestats_exporter_write(e, NODESTATS_FORMAT_TEXT, NULL, 0, &len),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  char *again = malloc(len);
  CHECK(again != NULL);
  CHECK_STATUS(nodestats_exporter_write(e, NODESTATS_FORMAT_TEXT, again, len, &len),
               NODESTATS_STATUS_OK);
  CHECK(strcmp(text, again) == 0 && strstr(text, "# EOF") == NULL);
  free(again);
  free(text);

  /* Protobuf: length-delimited MetricFamily messages (a varint length,
   * then the message), the first one livekit_packet_total: field 1 (name,
   * tag 0x0a) first. Binary, so the length is *len, not strlen. */
  len = 0;
  CHECK_STATUS(nodestats_exporter_write(e, NODESTATS_FORMAT_PROTOBUF, NULL, 0, &len),
               NODESTATS_STATUS_BUFFER_TOO_SMALL);
  unsigned char *pb = malloc(len);
  CHECK(pb != NULL);
  const size_t pb_cap = len;
  CHECK_STATUS(nodestats_exporter_write(e, NODESTATS_FORMAT_PROTOBUF, (char *)pb, pb_cap, &len),
               NODESTATS_STATUS_OK);
  CHECK(len == pb_cap - 1 && pb[len] == 0);
  const unsigned char *at = pb, *end = pb + len;
  uint64_t msg = 0, name_len = 0;
  CHECK(read_varint(&at, end, &msg) && msg <= (uint64_t)(end - at));
  const unsigned char *next = at + msg;
  CHECK(*at++ == 0x0a);
  CHECK(read_varint(&at, next, &name_len));
  CHECK(name_len == strlen("livekit_packet_total") &&
        memcmp(at, "livekit_packet_total", name_len) == 0);
  /* The messages tile the body exactly. */
  size_t families = 1;
  for (at = next; at < end; at += msg, families++) {
    CHECK(read_varint(&at, end, &msg) && msg > 0 && msg <= (uint64_t)(end - at));
  }
  CHECK(at == end && families > 10);
  free(pb);

  /* Unknown formats and bad arguments. */
  char small[8];
  CHECK_STATUS(nodestats_exporter_write(e, (nodestats_format)77, small, sizeof small, &len),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_write(NULL, NODESTATS_FORMAT_TEXT, small, sizeof small, &len),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_write(e, NODESTATS_FORMAT_TEXT, NULL, 8, &len),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_write(e, NODESTATS_FORMAT_TEXT, small, sizeof small, NULL),
               NODESTATS_STATUS_NULL_ARGUMENT);

  CHECK(strcmp(nodestats_format_content_type(NODESTATS_FORMAT_TEXT),
               "text/plain; version=0.0.4; charset=utf-8") == 0);
  CHECK(strcmp(nodestats_format_content_type(NODESTATS_FORMAT_OPENMETRICS),
               "application/openmetrics-text; version=1.0.0; charset=utf-8") == 0);
  CHECK(strcmp(nodestats_format_content_type(NODESTATS_FORMAT_PROTOBUF),
               "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
               "encoding=delimited") == 0);
  CHECK(nodestats_format_content_type((nodestats_format)77) == NULL);

  nodestats_format f = 77;
  CHECK_STATUS(nodestats_format_negotiate(
                   "application/openmetrics-text;version=1.0.0,"
                   "application/openmetrics-text;version=0.0.1;q=0.75,"
                   "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                   &f),
               NODESTATS_STATUS_OK);
  CHECK(f == NODESTATS_FORMAT_OPENMETRICS);
  /* Prometheus with native histograms enabled asks for protobuf first. */
  CHECK_STATUS(nodestats_format_negotiate(
                   "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                   "encoding=delimited;q=0.6,"
                   "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
                   "text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
                   &f),
               NODESTATS_STATUS_OK);
  CHECK(f == NODESTATS_FORMAT_PROTOBUF);
  CHECK_STATUS(nodestats_format_negotiate(NULL, &f), NODESTATS_STATUS_OK);
  CHECK(f == NODESTATS_FORMAT_TEXT);
  f = 77;
  CHECK_STATUS(nodestats_format_negotiate("text/plain, application/openmetrics-text", &f),
               NODESTATS_STATUS_OK);
  CHECK(f == NODESTATS_FORMAT_TEXT);
  f = 77;
  CHECK_STATUS(nodestats_format_negotiate("application/openmetrics-text", NULL),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_format_negotiate("text/\xff", &f), NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK(f == 77);

  nodestats_exporter_close(e);
  nodestats_close(s);
}

/* Every labeled recording call, and what the exporter prints for it. */
static void test_labeled_recording(void) {
  nodestats_t *s = open_anonymous();
  const nodestats_direction IN = NODESTATS_DIRECTION_INCOMING;
  const nodestats_direction OUT = NODESTATS_DIRECTION_OUTGOING;
  const nodestats_track_kind VIDEO = NODESTATS_TRACK_KIND_VIDEO;
  const nodestats_track_kind AUDIO = NODESTATS_TRACK_KIND_AUDIO;

  nodestats_record_signal_request_success(s);
  nodestats_record_signal_request_success(s);
  nodestats_record_signal_request_failure(s);
  nodestats_record_signal_response_success(s);
  nodestats_record_signal_response_failure(s);
  nodestats_record_service_operation_success(s, "participant_join");
  nodestats_record_service_operation_error(s, "offer", "send_response");
  nodestats_record_twirp_request_status(s, "RoomService", "ListRooms", "200", "");
  nodestats_record_twirp_request_latency(s, "RoomService", "ListRooms", 1500, "200");
  nodestats_record_packets_country(s, "US", IN, 3, 300, false);
  nodestats_record_packets_country(s, "US", OUT, 1, 50, true);
  nodestats_record_packets_country(s, "", IN, 2, 200, false);
  nodestats_record_rtcp_country(s, "US", OUT, 1, 2, 3);
  nodestats_record_rtcp_country(s, "", IN, 4, 0, 0);
  nodestats_record_packet_loss(s, "US", IN, NODESTATS_TRACK_SOURCE_CAMERA, VIDEO, 5, 100);
  nodestats_record_packet_out_of_order(s, "US", IN, NODESTATS_TRACK_SOURCE_CAMERA,
                                       VIDEO, 2, 50);
  nodestats_record_jitter(s, "US", IN, NODESTATS_TRACK_SOURCE_MICROPHONE, AUDIO, 2000);
  nodestats_record_rtt(s, "US", IN, NODESTATS_TRACK_SOURCE_CAMERA, VIDEO, 60);
  nodestats_record_rtt(s, "US", IN, NODESTATS_TRACK_SOURCE_CAMERA, VIDEO, 60);
  nodestats_record_rtt(s, "US", IN, NODESTATS_TRACK_SOURCE_CAMERA, VIDEO, 600);
  nodestats_record_forward_latency_sample(s, 1000);
  nodestats_room_started(s);
  nodestats_room_started(s);
  nodestats_room_started(s);
  nodestats_room_ended_after(s, 90.5);
  nodestats_room_ended_after(s, -1.0);
  nodestats_room_ended_after(s, NAN);
  nodestats_track_subscribe_failure_error(s, "not found", false);
  nodestats_track_subscribe_failure_error(s, "", true);
  nodestats_record_session_join_latency(s, 15, 250000);
  nodestats_record_session_start_time(s, 16, true, 1000000);
  nodestats_record_session_duration(s, -1, 60000000);
  nodestats_record_publish_time(s, "US", NODESTATS_TRACK_SOURCE_CAMERA, VIDEO, 120000,
                                "JS", "STANDARD");
  nodestats_record_subscribe_time(s, "US", NODESTATS_TRACK_SOURCE_MICROPHONE, AUDIO,
                                  80000, "SWIFT", "AGENT", 3);
  nodestats_record_subscribe_stream_start_time(s, "US", NODESTATS_TRACK_SOURCE_SCREEN_SHARE,
                                               VIDEO, 40000, "GO", "STANDARD");
  nodestats_record_peer_connection_state(s, "PUBLISHER", "connected");
  nodestats_record_quality(s, NODESTATS_CONNECTION_QUALITY_GOOD, 4.5f);
  nodestats_record_quality(s, NODESTATS_CONNECTION_QUALITY_LOST, 1.0f);
  nodestats_record_data_packet_stream(s, "text", "text/plain", 3, 1024);
  nodestats_record_data_packet_stream(s, "bytes", "image/png", 2, NODESTATS_UNAVAILABLE);
  nodestats_add_ref(s, "room", 3);
  nodestats_add_ref(s, "room", -1);
  nodestats_webhook_dispatch_success(s);
  nodestats_webhook_dispatch_failure(s);
  nodestats_webhook_dispatch_drop(s, "overflow");
  nodestats_webhook_queue_length(s, 7);
  nodestats_psrpc_request_time(s, "client", "rpc", "Svc", "Call", 2500);
  nodestats_psrpc_stream_send_time(s, "server", "Svc", "Stream", 500);
  nodestats_psrpc_stream_received(s, "server", "Svc", "Stream");
  nodestats_psrpc_stream_opened(s, "server", "Svc", "Stream");
  nodestats_psrpc_stream_opened(s, "server", "Svc", "Stream");
  nodestats_psrpc_stream_closed(s, "server", "Svc", "Stream");
  nodestats_psrpc_error(s, "client", "rpc", "Svc", "Call", "unavailable");
  nodestats_psrpc_bytes(s, "client", "rpc", "Svc", "Call", "tx", 4096);
  nodestats_psrpc_request_received(s, "Svc", "Call");
  nodestats_psrpc_request_expired(s, "Svc", "Call");
  nodestats_psrpc_claim_wait_time(s, "Svc", "Call", "claimed", 3000);

  /* No-ops: NULL handles, NULL or non-UTF-8 strings, unknown enums. */
  nodestats_record_signal_request_success(NULL);
  nodestats_record_rtt(NULL, "US", IN, NODESTATS_TRACK_SOURCE_CAMERA, VIDEO, 60);
  nodestats_psrpc_error(NULL, "client", "rpc", "Svc", "Call", "x");
  nodestats_room_ended_after(NULL, 1.0);
  nodestats_record_service_operation_success(s, NULL);
  nodestats_record_service_operation_success(s, "bad\xff");
  nodestats_record_service_operation_error(s, "offer", NULL);
  nodestats_psrpc_error(s, "client", "rpc", "Svc", "Call", "\xc3(");
  nodestats_record_packets_country(s, NULL, IN, 1000, 1000, false);
  nodestats_record_packets_country(s, "US", (nodestats_direction)7, 1000, 1000, false);
  nodestats_record_rtt(s, "US", IN, (nodestats_track_source)5, VIDEO, 60);
  nodestats_record_rtt(s, "US", IN, NODESTATS_TRACK_SOURCE_CAMERA,
                       (nodestats_track_kind)3, 60);
  nodestats_record_rtt(s, "\x80", IN, NODESTATS_TRACK_SOURCE_CAMERA, VIDEO, 60);
  nodestats_record_publish_time(s, "US", (nodestats_track_source)0xffffffffu, VIDEO, 1,
                                "JS", "STANDARD");
  nodestats_record_publish_time(s, "US", NODESTATS_TRACK_SOURCE_CAMERA, VIDEO, 1, "JS",
                                NULL);
  nodestats_record_quality(s, (nodestats_connection_quality)4, 1.0f);
  nodestats_record_data_packet_stream(s, NULL, "text/plain", 1, 1);
  nodestats_add_ref(s, NULL, 100);
  nodestats_webhook_dispatch_drop(s, NULL);
  nodestats_track_subscribe_failure_error(s, NULL, true);

  /* NodeStats counts the labeled media series and the fixed path alike. */
  nodestats_node_stats ns = read_stats(s);
  CHECK_EQ_U64(ns.packets_in, 5);
  CHECK_EQ_U64(ns.bytes_in, 500);
  CHECK_EQ_U64(ns.packets_out, 1);
  CHECK_EQ_U64(ns.retransmit_packets_out, 1);
  CHECK_EQ_U64(ns.nack_total, 5);
  CHECK_EQ_U64(ns.num_rooms, 0);
  CHECK_EQ_U64(ns.num_track_subscribe_cancels, 1);

  nodestats_exporter_t *e = open_exporter(s);
  char *t = exporter_text(e);
  CHECK_LINE(t, "livekit_node_messages{direction=\"request\"," NODE
                ",status=\"success\",type=\"signal\"} 2");
  CHECK_LINE(t, "livekit_node_messages{direction=\"request\"," NODE
                ",status=\"failure\",type=\"signal\"} 1");
  CHECK_LINE(t, "livekit_node_messages{direction=\"response\"," NODE
                ",status=\"success\",type=\"signal\"} 1");
  CHECK_LINE(t, "livekit_node_messages{direction=\"response\"," NODE
                ",status=\"failure\",type=\"signal\"} 1");
  CHECK(count_prefixed(t, "livekit_node_service_operation{") == 2);
  CHECK_LINE(t, "livekit_node_service_operation{error_type=\"\"," NODE
                ",status=\"success\",type=\"participant_join\"} 1");
  CHECK_LINE(t, "livekit_node_service_operation{error_type=\"send_response\"," NODE
                ",status=\"error\",type=\"offer\"} 1");
  CHECK_LINE(t, "livekit_node_twirp_request_status{code=\"\",method=\"ListRooms\"," NODE
                ",service=\"RoomService\",status=\"200\"} 1");
  CHECK_LINE(t, "livekit_node_twirp_request_latency_ms_sum{method=\"ListRooms\"," NODE
                ",service=\"RoomService\",status=\"200\"} 1.5");
  CHECK_LINE(t, "livekit_packet_total{country=\"US\",direction=\"incoming\"," NODE
                ",transmission=\"initial\"} 3");
  CHECK_LINE(t, "livekit_packet_bytes{country=\"US\",direction=\"outgoing\"," NODE
                ",transmission=\"retransmit\"} 50");
  CHECK_LINE(t, "livekit_packet_total{country=\"\",direction=\"incoming\"," NODE
                ",transmission=\"initial\"} 2");
  CHECK_LINE(t, "livekit_nack_total{country=\"US\",direction=\"outgoing\"," NODE "} 1");
  CHECK_LINE(t, "livekit_nack_total{country=\"\",direction=\"incoming\"," NODE "} 4");
  CHECK_LINE(t, "livekit_pli_total{country=\"US\",direction=\"outgoing\"," NODE "} 2");
  CHECK_LINE(t, "livekit_fir_total{country=\"US\",direction=\"outgoing\"," NODE "} 3");
#define STREAM(src, kind) \
  "{country=\"US\",direction=\"incoming\"," NODE ",source=\"" src "\",type=\"" kind "\"}"
  CHECK_LINE(t, "livekit_packet_loss_total" STREAM("CAMERA", "VIDEO") " 5");
  CHECK_LINE(t, "livekit_packet_loss_percent_sum" STREAM("CAMERA", "VIDEO") " 5");
  CHECK_LINE(t, "livekit_packet_out_of_order_total" STREAM("CAMERA", "VIDEO") " 2");
  CHECK_LINE(t, "livekit_packet_out_of_order_percent_sum" STREAM("CAMERA", "VIDEO") " 4");
  CHECK_LINE(t, "livekit_jitter_us_sum" STREAM("MICROPHONE", "AUDIO") " 2000");
  CHECK_LINE(t, "livekit_rtt_ms_count" STREAM("CAMERA", "VIDEO") " 3");
  CHECK_LINE(t, "livekit_rtt_ms_sum" STREAM("CAMERA", "VIDEO") " 720");
#undef STREAM
#define RTT_BUCKET(le)                                                         \
  "livekit_rtt_ms_bucket{country=\"US\",direction=\"incoming\"," NODE          \
  ",source=\"CAMERA\",type=\"VIDEO\",le=\"" le "\"}"
  CHECK_LINE(t, RTT_BUCKET("50") " 0");
  CHECK_LINE(t, RTT_BUCKET("100") " 2");
  CHECK_LINE(t, RTT_BUCKET("500") " 2");
  CHECK_LINE(t, RTT_BUCKET("750") " 3");
  CHECK_LINE(t, RTT_BUCKET("+Inf") " 3");
#undef RTT_BUCKET
  CHECK(count_prefixed(t, "livekit_rtt_ms_count{") == 1);
  CHECK_LINE(t, "livekit_forward_latency_ns_sum{" NODE "} 1000");
  CHECK_LINE(t, "livekit_room_total{" NODE "} 0");
  CHECK_LINE(t, "livekit_room_duration_seconds_count{" NODE "} 3");
  CHECK_LINE(t, "livekit_room_duration_seconds_sum{" NODE "} 90.5");
  CHECK_LINE(t, "livekit_room_duration_seconds_bucket{" NODE ",le=\"5\"} 2");
  /* The empty error is the fixed series: one sample, not two. */
  CHECK(count_prefixed(t, "livekit_track_subscribe_counter{error=\"\"," NODE
                          ",state=\"failure\"}") == 1);
  CHECK_LINE(t, "livekit_track_subscribe_counter{error=\"\"," NODE ",state=\"failure\"} 1");
  CHECK_LINE(t, "livekit_track_subscribe_counter{error=\"not found\"," NODE
                ",state=\"failure\"} 1");
  CHECK_LINE(t, "livekit_track_subscribe_counter{error=\"\"," NODE ",state=\"cancel\"} 1");
  CHECK_LINE(t, "livekit_session_join_latency_ms_sum{" NODE ",protocol_version=\"15\"} 250");
  CHECK_LINE(t, "livekit_session_start_time_ms_sum{" NODE
                ",protocol_version=\"16\",warp=\"true\"} 1000");
  CHECK_LINE(t, "livekit_session_duration_ms_sum{" NODE ",protocol_version=\"-1\"} 60000");
  CHECK(count_prefixed(t, "livekit_pubsubtime_ms_count{") == 3);
  CHECK_LINE(t, "livekit_pubsubtime_ms_sum{count=\"1\",country=\"US\",direction=\"publish\","
                "kind=\"STANDARD\"," NODE ",sdk=\"JS\",source=\"CAMERA\",type=\"VIDEO\"} 120");
  CHECK_LINE(t, "livekit_pubsubtime_ms_sum{count=\"3\",country=\"US\",direction=\"subscribe\","
                "kind=\"AGENT\"," NODE ",sdk=\"SWIFT\",source=\"MICROPHONE\",type=\"AUDIO\"} 80");
  CHECK_LINE(t, "livekit_pubsubtime_ms_sum{count=\"1\",country=\"US\","
                "direction=\"subscribe-stream-start\",kind=\"STANDARD\"," NODE
                ",sdk=\"GO\",source=\"SCREEN_SHARE\",type=\"VIDEO\"} 40");
  CHECK_LINE(t, "livekit_peer_connection_state{" NODE
                ",state=\"connected\",transport=\"PUBLISHER\"} 1");
  CHECK_LINE(t, "livekit_quality_rating_count{" NODE "} 2");
  CHECK_LINE(t, "livekit_quality_rating_sum{" NODE "} 4");
  CHECK_LINE(t, "livekit_quality_score_sum{" NODE "} 5.5");
  CHECK_LINE(t, "livekit_datapacket_stream_dest_count_sum{mime_type=\"text\"," NODE
                ",type=\"text\"} 3");
  CHECK_LINE(t, "livekit_datapacket_stream_dest_count_sum{mime_type=\"image\"," NODE
                ",type=\"bytes\"} 2");
  CHECK_LINE(t, "livekit_datapacket_stream_bytes_sum{mime_type=\"text\"," NODE
                ",type=\"text\"} 1024");
  CHECK(count_prefixed(t, "livekit_datapacket_stream_bytes_count{") == 1);
  CHECK_LINE(t, "livekit_debug_ref_count{" NODE ",referrer=\"room\"} 2");
  CHECK(count_prefixed(t, "livekit_debug_ref_count{") == 1);
  CHECK_LINE(t, "livekit_webhook_dispatch_total{" NODE ",reason=\"\",status=\"success\"} 1");
  CHECK_LINE(t, "livekit_webhook_dispatch_total{" NODE ",reason=\"\",status=\"failure\"} 1");
  CHECK_LINE(t, "livekit_webhook_dispatch_total{" NODE
                ",reason=\"overflow\",status=\"drop\"} 1");
  CHECK(count_prefixed(t, "livekit_webhook_dispatch_total{") == 3);
  CHECK_LINE(t, "livekit_webhook_queue_length_sum{" NODE "} 7");
  CHECK_LINE(t, "livekit_psrpc_request_time_ms_sum{kind=\"rpc\",method=\"Call\"," NODE
                ",role=\"client\",service=\"Svc\"} 2.5");
  CHECK_LINE(t, "livekit_psrpc_stream_send_time_ms_sum{method=\"Stream\"," NODE
                ",role=\"server\",service=\"Svc\"} 0.5");
  CHECK_LINE(t, "livekit_psrpc_stream_receive_total{method=\"Stream\"," NODE
                ",role=\"server\",service=\"Svc\"} 1");
  CHECK_LINE(t, "livekit_psrpc_stream_count{method=\"Stream\"," NODE
                ",role=\"server\",service=\"Svc\"} 1");
  CHECK_LINE(t, "livekit_psrpc_error_total{error_code=\"unavailable\",kind=\"rpc\","
                "method=\"Call\"," NODE ",role=\"client\",service=\"Svc\"} 1");
  CHECK(count_prefixed(t, "livekit_psrpc_error_total{") == 1);
  CHECK_LINE(t, "livekit_psrpc_bytes_total{direction=\"tx\",kind=\"rpc\",method=\"Call\","
                NODE ",role=\"client\",service=\"Svc\"} 4096");
  CHECK_LINE(t, "livekit_psrpc_requests_received_total{method=\"Call\"," NODE
                ",service=\"Svc\"} 1");
  CHECK_LINE(t, "livekit_psrpc_requests_expired_total{method=\"Call\"," NODE
                ",service=\"Svc\"} 1");
  CHECK_LINE(t, "livekit_psrpc_claim_wait_time_ms_sum{method=\"Call\"," NODE
                ",outcome=\"claimed\",service=\"Svc\"} 3");
  /* Nothing went to the overflow series. */
  CHECK_LINE(t, "nodestats_series_overflowed_total{" NODE "} 0");
  CHECK_LINE(t, "nodestats_label_values_overflowed_total{" NODE "} 0");
  CHECK(strstr(t, "=\"__overflow__\"") == NULL);
  free(t);
  nodestats_exporter_close(e);
  nodestats_close(s);
}

/* An exporter on a read-only collector: fed by the collector's updates. */
static void test_exporter_on_a_collector(void) {
  nodestats_t *s = open_anonymous();
  nodestats_webhook_dispatch_success(s);
  nodestats_collector_options o;
  nodestats_collector_options_init(&o);
  o.cpu_count_override = 3.0;
  nodestats_collector_t *c = NULL;
  CHECK_STATUS(nodestats_collector_from(s, &o, &c), NODESTATS_STATUS_OK);

  nodestats_exporter_t *e = (nodestats_exporter_t *)(uintptr_t)0x1;
  CHECK_STATUS(nodestats_exporter_open_collector(NULL, "n1", "SERVER", &e),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_open_collector(c, NULL, "SERVER", &e),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_exporter_open_collector(c, "n1", "SERVER\xfe", &e),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK(e == (nodestats_exporter_t *)(uintptr_t)0x1);
  CHECK_STATUS(nodestats_exporter_open_collector(c, "n1", "SERVER", &e),
               NODESTATS_STATUS_OK);
  /* Before any update: the segment's families, no system ones. */
  char *t = exporter_text(e);
  CHECK_LINE(t, "livekit_webhook_dispatch_total{" NODE ",reason=\"\",status=\"success\"} 1");
  CHECK_LINE(t, "nodestats_cpus{" NODE "} 0");
  CHECK(count_prefixed(t, "livekit_node_packet_total{") == 0);
  free(t);

  nodestats_node_stats ns;
  CHECK_STATUS(nodestats_collector_update(c, &ns, NULL, 0, NULL), NODESTATS_STATUS_OK);
  t = exporter_text(e);
  CHECK_LINE(t, "nodestats_cpus{" NODE "} 3");
  CHECK(count_prefixed(t, "livekit_node_packet_total{") == 2);
  free(t);

  /* A second exporter gets the latest update at once. */
  nodestats_exporter_t *e2 = NULL;
  CHECK_STATUS(nodestats_exporter_open_collector(c, "n2", "SERVER", &e2),
               NODESTATS_STATUS_OK);
  t = exporter_text(e2);
  CHECK_LINE(t, "nodestats_cpus{node_id=\"n2\",node_type=\"SERVER\"} 3");
  free(t);
  /* Closing an exporter, then the collector, then the writer: the other
   * exporter keeps working. */
  nodestats_exporter_close(e2);
  CHECK_STATUS(nodestats_collector_update(c, &ns, NULL, 0, NULL), NODESTATS_STATUS_OK);
  nodestats_collector_close(c);
  nodestats_webhook_dispatch_success(s);
  nodestats_close(s);
  t = exporter_text(e);
  CHECK_LINE(t, "livekit_webhook_dispatch_total{" NODE ",reason=\"\",status=\"success\"} 2");
  CHECK_LINE(t, "nodestats_cpus{" NODE "} 3");
  free(t);
  nodestats_exporter_close(e);
}

/* A forked child records through series handles and labeled calls on a
 * named segment; the parent's exporters (writer and read-only collector)
 * see it. */
static void test_series_across_processes(void) {
  char *name = shm_name2;
  snprintf(shm_name2, sizeof shm_name2, "/nodestats-ffi-series-%ld-%ld",
           (long)getpid(), (long)time(NULL));
  nodestats_options o;
  nodestats_options_init(&o);
  o.name = name;
  o.disposition = NODESTATS_DISPOSITION_CREATE;
  nodestats_t *parent = NULL;
  CHECK_STATUS(nodestats_open_with(&o, &parent), NODESTATS_STATUS_OK);
  const char *const labels[4] = {"incoming", "CAMERA", "VIDEO", "FR"};
  nodestats_series_t *mine = NULL;
  CHECK_STATUS(nodestats_series_open(parent, "livekit_packet_loss_total", labels, 4,
                                     &mine),
               NODESTATS_STATUS_OK);
  nodestats_series_inc_by(mine, 1);

  fflush(NULL);
  pid_t kid = fork();
  CHECK(kid >= 0);
  if (kid == 0) {
    nodestats_t *s = NULL;
    if (nodestats_open(name, &s) != NODESTATS_STATUS_OK)
      _exit(30);
    nodestats_series_t *h = NULL, *r = NULL;
    if (nodestats_series_open(s, "livekit_packet_loss_total", labels, 4, &h) !=
        NODESTATS_STATUS_OK)
      _exit(31);
    const char *const rtt[4] = {"outgoing", "CAMERA", "VIDEO", "FR"};
    if (nodestats_series_open(s, "livekit_rtt_ms", rtt, 4, &r) != NODESTATS_STATUS_OK)
      _exit(32);
    for (int i = 0; i < 1000; i++)
      nodestats_series_inc_by(h, 2);
    nodestats_series_observe(r, 120.0);
    nodestats_series_observe(r, 80.0);
    nodestats_psrpc_request_received(s, "Child", "Call");
    nodestats_series_close(h);
    nodestats_series_close(r);
    nodestats_close(s);
    _exit(0);
  }
  int st = 0;
  CHECK(waitpid(kid, &st, 0) == kid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "series child: wait status %#x\n", st);
    exit(1);
  }

  nodestats_exporter_t *e = open_exporter(parent);
  nodestats_collector_t *c = NULL;
  CHECK_STATUS(nodestats_collector_open(name, NULL, &c), NODESTATS_STATUS_OK);
  nodestats_exporter_t *ro = NULL;
  CHECK_STATUS(nodestats_exporter_open_collector(c, "n1", "SERVER", &ro),
               NODESTATS_STATUS_OK);
  const nodestats_exporter_t *both[2] = {e, ro};
  for (int i = 0; i < 2; i++) {
    char *t = exporter_text(both[i]);
    /* Both processes registered the series: merged into one sample. */
    CHECK_LINE(t, "livekit_packet_loss_total{country=\"FR\",direction=\"incoming\"," NODE
                  ",source=\"CAMERA\",type=\"VIDEO\"} 2001");
    CHECK_LINE(t, "livekit_rtt_ms_count{country=\"FR\",direction=\"outgoing\"," NODE
                  ",source=\"CAMERA\",type=\"VIDEO\"} 2");
    CHECK_LINE(t, "livekit_rtt_ms_bucket{country=\"FR\",direction=\"outgoing\"," NODE
                  ",source=\"CAMERA\",type=\"VIDEO\",le=\"100\"} 1");
    CHECK_LINE(t, "livekit_rtt_ms_sum{country=\"FR\",direction=\"outgoing\"," NODE
                  ",source=\"CAMERA\",type=\"VIDEO\"} 200");
    CHECK_LINE(t, "livekit_psrpc_requests_received_total{method=\"Call\"," NODE
                  ",service=\"Child\"} 1");
    free(t);
  }
  nodestats_exporter_close(ro);
  nodestats_collector_close(c);
  nodestats_exporter_close(e);
  nodestats_series_close(mine);
  CHECK_STATUS(nodestats_segment_unlink(name), NODESTATS_STATUS_OK);
  nodestats_close(parent);
}

/* OS errors carry their errno; other failures report 0; something other
 * than a regular file at the name is refused without blocking. */
#if !defined(NODESTATS_HAS_THREAD_WRITER) || NODESTATS_HAS_THREAD_WRITER != 1
#error "the header must announce thread writers"
#endif

static void *thread_writer_worker(void *arg) {
  nodestats_t *s = arg;
  nodestats_thread_t *t = NULL;
  if (nodestats_thread_open(s, &t) != NODESTATS_STATUS_OK)
    return (void *)1;
  for (int i = 0; i < PER_THREAD; i++)
    nodestats_thread_record_packets(t, NODESTATS_DIRECTION_INCOMING, 1, 10,
                                    false);
  nodestats_thread_record_rtcp(t, NODESTATS_DIRECTION_OUTGOING, 1, 2, 3);
  nodestats_thread_close(t);
  return NULL;
}

/* Thread writers: one row per thread, added to the per-CPU counters; a
 * full row table is NO_THREAD_ROW at open; NULL handles are no-ops; rows
 * are reused; a forked child's inherited thread writer records nothing and
 * its own gets a row of its own. */
static void test_thread_writer(void) {
  nodestats_options o;
  nodestats_options_init(&o);
  CHECK(o.thread_rows == 256);
  o.thread_rows = 2;
  nodestats_t *s = NULL;
  CHECK_STATUS(nodestats_open_with(&o, &s), NODESTATS_STATUS_OK);

  /* NULL handles and bad enums are no-ops; NULL arguments are statuses. */
  nodestats_thread_record_packets(NULL, NODESTATS_DIRECTION_INCOMING, 1, 1,
                                  false);
  nodestats_thread_record_packet(NULL, NODESTATS_DIRECTION_INCOMING, 1, false);
  nodestats_thread_record_rtcp(NULL, NODESTATS_DIRECTION_INCOMING, 1, 1, 1);
  nodestats_thread_forward_latency(NULL, 1);
  nodestats_thread_forward_jitter(NULL, 1);
  nodestats_thread_close(NULL);
  nodestats_thread_t *t = NULL;
  CHECK_STATUS(nodestats_thread_open(NULL, &t), NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_thread_open(s, NULL), NODESTATS_STATUS_NULL_ARGUMENT);

  /* Four threads, two rows: each thread opens, records, closes; run them
   * two at a time so the rows are reused. */
  for (int round = 0; round < 2; round++) {
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
      CHECK(pthread_create(&th[i], NULL, thread_writer_worker, s) == 0);
    for (int i = 0; i < 2; i++) {
      void *r = NULL;
      CHECK(pthread_join(th[i], &r) == 0);
      CHECK(r == NULL);
    }
  }
  nodestats_record_packets(s, NODESTATS_DIRECTION_INCOMING, 1, 10, false);
  nodestats_node_stats ns = read_stats(s);
  CHECK_EQ_U64(ns.packets_in, 4 * (uint64_t)PER_THREAD + 1);
  CHECK_EQ_U64(ns.bytes_in, 40 * (uint64_t)PER_THREAD + 10);
  CHECK_EQ_U64(ns.nack_total, 4);

  /* A full table is an error at open, never on the hot path. */
  nodestats_thread_t *a = NULL, *b = NULL, *c = NULL;
  CHECK_STATUS(nodestats_thread_open(s, &a), NODESTATS_STATUS_OK);
  CHECK_STATUS(nodestats_thread_open(s, &b), NODESTATS_STATUS_OK);
  CHECK_STATUS(nodestats_thread_open(s, &c), NODESTATS_STATUS_NO_THREAD_ROW);
  CHECK(c == NULL);
  nodestats_thread_record_packet(a, NODESTATS_DIRECTION_OUTGOING, 100, true);
  nodestats_thread_record_packets(a, (nodestats_direction)7, 1, 1, false);
  nodestats_thread_forward_latency(a, 2000);
  nodestats_thread_close(b);

  /* fork: the child's copy of `a` is inert; the child's own writer gets
   * the free row. */
  fflush(NULL);
  pid_t kid = fork();
  CHECK(kid >= 0);
  if (kid == 0) {
    nodestats_thread_record_packets(a, NODESTATS_DIRECTION_OUTGOING, 1000,
                                    1000, false);
    nodestats_thread_close(a); /* the parent's row: nothing happens */
    nodestats_thread_t *mine = NULL;
    if (nodestats_thread_open(s, &mine) != NODESTATS_STATUS_OK)
      _exit(30);
    nodestats_thread_record_packets(mine, NODESTATS_DIRECTION_OUTGOING, 5, 50,
                                    false);
    nodestats_thread_close(mine);
    _exit(0);
  }
  int status = 0;
  CHECK(waitpid(kid, &status, 0) == kid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fprintf(stderr, "thread writer child: wait status %#x\n", (unsigned)status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  nodestats_thread_record_packet(a, NODESTATS_DIRECTION_OUTGOING, 100, false);
  ns = read_stats(s);
  CHECK_EQ_U64(ns.packets_out, 7);
  CHECK_EQ_U64(ns.bytes_out, 250);
  CHECK_EQ_U64(ns.retransmit_packets_out, 1);
  CHECK_EQ_U64(ns.forward_latency, 2000);
  /* `a` still holds its row: one row left, then none. */
  CHECK_STATUS(nodestats_thread_open(s, &b), NODESTATS_STATUS_OK);
  CHECK_STATUS(nodestats_thread_open(s, &c), NODESTATS_STATUS_NO_THREAD_ROW);
  nodestats_thread_close(b);
  nodestats_thread_close(a);
  nodestats_close(s);
}

#if !defined(NODESTATS_HAS_THREAD_SERIES) || NODESTATS_HAS_THREAD_SERIES != 1
#error "the header must announce thread series"
#endif

#define FR_NACKS "livekit_nack_total"
static const char *const fr_in[2] = {"incoming", "FR"};

/* A worker: a thread writer and a thread series on it, PER_THREAD NACKs
 * through the series, then the series closed after its thread writer
 * (which turns it off: the late calls record nothing). */
static void *thread_series_worker(void *arg) {
  nodestats_t *s = arg;
  nodestats_thread_t *t = NULL;
  nodestats_thread_series_t *h = NULL;
  if (nodestats_thread_open(s, &t) != NODESTATS_STATUS_OK)
    return (void *)1;
  if (nodestats_thread_series_open(t, FR_NACKS, fr_in, 2, &h) !=
      NODESTATS_STATUS_OK)
    return (void *)2;
  for (int i = 0; i < PER_THREAD; i++)
    nodestats_thread_series_inc_by(h, 1);
  nodestats_thread_close(t);
  nodestats_thread_series_inc_by(h, 1000000);
  nodestats_thread_series_close(h);
  return NULL;
}

/* Thread series: counters and histograms in the thread's row add up with
 * the per-CPU series of the same labels in the exporter and (for the media
 * families) in NodeStats; gauges take the per-CPU path; a row whose slots
 * are full falls back without losing a count; rows reused by later threads
 * keep their series; NULL handles are no-ops; a forked child's inherited
 * thread series records nothing. */
static void test_thread_series(void) {
  nodestats_options o;
  nodestats_options_init(&o);
  o.thread_rows = 2;
  nodestats_t *s = NULL;
  CHECK_STATUS(nodestats_open_with(&o, &s), NODESTATS_STATUS_OK);
  nodestats_thread_t *t = NULL;
  CHECK_STATUS(nodestats_thread_open(s, &t), NODESTATS_STATUS_OK);

  /* Arguments. */
  nodestats_thread_series_t *h = (nodestats_thread_series_t *)(uintptr_t)0x1;
  CHECK_STATUS(nodestats_thread_series_open(NULL, FR_NACKS, fr_in, 2, &h),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_thread_series_open(t, NULL, fr_in, 2, &h),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_thread_series_open(t, FR_NACKS, fr_in, 2, NULL),
               NODESTATS_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(nodestats_thread_series_open(t, FR_NACKS, fr_in, 3, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(nodestats_thread_series_open(t, "livekit_nope", fr_in, 2, &h),
               NODESTATS_STATUS_UNKNOWN_FAMILY);
  CHECK_STATUS(nodestats_thread_series_open(t, "livekit_room_total", NULL, 0, &h),
               NODESTATS_STATUS_INVALID_ARGUMENT);
  CHECK(h == (nodestats_thread_series_t *)(uintptr_t)0x1);
  nodestats_thread_series_inc_by(NULL, 1);
  nodestats_thread_series_add(NULL, 1);
  nodestats_thread_series_observe(NULL, 1.0);
  nodestats_thread_series_close(NULL);

  /* A counter through the row (41) and the per-CPU path (1); calls of
   * another kind are ignored. */
  const char *const loss[4] = {"incoming", "CAMERA", "VIDEO", "US"};
  nodestats_thread_series_t *counter = NULL;
  CHECK_STATUS(nodestats_thread_series_open(t, "livekit_packet_loss_total",
                                            loss, 4, &counter),
               NODESTATS_STATUS_OK);
  nodestats_thread_series_inc_by(counter, 40);
  nodestats_thread_series_inc_by(counter, 1);
  nodestats_thread_series_observe(counter, 5.0);
  nodestats_thread_series_add(counter, 100);
  nodestats_series_t *shared = NULL;
  CHECK_STATUS(nodestats_series_open(s, "livekit_packet_loss_total", loss, 4,
                                     &shared),
               NODESTATS_STATUS_OK);
  nodestats_series_inc_by(shared, 1);
  nodestats_series_close(shared);

  /* A histogram: 10 and 60 ms through the row, 20000 per CPU. */
  const char *const rtt_labels[4] = {"outgoing", "MICROPHONE", "AUDIO", "DE"};
  nodestats_thread_series_t *rtt = NULL;
  CHECK_STATUS(nodestats_thread_series_open(t, "livekit_rtt_ms", rtt_labels, 4,
                                            &rtt),
               NODESTATS_STATUS_OK);
  nodestats_thread_series_observe(rtt, 10.0);
  nodestats_thread_series_observe(rtt, 60.0);
  nodestats_thread_series_inc_by(rtt, 100);
  nodestats_series_t *rtt_shared = NULL;
  CHECK_STATUS(nodestats_series_open(s, "livekit_rtt_ms", rtt_labels, 4,
                                     &rtt_shared),
               NODESTATS_STATUS_OK);
  nodestats_series_observe(rtt_shared, 20000.0);
  nodestats_series_close(rtt_shared);

  /* A gauge: +5 -2, through the per-CPU path. */
  const char *const stream[3] = {"server", "Svc", "Stream"};
  nodestats_thread_series_t *gauge = NULL;
  CHECK_STATUS(nodestats_thread_series_open(t, "livekit_psrpc_stream_count",
                                            stream, 3, &gauge),
               NODESTATS_STATUS_OK);
  nodestats_thread_series_add(gauge, 5);
  nodestats_thread_series_add(gauge, -2);

  /* 80 more counters on this row: 64 slots, so some fall back. Each gets
   * its index + 1. */
  nodestats_thread_series_t *many[80];
  for (int i = 0; i < 80; i++) {
    char country[16];
    snprintf(country, sizeof country, "C%d", i);
    const char *const l[4] = {"incoming", "CAMERA", "VIDEO", country};
    CHECK_STATUS(nodestats_thread_series_open(t, "livekit_packet_loss_total", l,
                                              4, &many[i]),
                 NODESTATS_STATUS_OK);
    nodestats_thread_series_inc_by(many[i], (uint64_t)i + 1);
  }
  /* Which record into the row: the counter and histogram did, the gauge
   * never does, and past the row's 64 slots the rest fall back. */
  CHECK(nodestats_thread_series_in_row(counter));
  CHECK(nodestats_thread_series_in_row(rtt));
  CHECK(!nodestats_thread_series_in_row(gauge));
  CHECK(nodestats_thread_series_in_row(many[0]));
  CHECK(!nodestats_thread_series_in_row(many[79]));
  CHECK(!nodestats_thread_series_in_row(NULL));

  /* fork: the child's inherited thread series record nothing; a thread
   * writer of its own (the free row) records 7 NACKs. */
  fflush(NULL);
  pid_t kid = fork();
  CHECK(kid >= 0);
  if (kid == 0) {
    nodestats_thread_series_inc_by(counter, 1000);
    nodestats_thread_series_observe(rtt, 1000.0);
    nodestats_thread_series_inc_by(many[79], 1000);
    nodestats_thread_series_close(counter);
    nodestats_thread_close(t);
    nodestats_thread_t *mine = NULL;
    nodestats_thread_series_t *nacks = NULL;
    if (nodestats_thread_open(s, &mine) != NODESTATS_STATUS_OK ||
        nodestats_thread_series_open(mine, FR_NACKS, fr_in, 2, &nacks) !=
            NODESTATS_STATUS_OK)
      _exit(30);
    nodestats_thread_series_inc_by(nacks, 7);
    nodestats_thread_series_close(nacks);
    nodestats_thread_close(mine);
    _exit(0);
  }
  int status = 0;
  CHECK(waitpid(kid, &status, 0) == kid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  /* One row is free (the child's, released when it exited): workers run
   * one at a time, so each reuses it and the child's NACK slot. */
  for (int round = 0; round < 3; round++) {
    pthread_t th;
    void *r = NULL;
    CHECK(pthread_create(&th, NULL, thread_series_worker, s) == 0);
    CHECK(pthread_join(th, &r) == 0);
    CHECK(r == NULL);
  }
  nodestats_node_stats ns = read_stats(s);
  CHECK_EQ_U64(ns.nack_total, 7 + 3 * (uint64_t)PER_THREAD);

  nodestats_exporter_t *e = open_exporter(s);
  char *text = exporter_text(e);
  CHECK_LINE(text, "livekit_packet_loss_total{country=\"US\",direction=\"incoming\"," NODE
                   ",source=\"CAMERA\",type=\"VIDEO\"} 42");
  for (int i = 0; i < 80; i++) {
    char line[256];
    snprintf(line, sizeof line,
             "livekit_packet_loss_total{country=\"C%d\",direction=\"incoming\"," NODE
             ",source=\"CAMERA\",type=\"VIDEO\"} %d", i, i + 1);
    CHECK_LINE(text, line);
  }
  CHECK_LINE(text, "livekit_psrpc_stream_count{method=\"Stream\"," NODE
                   ",role=\"server\",service=\"Svc\"} 3");
  check_rtt_10_60_20000(text);
  char nacks[160];
  snprintf(nacks, sizeof nacks,
           "livekit_nack_total{country=\"FR\",direction=\"incoming\"," NODE "} %llu",
           7 + 3 * (unsigned long long)PER_THREAD);
  CHECK_LINE(text, nacks);
  free(text);
  nodestats_exporter_close(e);

  for (int i = 0; i < 80; i++)
    nodestats_thread_series_close(many[i]);
  nodestats_thread_series_close(counter);
  nodestats_thread_close(t);
  CHECK(!nodestats_thread_series_in_row(rtt)); /* its thread writer is closed */
  nodestats_thread_series_close(rtt);
  nodestats_thread_series_inc_by(NULL, 1);
  nodestats_thread_series_add(gauge, 1); /* its thread writer is closed */
  nodestats_thread_series_close(gauge);
  nodestats_close(s);
}

static void test_last_os_error(void) {
  char file[128], path[192];
  nodestats_t *s = (nodestats_t *)(uintptr_t)0x1;
  nodestats_collector_t *c = (nodestats_collector_t *)(uintptr_t)0x1;

  /* A path through a regular file: ENOTDIR, for writers and readers. */
  path_in_scratch(file, sizeof file, "plain-file");
  write_file(file, (const unsigned char *)"x", 1);
  int n = snprintf(path, sizeof path, "%s/seg", file);
  CHECK(n > 0 && (size_t)n < sizeof path);
  CHECK_STATUS(nodestats_open(path, &s), NODESTATS_STATUS_IO);
  CHECK(nodestats_last_os_error() == ENOTDIR);
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c), NODESTATS_STATUS_IO);
  CHECK(nodestats_last_os_error() == ENOTDIR);

  /* A failure that is no OS error resets it to 0. */
  path_in_scratch(path, sizeof path, "missing.seg");
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c),
               NODESTATS_STATUS_NOT_FOUND);
  CHECK(nodestats_last_os_error() == 0);

  /* A symlink at the name is never followed: ELOOP. */
  path_in_scratch(path, sizeof path, "link.seg");
  CHECK(symlink(file, path) == 0);
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c), NODESTATS_STATUS_IO);
  CHECK(nodestats_last_os_error() == ELOOP);

  /* A FIFO at the name: an error at once, not a hang. */
  path_in_scratch(path, sizeof path, "fifo.seg");
  CHECK(mkfifo(path, 0600) == 0);
  CHECK_STATUS(nodestats_collector_open(path, NULL, &c),
               NODESTATS_STATUS_NOT_REGULAR_FILE);
  CHECK_STATUS(nodestats_open(path, &s), NODESTATS_STATUS_NOT_REGULAR_FILE);
  CHECK(nodestats_last_os_error() == 0);
  CHECK(s == (nodestats_t *)(uintptr_t)0x1);
  CHECK(c == (nodestats_collector_t *)(uintptr_t)0x1);
  CHECK(strlen(nodestats_status_str(NODESTATS_STATUS_NO_SPACE)) > 0);

  const char *made[] = {"plain-file", "link.seg", "fifo.seg"};
  for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
    path_in_scratch(path, sizeof path, made[i]);
    CHECK(unlink(path) == 0);
  }
}

static void remove_scratch(void) {
  static const char *leaves[] = {"garbage.seg", "short.seg", "empty.seg",
                                 "version.seg", "uninit.seg", "resized.seg",
                                 "open-with.seg"};
  char path[128];
  for (size_t i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
    path_in_scratch(path, sizeof path, leaves[i]);
    unlink(path);
  }
  rmdir(scratch);
  if (shm_name[0] != '\0')
    (void)nodestats_segment_unlink(shm_name);
  if (shm_name2[0] != '\0')
    (void)nodestats_segment_unlink(shm_name2);
}

#define RUN(test)                                                              \
  do {                                                                         \
    test();                                                                    \
    printf("ok %s\n", #test);                                                  \
    fflush(stdout);                                                            \
    passed++;                                                                  \
  } while (0)

/* The code of same_code.h, which test.cpp compiles as C++ too. */
static void test_same_code(void) { CHECK(same_code_in_c_and_cpp() == 0); }

int main(void) {
  alarm(120); /* a hung child or pipe fails the run instead of blocking it */
  snprintf(scratch, sizeof scratch, "/tmp/nodestats-ffi-XXXXXX");
  CHECK(mkdtemp(scratch) != NULL);
  CHECK(atexit(remove_scratch) == 0);
  int passed = 0;
  RUN(test_version);
  RUN(test_status_strings);
  RUN(test_null_arguments);
  RUN(test_every_recording_function);
  RUN(test_collector);
  RUN(test_open_with);
  RUN(test_collector_follows_the_segment);
  RUN(test_invalid_segments);
  RUN(test_threads_share_a_handle);
  RUN(test_multiprocess);
  RUN(test_series_handles);
  RUN(test_labeled_recording);
  RUN(test_exporter_on_a_collector);
  RUN(test_exporter_formats);
  RUN(test_series_across_processes);
  RUN(test_last_os_error);
  RUN(test_thread_writer);
  RUN(test_thread_series);
  RUN(test_same_code);
  printf("%d passed, 0 failed\n", passed);
  return 0;
}
