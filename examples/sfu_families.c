/*
 * A generic SFU's own metrics through nodestats: families declared at run
 * time by several worker processes, recorded on the hot path, exported by a
 * `nodestats serve` that was never told about them.
 *
 *   cargo build --release --lib --no-default-features
 *   cc -std=c11 -Iinclude examples/sfu_families.c target/release/libnodestats.a \
 *      -lpthread -ldl -lm -lrt -lutil -o sfu_families
 *   ./sfu_families /sfu-example 4        # prints "ready", waits for EOF on stdin
 *   nodestats serve --segment /sfu-example   # in another shell: curl :9898/metrics
 *
 * The program removes its segment when stdin closes (Ctrl-D).
 *
 * Each worker records, exactly: 1000 incoming video packets through a
 * thread series, 2000 outgoing audio packets through the per-CPU path,
 * 30 NACKs and 3 PLIs, 3 keyframe requests, one open UDP transport (a gauge
 * that leaves with the worker), 1000 forward delays (500 of 0.3 ms, 500 of
 * 2 ms), 1000 round-trip times in a native histogram (10, 11, … 109 ms,
 * ten times each) and 1200 bytes for each of 6 rooms, of which the capped
 * family keeps 4 and sends the rest to its overflow series. The parent
 * holds 2 TCP transports until it exits.
 */
#define _POSIX_C_SOURCE 200809L
#include <nodestats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FAIL(...)                                                            \
  do {                                                                       \
    fprintf(stderr, __VA_ARGS__);                                            \
    fputc('\n', stderr);                                                     \
    exit(1);                                                                 \
  } while (0)

static void must(nodestats_status st, const char *what) {
  if (st != NODESTATS_STATUS_OK)
    FAIL("%s: %s", what, nodestats_status_str(st));
}

static void expect(nodestats_status st, nodestats_status want, const char *what) {
  if (st != want)
    FAIL("%s: got %s, want %s", what, nodestats_status_str(st),
         nodestats_status_str(want));
}

/* Declares every family of this SFU. Every process that records a family
 * declares it: the first creates it in the segment, the others find it. */
static void declare_all(const nodestats_t *s) {
  static const char *const dir_media[] = {"direction", "media"};
  static const char *const type[] = {"type"};
  static const char *const protocol[] = {"protocol"};
  static const char *const room[] = {"room"};
  static const double delay[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05};
  nodestats_family_spec f;

  nodestats_family_spec_init(&f);
  f.name = "sfu_rtp_packets_total";
  f.help = "RTP packets forwarded, by direction and media.";
  f.label_names = dir_media;
  f.n_labels = 2;
  must(nodestats_family_declare(s, &f), "declare sfu_rtp_packets_total");

  nodestats_family_spec_init(&f);
  f.name = "sfu_rtcp_feedback_total";
  f.help = "RTCP feedback messages received, by type.";
  f.label_names = type;
  f.n_labels = 1;
  must(nodestats_family_declare(s, &f), "declare sfu_rtcp_feedback_total");

  nodestats_family_spec_init(&f);
  f.name = "sfu_keyframe_requests_total";
  f.help = "Keyframe requests sent to publishers.";
  must(nodestats_family_declare(s, &f), "declare sfu_keyframe_requests_total");

  nodestats_family_spec_init(&f);
  f.name = "sfu_transports";
  f.help = "Open transports, by protocol.";
  f.kind = NODESTATS_METRIC_KIND_GAUGE;
  f.label_names = protocol;
  f.n_labels = 1;
  must(nodestats_family_declare(s, &f), "declare sfu_transports");

  nodestats_family_spec_init(&f);
  f.name = "sfu_forward_delay_seconds";
  f.help = "Time from receiving a packet to forwarding it.";
  f.kind = NODESTATS_METRIC_KIND_HISTOGRAM;
  f.buckets = delay;
  f.n_buckets = sizeof delay / sizeof delay[0];
  f.unit = "seconds";
  must(nodestats_family_declare(s, &f), "declare sfu_forward_delay_seconds");

  /* A native histogram: exponential buckets at schema 3 (8 per power of
   * two) from 0.1 to 10000 ms, no classic buckets. */
  nodestats_family_spec_init(&f);
  f.name = "sfu_rtt_ms";
  f.help = "Round-trip time to peers.";
  f.kind = NODESTATS_METRIC_KIND_HISTOGRAM;
  f.unit = "ms";
  f.native = true;
  f.native_min = 0.1;
  f.native_max = 10000;
  must(nodestats_family_declare(s, &f), "declare sfu_rtt_ms");

  nodestats_family_spec_init(&f);
  f.name = "sfu_room_bytes_total";
  f.help = "Bytes forwarded, by room (at most 4 rooms, then __overflow__).";
  f.label_names = room;
  f.n_labels = 1;
  f.max_series = 4;
  must(nodestats_family_declare(s, &f), "declare sfu_room_bytes_total");
}

/* What a declaration that is wrong gets back. */
static void check_refusals(const nodestats_t *s) {
  static const char *const other[] = {"direction"};
  nodestats_family_spec f;
  nodestats_family_spec_init(&f);
  f.name = "sfu_rtp_packets_total"; /* exists with labels direction, media */
  f.label_names = other;
  f.n_labels = 1;
  expect(nodestats_family_declare(s, &f), NODESTATS_STATUS_FAMILY_CONFLICT,
         "a conflicting declaration");
  nodestats_family_spec_init(&f);
  f.name = "sfu-bad-name";
  expect(nodestats_family_declare(s, &f), NODESTATS_STATUS_INVALID_ARGUMENT,
         "an invalid metric name");
  static const double down[] = {2.0, 1.0};
  nodestats_family_spec_init(&f);
  f.name = "sfu_bad_buckets";
  f.kind = NODESTATS_METRIC_KIND_HISTOGRAM;
  f.buckets = down;
  f.n_buckets = 2;
  expect(nodestats_family_declare(s, &f), NODESTATS_STATUS_INVALID_ARGUMENT,
         "decreasing buckets");
  nodestats_series_t *h = NULL;
  expect(nodestats_series_open(s, "sfu_not_declared_total", NULL, 0, &h),
         NODESTATS_STATUS_UNKNOWN_FAMILY, "an undeclared family");
}

static nodestats_series_t *open_series(nodestats_t *s, const char *family,
                                       const char *const *labels, size_t n) {
  nodestats_series_t *h;
  must(nodestats_series_open(s, family, labels, n, &h), family);
  return h;
}

static int worker(const char *name, int id) {
  nodestats_t *s;
  must(nodestats_open(name, &s), "worker open");
  declare_all(s);

  /* The packet loop's thread: its series live in its own row. */
  nodestats_thread_t *t;
  must(nodestats_thread_open(s, &t), "thread open");
  static const char *const in_video[] = {"incoming", "video"};
  nodestats_thread_series_t *rx;
  must(nodestats_thread_series_open(t, "sfu_rtp_packets_total", in_video, 2, &rx),
       "thread series");
  nodestats_thread_series_t *delay;
  must(nodestats_thread_series_open(t, "sfu_forward_delay_seconds", NULL, 0, &delay),
       "delay series");

  static const char *const out_audio[] = {"outgoing", "audio"};
  static const char *const nack[] = {"nack"};
  static const char *const pli[] = {"pli"};
  static const char *const udp[] = {"udp"};
  nodestats_series_t *tx = open_series(s, "sfu_rtp_packets_total", out_audio, 2);
  nodestats_series_t *nacks = open_series(s, "sfu_rtcp_feedback_total", nack, 1);
  nodestats_series_t *plis = open_series(s, "sfu_rtcp_feedback_total", pli, 1);
  nodestats_series_t *kf = open_series(s, "sfu_keyframe_requests_total", NULL, 0);
  nodestats_series_t *transports = open_series(s, "sfu_transports", udp, 1);
  nodestats_series_t *rtt = open_series(s, "sfu_rtt_ms", NULL, 0);

  nodestats_series_add(transports, 1);
  for (int i = 0; i < 1000; i++) {
    nodestats_thread_series_inc_by(rx, 1);
    nodestats_thread_series_observe(delay, i % 2 ? 0.002 : 0.0003);
    nodestats_series_inc_by(tx, 2);
    nodestats_series_observe(rtt, 10 + i % 100);
  }
  nodestats_series_inc_by(nacks, 30);
  nodestats_series_inc_by(plis, 3);
  nodestats_series_inc_by(kf, 3);
  for (int r = 0; r < 6; r++) {
    char room[16];
    snprintf(room, sizeof room, "room-%d", (r + id) % 6);
    const char *const labels[] = {room};
    nodestats_series_t *h = open_series(s, "sfu_room_bytes_total", labels, 1);
    nodestats_series_inc_by(h, 1200);
    nodestats_series_close(h);
  }

  nodestats_thread_series_close(rx);
  nodestats_thread_series_close(delay);
  nodestats_thread_close(t);
  nodestats_series_close(tx);
  nodestats_series_close(nacks);
  nodestats_series_close(plis);
  nodestats_series_close(kf);
  nodestats_series_close(transports);
  nodestats_series_close(rtt);
  nodestats_close(s); /* the worker's transport leaves with its writer */
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2)
    FAIL("usage: %s SEGMENT [WORKERS]", argv[0]);
  const char *name = argv[1];
  int workers = argc > 2 ? atoi(argv[2]) : 4;

  nodestats_t *s;
  must(nodestats_open(name, &s), "open");
  declare_all(s);
  check_refusals(s);
  static const char *const tcp[] = {"tcp"};
  nodestats_series_t *held = open_series(s, "sfu_transports", tcp, 1);
  nodestats_series_add(held, 2);

  for (int i = 0; i < workers; i++) {
    pid_t pid = fork();
    if (pid < 0)
      FAIL("fork failed");
    if (pid == 0)
      _exit(worker(name, i));
  }
  int failed = 0;
  for (int i = 0; i < workers; i++) {
    int status;
    if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      failed++;
  }
  if (failed)
    FAIL("%d workers failed", failed);
  printf("ready %d workers\n", workers);
  fflush(stdout);

  char buf[64];
  while (read(0, buf, sizeof buf) > 0) {
  }
  nodestats_series_close(held);
  nodestats_close(s);
  must(nodestats_segment_unlink(name), "unlink");
  return 0;
}
