//! The training-job writes of [`Registry`] that publish `job_changed` events, and the job-spec
//! validator of [`super::RegistryConfig::job_spec_validator`]. Heartbeats, runs and logs go to
//! [`Registry::store`] directly (no event).

use super::Registry;
use crate::error::{RegistryError, Result};
use crate::events::RegistryEvent;
use crate::jobs::{FinishJob, Job, LeaseRequest, SubmitJob, check_spec};

impl Registry {
    fn publish_job(&self, job: &Job) {
        self.events.publish(RegistryEvent::job_changed(job));
    }

    /// Queues a job. The installed validator, if any, checks the spec first (its refusal is
    /// `INVALID_PARAMETER_VALUE` with its message) and supplies the normalized name, whether a
    /// GPU is needed (or-ed with the request's), and the experiment when the request names none.
    /// Publishes `job_changed`.
    pub async fn submit_job(&self, mut req: SubmitJob) -> Result<Job> {
        check_spec(&req.spec)?;
        if let Some(validate) = &self.config.job_spec_validator {
            let summary = validate(&req.spec).map_err(RegistryError::invalid)?;
            if !summary.name.trim().is_empty() {
                req.name = summary.name;
            }
            req.requires_gpu |= summary.requires_gpu;
            if req.experiment.as_deref().is_none_or(str::is_empty) {
                req.experiment = summary.experiment;
            }
        }
        let job = self.store.submit_job(req).await?;
        self.publish_job(&job);
        Ok(job)
    }

    /// Leases the oldest job the worker can run (see
    /// [`crate::store::MetadataStore::lease_job`]); publishes `job_changed` for it and for the
    /// jobs that ended as `CANCELLED` because their lease expired with a cancel pending.
    pub async fn lease_job(&self, req: LeaseRequest) -> Result<Option<(Job, String)>> {
        for job in self.store.reap_cancelled_jobs().await? {
            self.publish_job(&job);
        }
        let leased = self.store.lease_job(req).await?;
        if let Some((job, _)) = &leased {
            self.publish_job(job);
        }
        Ok(leased)
    }

    /// Ends a job for the worker holding its lease; publishes `job_changed`.
    pub async fn finish_job(&self, job_id: &str, lease_token: &str, req: FinishJob) -> Result<Job> {
        let job = self.store.finish_job(job_id, lease_token, req).await?;
        self.publish_job(&job);
        Ok(job)
    }

    /// Cancels a job (see [`crate::store::MetadataStore::cancel_job`]); publishes `job_changed`
    /// unless the job had ended already.
    pub async fn cancel_job(&self, job_id: &str) -> Result<Job> {
        let before = self.store.get_job(job_id).await?;
        let job = self.store.cancel_job(job_id).await?;
        if !before.status.is_terminal() {
            self.publish_job(&job);
        }
        Ok(job)
    }
}
