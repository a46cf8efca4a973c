//! `cerulean models pull|list`.

use std::process::ExitCode;

use anyhow::Context;
use cerulean_models::{EntryStatus, ModelStore, ProgressMode, PullOptions};
use clap::Subcommand;

/// The `models` subcommands.
#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Fetch prebuilt models (all of them when no name is given), verify their sha256 and install
    /// them under $CERULEAN_HOME/models. Files already present and intact are not fetched again.
    Pull {
        /// Entries of models/manifest.toml to fetch.
        names: Vec<String>,
        /// Fetch again even when the files are present and intact.
        #[arg(long)]
        force: bool,
        /// Print plain lines instead of a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Show every manifest entry, whether it is installed, and its licences.
    List,
    /// List a registered model's versions, with their stages, aliases and runs.
    Versions {
        /// The registered model.
        name: String,
        #[command(flatten)]
        target: crate::registry_cli::RegistryTarget,
    },
}

/// Runs a `models` subcommand.
pub fn run(command: ModelsCommand) -> ExitCode {
    let store = ModelStore::from_env();
    let result = match command {
        ModelsCommand::Versions { name, target } => {
            return crate::block_on(
                async move { crate::registry_cli::versions(&name, &target).await },
            );
        }
        ModelsCommand::Pull {
            names,
            force,
            no_progress,
        } => pull(&store, &names, force, no_progress),
        ModelsCommand::List => {
            list(&store);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Fetches the named entries (all when `names` is empty).
pub fn pull(
    store: &ModelStore,
    names: &[String],
    force: bool,
    no_progress: bool,
) -> anyhow::Result<()> {
    let entries = store.manifest().select(names)?;
    let options = PullOptions {
        progress: if no_progress {
            ProgressMode::Lines
        } else {
            ProgressMode::Auto
        },
        force,
    };
    let reports = store
        .pull(&entries, &options)
        .with_context(|| format!("pulling into {}", store.models_dir().display()))?;
    for report in reports {
        let state = if report.up_to_date() {
            "already present"
        } else {
            "installed"
        };
        println!("{:<24} {state}", report.name);
    }
    Ok(())
}

fn list(store: &ModelStore) {
    println!("models in {}", store.models_dir().display());
    println!(
        "{:<24} {:<9} {:<10} {:<28} LICENCE (model / package)",
        "NAME", "KIND", "STATE", "PACKAGE"
    );
    for (entry, status) in store.list() {
        let state = match status {
            EntryStatus::Installed => "installed".to_string(),
            EntryStatus::Missing => "missing".to_string(),
            EntryStatus::Corrupt { file } => format!("corrupt ({})", file.display()),
        };
        println!(
            "{:<24} {:<9} {:<10} {:<28} {} / {}",
            entry.name,
            format!("{:?}", entry.kind).to_lowercase(),
            state,
            entry.requirement(),
            entry.licence,
            entry.package_licence
        );
    }
}
