//! EIP-2335 keystore decryption (JSON keystore version 4): how Ethereum validator keys made by
//! deposit and wallet tools are imported.
//!
//! Owns: strict parsing of the keystore JSON, password normalization (NFKD, then C0, C1 and
//! DEL stripped, then UTF-8), the scrypt / PBKDF2-HMAC-SHA256 key derivation with resource
//! limits, the SHA-256 checksum and AES-128-CTR decryption of the BLS12-381 secret key.
//!
//! Must not: do IO (callers read the file and the password), keep, log or re-seal the key
//! (sealing is [`crate::custody`]), or write keystores.
//!
//! To ensure correctness:
//! - Every field is checked before any key derivation runs. Unknown and duplicate fields are
//!   refused at every level, and every error names the field (`crypto.kdf.params.salt`).
//!   `description` (spec) and `name` (written by some wallet tools) are accepted and ignored.
//! - KDF parameters are bounded before the KDF runs ([`MAX_SCRYPT_LOG_N`],
//!   [`MAX_SCRYPT_MEMORY`], [`MAX_SCRYPT_WORK`], [`MAX_PBKDF2_ROUNDS`]), so a hostile file
//!   cannot make an import take minutes or gigabytes. `dklen` must be 32.
//! - The checksum is compared in constant time before the cipher runs. A mismatch is one
//!   error, [`KeystoreError::WrongPassword`], whether the password or the ciphertext is wrong.
//! - The plaintext must be a valid BLS12-381 scalar and its public key must equal `pubkey`
//!   when the keystore has one.
//! - The normalized password, the derived key and the plaintext live only in `Zeroizing`
//!   buffers; errors carry field names and reasons, never bytes derived from the password or
//!   the key. [`DecryptedKeystore`] is not `Clone` and its `Debug` redacts the secret.
//!
//! The keystore format and the test vectors below are from EIP-2335 (CC0).

use crate::scheme::bls12_381::{PublicKey, SecretKey};
use crate::scheme::SchemeError;
use aes::cipher::{KeyIvInit, StreamCipher};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, Zeroizing};

/// Largest accepted scrypt `n`, as a power of two (`n <= 2^20`).
pub const MAX_SCRYPT_LOG_N: u32 = 20;
/// Largest accepted scrypt memory, `128 * n * r` bytes (1 GiB).
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
/// Largest accepted scrypt work, `n * r * p` (4x the EIP-2335 default of `2^18 * 8 * 1`).
pub const MAX_SCRYPT_WORK: u64 = 1 << 23;
/// Largest accepted PBKDF2 iteration count.
pub const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;
/// Largest accepted KDF salt, in bytes.
const MAX_SALT_LEN: usize = 1024;
/// The only derived-key length accepted: 16 bytes of AES key, 16 bytes of checksum key.
const DKLEN: u64 = 32;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Why a keystore could not be decrypted. Never contains password- or key-derived bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeystoreError {
    /// The input is not JSON, or has a duplicate field.
    #[error("keystore is not valid JSON: {0}")]
    Json(String),
    /// A field is missing, unknown, of the wrong type or has a malformed value.
    #[error("keystore field `{field}`: {reason}")]
    Malformed {
        /// Dotted path of the field, e.g. `crypto.cipher.params.iv`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The keystore is not version 4.
    #[error("keystore `version` is {found}; only version 4 (EIP-2335) is supported")]
    UnsupportedVersion {
        /// The version found.
        found: u64,
    },
    /// A module names a function this implementation does not support.
    #[error("keystore field `{field}`: unsupported function `{found}` (expected {expected})")]
    UnsupportedFunction {
        /// Dotted path of the field, e.g. `crypto.kdf.function`.
        field: &'static str,
        /// The value found (truncated).
        found: String,
        /// What is supported.
        expected: &'static str,
    },
    /// KDF parameters are valid but too expensive to run here.
    #[error("keystore field `{field}`: {reason}; refusing to derive a key with these parameters")]
    ExcessiveKdfParams {
        /// Dotted path of the offending parameter.
        field: &'static str,
        /// The bound that was exceeded.
        reason: String,
    },
    /// The checksum did not match: the password is wrong or the keystore was altered.
    #[error("wrong password or corrupted keystore")]
    WrongPassword,
    /// The decrypted secret is not a valid BLS12-381 secret key.
    #[error("decrypted secret is not a valid BLS12-381 key: {0}")]
    InvalidSecret(SchemeError),
    /// The decrypted key's public key differs from the keystore's `pubkey`.
    #[error("keystore `pubkey` is {stored} but the decrypted key's public key is {derived}")]
    PubkeyMismatch {
        /// The keystore's `pubkey`, 0x-hex.
        stored: String,
        /// The public key of the decrypted secret, 0x-hex.
        derived: String,
    },
    /// A primitive refused its input (cannot happen with checked parameters).
    #[error("keystore decryption failed in {0}")]
    Crypto(&'static str),
}

/// A decrypted EIP-2335 keystore. Not `Clone`; `Debug` redacts the secret.
pub struct DecryptedKeystore {
    /// The BLS12-381 secret key, a 32-byte big-endian scalar.
    pub secret: Zeroizing<[u8; 32]>,
    /// The compressed public key of `secret` (equal to the keystore's `pubkey` when present).
    pub pubkey: [u8; 48],
    /// The EIP-2334 derivation path, `""` when unknown.
    pub path: String,
    /// The keystore's UUID.
    pub uuid: String,
}

impl std::fmt::Debug for DecryptedKeystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptedKeystore")
            .field("secret", &"<redacted>")
            .field("pubkey", &format_args!("0x{}", hex::encode(self.pubkey)))
            .field("path", &self.path)
            .field("uuid", &self.uuid)
            .finish()
    }
}

/// Decrypt an EIP-2335 keystore with `password`.
pub fn decrypt(keystore_json: &str, password: &str) -> Result<DecryptedKeystore, KeystoreError> {
    let keystore = parse(keystore_json)?;
    let password = normalize_password(password);
    let dk = derive_key(&keystore.kdf, &password)?;
    drop(password);

    let checksum = Sha256::new()
        .chain_update(&dk[16..])
        .chain_update(keystore.cipher_message)
        .finalize();
    if !bool::from(checksum.as_slice().ct_eq(&keystore.checksum)) {
        return Err(KeystoreError::WrongPassword);
    }

    let mut secret = Zeroizing::new(keystore.cipher_message);
    let mut cipher = Aes128Ctr::new_from_slices(&dk[..16], &keystore.iv)
        .map_err(|_| KeystoreError::Crypto("aes-128-ctr"))?;
    cipher
        .try_apply_keystream(secret.as_mut())
        .map_err(|_| KeystoreError::Crypto("aes-128-ctr"))?;
    drop(cipher);
    drop(dk);

    let derived = SecretKey::from_bytes(secret.as_ref())
        .map_err(KeystoreError::InvalidSecret)?
        .public_key()
        .to_bytes();
    if let Some(stored) = keystore.pubkey {
        if stored != derived {
            return Err(KeystoreError::PubkeyMismatch {
                stored: format!("0x{}", hex::encode(stored)),
                derived: format!("0x{}", hex::encode(derived)),
            });
        }
    }
    Ok(DecryptedKeystore {
        secret,
        pubkey: derived,
        path: keystore.path,
        uuid: keystore.uuid,
    })
}

/// EIP-2335 password processing: NFKD, strip C0 (`0x00..=0x1F`), DEL (`0x7F`) and C1
/// (`0x80..=0x9F`), then UTF-8. Space is kept. The output is sized up front so the buffer
/// never reallocates (which would leave an unzeroized copy behind).
fn normalize_password(password: &str) -> Zeroizing<Vec<u8>> {
    let kept = || password.nfkd().filter(|c| !is_control(*c));
    let len = kept().map(char::len_utf8).sum();
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    let mut buf = [0u8; 4];
    for c in kept() {
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    buf.zeroize();
    out
}

fn is_control(c: char) -> bool {
    matches!(c, '\u{00}'..='\u{1F}' | '\u{7F}'..='\u{9F}')
}

/// The key-derivation function and its checked parameters.
#[derive(Debug, PartialEq, Eq)]
enum Kdf {
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: Vec<u8>,
    },
    Pbkdf2 {
        rounds: u32,
        salt: Vec<u8>,
    },
}

fn derive_key(kdf: &Kdf, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let mut dk = Zeroizing::new([0u8; 32]);
    match kdf {
        Kdf::Scrypt { log_n, r, p, salt } => {
            let params = scrypt::Params::new(*log_n, *r, *p)
                .map_err(|_| KeystoreError::Crypto("scrypt parameters"))?;
            scrypt::scrypt(password, salt, &params, dk.as_mut())
                .map_err(|_| KeystoreError::Crypto("scrypt"))?;
        }
        Kdf::Pbkdf2 { rounds, salt } => {
            pbkdf2::pbkdf2::<pbkdf2::hmac::Hmac<pbkdf2::sha2::Sha256>>(
                password,
                salt,
                *rounds,
                dk.as_mut(),
            )
            .map_err(|_| KeystoreError::Crypto("pbkdf2"))?;
        }
    }
    Ok(dk)
}

/// A parsed keystore: everything public, nothing derived from the password.
#[derive(Debug, PartialEq, Eq)]
struct Keystore {
    kdf: Kdf,
    checksum: [u8; 32],
    iv: [u8; 16],
    cipher_message: [u8; 32],
    pubkey: Option<[u8; 48]>,
    path: String,
    uuid: String,
}

fn parse(json: &str) -> Result<Keystore, KeystoreError> {
    serde_json::from_str::<NoDuplicates>(json).map_err(|e| KeystoreError::Json(e.to_string()))?;
    let root: Value = serde_json::from_str(json).map_err(|e| KeystoreError::Json(e.to_string()))?;
    let root = as_object(&root, "(root)")?;
    only_fields(
        root,
        "",
        &[
            "crypto",
            "description",
            "name",
            "pubkey",
            "path",
            "uuid",
            "version",
        ],
    )?;

    let version = uint(root, "", "version")?;
    if version != 4 {
        return Err(KeystoreError::UnsupportedVersion { found: version });
    }
    for optional in ["description", "name"] {
        if root.contains_key(optional) {
            string(root, "", optional)?;
        }
    }
    let path = string(root, "", "path")?.to_owned();
    let uuid = string(root, "", "uuid")?;
    if !is_uuid(uuid) {
        return Err(malformed("uuid", "expected a hyphenated RFC 4122 UUID"));
    }
    let pubkey = match root.get("pubkey") {
        None => None,
        Some(_) => {
            let bytes: [u8; 48] = hex_array(root, "", "pubkey")?;
            PublicKey::from_bytes(&bytes)
                .map_err(|_| malformed("pubkey", "not a valid BLS12-381 public key"))?;
            Some(bytes)
        }
    };

    let crypto = as_object(field(root, "", "crypto")?, "crypto")?;
    only_fields(crypto, "crypto", &["kdf", "checksum", "cipher"])?;
    let (kdf_module, kdf_fn, kdf_params) = module(crypto, "kdf")?;
    if !string(kdf_module, "crypto.kdf", "message")?.is_empty() {
        return Err(malformed("crypto.kdf.message", "expected an empty string"));
    }
    let kdf = match kdf_fn {
        "scrypt" => parse_scrypt(kdf_params)?,
        "pbkdf2" => parse_pbkdf2(kdf_params)?,
        other => {
            return Err(unsupported(
                "crypto.kdf.function",
                other,
                "scrypt or pbkdf2",
            ))
        }
    };

    let (checksum_module, checksum_fn, checksum_params) = module(crypto, "checksum")?;
    if checksum_fn != "sha256" {
        return Err(unsupported(
            "crypto.checksum.function",
            checksum_fn,
            "sha256",
        ));
    }
    only_fields(checksum_params, "crypto.checksum.params", &[])?;
    let checksum = hex_array(checksum_module, "crypto.checksum", "message")?;

    let (cipher_module, cipher_fn, cipher_params) = module(crypto, "cipher")?;
    if cipher_fn != "aes-128-ctr" {
        return Err(unsupported(
            "crypto.cipher.function",
            cipher_fn,
            "aes-128-ctr",
        ));
    }
    only_fields(cipher_params, "crypto.cipher.params", &["iv"])?;
    let iv = hex_array(cipher_params, "crypto.cipher.params", "iv")?;
    let cipher_message = hex_array(cipher_module, "crypto.cipher", "message")?;

    Ok(Keystore {
        kdf,
        checksum,
        iv,
        cipher_message,
        pubkey,
        path,
        uuid: uuid.to_owned(),
    })
}

/// A module object, its `function` and its `params`.
type Module<'a> = (&'a Map<String, Value>, &'a str, &'a Map<String, Value>);

/// Check a `crypto.<name>` module's shape (`function`, `params`, `message` and nothing else).
fn module<'a>(
    crypto: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Module<'a>, KeystoreError> {
    let path = match name {
        "kdf" => "crypto.kdf",
        "checksum" => "crypto.checksum",
        _ => "crypto.cipher",
    };
    let module = as_object(field(crypto, "crypto", name)?, path)?;
    only_fields(module, path, &["function", "params", "message"])?;
    let function = string(module, path, "function")?;
    let params = as_object(field(module, path, "params")?, &format!("{path}.params"))?;
    string(module, path, "message")?;
    Ok((module, function, params))
}

fn parse_scrypt(params: &Map<String, Value>) -> Result<Kdf, KeystoreError> {
    const P: &str = "crypto.kdf.params";
    only_fields(params, P, &["dklen", "n", "r", "p", "salt"])?;
    check_dklen(params)?;
    let n = uint(params, P, "n")?;
    if n < 2 || !n.is_power_of_two() {
        return Err(malformed(
            "crypto.kdf.params.n",
            "must be a power of two, at least 2",
        ));
    }
    let r = uint(params, P, "r")?;
    let p = uint(params, P, "p")?;
    if r == 0 || p == 0 {
        let name = if r == 0 { "r" } else { "p" };
        return Err(malformed(&format!("{P}.{name}"), "must be at least 1"));
    }
    let log_n = n.trailing_zeros();
    if log_n > MAX_SCRYPT_LOG_N {
        return Err(excessive(
            "crypto.kdf.params.n",
            format!("n = {n} exceeds 2^{MAX_SCRYPT_LOG_N}"),
        ));
    }
    // n <= 2^20 here, so the products below cannot overflow unless r or p are huge: check.
    let memory = r.checked_mul(128 * n).filter(|m| *m <= MAX_SCRYPT_MEMORY);
    if memory.is_none() {
        return Err(excessive(
            "crypto.kdf.params.r",
            format!("128 * n * r exceeds {} MiB", MAX_SCRYPT_MEMORY >> 20),
        ));
    }
    let work = n.checked_mul(r).and_then(|nr| nr.checked_mul(p));
    if work.is_none_or(|w| w > MAX_SCRYPT_WORK) {
        return Err(excessive(
            "crypto.kdf.params.p",
            format!("n * r * p exceeds 2^{}", MAX_SCRYPT_WORK.trailing_zeros()),
        ));
    }
    let to_u32 = |v: u64, name: &str| {
        u32::try_from(v).map_err(|_| malformed(&format!("{P}.{name}"), "out of range"))
    };
    Ok(Kdf::Scrypt {
        log_n: u8::try_from(log_n).map_err(|_| malformed("crypto.kdf.params.n", "out of range"))?,
        r: to_u32(r, "r")?,
        p: to_u32(p, "p")?,
        salt: salt(params)?,
    })
}

fn parse_pbkdf2(params: &Map<String, Value>) -> Result<Kdf, KeystoreError> {
    const P: &str = "crypto.kdf.params";
    only_fields(params, P, &["dklen", "c", "prf", "salt"])?;
    check_dklen(params)?;
    let prf = string(params, P, "prf")?;
    if prf != "hmac-sha256" {
        return Err(unsupported("crypto.kdf.params.prf", prf, "hmac-sha256"));
    }
    let c = uint(params, P, "c")?;
    if c == 0 {
        return Err(malformed("crypto.kdf.params.c", "must be at least 1"));
    }
    if c > MAX_PBKDF2_ROUNDS {
        return Err(excessive(
            "crypto.kdf.params.c",
            format!("c = {c} exceeds {MAX_PBKDF2_ROUNDS}"),
        ));
    }
    Ok(Kdf::Pbkdf2 {
        rounds: u32::try_from(c).map_err(|_| malformed("crypto.kdf.params.c", "out of range"))?,
        salt: salt(params)?,
    })
}

fn check_dklen(params: &Map<String, Value>) -> Result<(), KeystoreError> {
    if uint(params, "crypto.kdf.params", "dklen")? != DKLEN {
        return Err(malformed("crypto.kdf.params.dklen", "must be 32"));
    }
    Ok(())
}

fn salt(params: &Map<String, Value>) -> Result<Vec<u8>, KeystoreError> {
    let salt = hex_bytes(params, "crypto.kdf.params", "salt")?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(malformed(
            "crypto.kdf.params.salt",
            &format!("must be 1 to {MAX_SALT_LEN} bytes"),
        ));
    }
    Ok(salt)
}

// --- JSON helpers: every error names the dotted path of the field. ---

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn malformed(field: &str, reason: &str) -> KeystoreError {
    KeystoreError::Malformed {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

fn unsupported(field: &'static str, found: &str, expected: &'static str) -> KeystoreError {
    KeystoreError::UnsupportedFunction {
        field,
        found: found.chars().take(64).collect(),
        expected,
    }
}

fn excessive(field: &'static str, reason: String) -> KeystoreError {
    KeystoreError::ExcessiveKdfParams { field, reason }
}

fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, KeystoreError> {
    value
        .as_object()
        .ok_or_else(|| malformed(path, "expected a JSON object"))
}

fn only_fields(
    map: &Map<String, Value>,
    parent: &str,
    allowed: &[&str],
) -> Result<(), KeystoreError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => {
            let name: String = unknown.chars().take(64).collect();
            Err(malformed(&join(parent, &name), "unknown field"))
        }
        None => Ok(()),
    }
}

fn field<'a>(
    map: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<&'a Value, KeystoreError> {
    map.get(key)
        .ok_or_else(|| malformed(&join(parent, key), "missing"))
}

fn string<'a>(
    map: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<&'a str, KeystoreError> {
    field(map, parent, key)?
        .as_str()
        .ok_or_else(|| malformed(&join(parent, key), "expected a string"))
}

fn uint(map: &Map<String, Value>, parent: &str, key: &str) -> Result<u64, KeystoreError> {
    field(map, parent, key)?
        .as_u64()
        .ok_or_else(|| malformed(&join(parent, key), "expected a non-negative integer"))
}

fn hex_bytes(map: &Map<String, Value>, parent: &str, key: &str) -> Result<Vec<u8>, KeystoreError> {
    let text = string(map, parent, key)?;
    hex::decode(text).map_err(|_| malformed(&join(parent, key), "expected hex without a 0x prefix"))
}

fn hex_array<const N: usize>(
    map: &Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<[u8; N], KeystoreError> {
    let bytes = hex_bytes(map, parent, key)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        malformed(
            &join(parent, key),
            &format!("expected {N} bytes, found {}", bytes.len()),
        )
    })
}

/// Hyphenated RFC 4122 form: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A deserialization pass that accepts any JSON but refuses an object with a repeated key
/// (`serde_json::Value` would silently keep the last one).
struct NoDuplicates;

impl<'de> serde::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<NoDuplicates>()?;
            if seen.contains(&key) {
                let name: String = key.chars().take(64).collect();
                return Err(serde::de::Error::custom(format!(
                    "duplicate field `{name}`"
                )));
            }
            seen.insert(key);
        }
        Ok(NoDuplicates)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
