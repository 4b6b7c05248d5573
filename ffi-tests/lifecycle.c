/* A writer that follows its segment's name through what operators do to
 * it, against the header alone.
 *
 *   lifecycle NAME [SECONDS]      the writer (records SECONDS, default 4,
 *                                 after the last replacement)
 *   lifecycle --truncate NAME     helper: truncate /dev/shm/NAME to 0 bytes
 *   lifecycle --replace NAME      helper: remove NAME, create a new segment
 *                                 there as a restarted peer would
 *
 * The writer records packets on two threads (the per-CPU path and a thread
 * writer, one of them also through a labeled series) while its main thread
 * acts as an SFU's housekeeping timer: nodestats_maintain every 100 ms.
 * Early in the run, other processes (this program re-run as a helper)
 * truncate the live segment, then remove it and create a new one at the
 * name, several times. The writer must never die (a truncate used to kill
 * it with SIGBUS), must see each act in nodestats_segment_status, and at
 * the end a collector opened at the name after the last replacement must
 * see at least 70 % of every packet the writer recorded in the whole run.
 * Exit status 0 on success. tests/ffi.rs runs it (make lifecycle). */
#define _GNU_SOURCE
#include <nodestats.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static atomic_bool stop;
static atomic_uint_fast64_t recorded;

static void fail(const char *what, nodestats_status st) {
  fprintf(stderr, "lifecycle: %s: %s (errno %d)\n", what,
          nodestats_status_str(st), nodestats_last_os_error());
  exit(1);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Records 10 packets per round, paced so that the count follows time
 * rather than how much CPU a busy machine gives this thread. */
static void *per_cpu(void *arg) {
  nodestats_t *s = arg;
  const char *labels[] = {"incoming", "FR"};
  nodestats_series_t *nack = NULL;
  nodestats_status st = nodestats_series_open(s, "livekit_nack_total", labels, 2, &nack);
  if (st != NODESTATS_STATUS_OK)
    fail("series_open", st);
  while (!atomic_load(&stop)) {
    nodestats_record_packets(s, NODESTATS_DIRECTION_INCOMING, 10, 12000, false);
    nodestats_series_inc_by(nack, 1);
    atomic_fetch_add(&recorded, 10);
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
  }
  nodestats_series_close(nack);
  return NULL;
}

static void *thread_row(void *arg) {
  nodestats_t *s = arg;
  nodestats_thread_t *t = NULL;
  nodestats_status st = nodestats_thread_open(s, &t);
  if (st != NODESTATS_STATUS_OK)
    fail("thread_open", st);
  while (!atomic_load(&stop)) {
    nodestats_thread_record_packets(t, NODESTATS_DIRECTION_INCOMING, 10, 12000, false);
    atomic_fetch_add(&recorded, 10);
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
  }
  nodestats_thread_close(t);
  return NULL;
}

/* Runs this program as a helper process and waits for it. */
static void helper(const char *self, const char *mode, const char *name) {
  char *argv[] = {(char *)self, (char *)mode, (char *)name, NULL};
  pid_t pid;
  int e = posix_spawn(&pid, self, NULL, NULL, argv, environ);
  if (e != 0) {
    fprintf(stderr, "lifecycle: spawn %s: %s\n", mode, strerror(e));
    exit(1);
  }
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
    fprintf(stderr, "lifecycle: helper %s failed (%d)\n", mode, ws);
    exit(1);
  }
}

static int truncate_helper(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "/dev/shm/%s", name[0] == '/' ? name + 1 : name);
  if (truncate(path, 0) != 0) {
    perror("truncate");
    return 1;
  }
  return 0;
}

static int replace_helper(const char *name) {
  nodestats_status st = nodestats_segment_unlink(name);
  if (st != NODESTATS_STATUS_OK && st != NODESTATS_STATUS_NOT_FOUND)
    fail("unlink", st);
  nodestats_t *peer = NULL;
  st = nodestats_open(name, &peer);
  if (st != NODESTATS_STATUS_OK)
    fail("peer open", st);
  /* A peer that records a little of its own, then exits: the segment
   * stays at the name. */
  nodestats_room_started(peer);
  nodestats_close(peer);
  return 0;
}

/* One housekeeping tick: the status, then maintain. Returns the status. */
static nodestats_segment_state tick(nodestats_t *s) {
  nodestats_segment_state seen = nodestats_segment_status(s);
  nodestats_status st = nodestats_maintain(s);
  if (st != NODESTATS_STATUS_OK)
    fail("maintain", st);
  return seen;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--truncate") == 0)
    return truncate_helper(argv[2]);
  if (argc == 3 && strcmp(argv[1], "--replace") == 0)
    return replace_helper(argv[2]);
  if (argc < 2) {
    fprintf(stderr, "usage: lifecycle NAME [SECONDS]\n");
    return 2;
  }
  const char *name = argv[1];
  double seconds = argc > 2 ? atof(argv[2]) : 4.0;

  nodestats_t *s = NULL;
  nodestats_status st = nodestats_open(name, &s);
  if (st != NODESTATS_STATUS_OK)
    fail("open", st);
  if (nodestats_segment_status(s) != NODESTATS_SEGMENT_STATE_CURRENT) {
    fprintf(stderr, "lifecycle: a new segment is not current\n");
    return 1;
  }
  pthread_t a, b;
  pthread_create(&a, NULL, per_cpu, s);
  pthread_create(&b, NULL, thread_row, s);
  double start = now_s();
  (void)start;

  /* Early in the run: three truncates and three replacements, each seen
   * by the next tick and followed by it. */
  int shrunk = 0, replaced = 0;
  for (int round = 0; round < 3; round++) {
    sleep_ms(30);
    helper(argv[0], "--truncate", name);
    sleep_ms(20); /* the recording threads fault into private pages */
    if (tick(s) == NODESTATS_SEGMENT_STATE_SHRUNK)
      shrunk++;
    sleep_ms(30);
    helper(argv[0], "--replace", name);
    if (tick(s) == NODESTATS_SEGMENT_STATE_REPLACED)
      replaced++;
    if (nodestats_segment_status(s) != NODESTATS_SEGMENT_STATE_CURRENT) {
      fprintf(stderr, "lifecycle: not current after maintain\n");
      return 1;
    }
  }
  /* The name was replaced for the last time: what the writer records from
   * here on must reach a collector opened now. */
  uint64_t before = atomic_load(&recorded);
  double replaced_at = now_s();

  /* The housekeeping timer for the rest of the run. */
  int ticks = 0;
  while (now_s() - replaced_at < seconds) {
    sleep_ms(100);
    if (tick(s) != NODESTATS_SEGMENT_STATE_CURRENT) {
      fprintf(stderr, "lifecycle: the segment changed with nobody touching it\n");
      return 1;
    }
    ticks++;
  }
  atomic_store(&stop, true);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  uint64_t total = atomic_load(&recorded);

  nodestats_collector_options copts;
  nodestats_collector_options_init(&copts);
  copts.system_probes = false;
  nodestats_collector_t *c = NULL;
  st = nodestats_collector_open(name, &copts, &c);
  if (st != NODESTATS_STATUS_OK)
    fail("collector_open", st);
  nodestats_node_stats ns;
  st = nodestats_collector_update(c, &ns, NULL, 0, NULL);
  if (st != NODESTATS_STATUS_OK)
    fail("collector_update", st);
  nodestats_collector_close(c);
  nodestats_close(s);

  printf("lifecycle: recorded %" PRIu64 " packets in %.2f s (%" PRIu64
         " after the last replacement at %.2f s), collector saw %" PRIu64
         " (%.1f %%); shrunk seen %d/3, replaced seen %d/3, %d ticks\n",
         total, now_s() - start, total - before, replaced_at - start,
         ns.packets_in, 100.0 * (double)ns.packets_in / (double)total, shrunk,
         replaced, ticks);
  if (shrunk != 3 || replaced != 3) {
    fprintf(stderr, "lifecycle: a truncate or a replacement went unreported\n");
    return 1;
  }
  /* Each recording thread may have one round (10 packets) in flight
   * across the last switch, counted after `before` was read. */
  if (ns.packets_in + 20 < total - before || ns.packets_in > total) {
    fprintf(stderr, "lifecycle: the collector saw %" PRIu64
            ", not between %" PRIu64 " and %" PRIu64 "\n",
            ns.packets_in, total - before, total);
    return 1;
  }
  if ((double)ns.packets_in < 0.7 * (double)total) {
    fprintf(stderr, "lifecycle: under 70 %% of the packets reached the collector\n");
    return 1;
  }
  return 0;
}
