//! The ONNX backend: ONNX Runtime through `ort`, with the runtime library loaded at run time from the
//! file the `onnxruntime` PyPI wheel ships (see `models/manifest.toml`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use ort::memory::Allocator;
use ort::session::Session;
use ort::value::{DynTensor, DynTensorValueType, DynValue, ValueType};

use crate::backend::{BackendInstance, BackendOptions, BatchInput, ModelBackend};
use crate::datatype::DataType;
use crate::error::{Result, ServingError};
use crate::signature::{Signature, TensorSpec};
use crate::tensor::{BytesElements, Tensor, append_bytes_element};

/// The process-wide ONNX Runtime environment, created once from the first library path given.
static ENVIRONMENT: OnceLock<
    std::result::Result<(PathBuf, ort::environment::Environment), String>,
> = OnceLock::new();

/// Loads ONNX Runtime from `library` (once per process) and returns its environment.
pub fn environment(library: Option<&Path>) -> Result<ort::environment::Environment> {
    let loaded = ENVIRONMENT.get_or_init(|| {
        let library = library.ok_or_else(|| {
            "the ONNX Runtime library is not installed: run `cerulean models pull onnxruntime` \
             or set ORT_DYLIB_PATH"
                .to_string()
        })?;
        let builder = ort::init_from(library)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", library.display()))?;
        let env = builder
            .with_name("cerulean")
            .build()
            .map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))?;
        Ok((library.to_path_buf(), env))
    });
    match loaded {
        Ok((_, env)) => Ok(env.clone()),
        Err(msg) => Err(ServingError::Unavailable(msg.clone())),
    }
}

/// An ONNX model file, loaded.
pub struct OnnxModel {
    path: PathBuf,
    options: BackendOptions,
    signature: Signature,
    /// The session created while reading the signature, handed to the first instance.
    first_session: Mutex<Option<Session>>,
}

impl OnnxModel {
    /// Loads `path` and reads its signature.
    pub fn load(path: &Path, options: &BackendOptions) -> Result<OnnxModel> {
        let session = new_session(path, options)?;
        let signature = Signature {
            inputs: session
                .inputs()
                .iter()
                .map(|o| tensor_spec(o.name(), o.dtype()))
                .collect::<Result<_>>()?,
            outputs: session
                .outputs()
                .iter()
                .map(|o| tensor_spec(o.name(), o.dtype()))
                .collect::<Result<_>>()?,
        };
        Ok(OnnxModel {
            path: path.to_path_buf(),
            options: options.clone(),
            signature,
            first_session: Mutex::new(Some(session)),
        })
    }
}

/// Creates an ONNX Runtime session for the model file at `path` with the backend options (threads,
/// spinning), in the process-wide environment. Pipelines around prebuilt models use it too.
pub fn new_session(path: &Path, options: &BackendOptions) -> Result<Session> {
    let env = environment(options.onnxruntime_library.as_deref())?;
    let fail = |e: &dyn std::fmt::Display| {
        ServingError::Unavailable(format!("cannot load ONNX model {}: {e}", path.display()))
    };
    Session::builder(&env)
        .map_err(|e| fail(&e))?
        .with_intra_threads(options.intra_op_threads.max(1))
        .map_err(|e| fail(&e))?
        .with_inter_threads(options.inter_op_threads.max(1))
        .map_err(|e| fail(&e))?
        .with_intra_op_spinning(options.allow_spinning)
        .map_err(|e| fail(&e))?
        .with_inter_op_spinning(options.allow_spinning)
        .map_err(|e| fail(&e))?
        .commit_from_file(path)
        .map_err(|e| fail(&e))
}

fn tensor_spec(name: &str, value_type: &ValueType) -> Result<TensorSpec> {
    match value_type {
        ValueType::Tensor { ty, shape, .. } => {
            let datatype = DataType::from_ort(*ty).ok_or_else(|| {
                ServingError::Unavailable(format!(
                    "tensor '{name}' has element type {ty:?}, which v2 cannot carry"
                ))
            })?;
            Ok(TensorSpec::new(name, datatype, shape.to_vec()))
        }
        other => Err(ServingError::Unavailable(format!(
            "'{name}' is a {other:?}; only tensors can be served"
        ))),
    }
}

impl ModelBackend for OnnxModel {
    fn platform(&self) -> &'static str {
        "onnxruntime_onnx"
    }

    fn backend_name(&self) -> &'static str {
        "onnxruntime"
    }

    fn natural_signature(&self) -> &Signature {
        &self.signature
    }

    fn create_instance(&self) -> Result<Box<dyn BackendInstance>> {
        let first = self.first_session.lock().ok().and_then(|mut s| s.take());
        let session = match first {
            Some(session) => session,
            None => new_session(&self.path, &self.options)?,
        };
        Ok(Box::new(OnnxInstance {
            session,
            output_names: self
                .signature
                .outputs
                .iter()
                .map(|o| o.name.clone())
                .collect(),
        }))
    }
}

/// One ONNX Runtime session.
struct OnnxInstance {
    session: Session,
    output_names: Vec<String>,
}

impl BackendInstance for OnnxInstance {
    fn execute(&mut self, inputs: &[BatchInput<'_>]) -> Result<Vec<Tensor>> {
        let values = inputs
            .iter()
            .map(|input| Ok((input.spec.name.clone(), to_ort_value(input)?)))
            .collect::<Result<Vec<(String, DynValue)>>>()?;
        let mut outputs = self
            .session
            .run(values)
            .map_err(|e| ServingError::Internal(format!("ONNX Runtime failed: {e}")))?;
        self.output_names
            .iter()
            .map(|name| {
                let value = outputs.remove(name.as_str()).ok_or_else(|| {
                    ServingError::Internal(format!("the model produced no output '{name}'"))
                })?;
                from_ort_value(name, value)
            })
            .collect()
    }
}

/// Writes a batch input straight into a tensor allocated by ONNX Runtime: one copy, no staging buffer.
fn to_ort_value(input: &BatchInput<'_>) -> Result<DynValue> {
    let name = &input.spec.name;
    if input.spec.datatype == DataType::Bytes {
        let strings = input
            .parts
            .iter()
            .flat_map(|part| BytesElements::new(part))
            .map(|element| {
                std::str::from_utf8(element)
                    .map(str::to_owned)
                    .map_err(|_| {
                        ServingError::tensor(
                            name,
                            "BYTES elements must be UTF-8 for ONNX string inputs",
                        )
                    })
            })
            .collect::<Result<Vec<String>>>()?;
        let tensor =
            ort::value::Tensor::from_string_array((input.shape.clone(), strings.as_slice()))
                .map_err(|e| ServingError::tensor(name, e))?;
        return Ok(tensor.into_dyn());
    }
    let mut tensor = DynTensor::new(
        &Allocator::default(),
        input.spec.datatype.to_ort(),
        input.shape.clone(),
    )
    .map_err(|e| ServingError::Internal(format!("cannot allocate input '{name}': {e}")))?;
    let len = input.byte_len();
    if len > 0 {
        let ptr = tensor.data_ptr_mut().cast::<u8>();
        // SAFETY: ONNX Runtime allocated a CPU buffer for `shape` elements of this datatype, and the
        // request validation guarantees the parts hold exactly that many bytes.
        let dst = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        input.copy_into(dst);
    }
    Ok(tensor.into_dyn())
}

/// Turns an ONNX Runtime output into a [`Tensor`]. Fixed-size outputs are not copied: the returned
/// bytes keep the ONNX Runtime value alive and point into its buffer, so per-request slices of a batch
/// and the response bodies built from them all share that one buffer.
fn from_ort_value(name: &str, value: DynValue) -> Result<Tensor> {
    let (ty, shape) = match value.dtype() {
        ValueType::Tensor { ty, shape, .. } => (*ty, shape.to_vec()),
        other => {
            return Err(ServingError::Internal(format!(
                "output '{name}' is a {other:?}, not a tensor"
            )));
        }
    };
    let datatype = DataType::from_ort(ty).ok_or_else(|| {
        ServingError::Internal(format!("output '{name}' has unsupported type {ty:?}"))
    })?;
    let data = if datatype == DataType::Bytes {
        let (_, strings) = value
            .try_extract_strings()
            .map_err(|e| ServingError::Internal(format!("cannot read output '{name}': {e}")))?;
        let mut out = Vec::new();
        for s in &strings {
            append_bytes_element(&mut out, s.as_bytes());
        }
        Bytes::from(out)
    } else {
        let element_size = datatype.element_size().unwrap_or(1);
        let len = crate::tensor::element_count(name, &shape)? * element_size;
        let tensor = value
            .downcast::<DynTensorValueType>()
            .map_err(|e| ServingError::Internal(format!("cannot read output '{name}': {e}")))?;
        if len == 0 {
            Bytes::new()
        } else {
            Bytes::from_owner(OrtBuffer { tensor, len })
        }
    };
    Ok(Tensor {
        name: name.to_string(),
        datatype,
        shape,
        data,
    })
}

/// An ONNX Runtime CPU tensor viewed as its bytes.
struct OrtBuffer {
    tensor: DynTensor,
    len: usize,
}

impl AsRef<[u8]> for OrtBuffer {
    fn as_ref(&self) -> &[u8] {
        let ptr = self.tensor.data_ptr().cast::<u8>();
        // SAFETY: the tensor is a CPU tensor owned by `self`, holding `len` bytes (its element count
        // times its element size, computed from its own shape and type), and it is never written again.
        unsafe { std::slice::from_raw_parts(ptr, self.len) }
    }
}
