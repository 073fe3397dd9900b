//! Recorded scripts and their approvals: what an approver signs and what
//! the nodes check each authorized query against.
//!
//! A [`Script`] is the analyst's recorded sequence of query plans. Each
//! step's plan is kept as the plan's canonical bytes (this crate does not
//! read plans; the node compares them), with production tables named by
//! their handles and earlier steps' results by [`step_reference`]. An
//! approver signs an [`Approval`] of the script's digest, bound to the
//! analyst, the production handles, the deployment and an expiry; the
//! script with its approvals is an [`ApprovedScript`], the `.approved`
//! file's content. Requests name the script's digest and the step they
//! run ([`ApprovalStep`](crate::ApprovalStep)).
//!
//! Encodings are bincode 2.0.1 with fixed-width integers, as for requests,
//! and decoding is strict (no trailing bytes), so one script has one
//! digest.

use bincode::config::{Configuration, Fixint, LittleEndian, NoLimit};
use serde::{Deserialize, Serialize};

use crate::key::{UserKey, UserPublicKey};
use crate::request::{DeploymentId, Digest, Signature};

/// The script format this build reads and writes.
pub const SCRIPT_VERSION: u32 = 1;

/// Prefixed to a script's encoding for its digest.
pub const SCRIPT_DOMAIN: &[u8] = b"triad/script/v1";

/// The signature domain of approvals.
pub const APPROVAL_DOMAIN: &str = "triad/approval/v1";

/// The largest encoded approved script a node reads: a script of many
/// steps with wide plans, and its approvals, fits easily.
pub const APPROVED_BYTES_MAX: usize = 4 << 20;

const ENCODING: Configuration<LittleEndian, Fixint, NoLimit> =
    bincode::config::standard().with_fixed_int_encoding();

/// How a recorded plan names the result table of an earlier step: the
/// handle of a stored result differs between the dummy run and the
/// production run, the step it came from does not.
pub fn step_reference(step: u32) -> String {
    format!("step:{step}")
}

/// The step a [`step_reference`] names, if `text` is one.
pub fn parse_step_reference(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("step:")?;
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    digits.parse().ok()
}

/// How a recorded plan names a table stored by step `step` of another
/// approved script `script` (a pipeline's earlier action): the table's
/// handle is only known once that script has run on production data, the
/// script and step that make it are known when recording.
pub fn output_reference(script: &Digest, step: u32) -> String {
    format!("output:{script}:{step}")
}

/// The script and step an [`output_reference`] names, if `text` is one.
pub fn parse_output_reference(text: &str) -> Option<(Digest, u32)> {
    let rest = text.strip_prefix("output:")?;
    let (digest, step) = rest.split_once(':')?;
    if digest.len() != 64 || digest.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let digest: Digest = digest.parse().ok()?;
    let step = parse_step_reference(&format!("step:{step}"))?;
    Some((digest, step))
}

/// Why a script, an approval or an approved script is not acceptable.
/// Names what differs; carries no secret (there is none here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The bytes are not a script or approved script of this version.
    #[error("not a valid {what}: {problem}")]
    Decode {
        /// What was being read.
        what: &'static str,
        /// The decoder's message.
        problem: String,
    },
    /// A format version this build does not speak.
    #[error("{what} version {actual}, this build reads version {expected}")]
    Version {
        /// What was being read.
        what: &'static str,
        /// Ours.
        expected: u32,
        /// Theirs.
        actual: u32,
    },
    /// An approval does not verify or does not fit the script.
    #[error("approval by {approver}: {problem}")]
    Approval {
        /// The approver's key fingerprint.
        approver: String,
        /// What is wrong.
        problem: String,
    },
    /// The approved script carries no approval at all.
    #[error("the script carries no approval")]
    Unapproved,
}

/// One recorded step: a query plan's canonical bytes, and whether a failed
/// threshold there lets the script go on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScriptStep {
    /// The plan's canonical encoding (see `triad-plan`), with production
    /// handles and [`step_reference`]s as its tables.
    pub plan: Vec<u8>,
    /// Recorded inside `allow_errors`: a threshold not met here is an
    /// answer, not the end of the script.
    pub allow_errors: bool,
}

/// A recorded script: every step an analyst ran in design mode, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Script {
    /// [`SCRIPT_VERSION`].
    pub version: u32,
    /// The deployment it was recorded on and may run on.
    pub deployment: DeploymentId,
    /// The analyst who recorded it, the only one who may run it.
    pub analyst: UserPublicKey,
    /// A name for people (the recording's file name, usually).
    pub name: String,
    /// The steps.
    pub steps: Vec<ScriptStep>,
}

impl Script {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, ENCODING).expect("a script always encodes")
    }

    /// Decodes [`Script::encode`] strictly.
    pub fn decode(bytes: &[u8]) -> Result<Script, ScriptError> {
        let script: Script = decode_exact(bytes, "script")?;
        check_version("script", script.version)?;
        Ok(script)
    }

    /// BLAKE3 over [`SCRIPT_DOMAIN`] and the encoding: what approvals sign
    /// and requests name.
    pub fn digest(&self) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(SCRIPT_DOMAIN);
        hasher.update(&self.encode());
        Digest::from_bytes(*hasher.finalize().as_bytes())
    }
}

/// What an approver signs: this script, for this analyst, on these
/// production tables, in this deployment, until then.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Approval {
    /// [`SCRIPT_VERSION`].
    pub version: u32,
    /// [`Script::digest`].
    pub script: Digest,
    /// The analyst allowed to run it.
    pub analyst: UserPublicKey,
    /// The production tables it reads (64 hex each), sorted.
    pub handles: Vec<String>,
    /// The deployment.
    pub deployment: DeploymentId,
    /// Unix seconds after which the nodes refuse it.
    pub expires_at: u64,
    /// The approver.
    pub approver: UserPublicKey,
}

impl Approval {
    /// The bytes an approver signs, in [`APPROVAL_DOMAIN`]: the approval's
    /// canonical encoding. Public so that a signer outside this crate (a
    /// browser, through the portal) can sign exactly these bytes.
    pub fn signed_bytes(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, ENCODING).expect("an approval always encodes")
    }

    /// Signs the approval with the approver's key, which must be the one
    /// it names.
    pub fn sign(self, key: &UserKey) -> Result<SignedApproval, ScriptError> {
        if key.public() != self.approver {
            return Err(ScriptError::Approval {
                approver: self.approver.fingerprint(),
                problem: format!("names another approver than the key {}", key.public()),
            });
        }
        let signature = key.sign_in_domain(APPROVAL_DOMAIN, &self.signed_bytes());
        Ok(SignedApproval {
            approval: self,
            signature,
        })
    }
}

/// An approval and its approver's signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedApproval {
    /// What was approved.
    pub approval: Approval,
    /// The approver's signature over it.
    pub signature: Signature,
}

impl SignedApproval {
    /// An approval and a signature made elsewhere (by the approver's
    /// browser, say) over its [`signed_bytes`](Approval::signed_bytes) in
    /// [`APPROVAL_DOMAIN`]; verified before it is returned.
    pub fn from_parts(
        approval: Approval,
        signature: [u8; 64],
    ) -> Result<SignedApproval, ScriptError> {
        let signed = SignedApproval {
            approval,
            signature: Signature::from_bytes(signature),
        };
        signed.verify()?;
        Ok(signed)
    }

    /// Checks the signature (ed25519 `verify_strict`) and the version.
    pub fn verify(&self) -> Result<(), ScriptError> {
        check_version("approval", self.approval.version)?;
        self.approval
            .approver
            .verify_in_domain(
                APPROVAL_DOMAIN,
                &self.approval.signed_bytes(),
                &self.signature,
            )
            .map_err(|_| ScriptError::Approval {
                approver: self.approval.approver.fingerprint(),
                problem: "the signature does not verify".into(),
            })
    }
}

/// A script and its approvals: the `.approved` file's content, sent with
/// every authorized query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ApprovedScript {
    /// The script.
    pub script: Script,
    /// One approval per approver who signed it.
    pub approvals: Vec<SignedApproval>,
}

impl ApprovedScript {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, ENCODING).expect("an approved script always encodes")
    }

    /// Decodes [`ApprovedScript::encode`] strictly, refusing more than
    /// [`APPROVED_BYTES_MAX`] bytes before decoding.
    pub fn decode(bytes: &[u8]) -> Result<ApprovedScript, ScriptError> {
        if bytes.len() > APPROVED_BYTES_MAX {
            return Err(ScriptError::Decode {
                what: "approved script",
                problem: format!("{} bytes, at most {APPROVED_BYTES_MAX}", bytes.len()),
            });
        }
        let approved: ApprovedScript = decode_exact(bytes, "approved script")?;
        check_version("script", approved.script.version)?;
        Ok(approved)
    }

    /// The production handles the script's steps read, as every approval
    /// must list them: given by the caller, who reads the plans.
    ///
    /// Checks every approval: signature, script digest, analyst, handles,
    /// deployment and expiry. Whether the approvers hold the approver role
    /// and satisfy each table's policy is the node's decision.
    pub fn check(
        &self,
        deployment: &DeploymentId,
        handles: &[String],
        now: u64,
    ) -> Result<(), ScriptError> {
        if self.approvals.is_empty() {
            return Err(ScriptError::Unapproved);
        }
        let digest = self.script.digest();
        let mut sorted = handles.to_vec();
        sorted.sort();
        sorted.dedup();
        for signed in &self.approvals {
            signed.verify()?;
            let approval = &signed.approval;
            let problem = if approval.script != digest {
                Some("it approves another script".to_owned())
            } else if approval.analyst != self.script.analyst {
                Some(format!(
                    "it is for analyst {}, the script was recorded by {}",
                    approval.analyst.fingerprint(),
                    self.script.analyst.fingerprint()
                ))
            } else if approval.deployment != *deployment || self.script.deployment != *deployment {
                Some(format!(
                    "it is for deployment {}, this is {deployment}",
                    approval.deployment
                ))
            } else if approval.handles != sorted {
                Some(format!(
                    "it names tables {:?}, the script reads {:?}",
                    approval.handles, sorted
                ))
            } else if approval.expires_at < now {
                Some(format!(
                    "it expired at {} (unix seconds)",
                    approval.expires_at
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ScriptError::Approval {
                    approver: approval.approver.fingerprint(),
                    problem,
                });
            }
        }
        Ok(())
    }
}

fn decode_exact<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, ScriptError> {
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(
        bytes,
        ENCODING.with_limit::<APPROVED_BYTES_MAX>(),
    )
    .map_err(|e| ScriptError::Decode {
        what,
        problem: e.to_string(),
    })?;
    if read != bytes.len() {
        return Err(ScriptError::Decode {
            what,
            problem: format!("{} trailing bytes", bytes.len() - read),
        });
    }
    Ok(value)
}

fn check_version(what: &'static str, actual: u32) -> Result<(), ScriptError> {
    if actual == SCRIPT_VERSION {
        Ok(())
    } else {
        Err(ScriptError::Version {
            what,
            expected: SCRIPT_VERSION,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fixture() -> (UserKey, UserKey, ApprovedScript, Vec<String>) {
        let analyst = UserKey::from_seed(&[1; 32]);
        let approver = UserKey::from_seed(&[2; 32]);
        let script = Script {
            version: SCRIPT_VERSION,
            deployment: DeploymentId::from_bytes([9; 32]),
            analyst: analyst.public(),
            name: "seed".into(),
            steps: vec![
                ScriptStep {
                    plan: vec![1, 2, 3],
                    allow_errors: false,
                },
                ScriptStep {
                    plan: vec![4],
                    allow_errors: true,
                },
            ],
        };
        let handles = vec!["b".repeat(64), "a".repeat(64)];
        let mut sorted = handles.clone();
        sorted.sort();
        let signed = Approval {
            version: SCRIPT_VERSION,
            script: script.digest(),
            analyst: analyst.public(),
            handles: sorted,
            deployment: script.deployment,
            expires_at: 1000,
            approver: approver.public(),
        }
        .sign(&approver)
        .unwrap();
        let approved = ApprovedScript {
            script,
            approvals: vec![signed],
        };
        (analyst, approver, approved, handles)
    }

    #[test]
    fn an_approved_script_checks_and_round_trips() {
        let (_, _, approved, handles) = fixture();
        let deployment = approved.script.deployment;
        approved.check(&deployment, &handles, 999).unwrap();
        let bytes = approved.encode();
        assert_eq!(ApprovedScript::decode(&bytes).unwrap(), approved);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ApprovedScript::decode(&longer).is_err());
    }

    #[test]
    fn every_deviation_is_refused() {
        let (_, approver, approved, handles) = fixture();
        let deployment = approved.script.deployment;
        // Expired.
        assert!(approved.check(&deployment, &handles, 1001).is_err());
        // Another deployment.
        assert!(
            approved
                .check(&DeploymentId::from_bytes([8; 32]), &handles, 0)
                .is_err()
        );
        // Other tables.
        assert!(approved.check(&deployment, &handles[..1], 0).is_err());
        // A changed step: the approval no longer covers the script.
        let mut changed = approved.clone();
        changed.script.steps[0].plan[0] = 7;
        assert!(changed.check(&deployment, &handles, 0).is_err());
        let mut changed = approved.clone();
        changed.script.steps[1].allow_errors = false;
        assert!(changed.check(&deployment, &handles, 0).is_err());
        // Another analyst claims the script.
        let mut changed = approved.clone();
        changed.script.analyst = approver.public();
        assert!(changed.check(&deployment, &handles, 0).is_err());
        // A tampered approval (later expiry) fails its signature.
        let mut changed = approved.clone();
        changed.approvals[0].approval.expires_at = u64::MAX;
        let error = changed.check(&deployment, &handles, 0).unwrap_err();
        assert!(error.to_string().contains("signature"), "{error}");
        // No approval at all.
        let mut changed = approved;
        changed.approvals.clear();
        assert_eq!(
            changed.check(&deployment, &handles, 0),
            Err(ScriptError::Unapproved)
        );
    }

    #[test]
    fn only_the_named_approver_signs() {
        let (analyst, _, approved, _) = fixture();
        let approval = approved.approvals[0].approval.clone();
        assert!(approval.sign(&analyst).is_err());
    }

    #[test]
    fn output_references_round_trip_and_parse_only_canonically() {
        let digest = Digest::of(b"a script");
        let text = output_reference(&digest, 3);
        assert_eq!(parse_output_reference(&text), Some((digest, 3)));
        assert_eq!(parse_output_reference(&text.to_uppercase()), None);
        assert_eq!(parse_output_reference(&format!("output:{digest}:03")), None);
        assert_eq!(parse_output_reference(&format!("output:{digest}")), None);
        assert_eq!(parse_output_reference(&format!("output:{digest}:")), None);
        assert_eq!(parse_output_reference("output:ab:1"), None);
        assert_eq!(parse_output_reference(&step_reference(1)), None);
        assert_eq!(parse_step_reference(&text), None);
    }

    #[test]
    fn an_approval_signed_elsewhere_is_verified_when_assembled() {
        let (_, approver, approved, _) = fixture();
        let approval = approved.approvals[0].approval.clone();
        let signature = approver.sign_in_domain(APPROVAL_DOMAIN, &approval.signed_bytes());
        let signed = SignedApproval::from_parts(approval.clone(), *signature.as_bytes()).unwrap();
        assert_eq!(signed, approved.approvals[0]);
        let mut other = approval;
        other.expires_at += 1;
        assert!(SignedApproval::from_parts(other, *signature.as_bytes()).is_err());
    }

    #[test]
    fn step_references_parse_only_canonically() {
        assert_eq!(parse_step_reference(&step_reference(0)), Some(0));
        assert_eq!(parse_step_reference(&step_reference(17)), Some(17));
        assert_eq!(parse_step_reference("step:017"), None);
        assert_eq!(parse_step_reference("step:"), None);
        assert_eq!(parse_step_reference("step:-1"), None);
        assert_eq!(parse_step_reference(&"a".repeat(64)), None);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(approved) = ApprovedScript::decode(&bytes) {
                prop_assert_eq!(approved.encode(), bytes.clone());
            }
            if let Ok(script) = Script::decode(&bytes) {
                prop_assert_eq!(script.encode(), bytes);
            }
        }
    }
}
