//! Dynamic batching: a bounded queue per model version, drained by one worker thread per model
//! instance. A worker takes the oldest request, then gathers compatible requests until the batch is
//! full or the oldest request has waited `max_queue_delay`, runs the batch, and splits the outputs back.
//! Requests whose client has gone away are dropped from the queue without being computed.
//! A cheap request that arrives alone runs on the caller's thread instead (see
//! [`Scheduler::try_execute_inline`]).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use tokio::sync::oneshot;

use crate::backend::{BackendInstance, BatchInput};
use crate::datatype::DataType;
use crate::error::{Result, ServingError};
use crate::metrics::ModelMetrics;
use crate::signature::Signature;
use crate::stats::{ExecutionTimes, ModelStats};
use crate::tensor::{BytesElements, Tensor};

/// How a model version's requests are queued and batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchingPolicy {
    /// Most rows in one execution; 0 means the model does not batch and each request runs alone.
    pub max_batch_size: usize,
    /// Longest the oldest queued request may wait for a fuller batch.
    pub max_queue_delay: Duration,
    /// Batch sizes worth waiting for; the largest one below `max_batch_size` becomes the target.
    pub preferred_batch_sizes: Vec<usize>,
    /// Requests that may wait in the queue before new ones are refused.
    pub queue_capacity: usize,
}

impl BatchingPolicy {
    /// The batch size at which a worker stops gathering and runs.
    fn target_batch_size(&self) -> usize {
        self.preferred_batch_sizes
            .iter()
            .copied()
            .filter(|&p| p > 0 && p <= self.max_batch_size)
            .max()
            .unwrap_or(self.max_batch_size)
    }
}

/// What a request receives back from its execution.
#[derive(Debug)]
pub struct JobOutput {
    /// The request's outputs, in the model's output order.
    pub outputs: Vec<Tensor>,
    /// Time spent waiting in the queue.
    pub queue_time: Duration,
}

/// One request waiting for execution.
pub struct Job {
    /// The inputs, validated and in the model's input order.
    pub inputs: Vec<Tensor>,
    /// Rows this request contributes to a batch (1 when the model does not batch).
    pub rows: usize,
    /// When the request entered the queue.
    pub enqueued: Instant,
    /// Where the result goes; dropping the receiver cancels the request.
    pub reply: oneshot::Sender<Result<JobOutput>>,
}

impl Job {
    /// Whether this job can share an execution with `other`: same shapes apart from the batch dimension.
    fn batches_with(&self, other: &Job) -> bool {
        self.inputs
            .iter()
            .zip(&other.inputs)
            .all(|(a, b)| a.shape.len() == b.shape.len() && a.shape[1..] == b.shape[1..])
    }
}

/// Executions cheaper than this may run on the caller's thread when no other request is in flight:
/// handing such a request to a worker thread and back costs more than computing it.
const INLINE_COMPUTE_LIMIT: Duration = Duration::from_micros(100);

/// How long a model's requests count as concurrent after two were last in flight together. While
/// they do, none runs inline: each goes through the queue, where the worker batches them.
const CONCURRENCY_MEMORY: Duration = Duration::from_millis(100);

/// What the scheduler handle and its workers share.
struct Shared {
    signature: Arc<Signature>,
    policy: BatchingPolicy,
    stats: Arc<ModelStats>,
    metrics: ModelMetrics,
    /// Instances not running anything; a worker (or the inline path) takes one per execution.
    idle: Mutex<Vec<Box<dyn BackendInstance>>>,
    returned: Condvar,
    /// A moving average of one execution's compute time in ns; `u64::MAX` before the first one.
    compute_ns: AtomicU64,
}

impl Shared {
    fn take_instance(&self) -> Box<dyn BackendInstance> {
        let mut idle = self.idle.lock();
        loop {
            if let Some(instance) = idle.pop() {
                return instance;
            }
            self.returned.wait(&mut idle);
        }
    }

    fn give_back(&self, instance: Box<dyn BackendInstance>) {
        self.idle.lock().push(instance);
        self.returned.notify_one();
    }

    /// Runs one execution over the inputs of `jobs` (each the request's tensors and its rows) and
    /// splits the outputs back per job. Records the execution's statistics.
    fn execute(
        &self,
        instance: &mut dyn BackendInstance,
        jobs: &[(&[Tensor], usize)],
    ) -> (Result<Vec<Vec<Tensor>>>, ExecutionTimes) {
        let rows: usize = jobs.iter().map(|(_, r)| r).sum();
        let batched = self.policy.max_batch_size > 0;
        let gather_start = Instant::now();
        let inputs: Vec<BatchInput<'_>> = self
            .signature
            .inputs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut shape = jobs[0].0[i].shape.clone();
                if batched {
                    shape[0] = rows as i64;
                }
                BatchInput {
                    spec,
                    shape,
                    parts: jobs.iter().map(|(inputs, _)| &inputs[i].data[..]).collect(),
                }
            })
            .collect();
        let compute_input = gather_start.elapsed();
        let infer_start = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| instance.execute(&inputs)))
            .unwrap_or_else(|_| Err(ServingError::Internal("the backend panicked".to_string())));
        drop(inputs);
        let compute_infer = infer_start.elapsed();
        let output_start = Instant::now();
        let split = result.and_then(|outputs| {
            if jobs.len() > 1 {
                split_outputs(outputs, jobs)
            } else {
                Ok(vec![outputs])
            }
        });
        let times = ExecutionTimes {
            compute_input,
            compute_infer,
            compute_output: output_start.elapsed(),
        };
        self.stats.record_execution(rows as u64, times);
        self.metrics
            .record_execution(rows as u64, compute_input + compute_infer);
        let sample = (compute_input + compute_infer).as_nanos() as u64;
        let previous = self.compute_ns.load(Ordering::Relaxed);
        let average = if previous == u64::MAX {
            sample
        } else {
            (previous * 7 + sample) / 8
        };
        self.compute_ns.store(average, Ordering::Relaxed);
        (split, times)
    }
}

/// A model version's queue and workers.
pub struct Scheduler {
    sender: Sender<Job>,
    shared: Arc<Shared>,
    workers: usize,
    /// Requests between [`Scheduler::enter`] and the end of their [`InFlight`] guard.
    in_flight: AtomicUsize,
    /// When a request last entered while another was in flight, in ns since `started`.
    last_concurrent_ns: AtomicU64,
    /// The scheduler's start, the origin of `last_concurrent_ns`.
    started: Instant,
}

/// Counts one request as in flight on its model for as long as it lives; see [`Scheduler::enter`].
pub struct InFlight<'a> {
    count: &'a AtomicUsize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Scheduler {
    /// Starts one worker thread per instance.
    pub fn start(
        label: &str,
        instances: Vec<Box<dyn BackendInstance>>,
        signature: Arc<Signature>,
        policy: BatchingPolicy,
        stats: Arc<ModelStats>,
        metrics: ModelMetrics,
    ) -> Result<Scheduler> {
        let (sender, receiver) = crossbeam_channel::bounded(policy.queue_capacity.max(1));
        let workers = instances.len();
        let shared = Arc::new(Shared {
            signature,
            policy,
            stats,
            metrics,
            idle: Mutex::new(instances),
            returned: Condvar::new(),
            compute_ns: AtomicU64::new(u64::MAX),
        });
        for i in 0..workers {
            let worker = Worker {
                receiver: receiver.clone(),
                shared: shared.clone(),
                held: None,
            };
            std::thread::Builder::new()
                .name(format!("{label}#{i}"))
                .spawn(move || worker.run())
                .map_err(|e| {
                    ServingError::Internal(format!("cannot start a worker thread: {e}"))
                })?;
        }
        Ok(Scheduler {
            sender,
            shared,
            workers,
            in_flight: AtomicUsize::new(0),
            last_concurrent_ns: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Queues a job, or refuses it at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<()> {
        match self.sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ServingError::QueueFull(format!(
                "the model's queue is full ({} requests waiting)",
                self.sender.len()
            ))),
            Err(TrySendError::Disconnected(_)) => Err(ServingError::Unavailable(
                "the model is being unloaded".to_string(),
            )),
        }
    }

    /// Counts a request as in flight until the returned guard is dropped. A request enters before
    /// it tries [`Scheduler::try_execute_inline`] and stays in until it has its answer.
    pub fn enter(&self) -> InFlight<'_> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) > 0 {
            self.last_concurrent_ns
                .store(self.elapsed_ns().max(1), Ordering::Relaxed);
        }
        InFlight {
            count: &self.in_flight,
        }
    }

    /// Runs a request on the calling thread, when that is cheaper than queueing it and batching could
    /// not gain anything: it is the only request in flight (`entered` is its own guard) and no two
    /// were in flight together within [`CONCURRENCY_MEMORY`], the model computes in under
    /// [`INLINE_COMPUTE_LIMIT`], its batching does not wait (`max_queue_delay` is zero), the queue
    /// is empty and an instance is idle. Returns `None` (having done nothing) otherwise.
    ///
    /// Under concurrent load the requests go through the queue even when the model is idle for a
    /// moment. A request computed there starts a batch of one while its neighbours are being read;
    /// queued, it wakes the worker thread, and the requests that arrive meanwhile join its batch.
    pub fn try_execute_inline(
        &self,
        entered: &InFlight<'_>,
        inputs: &[Tensor],
        rows: usize,
    ) -> Option<Result<Vec<Tensor>>> {
        debug_assert!(
            std::ptr::eq(entered.count, &self.in_flight),
            "the guard belongs to another scheduler"
        );
        let shared = &self.shared;
        if self.in_flight.load(Ordering::Acquire) > 1
            || self.concurrent_lately()
            || shared.compute_ns.load(Ordering::Relaxed) > INLINE_COMPUTE_LIMIT.as_nanos() as u64
            || !shared.policy.max_queue_delay.is_zero()
            || !self.sender.is_empty()
        {
            return None;
        }
        let mut instance = shared.idle.lock().pop()?;
        let (result, times) = shared.execute(instance.as_mut(), &[(inputs, rows)]);
        shared.give_back(instance);
        shared.stats.record_request_compute(Duration::ZERO, times);
        shared.metrics.record_queue(Duration::ZERO);
        Some(result.map(|mut per_job| per_job.pop().unwrap_or_default()))
    }

    /// Whether a request entered while another was in flight within the last
    /// [`CONCURRENCY_MEMORY`].
    fn concurrent_lately(&self) -> bool {
        let last = self.last_concurrent_ns.load(Ordering::Relaxed);
        last != 0 && self.elapsed_ns().saturating_sub(last) < CONCURRENCY_MEMORY.as_nanos() as u64
    }

    fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Requests currently waiting.
    pub fn queue_depth(&self) -> usize {
        self.sender.len()
    }

    /// How many worker threads (model instances) serve this queue.
    pub fn instance_count(&self) -> usize {
        self.workers
    }
}

/// One worker thread's loop.
struct Worker {
    receiver: Receiver<Job>,
    shared: Arc<Shared>,
    /// A job taken from the queue that did not fit the previous batch; it leads the next one.
    held: Option<Job>,
}

impl Worker {
    fn run(mut self) {
        // The loop ends when the scheduler is dropped and the queue is drained, so requests already
        // accepted are always answered.
        while let Some(batch) = self.next_batch() {
            self.shared.metrics.set_queue_depth(self.receiver.len());
            let mut instance = self.shared.take_instance();
            self.execute(instance.as_mut(), batch);
            self.shared.give_back(instance);
        }
    }

    /// The next live job, waiting for one if needed; `None` once the queue is closed and empty.
    fn next_live_job(&mut self) -> Option<Job> {
        loop {
            let job = match self.held.take() {
                Some(job) => job,
                None => self.receiver.recv().ok()?,
            };
            if !job.reply.is_closed() {
                return Some(job);
            }
        }
    }

    fn next_batch(&mut self) -> Option<Vec<Job>> {
        let first = self.next_live_job()?;
        let mut rows = first.rows;
        let policy = &self.shared.policy;
        let deadline = first.enqueued + policy.max_queue_delay;
        let mut batch = vec![first];
        if policy.max_batch_size == 0 {
            return Some(batch);
        }
        let target = policy.target_batch_size();
        while rows < target {
            let next = match self.receiver.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => match self.receiver.recv_deadline(deadline) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                },
            };
            if next.reply.is_closed() {
                continue;
            }
            if rows + next.rows > policy.max_batch_size || !batch[0].batches_with(&next) {
                self.held = Some(next);
                break;
            }
            rows += next.rows;
            batch.push(next);
        }
        Some(batch)
    }

    fn execute(&self, instance: &mut dyn BackendInstance, batch: Vec<Job>) {
        let started = Instant::now();
        let jobs: Vec<(&[Tensor], usize)> = batch.iter().map(|j| (&j.inputs[..], j.rows)).collect();
        let (split, times) = self.shared.execute(instance, &jobs);
        drop(jobs);
        match split {
            Ok(per_job) => {
                for (job, outputs) in batch.into_iter().zip(per_job) {
                    let queue_time = started.saturating_duration_since(job.enqueued);
                    self.shared.stats.record_request_compute(queue_time, times);
                    self.shared.metrics.record_queue(queue_time);
                    let _ = job.reply.send(Ok(JobOutput {
                        outputs,
                        queue_time,
                    }));
                }
            }
            Err(err) => {
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Splits each batched output along its first dimension, in the batch's row order.
fn split_outputs(outputs: Vec<Tensor>, batch: &[(&[Tensor], usize)]) -> Result<Vec<Vec<Tensor>>> {
    let total_rows: usize = batch.iter().map(|(_, rows)| rows).sum();
    let mut per_job: Vec<Vec<Tensor>> = batch
        .iter()
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for output in outputs {
        if output.shape.first().copied() != Some(total_rows as i64) {
            return Err(ServingError::Internal(format!(
                "output '{}' has shape {:?}, which does not keep the batch of {total_rows} rows",
                output.name, output.shape
            )));
        }
        let offsets = row_offsets(&output, total_rows)?;
        let mut row = 0;
        for ((_, rows), outs) in batch.iter().zip(per_job.iter_mut()) {
            let mut shape = output.shape.clone();
            shape[0] = *rows as i64;
            outs.push(Tensor {
                name: output.name.clone(),
                datatype: output.datatype,
                shape,
                data: output.data.slice(offsets[row]..offsets[row + rows]),
            });
            row += rows;
        }
    }
    Ok(per_job)
}

/// Byte offset of the start of each row, plus the end, for a batched output.
fn row_offsets(output: &Tensor, rows: usize) -> Result<Vec<usize>> {
    let elements = output.element_count()?;
    let per_row = elements.checked_div(rows).unwrap_or(0);
    match output.datatype.element_size() {
        Some(size) => Ok((0..=rows).map(|r| r * per_row * size).collect()),
        None => {
            debug_assert_eq!(output.datatype, DataType::Bytes);
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0);
            let mut position = 0;
            let mut elements = BytesElements::new(&output.data);
            for _ in 0..rows {
                for _ in 0..per_row {
                    let item = elements.next().ok_or_else(|| {
                        ServingError::Internal(format!(
                            "output '{}' holds fewer elements than its shape",
                            output.name
                        ))
                    })?;
                    position += 4 + item.len();
                }
                offsets.push(position);
            }
            Ok(offsets)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendInstance;
    use crate::metrics::Metrics;
    use crate::signature::TensorSpec;
    use bytes::Bytes;
    use std::sync::Mutex;

    /// Doubles FP32 input `x` into output `y` and records each execution's row count.
    struct Doubler {
        executions: Arc<Mutex<Vec<usize>>>,
        delay: Duration,
    }

    impl BackendInstance for Doubler {
        fn execute(&mut self, inputs: &[BatchInput<'_>]) -> Result<Vec<Tensor>> {
            std::thread::sleep(self.delay);
            let input = &inputs[0];
            self.executions
                .lock()
                .unwrap()
                .push(input.shape[0] as usize);
            let mut data = vec![0u8; input.byte_len()];
            input.copy_into(&mut data);
            let doubled: Vec<u8> = data
                .chunks_exact(4)
                .flat_map(|b| (f32::from_le_bytes(b.try_into().unwrap()) * 2.0).to_le_bytes())
                .collect();
            Ok(vec![Tensor {
                name: "y".into(),
                datatype: DataType::Fp32,
                shape: input.shape.clone(),
                data: Bytes::from(doubled),
            }])
        }
    }

    fn signature() -> Arc<Signature> {
        Arc::new(Signature {
            inputs: vec![TensorSpec::new("x", DataType::Fp32, vec![2])],
            outputs: vec![TensorSpec::new("y", DataType::Fp32, vec![2])],
        })
    }

    fn scheduler(policy: BatchingPolicy, delay: Duration) -> (Scheduler, Arc<Mutex<Vec<usize>>>) {
        let executions = Arc::new(Mutex::new(Vec::new()));
        let instance = Box::new(Doubler {
            executions: executions.clone(),
            delay,
        });
        let metrics = Metrics::new().for_model("doubler", "1");
        let scheduler = Scheduler::start(
            "doubler",
            vec![instance],
            signature(),
            policy,
            Arc::new(ModelStats::default()),
            metrics,
        )
        .unwrap();
        (scheduler, executions)
    }

    fn job(values: [f32; 2]) -> (Job, oneshot::Receiver<Result<JobOutput>>) {
        let (tx, rx) = oneshot::channel();
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let job = Job {
            inputs: vec![Tensor::new("x", DataType::Fp32, vec![1, 2], Bytes::from(data)).unwrap()],
            rows: 1,
            enqueued: Instant::now(),
            reply: tx,
        };
        (job, rx)
    }

    fn values(tensor: &Tensor) -> Vec<f32> {
        tensor
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn queued_requests_are_batched_and_split_back_in_order() {
        let policy = BatchingPolicy {
            max_batch_size: 8,
            max_queue_delay: Duration::from_millis(200),
            preferred_batch_sizes: vec![],
            queue_capacity: 64,
        };
        let (scheduler, executions) = scheduler(policy, Duration::ZERO);
        let receivers: Vec<_> = (0..8)
            .map(|i| {
                let (job, rx) = job([i as f32, -(i as f32)]);
                scheduler.submit(job).unwrap();
                rx
            })
            .collect();
        for (i, rx) in receivers.into_iter().enumerate() {
            let out = rx.blocking_recv().unwrap().unwrap();
            assert_eq!(out.outputs[0].shape, vec![1, 2]);
            assert_eq!(
                values(&out.outputs[0]),
                vec![2.0 * i as f32, -2.0 * i as f32]
            );
        }
        assert_eq!(*executions.lock().unwrap(), vec![8], "one full batch of 8");
    }

    #[test]
    fn a_full_queue_refuses_with_queue_full() {
        let policy = BatchingPolicy {
            max_batch_size: 0,
            max_queue_delay: Duration::ZERO,
            preferred_batch_sizes: vec![],
            queue_capacity: 2,
        };
        let (scheduler, _) = scheduler(policy, Duration::from_millis(300));
        let mut kept = Vec::new();
        let mut refused = 0;
        for _ in 0..6 {
            let (job, rx) = job([1.0, 1.0]);
            match scheduler.submit(job) {
                Ok(()) => kept.push(rx),
                Err(ServingError::QueueFull(_)) => refused += 1,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert!(refused >= 3, "only {refused} refused");
        for rx in kept {
            assert!(rx.blocking_recv().unwrap().is_ok());
        }
    }

    #[test]
    fn cancelled_requests_are_not_computed() {
        let policy = BatchingPolicy {
            max_batch_size: 0,
            max_queue_delay: Duration::ZERO,
            preferred_batch_sizes: vec![],
            queue_capacity: 16,
        };
        let (scheduler, executions) = scheduler(policy, Duration::from_millis(100));
        let (first, first_rx) = job([1.0, 2.0]);
        scheduler.submit(first).unwrap();
        // Let the worker start on the first job, then queue three whose clients give up.
        std::thread::sleep(Duration::from_millis(30));
        for _ in 0..3 {
            let (job, rx) = job([3.0, 4.0]);
            scheduler.submit(job).unwrap();
            drop(rx);
        }
        let (last, last_rx) = job([5.0, 6.0]);
        scheduler.submit(last).unwrap();
        assert!(first_rx.blocking_recv().unwrap().is_ok());
        assert_eq!(
            values(&last_rx.blocking_recv().unwrap().unwrap().outputs[0]),
            vec![10.0, 12.0]
        );
        assert_eq!(
            executions.lock().unwrap().len(),
            2,
            "the three cancelled jobs never ran"
        );
    }

    /// A scheduler for a cheap model whose cost it has learned from queued executions, so that
    /// it can run a request inline, and the number of executions so far.
    fn learned_cheap_scheduler() -> (Scheduler, Arc<Mutex<Vec<usize>>>, usize) {
        let policy = BatchingPolicy {
            max_batch_size: 8,
            max_queue_delay: Duration::ZERO,
            preferred_batch_sizes: vec![],
            queue_capacity: 16,
        };
        let (scheduler, executions) = scheduler(policy, Duration::ZERO);
        {
            let entered = scheduler.enter();
            assert_not_inline(
                &scheduler,
                &entered,
                "the model's cost is unknown before its first execution",
            );
        }
        // Queued executions teach the scheduler the model's cost. The worker hands its instance back
        // just after answering, and a loaded machine can stretch one execution past the limit, so
        // keep feeding it until the idle, cheap state is seen (bounded: a model that never gets
        // there fails the test).
        let mut queued = 0;
        loop {
            let (job, rx) = job([1.0, 1.0]);
            scheduler.submit(job).unwrap();
            rx.blocking_recv().unwrap().unwrap();
            queued += 1;
            let cheap = scheduler.shared.compute_ns.load(Ordering::Relaxed)
                <= INLINE_COMPUTE_LIMIT.as_nanos() as u64;
            let idle = (0..100).any(|_| {
                let idle = !scheduler.shared.idle.lock().is_empty();
                if !idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
                idle
            });
            if cheap && idle {
                return (scheduler, executions, queued);
            }
            assert!(queued < 20, "a cheap model never became cheap and idle");
        }
    }

    fn inline_input() -> Vec<Tensor> {
        let data: Vec<u8> = [3f32, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        vec![Tensor::new("x", DataType::Fp32, vec![1, 2], Bytes::from(data)).unwrap()]
    }

    /// Asserts that the request `entered` does not run inline (and so would be queued).
    fn assert_not_inline(scheduler: &Scheduler, entered: &InFlight<'_>, why: &str) {
        assert!(
            scheduler
                .try_execute_inline(entered, &inline_input(), 1)
                .is_none(),
            "{why}"
        );
    }

    /// Asserts that the request `entered` runs inline, answers correctly, and is the one execution
    /// after the `queued` ones.
    fn assert_runs_inline(
        scheduler: &Scheduler,
        entered: &InFlight<'_>,
        executions: &Mutex<Vec<usize>>,
        queued: usize,
        why: &str,
    ) {
        let outputs = scheduler
            .try_execute_inline(entered, &inline_input(), 1)
            .unwrap_or_else(|| panic!("{why}"))
            .unwrap();
        assert_eq!(values(&outputs[0]), vec![6.0, 8.0]);
        assert_eq!(executions.lock().unwrap().len(), queued + 1);
    }

    #[test]
    fn a_cheap_request_alone_runs_inline_when_the_model_is_idle() {
        let (scheduler, executions, queued) = learned_cheap_scheduler();
        let entered = scheduler.enter();
        assert_runs_inline(
            &scheduler,
            &entered,
            &executions,
            queued,
            "a cheap request alone on an idle model runs inline",
        );
    }

    #[test]
    fn a_cheap_request_is_queued_while_another_is_in_flight() {
        let (scheduler, executions, queued) = learned_cheap_scheduler();
        let other = scheduler.enter();
        let entered = scheduler.enter();
        assert_not_inline(
            &scheduler,
            &entered,
            "with another request in flight, the request goes to the queue to be batched",
        );
        assert_eq!(executions.lock().unwrap().len(), queued, "nothing ran");
        // The other request is answered, but the model's requests were concurrent a moment ago, so
        // more are likely on their way: still queued.
        drop(other);
        assert_not_inline(
            &scheduler,
            &entered,
            "requests stay queued for a while after two were in flight together",
        );
        // Once that is long enough ago, a lone request runs inline again.
        std::thread::sleep(CONCURRENCY_MEMORY + Duration::from_millis(20));
        assert_runs_inline(
            &scheduler,
            &entered,
            &executions,
            queued,
            "a lone request runs inline once the concurrency is past",
        );
    }

    #[test]
    fn bytes_outputs_split_by_element() {
        let data = crate::tensor::encode_bytes_elements([&b"a"[..], b"bb", b"", b"dddd"]);
        let output = Tensor::new("s", DataType::Bytes, vec![2, 2], Bytes::from(data)).unwrap();
        let offsets = row_offsets(&output, 2).unwrap();
        assert_eq!(offsets, vec![0, 4 + 1 + 4 + 2, 4 + 1 + 4 + 2 + 4 + 4 + 4]);
    }
}
