//! The roles document: who the users of a deployment are, what each may do,
//! and which keys and approvals are withdrawn, signed by all three
//! operators.
//!
//! One document instead of a user list in each node's configuration, so
//! that the three nodes cannot drift apart: a node serves only a document
//! that every operator signed, and the nodes compare its
//! [`digest`](VerifiedRoles::digest) when they connect. No single operator
//! can admit a user, grant a role or lift a revocation alone.
//!
//! # The canonical encoding
//!
//! The digest is BLAKE3 over [`ROLES_DOMAIN`] followed by the document in
//! the same bincode configuration as requests (2.0.1, standard with
//! fixed-width little-endian integers; see the crate documentation): the
//! fields of [`RolesDocument`] in order, each `Vec` and `String` prefixed
//! by its length as a u64, each [`Role`] as its variant index (u32), keys
//! and digests as 32 raw bytes. Each operator signs the 32 digest bytes
//! with its operator key in the domain [`ROLES_SIGNATURE_DOMAIN`].
//!
//! # The file
//!
//! People edit and read the document as TOML; the signatures sit in the
//! same file, so that it can be passed from operator to operator:
//!
//! ```toml
//! version = 1
//! deployment = "<64 hex>"
//! serial = 1
//! revoked_keys = []
//! revoked_approvals = []
//!
//! [[user]]
//! name = "alice"
//! public_key = "<64 hex>"
//! roles = ["owner"]
//!
//! [[signature]]
//! node = 0
//! signature = "<128 hex>"
//! ```
//!
//! The TOML text is not what is signed: comments, layout and the order of
//! keys within a table may change without invalidating a signature, while
//! the order of users and of revocations is part of the document.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use bincode::config::{Configuration, Fixint, LittleEndian, NoLimit};
use serde::{Deserialize, Serialize};

use crate::error::AuthError;
use crate::fs::{file_error, write_atomic};
use crate::key::{UserKey, UserPublicKey};
use crate::request::{DeploymentId, Digest, Signature};

/// The document format this build speaks; a new encoding or meaning of a
/// field means a new version and a new [`ROLES_DOMAIN`].
pub const ROLES_VERSION: u32 = 1;

/// Prefixed to the encoded document before hashing, so that its digest can
/// never equal the digest of anything else triad hashes.
pub const ROLES_DOMAIN: &[u8] = b"triad/roles/v1";

/// The domain operators sign a document's digest in
/// ([`UserKey::sign_in_domain`]), so that an operator's signature on a
/// roles document cannot be presented as any other signature.
pub const ROLES_SIGNATURE_DOMAIN: &str = "triad/roles-signature/v1";

/// A roles file is a few hundred bytes per user; anything larger than this
/// is refused before it is read into memory.
pub const ROLES_FILE_BYTES_MAX: u64 = 4 << 20;

/// As in requests: see the crate documentation.
const ENCODING: Configuration<LittleEndian, Fixint, NoLimit> =
    bincode::config::standard().with_fixed_int_encoding();

/// What a user may do. The order of the variants is part of the signed
/// encoding (variant index as u32): only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Uploads tables, deletes and queries its own.
    Owner,
    /// Runs approved analyses.
    Analyst,
    /// Signs approvals.
    Approver,
}

impl Role {
    /// Every role, in encoding order.
    pub const ALL: [Role; 3] = [Role::Owner, Role::Analyst, Role::Approver];

    /// The name used in files and on command lines.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Analyst => "analyst",
            Role::Approver => "approver",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    fn from_str(text: &str) -> Result<Role, AuthError> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == text)
            .ok_or_else(|| AuthError::UnknownRole {
                // Command-line input, never secret; cut so that an error
                // line stays a line.
                text: text.chars().take(40).collect(),
            })
    }
}

/// A user of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleUser {
    /// For logs and listings; unique within a document so that a log line
    /// names one user.
    pub name: String,
    /// The key the user signs requests with, from `triad keygen`.
    pub public_key: UserPublicKey,
    /// What the user may do; at least one, each once.
    pub roles: Vec<Role>,
}

/// The content the three operators sign. The field order is the encoding's
/// order and must not change within a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RolesDocument {
    /// [`ROLES_VERSION`]; first, so that a future decoder can tell formats
    /// apart before anything else.
    pub version: u32,
    /// The deployment the document is for: a document signed for one
    /// deployment is refused by every other.
    pub deployment: DeploymentId,
    /// Grows with every edit, so that a node can refuse to go back to an
    /// older document (one that still admits a since-revoked key).
    pub serial: u64,
    /// The users, in the order written.
    pub users: Vec<RoleUser>,
    /// Keys refused whatever the user list says: a revocation survives a
    /// later edit that forgets to remove the user.
    pub revoked_keys: Vec<UserPublicKey>,
    /// Approvals (digests of `.approved` files) withdrawn before expiry.
    pub revoked_approvals: Vec<Digest>,
}

impl RolesDocument {
    /// An empty document: no users, nothing revoked.
    pub fn new(deployment: DeploymentId, serial: u64) -> RolesDocument {
        RolesDocument {
            version: ROLES_VERSION,
            deployment,
            serial,
            users: Vec::new(),
            revoked_keys: Vec::new(),
            revoked_approvals: Vec::new(),
        }
    }

    /// The canonical encoding (without the domain prefix).
    pub fn to_bytes(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, ENCODING)
            // Integers, fixed-size byte strings, strings and sequences of
            // known length, all of which bincode's serde encoder supports,
            // written to a Vec: encoding a document never fails.
            .expect("a roles document always encodes")
    }

    /// BLAKE3 of [`ROLES_DOMAIN`] followed by [`RolesDocument::to_bytes`]:
    /// what the operators sign and the nodes compare.
    pub fn digest(&self) -> Digest {
        let mut bytes = ROLES_DOMAIN.to_vec();
        bytes.extend_from_slice(&self.to_bytes());
        Digest::of(&bytes)
    }

    /// Checks what a signature cannot: the version, that every user has a
    /// usable key, a name and at least one role, and that no name, key or
    /// role of a user appears twice (a duplicate key would make the user's
    /// roles depend on which entry a lookup finds).
    pub fn validate(&self) -> Result<(), AuthError> {
        let invalid = |problem| Err(AuthError::RolesInvalid(problem));
        if self.version != ROLES_VERSION {
            return invalid(RolesProblem::Version {
                expected: ROLES_VERSION,
                actual: self.version,
            });
        }
        let mut names = BTreeSet::new();
        let mut keys = BTreeMap::new();
        for (index, user) in self.users.iter().enumerate() {
            if user.name.trim().is_empty() {
                return invalid(RolesProblem::EmptyName { index });
            }
            // Names go into log lines: a newline or escape in one could
            // forge or hide a line.
            if user.name.chars().any(char::is_control) {
                return invalid(RolesProblem::ControlInName { index });
            }
            if !names.insert(user.name.as_str()) {
                return invalid(RolesProblem::DuplicateName {
                    name: user.name.clone(),
                });
            }
            if let Some(first) = keys.insert(user.public_key, user.name.as_str()) {
                return invalid(RolesProblem::DuplicateKey {
                    key: user.public_key,
                    first: first.to_owned(),
                    second: user.name.clone(),
                });
            }
            if user.public_key.verifying_key().is_err() {
                return invalid(RolesProblem::InvalidKey {
                    name: user.name.clone(),
                    key: user.public_key,
                });
            }
            if user.roles.is_empty() {
                return invalid(RolesProblem::NoRoles {
                    name: user.name.clone(),
                });
            }
            let mut roles = BTreeSet::new();
            for role in &user.roles {
                if !roles.insert(*role) {
                    return invalid(RolesProblem::DuplicateRole {
                        name: user.name.clone(),
                        role: *role,
                    });
                }
            }
        }
        Ok(())
    }
}

/// One operator's signature on a document's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSignature {
    /// The node whose operator signed: 0, 1 or 2.
    pub node: u8,
    /// Over the document's digest, in [`ROLES_SIGNATURE_DOMAIN`].
    pub signature: Signature,
}

/// A document and the operators' signatures collected so far: the content
/// of a roles file. Unverified until [`SignedRoles::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignedRoles {
    /// The signed content.
    pub document: RolesDocument,
    /// At most one per node, in the order added.
    pub signatures: Vec<OperatorSignature>,
}

/// The file's layout: plain values before the arrays of tables, as TOML
/// needs, and singular table names (`[[user]]`) because each table is one
/// user.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesFile {
    version: u32,
    deployment: DeploymentId,
    serial: u64,
    #[serde(default)]
    revoked_keys: Vec<UserPublicKey>,
    #[serde(default)]
    revoked_approvals: Vec<Digest>,
    #[serde(default, rename = "user", skip_serializing_if = "Vec::is_empty")]
    users: Vec<RoleUser>,
    #[serde(default, rename = "signature", skip_serializing_if = "Vec::is_empty")]
    signatures: Vec<OperatorSignature>,
}

impl SignedRoles {
    /// A document with no signatures yet.
    pub fn unsigned(document: RolesDocument) -> SignedRoles {
        SignedRoles {
            document,
            signatures: Vec::new(),
        }
    }

    /// Adds node `node`'s operator signature, replacing any earlier one by
    /// that node.
    pub fn sign(&mut self, node: u8, key: &UserKey) {
        let signature =
            key.sign_in_domain(ROLES_SIGNATURE_DOMAIN, self.document.digest().as_bytes());
        self.signatures.retain(|entry| entry.node != node);
        self.signatures.push(OperatorSignature { node, signature });
        self.signatures.sort_by_key(|entry| entry.node);
    }

    /// Node `node`'s signature, if the file has one.
    pub fn signature(&self, node: u8) -> Option<&Signature> {
        self.signatures
            .iter()
            .find(|entry| entry.node == node)
            .map(|entry| &entry.signature)
    }

    /// Checks everything a node needs before serving the document: that it
    /// is for `deployment` and valid, that the three operator keys are
    /// distinct (one operator holding two of them could sign alone), and
    /// that each node's operator signed it with the key in `operators`
    /// (indexed by node), with ed25519's strict rules.
    pub fn verify(
        &self,
        deployment: &DeploymentId,
        operators: &[UserPublicKey; 3],
    ) -> Result<VerifiedRoles, AuthError> {
        if self.document.deployment != *deployment {
            return Err(AuthError::RolesDeployment {
                expected: *deployment,
                actual: self.document.deployment,
            });
        }
        self.document.validate()?;
        for first in 0..3 {
            for second in first + 1..3 {
                if operators[first] == operators[second] {
                    return Err(AuthError::OperatorKeysNotDistinct {
                        first: first as u8,
                        second: second as u8,
                    });
                }
            }
        }
        let mut seen = [false; 3];
        for entry in &self.signatures {
            match seen.get_mut(usize::from(entry.node)) {
                None => return Err(AuthError::RolesSignatureNode { node: entry.node }),
                Some(true) => return Err(AuthError::RolesSignatureTwice { node: entry.node }),
                Some(seen) => *seen = true,
            }
        }
        let digest = self.document.digest();
        for (node, operator) in (0u8..).zip(operators) {
            let signature = self
                .signature(node)
                .ok_or(AuthError::RolesSignatureMissing { node })?;
            operator
                .verify_in_domain(ROLES_SIGNATURE_DOMAIN, digest.as_bytes(), signature)
                .map_err(|_| AuthError::RolesSignatureBad {
                    node,
                    operator: *operator,
                })?;
        }
        Ok(VerifiedRoles::new(self.document.clone(), digest))
    }

    /// Reads a roles file. Strict: unknown keys are refused, so that a
    /// misspelt key is not silently ignored. Errors name the file and, for
    /// syntax, the line and key. Does not verify.
    pub fn load(path: &Path) -> Result<SignedRoles, AuthError> {
        let file_problem = |problem| AuthError::RolesFile {
            path: path.to_path_buf(),
            problem,
        };
        let file = File::open(path).map_err(file_error(path))?;
        let bytes = file.metadata().map_err(file_error(path))?.len();
        if bytes > ROLES_FILE_BYTES_MAX {
            return Err(file_problem(RolesFileProblem::TooLarge {
                bytes,
                bytes_max: ROLES_FILE_BYTES_MAX,
            }));
        }
        let mut text = Vec::new();
        // The file may grow between the check and the read.
        file.take(ROLES_FILE_BYTES_MAX + 1)
            .read_to_end(&mut text)
            .map_err(file_error(path))?;
        if text.len() as u64 > ROLES_FILE_BYTES_MAX {
            return Err(file_problem(RolesFileProblem::TooLarge {
                bytes: text.len() as u64,
                bytes_max: ROLES_FILE_BYTES_MAX,
            }));
        }
        let text =
            std::str::from_utf8(&text).map_err(|_| file_problem(RolesFileProblem::NotUtf8))?;
        SignedRoles::from_toml(text).map_err(file_problem)
    }

    /// Parses the text of a roles file.
    pub fn from_toml(text: &str) -> Result<SignedRoles, RolesFileProblem> {
        let file: RolesFile =
            toml::from_str(text).map_err(|e| RolesFileProblem::Syntax(Box::new(e)))?;
        Ok(SignedRoles {
            document: RolesDocument {
                version: file.version,
                deployment: file.deployment,
                serial: file.serial,
                users: file.users,
                revoked_keys: file.revoked_keys,
                revoked_approvals: file.revoked_approvals,
            },
            signatures: file.signatures,
        })
    }

    /// The text of a roles file.
    pub fn to_toml(&self) -> Result<String, RolesFileProblem> {
        let document = self.document.clone();
        let file = RolesFile {
            version: document.version,
            deployment: document.deployment,
            serial: document.serial,
            revoked_keys: document.revoked_keys,
            revoked_approvals: document.revoked_approvals,
            users: document.users,
            signatures: self.signatures.clone(),
        };
        toml::to_string_pretty(&file).map_err(|e| RolesFileProblem::Encode(Box::new(e)))
    }

    /// Writes a roles file atomically: a node reading it sees the old
    /// document or the new one, never a mixture.
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let text = self.to_toml().map_err(|problem| AuthError::RolesFile {
            path: path.to_path_buf(),
            problem,
        })?;
        write_atomic(path, text.as_bytes(), false)
    }
}

/// A document all three operators signed, for the deployment it was
/// checked against: the only way to ask who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRoles {
    document: RolesDocument,
    digest: Digest,
    /// Index into `document.users` by key, revoked keys left out, so that
    /// every lookup honours revocation.
    users: BTreeMap<UserPublicKey, usize>,
    revoked_keys: BTreeSet<UserPublicKey>,
    revoked_approvals: BTreeSet<Digest>,
}

impl VerifiedRoles {
    fn new(document: RolesDocument, digest: Digest) -> VerifiedRoles {
        let revoked_keys: BTreeSet<UserPublicKey> = document.revoked_keys.iter().copied().collect();
        let users = document
            .users
            .iter()
            .enumerate()
            .filter(|(_, user)| !revoked_keys.contains(&user.public_key))
            .map(|(index, user)| (user.public_key, index))
            .collect();
        let revoked_approvals = document.revoked_approvals.iter().copied().collect();
        VerifiedRoles {
            document,
            digest,
            users,
            revoked_keys,
            revoked_approvals,
        }
    }

    /// Admits nobody and revokes nothing: what a node being set up has
    /// before the operators have signed a document. Serial 0, below any
    /// document's; needs no signature because it grants nothing.
    pub fn none(deployment: DeploymentId) -> VerifiedRoles {
        let document = RolesDocument::new(deployment, 0);
        let digest = document.digest();
        VerifiedRoles::new(document, digest)
    }

    /// The document's digest, which the nodes compare.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The document's serial.
    pub fn serial(&self) -> u64 {
        self.document.serial
    }

    /// The deployment it was verified for.
    pub fn deployment(&self) -> &DeploymentId {
        &self.document.deployment
    }

    /// The document as signed, revoked users included.
    pub fn document(&self) -> &RolesDocument {
        &self.document
    }

    /// The user with this key, unless the key is revoked.
    pub fn user(&self, key: &UserPublicKey) -> Option<&RoleUser> {
        self.users
            .get(key)
            .map(|&index| &self.document.users[index])
    }

    /// The users whose keys are not revoked, in document order.
    pub fn users(&self) -> impl Iterator<Item = &RoleUser> {
        self.document
            .users
            .iter()
            .filter(|user| !self.revoked_keys.contains(&user.public_key))
    }

    /// Whether the approval with this digest was withdrawn.
    pub fn is_approval_revoked(&self, approval: &Digest) -> bool {
        self.revoked_approvals.contains(approval)
    }

    /// Whether the key was revoked.
    pub fn is_key_revoked(&self, key: &UserPublicKey) -> bool {
        self.revoked_keys.contains(key)
    }
}

/// Why a roles document is not valid, whoever signed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RolesProblem {
    /// A format version this build does not speak.
    #[error("version {actual}; this build speaks version {expected}")]
    Version {
        /// This build's version.
        expected: u32,
        /// The document's.
        actual: u32,
    },
    /// A user without a name.
    #[error("user {index} (from 0) has an empty name")]
    EmptyName {
        /// Its position in the user list.
        index: usize,
    },
    /// A name with a control character (a newline, an escape).
    #[error("user {index} (from 0) has a control character in its name")]
    ControlInName {
        /// Its position in the user list.
        index: usize,
    },
    /// Two users with one name.
    #[error("user name {name:?} appears twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// Two users with one key.
    #[error("users {first:?} and {second:?} have the same key {}", .key.fingerprint())]
    DuplicateKey {
        /// The key.
        key: UserPublicKey,
        /// The first user with it.
        first: String,
        /// The second.
        second: String,
    },
    /// A key that is not a usable ed25519 public key.
    #[error("user {name:?}: {key} is not a valid ed25519 public key")]
    InvalidKey {
        /// The user.
        name: String,
        /// The key.
        key: UserPublicKey,
    },
    /// A user with no role.
    #[error("user {name:?} has no role")]
    NoRoles {
        /// The user.
        name: String,
    },
    /// A role listed twice for one user.
    #[error("user {name:?} has role {role} twice")]
    DuplicateRole {
        /// The user.
        name: String,
        /// The role.
        role: Role,
    },
}

/// Why a roles file could not be read or written as a document.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RolesFileProblem {
    /// Larger than any roles file should be.
    #[error("{bytes} bytes; a roles file may have at most {bytes_max}")]
    TooLarge {
        /// The file's length.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
    /// Not UTF-8 text.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// Not TOML, or not a roles document (the message names line and key).
    #[error("{0}")]
    Syntax(Box<toml::de::Error>),
    /// A value TOML cannot hold (a serial above 2^63 - 1).
    #[error("cannot be written as TOML: {0}")]
    Encode(Box<toml::ser::Error>),
}

#[cfg(test)]
mod tests {
    use std::fs;

    use proptest::prelude::*;

    use super::*;
    use crate::fs::temp_dir;

    fn deployment() -> DeploymentId {
        DeploymentId::from_bytes([5; 32])
    }

    fn operators() -> [UserKey; 3] {
        [11, 12, 13].map(|seed| UserKey::from_seed(&[seed; 32]))
    }

    fn operator_keys(keys: &[UserKey; 3]) -> [UserPublicKey; 3] {
        [keys[0].public(), keys[1].public(), keys[2].public()]
    }

    fn user(name: &str, seed: u8, roles: &[Role]) -> RoleUser {
        RoleUser {
            name: name.to_owned(),
            public_key: UserKey::from_seed(&[seed; 32]).public(),
            roles: roles.to_vec(),
        }
    }

    fn document() -> RolesDocument {
        let mut document = RolesDocument::new(deployment(), 7);
        document.users = vec![
            user("alice", 1, &[Role::Owner]),
            user("bob", 2, &[Role::Analyst, Role::Approver]),
        ];
        document.revoked_keys = vec![UserKey::from_seed(&[3; 32]).public()];
        document.revoked_approvals = vec![Digest::of(b"an approval")];
        document
    }

    fn signed_by(keys: &[UserKey; 3], document: RolesDocument) -> SignedRoles {
        let mut signed = SignedRoles::unsigned(document);
        for (node, key) in (0u8..).zip(keys) {
            signed.sign(node, key);
        }
        signed
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = temp_dir("roles-round-trip");
        let path = dir.join("roles.toml");
        let keys = operators();
        let signed = signed_by(&keys, document());
        signed.save(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("[[user]]"), "{text}");
        assert!(text.contains("[[signature]]"), "{text}");
        let loaded = SignedRoles::load(&path).unwrap();
        assert_eq!(loaded, signed);
        let verified = loaded.verify(&deployment(), &operator_keys(&keys)).unwrap();
        assert_eq!(verified.digest(), signed.document.digest());
        assert_eq!(verified.serial(), 7);
        let alice = UserKey::from_seed(&[1; 32]).public();
        assert_eq!(verified.user(&alice).unwrap().name, "alice");
        assert_eq!(verified.users().count(), 2);
        assert!(verified.is_approval_revoked(&Digest::of(b"an approval")));
        assert!(!verified.is_approval_revoked(&Digest::of(b"another")));
        // Comments and layout are not signed.
        let edited = format!(
            "# reviewed by the three operators\n{}",
            text.replace(" = ", "=")
        );
        fs::write(&path, edited).unwrap();
        let reloaded = SignedRoles::load(&path).unwrap();
        reloaded
            .verify(&deployment(), &operator_keys(&keys))
            .unwrap();
        assert!(!crate::fs::temp_path(&path).exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_documented_layout_parses() {
        let key = UserKey::from_seed(&[1; 32]).public();
        let text = format!(
            "version = 1\ndeployment = \"{}\"\nserial = 1\nrevoked_keys = []\n\
             revoked_approvals = []\n[[user]]\nname = \"alice\"\npublic_key = \"{key}\"\n\
             roles = [\"owner\"]\n",
            deployment()
        );
        let parsed = SignedRoles::from_toml(&text).unwrap();
        assert_eq!(parsed.document.users[0].roles, [Role::Owner]);
        assert!(parsed.signatures.is_empty());
        parsed.document.validate().unwrap();
    }

    #[test]
    fn the_encoding_is_laid_out_as_documented() {
        let mut document = RolesDocument::new(deployment(), 2);
        document.users = vec![user("a", 1, &[Role::Approver])];
        let bytes = document.to_bytes();
        let mut expected = vec![1, 0, 0, 0];
        expected.extend_from_slice(&[5; 32]);
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes()); // one user
        expected.extend_from_slice(&1u64.to_le_bytes()); // name length
        expected.push(b'a');
        expected.extend_from_slice(document.users[0].public_key.as_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes()); // one role
        expected.extend_from_slice(&2u32.to_le_bytes()); // approver
        expected.extend_from_slice(&0u64.to_le_bytes()); // no revoked keys
        expected.extend_from_slice(&0u64.to_le_bytes()); // no revoked approvals
        assert_eq!(bytes, expected);
        let mut prefixed = ROLES_DOMAIN.to_vec();
        prefixed.extend_from_slice(&bytes);
        assert_eq!(document.digest(), Digest::of(&prefixed));
    }

    #[test]
    fn every_field_change_invalidates_the_signatures() {
        let keys = operators();
        let signed = signed_by(&keys, document());
        let changes: [fn(&mut RolesDocument); 9] = [
            |d| d.deployment = DeploymentId::from_bytes([6; 32]),
            |d| d.serial += 1,
            |d| d.users[0].name = "alicia".into(),
            |d| d.users[0].public_key = UserKey::from_seed(&[9; 32]).public(),
            |d| d.users[0].roles.push(Role::Analyst),
            |d| d.users.swap(0, 1),
            |d| d.users.truncate(1),
            |d| d.revoked_keys.clear(),
            |d| d.revoked_approvals.push(Digest::of(b"more")),
        ];
        for (index, change) in changes.into_iter().enumerate() {
            let mut tampered = signed.clone();
            change(&mut tampered.document);
            assert_ne!(
                tampered.document.digest(),
                signed.document.digest(),
                "change {index}"
            );
            // The deployment change is caught before the signatures.
            let expected = tampered.document.deployment;
            let error = tampered
                .verify(&expected, &operator_keys(&keys))
                .unwrap_err();
            assert!(
                matches!(error, AuthError::RolesSignatureBad { node: 0, .. }),
                "change {index}: {error}"
            );
        }
        // The version is checked before the signatures.
        let mut tampered = signed.clone();
        tampered.document.version = 2;
        let error = tampered
            .verify(&deployment(), &operator_keys(&keys))
            .unwrap_err();
        assert!(
            matches!(
                error,
                AuthError::RolesInvalid(RolesProblem::Version { actual: 2, .. })
            ),
            "{error}"
        );
    }

    #[test]
    fn a_missing_signature_is_named() {
        let keys = operators();
        let mut signed = SignedRoles::unsigned(document());
        let error = signed
            .verify(&deployment(), &operator_keys(&keys))
            .unwrap_err();
        assert!(
            matches!(error, AuthError::RolesSignatureMissing { node: 0 }),
            "{error}"
        );
        signed.sign(0, &keys[0]);
        signed.sign(2, &keys[2]);
        let error = signed
            .verify(&deployment(), &operator_keys(&keys))
            .unwrap_err();
        assert!(
            matches!(error, AuthError::RolesSignatureMissing { node: 1 }),
            "{error}"
        );
        assert!(error.to_string().contains("node 1"), "{error}");
        signed.sign(1, &keys[1]);
        signed.verify(&deployment(), &operator_keys(&keys)).unwrap();
        // Signing again replaces.
        signed.sign(1, &keys[1]);
        assert_eq!(signed.signatures.len(), 3);
    }

    #[test]
    fn a_wrong_operator_key_is_refused_without_secrets() {
        let keys = operators();
        let intruder = UserKey::from_seed(&[99; 32]);
        let mut signed = signed_by(&keys, document());
        signed.sign(2, &intruder);
        let error = signed
            .verify(&deployment(), &operator_keys(&keys))
            .unwrap_err();
        assert!(
            matches!(error, AuthError::RolesSignatureBad { node: 2, operator } if operator == keys[2].public()),
            "{error}"
        );
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("node 2"), "{shown}");
        assert!(
            !shown.contains(&crate::bytes::encode_hex(&[99; 32])),
            "{shown}"
        );
        // Two nodes under one operator key: one person could sign alone.
        let mut shared = operator_keys(&keys);
        shared[1] = shared[0];
        let error = signed_by(&keys, document())
            .verify(&deployment(), &shared)
            .unwrap_err();
        assert!(
            matches!(
                error,
                AuthError::OperatorKeysNotDistinct {
                    first: 0,
                    second: 1
                }
            ),
            "{error}"
        );
        // Signatures for other nodes, or twice for one.
        let mut extra = signed_by(&keys, document());
        extra.signatures.push(OperatorSignature {
            node: 3,
            signature: extra.signatures[0].signature,
        });
        assert!(matches!(
            extra.verify(&deployment(), &operator_keys(&keys)),
            Err(AuthError::RolesSignatureNode { node: 3 })
        ));
        extra.signatures[3].node = 0;
        assert!(matches!(
            extra.verify(&deployment(), &operator_keys(&keys)),
            Err(AuthError::RolesSignatureTwice { node: 0 })
        ));
    }

    #[test]
    fn a_wrong_deployment_is_refused() {
        let keys = operators();
        let signed = signed_by(&keys, document());
        let other = DeploymentId::from_bytes([8; 32]);
        let error = signed.verify(&other, &operator_keys(&keys)).unwrap_err();
        assert!(
            matches!(error, AuthError::RolesDeployment { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_revoked_key_is_not_a_user() {
        let keys = operators();
        let mut document = document();
        let bob = document.users[1].public_key;
        document.revoked_keys.push(bob);
        let verified = signed_by(&keys, document)
            .verify(&deployment(), &operator_keys(&keys))
            .unwrap();
        assert!(verified.user(&bob).is_none());
        assert!(verified.is_key_revoked(&bob));
        assert_eq!(
            verified
                .users()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>(),
            ["alice"]
        );
        assert_eq!(verified.document().users.len(), 2);
        let nobody = VerifiedRoles::none(deployment());
        assert!(nobody.user(&bob).is_none());
        assert_eq!(nobody.serial(), 0);
    }

    #[test]
    fn invalid_documents_are_refused() {
        type Change = fn(&mut RolesDocument);
        let cases: [(Change, &str); 7] = [
            (|d| d.users[1].name = "alice".into(), "appears twice"),
            (|d| d.users[1].name = " ".into(), "empty name"),
            (
                |d| d.users[1].name = "bob\nroot".into(),
                "control character",
            ),
            (
                |d| d.users[1].public_key = d.users[0].public_key,
                "same key",
            ),
            (|d| d.users[1].roles.clear(), "no role"),
            (
                |d| d.users[1].roles.push(Role::Analyst),
                "role analyst twice",
            ),
            (
                |d| {
                    let mut identity = [0u8; 32];
                    identity[0] = 1;
                    d.users[1].public_key = UserPublicKey::from_bytes(identity);
                },
                "not a valid ed25519",
            ),
        ];
        let keys = operators();
        for (change, expected) in cases {
            let mut document = document();
            change(&mut document);
            let error = document.validate().unwrap_err();
            assert!(error.to_string().contains(expected), "{expected}: {error}");
            // Signatures do not make an invalid document acceptable.
            let error = signed_by(&keys, document)
                .verify(&deployment(), &operator_keys(&keys))
                .unwrap_err();
            assert!(matches!(error, AuthError::RolesInvalid(_)), "{error}");
        }
    }

    #[test]
    fn file_errors_name_the_file_and_the_key() {
        let dir = temp_dir("roles-errors");
        let path = dir.join("roles.toml");
        let text = signed_by(&operators(), document()).to_toml().unwrap();
        for (from, to, expected) in [
            ("serial = 7", "serial = 7\nsurprise = 1", "surprise"),
            ("roles = [\"owner\"]", "roles = [\"boss\"]", "boss"),
            (
                "name = \"alice\"",
                "name = \"alice\"\nemail = \"a@b\"",
                "email",
            ),
            ("version = 1\n", "", "version"),
        ] {
            let edited = text.replacen(from, to, 1);
            assert_ne!(edited, text, "{from}");
            fs::write(&path, edited).unwrap();
            let error = SignedRoles::load(&path).unwrap_err();
            let shown = error.to_string();
            assert!(shown.contains("roles.toml"), "{shown}");
            assert!(shown.contains(expected), "{expected}: {shown}");
            assert!(shown.contains("line"), "{shown}");
        }
        fs::write(&path, vec![b' '; ROLES_FILE_BYTES_MAX as usize + 1]).unwrap();
        assert!(matches!(
            SignedRoles::load(&path),
            Err(AuthError::RolesFile {
                problem: RolesFileProblem::TooLarge { .. },
                ..
            })
        ));
        assert!(matches!(
            SignedRoles::load(&dir.join("missing.toml")),
            Err(AuthError::File { .. })
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn roles_parse_and_display() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        }
        let error = "Owner".parse::<Role>().unwrap_err();
        assert!(
            error.to_string().contains("owner, analyst, approver"),
            "{error}"
        );
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = SignedRoles::from_toml(&text);
        }

        #[test]
        fn parsing_mangled_files_never_panics(
            cut in 0usize..2000,
            junk in "[ -~\n]{0,12}",
        ) {
            let text = signed_by(&operators(), document()).to_toml().unwrap();
            let mut cut = cut.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let mangled = format!("{}{junk}{}", &text[..cut], &text[cut..]);
            if let Ok(parsed) = SignedRoles::from_toml(&mangled) {
                let keys = operators();
                let _ = parsed.verify(&deployment(), &operator_keys(&keys));
            }
        }
    }
}
