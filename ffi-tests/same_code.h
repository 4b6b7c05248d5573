/* One piece of code that test.c compiles as C11 and test.cpp as C++17:
 * the API's enum types are the same uint32_t in both languages, so storing
 * or passing a plain integer (from a config file, a wire format, another
 * library) compiles the same everywhere. Returns 0 when the segment counted
 * what it recorded. */
#ifndef NODESTATS_SAME_CODE_H
#define NODESTATS_SAME_CODE_H

#include "nodestats.h"

static int same_code_in_c_and_cpp(void) {
  nodestats_t *s = NULL;
  nodestats_status st = nodestats_open(NULL, &s);
  if (st != NODESTATS_STATUS_OK)
    return 1;
  uint32_t from_config = 1; /* "outgoing", as a number */
  nodestats_direction in = 0;
  nodestats_direction out = from_config;
  uint32_t raw = NODESTATS_DIRECTION_INCOMING;
  nodestats_record_packets(s, in, 2, 200, false);
  nodestats_record_packets(s, out, 3, 300, false);
  nodestats_record_packets(s, raw, 1, 100, false);
  nodestats_track_kind video = NODESTATS_TRACK_KIND_VIDEO;
  nodestats_track_published(s, video);
  nodestats_metric_kind kind = 2;
  nodestats_family_spec spec;
  nodestats_family_spec_init(&spec);
  spec.name = "same_code_seconds";
  spec.kind = kind;
  st = nodestats_family_declare(s, &spec);
  uint32_t code = st;
  nodestats_node_stats ns;
  int bad = code != 0 || nodestats_read(s, &ns) != NODESTATS_STATUS_OK ||
            ns.packets_in != 3 || ns.packets_out != 3;
  nodestats_close(s);
  return bad;
}

#endif
