//! [`DeviceSpec`]: where candle computes (`cpu`, `cuda`, `cuda:N`), parsed and opened as a candle
//! [`Device`]. The trainer's `train.device` and the server's `candle_device` are this type.

use std::fmt;

use candle_core::Device;

/// Why a device cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The text names no device.
    #[error("unknown device {0:?}; use \"cpu\", \"cuda\" or \"cuda:N\"")]
    Unknown(String),
    /// This build has no CUDA support.
    #[error(
        "cuda:{0} requested, but this build has no CUDA support (rebuild with the cargo feature \
         `cuda`, or use \"cpu\")"
    )]
    NoCudaBuild(usize),
    /// The GPU cannot be opened.
    #[error("no CUDA device {ordinal}: {reason}")]
    NoDevice {
        /// The GPU ordinal asked for.
        ordinal: usize,
        /// What the driver said.
        reason: String,
    },
}

/// Where candle computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// The NVIDIA GPU with this ordinal.
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses `cpu`, `cuda` (the first GPU) or `cuda:N`, ignoring case and surrounding spaces.
    pub fn parse(text: &str) -> Result<DeviceSpec, DeviceError> {
        let t = text.trim().to_ascii_lowercase();
        if t == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        if t == "cuda" {
            return Ok(DeviceSpec::Cuda(0));
        }
        if let Some(n) = t.strip_prefix("cuda:")
            && let Ok(ordinal) = n.parse::<usize>()
        {
            return Ok(DeviceSpec::Cuda(ordinal));
        }
        Err(DeviceError::Unknown(text.to_owned()))
    }

    /// Opens the device. A CUDA device fails with a clear error (never a panic) when this build
    /// has no CUDA support or the GPU is not there.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => open_cuda(ordinal),
        }
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DeviceSpec::parse(text)
    }
}

impl fmt::Display for DeviceSpec {
    /// Writes `cpu` or `cuda:N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device, DeviceError> {
    // cudarc may panic when the driver library cannot be loaded; turn that into an error too.
    match std::panic::catch_unwind(|| Device::new_cuda(ordinal)) {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(DeviceError::NoDevice {
            ordinal,
            reason: e.to_string(),
        }),
        Err(panic) => Err(DeviceError::NoDevice {
            ordinal,
            reason: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the CUDA driver could not be loaded".to_owned()),
        }),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NoCudaBuild(ordinal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!(DeviceSpec::parse("cpu").unwrap(), DeviceSpec::Cpu);
        assert_eq!(DeviceSpec::parse(" CUDA ").unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert!(DeviceSpec::parse("cuda:x").is_err());
        assert_eq!(
            DeviceSpec::parse("gpu").unwrap_err().to_string(),
            "unknown device \"gpu\"; use \"cpu\", \"cuda\" or \"cuda:N\""
        );
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(e.contains("no CUDA support"), "{e}");
    }
}
