//! Secrets and confirmations for `signerctl key import` and `key delete`, from files and the
//! terminal.
//!
//! Owns: reading a raw secret file into the 32 bytes the cluster expects (0x-hex, or
//! `BLS_SIGNING_KEY~…` for espresso), reading an EIP-2335 keystore and its password (from a
//! file, or asked on the terminal without echo — never from the command line, where other users
//! and shell history would see it), and asking to confirm a deletion.
//! Must not: talk to the cluster, or print a secret or a password (errors name the file and
//! what is wrong, never its content).
//!
//! To ensure correctness:
//! - secrets and passwords are read into zeroizing buffers and handed over as
//!   [`ImportSecret`], which cannot be printed or cloned;
//! - nothing is asked unless standard input is a terminal, so a script never hangs on a prompt.

use signer_client::ImportSecret;
use signer_core::protection::Profile;
use signer_core::scheme::{bls12_381, bn254};
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use zeroize::Zeroizing;

/// The 32-byte secret of a `--raw-secret-file`: 0x-hex (big-endian for eth2, little-endian
/// for espresso) or, for espresso, `BLS_SIGNING_KEY~…`. Checked locally so that a wrong file is
/// reported before anything is sent.
pub fn raw_secret(path: &Path, profile: Profile) -> Result<ImportSecret, String> {
    let text = read_secret_text(path)?;
    let text = text.trim();
    let shown = path.display();
    if text.starts_with(bn254::TAG_SIGNING_KEY) {
        if profile != Profile::Espresso {
            return Err(format!(
                "{shown}: holds an espresso (BN254) BLS_SIGNING_KEY~ secret; use --profile espresso"
            ));
        }
        let key = bn254::SecretKey::from_tagged(text).map_err(|e| format!("{shown}: {e}"))?;
        return Ok(ImportSecret::Raw(Zeroizing::new(
            key.to_le_bytes().to_vec(),
        )));
    }
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let bytes = Zeroizing::new(hex::decode(digits).map_err(|_| {
        format!(
            "{shown}: expected the 32-byte secret as 0x-hex{}",
            if profile == Profile::Espresso {
                " or BLS_SIGNING_KEY~…"
            } else {
                ""
            }
        )
    })?);
    if bytes.len() != 32 {
        return Err(format!(
            "{shown}: holds {} bytes of hex; a secret is 32 bytes",
            bytes.len()
        ));
    }
    let valid = match profile {
        Profile::Eth2 => bls12_381::SecretKey::from_bytes(&bytes).map(drop),
        Profile::Espresso => bn254::SecretKey::from_le_bytes(&bytes).map(drop),
    };
    valid.map_err(|e| format!("{shown}: not a {profile} secret: {e}"))?;
    Ok(ImportSecret::Raw(bytes))
}

/// An EIP-2335 keystore and its password: from `password_file` (one trailing newline dropped),
/// else asked on the terminal without echo.
pub fn keystore(path: &Path, password_file: Option<&Path>) -> Result<ImportSecret, String> {
    let json = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let password = match password_file {
        Some(file) => {
            let mut text = read_secret_text(file)?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            text
        }
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(
                    "the keystore password comes from --password-file FILE, or is asked on a \
                     terminal; standard input is not a terminal"
                        .into(),
                );
            }
            let prompt = format!("Password of keystore {}: ", path.display());
            Zeroizing::new(
                rpassword::prompt_password(prompt)
                    .map_err(|e| format!("reading the password from the terminal: {e}"))?,
            )
        }
    };
    Ok(ImportSecret::Keystore { json, password })
}

/// Ask on the terminal to confirm deleting `key_id` (the answer must be the key id).
/// `Ok(false)` when the answer is something else; `Err` when there is no terminal to ask on.
pub fn confirm_delete(key_id: &str) -> Result<bool, String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(format!(
            "deleting {key_id:?} is permanent and is confirmed on a terminal; standard input is \
             not one: pass --yes to delete without asking"
        ));
    }
    eprint!(
        "Delete key {key_id:?}? It will never sign again, and its id and public key stay taken.\n\
         Type the key id to confirm: "
    );
    let mut answer = String::new();
    stdin
        .read_line(&mut answer)
        .map_err(|e| format!("reading the confirmation: {e}"))?;
    Ok(answer.trim() == key_id)
}

/// Read a file holding a secret or a password, warning when others may read it.
fn read_secret_text(path: &Path) -> Result<Zeroizing<String>, String> {
    let shown = path.display();
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!("warning: {shown} has mode {mode:o}: others may read it; chmod 600 it");
        }
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?);
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("{shown}: not UTF-8 text"))?;
    Ok(Zeroizing::new(text.to_owned()))
}
