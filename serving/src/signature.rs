//! A model's inputs and outputs: names, datatypes and shapes.

use crate::datatype::DataType;

/// One input or output of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The tensor name.
    pub name: String,
    /// The element type.
    pub datatype: DataType,
    /// The shape; `-1` marks a dimension of any size. For a batching model these dims exclude the batch
    /// dimension (Triton's `dims`); for a model's natural signature they are the full shape.
    pub dims: Vec<i64>,
}

impl TensorSpec {
    /// Builds a spec.
    pub fn new(name: impl Into<String>, datatype: DataType, dims: Vec<i64>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype,
            dims,
        }
    }

    /// Whether a concrete `shape` fits these dims (`-1` matches any size).
    pub fn accepts_shape(&self, shape: &[i64]) -> bool {
        shape.len() == self.dims.len()
            && self
                .dims
                .iter()
                .zip(shape)
                .all(|(&want, &got)| want < 0 || want == got)
    }
}

/// A model's inputs and outputs, in the model's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signature {
    /// The inputs.
    pub inputs: Vec<TensorSpec>,
    /// The outputs.
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// The input with this name.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// The output with this name.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.name == name)
    }

    /// Whether every input and output has a leading dimension of any size, so the model can be batched.
    pub fn supports_batching(&self) -> bool {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .all(|t| t.dims.first().is_some_and(|&d| d < 0))
            && !self.inputs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_dims_accept_any_size() {
        let spec = TensorSpec::new("x", DataType::Fp32, vec![-1, 16]);
        assert!(spec.accepts_shape(&[3, 16]));
        assert!(!spec.accepts_shape(&[3, 15]));
        assert!(!spec.accepts_shape(&[16]));
    }

    #[test]
    fn batching_needs_dynamic_leading_dims() {
        let mut sig = Signature {
            inputs: vec![TensorSpec::new("x", DataType::Fp32, vec![-1, 16])],
            outputs: vec![TensorSpec::new("y", DataType::Fp32, vec![-1, 4])],
        };
        assert!(sig.supports_batching());
        sig.outputs[0].dims[0] = 1;
        assert!(!sig.supports_batching());
    }
}
