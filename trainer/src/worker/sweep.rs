//! Sweeps: every trial trains as a child run of the job's run (tags `mlflow.parentRunId` and
//! `cerulean.trial`), up to `parallel` at once, and the best by the sweep's metric is registered.
//!
//! A sweep survives its worker: when a trial finishes, its model files go to its child run's
//! artifacts (`model/`) and its outcome (metrics, epochs, task) to the child run's
//! [`TRIAL_OUTCOME_TAG`]. A later attempt of the job finds the child runs by their tags and
//! - keeps each finished trial as it is (not trained again; its files are downloaded only if it
//!   turns out to be the best);
//! - continues each unfinished trial in its own child run (no second run for the same trial),
//!   from the newest checkpoint in that run's artifacts (`checkpoints/epoch-N.ckpt`), so the
//!   trial's metric history stays one continuous series.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, anyhow};
use cerulean_registry::entities::{Metric, Run, Tag};
use tokio::sync::Semaphore;

use super::{Lease, LogPump, Worker, artifact_root, download, now_ms, spec_params};
use crate::checkpoint::Checkpoint;
use crate::data::LoadedDataset;
use crate::spec::JobSpec;
use crate::sweep::Trial;
use crate::train::TrainOutcome;

/// The tag on a finished trial's child run that holds its outcome as JSON (without the model
/// files, which are the run's `model/` artifacts).
pub const TRIAL_OUTCOME_TAG: &str = "cerulean.trial_outcome";
/// The tag naming a child run's trial index.
const TRIAL_TAG: &str = "cerulean.trial";
/// The tag linking a child run to its parent (MLflow's own).
const PARENT_TAG: &str = "mlflow.parentRunId";

/// A trial's end: its outcome and the child run that holds it.
struct TrialEnd {
    outcome: TrainOutcome,
    run: Run,
}

/// The value of `run`'s tag `key`.
fn tag<'a>(run: &'a Run, key: &str) -> Option<&'a str> {
    run.data
        .tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

/// The outcome an earlier attempt recorded on a finished trial's run.
fn recorded_outcome(run: &Run) -> Option<TrainOutcome> {
    serde_json::from_str(tag(run, TRIAL_OUTCOME_TAG)?).ok()
}

impl Worker {
    /// Trains every trial of a sweep as a child run of `parent`, `parallel` at once, keeping the
    /// trials an earlier attempt finished; returns the best one by the sweep's metric (its model
    /// files loaded), `None` when cancelled.
    pub(super) async fn sweep(
        &self,
        lease: &Lease,
        spec: &JobSpec,
        trials: Vec<Trial>,
        data: Arc<LoadedDataset>,
        parent: &Run,
        logs: &LogPump,
    ) -> anyhow::Result<Option<(Trial, TrainOutcome)>> {
        let parallel = spec.sweep.as_ref().map_or(1, |s| s.parallel.max(1));
        logs.line(format!(
            "sweep: {} trials, {parallel} at a time",
            trials.len()
        ));
        let mut earlier = self.trial_runs(parent).await?;
        let semaphore = Arc::new(Semaphore::new(parallel));
        let mut running = Vec::new();
        for trial in trials {
            let previous = earlier.remove(&trial.index);
            if let Some(outcome) = previous.as_ref().and_then(recorded_outcome) {
                let run = previous.ok_or_else(|| anyhow!("no run"))?;
                logs.line(format!(
                    "trial {}: finished by an earlier attempt (run {})",
                    trial.index, run.info.run_id
                ));
                running.push(tokio::spawn(async move {
                    (trial, Ok(TrialEnd { outcome, run }))
                }));
                continue;
            }
            let permit = semaphore.clone().acquire_owned().await?;
            if lease.stop.load(Ordering::SeqCst) {
                break;
            }
            let (child, resume) = match previous {
                Some(run) => {
                    self.client
                        .update_run(&run.info.run_id, "RUNNING", None)
                        .await
                        .context("reopening a trial's run")?;
                    let resume = self.trial_checkpoint(&trial, &run, logs).await?;
                    (run, resume)
                }
                None => (self.child_run(parent, &trial).await?, None),
            };
            let worker = Worker {
                client: self.client.clone(),
                options: self.options.clone(),
            };
            let (lease, data, logs) = (lease.clone(), data.clone(), logs.clone());
            running.push(tokio::spawn(async move {
                let result = worker
                    .train_trial(&lease, &trial, data, resume, &child, &logs)
                    .await;
                let result = match result {
                    Ok(outcome) if !outcome.cancelled => worker
                        .record_trial(&child, &outcome)
                        .await
                        .map(|()| outcome),
                    other => other,
                };
                let status = match &result {
                    Ok(outcome) if outcome.cancelled => "KILLED",
                    Ok(_) => "FINISHED",
                    Err(_) => "FAILED",
                };
                let _ = worker
                    .client
                    .update_run(&child.info.run_id, status, Some(now_ms()))
                    .await;
                drop(permit);
                let end = result.map(|outcome| TrialEnd {
                    outcome,
                    run: child,
                });
                (trial, end)
            }));
        }
        let ranking = spec.sweep.as_ref().and_then(|s| s.metric.clone());
        let mut best: Option<(Trial, TrialEnd, String, f64)> = None;
        for handle in running {
            let (trial, result) = handle.await.context("a trial's task panicked")?;
            let end =
                result.with_context(|| format!("trial {} ({:?})", trial.index, trial.swept))?;
            if end.outcome.cancelled {
                return Ok(None);
            }
            let (name, value, higher) = match &ranking {
                Some(metric) => {
                    let value = end.outcome.metrics.get(metric).copied().ok_or_else(|| {
                        anyhow!(
                            "sweep.metric: trial {} has no metric '{metric}' (it has {:?})",
                            trial.index,
                            end.outcome.metrics.keys().collect::<Vec<_>>()
                        )
                    })?;
                    (metric.clone(), value, crate::higher_is_better(metric))
                }
                None => end.outcome.primary_metric.clone(),
            };
            logs.line(format!(
                "trial {} {:?}: {name} = {value:.4}",
                trial.index, trial.swept
            ));
            let better = best.as_ref().is_none_or(
                |(_, _, _, b)| {
                    if higher { value > *b } else { value < *b }
                },
            );
            if better {
                best = Some((trial, end, name, value));
            }
        }
        let Some((trial, mut end, name, value)) = best else {
            return Ok(None);
        };
        let tags = [Tag::new("cerulean.best_trial", trial.index.to_string())];
        let metrics = [Metric::new(format!("best_{name}"), value, now_ms(), 0)];
        self.client
            .log_batch(&parent.info.run_id, &metrics, &[], &tags)
            .await
            .context("recording the best trial")?;
        if end.outcome.files.is_empty() {
            end.outcome.files = self.trial_files(&end.run).await?;
        }
        Ok(Some((trial, end.outcome)))
    }

    /// The child runs of `parent` by trial index (the first one of a trial, should there be
    /// several).
    async fn trial_runs(&self, parent: &Run) -> anyhow::Result<BTreeMap<usize, Run>> {
        let filter = format!("tags.{PARENT_TAG} = '{}'", parent.info.run_id);
        let mut runs = self
            .client
            .search_runs(&parent.info.experiment_id, &filter)
            .await
            .context("looking for the trials of an earlier attempt")?;
        runs.sort_by_key(|r| r.info.start_time);
        let mut out = BTreeMap::new();
        for run in runs {
            if let Some(index) = tag(&run, TRIAL_TAG).and_then(|t| t.parse::<usize>().ok()) {
                out.entry(index).or_insert(run);
            }
        }
        Ok(out)
    }

    /// A child run of `parent` for one trial, with the trial's swept values as parameters.
    async fn child_run(&self, parent: &Run, trial: &Trial) -> anyhow::Result<Run> {
        let tags = [
            Tag::new(PARENT_TAG, parent.info.run_id.clone()),
            Tag::new(TRIAL_TAG, trial.index.to_string()),
        ];
        let name = format!("{}-trial-{}", parent.info.run_name, trial.index);
        let run = self
            .client
            .create_run(&parent.info.experiment_id, &name, now_ms(), &tags)
            .await
            .context("creating a trial's run")?;
        let params = spec_params(&trial.spec);
        self.client
            .log_batch(&run.info.run_id, &[], &params, &[])
            .await
            .context("logging a trial's parameters")?;
        Ok(run)
    }

    /// The newest checkpoint in a trial run's artifacts, if any.
    async fn trial_checkpoint(
        &self,
        trial: &Trial,
        run: &Run,
        logs: &LogPump,
    ) -> anyhow::Result<Option<Checkpoint>> {
        let dir = format!("{}/checkpoints", artifact_root(run)?);
        let listed = self
            .client
            .list_artifacts(&dir)
            .await
            .with_context(|| format!("listing {dir}"))?;
        // `epoch-00007.ckpt`: zero-padded, so the greatest name is the newest epoch.
        let Some(newest) = listed
            .into_iter()
            .filter(|(path, is_dir, _)| !is_dir && path.ends_with(".ckpt"))
            .map(|(path, _, _)| path)
            .max()
        else {
            return Ok(None);
        };
        let file = newest.rsplit('/').next().unwrap_or(&newest);
        let path = format!("{dir}/{file}");
        let bytes = download(&self.client, &path)
            .await
            .with_context(|| format!("downloading the checkpoint {path}"))?;
        let checkpoint = Checkpoint::from_bytes(&bytes)
            .with_context(|| format!("reading the checkpoint {path}"))?;
        logs.line(format!(
            "trial {}: resuming from {path} (epoch {}, step {})",
            trial.index, checkpoint.epoch, checkpoint.step
        ));
        Ok(Some(checkpoint))
    }

    /// Stores a finished trial on its run: the model files as `model/` artifacts, then the
    /// outcome tag (last, so a trial with the tag always has its files).
    async fn record_trial(&self, run: &Run, outcome: &TrainOutcome) -> anyhow::Result<()> {
        let root = artifact_root(run)?;
        for (name, bytes) in &outcome.files {
            self.client
                .upload_artifact(&format!("{root}/model/{name}"), bytes.clone())
                .await
                .with_context(|| format!("uploading a trial's model/{name}"))?;
        }
        let recorded = serde_json::to_string(outcome).context("encoding a trial's outcome")?;
        self.client
            .set_tag(&run.info.run_id, TRIAL_OUTCOME_TAG, &recorded)
            .await
            .context("recording a trial's outcome")?;
        Ok(())
    }

    /// A finished trial's model files, from its run's `model/` artifacts.
    async fn trial_files(&self, run: &Run) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let dir = format!("{}/model", artifact_root(run)?);
        let listed = self
            .client
            .list_artifacts(&dir)
            .await
            .with_context(|| format!("listing {dir}"))?;
        let mut files = Vec::new();
        for (path, is_dir, _) in listed {
            if is_dir {
                continue;
            }
            let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
            let bytes = download(&self.client, &format!("{dir}/{name}"))
                .await
                .with_context(|| format!("downloading {dir}/{name}"))?;
            files.push((name, bytes));
        }
        if files.is_empty() {
            return Err(anyhow!(
                "the best trial's run {} has no model files under {dir}",
                run.info.run_id
            ));
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Task;

    #[test]
    fn a_trial_outcome_round_trips_through_its_tag() {
        let outcome = TrainOutcome {
            files: vec![("model.json".into(), b"{}".to_vec())],
            metrics: BTreeMap::from([("val_accuracy".to_owned(), 0.9), ("val_loss".into(), 0.3)]),
            primary_metric: ("accuracy".into(), 0.9, true),
            epochs_run: 4,
            stopped_early: false,
            cancelled: false,
            exported_epoch: 4,
            task: Task::Classification,
            feature_names: vec!["a".into()],
            resume: None,
        };
        let text = serde_json::to_string(&outcome).unwrap();
        assert!(
            !text.contains("model.json"),
            "files are artifacts, not tags"
        );
        assert!(text.len() < cerulean_registry::validation::MAX_TAG_VAL_LENGTH);
        let mut run: Run = serde_json::from_value(serde_json::json!({
            "info": {"run_id": "r", "run_uuid": "r", "experiment_id": "1", "status": "FINISHED",
                     "artifact_uri": "mlflow-artifacts:/1/r/artifacts", "lifecycle_stage": "active"},
            "data": {"tags": [{"key": TRIAL_OUTCOME_TAG, "value": text}]}
        }))
        .unwrap();
        let back = recorded_outcome(&run).unwrap();
        assert_eq!(back.metrics, outcome.metrics);
        assert_eq!(back.primary_metric, outcome.primary_metric);
        assert_eq!(back.epochs_run, 4);
        assert!(back.files.is_empty());
        run.data.tags.clear();
        assert!(recorded_outcome(&run).is_none());
    }
}
