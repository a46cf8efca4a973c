//! Tensors as they travel through the server: a name, a datatype, a shape and raw little-endian,
//! row-major bytes. Keeping the bytes raw means binary HTTP bodies and gRPC `raw_input_contents`
//! reach a backend without being parsed or copied; only the backend's input buffer is written.

use bytes::Bytes;

use crate::datatype::DataType;
use crate::error::{Result, ServingError};

/// A named tensor whose contents are raw bytes in the v2 binary layout.
///
/// Fixed-size types hold `element_count × element_size` little-endian bytes; `BYTES` tensors hold
/// each element as a 4-byte little-endian length followed by that many bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The tensor's name as the model declares it.
    pub name: String,
    /// The element type.
    pub datatype: DataType,
    /// The full shape, batch dimension included.
    pub shape: Vec<i64>,
    /// The contents in the v2 binary layout.
    pub data: Bytes,
}

impl Tensor {
    /// Builds a tensor and checks that `data` holds exactly the elements `shape` describes.
    pub fn new(
        name: impl Into<String>,
        datatype: DataType,
        shape: Vec<i64>,
        data: Bytes,
    ) -> Result<Tensor> {
        let tensor = Tensor {
            name: name.into(),
            datatype,
            shape,
            data,
        };
        tensor.validate()?;
        Ok(tensor)
    }

    /// The number of elements the shape describes.
    pub fn element_count(&self) -> Result<usize> {
        element_count(&self.name, &self.shape)
    }

    /// Checks that the contents match the shape and datatype.
    pub fn validate(&self) -> Result<()> {
        let count = self.element_count()?;
        match self.datatype.element_size() {
            Some(size) => {
                let expected = count.checked_mul(size).ok_or_else(|| {
                    ServingError::tensor(
                        &self.name,
                        "shape describes more bytes than can be addressed",
                    )
                })?;
                if self.data.len() != expected {
                    return Err(ServingError::tensor(
                        &self.name,
                        format!(
                            "shape {:?} of {} needs {expected} bytes ({count} elements) but {} were given",
                            self.shape,
                            self.datatype,
                            self.data.len()
                        ),
                    ));
                }
            }
            None => {
                let found = count_bytes_elements(&self.data)
                    .map_err(|msg| ServingError::tensor(&self.name, msg))?;
                if found != count {
                    return Err(ServingError::tensor(
                        &self.name,
                        format!(
                            "shape {:?} needs {count} BYTES elements but {found} were given",
                            self.shape
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Iterates over the elements of a `BYTES` tensor (the contents must already be valid).
    pub fn bytes_elements(&self) -> BytesElements<'_> {
        BytesElements::new(&self.data)
    }
}

/// The number of elements in `shape`, refusing negative dimensions and overflow.
pub fn element_count(name: &str, shape: &[i64]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &dim| {
        let dim = usize::try_from(dim).map_err(|_| {
            ServingError::tensor(name, format!("negative dimension in shape {shape:?}"))
        })?;
        acc.checked_mul(dim)
            .ok_or_else(|| ServingError::tensor(name, format!("shape {shape:?} is too large")))
    })
}

/// Counts the length-prefixed elements in a serialised `BYTES` buffer.
pub fn count_bytes_elements(mut data: &[u8]) -> std::result::Result<usize, String> {
    let mut count = 0;
    while !data.is_empty() {
        if data.len() < 4 {
            return Err("BYTES contents end inside a 4-byte length prefix".to_string());
        }
        let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let rest = &data[4..];
        if rest.len() < len {
            return Err(format!(
                "BYTES element {count} claims {len} bytes but only {} remain",
                rest.len()
            ));
        }
        data = &rest[len..];
        count += 1;
    }
    Ok(count)
}

/// Serialises byte strings into the length-prefixed `BYTES` layout.
pub fn encode_bytes_elements<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        append_bytes_element(&mut out, item);
    }
    out
}

/// Appends one length-prefixed element to a `BYTES` buffer.
pub fn append_bytes_element(out: &mut Vec<u8>, item: &[u8]) {
    out.extend_from_slice(&(item.len() as u32).to_le_bytes());
    out.extend_from_slice(item);
}

/// Iterator over the elements of a serialised `BYTES` buffer.
#[derive(Debug, Clone)]
pub struct BytesElements<'a> {
    rest: &'a [u8],
}

impl<'a> BytesElements<'a> {
    /// Iterates over the elements serialised in `data`.
    pub fn new(data: &'a [u8]) -> BytesElements<'a> {
        BytesElements { rest: data }
    }
}

impl<'a> Iterator for BytesElements<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.len() < 4 {
            return None;
        }
        let len =
            u32::from_le_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]]) as usize;
        let end = (4 + len).min(self.rest.len());
        let item = &self.rest[4..end];
        self.rest = &self.rest[end..];
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_size_contents_must_match_shape() {
        let ok = Tensor::new("x", DataType::Fp32, vec![2, 2], Bytes::from(vec![0u8; 16]));
        assert!(ok.is_ok());
        let err =
            Tensor::new("x", DataType::Fp32, vec![2, 2], Bytes::from(vec![0u8; 12])).unwrap_err();
        assert!(err.to_string().contains("'x'"), "{err}");
        assert!(err.to_string().contains("16 bytes"), "{err}");
    }

    #[test]
    fn negative_and_huge_shapes_are_refused() {
        assert!(element_count("x", &[-1, 2]).is_err());
        assert!(element_count("x", &[i64::MAX, i64::MAX]).is_err());
        assert_eq!(element_count("x", &[]).unwrap(), 1);
    }

    #[test]
    fn bytes_round_trip() {
        let items: Vec<&[u8]> = vec![b"hello", b"", "héllo".as_bytes()];
        let data = encode_bytes_elements(items.clone());
        let tensor = Tensor::new("s", DataType::Bytes, vec![3], Bytes::from(data)).unwrap();
        assert_eq!(tensor.bytes_elements().collect::<Vec<_>>(), items);
        let wrong = Tensor::new("s", DataType::Bytes, vec![2], tensor.data.clone());
        assert!(wrong.is_err());
        assert!(count_bytes_elements(&[5, 0, 0, 0, 1]).is_err());
        assert!(count_bytes_elements(&[5, 0]).is_err());
    }
}
