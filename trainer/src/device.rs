//! [`DeviceSpec`]: `train.device` parsed, and opened as a candle [`Device`].

use std::fmt;

use candle_core::Device;

use crate::error::{Result, TrainError};

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The CPU.
    Cpu,
    /// The NVIDIA GPU with this ordinal.
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses `cpu`, `cuda` (the first GPU) or `cuda:N`, ignoring case and surrounding spaces.
    pub fn parse(text: &str) -> Result<DeviceSpec> {
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
        Err(TrainError::spec(
            "train.device",
            format!("unknown device {text:?}; use \"cpu\", \"cuda\" or \"cuda:N\""),
        ))
    }

    /// Opens the device. A CUDA device fails with a clear [`TrainError::Device`] (never a panic)
    /// when this build has no CUDA support or the GPU is not there.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => open_cuda(ordinal),
        }
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
fn open_cuda(ordinal: usize) -> Result<Device> {
    // cudarc may panic when the driver library cannot be loaded; turn that into an error too.
    match std::panic::catch_unwind(|| Device::new_cuda(ordinal)) {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(TrainError::Device(format!("no CUDA device {ordinal}: {e}"))),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the CUDA driver could not be loaded".to_owned());
            Err(TrainError::Device(format!(
                "no CUDA device {ordinal}: {reason}"
            )))
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device> {
    Err(TrainError::Device(format!(
        "cuda:{ordinal} requested, but this worker was built without CUDA \
         (rebuild with the cargo feature `cuda`, or set train.device = \"cpu\")"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!(DeviceSpec::parse("cpu").unwrap(), DeviceSpec::Cpu);
        assert_eq!(DeviceSpec::parse(" CUDA ").unwrap(), DeviceSpec::Cuda(0));
        assert_eq!(DeviceSpec::parse("cuda:3").unwrap(), DeviceSpec::Cuda(3));
        assert!(DeviceSpec::parse("cuda:x").is_err());
        assert!(DeviceSpec::parse("gpu").is_err());
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(e.contains("built without CUDA"), "{e}");
    }
}
