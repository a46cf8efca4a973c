//! The layered network of every tabular family, and the `mlp` family.
//!
//! Linear layers named `layers.{i}` (weights `[out, in]`, biases `[out]`: the names and shapes
//! the serving crate's candle backend loads), the chosen activation between them and none after
//! the last: the loop's loss applies softmax (classification) or compares raw values
//! (regression). Weights and biases start uniform in `±1/sqrt(fan_in)` (PyTorch's `nn.Linear`
//! default), drawn on the host from the seed so every device starts from the same numbers.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarBuilder, VarMap};

use crate::error::{Result, TrainError};
use crate::families::Network;
use crate::families::tabular::TabularFamily;
use crate::rng::SplitMix64;
use crate::spec::{Activation, Task};

/// The generator stream of weight initialisation.
const INIT_STREAM: u64 = 0x1417_0000_0000_0001;

/// The `mlp` family: hidden layers of `hidden` widths with `activation` between them.
pub fn family(hidden: Vec<usize>, activation: Activation, task: Task) -> TabularFamily {
    TabularFamily::new("mlp", hidden, activation, task)
}

/// The network: linear layers with an activation between them.
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
}

impl Network for Mlp {
    fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let last = self.layers.len().saturating_sub(1);
        let mut x = input.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i < last {
                x = match self.activation {
                    Activation::Relu => x.relu()?,
                    Activation::Tanh => x.tanh()?,
                    Activation::Gelu => x.gelu()?,
                    Activation::Sigmoid => candle_nn::ops::sigmoid(&x)?,
                };
            }
        }
        Ok(x)
    }
}

/// Builds the network of layer `widths` (input, hidden..., output) over `varmap`, creating its
/// variables on `device` with weights drawn from `seed`.
pub fn build(
    widths: &[usize],
    activation: Activation,
    varmap: &VarMap,
    device: &Device,
    seed: u64,
) -> Result<Mlp> {
    let mut rng = SplitMix64::new(seed, INIT_STREAM);
    {
        let mut vars = varmap
            .data()
            .lock()
            .map_err(|_| TrainError::Internal("the variable map's lock is poisoned".into()))?;
        for (i, w) in widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
            let weight: Vec<f32> = (0..fan_in * fan_out)
                .map(|_| rng.symmetric(bound))
                .collect();
            let bias: Vec<f32> = (0..fan_out).map(|_| rng.symmetric(bound)).collect();
            vars.insert(
                format!("layers.{i}.weight"),
                Var::from_tensor(&Tensor::from_vec(weight, (fan_out, fan_in), device)?)?,
            );
            vars.insert(
                format!("layers.{i}.bias"),
                Var::from_tensor(&Tensor::from_vec(bias, fan_out, device)?)?,
            );
        }
    }
    let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
    let layers = widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| candle_nn::linear(w[0], w[1], vb.pp("layers").pp(i)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Mlp { layers, activation })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_initialisation_is_repeatable() {
        let device = Device::Cpu;
        let run = |seed| {
            let varmap = VarMap::new();
            let net = build(&[3, 4, 2], Activation::Relu, &varmap, &device, seed).unwrap();
            let x = Tensor::new(&[[1.0f32, 2.0, 3.0]], &device).unwrap();
            net.forward(&x).unwrap().to_vec2::<f32>().unwrap()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let varmap = VarMap::new();
        build(&[3, 4, 2], Activation::Relu, &varmap, &device, 1).unwrap();
        let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "layers.0.bias",
                "layers.0.weight",
                "layers.1.bias",
                "layers.1.weight"
            ]
        );
        assert_eq!(
            varmap.data().lock().unwrap()["layers.0.weight"].dims(),
            &[4, 3]
        );
    }
}
