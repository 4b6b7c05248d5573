/*
 * C11 tests of the nodestats C API: every function, NULL and bad
 * arguments, damaged segment files, threads sharing a handle, and several
 * processes writing one named segment while the parent reads (one of them
 * killed with SIGKILL mid-run).
 *
 * Built with -std=c11 -Wall -Wextra -Wpedantic -Werror, run under
 * ASan+UBSan and valgrind by tests/ffi.rs (see Makefile).
 */
#define _POSIX_C_SOURCE 200809L

#include "nodestats.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

static void test_version(void) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", NODESTATS_VERSION_MAJOR,
           NODESTATS_VERSION_MINOR, NODESTATS_VERSION_PATCH);
  CHECK(strcmp(want, NODESTATS_VERSION) == 0);
  CHECK(strcmp(nodestats_version(), NODESTATS_VERSION) == 0);
}

static void test_status_strings(void) {
  for (uint32_t v = NODESTATS_STATUS_OK; v <= NODESTATS_STATUS_PANIC; v++) {
    const char *s = nodestats_status_str((nodestats_status)v);
    CHECK(s != NULL && *s != '\0');
    CHECK(strcmp(s, "unknown status") != 0);
    for (uint32_t w = 0; w < v; w++)
      CHECK(strcmp(s, nodestats_status_str((nodestats_status)w)) != 0);
  }
  CHECK(strcmp(nodestats_status_str((nodestats_status)(NODESTATS_STATUS_PANIC + 1)),
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
  o.rate_intervals_ms[1] = 1000;
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
  CHECK(rates[0].interval_seconds == 0.1 && rates[1].interval_seconds == 1.0);
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

  /* Not a regular file: read-only attach sees a directory (bad layout),
   * read-write open fails in the kernel (i/o). */
  CHECK_STATUS(nodestats_collector_open(scratch, NULL, &c),
               NODESTATS_STATUS_BAD_LAYOUT);
  CHECK_STATUS(nodestats_open(scratch, &s), NODESTATS_STATUS_IO);

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
}

#define RUN(test)                                                              \
  do {                                                                         \
    test();                                                                    \
    printf("ok %s\n", #test);                                                  \
    fflush(stdout);                                                            \
    passed++;                                                                  \
  } while (0)

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
  RUN(test_invalid_segments);
  RUN(test_threads_share_a_handle);
  RUN(test_multiprocess);
  printf("%d passed, 0 failed\n", passed);
  return 0;
}
