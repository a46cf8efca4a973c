//! Reads the floating-point tensors of a state dict saved by PyTorch's legacy serialisation
//! (`torch.save` before 1.6, or with `_use_new_zipfile_serialization=False`): not a zip archive
//! but five records one after the other:
//!
//! 1. a pickle of the magic number `0x1950a86a20f9469cfc6c`;
//! 2. a pickle of the protocol version (1001);
//! 3. a pickle of the system information (`little_endian`, type sizes);
//! 4. the pickled state dict, whose tensors are `torch._utils._rebuild_tensor_v2(storage,
//!    offset, size, stride, ...)` calls and whose storages are persistent ids
//!    `('storage', torch.FloatStorage, key, location, elements, view)`;
//! 5. a pickle of the storage keys, then each storage in that order: its element count as a
//!    little-endian `i64`, then its raw little-endian elements.
//!
//! The pickles are parsed with candle's pickle machine ([`candle_core::pickle::Stack`]), except
//! the magic number, whose ten-byte integer that machine cannot hold and which is therefore
//! compared byte for byte. Tensors are gathered through their strides, so weights stored in
//! another memory order (e.g. converted from TensorFlow's `HWIO`) come out in PyTorch's logical
//! order. Only `FloatStorage` tensors are returned; integer buffers such as BatchNorm's
//! `num_batches_tracked` are skipped.

use std::collections::HashMap;
use std::io::Cursor;

use candle_core::pickle::{Object, Stack};

use crate::checkpoint::{HostTensor, Weights};

/// The first record of a legacy file: protocol 2, `LONG1` of ten bytes holding the magic
/// number, `STOP`.
const MAGIC_RECORD: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
/// The storage type of the tensors returned.
const FLOAT: &str = "FloatStorage";
/// The protocol version legacy files record.
const PROTOCOL_VERSION: i64 = 1001;

/// Why a legacy PyTorch file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LegacyTorchError {
    /// The file does not start with the legacy magic number.
    #[error(
        "not a legacy PyTorch file (no magic number; zip-format files from PyTorch 1.6+ are read \
         differently)"
    )]
    NotLegacy,
    /// A record is malformed.
    #[error("malformed legacy PyTorch file: {0}")]
    Malformed(String),
    /// The file ends inside a record.
    #[error("the legacy PyTorch file is truncated: {0}")]
    Truncated(String),
    /// A tensor does not fit its storage, or its storage is missing.
    #[error("tensor '{name}': {reason}")]
    Tensor {
        /// The state-dict key.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, LegacyTorchError>;

fn malformed(what: impl Into<String>) -> LegacyTorchError {
    LegacyTorchError::Malformed(what.into())
}

/// A tensor as the state dict describes it, before its storage is read.
struct TensorRef {
    name: String,
    storage_type: String,
    storage_key: String,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// Reads every `FloatStorage` tensor of the legacy state dict in `bytes`, by state-dict key.
pub fn read_state_dict(bytes: &[u8]) -> Result<Weights> {
    if !bytes.starts_with(&MAGIC_RECORD) {
        return Err(LegacyTorchError::NotLegacy);
    }
    let mut cursor = Cursor::new(bytes);
    cursor.set_position(MAGIC_RECORD.len() as u64);
    let protocol = read_pickle(&mut cursor, "protocol version")?;
    if integer(&protocol) != Some(PROTOCOL_VERSION) {
        return Err(malformed(format!(
            "protocol version {protocol:?}, expected {PROTOCOL_VERSION}"
        )));
    }
    let sys_info = read_pickle(&mut cursor, "system information")?;
    if let Object::Dict(entries) = &sys_info {
        let big_endian = entries.iter().any(|(k, v)| {
            matches!(k, Object::Unicode(k) if k == "little_endian")
                && matches!(v, Object::Bool(false))
        });
        if big_endian {
            return Err(malformed("the file was written on a big-endian machine"));
        }
    }
    let state = read_pickle(&mut cursor, "state dict")?;
    let mut tensors = Vec::new();
    for (key, value) in state_entries(state)? {
        if let Object::Unicode(name) = key
            && let Some(tensor) = tensor_ref(name, value)?
        {
            tensors.push(tensor);
        }
    }
    let keys = match read_pickle(&mut cursor, "storage keys")? {
        Object::List(keys) | Object::Tuple(keys) => keys,
        other => return Err(malformed(format!("storage keys: {other:?}"))),
    };
    let storages = read_storages(bytes, cursor.position() as usize, &keys, &tensors)?;
    let mut out = Weights::new();
    for tensor in tensors.into_iter().filter(|t| t.storage_type == FLOAT) {
        let storage =
            storages
                .get(&tensor.storage_key)
                .ok_or_else(|| LegacyTorchError::Tensor {
                    name: tensor.name.clone(),
                    reason: format!("storage {} is not in the file", tensor.storage_key),
                })?;
        let data = gather(storage, &tensor).map_err(|reason| LegacyTorchError::Tensor {
            name: tensor.name.clone(),
            reason,
        })?;
        out.insert(
            tensor.name,
            HostTensor {
                shape: tensor.size,
                data,
            },
        );
    }
    Ok(out)
}

/// Parses one pickle at the cursor.
fn read_pickle(cursor: &mut Cursor<&[u8]>, what: &str) -> Result<Object> {
    let mut stack = Stack::empty();
    stack
        .read_loop(cursor)
        .map_err(|e| LegacyTorchError::Truncated(format!("{what}: {e}")))?;
    stack
        .finalize()
        .map_err(|e| malformed(format!("{what}: {e}")))
}

/// The `(key, value)` pairs of the pickled state dict (an `OrderedDict`, possibly built with
/// its `_metadata` attribute).
fn state_entries(state: Object) -> Result<Vec<(Object, Object)>> {
    match state {
        Object::Dict(entries) => Ok(entries),
        Object::Build { callable, .. } => match *callable {
            Object::Dict(entries) => Ok(entries),
            other => Err(malformed(format!("the state dict is {other:?}"))),
        },
        other => Err(malformed(format!(
            "the state dict is not a dictionary: {other:?}"
        ))),
    }
}

fn integer(o: &Object) -> Option<i64> {
    match o {
        Object::Int(i) => Some(i64::from(*i)),
        Object::Long(i) => Some(*i),
        _ => None,
    }
}

fn usizes(o: Object, what: &str, name: &str) -> Result<Vec<usize>> {
    let Object::Tuple(items) = o else {
        return Err(malformed(format!("{name}: {what} is not a tuple")));
    };
    items
        .iter()
        .map(|i| {
            integer(i)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| malformed(format!("{name}: {what} holds {i:?}")))
        })
        .collect()
}

/// The tensor a state-dict value rebuilds; `None` for values that are not tensors.
fn tensor_ref(name: String, value: Object) -> Result<Option<TensorRef>> {
    let Object::Reduce { callable, args } = value else {
        return Ok(None);
    };
    match *callable {
        Object::Class {
            module_name,
            class_name,
        } if module_name == "torch._utils" && class_name == "_rebuild_tensor_v2" => {}
        _ => return Ok(None),
    }
    let Object::Tuple(args) = *args else {
        return Err(malformed(format!(
            "{name}: tensor arguments are not a tuple"
        )));
    };
    let mut args = args.into_iter();
    let (Some(storage), Some(offset), Some(size), Some(stride)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        return Err(malformed(format!("{name}: too few tensor arguments")));
    };
    let Object::PersistentLoad(id) = storage else {
        return Err(malformed(format!(
            "{name}: the storage is not a persistent id"
        )));
    };
    let Object::Tuple(id) = *id else {
        return Err(malformed(format!("{name}: the storage id is not a tuple")));
    };
    // ('storage', torch.<Type>Storage, key, location, elements[, view metadata])
    let (storage_type, storage_key) = match id.as_slice() {
        [
            Object::Unicode(tag),
            Object::Class { class_name, .. },
            Object::Unicode(key),
            ..,
        ] if tag == "storage" => (class_name.clone(), key.clone()),
        _ => return Err(malformed(format!("{name}: unexpected storage id {id:?}"))),
    };
    let offset = integer(&offset)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| malformed(format!("{name}: storage offset {offset:?}")))?;
    let size = usizes(size, "the size", &name)?;
    let stride = usizes(stride, "the stride", &name)?;
    if size.len() != stride.len() {
        return Err(malformed(format!(
            "{name}: {} sizes and {} strides",
            size.len(),
            stride.len()
        )));
    }
    Ok(Some(TensorRef {
        name,
        storage_type,
        storage_key,
        offset,
        size,
        stride,
    }))
}

/// The bytes per element of a storage type (every storage is read or skipped over, so each
/// one's width must be known).
fn element_width(storage_type: &str) -> Option<usize> {
    match storage_type {
        "FloatStorage" | "IntStorage" => Some(4),
        "DoubleStorage" | "LongStorage" => Some(8),
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => Some(2),
        "ByteStorage" | "CharStorage" | "BoolStorage" => Some(1),
        _ => None,
    }
}

/// Reads the storages that follow the key list at `start`, keeping the float ones as f32 values
/// by key; `tensors` give each storage's type.
fn read_storages(
    bytes: &[u8],
    start: usize,
    keys: &[Object],
    tensors: &[TensorRef],
) -> Result<HashMap<String, Vec<f32>>> {
    let types: HashMap<&str, &str> = tensors
        .iter()
        .map(|t| (t.storage_key.as_str(), t.storage_type.as_str()))
        .collect();
    let mut pos = start;
    let mut out = HashMap::new();
    for key in keys {
        let Object::Unicode(key) = key else {
            return Err(malformed(format!("storage key {key:?}")));
        };
        let count_bytes = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| LegacyTorchError::Truncated(format!("storage {key}: no length")))?;
        let count = i64::from_le_bytes(count_bytes.try_into().unwrap_or([0; 8]));
        let count = usize::try_from(count)
            .map_err(|_| malformed(format!("storage {key}: length {count}")))?;
        pos += 8;
        let storage_type = types.get(key.as_str()).copied().ok_or_else(|| {
            malformed(format!(
                "storage {key} is used by no tensor, so its type is unknown"
            ))
        })?;
        let width = element_width(storage_type)
            .ok_or_else(|| malformed(format!("storage {key} has unknown type {storage_type}")))?;
        let keep = storage_type == FLOAT;
        let len = count
            .checked_mul(width)
            .ok_or_else(|| malformed(format!("storage {key}: {count} elements")))?;
        let data = bytes.get(pos..pos + len).ok_or_else(|| {
            LegacyTorchError::Truncated(format!("storage {key}: {count} elements"))
        })?;
        pos += len;
        if keep {
            out.insert(
                key.clone(),
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// The tensor's elements in logical (row-major) order, read through its offset and strides.
fn gather(storage: &[f32], tensor: &TensorRef) -> std::result::Result<Vec<f32>, String> {
    let count: usize = tensor.size.iter().product();
    if count == 0 {
        return Ok(Vec::new());
    }
    let last = tensor.offset
        + tensor
            .size
            .iter()
            .zip(&tensor.stride)
            .map(|(s, st)| (s - 1) * st)
            .sum::<usize>();
    if last >= storage.len() {
        return Err(format!(
            "size {:?}, stride {:?} and offset {} reach element {last} of a storage of {}",
            tensor.size,
            tensor.stride,
            tensor.offset,
            storage.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; tensor.size.len()];
    for _ in 0..count {
        let at = tensor.offset
            + index
                .iter()
                .zip(&tensor.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        out.push(storage[at]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < tensor.size[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(offset: usize, size: Vec<usize>, stride: Vec<usize>) -> TensorRef {
        TensorRef {
            name: "t".into(),
            storage_type: FLOAT.into(),
            storage_key: "0".into(),
            offset,
            size,
            stride,
        }
    }

    #[test]
    fn tensors_are_gathered_through_their_strides() {
        let storage: Vec<f32> = (0..12).map(|v| v as f32).collect();
        // Row-major 2x3 at offset 1.
        assert_eq!(
            gather(&storage, &tensor(1, vec![2, 3], vec![3, 1])).unwrap(),
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        // The transpose of a row-major 3x2: stored column by column.
        assert_eq!(
            gather(&storage, &tensor(0, vec![2, 3], vec![1, 2])).unwrap(),
            [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]
        );
        assert_eq!(gather(&storage, &tensor(5, vec![], vec![])).unwrap(), [5.0]);
        let e = gather(&storage, &tensor(4, vec![3, 3], vec![3, 1])).unwrap_err();
        assert!(e.contains("reach element 12 of a storage of 12"), "{e}");
    }

    #[test]
    fn other_files_are_refused() {
        assert!(matches!(
            read_state_dict(b"PK\x03\x04 a zip-format checkpoint"),
            Err(LegacyTorchError::NotLegacy)
        ));
        let mut truncated = MAGIC_RECORD.to_vec();
        truncated.extend_from_slice(&[0x80, 0x02, 0x4d]);
        assert!(matches!(
            read_state_dict(&truncated),
            Err(LegacyTorchError::Truncated(_))
        ));
    }
}
