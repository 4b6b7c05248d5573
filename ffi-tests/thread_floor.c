/* Times nodestats_thread_record_packets against the floor through a call —
 * a non-inlined C function doing a NULL check and two plain adds to a line
 * only this thread touches — in one run, pinned to one CPU, and checks
 * exact totals.
 *
 *   cargo build --release --lib && make -C ffi-tests floor
 *
 * Both loops run in alternating rounds of CALLS calls; each reports its
 * best and median round (ns per call). The best round is the one least
 * disturbed by other work on the machine (a VM's neighbours, interrupts);
 * the ratio of the bests is the number to compare with the target (≤ 1.15).
 * Exit status 0 when totals are exact (the timing is reported, not judged:
 * a busy machine must not fail a build). Arguments: calls per round
 * (default 20 000 000) and rounds (default 31). */
#define _GNU_SOURCE
#include <nodestats.h>

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { MAX_ROUNDS = 101 };

struct line {
  _Alignas(64) uint64_t packets;
  uint64_t bytes;
};

/* The floor through a call, with the same signature as the library's: two
 * scalar adds (the empty asm between them keeps the compiler from fusing
 * them into one vector add, which is slower here: see `floor_vector`). */
__attribute__((noinline)) void floor_call(struct line *l,
                                          nodestats_direction dir,
                                          uint64_t packets, uint64_t bytes,
                                          bool retransmit) {
  (void)dir;
  (void)retransmit;
  if (l == NULL)
    return;
  l->packets += packets;
  __asm__ volatile("" ::: "memory");
  l->bytes += bytes;
}

/* The same as the compiler likes it (gcc -O2 turns the pair into one
 * 16-byte vector load-add-store). */
__attribute__((noinline)) void floor_vector(struct line *l,
                                            nodestats_direction dir,
                                            uint64_t packets, uint64_t bytes,
                                            bool retransmit) {
  (void)dir;
  (void)retransmit;
  if (l == NULL)
    return;
  l->packets += packets;
  l->bytes += bytes;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  const long CALLS = argc > 1 ? atol(argv[1]) : 20 * 1000 * 1000;
  const int ROUNDS = argc > 2 ? atoi(argv[2]) : 31;
  if (CALLS <= 0 || ROUNDS <= 0 || ROUNDS > MAX_ROUNDS) {
    fprintf(stderr, "usage: thread_floor [calls per round] [rounds <= %d]\n",
            MAX_ROUNDS);
    return 2;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0)
    perror("sched_setaffinity (timing unpinned)");

  nodestats_t *s = NULL;
  nodestats_thread_t *t = NULL;
  if (nodestats_open(NULL, &s) != NODESTATS_STATUS_OK ||
      nodestats_thread_open(s, &t) != NODESTATS_STATUS_OK) {
    fprintf(stderr, "cannot open a thread writer\n");
    return 2;
  }
  static struct line line, vline;
  double lib[MAX_ROUNDS], flo[MAX_ROUNDS], vec[MAX_ROUNDS];
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ns();
    for (long i = 0; i < CALLS; i++)
      nodestats_thread_record_packets(t, NODESTATS_DIRECTION_INCOMING, 1, 1200,
                                      false);
    double t1 = now_ns();
    for (long i = 0; i < CALLS; i++)
      floor_call(&line, NODESTATS_DIRECTION_INCOMING, 1, 1200, false);
    double t2 = now_ns();
    for (long i = 0; i < CALLS; i++)
      floor_vector(&vline, NODESTATS_DIRECTION_INCOMING, 1, 1200, false);
    double t3 = now_ns();
    lib[r] = (t1 - t0) / CALLS;
    flo[r] = (t2 - t1) / CALLS;
    vec[r] = (t3 - t2) / CALLS;
  }
  nodestats_node_stats ns;
  if (nodestats_read(s, &ns) != NODESTATS_STATUS_OK) {
    fprintf(stderr, "read failed\n");
    return 2;
  }
  const uint64_t want = (uint64_t)CALLS * ROUNDS;
  int exact = ns.packets_in == want && ns.bytes_in == 1200 * want &&
              line.packets == want && line.bytes == 1200 * want &&
              vline.packets == want && vline.bytes == 1200 * want;
  qsort(lib, ROUNDS, sizeof lib[0], cmp);
  qsort(flo, ROUNDS, sizeof flo[0], cmp);
  qsort(vec, ROUNDS, sizeof vec[0], cmp);
  printf("nodestats_thread_record_packets: best %.3f ns, median %.3f ns\n",
         lib[0], lib[ROUNDS / 2]);
  printf("floor through a call:            best %.3f ns, median %.3f ns\n",
         flo[0], flo[ROUNDS / 2]);
  printf("floor, vectorised by the compiler: best %.3f ns, median %.3f ns\n",
         vec[0], vec[ROUNDS / 2]);
  printf("ratio to the floor: best %.3f, median %.3f (target <= 1.15)\n",
         lib[0] / flo[0], lib[ROUNDS / 2] / flo[ROUNDS / 2]);
  printf("totals %s: packets_in %" PRIu64 ", want %" PRIu64 "\n",
         exact ? "exact" : "WRONG", ns.packets_in, want);
  printf("%d passed, %d failed\n", exact, !exact);
  nodestats_thread_close(t);
  nodestats_close(s);
  return exact ? 0 : 1;
}
