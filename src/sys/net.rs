//! Interface counters from `proc/net/dev` and UDP errors from
//! `proc/net/snmp`.

use super::read::read_required;
use std::path::Path;

/// Column indexes in a `proc/net/dev` interface line (after `name:`).
const RX_DROP: usize = 3;
const TX_PACKETS: usize = 9;
const TX_DROP: usize = 11;
/// Fewest columns a valid interface line has.
const MIN_COLUMNS: usize = 12;

/// Running totals over interfaces other than `lo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DevTotals {
    pub(crate) tx_packets: u64,
    pub(crate) tx_dropped: u64,
    pub(crate) rx_dropped: u64,
}

#[derive(Debug)]
struct Iface {
    name: String,
    /// Last raw values: tx packets, tx drop, rx drop.
    last: [u64; 3],
    seen: bool,
}

/// Turns per-interface counters into totals that never decrease, whatever
/// interfaces come, go or restart their counters.
#[derive(Debug, Default)]
pub(crate) struct NetState {
    ifaces: Vec<Iface>,
    totals: [u64; 3],
}

/// Parses one interface line: `Err` when garbled, `Ok(None)` for `lo`.
fn parse_line(line: &str) -> Result<Option<(&str, [u64; 3])>, ()> {
    let (name, rest) = line.split_once(':').ok_or(())?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(());
    }
    let mut values = [0u64; 3];
    let mut n = 0;
    for (i, word) in rest.split_ascii_whitespace().enumerate() {
        let v: u64 = word.parse().map_err(|_| ())?;
        match i {
            TX_PACKETS => values[0] = v,
            TX_DROP => values[1] = v,
            RX_DROP => values[2] = v,
            _ => {}
        }
        n += 1;
    }
    if n < MIN_COLUMNS {
        return Err(());
    }
    Ok((name != "lo").then_some((name, values)))
}

impl NetState {
    /// Reads `proc/net/dev` and returns the running totals. A garbled file
    /// changes nothing and counts once in `errors`.
    pub(crate) fn read_dev(
        &mut self,
        path: &Path,
        buf: &mut String,
        errors: &mut u64,
    ) -> Option<DevTotals> {
        if !read_required(path, buf, errors) {
            return None;
        }
        if !valid_dev(buf) {
            *errors += 1;
            return None;
        }
        for iface in &mut self.ifaces {
            iface.seen = false;
        }
        for line in buf.lines().skip(2) {
            let Ok(Some((name, cur))) = parse_line(line) else {
                continue;
            };
            match self.ifaces.iter_mut().find(|i| i.name == name) {
                Some(iface) => {
                    for ((total, c), last) in self.totals.iter_mut().zip(cur).zip(iface.last) {
                        // A counter below its last value restarted from zero.
                        let delta = c.checked_sub(last).unwrap_or(c);
                        *total = total.wrapping_add(delta);
                    }
                    iface.last = cur;
                    iface.seen = true;
                }
                None => {
                    // On the first read the totals start from the current
                    // values; an interface appearing later counts from zero.
                    for (total, c) in self.totals.iter_mut().zip(cur) {
                        *total = total.wrapping_add(c);
                    }
                    self.ifaces.push(Iface {
                        name: name.to_owned(),
                        last: cur,
                        seen: true,
                    });
                }
            }
        }
        self.ifaces.retain(|i| i.seen);
        Some(DevTotals {
            tx_packets: self.totals[0],
            tx_dropped: self.totals[1],
            rx_dropped: self.totals[2],
        })
    }
}

/// Two header lines, then only well-formed interface lines.
fn valid_dev(text: &str) -> bool {
    let mut lines = text.lines();
    let headers_ok = (0..2).all(|_| lines.next().is_some_and(|l| l.contains('|')));
    headers_ok
        && lines
            .filter(|l| !l.trim().is_empty())
            .all(|l| parse_line(l).is_ok())
}

/// UDP error counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Udp {
    pub(crate) rcvbuf_errors: Option<u64>,
    pub(crate) in_errors: Option<u64>,
}

/// Reads `Udp: RcvbufErrors` and `Udp: InErrors` from `proc/net/snmp`. An
/// unreadable file or one without the `Udp:` header and value lines counts
/// once; each missing or garbled value counts once.
pub(crate) fn read_snmp(path: &Path, buf: &mut String, errors: &mut u64) -> Udp {
    if !read_required(path, buf, errors) {
        return Udp::default();
    }
    let Some((header, values)) = udp_lines(buf) else {
        *errors += 1;
        return Udp::default();
    };
    let mut field = |name: &str| {
        let v = header
            .split_ascii_whitespace()
            .skip(1)
            .position(|h| h == name)
            .and_then(|pos| values.split_ascii_whitespace().nth(pos + 1))
            .and_then(|v| v.parse().ok());
        if v.is_none() {
            *errors += 1;
        }
        v
    };
    Udp {
        rcvbuf_errors: field("RcvbufErrors"),
        in_errors: field("InErrors"),
    }
}

/// The `Udp:` header line and the value line after it.
fn udp_lines(text: &str) -> Option<(&str, &str)> {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("Udp:") {
            let values = lines.next()?;
            return values.starts_with("Udp:").then_some((line, values));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            parse_line("  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16"),
            Ok(Some(("eth0", [10, 12, 4])))
        );
        assert_eq!(parse_line("    lo: 1 2 3 4 5 6 7 8 9 10 11 12"), Ok(None));
        // Old kernels glue a long first value to the colon.
        assert_eq!(
            parse_line("eth0:123456789012 2 3 4 5 6 7 8 9 10 11 12"),
            Ok(Some(("eth0", [10, 12, 4])))
        );
        assert_eq!(parse_line("eth0: 1 2 3"), Err(()));
        assert_eq!(parse_line("eth0: 1 2 3 4 5 6 7 8 9 10 11 x"), Err(()));
        assert_eq!(parse_line("no colon here"), Err(()));
        assert_eq!(parse_line("a b: 1 2 3 4 5 6 7 8 9 10 11 12"), Err(()));
    }

    #[test]
    fn snmp_lines() {
        let text = "Ip: A B\nIp: 1 2\nUdp: InDatagrams InErrors RcvbufErrors\nUdp: 5 6 7\nUdpLite: InDatagrams InErrors RcvbufErrors\nUdpLite: 8 9 10\n";
        assert_eq!(
            udp_lines(text),
            Some(("Udp: InDatagrams InErrors RcvbufErrors", "Udp: 5 6 7"))
        );
        assert_eq!(udp_lines("Udp: A\nIp: 1\n"), None);
        assert_eq!(udp_lines("Udp: A"), None);
    }
}
