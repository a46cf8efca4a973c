//! The sentiment binding: `[cognitive.sentiment] model = "models:/NAME@ALIAS"` (or
//! `CERULEAN_SENTIMENT_MODEL`) makes the Azure sentiment routes answer with a registered text
//! classifier instead of VADER.
//!
//! The registry follower serves registered model `NAME` as the v2 model `NAME` of the same server,
//! its `champion` alias target answering requests without a version, so a binding names either
//! that alias (`models:/NAME@champion`) or a version (`models:/NAME/3`). The classifier's labels
//! must be a subset of `positive`, `negative` and `neutral` (any case); this is checked on each
//! request, as the model may load (or change) after the server starts.

use std::fmt;
use std::str::FromStr;

/// Which of a registered model's versions a binding calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The target of the alias whose target answers `/v2/models/NAME` (`champion`).
    Alias(String),
    /// A fixed version.
    Version(u64),
}

/// A parsed `models:/NAME@ALIAS` or `models:/NAME/VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentimentBinding {
    /// The registered (and v2) model name.
    pub model: String,
    /// Which version.
    pub selector: Selector,
    /// `NAME@ALIAS` or `NAME/VERSION`, as the routes report it.
    reference: String,
}

/// Why a binding was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sentiment model '{uri}': {reason}")]
pub struct BindingError {
    /// The value given.
    pub uri: String,
    /// What is wrong with it.
    pub reason: String,
}

impl SentimentBinding {
    /// `NAME@ALIAS` or `NAME/VERSION`.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The v2 version to ask for: `None` for the alias (the server's default version of the
    /// model), the number otherwise.
    pub fn version(&self) -> Option<String> {
        match self.selector {
            Selector::Alias(_) => None,
            Selector::Version(v) => Some(v.to_string()),
        }
    }

    /// The `modelVersion` the routes report when version `served` answered, e.g.
    /// `my-sentiment@champion (v3)`.
    pub fn model_version(&self, served: &str) -> String {
        if served.is_empty() {
            self.reference.clone()
        } else {
            format!("{} (v{served})", self.reference)
        }
    }
}

impl fmt::Display for SentimentBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "models:/{}", self.reference)
    }
}

impl FromStr for SentimentBinding {
    type Err = BindingError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let refuse = |reason: &str| BindingError {
            uri: uri.to_string(),
            reason: reason.to_string(),
        };
        let rest = uri
            .trim()
            .strip_prefix("models:/")
            .ok_or_else(|| refuse("expected models:/NAME@ALIAS or models:/NAME/VERSION"))?;
        let valid_name = |name: &str| {
            !name.is_empty() && !name.contains(['/', '@']) && !name.chars().any(char::is_whitespace)
        };
        let (model, selector) = if let Some((name, alias)) = rest.split_once('@') {
            if alias != cerulean_serving::registry_source::DEFAULT_ALIAS {
                return Err(refuse(&format!(
                    "only the alias '{}' can be bound: it is the version the server answers \
                     /v2/models/NAME with (name a version instead: models:/NAME/VERSION)",
                    cerulean_serving::registry_source::DEFAULT_ALIAS
                )));
            }
            (name, Selector::Alias(alias.to_string()))
        } else if let Some((name, version)) = rest.split_once('/') {
            let version = version
                .parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| refuse("the version must be a positive integer"))?;
            (name, Selector::Version(version))
        } else {
            return Err(refuse("name an alias or a version: models:/NAME@champion"));
        };
        if !valid_name(model) {
            return Err(refuse(
                "the model name is empty or holds '/', '@' or spaces",
            ));
        }
        let reference = match &selector {
            Selector::Alias(a) => format!("{model}@{a}"),
            Selector::Version(v) => format!("{model}/{v}"),
        };
        Ok(SentimentBinding {
            model: model.to_string(),
            selector,
            reference,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliases_and_versions() {
        let b: SentimentBinding = "models:/my-sentiment@champion".parse().unwrap();
        assert_eq!(b.model, "my-sentiment");
        assert_eq!(b.version(), None);
        assert_eq!(b.model_version("3"), "my-sentiment@champion (v3)");
        let b: SentimentBinding = "models:/s/4".parse().unwrap();
        assert_eq!(b.version().as_deref(), Some("4"));
        assert_eq!(b.to_string(), "models:/s/4");
        for bad in [
            "my-sentiment",
            "models:/x@staging",
            "models:/@champion",
            "models:/x/0",
        ] {
            assert!(bad.parse::<SentimentBinding>().is_err(), "{bad}");
        }
    }
}
