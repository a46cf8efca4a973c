//! The metadata store's shared test suite, run against SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use cerulean_registry::entities::{
    Dataset, DatasetInput, LoggedModelStatus, Metric, ModelInput, ModelOutput, Param, RunStatus,
    Tag,
};
use cerulean_registry::error::RegistryError;
use cerulean_registry::store::{
    CreateExperiment, CreateLoggedModel, CreateModelVersion, CreateRegisteredModel, CreateRun,
    LoggedModelOrderBy, MetadataStore, SearchExperiments, SearchLoggedModels, SearchQuery,
    SearchRuns, SetAlias, SqlStore, UpdateRun, ViewType,
};
use serde_json::json;

type S = Arc<SqlStore>;

fn code(e: &RegistryError) -> &'static str {
    e.error_code()
}

async fn new_experiment(s: &S, name: &str) -> String {
    s.create_experiment(CreateExperiment {
        name: name.into(),
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn new_run(s: &S, exp: &str, name: &str) -> String {
    s.create_run(CreateRun {
        experiment_id: Some(exp.into()),
        run_name: Some(name.into()),
        start_time: Some(1000),
        ..Default::default()
    })
    .await
    .unwrap()
    .info
    .run_id
}

async fn new_model(s: &S, name: &str) {
    s.create_registered_model(CreateRegisteredModel {
        name: name.into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn new_version(s: &S, name: &str) -> String {
    s.create_model_version(CreateModelVersion {
        name: name.into(),
        source: "s3://bucket/model".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .version
}

// ------------------------------------------------------------------ experiments

async fn experiments(s: S) {
    // The default experiment exists after migrations.
    let d = s.get_experiment("0").await.unwrap();
    assert_eq!(d.name, "Default");
    assert_eq!(d.lifecycle_stage, "active");
    assert_eq!(d.artifact_location, "mlflow-artifacts:/0");
    assert_eq!(s.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5]);

    let id = s
        .create_experiment(CreateExperiment {
            name: "alpha".into(),
            artifact_location: None,
            tags: vec![Tag::new("team", "nlp"), Tag::new("team", "cv")],
        })
        .await
        .unwrap();
    assert_ne!(id, "0");
    let e = s.get_experiment_by_name("alpha").await.unwrap();
    assert_eq!(e.experiment_id, id);
    assert_eq!(e.artifact_location, format!("mlflow-artifacts:/{id}"));
    assert_eq!(e.tags, vec![Tag::new("team", "cv")]);
    let v = serde_json::to_value(&e).unwrap();
    assert!(v["creation_time"].is_i64() && v["experiment_id"].is_string());

    let dup = s
        .create_experiment(CreateExperiment {
            name: "alpha".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (code(&dup), dup.http_status()),
        ("RESOURCE_ALREADY_EXISTS", 400)
    );
    assert_eq!(
        dup.to_string(),
        "Experiment with name 'alpha' already exists."
    );
    let missing = s.get_experiment_by_name("nope").await.unwrap_err();
    assert_eq!(
        (code(&missing), missing.http_status()),
        ("RESOURCE_DOES_NOT_EXIST", 404)
    );
    assert_eq!(
        code(&s.get_experiment("9999").await.unwrap_err()),
        "RESOURCE_DOES_NOT_EXIST"
    );
    assert_eq!(
        code(&s.get_experiment("abc").await.unwrap_err()),
        "INVALID_PARAMETER_VALUE"
    );

    // Rename, tags, delete, restore.
    s.rename_experiment(&id, "alpha2").await.unwrap();
    assert_eq!(s.get_experiment(&id).await.unwrap().name, "alpha2");
    let other = new_experiment(&s, "other").await;
    assert_eq!(
        code(&s.rename_experiment(&other, "alpha2").await.unwrap_err()),
        "RESOURCE_ALREADY_EXISTS"
    );
    s.set_experiment_tag(&id, "stage", "dev").await.unwrap();
    s.set_experiment_tag(&id, "stage", "prod").await.unwrap();
    let e = s.get_experiment(&id).await.unwrap();
    assert!(e.tags.contains(&Tag::new("stage", "prod")));
    s.delete_experiment_tag(&id, "stage").await.unwrap();
    assert!(s.delete_experiment_tag(&id, "stage").await.is_err());

    let run = new_run(&s, &id, "r").await;
    s.delete_experiment(&id).await.unwrap();
    assert_eq!(
        s.get_experiment(&id).await.unwrap().lifecycle_stage,
        "deleted"
    );
    assert_eq!(
        s.get_run(&run).await.unwrap().info.lifecycle_stage,
        "deleted"
    );
    let e = s
        .create_run(CreateRun {
            experiment_id: Some(id.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), "INVALID_PARAMETER_VALUE");
    s.restore_experiment(&id).await.unwrap();
    assert_eq!(
        s.get_experiment(&id).await.unwrap().lifecycle_stage,
        "active"
    );
    assert_eq!(
        s.get_run(&run).await.unwrap().info.lifecycle_stage,
        "active"
    );

    // Search: paging, filters, ordering, view types.
    for i in 0..7 {
        new_experiment(&s, &format!("page-{i}")).await;
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s
            .search_experiments(SearchExperiments {
                max_results: Some(3),
                page_token: token.clone(),
                filter: Some("name LIKE 'page-%'".into()),
                order_by: vec!["name ASC".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|e| e.name));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        seen,
        (0..7).map(|i| format!("page-{i}")).collect::<Vec<_>>()
    );
    // LIKE is case-sensitive, ILIKE is not.
    let like = s
        .search_experiments(SearchExperiments {
            filter: Some("name LIKE 'PAGE-%'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(like.items.is_empty());
    let ilike = s
        .search_experiments(SearchExperiments {
            filter: Some("name ILIKE 'PAGE-%'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ilike.items.len(), 7);
    s.set_experiment_tag(&other, "team", "x").await.unwrap();
    let tagged = s
        .search_experiments(SearchExperiments {
            filter: Some("tags.team = 'x'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tagged.items.len(), 1);
    assert_eq!(tagged.items[0].name, "other");
    s.delete_experiment(&other).await.unwrap();
    let deleted = s
        .search_experiments(SearchExperiments {
            view_type: Some(ViewType::DeletedOnly),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(deleted.items.len(), 1);
    let all = s
        .search_experiments(SearchExperiments {
            view_type: Some(ViewType::All),
            max_results: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 10); // Default, alpha2, other, 7 pages
    assert!(
        s.search_experiments(SearchExperiments {
            filter: Some("bogus.x = 'y'".into()),
            ..Default::default()
        })
        .await
        .is_err()
    );
}
both!(experiments_crud_and_search, crate::experiments);

// ------------------------------------------------------------------ runs and metrics

async fn runs_and_metrics(s: S) {
    let exp = new_experiment(&s, "runs").await;
    let run = s
        .create_run(CreateRun {
            experiment_id: Some(exp.clone()),
            start_time: Some(5),
            tags: vec![Tag::new("mlflow.user", "ana"), Tag::new("k", "v")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(run.info.status, RunStatus::Running);
    assert_eq!(run.info.user_id, "ana");
    assert!(!run.info.run_name.is_empty(), "a name is generated");
    assert!(
        run.data
            .tags
            .iter()
            .any(|t| t.key == "mlflow.runName" && t.value == run.info.run_name)
    );
    assert_eq!(
        run.info.artifact_uri,
        format!("mlflow-artifacts:/{exp}/{}/artifacts", run.info.run_id)
    );
    let v = serde_json::to_value(&run).unwrap();
    assert_eq!(v["info"]["run_uuid"], v["info"]["run_id"]);
    assert_eq!(v["inputs"], json!({}));
    assert!(v.get("outputs").is_none());
    let id = run.info.run_id.clone();

    // Default experiment when none is given.
    let r0 = s.create_run(CreateRun::default()).await.unwrap();
    assert_eq!(r0.info.experiment_id, "0");
    // run_name and the tag must agree.
    let clash = s
        .create_run(CreateRun {
            experiment_id: Some(exp.clone()),
            run_name: Some("a".into()),
            tags: vec![Tag::new("mlflow.runName", "b")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(&clash), "INVALID_PARAMETER_VALUE");

    // Metrics append; the latest is the greatest (step, timestamp, value).
    s.log_metric(&id, Metric::new("loss", 1.0, 100, 0))
        .await
        .unwrap();
    s.log_metric(&id, Metric::new("loss", 0.5, 200, 1))
        .await
        .unwrap();
    s.log_metric(&id, Metric::new("loss", 0.7, 150, 2))
        .await
        .unwrap();
    s.log_metric(&id, Metric::new("loss", 0.9, 50, 1))
        .await
        .unwrap(); // older step: not latest
    s.log_metric(&id, Metric::new("loss", 0.7, 150, 2))
        .await
        .unwrap(); // exact duplicate: ignored
    s.log_metric(&id, Metric::new("nan", f64::NAN, 10, 0))
        .await
        .unwrap();
    s.log_metric(&id, Metric::new("inf", f64::INFINITY, 10, 0))
        .await
        .unwrap();
    s.log_metric(&id, Metric::new("ninf", f64::NEG_INFINITY, 10, 0))
        .await
        .unwrap();
    let got = s.get_run(&id).await.unwrap();
    let m = |k: &str| {
        got.data
            .metrics
            .iter()
            .find(|m| m.key == k)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (m("loss").value, m("loss").step, m("loss").timestamp),
        (0.7, 2, 150)
    );
    assert!(m("nan").value.is_nan());
    assert_eq!(m("inf").value, f64::INFINITY);
    assert_eq!(m("ninf").value, f64::NEG_INFINITY);
    let v = serde_json::to_value(&got).unwrap();
    let nan = v["data"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "nan")
        .unwrap()
        .clone();
    assert_eq!(nan["value"], "NaN");
    assert_eq!(v["outputs"], json!({}));

    // History: every value, by timestamp, paged.
    let h = s.get_metric_history(&id, "loss", None, None).await.unwrap();
    assert_eq!(
        h.items
            .iter()
            .map(|m| (m.timestamp, m.value))
            .collect::<Vec<_>>(),
        vec![(50, 0.9), (100, 1.0), (150, 0.7), (200, 0.5)]
    );
    assert!(h.next_page_token.is_none());
    let p1 = s
        .get_metric_history(&id, "loss", Some(3), None)
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 3);
    let p2 = s
        .get_metric_history(&id, "loss", Some(3), p1.next_page_token.as_deref())
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 1);
    assert!(p2.next_page_token.is_none());
    let nanh = s.get_metric_history(&id, "nan", None, None).await.unwrap();
    assert!(nanh.items[0].value.is_nan());
    assert!(
        s.get_metric_history(&id, "missing", None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        code(
            &s.get_metric_history("nope", "loss", None, None)
                .await
                .unwrap_err()
        ),
        "RESOURCE_DOES_NOT_EXIST"
    );
    let e = s
        .log_metric("nope", Metric::new("x", 1.0, 1, 0))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "Run with id=nope not found");
    assert_eq!(e.http_status(), 404);
    assert!(
        s.log_metric(&id, Metric::new("bad//key", 1.0, 1, 0))
            .await
            .is_err()
    );

    // Tags.
    s.set_tag(&id, Tag::new("k", "v2")).await.unwrap();
    s.set_tag(&id, Tag::new("mlflow.runName", "renamed"))
        .await
        .unwrap();
    let got = s.get_run(&id).await.unwrap();
    assert_eq!(got.info.run_name, "renamed");
    assert!(got.data.tags.contains(&Tag::new("k", "v2")));
    s.delete_tag(&id, "k").await.unwrap();
    assert_eq!(
        code(&s.delete_tag(&id, "k").await.unwrap_err()),
        "RESOURCE_DOES_NOT_EXIST"
    );

    // Update.
    let info = s
        .update_run(UpdateRun {
            run_id: id.clone(),
            status: Some(RunStatus::Finished),
            end_time: Some(9999),
            run_name: Some("final".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        (info.status, info.end_time, info.run_name.as_str()),
        (RunStatus::Finished, Some(9999), "final")
    );
    let got = s.get_run(&id).await.unwrap();
    assert!(got.data.tags.contains(&Tag::new("mlflow.runName", "final")));

    // Delete / restore; a deleted run refuses writes.
    s.delete_run(&id).await.unwrap();
    assert_eq!(
        s.get_run(&id).await.unwrap().info.lifecycle_stage,
        "deleted"
    );
    let e = s
        .log_metric(&id, Metric::new("x", 1.0, 1, 0))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "INVALID_PARAMETER_VALUE");
    assert!(s.log_param(&id, Param::new("p", "1")).await.is_err());
    s.restore_run(&id).await.unwrap();
    s.log_metric(&id, Metric::new("x", 1.0, 1, 0))
        .await
        .unwrap();

    // Inputs and outputs.
    let ds = DatasetInput {
        tags: vec![Tag::new("mlflow.data.context", "training")],
        dataset: Dataset {
            name: "iris".into(),
            digest: "abc123".into(),
            source_type: "local".into(),
            source: "{\"uri\": \"/data/iris.csv\"}".into(),
            schema: Some("{}".into()),
            profile: None,
        },
    };
    s.log_inputs(
        &id,
        vec![ds.clone(), ds.clone()],
        vec![ModelInput {
            model_id: "m-1".into(),
        }],
    )
    .await
    .unwrap();
    s.log_outputs(
        &id,
        vec![ModelOutput {
            model_id: "m-2".into(),
            step: 3,
        }],
    )
    .await
    .unwrap();
    let got = s.get_run(&id).await.unwrap();
    assert_eq!(got.inputs.dataset_inputs, vec![ds]);
    assert_eq!(
        got.inputs.model_inputs,
        vec![ModelInput {
            model_id: "m-1".into()
        }]
    );
    assert_eq!(
        got.outputs.unwrap().model_outputs,
        vec![ModelOutput {
            model_id: "m-2".into(),
            step: 3
        }]
    );
}
both!(runs_metrics_nan_history, crate::runs_and_metrics);

// ------------------------------------------------------------------ params

async fn params_write_once(s: S) {
    let exp = new_experiment(&s, "params").await;
    let id = new_run(&s, &exp, "p").await;
    s.log_param(&id, Param::new("lr", "0.01")).await.unwrap();
    s.log_param(&id, Param::new("lr", "0.01")).await.unwrap(); // same value: idempotent
    let e = s
        .log_param(&id, Param::new("lr", "0.02"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "INVALID_PARAMETER_VALUE");
    assert!(
        e.to_string()
            .contains("Changing param values is not allowed"),
        "{e}"
    );
    let got = s.get_run(&id).await.unwrap();
    assert_eq!(got.data.params, vec![Param::new("lr", "0.01")]);
    assert!(
        s.log_param(&id, Param::new("long", "x".repeat(6001)))
            .await
            .is_err()
    );
    s.log_param(&id, Param::new("long", "x".repeat(6000)))
        .await
        .unwrap();
    assert_eq!(
        code(
            &s.log_param("missing", Param::new("a", "b"))
                .await
                .unwrap_err()
        ),
        "RESOURCE_DOES_NOT_EXIST"
    );
}
both!(params_are_write_once, crate::params_write_once);

// ------------------------------------------------------------------ log_batch

async fn log_batch(s: S) {
    let exp = new_experiment(&s, "batch").await;
    let id = new_run(&s, &exp, "b").await;
    let metrics: Vec<Metric> = (0..1000)
        .map(|i| Metric::new("m", i as f64, i, i))
        .collect();
    s.log_batch(&id, metrics, vec![], vec![]).await.unwrap();
    let h = s.get_metric_history(&id, "m", None, None).await.unwrap();
    assert_eq!(h.items.len(), 1000);
    let got = s.get_run(&id).await.unwrap();
    assert_eq!(got.data.metrics[0].value, 999.0);

    // Limits.
    let too_many: Vec<Metric> = (0..1001).map(|i| Metric::new("m", 0.0, i, 0)).collect();
    let e = s
        .log_batch(&id, too_many, vec![], vec![])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "INVALID_PARAMETER_VALUE");
    assert!(e.to_string().contains("at most 1000 metrics"));
    let params: Vec<Param> = (0..101).map(|i| Param::new(format!("p{i}"), "v")).collect();
    assert!(s.log_batch(&id, vec![], params, vec![]).await.is_err());
    let tags: Vec<Tag> = (0..101).map(|i| Tag::new(format!("t{i}"), "v")).collect();
    assert!(s.log_batch(&id, vec![], vec![], tags).await.is_err());
    let m950: Vec<Metric> = (0..950).map(|i| Metric::new("z", 0.0, i, 0)).collect();
    let p100: Vec<Param> = (0..100).map(|i| Param::new(format!("p{i}"), "v")).collect();
    let e = s.log_batch(&id, m950, p100, vec![]).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("at most 1000 metrics, params, and tags")
    );
    let e = s
        .log_batch(&id, vec![], vec![], vec![Tag::new("t", "x".repeat(8001))])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "INVALID_PARAMETER_VALUE");
    let e = s
        .log_batch(&id, vec![], vec![Param::new("k".repeat(251), "v")], vec![])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "INVALID_PARAMETER_VALUE");
    // Nothing of a refused batch was written.
    assert_eq!(
        s.get_metric_history(&id, "z", None, None)
            .await
            .unwrap()
            .items
            .len(),
        0
    );

    // Atomic: a param conflict refuses the whole batch.
    s.log_param(&id, Param::new("fixed", "1")).await.unwrap();
    let e = s
        .log_batch(
            &id,
            vec![Metric::new("atomic", 1.0, 1, 0)],
            vec![Param::new("fixed", "2"), Param::new("fresh", "1")],
            vec![Tag::new("atomic", "1")],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "INVALID_PARAMETER_VALUE");
    let got = s.get_run(&id).await.unwrap();
    assert!(got.data.metrics.iter().all(|m| m.key != "atomic"));
    assert!(got.data.params.iter().all(|p| p.key != "fresh"));
    assert!(got.data.tags.iter().all(|t| t.key != "atomic"));

    // A good batch: metrics, params (one already there with the same value), tags (last wins).
    s.log_batch(
        &id,
        vec![
            Metric::new("acc", 0.9, 1, 1),
            Metric::new("acc", f64::NAN, 2, 2),
        ],
        vec![Param::new("fixed", "1"), Param::new("fresh", "1")],
        vec![
            Tag::new("t", "a"),
            Tag::new("t", "b"),
            Tag::new("mlflow.runName", "batched"),
        ],
    )
    .await
    .unwrap();
    let got = s.get_run(&id).await.unwrap();
    assert!(
        got.data
            .metrics
            .iter()
            .any(|m| m.key == "acc" && m.value.is_nan())
    );
    assert!(got.data.params.contains(&Param::new("fresh", "1")));
    assert!(got.data.tags.contains(&Tag::new("t", "b")));
    assert_eq!(got.info.run_name, "batched");
    assert_eq!(
        code(
            &s.log_batch("missing", vec![], vec![], vec![])
                .await
                .unwrap_err()
        ),
        "RESOURCE_DOES_NOT_EXIST"
    );
}
both!(log_batch_limits_and_atomicity, crate::log_batch);

// ------------------------------------------------------------------ run search

async fn run_search(s: S) {
    let e1 = new_experiment(&s, "search-1").await;
    let e2 = new_experiment(&s, "search-2").await;
    let mut ids = Vec::new();
    for i in 0..6i64 {
        let exp = if i % 2 == 0 { &e1 } else { &e2 };
        let id = s
            .create_run(CreateRun {
                experiment_id: Some(exp.clone()),
                run_name: Some(format!("run-{i}")),
                start_time: Some(1000 + i),
                ..Default::default()
            })
            .await
            .unwrap()
            .info
            .run_id;
        s.log_metric(&id, Metric::new("rmse", 1.0 - i as f64 / 10.0, 1, 0))
            .await
            .unwrap();
        s.log_param(&id, Param::new("model", if i < 3 { "lr" } else { "tree" }))
            .await
            .unwrap();
        s.set_tag(&id, Tag::new("user-name", format!("u{i}")))
            .await
            .unwrap();
        ids.push(id);
    }
    // A run without the metric, and one with a NaN rmse.
    let at = |name: &str, t: i64| CreateRun {
        experiment_id: Some(e1.clone()),
        run_name: Some(name.into()),
        start_time: Some(t),
        ..Default::default()
    };
    let bare = s.create_run(at("bare", 2000)).await.unwrap().info.run_id;
    let nan = s.create_run(at("nan", 2001)).await.unwrap().info.run_id;
    s.log_metric(&nan, Metric::new("rmse", f64::NAN, 1, 0))
        .await
        .unwrap();
    let exps = vec![e1.clone(), e2.clone()];
    let search = |filter: &str, order: &[&str]| SearchRuns {
        experiment_ids: exps.clone(),
        filter: Some(filter.into()),
        order_by: order.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    };
    let names = |runs: &[cerulean_registry::entities::Run]| {
        runs.iter()
            .map(|r| r.info.run_name.clone())
            .collect::<Vec<_>>()
    };

    // Default order: start_time DESC.
    let all = s.search_runs(search("", &[])).await.unwrap();
    assert_eq!(
        names(&all.items),
        [
            "nan", "bare", "run-5", "run-4", "run-3", "run-2", "run-1", "run-0"
        ]
    );

    let r = s
        .search_runs(search("metrics.rmse < 0.75", &["metrics.rmse ASC"]))
        .await
        .unwrap();
    assert_eq!(names(&r.items), ["run-5", "run-4", "run-3"]);
    let r = s
        .search_runs(search(
            "metrics.rmse >= 0.8 and params.model = 'lr'",
            &["metrics.rmse DESC"],
        ))
        .await
        .unwrap();
    assert_eq!(names(&r.items), ["run-0", "run-1", "run-2"]);
    let r = s
        .search_runs(search("params.model != 'lr'", &["attributes.start_time"]))
        .await
        .unwrap();
    assert_eq!(names(&r.items), ["run-3", "run-4", "run-5"]);
    let r = s
        .search_runs(search(
            "tags.\"user-name\" LIKE 'u%' AND tags.`user-name` IN ('u1', 'u4')",
            &["run_name"],
        ))
        .await
        .unwrap();
    assert_eq!(names(&r.items), ["run-1", "run-4"]);
    let r = s
        .search_runs(search("tags.user-name ILIKE 'U2'", &[]))
        .await
        .unwrap();
    assert_eq!(names(&r.items), ["run-2"]);
    let r = s
        .search_runs(search(
            "attributes.run_name LIKE 'run-%' AND attributes.start_time > 1003",
            &["start_time ASC"],
        ))
        .await
        .unwrap();
    assert_eq!(names(&r.items), ["run-4", "run-5"]);
    let r = s
        .search_runs(search(
            &format!("attributes.run_id IN ('{}', '{}')", ids[0], ids[5]),
            &["run_name DESC"],
        ))
        .await
        .unwrap();
    assert_eq!(names(&r.items), ["run-5", "run-0"]);
    let r = s
        .search_runs(search(&format!("run_id NOT IN ('{}')", ids[0]), &[]))
        .await
        .unwrap();
    assert_eq!(r.items.len(), 7);
    let r = s
        .search_runs(search("params.model IS NULL", &["run_name"]))
        .await
        .unwrap();
    assert_eq!(names(&r.items), ["bare", "nan"]);
    let r = s
        .search_runs(search("attributes.status = 'RUNNING'", &[]))
        .await
        .unwrap();
    assert_eq!(r.items.len(), 8);

    // Ordering by a metric puts NaN, then missing, last (ascending and descending).
    let r = s
        .search_runs(search("", &["metrics.rmse ASC"]))
        .await
        .unwrap();
    let n = names(&r.items);
    assert_eq!(&n[..3], ["run-5", "run-4", "run-3"]);
    assert_eq!(&n[6..], ["nan", "bare"]);
    let r = s
        .search_runs(search("", &["metrics.rmse DESC"]))
        .await
        .unwrap();
    let n = names(&r.items);
    assert_eq!(&n[..2], ["run-0", "run-1"]);
    assert_eq!(&n[6..], ["nan", "bare"]);
    let r = s
        .search_runs(search(
            "",
            &["params.model DESC", "attributes.start_time ASC"],
        ))
        .await
        .unwrap();
    assert_eq!(&names(&r.items)[..3], ["run-3", "run-4", "run-5"]);

    // Paging.
    let mut seen = HashSet::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = s
            .search_runs(SearchRuns {
                experiment_ids: exps.clone(),
                max_results: Some(3),
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        pages += 1;
        for r in page.items {
            assert!(seen.insert(r.info.run_id));
        }
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!((seen.len(), pages), (8, 3));

    // View types.
    s.delete_run(&bare).await.unwrap();
    let active = s.search_runs(search("", &[])).await.unwrap();
    assert_eq!(active.items.len(), 7);
    let deleted = s
        .search_runs(SearchRuns {
            experiment_ids: exps.clone(),
            run_view_type: Some(ViewType::DeletedOnly),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&deleted.items), ["bare"]);

    // Datasets.
    s.log_inputs(
        &ids[1],
        vec![DatasetInput {
            tags: vec![Tag::new("mlflow.data.context", "eval")],
            dataset: Dataset {
                name: "wine".into(),
                digest: "d1".into(),
                source_type: "local".into(),
                source: "{}".into(),
                schema: None,
                profile: None,
            },
        }],
        vec![],
    )
    .await
    .unwrap();
    let r = s
        .search_runs(search(
            "datasets.name = 'wine' AND datasets.context = 'eval'",
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(names(&r.items), ["run-1"]);

    // Bad filters and orderings are INVALID_PARAMETER_VALUE.
    for bad in [
        "metrics.rmse = 'x'",
        "params.model > 1",
        "attributes.bogus = 'x'",
        "metrics.a < 1 OR metrics.b > 1",
        "foo",
    ] {
        let e = s.search_runs(search(bad, &[])).await.unwrap_err();
        assert_eq!(code(&e), "INVALID_PARAMETER_VALUE", "{bad}");
    }
    assert!(
        s.search_runs(search("", &["metrics.rmse sideways"]))
            .await
            .is_err()
    );
}
both!(run_search_filters_and_ordering, crate::run_search);

// ------------------------------------------------------------------ registry

async fn registry(s: S) {
    let created = s
        .create_registered_model(CreateRegisteredModel {
            name: "fraud".into(),
            tags: vec![Tag::new("team", "risk")],
            description: Some("catches fraud".into()),
            user_id: None,
        })
        .await
        .unwrap();
    assert_eq!(created.tags, vec![Tag::new("team", "risk")]);
    let e = s
        .create_registered_model(CreateRegisteredModel {
            name: "fraud".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e), e.http_status()),
        ("RESOURCE_ALREADY_EXISTS", 400)
    );
    let e = s.get_registered_model("nope").await.unwrap_err();
    assert_eq!(e.to_string(), "Registered Model with name=nope not found");
    assert_eq!(e.http_status(), 404);
    assert!(
        s.create_registered_model(CreateRegisteredModel {
            name: "bad/name".into(),
            ..Default::default()
        })
        .await
        .is_err()
    );

    // Versions: 1, 2, 3; numbers are not reused after a delete.
    let mv = s
        .create_model_version(CreateModelVersion {
            name: "fraud".into(),
            source: "mlflow-artifacts:/1/abc/artifacts/model".into(),
            run_id: Some("abc".into()),
            tags: vec![Tag::new("k", "v")],
            description: Some("first".into()),
            model_id: Some("m-0123".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (mv.version.as_str(), mv.current_stage.as_str()),
        ("1", "None")
    );
    let v = serde_json::to_value(&mv).unwrap();
    assert_eq!(v["status"], "READY");
    assert_eq!(v["version"], "1");
    assert_eq!(v["model_id"], "m-0123");
    assert_eq!(new_version(&s, "fraud").await, "2");
    assert_eq!(new_version(&s, "fraud").await, "3");
    s.delete_model_version("fraud", "3", "tester")
        .await
        .unwrap();
    assert_eq!(new_version(&s, "fraud").await, "4");
    let e = s.get_model_version("fraud", "3").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "Model Version (name=fraud, version=3) not found"
    );
    assert_eq!(
        code(&s.get_model_version("fraud", "x").await.unwrap_err()),
        "INVALID_PARAMETER_VALUE"
    );
    assert_eq!(
        code(
            &s.create_model_version(CreateModelVersion {
                name: "nope".into(),
                source: "s3://x".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        ),
        "RESOURCE_DOES_NOT_EXIST"
    );

    let got = s.get_model_version("fraud", "1").await.unwrap();
    assert_eq!(got.tags, vec![Tag::new("k", "v")]);
    assert_eq!(got.run_id.as_deref(), Some("abc"));
    assert_eq!(
        s.get_model_version_download_uri("fraud", "1")
            .await
            .unwrap(),
        "mlflow-artifacts:/1/abc/artifacts/model"
    );
    let upd = s
        .update_model_version("fraud", "1", Some("better"))
        .await
        .unwrap();
    assert_eq!(upd.description.as_deref(), Some("better"));
    s.set_model_version_tag("fraud", "1", "k", "v2")
        .await
        .unwrap();
    s.set_model_version_tag("fraud", "1", "k2", "x")
        .await
        .unwrap();
    s.delete_model_version_tag("fraud", "1", "k2")
        .await
        .unwrap();
    assert_eq!(
        s.get_model_version("fraud", "1").await.unwrap().tags,
        vec![Tag::new("k", "v2")]
    );

    // Stages.
    let t = s
        .transition_model_version_stage("fraud", "1", "production", false)
        .await
        .unwrap();
    assert_eq!(
        (
            t.previous_stage.as_str(),
            t.model_version.current_stage.as_str()
        ),
        ("None", "Production")
    );
    let t = s
        .transition_model_version_stage("fraud", "2", "Production", true)
        .await
        .unwrap();
    assert_eq!(
        t.archived,
        vec![("1".to_string(), "Production".to_string())]
    );
    assert_eq!(
        s.get_model_version("fraud", "1")
            .await
            .unwrap()
            .current_stage,
        "Archived"
    );
    assert!(
        s.transition_model_version_stage("fraud", "2", "Archived", true)
            .await
            .is_err()
    );
    assert!(
        s.transition_model_version_stage("fraud", "2", "Sideways", false)
            .await
            .is_err()
    );
    let latest = s
        .get_latest_versions("fraud", &["Production".into()])
        .await
        .unwrap();
    assert_eq!(
        latest
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["2"]
    );
    let latest = s.get_latest_versions("fraud", &[]).await.unwrap();
    let mut lv: Vec<(String, String)> = latest
        .into_iter()
        .map(|v| (v.current_stage, v.version))
        .collect();
    lv.sort();
    assert_eq!(
        lv,
        vec![
            ("Archived".to_string(), "1".to_string()),
            ("None".to_string(), "4".to_string()),
            ("Production".to_string(), "2".to_string())
        ]
    );
    let rm = s.get_registered_model("fraud").await.unwrap();
    assert_eq!(rm.latest_versions.len(), 3);
    assert_eq!(rm.description.as_deref(), Some("catches fraud"));

    // Update, tags, rename (versions follow).
    let rm = s
        .update_registered_model("fraud", Some("new text"))
        .await
        .unwrap();
    assert_eq!(rm.description.as_deref(), Some("new text"));
    s.set_registered_model_tag("fraud", "owner", "ana")
        .await
        .unwrap();
    s.delete_registered_model_tag("fraud", "team")
        .await
        .unwrap();
    assert_eq!(
        s.get_registered_model("fraud").await.unwrap().tags,
        vec![Tag::new("owner", "ana")]
    );
    new_model(&s, "taken").await;
    assert_eq!(
        code(
            &s.rename_registered_model("fraud", "taken")
                .await
                .unwrap_err()
        ),
        "RESOURCE_ALREADY_EXISTS"
    );
    let rm = s
        .rename_registered_model("fraud", "fraud-v2")
        .await
        .unwrap();
    assert_eq!(rm.name, "fraud-v2");
    assert_eq!(
        s.get_model_version("fraud-v2", "2").await.unwrap().name,
        "fraud-v2"
    );
    assert_eq!(
        code(&s.get_registered_model("fraud").await.unwrap_err()),
        "RESOURCE_DOES_NOT_EXIST"
    );
    assert_eq!(new_version(&s, "fraud-v2").await, "5");

    // Search registered models and versions.
    for n in ["alpha-model", "Beta-model", "gamma"] {
        new_model(&s, n).await;
    }
    let page = s
        .search_registered_models(SearchQuery {
            filter: Some("name LIKE '%model'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["Beta-model", "alpha-model"]
    );
    let page = s
        .search_registered_models(SearchQuery {
            filter: Some("name ILIKE 'beta%'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let page = s
        .search_registered_models(SearchQuery {
            filter: Some("tags.owner = 'ana'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items[0].name, "fraud-v2");
    assert_eq!(page.items[0].latest_versions.len(), 3);
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let p = s
            .search_registered_models(SearchQuery {
                max_results: Some(2),
                page_token: token,
                order_by: vec!["name DESC".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        names.extend(p.items.into_iter().map(|m| m.name));
        token = p.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        names,
        ["taken", "gamma", "fraud-v2", "alpha-model", "Beta-model"]
    );
    assert!(
        s.search_registered_models(SearchQuery {
            max_results: Some(1001),
            ..Default::default()
        })
        .await
        .is_err()
    );

    s.create_model_version(CreateModelVersion {
        name: "gamma".into(),
        source: "s3://b/g".into(),
        run_id: Some("run-g".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let mvs = s
        .search_model_versions(SearchQuery {
            filter: Some("name='fraud-v2'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut vs: Vec<String> = mvs.items.iter().map(|v| v.version.clone()).collect();
    vs.sort();
    assert_eq!(vs, ["1", "2", "4", "5"]);
    let mvs = s
        .search_model_versions(SearchQuery {
            filter: Some("run_id IN ('abc', 'run-g')".into()),
            order_by: vec!["name ASC".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        mvs.items
            .iter()
            .map(|v| (v.name.as_str(), v.version.as_str()))
            .collect::<Vec<_>>(),
        [("fraud-v2", "1"), ("gamma", "1")]
    );
    let mvs = s
        .search_model_versions(SearchQuery {
            filter: Some("run_id = 'run-g'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mvs.items.len(), 1);
    let mvs = s
        .search_model_versions(SearchQuery {
            filter: Some("name = 'fraud-v2' AND tags.k = 'v2'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mvs.items.len(), 1);
    let p1 = s
        .search_model_versions(SearchQuery {
            filter: Some("name = 'fraud-v2'".into()),
            max_results: Some(3),
            order_by: vec!["version_number ASC".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        p1.items
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["1", "2", "4"]
    );
    let p2 = s
        .search_model_versions(SearchQuery {
            filter: Some("name = 'fraud-v2'".into()),
            max_results: Some(3),
            order_by: vec!["version_number ASC".into()],
            page_token: p1.next_page_token,
        })
        .await
        .unwrap();
    assert_eq!(
        p2.items
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["5"]
    );
    assert!(p2.next_page_token.is_none());

    // Deleting a model cascades: versions, tags, aliases; the name can be used again from 1.
    s.set_registered_model_alias(SetAlias {
        name: "fraud-v2".into(),
        alias: "champion".into(),
        version: "2".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let events = s
        .delete_registered_model("fraud-v2", "tester")
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].from_version.as_deref(),
            events[0].to_version.as_deref()
        ),
        (Some("2"), None)
    );
    assert!(events[0].implicit);
    assert_eq!(
        code(&s.get_model_version("fraud-v2", "1").await.unwrap_err()),
        "RESOURCE_DOES_NOT_EXIST"
    );
    new_model(&s, "fraud-v2").await;
    assert_eq!(new_version(&s, "fraud-v2").await, "1");
    assert!(
        s.get_model_version("fraud-v2", "1")
            .await
            .unwrap()
            .tags
            .is_empty()
    );
}
both!(registered_models_and_versions, crate::registry);

async fn concurrent_versions(s: S) {
    new_model(&s, "race").await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { new_version(&s, "race").await })
        })
        .collect();
    let mut got: Vec<i64> = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap().parse().unwrap());
    }
    got.sort();
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    // Concurrent alias moves leave a consistent history: each move's `from` is the previous
    // move's `to`.
    let moves: Vec<_> = (1..=20)
        .map(|v| {
            let s = s.clone();
            tokio::spawn(async move {
                s.set_registered_model_alias(SetAlias {
                    name: "race".into(),
                    alias: "champion".into(),
                    version: v.to_string(),
                    actor: Some(format!("bot-{v}")),
                    reason: None,
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for m in moves {
        m.await.unwrap();
    }
    let mut history = s
        .list_alias_history("race", Some("champion"), Some(100), None)
        .await
        .unwrap()
        .items;
    history.reverse();
    assert_eq!(history.len(), 20);
    assert_eq!(history[0].from_version, None);
    for w in history.windows(2) {
        assert_eq!(w[1].from_version, w[0].to_version);
    }
    let current = s
        .get_model_version_by_alias("race", "champion")
        .await
        .unwrap();
    assert_eq!(
        Some(current.version),
        history.last().unwrap().to_version.clone()
    );
}
both!(
    concurrent_version_creates_and_alias_moves,
    crate::concurrent_versions
);

async fn aliases(s: S) {
    new_model(&s, "m").await;
    for _ in 0..3 {
        new_version(&s, "m").await;
    }
    let e1 = s
        .set_registered_model_alias(SetAlias {
            name: "m".into(),
            alias: "champion".into(),
            version: "1".into(),
            actor: Some("ana".into()),
            reason: Some("first".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        (e1.from_version.as_deref(), e1.to_version.as_deref()),
        (None, Some("1"))
    );
    assert_eq!(e1.actor, "ana");
    let mv = s.get_model_version_by_alias("m", "champion").await.unwrap();
    assert_eq!(
        (mv.version.as_str(), mv.aliases.as_slice()),
        ("1", &["champion".to_string()][..])
    );
    let e2 = s
        .set_registered_model_alias(SetAlias {
            name: "m".into(),
            alias: "champion".into(),
            version: "2".into(),
            actor: Some("bob".into()),
            reason: Some("won the eval".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        (e2.from_version.as_deref(), e2.to_version.as_deref()),
        (Some("1"), Some("2"))
    );
    assert!(e2.id > e1.id);
    s.set_registered_model_alias(SetAlias {
        name: "m".into(),
        alias: "challenger".into(),
        version: "3".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let rm = s.get_registered_model("m").await.unwrap();
    let v = serde_json::to_value(&rm).unwrap();
    assert_eq!(
        v["aliases"],
        json!([{"alias": "challenger", "version": "3"}, {"alias": "champion", "version": "2"}])
    );
    assert_eq!(
        s.get_model_version("m", "2").await.unwrap().aliases,
        ["champion"]
    );
    assert!(
        s.get_model_version("m", "1")
            .await
            .unwrap()
            .aliases
            .is_empty()
    );

    // Errors as MLflow answers them.
    let bad = |alias: &str, version: &str| SetAlias {
        name: "m".into(),
        alias: alias.into(),
        version: version.into(),
        ..Default::default()
    };
    assert_eq!(
        code(
            &s.set_registered_model_alias(bad("champion", "9"))
                .await
                .unwrap_err()
        ),
        "RESOURCE_DOES_NOT_EXIST"
    );
    assert_eq!(
        code(
            &s.set_registered_model_alias(bad("latest", "1"))
                .await
                .unwrap_err()
        ),
        "INVALID_PARAMETER_VALUE"
    );
    assert_eq!(
        code(
            &s.set_registered_model_alias(bad("v2", "1"))
                .await
                .unwrap_err()
        ),
        "INVALID_PARAMETER_VALUE"
    );
    let e = s.get_model_version_by_alias("m", "nope").await.unwrap_err();
    assert_eq!(
        (e.to_string().as_str(), e.http_status()),
        ("Registered model alias nope not found.", 400)
    );
    assert_eq!(
        code(
            &s.get_model_version_by_alias("zz", "champion")
                .await
                .unwrap_err()
        ),
        "RESOURCE_DOES_NOT_EXIST"
    );

    // Delete: recorded; a second delete is an error.
    let d = s
        .delete_registered_model_alias("m", "champion", "carol", Some("rollback"))
        .await
        .unwrap();
    assert_eq!(
        (d.from_version.as_deref(), d.to_version.as_deref()),
        (Some("2"), None)
    );
    assert_eq!(d.reason, "rollback");
    let e = s
        .delete_registered_model_alias("m", "champion", "carol", None)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "Registered model alias champion not found.");
    assert_eq!(
        s.get_model_version_by_alias("m", "champion")
            .await
            .unwrap_err()
            .to_string(),
        "Registered model alias champion not found."
    );

    // Deleting a version drops its aliases, recorded as implicit moves.
    let events = s.delete_model_version("m", "3", "dave").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].alias.as_str(), events[0].implicit),
        ("challenger", true)
    );

    // History: newest first, per alias or per model, paged.
    let h = s
        .list_alias_history("m", Some("champion"), None, None)
        .await
        .unwrap();
    assert_eq!(
        h.items
            .iter()
            .map(|e| (e.actor.as_str(), e.to_version.as_deref()))
            .collect::<Vec<_>>(),
        [("carol", None), ("bob", Some("2")), ("ana", Some("1"))]
    );
    assert_eq!(h.items[1].reason, "won the eval");
    let all = s.list_alias_history("m", None, None, None).await.unwrap();
    assert_eq!(all.items.len(), 5);
    let p1 = s
        .list_alias_history("m", None, Some(2), None)
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 2);
    let p2 = s
        .list_alias_history("m", None, Some(2), p1.next_page_token.as_deref())
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 2);
    assert!(p2.items[0].id < p1.items[1].id);
    let since = s.alias_events_since(e1.id, 100).await.unwrap();
    assert_eq!(since.len(), 4);
    assert!(since.windows(2).all(|w| w[0].id < w[1].id));
    let json = serde_json::to_value(&h.items[0]).unwrap();
    assert_eq!(json["from_version"], "2");
    assert!(json.get("to_version").is_none());
}
both!(aliases_and_history, crate::aliases);

// ------------------------------------------------------------------ logged models

async fn logged_models(s: S) {
    let exp = new_experiment(&s, "lm").await;
    let run = new_run(&s, &exp, "r").await;
    let m = s
        .create_logged_model(CreateLoggedModel {
            experiment_id: exp.clone(),
            name: Some("model".into()),
            model_type: Some("sklearn".into()),
            source_run_id: Some(run.clone()),
            params: vec![Param::new("alpha", "0.1")],
            tags: vec![Tag::new("mlflow.source.type", "LOCAL")],
        })
        .await
        .unwrap();
    let id = m.info.model_id.clone();
    assert!(id.starts_with("m-") && id.len() == 34, "{id}");
    assert_eq!(m.info.status, LoggedModelStatus::Pending);
    assert_eq!(
        m.info.artifact_uri,
        format!("mlflow-artifacts:/{exp}/models/{id}/artifacts")
    );
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["info"]["status"], "LOGGED_MODEL_PENDING");
    assert_eq!(
        v["data"]["params"],
        json!([{"key": "alpha", "value": "0.1"}])
    );
    assert!(v["info"]["creation_timestamp_ms"].is_i64());

    let f = s
        .finalize_logged_model(&id, LoggedModelStatus::Ready)
        .await
        .unwrap();
    assert_eq!(f.info.status, LoggedModelStatus::Ready);
    let t = s
        .set_logged_model_tags(
            &id,
            vec![Tag::new("mlflow.modelVersions", "[]"), Tag::new("a", "b")],
        )
        .await
        .unwrap();
    assert_eq!(t.info.tags.len(), 3);
    s.delete_logged_model_tag(&id, "a").await.unwrap();
    assert_eq!(
        code(&s.delete_logged_model_tag(&id, "a").await.unwrap_err()),
        "RESOURCE_DOES_NOT_EXIST"
    );
    s.log_logged_model_params(&id, vec![Param::new("beta", "2")])
        .await
        .unwrap();
    // A metric logged with the model's id lands on the model too.
    let mut metric = Metric::new("acc", 0.93, 5, 1);
    metric.model_id = Some(id.clone());
    metric.dataset_name = Some("iris".into());
    s.log_metric(&run, metric).await.unwrap();
    let g = s.get_logged_model(&id).await.unwrap();
    assert_eq!(g.data.params.len(), 2);
    assert_eq!(g.data.metrics.len(), 1);
    assert_eq!(g.data.metrics[0].run_id.as_deref(), Some(run.as_str()));
    assert_eq!(g.data.metrics[0].dataset_name.as_deref(), Some("iris"));

    let other = s
        .create_logged_model(CreateLoggedModel {
            experiment_id: exp.clone(),
            name: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        s.create_logged_model(CreateLoggedModel {
            experiment_id: exp.clone(),
            name: Some("bad.name".into()),
            ..Default::default()
        })
        .await
        .is_err()
    );
    let search = |filter: &str| SearchLoggedModels {
        experiment_ids: vec![exp.clone()],
        filter: Some(filter.into()),
        ..Default::default()
    };
    let r = s
        .search_logged_models(search("name = 'model'"))
        .await
        .unwrap();
    assert_eq!(
        r.items
            .iter()
            .map(|m| m.info.model_id.as_str())
            .collect::<Vec<_>>(),
        [id.as_str()]
    );
    let r = s
        .search_logged_models(search("status = 'LOGGED_MODEL_PENDING'"))
        .await
        .unwrap();
    assert_eq!(r.items[0].info.model_id, other.info.model_id);
    let r = s
        .search_logged_models(search(&format!(
            "source_run_id = '{run}' AND params.beta = '2'"
        )))
        .await
        .unwrap();
    assert_eq!(r.items.len(), 1);
    let r = s
        .search_logged_models(SearchLoggedModels {
            experiment_ids: vec![exp.clone()],
            max_results: Some(1),
            order_by: vec![LoggedModelOrderBy {
                field_name: "name".into(),
                ascending: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.items[0].info.name, "model");
    assert!(r.next_page_token.is_some());

    s.delete_logged_model(&other.info.model_id).await.unwrap();
    assert_eq!(
        code(&s.get_logged_model(&other.info.model_id).await.unwrap_err()),
        "RESOURCE_DOES_NOT_EXIST"
    );
    let r = s.search_logged_models(search("")).await.unwrap();
    assert_eq!(r.items.len(), 1);
    let e = s.get_logged_model("m-missing").await.unwrap_err();
    assert_eq!(e.to_string(), "Logged model with ID 'm-missing' not found.");
}
both!(logged_models_lifecycle, crate::logged_models);

// ------------------------------------------------------------------ SQLite specifics

/// A database made by migration 1 alone (latest metrics kept by a trigger) is upgraded by
/// migration 2: the trigger goes, the latest values recorded so far stay, and later values move
/// them through the store's own upsert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_2_upgrades_a_trigger_database() {
    use cerulean_registry::store::StoreOptions;
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .unwrap();
        conn.execute(include_str!(
            "../src/store/sql/migrations/sqlite/0001_init.sql"
        ))
        .await
        .unwrap();
        conn.execute(
            "CREATE TABLE cerulean_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at BIGINT NOT NULL); \
             INSERT INTO cerulean_migrations VALUES (1, 'init', 0); \
             INSERT INTO experiments (experiment_id, name, artifact_location) VALUES (0, \
             'Default', 'mlflow-artifacts:/0'); \
             INSERT INTO runs (run_uuid, experiment_id, name, status, start_time, artifact_uri) \
             VALUES ('r1', 0, 'old', 'RUNNING', 1, 'mlflow-artifacts:/0/r1/artifacts'); \
             INSERT INTO metrics (run_uuid, key, value, timestamp, step) VALUES \
             ('r1', 'loss', 0.5, 10, 3), ('r1', 'loss', 0.9, 5, 1);",
        )
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let uri = format!("sqlite://{}", path.display());
    let s = SqlStore::connect(&uri, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(s.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5]);
    let run = s.get_run("r1").await.unwrap();
    let m = &run.data.metrics[0];
    assert_eq!((m.key.as_str(), m.step, m.value), ("loss", 3, 0.5));
    s.log_metric("r1", Metric::new("loss", 0.1, 11, 2))
        .await
        .unwrap();
    s.log_batch("r1", vec![Metric::new("loss", 0.25, 12, 4)], vec![], vec![])
        .await
        .unwrap();
    let run = s.get_run("r1").await.unwrap();
    let m = &run.data.metrics[0];
    assert_eq!((m.step, m.timestamp, m.value), (4, 12, 0.25));
    assert_eq!(
        s.get_metric_history("r1", "loss", None, None)
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    s.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let triggers: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(triggers, 0);
}

/// Reopening a store neither re-applies migrations nor loses data; two stores (two processes'
/// worth of connections) writing one file concurrently never fail with SQLITE_BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_reopen_and_two_writers_on_one_file() {
    use cerulean_registry::store::StoreOptions;
    let dir = tempfile::tempdir().unwrap();
    // The MLflow-style absolute form `sqlite:///abs/path`, in a directory made on demand.
    let uri = format!(
        "sqlite:///{}/nested/dir/r.db",
        dir.path().display().to_string().trim_start_matches('/')
    );
    let a = Arc::new(
        SqlStore::connect(&uri, StoreOptions::default())
            .await
            .unwrap(),
    );
    let b = Arc::new(
        SqlStore::connect(&uri, StoreOptions::default())
            .await
            .unwrap(),
    );
    assert!(dir.path().join("nested/dir/r.db").exists());
    assert_eq!(b.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5]);
    let exp = new_experiment(&a, "shared").await;
    let run = new_run(&a, &exp, "r").await;
    new_model(&a, "shared").await;
    let mut tasks = Vec::new();
    for (n, s) in [a.clone(), b.clone()].into_iter().enumerate() {
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200i64 {
                s.log_metric(&run, Metric::new(format!("s{n}"), i as f64, i, i))
                    .await
                    .unwrap();
                if i % 20 == 0 {
                    s.log_batch(
                        &run,
                        vec![Metric::new("b", 1.0, i, n as i64)],
                        vec![],
                        vec![Tag::new(format!("t{n}"), i.to_string())],
                    )
                    .await
                    .unwrap();
                    new_version(&s, "shared").await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    a.close().await;
    b.close().await;
    let c = SqlStore::connect(&uri, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(c.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5]);
    for n in 0..2 {
        let h = c
            .get_metric_history(&run, &format!("s{n}"), None, None)
            .await
            .unwrap();
        assert_eq!(h.items.len(), 200);
    }
    let versions = c
        .search_model_versions(SearchQuery {
            filter: Some("name = 'shared'".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got: Vec<i64> = versions
        .items
        .iter()
        .map(|v| v.version.parse().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    assert_eq!(c.get_experiment("0").await.unwrap().name, "Default");
}

/// The latest value of a metric: greatest step, then timestamp, then value.
async fn latest_metric_rules(s: S) {
    let exp = new_experiment(&s, "latest").await;
    let id = new_run(&s, &exp, "l").await;
    let latest = |s: S, id: String| async move {
        let r = s.get_run(&id).await.unwrap();
        let m = &r.data.metrics[0];
        (m.step, m.timestamp, m.value)
    };
    s.log_metric(&id, Metric::new("m", 5.0, 10, 3))
        .await
        .unwrap();
    s.log_metric(&id, Metric::new("m", 9.0, 99, 2))
        .await
        .unwrap(); // lower step
    assert_eq!(latest(s.clone(), id.clone()).await, (3, 10, 5.0));
    s.log_metric(&id, Metric::new("m", 1.0, 11, 3))
        .await
        .unwrap(); // same step, later
    assert_eq!(latest(s.clone(), id.clone()).await, (3, 11, 1.0));
    s.log_metric(&id, Metric::new("m", 0.5, 11, 3))
        .await
        .unwrap(); // same step+time, smaller
    assert_eq!(latest(s.clone(), id.clone()).await, (3, 11, 1.0));
    s.log_metric(&id, Metric::new("m", 2.0, 11, 3))
        .await
        .unwrap(); // same step+time, larger
    assert_eq!(latest(s.clone(), id.clone()).await, (3, 11, 2.0));
    s.log_metric(&id, Metric::new("m", -1.0, 0, 4))
        .await
        .unwrap(); // higher step wins
    assert_eq!(latest(s.clone(), id.clone()).await, (4, 0, -1.0));
    assert_eq!(
        s.get_metric_history(&id, "m", None, None)
            .await
            .unwrap()
            .items
            .len(),
        6
    );

    // Several values of one key in one batch: the newest of the batch and of what is stored,
    // whatever their order in the batch; the first of equal ones. Metrics only (SQLite's group
    // commit) and with a param (one transaction).
    let latest_of = |s: S, id: String, key: &'static str| async move {
        let r = s.get_run(&id).await.unwrap();
        let m = r.data.metrics.iter().find(|m| m.key == key).unwrap();
        (m.step, m.timestamp, m.value)
    };
    s.log_batch(
        &id,
        vec![
            Metric::new("b", 1.0, 5, 1),
            Metric::new("b", 7.0, 1, 2),
            Metric::new("b", 3.0, 9, 1),
            Metric::new("b", 6.0, 1, 2),
            Metric::new("c", f64::NAN, 1, 1),
            Metric::new("c", 0.0, 1, 1),
        ],
        vec![],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(latest_of(s.clone(), id.clone(), "b").await, (2, 1, 7.0));
    // NaN is stored as 0: the later 0.0 of the same step and time is not newer.
    let (step, ts, v) = latest_of(s.clone(), id.clone(), "c").await;
    assert_eq!((step, ts), (1, 1));
    assert!(v.is_nan());
    s.log_batch(
        &id,
        vec![
            Metric::new("b", 0.5, 0, 1),
            Metric::new("b", 8.0, 1, 2),
            Metric::new("c", -5.0, 2, 1),
            Metric::new("d", 4.0, 3, 0),
        ],
        vec![Param::new("p", "x")],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(latest_of(s.clone(), id.clone(), "b").await, (2, 1, 8.0));
    assert_eq!(latest_of(s.clone(), id.clone(), "c").await, (1, 2, -5.0));
    assert_eq!(latest_of(s.clone(), id.clone(), "d").await, (0, 3, 4.0));
    // An exact duplicate of a stored value is dropped and changes nothing.
    s.log_batch(&id, vec![Metric::new("b", 7.0, 1, 2)], vec![], vec![])
        .await
        .unwrap();
    assert_eq!(latest_of(s.clone(), id.clone(), "b").await, (2, 1, 8.0));
    assert_eq!(
        s.get_metric_history(&id, "b", None, None)
            .await
            .unwrap()
            .items
            .len(),
        6
    );

    // Concurrent writers of the same keys (batches, single values, two runs): the greatest step
    // of all wins.
    let other = new_run(&s, &exp, "l2").await;
    let mut tasks = Vec::new();
    for t in 0..6i64 {
        let (s, runs) = (s.clone(), [id.clone(), other.clone()]);
        tasks.push(tokio::spawn(async move {
            for i in 0..20i64 {
                let step = (i * 7 + t * 3) % 50 + 10;
                let run = &runs[(i % 2) as usize];
                if i % 3 == 0 {
                    s.log_metric(run, Metric::new("hot", step as f64, t, step))
                        .await
                        .unwrap();
                } else {
                    s.log_batch(
                        run,
                        vec![
                            Metric::new("hot", step as f64, t, step),
                            Metric::new("hot2", -(step as f64), t, step),
                        ],
                        vec![],
                        vec![],
                    )
                    .await
                    .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for run in [&id, &other] {
        let r = s.get_run(run).await.unwrap();
        let hot = r.data.metrics.iter().find(|m| m.key == "hot").unwrap();
        let history = s.get_metric_history(run, "hot", None, None).await.unwrap();
        let best = history
            .items
            .iter()
            .max_by(|a, b| {
                (a.step, a.timestamp)
                    .cmp(&(b.step, b.timestamp))
                    .then(a.value.total_cmp(&b.value))
            })
            .unwrap();
        assert_eq!(
            (hot.step, hot.timestamp, hot.value),
            (best.step, best.timestamp, best.value)
        );
    }
}
both!(
    latest_metric_is_greatest_step_time_value,
    crate::latest_metric_rules
);

/// Requests cancelled mid-transaction (a client hanging up) leave nothing half-written and do
/// not wedge the writer: each batch is all there or not at all, and later writes succeed (and
/// are committed: a hang here used to mean a write acknowledged inside a dangling transaction).
async fn cancelled_writes(s: S) {
    tokio::time::timeout(
        std::time::Duration::from_secs(120),
        cancelled_writes_inner(s),
    )
    .await
    .expect("writes after cancelled ones must not hang");
}

async fn cancelled_writes_inner(s: S) {
    let exp = new_experiment(&s, "cancel").await;
    let id = new_run(&s, &exp, "c").await;
    for b in 0..40i64 {
        let metrics: Vec<Metric> = (0..300)
            .map(|i| Metric::new(format!("b{b}"), 1.0, i, i))
            .collect();
        let params = vec![Param::new(format!("p{b}"), "v")];
        let delay = std::time::Duration::from_micros(1500 * b as u64);
        let _ = tokio::time::timeout(delay, s.log_batch(&id, metrics, params, vec![])).await;
        s.log_metric(&id, Metric::new("after", b as f64, b, b))
            .await
            .unwrap();
    }
    let run = s.get_run(&id).await.unwrap();
    let mut complete = 0;
    for b in 0..40i64 {
        let n = s
            .get_metric_history(&id, &format!("b{b}"), None, None)
            .await
            .unwrap()
            .items
            .len();
        let has_param = run.data.params.iter().any(|p| p.key == format!("p{b}"));
        assert!(
            (n == 300 && has_param) || (n == 0 && !has_param),
            "batch {b} is half-written: {n} metrics, param {has_param}"
        );
        complete += usize::from(n == 300);
    }
    assert_eq!(
        s.get_metric_history(&id, "after", None, None)
            .await
            .unwrap()
            .items
            .len(),
        40
    );
    eprintln!("{complete} of 40 batches committed");
}
both!(cancelled_writes_are_all_or_nothing, crate::cancelled_writes);

// ------------------------------------------------------------------ SQLite metric staging

/// A SQLite store whose staged metric values are merged only when asked (no background merge).
async fn sqlite_store_without_background_merge(path: &std::path::Path) -> S {
    use cerulean_registry::store::StoreOptions;
    Arc::new(
        SqlStore::connect(
            &format!("sqlite://{}", path.display()),
            StoreOptions {
                metric_merge_rows: u64::MAX,
                metric_merge_interval: std::time::Duration::from_secs(3600),
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap(),
    )
}

/// Rows of `table` in the SQLite file at `path` (read by a connection of its own).
async fn sqlite_rows(path: &std::path::Path, table: &str) -> i64 {
    sqlite_count(path, &format!("SELECT COUNT(*) FROM {table}")).await
}

/// The number `query` answers on the SQLite file at `path` (read by a connection of its own).
async fn sqlite_count(path: &std::path::Path, query: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let n = sqlx::query_scalar(query)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

/// How many metric values the merges packed into `metric_chunks` (exact duplicates included:
/// history reads drop them).
async fn sqlite_packed_values(path: &std::path::Path) -> i64 {
    sqlite_count(
        path,
        "SELECT COALESCE(SUM(json_array_length(data)), 0) FROM metric_chunks",
    )
    .await
}

/// A database of the previous layout (metric history as one indexed `metrics` row per value,
/// migration 4) keeps every value when migration 5 packs history into chunks: merged and staged
/// values alike, exact duplicates still one, the first logged kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_history_survives_the_move_to_chunks() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let s = sqlite_store_without_background_merge(&path).await;
    let exp = new_experiment(&s, "upgrade").await;
    let run = new_run(&s, &exp, "r").await;
    s.close().await;
    drop(s);
    // Back to migration 4's tables: `metrics` with its identity index holds merged values, the
    // staging table (a plain rowid) one more value and a duplicate of a merged one.
    {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        conn.execute(
            format!(
                "DROP TABLE metric_chunks; DROP TABLE metrics_staging; \
                 CREATE TABLE metrics (id INTEGER PRIMARY KEY, run_uuid TEXT NOT NULL, \
                 key TEXT NOT NULL, value REAL NOT NULL, is_nan INTEGER NOT NULL DEFAULT 0, \
                 timestamp INTEGER NOT NULL, step INTEGER NOT NULL DEFAULT 0, model_id TEXT, \
                 dataset_name TEXT, dataset_digest TEXT); \
                 CREATE UNIQUE INDEX metrics_identity ON metrics \
                 (run_uuid, key, timestamp, step, value, is_nan); \
                 CREATE TABLE metrics_staging (id INTEGER PRIMARY KEY, run_uuid TEXT NOT NULL, \
                 key TEXT NOT NULL, value REAL NOT NULL, is_nan INTEGER NOT NULL DEFAULT 0, \
                 timestamp INTEGER NOT NULL, step INTEGER NOT NULL DEFAULT 0, model_id TEXT, \
                 dataset_name TEXT, dataset_digest TEXT); \
                 INSERT INTO metrics (run_uuid, key, value, timestamp, step, dataset_name) VALUES \
                 ('{run}', 'loss', 0.5, 10, 1, 'merged'), ('{run}', 'loss', 0.25, 20, 2, NULL); \
                 INSERT INTO metrics_staging (run_uuid, key, value, timestamp, step, dataset_name) \
                 VALUES ('{run}', 'loss', 0.5, 10, 1, 'staged'), ('{run}', 'loss', 0.1, 30, 3, NULL); \
                 DELETE FROM cerulean_migrations WHERE version = 5;"
            )
            .as_str(),
        )
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let s = sqlite_store_without_background_merge(&path).await;
    // The store merged at open: everything is packed.
    assert_eq!(sqlite_rows(&path, "metrics_staging").await, 0);
    assert_eq!(sqlite_packed_values(&path).await, 4);
    let history = paged_history(&s, &run, "loss", 2).await;
    let got: Vec<(i64, i64, f64)> = history
        .iter()
        .map(|m| (m.timestamp, m.step, m.value))
        .collect();
    assert_eq!(got, vec![(10, 1, 0.5), (20, 2, 0.25), (30, 3, 0.1)]);
    assert_eq!(history[0].dataset_name.as_deref(), Some("merged"));
    // New values go on after the old ones, and the old table is gone.
    s.log_metric(&run, Metric::new("loss", 0.05, 40, 4))
        .await
        .unwrap();
    assert_eq!(paged_history(&s, &run, "loss", 2).await.len(), 4);
    let old_table = sqlite_count(
        &path,
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'metrics'",
    )
    .await;
    assert_eq!(old_table, 0);
    s.close().await;
}

/// A series' whole history, read a page of `page` at a time.
async fn paged_history(s: &S, run: &str, key: &str, page: i64) -> Vec<Metric> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let p = s
            .get_metric_history(run, key, Some(page), token.as_deref())
            .await
            .unwrap();
        out.extend(p.items);
        match p.next_page_token {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}

/// Metric history reads the same whether values are staged or packed into `metric_chunks`: exact
/// duplicates (within a batch, across calls, across staged and merged values) are one, the
/// first logged one kept, in (timestamp, step, value) order, paged alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_history_reads_staged_and_merged_values_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let s = sqlite_store_without_background_merge(&path).await;
    let exp = new_experiment(&s, "staging").await;
    let run = new_run(&s, &exp, "r").await;
    let with_dataset = |mut m: Metric, name: &str| {
        m.dataset_name = Some(name.into());
        m.dataset_digest = Some("d".into());
        m
    };
    // Staged only: duplicates within a batch and across calls; NaN; a tie on (ts, step, value)
    // between NaN (stored as 0) and 0.
    s.log_batch(
        &run,
        vec![
            with_dataset(Metric::new("loss", 0.5, 10, 1), "first"),
            with_dataset(Metric::new("loss", 0.5, 10, 1), "second"),
            Metric::new("loss", 0.25, 20, 2),
            Metric::new("loss", f64::NAN, 30, 3),
            Metric::new("loss", 0.0, 30, 3),
            Metric::new("other", 1.0, 1, 1),
        ],
        vec![],
        vec![],
    )
    .await
    .unwrap();
    s.log_metric(&run, with_dataset(Metric::new("loss", 0.5, 10, 1), "third"))
        .await
        .unwrap();
    s.log_metric(&run, Metric::new("loss", 0.75, 5, 0))
        .await
        .unwrap();
    // With a param, log_batch takes the other (non-grouped) path.
    s.log_batch(
        &run,
        vec![
            Metric::new("loss", 0.25, 20, 2),
            Metric::new("loss", 0.1, 40, 4),
        ],
        vec![Param::new("p", "1")],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(sqlite_packed_values(&path).await, 0);
    assert_eq!(sqlite_rows(&path, "metrics_staging").await, 10);

    let staged = s
        .get_metric_history(&run, "loss", None, None)
        .await
        .unwrap()
        .items;
    let got: Vec<(i64, i64, String)> = staged
        .iter()
        .map(|m| (m.timestamp, m.step, format!("{}", m.value)))
        .collect();
    assert_eq!(
        got,
        vec![
            (5, 0, "0.75".to_owned()),
            (10, 1, "0.5".to_owned()),
            (20, 2, "0.25".to_owned()),
            (30, 3, "0".to_owned()),
            (30, 3, "NaN".to_owned()),
            (40, 4, "0.1".to_owned()),
        ]
    );
    assert_eq!(staged[1].dataset_name.as_deref(), Some("first"));
    let staged_pages = paged_history(&s, &run, "loss", 2).await;
    assert_eq!(format!("{staged_pages:?}"), format!("{staged:?}"));

    assert_eq!(s.merge_staged_metrics().await.unwrap(), 10);
    assert_eq!(sqlite_rows(&path, "metrics_staging").await, 0);
    // All 10 values are packed; history shows the 7 distinct ones.
    assert_eq!(sqlite_packed_values(&path).await, 10);
    let merged = s
        .get_metric_history(&run, "loss", None, None)
        .await
        .unwrap()
        .items;
    // (Debug text: NaN != NaN.)
    assert_eq!(format!("{merged:?}"), format!("{staged:?}"));
    assert_eq!(
        format!("{:?}", paged_history(&s, &run, "loss", 4).await),
        format!("{staged:?}")
    );
    assert_eq!(
        s.get_metric_history(&run, "other", None, None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Staged duplicates of merged values are one with them (the merged one kept); new values
    // interleave with merged ones in order.
    s.log_batch(
        &run,
        vec![
            with_dataset(Metric::new("loss", 0.5, 10, 1), "late"),
            Metric::new("loss", 0.3, 15, 1),
            Metric::new("loss", f64::NAN, 30, 3),
            Metric::new("loss", 0.3, 15, 1),
        ],
        vec![],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(sqlite_rows(&path, "metrics_staging").await, 4);
    let mixed = paged_history(&s, &run, "loss", 3).await;
    assert_eq!(mixed.len(), 7);
    assert_eq!((mixed[2].timestamp, mixed[2].value), (15, 0.3));
    assert_eq!(mixed[1].dataset_name.as_deref(), Some("first"));
    assert_eq!(s.merge_staged_metrics().await.unwrap(), 4);
    let after = paged_history(&s, &run, "loss", 3).await;
    assert_eq!(format!("{after:?}"), format!("{mixed:?}"));
    assert_eq!(sqlite_packed_values(&path).await, 14);
    // The latest value was kept synchronously all along.
    let latest = s.get_run(&run).await.unwrap().data.metrics;
    let loss = latest.iter().find(|m| m.key == "loss").unwrap();
    assert_eq!((loss.step, loss.value), (4, 0.1));
    s.close().await;
}

/// Values staged when the process died are merged when the store opens again; staged values of
/// a run that no longer exists are dropped instead of blocking the merge; a store that closes
/// merges what it staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_staged_values_are_merged_at_open_and_close() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let s = sqlite_store_without_background_merge(&path).await;
    let exp = new_experiment(&s, "crash").await;
    let run = new_run(&s, &exp, "r").await;
    let batch: Vec<Metric> = (0..50).map(|i| Metric::new("m", i as f64, i, i)).collect();
    s.log_batch(&run, batch, vec![], vec![]).await.unwrap();
    // A crash: the store goes without closing (no merge).
    drop(s);
    assert_eq!(sqlite_rows(&path, "metrics_staging").await, 50);
    {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        conn.execute(
            "INSERT INTO metrics_staging (run_uuid, key, value, timestamp, step) VALUES \
             ('no-such-run', 'm', 1.0, 1, 1)",
        )
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let s = sqlite_store_without_background_merge(&path).await;
    assert_eq!(sqlite_rows(&path, "metrics_staging").await, 0);
    assert_eq!(sqlite_packed_values(&path).await, 50);
    let h = paged_history(&s, &run, "m", 7).await;
    assert_eq!(h.len(), 50);
    assert!(h.iter().enumerate().all(|(i, m)| m.step == i as i64));

    s.log_metric(&run, Metric::new("m", 99.0, 99, 99))
        .await
        .unwrap();
    assert_eq!(sqlite_rows(&path, "metrics_staging").await, 1);
    s.close().await;
    assert_eq!(sqlite_rows(&path, "metrics_staging").await, 0);
    assert_eq!(sqlite_packed_values(&path).await, 51);
}

/// The background merge moves staged values on its own (by row count and by time), and a
/// deleted run's history reads the same staged or merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_background_merge() {
    use cerulean_registry::store::StoreOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let s = Arc::new(
        SqlStore::connect(
            &format!("sqlite://{}", path.display()),
            StoreOptions {
                metric_merge_rows: 100,
                metric_merge_interval: std::time::Duration::from_millis(50),
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap(),
    );
    let exp = new_experiment(&s, "bg").await;
    let run = new_run(&s, &exp, "r").await;
    let mut tasks = Vec::new();
    for t in 0..4i64 {
        let (s, run) = (s.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..50i64 {
                let batch = (0..10)
                    .map(|k| Metric::new(format!("k{k}"), (t * 1000 + i) as f64, i, t))
                    .collect();
                s.log_batch(&run, batch, vec![], vec![]).await.unwrap();
                // Every value twice.
                s.log_metric(&run, Metric::new("k0", (t * 1000 + i) as f64, i, t))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for k in 0..10 {
        assert_eq!(
            paged_history(&s, &run, &format!("k{k}"), 33).await.len(),
            200
        );
    }
    s.delete_run(&run).await.unwrap();
    let mut waited = 0;
    while sqlite_rows(&path, "metrics_staging").await > 0 {
        waited += 1;
        assert!(waited < 200, "the background merge did not run");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Every value twice, packed as logged; history shows each once.
    assert_eq!(sqlite_packed_values(&path).await, 2200);
    assert_eq!(paged_history(&s, &run, "k0", 33).await.len(), 200);
    s.close().await;
}
