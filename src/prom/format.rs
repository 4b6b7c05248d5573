//! [`Format`]: the exposition formats the exporter writes, and the choice
//! among them from an HTTP `Accept` header (RFC 9110 §12.5.1, formerly
//! RFC 7231 §5.3.2: media ranges with parameters and `q` weights); and
//! [`OpenMetricsCounters`], how OpenMetrics names counters.

/// An exposition format of [`Exporter::write`](crate::Exporter::write).
///
/// Prometheus text 0.0.4 is the default and what LiveKit serves; the
/// others are chosen by content negotiation ([`Format::negotiate`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4, byte for byte what
    /// LiveKit's client_golang registry writes.
    Text,
    /// OpenMetrics 1.0 text (`# EOF`, `# UNIT`, counters' `_total`).
    OpenMetrics,
    /// The Prometheus protobuf exposition: length-delimited
    /// `io.prometheus.client.MetricFamily` messages, histograms with
    /// their classic and native buckets (what Prometheus asks for first
    /// with native histograms enabled).
    Protobuf,
}

impl Format {
    /// Every format, in the order the exporter prefers on a tie.
    pub const ALL: [Format; 3] = [Format::Text, Format::OpenMetrics, Format::Protobuf];

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
        }
    }

    /// The format to answer a request with this `Accept` header (`None`:
    /// no header): the one the client weighs highest, [`Format::Text`]
    /// when it weighs several the same, when nothing it accepts is
    /// offered, or without a header.
    ///
    /// A format's weight is the `q` of the most specific media range that
    /// matches it (`type/subtype` with parameters, then without, then
    /// `type/*`, then `*/*`). OpenMetrics matches
    /// `application/openmetrics-text` with `version` 1.0.0, 0.0.1 or none
    /// (0.0.1 is the draft Prometheus still asks for second, the same
    /// text); text matches `text/plain` with `version` 0.0.4 or none;
    /// protobuf matches `application/vnd.google.protobuf` only with
    /// `proto=io.prometheus.client.MetricFamily` and `encoding=delimited`
    /// (as Prometheus asks for it). Other parameters (`charset`,
    /// `escaping`) do not change the match.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best = (Format::Text, 0.0f32);
        for f in Format::ALL {
            let q = weight(accept, f);
            if q > best.1 {
                best = (f, q);
            }
        }
        best.0
    }

    /// Whether a media range `type/subtype` with these parameters (`q`
    /// left out; names lower-cased) names this format.
    fn names(self, mtype: &str, subtype: &str, params: &[(String, &str)]) -> bool {
        let param = |name: &str| params.iter().find(|p| p.0 == name).map(|p| p.1);
        let (t, s, versions): (&str, &str, &[&str]) = match self {
            Format::Text => ("text", "plain", &["0.0.4"]),
            Format::OpenMetrics => ("application", "openmetrics-text", &["1.0.0", "0.0.1"]),
            Format::Protobuf => ("application", "vnd.google.protobuf", &[]),
        };
        let params_match = match self {
            Format::Protobuf => {
                param("proto") == Some("io.prometheus.client.MetricFamily")
                    && param("encoding").is_some_and(|e| e.eq_ignore_ascii_case("delimited"))
            }
            _ => param("version").is_none_or(|v| versions.contains(&v)),
        };
        mtype.eq_ignore_ascii_case(t) && subtype.eq_ignore_ascii_case(s) && params_match
    }

    /// The top-level media type of this format.
    fn mtype(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::OpenMetrics | Format::Protobuf => "application",
        }
    }
}

/// The weight `accept` gives `format`: the `q` of its most specific
/// matching media range, 0 if none matches.
fn weight(accept: &str, format: Format) -> f32 {
    // (specificity, q) of the best match so far.
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let Some((mtype, subtype)) = media.split_once('/') else {
            continue;
        };
        let (mtype, subtype) = (mtype.trim(), subtype.trim());
        let mut q = 1.0f32;
        let mut params = Vec::new();
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"'));
            if k == "q" {
                q = v
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .unwrap_or(0.0);
            } else if k != "charset" && k != "escaping" {
                params.push((k, v));
            }
        }
        let specificity = if mtype == "*" && subtype == "*" {
            0
        } else if subtype == "*" {
            if !mtype.eq_ignore_ascii_case(format.mtype()) {
                continue;
            }
            1
        } else if format.names(mtype, subtype, &params) {
            2 + !params.is_empty() as u8
        } else {
            continue;
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

/// How a counter whose name does not end in `_total` (LiveKit's
/// `livekit_packet_bytes`, `livekit_track_publish_counter`, …) is written
/// in OpenMetrics, where a counter's samples must end in `_total`.
///
/// Prometheus asks for OpenMetrics first by default, and LiveKit's own
/// server answers it with text, so Prometheus stores those counters under
/// their own names. [`Unknown`](Self::Unknown), the default, keeps every
/// series name what the text format gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OpenMetricsCounters {
    /// Written as OpenMetrics type `unknown` under their own name: the
    /// series names stay those of the text format (and of LiveKit).
    #[default]
    Unknown,
    /// Written as OpenMetrics counters, their samples named with `_total`
    /// appended (`livekit_packet_bytes_total`): typed, but renamed.
    Total,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: &str) -> Format {
        Format::negotiate(Some(accept))
    }

    #[test]
    fn what_prometheus_sends() {
        // Prometheus 2.x's default scrape Accept.
        assert_eq!(
            pick("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::OpenMetrics
        );
        // Prometheus 3.x's.
        assert_eq!(
            pick("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"),
            Format::OpenMetrics
        );
        // `scrape_protocols: [PrometheusText0.0.4]`.
        assert_eq!(pick("text/plain;version=0.0.4;q=1,*/*;q=0.1"), Format::Text);
        // Prometheus 3.x's with native histograms enabled
        // (`scrape_protocols` PrometheusProto first).
        assert_eq!(
            pick("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"),
            Format::Protobuf
        );
        // Prometheus 2.x's with native histograms enabled.
        assert_eq!(
            pick("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::Protobuf
        );
        // Protobuf of another message, or not delimited, is not ours:
        // the next best.
        assert_eq!(
            pick("application/vnd.google.protobuf;proto=io.prometheus.client.Metric;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3"),
            Format::OpenMetrics
        );
        assert_eq!(
            pick("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text;q=0.5,text/plain;q=0.3"),
            Format::Text
        );
        assert_eq!(
            pick("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;q=0.5,text/plain;q=0.3"),
            Format::Text
        );
        assert_eq!(
            pick("application/vnd.google.protobuf;q=0.5,text/plain;q=0.3"),
            Format::Text
        );
    }

    #[test]
    fn rules() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(pick(""), Format::Text);
        assert_eq!(pick("*/*"), Format::Text);
        assert_eq!(pick("application/json"), Format::Text);
        assert_eq!(pick("application/openmetrics-text"), Format::OpenMetrics);
        assert_eq!(
            pick("Application/OpenMetrics-Text; Version=\"1.0.0\""),
            Format::OpenMetrics
        );
        assert_eq!(pick("application/*"), Format::OpenMetrics);
        assert_eq!(
            pick("application/openmetrics-text;version=0.0.1"),
            Format::OpenMetrics
        );
        // A version we do not write is not a match.
        assert_eq!(
            pick("application/openmetrics-text;version=2.0.0"),
            Format::Text
        );
        // Equal weights: text.
        assert_eq!(
            pick("application/openmetrics-text, text/plain"),
            Format::Text
        );
        // Weights decide, wherever the range stands.
        assert_eq!(
            pick("text/plain;q=0.2, application/openmetrics-text;q=0.3"),
            Format::OpenMetrics
        );
        assert_eq!(
            pick("text/plain;q=0.4, application/openmetrics-text;q=0.3"),
            Format::Text
        );
        // q=0 refuses; the most specific range wins over a broader one.
        assert_eq!(pick("application/openmetrics-text;q=0, */*"), Format::Text);
        assert_eq!(
            pick("text/plain;q=0, application/openmetrics-text;q=0.1"),
            Format::OpenMetrics
        );
        assert_eq!(
            pick("text/*;q=0.1, application/*;q=0.2"),
            Format::OpenMetrics
        );
        assert_eq!(
            pick("*/*;q=0.9, text/plain;version=0.0.4;q=0.1"),
            Format::OpenMetrics
        );
        // Junk is ignored, not fatal.
        assert_eq!(
            pick(";;,/,=,application/openmetrics-text;q=x"),
            Format::Text
        );
        assert_eq!(
            pick("garbage, application/openmetrics-text;q=0.5"),
            Format::OpenMetrics
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::Text.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(
            Format::Protobuf.content_type(),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        );
        // What it names is what negotiation picks.
        for f in Format::ALL {
            assert_eq!(pick(f.content_type()), f);
        }
    }
}
