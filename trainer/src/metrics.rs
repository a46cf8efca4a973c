//! Validation metrics: accuracy and macro-F1 for classification, RMSE and MAE for regression, and
//! which of them is each task's primary metric.
//!
//! The primary metric drives early stopping and, by default, ranks sweep trials:
//! - classification: `val_accuracy` (higher is better). Between two epochs with the same accuracy,
//!   the one with the lower `val_loss` counts as better, so a plateau of accuracy still tracks the
//!   best-calibrated weights. Accuracy rather than macro-F1 because it is the number users compare
//!   models by; `val_macro_f1` is logged beside it and can rank sweeps (`[sweep] metric`).
//! - regression: `val_rmse` (lower is better), in the label's own units.

use crate::spec::Task;

/// Every validation metric a trial reports, usable as `[sweep] metric`.
pub const VALIDATION_METRICS: &[&str] = &[
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "val_rmse",
    "val_mae",
];

/// The primary validation metric of `task` and whether higher is better.
pub fn primary_metric(task: Task) -> (&'static str, bool) {
    match task {
        Task::Classification => ("val_accuracy", true),
        Task::Regression => ("val_rmse", false),
    }
}

/// Whether a higher value of metric `name` is better (accuracy, F1) or worse (loss, errors).
pub fn higher_is_better(name: &str) -> bool {
    let base = name.strip_prefix("val_").unwrap_or(name);
    matches!(base, "accuracy" | "macro_f1")
}

/// Accuracy and macro-F1 of `predicted` against `truth` (class indices). Macro-F1 is the mean F1
/// over the classes that occur in `truth` or `predicted` (scikit-learn's `f1_score(average=
/// "macro")`); a class with no true and no predicted positives is left out.
pub fn classification(predicted: &[u32], truth: &[u32], classes: usize) -> (f64, f64) {
    let n = truth.len().min(predicted.len());
    if n == 0 {
        return (0.0, 0.0);
    }
    let mut tp = vec![0u64; classes];
    let mut fp = vec![0u64; classes];
    let mut fn_ = vec![0u64; classes];
    let mut correct = 0u64;
    for (&p, &t) in predicted.iter().zip(truth) {
        let (p, t) = (p as usize, t as usize);
        if p == t {
            correct += 1;
            if let Some(c) = tp.get_mut(t) {
                *c += 1;
            }
        } else {
            if let Some(c) = fp.get_mut(p) {
                *c += 1;
            }
            if let Some(c) = fn_.get_mut(t) {
                *c += 1;
            }
        }
    }
    let mut f1_sum = 0.0;
    let mut present = 0usize;
    for c in 0..classes {
        let denominator = 2 * tp[c] + fp[c] + fn_[c];
        if denominator == 0 {
            continue;
        }
        present += 1;
        f1_sum += (2 * tp[c]) as f64 / denominator as f64;
    }
    let macro_f1 = if present == 0 {
        0.0
    } else {
        f1_sum / present as f64
    };
    (correct as f64 / n as f64, macro_f1)
}

/// Root mean squared error and mean absolute error of `predicted` against `truth`.
pub fn regression(predicted: &[f32], truth: &[f32]) -> (f64, f64) {
    let n = truth.len().min(predicted.len());
    if n == 0 {
        return (0.0, 0.0);
    }
    let (mut se, mut ae) = (0.0f64, 0.0f64);
    for (&p, &t) in predicted.iter().zip(truth) {
        let d = f64::from(p) - f64::from(t);
        se += d * d;
        ae += d.abs();
    }
    ((se / n as f64).sqrt(), ae / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_metrics_match_scikit_learn() {
        // sklearn: accuracy_score = 4/6, f1_score(average="macro") = (1 + 0.5 + 0.5) / 3.
        let truth = [0, 0, 1, 1, 2, 2];
        let pred = [0, 0, 1, 2, 2, 1];
        let (acc, f1) = classification(&pred, &truth, 3);
        assert!((acc - 4.0 / 6.0).abs() < 1e-12);
        let f1_0 = 1.0;
        let f1_1 = 0.5;
        let f1_2 = 0.5;
        assert!((f1 - (f1_0 + f1_1 + f1_2) / 3.0).abs() < 1e-12, "{f1}");
        // Classes that never occur are left out of the macro average.
        let (_, f1) = classification(&[0, 1], &[0, 1], 5);
        assert_eq!(f1, 1.0);
    }

    #[test]
    fn regression_metrics() {
        let (rmse, mae) = regression(&[1.0, 2.0, 4.0], &[1.0, 3.0, 2.0]);
        assert!((rmse - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((mae - 1.0).abs() < 1e-12);
    }

    #[test]
    fn directions() {
        assert!(higher_is_better("val_accuracy"));
        assert!(higher_is_better("val_macro_f1"));
        assert!(!higher_is_better("val_rmse"));
        assert!(!higher_is_better("val_loss"));
        assert_eq!(primary_metric(Task::Regression), ("val_rmse", false));
    }
}
