//! The tensor element types of the Open Inference Protocol, and their names in every dialect we speak:
//! the v2 wire names (`FP32`), Triton's model configuration (`TYPE_FP32`) and ONNX Runtime's.

use std::fmt;
use std::str::FromStr;

use crate::error::ServingError;

/// A v2 tensor datatype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// One byte per element, 0 or 1.
    Bool,
    /// Unsigned 8-bit integer.
    Uint8,
    /// Unsigned 16-bit integer.
    Uint16,
    /// Unsigned 32-bit integer.
    Uint32,
    /// Unsigned 64-bit integer.
    Uint64,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// IEEE half precision.
    Fp16,
    /// bfloat16.
    Bf16,
    /// IEEE single precision.
    Fp32,
    /// IEEE double precision.
    Fp64,
    /// Variable-length byte strings; serialised as a 4-byte little-endian length then the bytes.
    Bytes,
}

impl DataType {
    /// Every datatype, in the order the protocol lists them.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Bf16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The v2 wire name, e.g. `FP32`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Bf16 => "BF16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Bytes per element, or `None` for the variable-length `BYTES`.
    pub fn element_size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
            DataType::Bytes => return None,
        })
    }

    /// The Triton model-configuration enum value (`inference.DataType`, e.g. `TYPE_FP32` = 11).
    pub fn config_value(self) -> i32 {
        match self {
            DataType::Bool => 1,
            DataType::Uint8 => 2,
            DataType::Uint16 => 3,
            DataType::Uint32 => 4,
            DataType::Uint64 => 5,
            DataType::Int8 => 6,
            DataType::Int16 => 7,
            DataType::Int32 => 8,
            DataType::Int64 => 9,
            DataType::Fp16 => 10,
            DataType::Fp32 => 11,
            DataType::Fp64 => 12,
            DataType::Bytes => 13,
            DataType::Bf16 => 14,
        }
    }

    /// The datatype for a Triton model-configuration enum value; `None` for `TYPE_INVALID` or unknown values.
    pub fn from_config_value(value: i32) -> Option<DataType> {
        DataType::ALL
            .into_iter()
            .find(|d| d.config_value() == value)
    }

    /// The ONNX Runtime element type.
    pub fn to_ort(self) -> ort::value::TensorElementType {
        use ort::value::TensorElementType as T;
        match self {
            DataType::Bool => T::Bool,
            DataType::Uint8 => T::Uint8,
            DataType::Uint16 => T::Uint16,
            DataType::Uint32 => T::Uint32,
            DataType::Uint64 => T::Uint64,
            DataType::Int8 => T::Int8,
            DataType::Int16 => T::Int16,
            DataType::Int32 => T::Int32,
            DataType::Int64 => T::Int64,
            DataType::Fp16 => T::Float16,
            DataType::Bf16 => T::Bfloat16,
            DataType::Fp32 => T::Float32,
            DataType::Fp64 => T::Float64,
            DataType::Bytes => T::String,
        }
    }

    /// The v2 datatype for an ONNX Runtime element type, or `None` when v2 has no equivalent.
    pub fn from_ort(ty: ort::value::TensorElementType) -> Option<DataType> {
        use ort::value::TensorElementType as T;
        Some(match ty {
            T::Bool => DataType::Bool,
            T::Uint8 => DataType::Uint8,
            T::Uint16 => DataType::Uint16,
            T::Uint32 => DataType::Uint32,
            T::Uint64 => DataType::Uint64,
            T::Int8 => DataType::Int8,
            T::Int16 => DataType::Int16,
            T::Int32 => DataType::Int32,
            T::Int64 => DataType::Int64,
            T::Float16 => DataType::Fp16,
            T::Bfloat16 => DataType::Bf16,
            T::Float32 => DataType::Fp32,
            T::Float64 => DataType::Fp64,
            T::String => DataType::Bytes,
            _ => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DataType {
    type Err = ServingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| ServingError::BadRequest(format!("unknown datatype '{s}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for dt in DataType::ALL {
            assert_eq!(dt.as_str().parse::<DataType>().unwrap(), dt);
            assert_eq!(DataType::from_config_value(dt.config_value()), Some(dt));
            assert_eq!(DataType::from_ort(dt.to_ort()), Some(dt));
        }
        assert!("FLOAT".parse::<DataType>().is_err());
        assert_eq!(DataType::from_config_value(0), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(DataType::Fp16.element_size(), Some(2));
        assert_eq!(DataType::Bool.element_size(), Some(1));
        assert_eq!(DataType::Fp64.element_size(), Some(8));
        assert_eq!(DataType::Bytes.element_size(), None);
    }
}
