//! User keys: an ed25519 signing key per user, made on the user's machine
//! and never copied elsewhere; only its public half travels.
//!
//! A key file is short text, so that a user can see what it is and an
//! operator can copy the public line into the users document:
//!
//! ```text
//! triad-user-key v1
//! # ed25519 signing key for triad. Keep it private: ...
//! secret <64 hex digits: the 32-byte ed25519 seed>
//! public <64 hex digits: its public key>
//! ```
//!
//! The public line is redundant on purpose: loading checks it against the
//! secret, which catches a damaged or hand-edited file before it signs
//! anything under an unexpected identity.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::bytes::{self, decode_hex_into, encode_hex, public_bytes};
use crate::error::{AuthError, KeyFileProblem};
use crate::fs::{file_error, write_atomic, write_new};
use crate::request::Signature;

/// First line of every key file; the version is there so that the format
/// can change without old files being misread.
const HEADER: &str = "triad-user-key v1";

/// A key file is under 300 bytes; anything much larger is not one, and is
/// refused before it is read into memory.
const KEY_FILE_BYTES_MAX: usize = 4096;

/// A user's ed25519 signing key. `Debug` shows the public key's
/// fingerprint only; the secret is zeroized when the key is dropped (by
/// `ed25519-dalek`). Deliberately not `Clone`, so that there is one copy.
pub struct UserKey {
    signing: SigningKey,
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserKey")
            .field("public", &self.public().fingerprint())
            .finish_non_exhaustive()
    }
}

impl UserKey {
    /// A fresh key from the OS generator.
    pub fn generate() -> Result<UserKey, AuthError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(AuthError::Randomness)?;
        Ok(UserKey::from_seed(&seed))
    }

    /// The key with this ed25519 seed. Crate-private: outside tests every
    /// seed comes from the OS generator or a key file.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> UserKey {
        UserKey {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The public key, which identifies the user.
    pub fn public(&self) -> UserPublicKey {
        UserPublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Reads a key file written by [`UserKey::save`]. On Unix the file must
    /// not be accessible to group or others. Errors name the file and what
    /// is wrong, never what it contains.
    pub fn load(path: &Path) -> Result<UserKey, AuthError> {
        let mut file = File::open(path).map_err(file_error(path))?;
        let metadata = file.metadata().map_err(file_error(path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(AuthError::KeyFilePermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let key_file_error = |problem| AuthError::KeyFile {
            path: path.to_path_buf(),
            problem,
        };
        if metadata.len() > KEY_FILE_BYTES_MAX as u64 {
            return Err(key_file_error(KeyFileProblem::TooLarge {
                bytes: metadata.len(),
            }));
        }
        // Capacity for the whole file up front, so the buffer never
        // reallocates and leaves an unzeroized copy of the secret behind.
        let mut text = Zeroizing::new(Vec::with_capacity(KEY_FILE_BYTES_MAX + 1));
        (&mut file)
            .take(KEY_FILE_BYTES_MAX as u64 + 1)
            .read_to_end(&mut text)
            .map_err(file_error(path))?;
        UserKey::parse(&text).map_err(key_file_error)
    }

    /// Writes the key to a new file, readable by its owner only (mode 0600
    /// on Unix). Refuses to replace an existing file, which may be another
    /// key: see [`UserKey::save_replacing`].
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        write_new(path, self.file_text().as_bytes(), true)
    }

    /// Writes the key to `path`, replacing whatever is there. The
    /// replacement is atomic: after a crash the file holds the old key or
    /// the new one.
    pub fn save_replacing(&self, path: &Path) -> Result<(), AuthError> {
        write_atomic(path, self.file_text().as_bytes(), true)
    }

    /// Signs `message` (deterministic ed25519, RFC 8032).
    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        Signature::from_bytes(self.signing.sign(message).to_bytes())
    }

    /// Signs `domain || message`. Each kind of signed document (a roles
    /// document, an approval, an audit head) has its own domain string, and
    /// no domain is a prefix of another, so that a signature on one kind
    /// can never be presented as a signature on another.
    pub fn sign_in_domain(&self, domain: &str, message: &[u8]) -> Signature {
        let mut bytes = Vec::with_capacity(domain.len() + message.len());
        bytes.extend_from_slice(domain.as_bytes());
        bytes.extend_from_slice(message);
        self.sign(&bytes)
    }

    fn file_text(&self) -> Zeroizing<String> {
        let secret = Zeroizing::new(encode_hex(self.signing.as_bytes()));
        let mut text = Zeroizing::new(String::with_capacity(256));
        text.push_str(HEADER);
        text.push_str(
            "\n# ed25519 signing key for triad. Keep it private: it never leaves \
             this machine;\n# give others the public line only.\nsecret ",
        );
        text.push_str(&secret);
        text.push_str("\npublic ");
        text.push_str(&self.public().to_string());
        text.push('\n');
        text
    }

    /// Parses the text of a key file: the header first, then one `secret`
    /// and one `public` line in any order; blank lines and lines starting
    /// with `#` are ignored, and lines may end in CRLF.
    pub(crate) fn parse(text: &[u8]) -> Result<UserKey, KeyFileProblem> {
        if text.len() > KEY_FILE_BYTES_MAX {
            return Err(KeyFileProblem::TooLarge {
                bytes: text.len() as u64,
            });
        }
        let not_a_key_file = KeyFileProblem::NotAKeyFile { expected: HEADER };
        let text = std::str::from_utf8(text).map_err(|_| not_a_key_file.clone())?;
        let mut lines = text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'));
        match lines.next() {
            Some((_, line)) if line.trim_end() == HEADER => {}
            _ => return Err(not_a_key_file),
        }
        let mut secret: Option<Zeroizing<[u8; 32]>> = None;
        let mut public: Option<UserPublicKey> = None;
        for (index, line) in lines {
            let line = line.trim_end();
            match (line.split_once(' '), &secret, &public) {
                (Some(("secret", digits)), None, _) => {
                    let mut seed = Zeroizing::new([0u8; 32]);
                    decode_hex_into(digits, seed.as_mut()).map_err(|_| KeyFileProblem::Secret)?;
                    secret = Some(seed);
                }
                (Some(("public", digits)), _, None) => {
                    let key = bytes::decode_hex(digits).map_err(KeyFileProblem::Public)?;
                    public = Some(UserPublicKey(key));
                }
                _ => return Err(KeyFileProblem::UnexpectedLine { line: index + 1 }),
            }
        }
        let secret = secret.ok_or(KeyFileProblem::MissingLine { field: "secret" })?;
        let stated = public.ok_or(KeyFileProblem::MissingLine { field: "public" })?;
        let key = UserKey::from_seed(&secret);
        let derived = key.public();
        if derived != stated {
            return Err(KeyFileProblem::PublicMismatch { stated, derived });
        }
        Ok(key)
    }
}

/// A user's ed25519 public key: 32 bytes, shown as 64 hex digits. Whether
/// the bytes are a valid key is checked when text is parsed and when a
/// signature is verified; values decoded from a request are not checked
/// until then.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserPublicKey([u8; 32]);

public_bytes!(UserPublicKey, 32);

impl UserPublicKey {
    /// A short, stable name for the key: the first 16 bytes of its BLAKE3
    /// hash in hex, as `triad-net` names certificates. Keys are public, so
    /// this may be logged.
    pub fn fingerprint(&self) -> String {
        encode_hex(&blake3::hash(&self.0).as_bytes()[..16])
    }

    /// Checks a signature made with [`UserKey::sign_in_domain`], with
    /// ed25519's strict rules (`verify_strict`).
    pub fn verify_in_domain(
        &self,
        domain: &str,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), AuthError> {
        let key = self.verifying_key()?;
        let mut bytes = Vec::with_capacity(domain.len() + message.len());
        bytes.extend_from_slice(domain.as_bytes());
        bytes.extend_from_slice(message);
        let signature = ed25519_dalek::Signature::from_bytes(signature.as_bytes());
        key.verify_strict(&bytes, &signature)
            .map_err(|_| AuthError::BadSignature { signer: *self })
    }

    /// The key as ed25519-dalek's type, refusing bytes that are not a curve
    /// point and the small-order points, under which a signature could
    /// verify for many messages.
    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, AuthError> {
        match VerifyingKey::from_bytes(&self.0) {
            Ok(key) if !key.is_weak() => Ok(key),
            _ => Err(AuthError::InvalidPublicKey { key: *self }),
        }
    }
}

impl FromStr for UserPublicKey {
    type Err = AuthError;

    /// Parses 64 hex digits and checks that they are a usable public key.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let key = bytes::decode_hex(text).map_err(|problem| AuthError::Hex {
            what: "user public key",
            problem,
        })?;
        let key = UserPublicKey(key);
        key.verifying_key()?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use proptest::prelude::*;

    use super::*;
    use crate::fs::temp_dir;

    #[test]
    fn save_and_load_round_trip_with_a_private_file() {
        let dir = temp_dir("key-round-trip");
        let path = dir.join("user.key");
        let key = UserKey::generate().unwrap();
        key.save(&path).unwrap();
        let loaded = UserKey::load(&path).unwrap();
        assert_eq!(loaded.public(), key.public());
        assert_eq!(loaded.signing.as_bytes(), key.signing.as_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn save_refuses_to_overwrite_unless_asked() {
        let dir = temp_dir("key-overwrite");
        let path = dir.join("user.key");
        let first = UserKey::generate().unwrap();
        let second = UserKey::generate().unwrap();
        first.save(&path).unwrap();
        let error = second.save(&path).unwrap_err();
        assert!(matches!(error, AuthError::KeyFileExists { .. }), "{error}");
        assert_eq!(UserKey::load(&path).unwrap().public(), first.public());
        second.save_replacing(&path).unwrap();
        assert_eq!(UserKey::load(&path).unwrap().public(), second.public());
        assert!(!crate::fs::temp_path(&path).exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("key-mode");
        let path = dir.join("user.key");
        UserKey::generate().unwrap().save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = UserKey::load(&path).unwrap_err();
        assert!(
            matches!(error, AuthError::KeyFilePermissions { mode: 0o644, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("user.key"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_errors_name_the_file_and_never_quote_it() {
        let dir = temp_dir("key-errors");
        let path = dir.join("broken.key");
        let key = UserKey::generate().unwrap();
        let text = key.file_text();
        let secret_hex = encode_hex(key.signing.as_bytes());
        // Damage one secret digit: the public line no longer matches.
        let flipped = if secret_hex.starts_with('0') {
            "1"
        } else {
            "0"
        };
        let damaged = text.replace(&secret_hex, &format!("{flipped}{}", &secret_hex[1..]));
        for contents in [
            damaged,
            text.replace(&secret_hex, &secret_hex[..63]),
            text.replace("secret ", "secret x"),
            "not a key".to_string(),
        ] {
            fs::write(&path, &contents).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            }
            let error = UserKey::load(&path).unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(shown.contains("broken.key"), "{shown}");
            assert!(!shown.contains(&secret_hex[..16]), "{shown}");
            assert!(matches!(error, AuthError::KeyFile { .. }), "{shown}");
        }
        let error = UserKey::load(&dir.join("missing.key")).unwrap_err();
        assert!(matches!(error, AuthError::File { .. }), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn parse_accepts_crlf_comments_and_either_order() {
        let key = UserKey::from_seed(&[9; 32]);
        let secret = encode_hex(key.signing.as_bytes());
        let text = format!(
            "# a comment\r\n{HEADER}\r\n\r\npublic {}\r\n# note\r\nsecret {}\r\n",
            key.public(),
            secret.to_uppercase()
        );
        assert_eq!(
            UserKey::parse(text.as_bytes()).unwrap().public(),
            key.public()
        );
        let twice = format!(
            "{HEADER}\nsecret {secret}\nsecret {secret}\npublic {}\n",
            key.public()
        );
        assert_eq!(
            UserKey::parse(twice.as_bytes()).unwrap_err(),
            KeyFileProblem::UnexpectedLine { line: 3 }
        );
        let no_public = format!("{HEADER}\nsecret {secret}\n");
        assert_eq!(
            UserKey::parse(no_public.as_bytes()).unwrap_err(),
            KeyFileProblem::MissingLine { field: "public" }
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = UserKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.public().fingerprint()), "{shown}");
        let secret_hex = encode_hex(key.signing.as_bytes());
        assert!(!shown.contains(&secret_hex[..8]), "{shown}");
        assert_ne!(UserKey::generate().unwrap().public(), key.public());
    }

    #[test]
    fn public_keys_parse_from_hex_and_refuse_invalid_points() {
        let public = UserKey::generate().unwrap().public();
        let text = public.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<UserPublicKey>().unwrap(), public);
        assert!(matches!(
            text[..62].parse::<UserPublicKey>(),
            Err(AuthError::Hex { .. })
        ));
        // The identity point has small order: refused.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            encode_hex(&identity).parse::<UserPublicKey>(),
            Err(AuthError::InvalidPublicKey { .. })
        ));
    }

    proptest! {
        #[test]
        fn key_file_parsing_never_panics(text in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = UserKey::parse(&text);
        }

        #[test]
        fn key_file_parsing_never_panics_on_near_misses(
            seed in any::<[u8; 32]>(),
            cut in 0usize..200,
            junk in "[ -~\r\n]{0,8}",
        ) {
            let key = UserKey::from_seed(&seed);
            let text = key.file_text();
            let cut = cut.min(text.len());
            let mangled = format!("{}{junk}{}", &text[..cut], &text[cut..]);
            if let Ok(parsed) = UserKey::parse(mangled.as_bytes()) {
                // Whatever parses names the one key the text holds.
                prop_assert_eq!(parsed.public(), key.public());
            }
        }

        #[test]
        fn public_key_parsing_never_panics(text in "\\PC{0,80}") {
            let _ = text.parse::<UserPublicKey>();
        }
    }
}
