//! Latency summaries (exact percentiles over every recorded sample) and CPU-time sampling.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Summary {
    /// Summarises latencies given in nanoseconds (sorts them in place).
    pub fn from_nanos(samples: &mut [u64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        // Nearest-rank percentile: the smallest sample with at least p·n samples at or below it.
        let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1] as f64 / 1e3;
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Summary {
            count: n,
            mean_us: sum as f64 / n as f64 / 1e3,
            p50_us: rank(0.50),
            p90_us: rank(0.90),
            p99_us: rank(0.99),
            max_us: samples[n - 1] as f64 / 1e3,
        }
    }
}

/// Saturating conversion of a duration to nanoseconds.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// CPU time (user + system, all threads) a process has used so far, in seconds; `None` when its
/// `/proc/PID/stat` cannot be read (not Linux, or the process is gone).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fixed fields start after its closing ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0], so utime (14) and stime (15) are fields[11] and fields[12].
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture that Rust targets.
    Some((utime + stime) / 100.0)
}

/// CPU time the whole machine has spent busy (all cores, everything but idle and I/O wait), in
/// seconds; `None` when `/proc/stat` cannot be read.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user and nice]
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0.0);
    Some((total - idle) / 100.0)
}

/// Waits (up to `max_wait`) until the machine has been quiet for a second: other processes than
/// this one used at most `max_busy` cores. Returns whether it became quiet.
pub fn wait_until_quiet(max_busy: f64, max_wait: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + max_wait;
    let own = std::process::id();
    loop {
        let before = (machine_busy_seconds(), cpu_seconds(own));
        std::thread::sleep(std::time::Duration::from_secs(1));
        let after = (machine_busy_seconds(), cpu_seconds(own));
        let busy = match (before, after) {
            ((Some(mb), Some(ob)), (Some(ma), Some(oa))) => (ma - mb) - (oa - ob),
            _ => return true,
        };
        if busy <= max_busy {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let s = Summary::from_nanos(&mut samples);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p90_us, 90.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.max_us, 100.0);
        assert!((s.mean_us - 50.5).abs() < 1e-9);
        assert_eq!(Summary::from_nanos(&mut []).count, 0);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_seconds(std::process::id()).is_some_and(|s| s >= 0.0));
        assert!(machine_busy_seconds().is_some_and(|s| s >= 0.0));
    }
}
