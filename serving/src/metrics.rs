//! Prometheus metrics: per model and version, request counters and histograms (not summaries) of
//! queue, compute and total time and of batch size, plus queue depth.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, from 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
/// Batch-size buckets.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The server's metric families, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    request_success: IntCounterVec,
    request_failure: IntCounterVec,
    inference_count: IntCounterVec,
    execution_count: IntCounterVec,
    request_duration: HistogramVec,
    queue_duration: HistogramVec,
    compute_duration: HistogramVec,
    batch_size: HistogramVec,
    queue_depth: IntGaugeVec,
}

const LABELS: &[&str] = &["model", "version"];

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), LABELS).expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("unique counter");
            c
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                LABELS,
            )
            .expect("valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("unique histogram");
            h
        };
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "cerulean_inference_queue_depth",
                "Requests waiting in the model's queue",
            ),
            LABELS,
        )
        .expect("valid gauge");
        registry
            .register(Box::new(queue_depth.clone()))
            .expect("unique gauge");
        Metrics {
            request_success: counter(
                "cerulean_inference_request_success_total",
                "Successful inference requests",
            ),
            request_failure: counter(
                "cerulean_inference_request_failure_total",
                "Failed inference requests",
            ),
            inference_count: counter(
                "cerulean_inference_count_total",
                "Inferences performed (a batch of n requests counts n)",
            ),
            execution_count: counter(
                "cerulean_inference_exec_count_total",
                "Backend executions (batches)",
            ),
            request_duration: histogram(
                "cerulean_inference_request_duration_seconds",
                "End-to-end request time inside the server",
                LATENCY_BUCKETS,
            ),
            queue_duration: histogram(
                "cerulean_inference_queue_duration_seconds",
                "Time requests wait in the model's queue",
                LATENCY_BUCKETS,
            ),
            compute_duration: histogram(
                "cerulean_inference_compute_duration_seconds",
                "Time a backend spends on one execution",
                LATENCY_BUCKETS,
            ),
            batch_size: histogram(
                "cerulean_inference_batch_size",
                "Rows per backend execution",
                BATCH_BUCKETS,
            ),
            queue_depth,
            registry,
        }
    }

    /// The handles for one model version, resolved once so the hot path does no label lookups.
    pub fn for_model(&self, model: &str, version: &str) -> ModelMetrics {
        let labels = [model, version];
        ModelMetrics {
            request_success: self.request_success.with_label_values(&labels),
            request_failure: self.request_failure.with_label_values(&labels),
            inference_count: self.inference_count.with_label_values(&labels),
            execution_count: self.execution_count.with_label_values(&labels),
            request_duration: self.request_duration.with_label_values(&labels),
            queue_duration: self.queue_duration.with_label_values(&labels),
            compute_duration: self.compute_duration.with_label_values(&labels),
            batch_size: self.batch_size.with_label_values(&labels),
            queue_depth: self.queue_depth.with_label_values(&labels),
        }
    }

    /// Drops a model version's series (after unload), so scrapes stop reporting it.
    pub fn remove_model(&self, model: &str, version: &str) {
        let labels = [model, version];
        let _ = self.request_success.remove_label_values(&labels);
        let _ = self.request_failure.remove_label_values(&labels);
        let _ = self.inference_count.remove_label_values(&labels);
        let _ = self.execution_count.remove_label_values(&labels);
        let _ = self.request_duration.remove_label_values(&labels);
        let _ = self.queue_duration.remove_label_values(&labels);
        let _ = self.compute_duration.remove_label_values(&labels);
        let _ = self.batch_size.remove_label_values(&labels);
        let _ = self.queue_depth.remove_label_values(&labels);
    }

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// One model version's metric handles.
#[derive(Clone)]
pub struct ModelMetrics {
    request_success: prometheus::IntCounter,
    request_failure: prometheus::IntCounter,
    inference_count: prometheus::IntCounter,
    execution_count: prometheus::IntCounter,
    request_duration: prometheus::Histogram,
    queue_duration: prometheus::Histogram,
    compute_duration: prometheus::Histogram,
    batch_size: prometheus::Histogram,
    queue_depth: prometheus::IntGauge,
}

impl ModelMetrics {
    /// Records one execution.
    pub fn record_execution(&self, batch_size: u64, compute: Duration) {
        self.execution_count.inc();
        self.inference_count.inc_by(batch_size);
        self.batch_size.observe(batch_size as f64);
        self.compute_duration.observe(compute.as_secs_f64());
    }

    /// Records a request's queue wait.
    pub fn record_queue(&self, queue: Duration) {
        self.queue_duration.observe(queue.as_secs_f64());
    }

    /// Records a finished request.
    pub fn record_request(&self, success: bool, total: Duration) {
        if success {
            self.request_success.inc();
        } else {
            self.request_failure.inc();
        }
        self.request_duration.observe(total.as_secs_f64());
    }

    /// Sets the current queue depth.
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.set(depth as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histograms_with_model_labels() {
        let metrics = Metrics::new();
        let m = metrics.for_model("mlp", "1");
        m.record_request(true, Duration::from_millis(2));
        m.record_request(false, Duration::from_millis(2));
        m.record_execution(8, Duration::from_millis(1));
        m.record_queue(Duration::from_micros(300));
        m.set_queue_depth(3);
        let text = metrics.render();
        assert!(
            text.contains(r#"cerulean_inference_request_success_total{model="mlp",version="1"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cerulean_inference_request_failure_total{model="mlp",version="1"} 1"#)
        );
        assert!(
            text.contains(
                r#"cerulean_inference_batch_size_bucket{model="mlp",version="1",le="8"} 1"#
            )
        );
        assert!(text.contains("# TYPE cerulean_inference_queue_duration_seconds histogram"));
        assert!(text.contains(r#"cerulean_inference_queue_depth{model="mlp",version="1"} 3"#));
        metrics.remove_model("mlp", "1");
        assert!(!metrics.render().contains(r#"model="mlp""#));
    }
}
