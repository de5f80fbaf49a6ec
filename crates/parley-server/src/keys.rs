//! `parley secret-key rotate`: re-seal every stored secret (account auth tokens, API key
//! secrets, push credential secrets) under a new server key.
//!
//! The walk is backend-neutral ([`parley_core::store::SecretStore`]): each secret is read, opened
//! with any key still accepted (the current one and the earlier ones of a rotation in progress),
//! sealed with the new key and written back with a compare-and-set in its own short
//! transaction, so a running server keeps serving and a concurrent change (e.g. `account
//! rotate-token`) is never overwritten: the walk is repeated until a pass finds nothing left.
//!
//! Which key is the target:
//! * `--new-key-file F`: the key in F; if F does not exist, a new key is generated and written
//!   there (mode 0600) before anything is re-sealed;
//! * otherwise, while a rotation is in progress (earlier keys are loaded), the current key: the
//!   command finishes that rotation;
//! * otherwise a freshly generated key.
//!
//! With a SQLite key file (`<database>.key`), the new key replaces the key file before
//! re-sealing and the old key moves to `<database>.key.previous`, so an interrupted run loses
//! nothing (the server and a second run open both); the `.previous` file is deleted once every
//! secret is re-sealed. With `PARLEY_SECRET_KEY` the operator installs the new key (printed, or
//! in F) themselves.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use parley_core::crypto::SecretBox;
use parley_core::store::{SecretKind, Store};

use crate::config::DbConfig;
use crate::db::{self, KeySource};

/// Secrets read per page of the walk.
const PAGE: u32 = 200;
/// Passes over every secret at most (each later pass only re-seals what changed meanwhile).
const MAX_PASSES: u32 = 10;

/// What one walk did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResealCounts {
    /// Secrets re-sealed under the new key.
    pub resealed: u64,
    /// Secrets already sealed with the new key.
    pub current: u64,
    /// Empty values (credentials without secrets).
    pub empty: u64,
    /// Secrets that changed between read and write (retried by the next pass).
    pub raced: u64,
}

/// Re-seal every secret not yet sealed with `keys`' current key, opening it with `keys` (the
/// new key with the earlier ones as previous keys). Repeats until a pass re-seals nothing.
/// Fails when a secret opens with none of the keys (nothing is lost: it is left as it was).
pub async fn reseal_all(store: &dyn Store, keys: &SecretBox) -> anyhow::Result<ResealCounts> {
    let mut total = ResealCounts::default();
    for pass in 1..=MAX_PASSES {
        let counts = reseal_pass(store, keys).await?;
        total.resealed += counts.resealed;
        total.raced += counts.raced;
        if pass == 1 {
            total.current = counts.current;
            total.empty = counts.empty;
        }
        tracing::info!(
            pass,
            resealed = counts.resealed,
            raced = counts.raced,
            "re-seal pass"
        );
        if counts.resealed == 0 && counts.raced == 0 {
            return Ok(total);
        }
    }
    bail!("secrets kept changing during {MAX_PASSES} passes; run the command again")
}

async fn reseal_pass(store: &dyn Store, keys: &SecretBox) -> anyhow::Result<ResealCounts> {
    let mut counts = ResealCounts::default();
    let mut unreadable: Vec<String> = Vec::new();
    for kind in SecretKind::ALL {
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_sealed_secrets(kind, after.as_deref(), PAGE)
                .await
                .with_context(|| format!("cannot list the stored {}s", kind.as_str()))?;
            let done = page.len() < PAGE as usize;
            for secret in &page {
                if secret.sealed.is_empty() {
                    counts.empty += 1;
                    continue;
                }
                if keys.is_sealed_with_current_key(&secret.sealed) {
                    counts.current += 1;
                    continue;
                }
                let Ok(plain) = keys.open(&secret.sealed) else {
                    unreadable.push(format!("{} of {}", kind.as_str(), secret.sid));
                    continue;
                };
                let resealed = keys.seal(&plain);
                let replaced = store
                    .replace_sealed_secret(kind, &secret.sid, &secret.sealed, &resealed)
                    .await
                    .with_context(|| {
                        format!("cannot store the {} of {}", kind.as_str(), secret.sid)
                    })?;
                if replaced {
                    counts.resealed += 1;
                } else {
                    counts.raced += 1;
                }
            }
            after = page.last().map(|s| s.sid.clone());
            if done {
                break;
            }
        }
    }
    if !unreadable.is_empty() {
        bail!(
            "{} secret(s) open with none of the known keys (current key {}, earlier keys [{}]); \
             they were left as they were: {}. Give the key they were sealed with in \
             PARLEY_SECRET_KEY_PREVIOUS and run the command again",
            unreadable.len(),
            keys.key_id(),
            keys.previous_key_ids().join(", "),
            unreadable.join(", ")
        );
    }
    Ok(counts)
}

/// Every stored secret that `key` (alone) cannot open: empty after a complete rotation.
pub async fn unopenable_with(store: &dyn Store, key: &SecretBox) -> anyhow::Result<Vec<String>> {
    let key = key.clone().without_previous();
    let mut bad = Vec::new();
    for kind in SecretKind::ALL {
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_sealed_secrets(kind, after.as_deref(), PAGE)
                .await
                .with_context(|| format!("cannot list the stored {}s", kind.as_str()))?;
            for secret in &page {
                if !secret.sealed.is_empty() && key.open(&secret.sealed).is_err() {
                    bad.push(format!("{} of {}", kind.as_str(), secret.sid));
                }
            }
            let done = page.len() < PAGE as usize;
            after = page.last().map(|s| s.sid.clone());
            if done {
                break;
            }
        }
    }
    Ok(bad)
}

/// What `parley secret-key rotate` did.
#[derive(Debug)]
pub struct Rotation {
    /// Key id of the new key.
    pub new_key_id: String,
    /// Key ids of the keys the secrets were sealed with before (that no longer open anything).
    pub old_key_ids: Vec<String>,
    /// The walk's figures.
    pub counts: ResealCounts,
    /// Where the old key came from.
    pub source: KeySource,
    /// The new key, when the operator must install it and it was written nowhere.
    pub print_key: Option<String>,
    /// The file holding the new key, if any.
    pub new_key_file: Option<PathBuf>,
    /// Only the key was installed (`--stage`); nothing was re-sealed.
    pub staged: bool,
}

/// `parley secret-key rotate [--new-key-file F] [--stage]`.
///
/// `show_new_key` receives a generated key that is written nowhere (`PARLEY_SECRET_KEY` and no
/// `--new-key-file`) before anything is re-sealed; if it fails, nothing changes.
pub async fn rotate(
    db_config: &DbConfig,
    new_key_file: Option<&Path>,
    stage: bool,
    show_new_key: impl FnOnce(&str) -> anyhow::Result<()>,
) -> anyhow::Result<Rotation> {
    if let Some(path) = db_config.database_url.sqlite_path() {
        if !path.is_file() {
            bail!(
                "there is no SQLite database at {} (check --database-url / --data-dir)",
                path.display()
            );
        }
    }
    let store = db::open_store(&db_config.database_url).await?;
    let (current, source) = db::load_keys(db_config, store.as_ref()).await?;
    if source == KeySource::Ephemeral {
        bail!("an in-memory database has no stored key to rotate");
    }

    // The target key.
    let (new_key, new_hex, generated) = match new_key_file {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the new key file {}", path.display()))?;
            let key = SecretBox::from_hex(&text)
                .with_context(|| format!("invalid new key file {}", path.display()))?;
            (key, text.trim().to_owned(), false)
        }
        Some(path) => {
            let hex = SecretBox::generate_hex();
            write_new_file(path, &hex)?;
            (SecretBox::from_hex(&hex)?, hex, true)
        }
        None if !current.previous_key_ids().is_empty() => {
            // Finish the rotation in progress: the target is the current key.
            let hex = match &source {
                KeySource::KeyFile(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read key file {}", path.display()))?
                    .trim()
                    .to_owned(),
                _ => String::new(),
            };
            (current.clone().without_previous(), hex, false)
        }
        None => {
            let hex = SecretBox::generate_hex();
            (SecretBox::from_hex(&hex)?, hex, true)
        }
    };
    let mut old_keys: Vec<String> = Vec::new();
    if current.key_id() != new_key.key_id() {
        old_keys.push(current.key_id());
    }
    old_keys.extend(
        current
            .previous_key_ids()
            .into_iter()
            .filter(|id| *id != new_key.key_id()),
    );

    // With a key file, install the new key before re-sealing anything.
    if let KeySource::KeyFile(key_path) = &source {
        if current.key_id() != new_key.key_id() {
            if new_hex.is_empty() {
                bail!("the new key is unknown: give it with --new-key-file");
            }
            let old_hex = std::fs::read_to_string(key_path)
                .with_context(|| format!("cannot read key file {}", key_path.display()))?;
            append_previous(&db::previous_key_file_path(key_path), old_hex.trim())?;
            replace_key_file(key_path, &new_hex)?;
            tracing::info!(path = %key_path.display(), key_id = %new_key.key_id(), "installed the new server key");
        }
    }

    let ring = new_key.clone().with_previous(
        std::iter::once(current.clone().without_previous())
            .chain(previous_boxes(db_config, &source)?),
    );
    let print_key = match (&source, new_key_file) {
        (KeySource::Environment, None) if generated => {
            show_new_key(&new_hex)?;
            Some(new_hex.clone())
        }
        _ => None,
    };
    if stage {
        return Ok(Rotation {
            new_key_id: new_key.key_id(),
            old_key_ids: old_keys,
            counts: ResealCounts::default(),
            source,
            print_key,
            new_key_file: new_key_file.map(Path::to_path_buf),
            staged: true,
        });
    }
    let counts = reseal_all(store.as_ref(), &ring).await?;
    let left = unopenable_with(store.as_ref(), &new_key).await?;
    if !left.is_empty() {
        bail!(
            "after re-sealing, {} secret(s) still do not open with the new key: {}",
            left.len(),
            left.join(", ")
        );
    }
    if let KeySource::KeyFile(key_path) = &source {
        let previous = db::previous_key_file_path(key_path);
        match std::fs::remove_file(&previous) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", previous.display()))
            }
        }
    }
    Ok(Rotation {
        new_key_id: new_key.key_id(),
        old_key_ids: old_keys,
        counts,
        source,
        print_key,
        new_key_file: new_key_file.map(Path::to_path_buf),
        staged: false,
    })
}

/// The earlier keys the configuration names (environment and `.key.previous`), for the ring.
fn previous_boxes(db_config: &DbConfig, source: &KeySource) -> anyhow::Result<Vec<SecretBox>> {
    let mut boxes = Vec::new();
    for key in &db_config.previous_keys {
        boxes.push(SecretBox::from_hex(key.expose())?);
    }
    if let KeySource::KeyFile(path) = source {
        boxes.extend(db::read_previous_key_file(&db::previous_key_file_path(
            path,
        ))?);
    }
    Ok(boxes)
}

fn restricted_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
}

/// Write `hex` to a new file (mode 0600); an existing file is an error.
fn write_new_file(path: &Path, hex: &str) -> anyhow::Result<()> {
    let mut options = restricted_options();
    options.create_new(true);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the new key file {}", path.display()))?;
    file.write_all(format!("{hex}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the new key file {}", path.display()))
}

/// Add `hex` as a line of the `.previous` key file (mode 0600), unless it is there already.
fn append_previous(path: &Path, hex: &str) -> anyhow::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    if existing.lines().any(|l| l.trim() == hex) {
        return Ok(());
    }
    let mut options = restricted_options();
    options.create(true).append(true);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write key file {}", path.display()))?;
    file.write_all(format!("{hex}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write key file {}", path.display()))
}

/// Replace the key file atomically (write beside it, then rename), mode 0600.
fn replace_key_file(path: &Path, hex: &str) -> anyhow::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".new");
    let temp = PathBuf::from(temp);
    let _ = std::fs::remove_file(&temp);
    write_new_file(&temp, hex)?;
    std::fs::rename(&temp, path)
        .with_context(|| format!("cannot replace key file {}", path.display()))
}
