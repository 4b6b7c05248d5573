//! Probes off Linux, through `sysinfo`. Network values stay `None`.

use super::{SystemConfig, SystemSample};
use sysinfo::System;

#[derive(Debug)]
pub(super) struct Probe {
    sys: System,
    primed: bool,
}

impl Probe {
    pub(super) fn new() -> Self {
        Probe {
            sys: System::new(),
            primed: false,
        }
    }

    pub(super) fn sample(&mut self, config: &SystemConfig, errors: &mut u64) -> SystemSample {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();

        let online = match self.sys.cpus().len() {
            0 => {
                *errors += 1;
                None
            }
            n => Some(n as f64),
        };
        let num_cpus = config.override_cpus().or(online);
        // sysinfo's usage is relative to all online CPUs since the previous
        // refresh; rescale it to `num_cpus`.
        let cpu_load = if self.primed {
            let usage = f64::from(self.sys.global_cpu_usage()) / 100.0;
            match (online, num_cpus) {
                (Some(online), Some(cpus)) if usage.is_finite() => {
                    Some((usage * online / cpus).clamp(0.0, 1.0))
                }
                _ => None,
            }
        } else {
            None
        };
        self.primed = true;

        let total = self.sys.total_memory();
        let (memory_used, memory_total) = if total > 0 {
            (Some(self.sys.used_memory().min(total)), Some(total))
        } else {
            *errors += 1;
            (None, None)
        };
        let la = System::load_average();
        let load_avg = [la.one, la.five, la.fifteen];
        let load_avg = load_avg
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0)
            .then_some(load_avg);

        SystemSample {
            num_cpus,
            cpu_load,
            memory_used,
            memory_total,
            load_avg,
            probe_errors: *errors,
            ..SystemSample::default()
        }
    }
}
