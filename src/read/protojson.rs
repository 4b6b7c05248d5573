//! `livekit.NodeStats` in protobuf's canonical JSON form, as Go's
//! `protojson.Marshal` writes it and a strict `protojson.Unmarshal` reads
//! it back (`NodeStats::to_protojson`).
//!
//! The serde form of [`NodeStats`] keeps proto field names and adds fields of
//! our own; LiveKit's Go code rejects both. protojson differs in that:
//!
//! * keys are the fields' JSON names: the proto name in lowerCamelCase
//!   (`num_tracks_in` → `numTracksIn`), fields in declaration order;
//! * `int64`/`uint64` are decimal strings (`"1700000000"`), `int32`/`uint32`
//!   numbers;
//! * `float` fields are `float32` in Go: the value is narrowed and printed in
//!   the shortest form that reads back as that `float32`, plain or with an
//!   exponent outside [1e-6, 1e21) (`1e-07`→`1e-7`, `1e+21`), and NaN and
//!   ±infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`;
//! * fields at their default (0, `0.0`, empty `rates`) are left out, as
//!   Marshal does without `EmitUnpopulated`; `-0.0` is written, as Go does;
//! * `sys_packets_out` and `sys_packets_dropped` are `uint32` in LiveKit's
//!   schema, and LiveKit sums them in `uint32`, so they wrap modulo 2³²:
//!   the low 32 bits are written, as in [`NodeStats::encode_protobuf`];
//! * our own fields (`num_cpus_exact`, `segment_id`, `window_seconds`, …)
//!   and the deprecated ones LiveKit leaves unset are not written.
//!
//! The output is compact; Go's protojson adds random whitespace to keep
//! callers from comparing bytes, so compare parsed values.

use super::node_stats::{NodeStats, NodeStatsRate};
use crate::gofloat::format_go;

/// Writes one JSON object, leaving default values out.
struct Obj {
    out: String,
    empty: bool,
}

impl Obj {
    fn new() -> Obj {
        Obj {
            out: String::from("{"),
            empty: true,
        }
    }

    /// `,"jsonName":`
    fn key(&mut self, proto_name: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(&json_name(proto_name));
        self.out.push_str("\":");
    }

    /// `int64`: a string.
    fn int64(&mut self, name: &str, v: i64) {
        if v != 0 {
            self.key(name);
            self.out.push('"');
            self.out.push_str(&v.to_string());
            self.out.push('"');
        }
    }

    /// `uint64`: a string.
    fn uint64(&mut self, name: &str, v: u64) {
        if v != 0 {
            self.key(name);
            self.out.push('"');
            self.out.push_str(&v.to_string());
            self.out.push('"');
        }
    }

    /// `int32`: a number.
    fn int32(&mut self, name: &str, v: i32) {
        if v != 0 {
            self.key(name);
            self.out.push_str(&v.to_string());
        }
    }

    /// `uint32`: a number.
    fn uint32(&mut self, name: &str, v: u32) {
        if v != 0 {
            self.key(name);
            self.out.push_str(&v.to_string());
        }
    }

    /// `float`: narrowed to `f32`; written unless +0.0.
    fn float(&mut self, name: &str, v: f64) {
        let f = v as f32;
        if f.to_bits() != 0 {
            self.key(name);
            self.out.push_str(&json_float32(f));
        }
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// protobuf's JSON name of a field (Go's `strs.JSONCamelCase`): drop each
/// `_` and capitalise a lowercase letter after it.
fn json_name(proto_name: &str) -> String {
    let mut out = String::with_capacity(proto_name.len());
    let mut after_underscore = false;
    for c in proto_name.chars() {
        if c != '_' {
            out.push(if after_underscore {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        after_underscore = c == '_';
    }
    out
}

/// A `float` field as protojson writes it.
fn json_float32(f: f32) -> String {
    if f.is_nan() {
        return "\"NaN\"".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        }
        .into();
    }
    let abs = f.abs();
    let exponent = abs != 0.0 && !(1e-6..1e21).contains(&abs);
    let mut s = format_go(f64::from(f), if exponent { 'e' } else { 'f' }, 32);
    // Go's JSON trims a one-digit negative exponent's zero: e-07 → e-7.
    let n = s.len();
    if exponent && n >= 4 && s[..n - 1].ends_with("e-0") {
        s.remove(n - 2);
    }
    s
}

impl NodeStatsRate {
    /// This rate as `livekit.NodeStatsRate` protojson (see
    /// [`NodeStats::to_protojson`]).
    pub fn to_protojson(&self) -> String {
        let mut o = Obj::new();
        o.int64("started_at", self.started_at);
        o.int64("ended_at", self.ended_at);
        o.int64("duration", self.duration);
        for (name, v) in [
            ("track_publish_attempts", self.track_publish_attempts),
            ("track_publish_success", self.track_publish_success),
            ("track_publish_cancels", self.track_publish_cancels),
            ("track_subscribe_attempts", self.track_subscribe_attempts),
            ("track_subscribe_success", self.track_subscribe_success),
            ("track_subscribe_cancels", self.track_subscribe_cancels),
            ("bytes_in", self.bytes_in),
            ("bytes_out", self.bytes_out),
            ("packets_in", self.packets_in),
            ("packets_out", self.packets_out),
            ("nack_total", self.nack_total),
            ("sys_packets_out", self.sys_packets_out),
            ("sys_packets_dropped", self.sys_packets_dropped),
            ("retransmit_bytes_out", self.retransmit_bytes_out),
            ("retransmit_packets_out", self.retransmit_packets_out),
            (
                "participant_signal_connected",
                self.participant_signal_connected,
            ),
            ("participant_signal_failed", self.participant_signal_failed),
            (
                "participant_signal_validation_failed",
                self.participant_signal_validation_failed,
            ),
            ("participant_rtc_connected", self.participant_rtc_connected),
            ("participant_rtc_init", self.participant_rtc_init),
            ("participant_rtc_canceled", self.participant_rtc_canceled),
            ("participant_rtc_active", self.participant_rtc_active),
            ("cpu_load", self.cpu_load),
            ("memory_load", self.memory_load),
            ("memory_used", self.memory_used),
            ("memory_total", self.memory_total),
        ] {
            o.float(name, v);
        }
        o.finish()
    }
}

impl NodeStats {
    /// This update as `livekit.NodeStats` protojson: what Go's
    /// `protojson.Marshal` writes and a strict `protojson.Unmarshal` accepts
    /// (lowerCamelCase names, 64-bit integers as strings, defaults left
    /// out, `float`s narrowed to `float32`, NaN and infinities as strings,
    /// `sys_packets_*` wrapped to `uint32`, none of our own fields).
    pub fn to_protojson(&self) -> String {
        let mut o = Obj::new();
        o.int64("started_at", self.started_at);
        o.int64("updated_at", self.updated_at);
        o.int32("num_rooms", self.num_rooms);
        o.int32("num_clients", self.num_clients);
        o.int32("num_tracks_in", self.num_tracks_in);
        o.int32("num_tracks_out", self.num_tracks_out);
        o.int32(
            "num_track_publish_attempts",
            self.num_track_publish_attempts,
        );
        o.int32("num_track_publish_success", self.num_track_publish_success);
        o.int32("num_track_publish_cancels", self.num_track_publish_cancels);
        o.int32(
            "num_track_subscribe_attempts",
            self.num_track_subscribe_attempts,
        );
        o.int32(
            "num_track_subscribe_success",
            self.num_track_subscribe_success,
        );
        o.int32(
            "num_track_subscribe_cancels",
            self.num_track_subscribe_cancels,
        );
        o.uint64("bytes_in", self.bytes_in);
        o.uint64("bytes_out", self.bytes_out);
        o.uint64("packets_in", self.packets_in);
        o.uint64("packets_out", self.packets_out);
        o.uint64("nack_total", self.nack_total);
        o.float("packets_in_per_sec", self.packets_in_per_sec);
        o.uint32("num_cpus", self.num_cpus);
        o.float("load_avg_last1min", self.load_avg_last1min);
        o.float("load_avg_last5min", self.load_avg_last5min);
        o.float("load_avg_last15min", self.load_avg_last15min);
        o.float("cpu_load", self.cpu_load);
        o.uint64("memory_total", self.memory_total);
        o.uint64("memory_used", self.memory_used);
        o.uint32("sys_packets_out", self.sys_packets_out as u32);
        o.uint32("sys_packets_dropped", self.sys_packets_dropped as u32);
        o.uint64("retransmit_bytes_out", self.retransmit_bytes_out);
        o.uint64("retransmit_packets_out", self.retransmit_packets_out);
        o.uint64(
            "participant_signal_connected",
            self.participant_signal_connected,
        );
        o.uint64("participant_rtc_connected", self.participant_rtc_connected);
        o.uint64("participant_rtc_init", self.participant_rtc_init);
        o.uint64("participant_rtc_canceled", self.participant_rtc_canceled);
        o.uint64("participant_rtc_active", self.participant_rtc_active);
        o.uint32("forward_latency", self.forward_latency);
        o.uint32("forward_jitter", self.forward_jitter);
        if !self.rates.is_empty() {
            o.key("rates");
            o.out.push('[');
            for (i, r) in self.rates.iter().enumerate() {
                if i > 0 {
                    o.out.push(',');
                }
                o.out.push_str(&r.to_protojson());
            }
            o.out.push(']');
        }
        o.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeMap;

    /// message -> JSON name -> proto type, from the reference field table
    /// (every field, deprecated ones included).
    fn schema() -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let tsv = include_str!("../../tests/data/livekit-nodestats-fields.tsv");
        for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            out.entry(cols[0].to_string())
                .or_default()
                .insert(json_name(cols[1]), cols[3].to_string());
        }
        out.get_mut("NodeStats")
            .unwrap()
            .insert("rates".into(), "repeated NodeStatsRate".into());
        out
    }

    /// Checks every key of `obj` against `message`'s fields and each value's
    /// JSON type against the field's proto type.
    fn check_types(
        schema: &BTreeMap<String, BTreeMap<String, String>>,
        message: &str,
        obj: &Value,
    ) {
        let fields = &schema[message];
        for (k, v) in obj.as_object().unwrap() {
            let ty = fields
                .get(k)
                .unwrap_or_else(|| panic!("{message}: unknown JSON name {k}"));
            match ty.as_str() {
                "int64" => assert!(v.as_str().unwrap().parse::<i64>().is_ok(), "{k}: {v}"),
                "uint64" => assert!(v.as_str().unwrap().parse::<u64>().is_ok(), "{k}: {v}"),
                "int32" => assert!(i32::try_from(v.as_i64().unwrap()).is_ok(), "{k}: {v}"),
                "uint32" => assert!(u32::try_from(v.as_u64().unwrap()).is_ok(), "{k}: {v}"),
                "float" => assert!(
                    v.is_number()
                        || ["NaN", "Infinity", "-Infinity"].contains(&v.as_str().unwrap()),
                    "{k}: {v}"
                ),
                "repeated NodeStatsRate" => {
                    for r in v.as_array().unwrap() {
                        check_types(schema, "NodeStatsRate", r);
                    }
                }
                other => panic!("{k}: type {other}"),
            }
            assert!(!v.is_null(), "{k}");
        }
    }

    fn rate(seed: f64) -> NodeStatsRate {
        NodeStatsRate {
            started_at: 1_700_000_004,
            ended_at: 1_700_000_014,
            duration: 10,
            track_publish_attempts: seed,
            track_publish_success: seed + 1.0,
            track_publish_cancels: seed + 2.0,
            track_subscribe_attempts: seed + 3.0,
            track_subscribe_success: seed + 4.0,
            track_subscribe_cancels: seed + 5.0,
            bytes_in: 1.25e6,
            bytes_out: 2.5e21,
            packets_in: 1e-7,
            packets_out: 0.1,
            nack_total: 7.0,
            sys_packets_out: 8.0,
            sys_packets_dropped: 9.0,
            retransmit_bytes_out: 10.0,
            retransmit_packets_out: 11.0,
            participant_signal_connected: 12.0,
            participant_signal_failed: 12.25,
            participant_signal_validation_failed: 12.5,
            participant_rtc_connected: 13.0,
            participant_rtc_init: 14.0,
            participant_rtc_canceled: 15.0,
            participant_rtc_active: 16.0,
            cpu_load: f64::NAN,
            memory_load: 0.5,
            memory_used: f64::INFINITY,
            memory_total: f64::NEG_INFINITY,
            interval_seconds: 10.0,
            window_seconds: 10.0,
            complete: true,
            resets: 1,
        }
    }

    /// Every LiveKit field set to a value that is not its default.
    fn full() -> NodeStats {
        NodeStats {
            started_at: 1_700_000_000,
            updated_at: 1_700_000_014,
            num_rooms: -1,
            num_clients: 2,
            num_tracks_in: 3,
            num_tracks_out: 4,
            num_track_publish_attempts: 5,
            num_track_publish_success: 6,
            num_track_publish_cancels: 7,
            num_track_subscribe_attempts: 8,
            num_track_subscribe_success: 9,
            num_track_subscribe_cancels: 10,
            bytes_in: u64::MAX,
            bytes_out: 12,
            packets_in: 13,
            packets_out: 14,
            nack_total: 15,
            packets_in_per_sec: 15.5,
            num_cpus: 16,
            load_avg_last1min: 0.75,
            load_avg_last5min: 1.5,
            load_avg_last15min: 2.0,
            cpu_load: 0.3,
            memory_total: 1 << 34,
            memory_used: 1 << 33,
            sys_packets_out: (1 << 32) + 5,
            sys_packets_dropped: 17,
            retransmit_bytes_out: 18,
            retransmit_packets_out: 19,
            participant_signal_connected: 20,
            participant_rtc_connected: 21,
            participant_rtc_init: 22,
            participant_rtc_canceled: 23,
            participant_rtc_active: 24,
            forward_latency: 25,
            forward_jitter: 26,
            rates: vec![rate(1.0), rate(2.0)],
            num_cpus_exact: 16.5,
            udp_rcvbuf_errors: Some(1),
            udp_in_errors: Some(2),
            rx_dropped: Some(3),
            segment_id: "ab".into(),
            live_writers: 1,
        }
    }

    #[test]
    fn every_key_is_a_livekit_json_name_with_its_json_type() {
        let schema = schema();
        let v: Value = serde_json::from_str(&full().to_protojson()).unwrap();
        check_types(&schema, "NodeStats", &v);
        let obj = v.as_object().unwrap();
        // 36 LiveKit fields in NodeStats are ours to carry, plus rates.
        assert_eq!(obj.len(), 37, "{v}");
        assert_eq!(v["rates"].as_array().unwrap().len(), 2);
        assert_eq!(v["rates"][0].as_object().unwrap().len(), 29);
        for ours in ["numCpusExact", "segmentId", "liveWriters", "rxDropped"] {
            assert!(obj.get(ours).is_none(), "{ours}");
        }
        assert!(v["rates"][0].get("windowSeconds").is_none());
    }

    #[test]
    fn values_are_written_as_protojson_does() {
        let v: Value = serde_json::from_str(&full().to_protojson()).unwrap();
        assert_eq!(v["startedAt"], "1700000000");
        assert_eq!(v["bytesIn"], "18446744073709551615");
        assert_eq!(v["numRooms"], -1);
        assert_eq!(v["numCpus"], 16);
        assert_eq!(v["sysPacketsOut"], 5, "uint32 wraps, as LiveKit's sum does");
        assert_eq!(v["loadAvgLast1min"], 0.75);
        let r = &v["rates"][0];
        assert_eq!(
            (&r["duration"], &r["endedAt"]),
            (&Value::from("10"), &Value::from("1700000014"))
        );
        assert_eq!(
            (&r["cpuLoad"], &r["memoryUsed"]),
            (&Value::from("NaN"), &Value::from("Infinity"))
        );
        assert_eq!(r["memoryTotal"], "-Infinity");
        // The text of floats: float32 shortest, exponent outside [1e-6, 1e21).
        let text = full().to_protojson();
        for part in [
            "\"cpuLoad\":0.3,",
            "\"bytesIn\":1250000,",
            "\"bytesOut\":2.5e+21,",
            "\"packetsIn\":1e-7,",
            "\"packetsOut\":0.1,",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }

    #[test]
    fn defaults_are_left_out() {
        assert_eq!(NodeStats::default().to_protojson(), "{}");
        assert_eq!(NodeStatsRate::default().to_protojson(), "{}");
        let ns = NodeStats {
            num_clients: 3,
            cpu_load: -0.0,
            rates: vec![NodeStatsRate::default()],
            num_cpus_exact: 2.5,
            ..NodeStats::default()
        };
        assert_eq!(
            ns.to_protojson(),
            r#"{"numClients":3,"cpuLoad":-0,"rates":[{}]}"#
        );
        // A value that narrows to 0 in float32 is a default too.
        let ns = NodeStats {
            cpu_load: 1e-50,
            ..NodeStats::default()
        };
        assert_eq!(ns.to_protojson(), "{}");
    }

    #[test]
    fn float32_forms() {
        for (f, want) in [
            (0.1f32, "0.1"),
            (1e-6, "0.000001"),
            (9.9e-7, "9.9e-7"),
            (1.5e-10, "1.5e-10"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (f32::MAX, "3.4028235e+38"),
            (-2.5, "-2.5"),
            (16777217.0, "16777216"),
        ] {
            assert_eq!(json_float32(f), want, "{f:e}");
        }
    }

    #[test]
    fn json_names_are_lower_camel_case() {
        assert_eq!(json_name("load_avg_last1min"), "loadAvgLast1min");
        assert_eq!(json_name("participant_rtc_init"), "participantRtcInit");
        assert_eq!(json_name("num_cpus"), "numCpus");
        assert_eq!(json_name("rates"), "rates");
    }
}
