//! Human-readable NodeStats output.

use nodestats::NodeStats;

/// What the columns of [`HEADER`] mean, for the line above it.
pub(crate) const LEGEND: &str = "  rates are per second over the last `window` of updates (`*`: fewer updates so far than --rates spans); \
`cpu%`: the whole machine's CPUs busy since the last update, all cores = 100";

pub(crate) const HEADER: &str = "   time  rooms clients trk_in trk_out |   pkt/s in   pkt/s out |  Mbit/s in Mbit/s out |  nack/s retx/s | cpu%  window";

/// One compact row: gauges and the first rate.
pub(crate) fn row(elapsed_s: f64, ns: &NodeStats) -> String {
    let r = ns.rates.first().cloned().unwrap_or_default();
    let window = if r.complete {
        format!("{:.1}s", r.window_seconds)
    } else {
        format!("{:.1}s*", r.window_seconds)
    };
    format!(
        "{:>6.1}s {:>6} {:>7} {:>6} {:>7} | {:>10.0} {:>11.0} | {:>10.2} {:>10.2} | {:>7.0} {:>6.0} | {:>4.0} {:>7}",
        elapsed_s,
        ns.num_rooms,
        ns.num_clients,
        ns.num_tracks_in,
        ns.num_tracks_out,
        r.packets_in,
        r.packets_out,
        r.bytes_in * 8.0 / 1e6,
        r.bytes_out * 8.0 / 1e6,
        r.nack_total,
        r.retransmit_packets_out,
        ns.cpu_load * 100.0,
        window,
    )
}

/// Every field, one per line.
pub(crate) fn print_full(ns: &NodeStats) {
    let value = serde_json::to_value(ns).unwrap_or_default();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if k == "rates" {
                continue;
            }
            say!("{k:>32}  {v}");
        }
    }
    for (i, r) in ns.rates.iter().enumerate() {
        say!(
            "rate[{i}] over {:.1}s (interval {:.0}s{}): pkt/s in {:.0} out {:.0}, bytes/s in {:.0} out {:.0}, nack/s {:.1}",
            r.window_seconds,
            r.interval_seconds,
            if r.complete { "" } else { ", partial" },
            r.packets_in,
            r.packets_out,
            r.bytes_in,
            r.bytes_out,
            r.nack_total
        );
    }
}
