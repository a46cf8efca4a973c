//! Times EfficientNet-Lite0 feature extraction (the frozen backbone of `image-classifier`
//! transfer learning) on the CPU, and the depthwise convolution kernel against candle's grouped
//! convolution on one of the network's layers.
//!
//! ```text
//! cargo run --release -p cerulean-trainer --example lite0_features -- [IMAGE_SIZE] [BATCH] [BATCHES]
//! ```
//!
//! Needs `cerulean models pull efficientnet-lite0` (under `$CERULEAN_HOME`). Prints images per
//! second for each batch and the median.

use std::time::Instant;

use candle_core::{Device, Tensor};
use cerulean_serving::backend::candle::efficientnet::{depthwise_conv2d, grouped_depthwise_conv2d};
use cerulean_trainer::pretrained::efficientnet;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in main; no other thread exists yet.
    unsafe { cerulean_trainer::set_cpu_threads_at_startup() };
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(224);
    let batch: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let batches: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let device = Device::Cpu;
    let pretrained = efficientnet::from_store(&cerulean_models::ModelStore::from_env())?;
    let network = efficientnet::network(&pretrained.backbone, &device)?;
    let pixels = Tensor::rand(0f32, 1f32, (batch, 3, size, size), &device)?;
    network.features(&pixels)?; // warm-up
    let mut rates = Vec::new();
    for i in 0..batches {
        let started = Instant::now();
        let features = network.features(&pixels)?;
        features.flatten_all()?.to_vec1::<f32>()?;
        let rate = batch as f64 / started.elapsed().as_secs_f64();
        println!("batch {i}: {batch} images of {size}x{size} at {rate:.1} images/s");
        rates.push(rate);
    }
    println!(
        "EfficientNet-Lite0 features, {size}x{size}, batch {batch}: median {:.1} images/s",
        median(rates)
    );

    // Block 1's depthwise layer at 224: 96 channels of 112x112, 3x3, stride 2.
    let side = size / 2;
    let x = Tensor::rand(0f32, 1f32, (batch, 96, side, side), &device)?;
    let w = Tensor::rand(-1f32, 1f32, (96, 1, 3, 3), &device)?;
    for (name, grouped) in [("cerulean kernel", false), ("candle grouped conv2d", true)] {
        let mut times = Vec::new();
        for _ in 0..batches.max(3) {
            let started = Instant::now();
            let y = if grouped {
                grouped_depthwise_conv2d(&x, &w, 3, 2)?
            } else {
                depthwise_conv2d(&x, &w, 3, 2)?
            };
            y.flatten_all()?.to_vec1::<f32>()?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "depthwise 3x3/2 over {batch}x96x{side}x{side}: {name} median {:.2} ms",
            median(times)
        );
    }
    Ok(())
}
