//! Per-model-version statistics in the shape of Triton's statistics extension
//! (`GET v2/models/{m}/stats`, gRPC `ModelStatistics`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A count and a cumulative duration in nanoseconds.
#[derive(Debug, Default)]
pub struct DurationStat {
    count: AtomicU64,
    ns: AtomicU64,
}

impl DurationStat {
    /// Adds one occurrence that took `elapsed`.
    pub fn record(&self, elapsed: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The current count and nanoseconds.
    pub fn snapshot(&self) -> DurationSnapshot {
        DurationSnapshot {
            count: self.count.load(Ordering::Relaxed),
            ns: self.ns.load(Ordering::Relaxed),
        }
    }
}

/// A read-out of a [`DurationStat`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DurationSnapshot {
    /// How many times.
    pub count: u64,
    /// Total nanoseconds.
    pub ns: u64,
}

/// The durations of one execution, split as Triton splits them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecutionTimes {
    /// Gathering the batch's inputs into the backend's buffers.
    pub compute_input: Duration,
    /// The backend's computation.
    pub compute_infer: Duration,
    /// Splitting the outputs back per request.
    pub compute_output: Duration,
}

#[derive(Debug, Default, Clone, Copy)]
struct BatchTotals {
    count: u64,
    input_ns: u64,
    infer_ns: u64,
    output_ns: u64,
}

/// Statistics for one loaded model version.
#[derive(Debug, Default)]
pub struct ModelStats {
    last_inference_ms: AtomicU64,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    success: DurationStat,
    fail: DurationStat,
    queue: DurationStat,
    compute_input: DurationStat,
    compute_infer: DurationStat,
    compute_output: DurationStat,
    batches: Mutex<BTreeMap<u64, BatchTotals>>,
}

impl ModelStats {
    /// Records one execution of `batch_size` rows.
    pub fn record_execution(&self, batch_size: u64, times: ExecutionTimes) {
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.inference_count
            .fetch_add(batch_size, Ordering::Relaxed);
        let mut batches = self.batches.lock();
        let totals = batches.entry(batch_size).or_default();
        totals.count += 1;
        totals.input_ns += times.compute_input.as_nanos() as u64;
        totals.infer_ns += times.compute_infer.as_nanos() as u64;
        totals.output_ns += times.compute_output.as_nanos() as u64;
    }

    /// Records one request's share of an execution: its time in the queue and its compute times.
    pub fn record_request_compute(&self, queue: Duration, times: ExecutionTimes) {
        self.queue.record(queue);
        self.compute_input.record(times.compute_input);
        self.compute_infer.record(times.compute_infer);
        self.compute_output.record(times.compute_output);
    }

    /// Records a finished request.
    pub fn record_request(&self, success: bool, total: Duration) {
        if success {
            self.success.record(total);
        } else {
            self.fail.record(total);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_inference_ms.store(now_ms, Ordering::Relaxed);
    }

    /// A consistent-enough read-out of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            last_inference: self.last_inference_ms.load(Ordering::Relaxed),
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            success: self.success.snapshot(),
            fail: self.fail.snapshot(),
            queue: self.queue.snapshot(),
            compute_input: self.compute_input.snapshot(),
            compute_infer: self.compute_infer.snapshot(),
            compute_output: self.compute_output.snapshot(),
            batches: self
                .batches
                .lock()
                .iter()
                .map(|(&batch_size, t)| BatchSnapshot {
                    batch_size,
                    compute_input: DurationSnapshot {
                        count: t.count,
                        ns: t.input_ns,
                    },
                    compute_infer: DurationSnapshot {
                        count: t.count,
                        ns: t.infer_ns,
                    },
                    compute_output: DurationSnapshot {
                        count: t.count,
                        ns: t.output_ns,
                    },
                })
                .collect(),
        }
    }
}

/// A read-out of [`ModelStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Milliseconds since the Unix epoch of the last request, 0 if none.
    pub last_inference: u64,
    /// Rows inferred (a batch of n counts n).
    pub inference_count: u64,
    /// Backend executions.
    pub execution_count: u64,
    /// Successful requests, end to end.
    pub success: DurationSnapshot,
    /// Failed requests, end to end.
    pub fail: DurationSnapshot,
    /// Time requests waited in the queue.
    pub queue: DurationSnapshot,
    /// Time gathering inputs.
    pub compute_input: DurationSnapshot,
    /// Time computing.
    pub compute_infer: DurationSnapshot,
    /// Time splitting outputs.
    pub compute_output: DurationSnapshot,
    /// Executions per batch size.
    pub batches: Vec<BatchSnapshot>,
}

/// Executions of one batch size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSnapshot {
    /// Rows per execution.
    pub batch_size: u64,
    /// Input gathering.
    pub compute_input: DurationSnapshot,
    /// Computation.
    pub compute_infer: DurationSnapshot,
    /// Output splitting.
    pub compute_output: DurationSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_and_executions() {
        let stats = ModelStats::default();
        let times = ExecutionTimes {
            compute_infer: Duration::from_micros(5),
            ..Default::default()
        };
        stats.record_execution(4, times);
        stats.record_execution(1, times);
        stats.record_execution(4, times);
        stats.record_request(true, Duration::from_micros(10));
        stats.record_request(false, Duration::from_micros(1));
        let snap = stats.snapshot();
        assert_eq!(snap.inference_count, 9);
        assert_eq!(snap.execution_count, 3);
        assert_eq!(
            snap.success,
            DurationSnapshot {
                count: 1,
                ns: 10_000
            }
        );
        assert_eq!(snap.fail.count, 1);
        assert_eq!(snap.batches.len(), 2);
        assert_eq!(snap.batches[1].batch_size, 4);
        assert_eq!(
            snap.batches[1].compute_infer,
            DurationSnapshot {
                count: 2,
                ns: 10_000
            }
        );
        assert!(snap.last_inference > 0);
    }
}
