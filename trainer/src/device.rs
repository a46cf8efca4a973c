//! `train.device`: the serving crate's [`DeviceSpec`] (one device type for training and
//! serving), with the trainer's errors.

use candle_core::Device;
pub use cerulean_serving::backend::candle::device::DeviceSpec;

use crate::error::{Result, TrainError};

/// Parses `train.device` (`cpu`, `cuda` or `cuda:N`).
pub fn parse_device(text: &str) -> Result<DeviceSpec> {
    DeviceSpec::parse(text).map_err(|e| TrainError::spec("train.device", e.to_string()))
}

/// Opens `spec` for training; a missing GPU or a build without CUDA is a [`TrainError::Device`].
pub fn open_device(spec: DeviceSpec) -> Result<Device> {
    spec.open().map_err(|e| TrainError::Device(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        assert_eq!(parse_device("cuda:2").unwrap(), DeviceSpec::Cuda(2));
        let e = parse_device("tpu").unwrap_err().to_string();
        assert!(e.starts_with("train.device: unknown device"), "{e}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let e = open_device(DeviceSpec::Cuda(0)).unwrap_err().to_string();
        assert!(e.starts_with("train.device: cuda:0 requested"), "{e}");
        assert!(e.contains("no CUDA support"), "{e}");
    }
}
