//! Interface counters from `proc/net/dev` and UDP errors from
//! `proc/net/snmp`.
//!
//! `proc/net/dev` is parsed by procfs's [`InterfaceDeviceStatus`]; the
//! `Udp:` lines of `proc/net/snmp` by our own code (see [`read_snmp`]).

use super::read::read_required;
use procfs::net::InterfaceDeviceStatus;
use procfs::FromBufRead;
use std::path::Path;

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
        let totals = self.update(buf);
        if totals.is_none() {
            *errors += 1;
        }
        totals
    }

    /// Adds the interface counters in `text` (the contents of
    /// `proc/net/dev`) to the totals; `None`, changing nothing, when the
    /// text is garbled.
    fn update(&mut self, text: &str) -> Option<DevTotals> {
        // procfs skips the two header lines unread: check them here, so a
        // file that is not `proc/net/dev` at all is an error, not zero
        // interfaces.
        let headers_ok = text.lines().take(2).filter(|l| l.contains('|')).count() == 2;
        let InterfaceDeviceStatus(devices) = headers_ok
            .then(|| InterfaceDeviceStatus::from_buf_read(text.as_bytes()))
            .and_then(Result::ok)?;
        for iface in &mut self.ifaces {
            iface.seen = false;
        }
        for (name, dev) in devices {
            if name == "lo" {
                continue;
            }
            let cur = [dev.sent_packets, dev.sent_drop, dev.recv_drop];
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
                        name,
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

/// UDP error counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Udp {
    pub(crate) rcvbuf_errors: Option<u64>,
    pub(crate) in_errors: Option<u64>,
}

/// Reads `Udp: RcvbufErrors` and `Udp: InErrors` from `proc/net/snmp`. An
/// unreadable file or one without the `Udp:` header and value lines counts
/// once; each missing or garbled value counts once.
// Ours, not procfs's `Snmp`: that parser requires every column of the
// `Ip:`, `Icmp:`, `Tcp:`, `Udp:` and `UdpLite:` sections, so it rejects our
// fixtures (no `Icmp:` lines) and would fail the whole file the day a kernel
// adds or drops any of ~80 columns we do not read; it reports one error where
// we count each of our two values; and its parse alone is slower than our
// read and parse together (figures: benches/README.md).
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

    const HEAD: &str = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n";

    #[test]
    fn dev_lines() {
        let mut net = NetState::default();
        let text = format!(
            "{HEAD}    lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
        );
        let eth0 = DevTotals {
            tx_packets: 10,
            tx_dropped: 12,
            rx_dropped: 4,
        };
        assert_eq!(net.update(&text), Some(eth0));
        // Alias interfaces keep their second colon in the name (seen on
        // 3.10 kernels): one more interface, not a garbled file.
        let alias = format!("{text}team0:1: 0 0 0 1 0 0 0 0 0 1 0 1 0 0 0 0\n");
        let with_alias = DevTotals {
            tx_packets: 11,
            tx_dropped: 13,
            rx_dropped: 5,
        };
        assert_eq!(net.update(&alias), Some(with_alias));
        for garbled in [
            format!("{HEAD}  eth0: 1 2 3\n"),
            format!("{HEAD}  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n"),
            format!("{HEAD}no colon here\n"),
            "garbage\n".to_owned(),
            String::new(),
        ] {
            assert_eq!(net.update(&garbled), None, "{garbled:?}");
        }
        assert_eq!(net.update(&alias), Some(with_alias));
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
