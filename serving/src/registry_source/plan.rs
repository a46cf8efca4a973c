//! Which versions of a registered model to serve, decided from the registry's state alone (a pure
//! function, so that the policy is tested without a registry).

use std::collections::{BTreeMap, BTreeSet};

/// What the registry says of one model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Registered {
    /// Version number → where its files are (`source`).
    pub versions: BTreeMap<u64, String>,
    /// Alias → version number (only aliases that point at a listed version).
    pub aliases: BTreeMap<String, u64>,
}

/// The versions to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// The version unversioned requests should get: the default alias's target, else the newest.
    pub target: u64,
    /// Every version to keep loaded, `target` included.
    pub keep: BTreeSet<u64>,
    /// `keep` in load order: `target` first, then the others newest first.
    pub load_order: Vec<u64>,
}

/// Serves the newest `newest` versions, every alias target, and `extra` (versions loaded on demand
/// and still in use) when registered. `None` for a model without versions.
pub(super) fn plan(
    registered: &Registered,
    default_alias: &str,
    newest: usize,
    extra: &BTreeSet<u64>,
) -> Option<Plan> {
    let latest = *registered.versions.keys().next_back()?;
    let target = registered
        .aliases
        .get(default_alias)
        .copied()
        .filter(|v| registered.versions.contains_key(v))
        .unwrap_or(latest);
    let mut keep: BTreeSet<u64> = registered
        .versions
        .keys()
        .rev()
        .take(newest)
        .copied()
        .collect();
    keep.extend(
        registered
            .aliases
            .values()
            .filter(|v| registered.versions.contains_key(v)),
    );
    keep.extend(extra.iter().filter(|v| registered.versions.contains_key(v)));
    keep.insert(target);
    let load_order = std::iter::once(target)
        .chain(keep.iter().rev().copied().filter(|&v| v != target))
        .collect();
    Some(Plan {
        target,
        keep,
        load_order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(versions: &[u64], aliases: &[(&str, u64)]) -> Registered {
        Registered {
            versions: versions.iter().map(|&v| (v, format!("src/{v}"))).collect(),
            aliases: aliases.iter().map(|(a, v)| (a.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn the_newest_serves_without_a_champion() {
        let p = plan(
            &registered(&[1, 2, 3, 4, 5], &[]),
            "champion",
            3,
            &BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(p.target, 5);
        assert_eq!(p.keep, BTreeSet::from([3, 4, 5]));
        assert_eq!(p.load_order, vec![5, 4, 3]);
    }

    #[test]
    fn the_champion_and_other_alias_targets_are_kept_and_loaded_first() {
        let r = registered(&[1, 2, 3, 4, 5], &[("champion", 1), ("challenger", 2)]);
        let p = plan(&r, "champion", 2, &BTreeSet::from([3, 9])).unwrap();
        assert_eq!(p.target, 1);
        assert_eq!(p.keep, BTreeSet::from([1, 2, 3, 4, 5]));
        assert_eq!(p.load_order, vec![1, 5, 4, 3, 2]);
    }

    #[test]
    fn an_alias_to_an_unlisted_version_is_ignored() {
        let p = plan(
            &registered(&[1, 2], &[("champion", 7)]),
            "champion",
            1,
            &BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(p.target, 2);
        assert!(plan(&registered(&[], &[]), "champion", 3, &BTreeSet::new()).is_none());
    }
}
