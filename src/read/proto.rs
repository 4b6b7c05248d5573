//! Protobuf encoding of [`NodeStats`] and [`NodeStatsRate`], wire-compatible
//! with `livekit.NodeStats` / `livekit.NodeStatsRate` (field numbers from
//! `livekit_internal.proto`).
//!
//! Proto3 rules: fields at their default value are not written. Floats are
//! `float` on the wire (our `f64`s are narrowed). `sys_packets_out` and
//! `sys_packets_dropped` are `uint32` in LiveKit's schema; we write their
//! low 32 bits, which is what a LiveKit decoder keeps of a wider varint.
//! Our extra fields are not encoded.

use super::node_stats::{NodeStats, NodeStatsRate};

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (field as u64) << 3 | wire as u64);
}

/// `int32`, `int64`, `uint32`, `uint64` (negatives sign-extended, as
/// protobuf does for int32/int64).
fn int(out: &mut Vec<u8>, field: u32, v: i128) {
    if v != 0 {
        key(out, field, 0);
        varint(out, v as i64 as u64);
    }
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(out, field, 0);
        varint(out, v);
    }
}

fn float(out: &mut Vec<u8>, field: u32, v: f64) {
    let f = v as f32;
    if f.to_bits() != 0 {
        key(out, field, 5);
        out.extend_from_slice(&f.to_le_bytes());
    }
}

impl NodeStatsRate {
    /// The protobuf bytes of this rate (`livekit.NodeStatsRate`).
    pub fn encode_protobuf(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(160);
        int(&mut o, 1, self.started_at as i128);
        int(&mut o, 2, self.ended_at as i128);
        int(&mut o, 3, self.duration as i128);
        for (n, v) in [
            (4, self.track_publish_attempts),
            (5, self.track_publish_success),
            (6, self.track_subscribe_attempts),
            (7, self.track_subscribe_success),
            (8, self.bytes_in),
            (9, self.bytes_out),
            (10, self.packets_in),
            (11, self.packets_out),
            (12, self.nack_total),
            (13, self.sys_packets_out),
            (14, self.sys_packets_dropped),
            (15, self.retransmit_bytes_out),
            (16, self.retransmit_packets_out),
            (17, self.participant_signal_connected),
            (18, self.participant_rtc_connected),
            (19, self.participant_rtc_init),
            (20, self.cpu_load),
            (21, self.memory_load),
            (22, self.memory_used),
            (23, self.memory_total),
            (24, self.track_publish_cancels),
            (25, self.track_subscribe_cancels),
            (26, self.participant_rtc_canceled),
            (27, self.participant_rtc_active),
        ] {
            float(&mut o, n, v);
        }
        o
    }
}

impl NodeStats {
    /// The protobuf bytes of this update (`livekit.NodeStats`), rates
    /// included.
    pub fn encode_protobuf(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(256 + 160 * self.rates.len());
        int(&mut o, 1, self.started_at as i128);
        int(&mut o, 2, self.updated_at as i128);
        int(&mut o, 3, self.num_rooms as i128);
        int(&mut o, 4, self.num_clients as i128);
        int(&mut o, 5, self.num_tracks_in as i128);
        int(&mut o, 6, self.num_tracks_out as i128);
        uint(&mut o, 7, self.bytes_in);
        uint(&mut o, 8, self.bytes_out);
        uint(&mut o, 9, self.packets_in);
        uint(&mut o, 10, self.packets_out);
        uint(&mut o, 11, self.nack_total);
        uint(&mut o, 17, self.num_cpus as u64);
        float(&mut o, 18, self.load_avg_last1min);
        float(&mut o, 19, self.load_avg_last5min);
        float(&mut o, 20, self.load_avg_last15min);
        float(&mut o, 21, self.cpu_load);
        uint(&mut o, 22, self.retransmit_bytes_out);
        uint(&mut o, 23, self.retransmit_packets_out);
        uint(&mut o, 26, self.participant_signal_connected);
        uint(&mut o, 28, self.sys_packets_out & 0xffff_ffff);
        uint(&mut o, 29, self.sys_packets_dropped & 0xffff_ffff);
        uint(&mut o, 34, self.memory_total);
        uint(&mut o, 35, self.memory_used);
        int(&mut o, 36, self.num_track_publish_attempts as i128);
        int(&mut o, 38, self.num_track_publish_success as i128);
        int(&mut o, 40, self.num_track_subscribe_attempts as i128);
        int(&mut o, 42, self.num_track_subscribe_success as i128);
        uint(&mut o, 44, self.participant_rtc_connected);
        uint(&mut o, 46, self.participant_rtc_init);
        uint(&mut o, 48, self.forward_latency as u64);
        uint(&mut o, 49, self.forward_jitter as u64);
        for r in &self.rates {
            let b = r.encode_protobuf();
            key(&mut o, 50, 2);
            varint(&mut o, b.len() as u64);
            o.extend_from_slice(&b);
        }
        int(&mut o, 51, self.num_track_publish_cancels as i128);
        int(&mut o, 52, self.num_track_subscribe_cancels as i128);
        uint(&mut o, 53, self.participant_rtc_canceled);
        uint(&mut o, 54, self.participant_rtc_active);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_wire_format() {
        let mut o = Vec::new();
        varint(&mut o, 300);
        assert_eq!(o, [0xac, 0x02]);
        let mut o = Vec::new();
        int(&mut o, 3, -1);
        assert_eq!(
            o.len(),
            11,
            "negative int32 is a 10-byte varint after the key"
        );
        assert_eq!(o[0], 3 << 3);
        let mut o = Vec::new();
        float(&mut o, 21, 0.5);
        // Key 21 << 3 | 5 = 173 is a two-byte varint.
        assert_eq!(o, [0xad, 0x01, 0, 0, 0, 0x3f]);
        assert!(
            NodeStats::default().encode_protobuf().is_empty(),
            "defaults are not written"
        );
    }
}
