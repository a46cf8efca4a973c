//! The `linear` and `logistic` families: one linear layer from the standardized features to the
//! output, i.e. the tabular network with no hidden layer.
//!
//! - `linear`: linear regression, trained on mean squared error (always regression).
//! - `logistic`: logistic regression over the label's classes, binary or multinomial, trained on
//!   softmax cross-entropy (always classification; a binary label gets two outputs).

use crate::families::tabular::TabularFamily;
use crate::spec::{Activation, ModelFamily, Task};

/// The family for `linear` or `logistic` (`task` was resolved against the family already).
pub fn family(family: ModelFamily, task: Task) -> TabularFamily {
    let name = match family {
        ModelFamily::Linear => "linear",
        _ => "logistic",
    };
    TabularFamily::new(name, Vec::new(), Activation::Relu, task)
}
