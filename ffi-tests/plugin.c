/* A plugin: a shared object that links the static library, as a Janus or
 * GStreamer plugin would. Linked from the installed libnodestats.a it
 * exports its own symbols and the C API, none of the library's internals
 * (tests/ffi.rs lists them with nm -D). */
#include <nodestats.h>
#include <stdbool.h>
#include <stddef.h>

static nodestats_t *stats;

int plugin_init(void) {
  return nodestats_open(NULL, &stats) == NODESTATS_STATUS_OK ? 0 : -1;
}

void plugin_incoming_packet(unsigned len) {
  nodestats_record_packets(stats, NODESTATS_DIRECTION_INCOMING, 1, len, false);
}

void plugin_destroy(void) {
  nodestats_close(stats);
  stats = NULL;
}
