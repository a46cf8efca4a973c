//! A metric series' history on SQLite: the values packed into `metric_chunks` by the merge and
//! the values still in `metrics_staging` (see the `staging` module), read together, exact
//! duplicates dropped (the first logged kept) and ordered as MLflow orders history: by
//! (timestamp, step, value), ties of a NaN (stored as 0) and a 0 ordered by `is_nan`.

use std::cmp::Ordering;

use sqlx::{AnyConnection, Row};

use super::tracking::stored_value;
use crate::entities::Metric;
use crate::error::{RegistryError, Result};

/// A value as stored: its staging id (logging order), the stored value and NaN flag, and the
/// rest of the metric.
#[derive(Debug)]
struct StoredValue {
    id: i64,
    value: f64,
    is_nan: i64,
    timestamp: i64,
    step: i64,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

impl StoredValue {
    /// The identity MLflow dedups on: equal values are one entry.
    fn same_entry(&self, other: &StoredValue) -> bool {
        self.timestamp == other.timestamp
            && self.step == other.step
            && self.value == other.value
            && self.is_nan == other.is_nan
    }

    /// History order, then logging order (so the first of equal entries comes first).
    fn cmp_history(&self, other: &StoredValue) -> Ordering {
        self.timestamp
            .cmp(&other.timestamp)
            .then(self.step.cmp(&other.step))
            .then(
                self.value
                    .partial_cmp(&other.value)
                    .unwrap_or(Ordering::Equal),
            )
            .then(self.is_nan.cmp(&other.is_nan))
            .then(self.id.cmp(&other.id))
    }

    fn into_metric(self, key: &str) -> Metric {
        Metric {
            key: key.to_owned(),
            value: stored_value(self.value, self.is_nan),
            timestamp: self.timestamp,
            step: self.step,
            dataset_name: self.dataset_name,
            dataset_digest: self.dataset_digest,
            model_id: self.model_id,
            run_id: None,
        }
    }
}

/// One entry of a chunk's JSON array, as the merge writes it ([`push_chunk_entry`]):
/// `[id, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest]`, `value` being
/// the stored value's exact text (`Inf`, `-Inf` for infinities).
#[derive(serde::Deserialize)]
struct ChunkEntry(
    i64,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A staged value as it is packed into a chunk.
#[derive(Debug)]
pub(super) struct PackedValue<'a> {
    /// The staging id (logging order).
    pub id: i64,
    /// The stored value (0 for a NaN).
    pub value: f64,
    /// 1 for a NaN.
    pub is_nan: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The step.
    pub step: i64,
    /// The logged model the value belongs to, if any.
    pub model_id: Option<&'a str>,
    /// The dataset the value was computed on, if any.
    pub dataset_name: Option<&'a str>,
    /// That dataset's digest.
    pub dataset_digest: Option<&'a str>,
}

/// Appends `v` to a chunk's JSON array being built in `data` (which starts empty; finish it
/// with [`finish_chunk`]).
pub(super) fn push_chunk_entry(data: &mut String, v: &PackedValue<'_>) {
    data.push(if data.is_empty() { '[' } else { ',' });
    let value = if v.value == f64::INFINITY {
        "Inf".to_owned()
    } else if v.value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Rust prints the shortest text that parses back to the same f64.
        format!("{:?}", v.value)
    };
    let entry = (
        v.id,
        value,
        v.is_nan,
        v.timestamp,
        v.step,
        v.model_id,
        v.dataset_name,
        v.dataset_digest,
    );
    // Serialising numbers, strings and options into JSON cannot fail.
    data.push_str(&serde_json::to_string(&entry).unwrap_or_default());
}

/// Closes the JSON array of a chunk built by [`push_chunk_entry`].
pub(super) fn finish_chunk(data: &mut String) {
    if data.is_empty() {
        data.push('[');
    }
    data.push(']');
}

/// A chunk entry's value text, as [`push_chunk_entry`] writes it (exact; `Inf` and `-Inf` for
/// infinities).
fn unpack_value(text: &str) -> Result<f64> {
    match text {
        "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t.parse().map_err(|_| {
            RegistryError::Internal(format!("cannot read the metric value {t:?} of a chunk"))
        }),
    }
}

/// The values of one chunk's `data`.
fn unpack_chunk(data: &str) -> Result<Vec<StoredValue>> {
    let entries: Vec<ChunkEntry> = serde_json::from_str(data)
        .map_err(|e| RegistryError::Internal(format!("cannot read a metric chunk: {e}")))?;
    entries
        .into_iter()
        .map(
            |ChunkEntry(id, value, is_nan, timestamp, step, model, name, digest)| {
                Ok(StoredValue {
                    id,
                    value: unpack_value(&value)?,
                    is_nan,
                    timestamp,
                    step,
                    model_id: model,
                    dataset_name: name,
                    dataset_digest: digest,
                })
            },
        )
        .collect()
}

/// Every entry of the series `key` of `run_id`, in history order, exact duplicates dropped.
///
/// The staged values are read before the chunks: a merge that commits in between then shows
/// its values twice (same ids, dropped as duplicates) rather than not at all.
pub(super) async fn sqlite_series(
    conn: &mut AnyConnection,
    run_id: &str,
    key: &str,
) -> Result<Vec<Metric>> {
    let mut values = Vec::new();
    let staged = sqlx::query(
        "SELECT id, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest \
         FROM metrics_staging WHERE run_uuid = $1 AND key = $2",
    )
    .bind(run_id)
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    for row in &staged {
        values.push(StoredValue {
            id: row.try_get("id")?,
            value: row.try_get("value")?,
            is_nan: row.try_get("is_nan")?,
            timestamp: row.try_get("timestamp")?,
            step: row.try_get("step")?,
            model_id: row.try_get("model_id")?,
            dataset_name: row.try_get("dataset_name")?,
            dataset_digest: row.try_get("dataset_digest")?,
        });
    }
    let chunks: Vec<String> =
        sqlx::query_scalar("SELECT data FROM metric_chunks WHERE run_uuid = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .fetch_all(&mut *conn)
            .await?;
    for data in &chunks {
        values.extend(unpack_chunk(data)?);
    }
    Ok(history_order(values)
        .into_iter()
        .map(|v| v.into_metric(key))
        .collect())
}

/// `values` in history order, exact duplicates dropped (the first logged kept).
fn history_order(mut values: Vec<StoredValue>) -> Vec<StoredValue> {
    values.sort_unstable_by(StoredValue::cmp_history);
    values.dedup_by(|later, kept| later.same_entry(kept));
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(id: i64, timestamp: i64, step: i64, value: f64, is_nan: i64) -> StoredValue {
        StoredValue {
            id,
            value,
            is_nan,
            timestamp,
            step,
            model_id: None,
            dataset_name: Some(format!("d{id}")),
            dataset_digest: None,
        }
    }

    #[test]
    fn history_order_keeps_the_first_logged_of_equal_entries() {
        let ordered = history_order(vec![
            value(5, 10, 1, 0.5, 0),
            value(2, 10, 1, 0.5, 0),
            value(3, 30, 3, 0.0, 1),
            value(4, 30, 3, 0.0, 0),
            value(1, 5, 0, 0.75, 0),
            value(8, 10, 1, 0.0, 0),
            value(6, 10, 1, -0.0, 0),
            value(7, 10, 2, 0.5, 0),
        ]);
        let got: Vec<(i64, i64, i64, f64, i64)> = ordered
            .iter()
            .map(|v| (v.id, v.timestamp, v.step, v.value, v.is_nan))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 5, 0, 0.75, 0),
                (6, 10, 1, -0.0, 0),
                (2, 10, 1, 0.5, 0),
                (7, 10, 2, 0.5, 0),
                (4, 30, 3, 0.0, 0),
                (3, 30, 3, 0.0, 1),
            ]
        );
    }

    #[test]
    fn unpack_chunk_reads_what_the_merge_writes() {
        let values = unpack_chunk(
            r#"[[7,"0.10000000000000001",0,100,2,null,"train","abc"],[9,"-Inf",0,101,3,"m-1",null,null],[12,"0.0",1,102,4,null,null,null]]"#,
        )
        .unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!((values[0].id, values[0].value), (7, 0.1));
        assert_eq!(values[0].dataset_name.as_deref(), Some("train"));
        assert_eq!(values[1].value, f64::NEG_INFINITY);
        assert_eq!(values[1].model_id.as_deref(), Some("m-1"));
        let nan = values.into_iter().nth(2).unwrap().into_metric("loss");
        assert!(nan.value.is_nan());
        assert_eq!((nan.key.as_str(), nan.step), ("loss", 4));
        assert!(unpack_chunk("[[1,2]]").is_err());
    }

    #[test]
    fn packed_values_read_back_exactly() {
        let values = [
            0.1,
            -0.0,
            1e300,
            5e-324,
            f64::INFINITY,
            f64::NEG_INFINITY,
            2.5,
        ];
        let mut data = String::new();
        for (i, v) in values.iter().enumerate() {
            push_chunk_entry(
                &mut data,
                &PackedValue {
                    id: i as i64,
                    value: *v,
                    is_nan: 0,
                    timestamp: 1,
                    step: i as i64,
                    model_id: None,
                    dataset_name: Some("a \"quoted\" name"),
                    dataset_digest: None,
                },
            );
        }
        finish_chunk(&mut data);
        let back = unpack_chunk(&data).unwrap();
        let got: Vec<u64> = back.iter().map(|v| v.value.to_bits()).collect();
        let want: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
        assert_eq!(back[3].dataset_name.as_deref(), Some("a \"quoted\" name"));
        let mut empty = String::new();
        finish_chunk(&mut empty);
        assert!(unpack_chunk(&empty).unwrap().is_empty());
    }
}
