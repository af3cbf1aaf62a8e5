//! Key files: one Ed25519 key per file, JSON, readable only by its owner. Keys are generated
//! and used locally; they never travel to a node.

use kp_crypto::SecretKey;
use kp_domain::PublicKey;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a kpledger key file: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileJson {
    algorithm: String,
    /// What the key is for, free text (e.g. "BW exporting authority").
    label: String,
    public_key: String,
    secret_seed: String,
}

/// Writes `key` to `path` with mode 0600. Refuses to overwrite unless `force`.
pub fn write(path: &Path, key: &SecretKey, label: &str, force: bool) -> Result<(), KeyFileError> {
    let p = path.display().to_string();
    if path.exists() && !force {
        return Err(KeyFileError::Exists { path: p });
    }
    let json = KeyFileJson {
        algorithm: "ed25519".into(),
        label: label.into(),
        public_key: key.public().to_hex(),
        secret_seed: hex::encode(key.to_seed()),
    };
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| KeyFileError::Invalid { path: p.clone(), reason: e.to_string() })?;
    write_private(path, text.as_bytes()).map_err(|source| KeyFileError::Io { path: p, source })
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Reads a key file and checks that its public key matches its seed.
pub fn read(path: &Path) -> Result<SecretKey, KeyFileError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io { path: p.clone(), source })?;
    let invalid = |reason: String| KeyFileError::Invalid { path: p.clone(), reason };
    let json: KeyFileJson = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    if json.algorithm != "ed25519" {
        return Err(invalid(format!("algorithm {:?} is not ed25519", json.algorithm)));
    }
    let seed: [u8; 32] = hex::decode(&json.secret_seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("secret_seed is not 64 hex digits".into()))?;
    let key = SecretKey::from_seed(&seed);
    let public = PublicKey::from_hex(&json.public_key).map_err(|e| invalid(format!("public_key: {}", e.problem)))?;
    if key.public() != public {
        return Err(invalid("public_key does not belong to secret_seed".into()));
    }
    Ok(key)
}
