//! Applying the registry's state to the model repository: fetch and load the versions the
//! [`plan`](super::plan) keeps, switch the default version once its target is ready, unload the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cerulean_registry::client::RegistryClient;
use cerulean_registry::entities::{ModelVersion, ModelVersionStatus, RegisteredModelAlias};
use parking_lot::RwLock;

use super::fetch::Fetcher;
use super::plan::{Plan, Registered, plan};
use super::{FollowError, FollowerConfig};
use crate::repository::ModelRepository;
use crate::repository::managed::VersionStatus;

/// A version that cannot be served, remembered so that it is not fetched again.
#[derive(Debug, Clone)]
struct Failure {
    /// The version's source when it failed (a version's source never changes; a new registry might).
    source: String,
    /// Why.
    reason: String,
}

/// What the follower knows of one registered model.
#[derive(Debug, Default)]
struct ModelRecord {
    registered: Registered,
    failed: BTreeMap<u64, Failure>,
    /// Versions loaded on demand, with when (ms since the epoch).
    on_demand: BTreeMap<u64, u64>,
    /// Whether a local model of the same name hides it (warned once).
    shadowed: bool,
}

/// The follower's shared state: the registry client, the cache and what it has applied.
pub(super) struct Follower {
    client: RegistryClient,
    fetcher: Fetcher,
    repository: Arc<ModelRepository>,
    config: FollowerConfig,
    /// Per model; held while a model is being applied, so that applications never interleave.
    models: tokio::sync::Mutex<BTreeMap<String, ModelRecord>>,
    /// The registered versions, readable without waiting (for on-demand checks).
    registered: RwLock<BTreeMap<String, BTreeSet<u64>>>,
}

impl Follower {
    /// A follower of `client`'s registry into `repository`.
    pub(super) fn new(
        client: RegistryClient,
        repository: Arc<ModelRepository>,
        config: FollowerConfig,
    ) -> Follower {
        Follower {
            fetcher: Fetcher::new(client.clone(), config.cache_dir.clone()),
            client,
            repository,
            config,
            models: tokio::sync::Mutex::new(BTreeMap::new()),
            registered: RwLock::new(BTreeMap::new()),
        }
    }

    /// The registry's URL.
    pub(super) fn registry_url(&self) -> &str {
        self.client.base_url()
    }

    /// The registry client.
    pub(super) fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// The configuration.
    pub(super) fn config(&self) -> &FollowerConfig {
        &self.config
    }

    /// Whether the registry (as last read) has `version` of `name`.
    pub(super) fn is_registered(&self, name: &str, version: u64) -> bool {
        self.registered
            .read()
            .get(name)
            .is_some_and(|v| v.contains(&version))
    }

    /// Reads every registered model and applies each; models no longer registered are unloaded.
    pub(super) async fn sync_all(&self) -> Result<(), FollowError> {
        let models = self.client.registered_models().await?;
        let mut listed = BTreeSet::new();
        for model in models {
            listed.insert(model.name.clone());
            match self.client.model_versions(&model.name).await {
                Ok(versions) => {
                    self.apply(&model.name, registered(versions, &model.aliases))
                        .await;
                }
                Err(err) => {
                    tracing::warn!(model = %model.name, error = %err, "cannot read the model's versions");
                }
            }
        }
        let mut known: BTreeSet<String> = self.models.lock().await.keys().cloned().collect();
        known.extend(self.repository.managed_models());
        for name in known.difference(&listed) {
            self.apply(name, Registered::default()).await;
        }
        Ok(())
    }

    /// Reads one registered model and applies it (after an event about it).
    pub(super) async fn sync_model(&self, name: &str) -> Result<(), FollowError> {
        let registered = match self.client.get_registered_model(name).await {
            Ok(model) => registered(self.client.model_versions(name).await?, &model.aliases),
            Err(err) if err.is_not_found() => Registered::default(),
            Err(err) => return Err(err.into()),
        };
        self.apply(name, registered).await;
        Ok(())
    }

    /// Loads version `version` of `name` on request, when registered. `Ok(false)` when not.
    pub(super) async fn load_on_demand(
        &self,
        name: &str,
        version: u64,
    ) -> Result<bool, FollowError> {
        let mut models = self.models.lock().await;
        let Some(record) = models.get_mut(name) else {
            return Ok(false);
        };
        if record.shadowed || !record.registered.versions.contains_key(&version) {
            return Ok(false);
        }
        self.ensure_loaded(name, version, record).await?;
        record.on_demand.insert(version, now_ms());
        Ok(true)
    }

    /// Brings the repository in line with what the registry says of `name`.
    async fn apply(&self, name: &str, registered: Registered) {
        let mut models = self.models.lock().await;
        if registered.versions.is_empty() {
            self.registered.write().remove(name);
            let known = models.remove(name).is_some();
            if self.repository.remove_model(name) || known {
                self.fetcher.forget(name, None).await;
            }
            return;
        }
        self.registered.write().insert(
            name.to_string(),
            registered.versions.keys().copied().collect(),
        );
        let record = models.entry(name.to_string()).or_default();
        if self.repository.is_local(name) {
            if !record.shadowed {
                tracing::warn!(model = %name, "a local model of the same name is served; the registered model is not");
                record.shadowed = true;
                // A local model that appeared after the registered one was loaded takes its place.
                self.repository.remove_model(name);
            }
            record.registered = registered;
            return;
        }
        record.shadowed = false;
        let deleted: Vec<u64> = record
            .registered
            .versions
            .keys()
            .filter(|v| !registered.versions.contains_key(v))
            .copied()
            .collect();
        for version in &deleted {
            record.failed.remove(version);
            record.on_demand.remove(version);
        }
        record.registered = registered;
        // A version the policy keeps by itself (newest, alias target) is no longer an on-demand
        // one: when the policy drops it (the alias moves on), it is unloaded at once.
        if let Some(policy) = plan(
            &record.registered,
            &self.config.default_alias,
            self.config.keep_versions,
            &BTreeSet::new(),
        ) {
            record.on_demand.retain(|v, _| !policy.keep.contains(v));
        }
        let extra = self.in_use_on_demand(name, record);
        let Some(plan) = plan(
            &record.registered,
            &self.config.default_alias,
            self.config.keep_versions,
            &extra,
        ) else {
            return;
        };
        for &version in &plan.load_order {
            // Failures are recorded in the repository (and logged) by ensure_loaded.
            let _ = self.ensure_loaded(name, version, record).await;
        }
        // Switch first, unload after: unversioned requests always find a version to go to.
        let default = self.switch_default(name, &plan, record);
        for version in self.repository.version_statuses(name).into_keys() {
            if !plan.keep.contains(&version) && version != default {
                record.on_demand.remove(&version);
                self.repository.unload_version(name, version);
            }
        }
        for version in deleted {
            self.fetcher.forget(name, Some(version)).await;
        }
    }

    /// Fetches and loads one version unless it is loaded (or known not to be servable). A failure
    /// is recorded in the repository as the version's reason.
    async fn ensure_loaded(
        &self,
        name: &str,
        version: u64,
        record: &mut ModelRecord,
    ) -> Result<(), FollowError> {
        if self.repository.version_statuses(name).get(&version) == Some(&VersionStatus::Ready) {
            return Ok(());
        }
        let source = record
            .registered
            .versions
            .get(&version)
            .cloned()
            .unwrap_or_default();
        if let Some(failure) = record.failed.get(&version)
            && failure.source == source
        {
            self.repository
                .set_version_unavailable(name, version, failure.reason.clone());
            return Err(FollowError::Unservable(failure.reason.clone()));
        }
        let result = async {
            let dir = self.fetcher.materialize(name, version).await?;
            self.repository.load_version(name, version, &dir).await?;
            Ok::<(), FollowError>(())
        }
        .await;
        if let Err(err) = &result {
            let reason = err.to_string();
            tracing::warn!(model = %name, version, error = %reason, "registered version not served");
            if err.is_permanent() {
                record.failed.insert(
                    version,
                    Failure {
                        source,
                        reason: reason.clone(),
                    },
                );
                self.repository
                    .set_version_unavailable(name, version, reason);
            } else {
                self.repository.set_version_unavailable(
                    name,
                    version,
                    format!("{reason} (retrying)"),
                );
            }
        }
        result
    }

    /// Points unversioned requests at the plan's target once it is ready; while it is not, the
    /// current default keeps serving when it can. Returns the default set.
    fn switch_default(&self, name: &str, plan: &Plan, record: &ModelRecord) -> u64 {
        let statuses = self.repository.version_statuses(name);
        let ready = |v: u64| statuses.get(&v) == Some(&VersionStatus::Ready);
        let current = self.repository.default_version(name).filter(|&c| {
            c != plan.target && ready(c) && record.registered.versions.contains_key(&c)
        });
        let chosen = match current {
            Some(current) if !ready(plan.target) => {
                tracing::warn!(
                    model = %name,
                    target = plan.target,
                    serving = current,
                    "the default version's target is not ready; the previous default keeps serving"
                );
                current
            }
            _ => plan.target,
        };
        self.repository.set_default_version(name, Some(chosen));
        chosen
    }

    /// The versions loaded on demand that were used (or loaded) within the idle limit; the others
    /// are forgotten (and unloaded by the caller's plan).
    fn in_use_on_demand(&self, name: &str, record: &mut ModelRecord) -> BTreeSet<u64> {
        let idle_ms = u64::try_from(self.config.idle_unload.as_millis()).unwrap_or(u64::MAX);
        let now = now_ms();
        let repository = &self.repository;
        record.on_demand.retain(|&version, loaded| {
            let used = repository
                .get(name, Some(&version.to_string()))
                .map(|m| m.stats().last_inference)
                .unwrap_or(0);
            now.saturating_sub((*loaded).max(used)) < idle_ms
        });
        record.on_demand.keys().copied().collect()
    }
}

/// The registry's READY versions of a model and its aliases (those pointing at one of them).
fn registered(versions: Vec<ModelVersion>, aliases: &[RegisteredModelAlias]) -> Registered {
    let versions: BTreeMap<u64, String> = versions
        .into_iter()
        .filter(|v| v.status == ModelVersionStatus::Ready)
        .filter_map(|v| Some((v.version.parse::<u64>().ok()?, v.source)))
        .collect();
    let aliases = aliases
        .iter()
        .filter_map(|a| Some((a.alias.clone(), a.version.parse::<u64>().ok()?)))
        .filter(|(_, v)| versions.contains_key(v))
        .collect();
    Registered { versions, aliases }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
