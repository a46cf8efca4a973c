//! Pretrained networks the trainer builds on, read from the files their packages ship:
//! [`torch_legacy`] reads PyTorch's legacy `.pth` state dicts, [`efficientnet`] turns the
//! EfficientNet-Lite0 one into the serving crate's folded layout.

pub mod efficientnet;
pub mod torch_legacy;
