//! The recordings directory: recorded scripts waiting for approvers, the
//! `.approved` files the portal writes beside them, rejections, and the
//! append-only log of every decision.
//!
//! A recording `NAME.recording` (made by `Client::end`, checked with
//! [`Recording::load`]) is *pending* until someone approves it, which
//! writes `NAME.approved` exactly as `triad approve` would (so
//! `Client::load` reads it, and further approvers, here or with `triad
//! approve`, add their signatures to it), or rejects it, which writes
//! `NAME.rejected`. Every decision is also appended, one JSON line each,
//! to [`LOG_FILE`], which the portal only ever appends to.
//!
//! The portal builds the [`Approval`] an approver signs (the same fields
//! `triad approve` signs: script digest, analyst, production handles,
//! deployment, expiry, approver) and checks the signature the approver's
//! browser made before anything is written. It holds no key that could
//! sign one itself.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use triad_auth::{
    Approval, ApprovedScript, DeploymentId, SCRIPT_VERSION, Script, SignedApproval, UserPublicKey,
};
use triad_client::script::{
    ApprovalView, ApprovedFile, Recording, production_handles, write_approved,
};

use crate::error::PortalError;

/// The decisions log, in the recordings directory.
pub const LOG_FILE: &str = "decisions.log";

/// The `format` field of a `.rejected` file.
pub const REJECTED_FORMAT: &str = "triad-rejected";

/// The longest rejection reason kept.
pub const REASON_CHARS_MAX: usize = 4000;

/// The longest an approval may last: what `--days` accepts in the form.
pub const APPROVAL_DAYS_MAX: u64 = 366;

/// A submitted recording larger than this is refused before it is read.
pub const RECORDING_BYTES_MAX: usize = 16 << 20;

/// A `.rejected` file: who rejected which script, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// [`REJECTED_FORMAT`].
    pub format: String,
    /// The script's name.
    pub name: String,
    /// The script's digest (hex): the rejection is of this script.
    pub digest: String,
    /// The approver's public key (hex).
    pub rejected_by: String,
    /// The approver's name in the roles document, when they rejected it.
    pub rejected_by_name: String,
    /// Unix seconds.
    pub rejected_at: u64,
    /// Why, in the approver's words.
    pub reason: String,
}

/// Where a recording stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Waiting for a first approval.
    Pending,
    /// Approved by these approvers (the `.approved` file's approvals).
    Approved(Vec<ApprovalView>),
    /// Rejected.
    Rejected(Rejection),
}

/// One readable recording and its status.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its file name without `.recording`: the id in URLs.
    pub id: String,
    /// The file's content (checked).
    pub recording: Recording,
    /// The script it carries.
    pub script: Script,
    /// The production tables the script reads, sorted.
    pub handles: Vec<String>,
    /// Where it stands.
    pub status: Status,
}

/// A recording that could not be read or checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Its id.
    pub id: String,
    /// What is wrong.
    pub problem: String,
}

/// One line of the decisions log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Unix seconds.
    pub at: u64,
    /// `approved` or `rejected`.
    pub decision: String,
    /// The recording's id.
    pub recording: String,
    /// The script's digest (hex).
    pub digest: String,
    /// The analyst's public key (hex).
    pub analyst: String,
    /// The approver's public key (hex).
    pub by: String,
    /// The approver's name.
    pub by_name: String,
    /// For approvals: unix seconds after which the nodes refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// For rejections: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The recordings directory of one deployment.
#[derive(Debug)]
pub struct Recordings {
    dir: PathBuf,
    deployment: DeploymentId,
    /// Serialises every change to the directory, so that two approvers
    /// signing at once both end up in the `.approved` file.
    write: Mutex<()>,
}

/// Whether `id` can name a recording: a plain file name, never a path.
pub fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A file name stem for a script's name: its letters, digits, `.`, `_`
/// and `-`, others replaced by `-`.
fn stem_for(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let stem = stem.trim_start_matches(['.', '_', '-']).to_owned();
    if stem.is_empty() {
        "recording".into()
    } else {
        stem
    }
}

fn recording_error(path: &Path, problem: impl ToString) -> PortalError {
    PortalError::Recording {
        path: path.to_owned(),
        problem: problem.to_string(),
    }
}

impl Recordings {
    /// The recordings in `dir`, for `deployment`.
    pub fn new(dir: &Path, deployment: DeploymentId) -> Recordings {
        Recordings {
            dir: dir.to_owned(),
            deployment,
            write: Mutex::new(()),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str, extension: &str) -> PathBuf {
        self.dir.join(format!("{id}.{extension}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guard protects no data of its own, only the order of file
        // operations: a poisoned lock is still a lock.
        self.write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every recording, sorted by id: the readable ones with their status,
    /// and the ones that do not check with the reason.
    pub fn list(&self) -> Result<(Vec<Entry>, Vec<Unreadable>), PortalError> {
        let mut ids = Vec::new();
        for item in fs::read_dir(&self.dir).map_err(PortalError::io(&self.dir))? {
            let item = item.map_err(PortalError::io(&self.dir))?;
            let name = item.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".recording"))
                && valid_id(id)
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for id in ids {
            match self.get(&id) {
                Ok(entry) => entries.push(entry),
                Err(error) => unreadable.push(Unreadable {
                    id,
                    problem: error.to_string(),
                }),
            }
        }
        Ok((entries, unreadable))
    }

    /// The recording `id`, checked, with its status.
    pub fn get(&self, id: &str) -> Result<Entry, PortalError> {
        if !valid_id(id) {
            return Err(PortalError::NotFound(format!("no recording {id:?}")));
        }
        let path = self.path(id, "recording");
        if !path.is_file() {
            return Err(PortalError::NotFound(format!("no recording {id:?}")));
        }
        let (recording, script) = Recording::load(&path).map_err(|e| recording_error(&path, e))?;
        if script.deployment != self.deployment {
            return Err(recording_error(
                &path,
                format!(
                    "recorded for deployment {}, this portal serves {}",
                    script.deployment, self.deployment
                ),
            ));
        }
        let handles = production_handles(&script).map_err(|e| recording_error(&path, e))?;
        let status = self.status(id, &script)?;
        Ok(Entry {
            id: id.to_owned(),
            recording,
            script,
            handles,
            status,
        })
    }

    fn status(&self, id: &str, script: &Script) -> Result<Status, PortalError> {
        let rejected = self.path(id, "rejected");
        if rejected.is_file() {
            let text = fs::read_to_string(&rejected).map_err(PortalError::io(&rejected))?;
            let rejection: Rejection =
                serde_json::from_str(&text).map_err(|e| recording_error(&rejected, e))?;
            return Ok(Status::Rejected(rejection));
        }
        let approved = self.path(id, "approved");
        if approved.is_file() {
            let (file, carried, _) =
                ApprovedFile::load(&approved).map_err(|e| recording_error(&approved, e))?;
            if carried.script != *script {
                return Err(recording_error(
                    &approved,
                    "approves another script than the recording beside it",
                ));
            }
            return Ok(Status::Approved(file.approvals));
        }
        Ok(Status::Pending)
    }

    /// What `approver` signs to approve `id` for `days` days from `now`:
    /// the approval `triad approve` would build. Refused for a rejected
    /// recording and for the analyst's own script.
    pub fn approval(
        &self,
        id: &str,
        approver: UserPublicKey,
        days: u64,
        now: u64,
    ) -> Result<(Entry, Approval), PortalError> {
        if !(1..=APPROVAL_DAYS_MAX).contains(&days) {
            return Err(PortalError::BadRequest(format!(
                "an approval lasts 1 to {APPROVAL_DAYS_MAX} days, not {days}"
            )));
        }
        let entry = self.get(id)?;
        if let Status::Rejected(rejection) = &entry.status {
            return Err(PortalError::Conflict(format!(
                "{id} was rejected by {} and can no longer be approved",
                rejection.rejected_by_name
            )));
        }
        if entry.script.analyst == approver {
            return Err(PortalError::BadRequest(
                "you recorded this script: another approver must approve it".into(),
            ));
        }
        let approval = Approval {
            version: SCRIPT_VERSION,
            script: entry.script.digest(),
            analyst: entry.script.analyst,
            handles: entry.handles.clone(),
            deployment: entry.script.deployment,
            expires_at: now + days * 86_400,
            approver,
        };
        Ok((entry, approval))
    }

    /// Adds `approval`, signed elsewhere with `signature`, to `id`'s
    /// `.approved` file (creating it), after checking the signature and
    /// that the recording is still the script approved. Replaces an
    /// earlier approval by the same approver, as `triad approve` does.
    pub fn add_approval(
        &self,
        id: &str,
        approval: Approval,
        signature: [u8; 64],
        approver_name: &str,
        now: u64,
    ) -> Result<ApprovedFile, PortalError> {
        let signed = SignedApproval::from_parts(approval, signature).map_err(|e| {
            PortalError::BadRequest(format!(
                "{e}: the key file chosen is not the signed-in user's key, or it is damaged"
            ))
        })?;
        let _guard = self.lock();
        let entry = self.get(id)?;
        if signed.approval.script != entry.script.digest() {
            return Err(PortalError::Conflict(format!(
                "{id} changed since the approval was prepared: reload the page and sign again"
            )));
        }
        let mut approved = match entry.status {
            Status::Rejected(rejection) => {
                return Err(PortalError::Conflict(format!(
                    "{id} was rejected by {} meanwhile",
                    rejection.rejected_by_name
                )));
            }
            Status::Approved(_) => {
                let path = self.path(id, "approved");
                ApprovedFile::load(&path)
                    .map_err(|e| recording_error(&path, e))?
                    .1
            }
            Status::Pending => ApprovedScript {
                script: entry.script.clone(),
                approvals: Vec::new(),
            },
        };
        let approver = signed.approval.approver;
        let expires_at = signed.approval.expires_at;
        approved
            .approvals
            .retain(|a| a.approval.approver != approver);
        approved.approvals.push(signed);
        approved
            .check(&self.deployment, &entry.handles, now)
            .map_err(|e| PortalError::BadRequest(e.to_string()))?;
        let path = self.path(id, "approved");
        let temporary = self.dir.join(format!(".{id}.approved.tmp"));
        let file = write_approved(&temporary, entry.recording.clone(), &approved)
            .map_err(|e| recording_error(&temporary, e))?;
        fs::rename(&temporary, &path).map_err(PortalError::io(&path))?;
        self.log(&Decision {
            at: now,
            decision: "approved".into(),
            recording: id.to_owned(),
            digest: entry.recording.digest.clone(),
            analyst: entry.recording.analyst.clone(),
            by: approver.to_string(),
            by_name: approver_name.to_owned(),
            expires_at: Some(expires_at),
            reason: None,
        })?;
        Ok(file)
    }

    /// Rejects the pending recording `id`: writes `id.rejected` and logs
    /// the decision. An approved recording is not rejected (its approvals
    /// are withdrawn through the roles document's revocations).
    pub fn reject(
        &self,
        id: &str,
        by: UserPublicKey,
        by_name: &str,
        reason: &str,
        now: u64,
    ) -> Result<Rejection, PortalError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(PortalError::BadRequest(
                "say why the recording is rejected: the analyst reads it".into(),
            ));
        }
        if reason.chars().count() > REASON_CHARS_MAX {
            return Err(PortalError::BadRequest(format!(
                "the reason is longer than {REASON_CHARS_MAX} characters"
            )));
        }
        let _guard = self.lock();
        let entry = self.get(id)?;
        match &entry.status {
            Status::Pending => {}
            Status::Approved(_) => {
                return Err(PortalError::Conflict(format!(
                    "{id} is already approved; an approval is withdrawn by revoking it in the \
                     roles document"
                )));
            }
            Status::Rejected(rejection) => {
                return Err(PortalError::Conflict(format!(
                    "{id} was already rejected by {}",
                    rejection.rejected_by_name
                )));
            }
        }
        let rejection = Rejection {
            format: REJECTED_FORMAT.into(),
            name: entry.recording.name.clone(),
            digest: entry.recording.digest.clone(),
            rejected_by: by.to_string(),
            rejected_by_name: by_name.to_owned(),
            rejected_at: now,
            reason: reason.to_owned(),
        };
        let path = self.path(id, "rejected");
        let mut text =
            serde_json::to_string_pretty(&rejection).map_err(|e| recording_error(&path, e))?;
        text.push('\n');
        write_new(&path, text.as_bytes())?;
        self.log(&Decision {
            at: now,
            decision: "rejected".into(),
            recording: id.to_owned(),
            digest: entry.recording.digest.clone(),
            analyst: entry.recording.analyst.clone(),
            by: by.to_string(),
            by_name: by_name.to_owned(),
            expires_at: None,
            reason: Some(reason.to_owned()),
        })?;
        Ok(rejection)
    }

    /// Adds a recording an analyst submitted: it must check, be for this
    /// deployment and be recorded by `analyst`. Returns its id: the
    /// script's name made safe for a file name, with part of its digest
    /// appended if another script has that name already.
    pub fn submit(&self, bytes: &[u8], analyst: UserPublicKey) -> Result<String, PortalError> {
        if bytes.len() > RECORDING_BYTES_MAX {
            return Err(PortalError::BadRequest(format!(
                "{} bytes is larger than any recording ({RECORDING_BYTES_MAX} at most)",
                bytes.len()
            )));
        }
        let _guard = self.lock();
        let token = hex::encode(crate::signin::random_bytes::<8>()?);
        let temporary = self.dir.join(format!(".upload-{token}.tmp"));
        fs::write(&temporary, bytes).map_err(PortalError::io(&temporary))?;
        let placed = self.place(&temporary, analyst);
        let _ = fs::remove_file(&temporary);
        placed
    }

    fn place(&self, temporary: &Path, analyst: UserPublicKey) -> Result<String, PortalError> {
        let (recording, script) = Recording::load(temporary)
            .map_err(|e| PortalError::BadRequest(format!("this is not a valid recording: {e}")))?;
        if script.deployment != self.deployment {
            return Err(PortalError::BadRequest(format!(
                "the recording is for deployment {}, this portal serves {}",
                script.deployment, self.deployment
            )));
        }
        if script.analyst != analyst {
            return Err(PortalError::BadRequest(format!(
                "the recording was made by the key {}, not by you: analysts submit their own \
                 recordings",
                script.analyst.fingerprint()
            )));
        }
        let stem = stem_for(&recording.name);
        let digest = script.digest().to_string();
        for id in [stem.clone(), format!("{stem}-{}", &digest[..12])] {
            let path = self.path(&id, "recording");
            match Recording::load(&path) {
                Ok((existing, _)) if existing.digest == digest => {
                    return Err(PortalError::Conflict(format!(
                        "this recording was submitted already, as {id}"
                    )));
                }
                Ok(_) => continue,
                Err(_) if path.exists() => continue,
                Err(_) => {}
            }
            // A hard link fails if the name was taken meanwhile; rename
            // would replace it.
            return match fs::hard_link(temporary, &path) {
                Ok(()) => Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(
                    PortalError::Conflict(format!("{id} was submitted meanwhile; try again")),
                ),
                Err(e) => Err(PortalError::io(&path)(e)),
            };
        }
        Err(PortalError::Conflict(format!(
            "other scripts named {:?} exist already: rename the script",
            recording.name
        )))
    }

    /// Appends one decision to the log and flushes it to disk.
    fn log(&self, decision: &Decision) -> Result<(), PortalError> {
        let path = self.dir.join(LOG_FILE);
        let mut line = serde_json::to_string(decision).map_err(|e| recording_error(&path, e))?;
        line.push('\n');
        let mut file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(PortalError::io(&path))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(PortalError::io(&path))
    }

    /// Every decision logged, oldest first.
    pub fn decisions(&self) -> Result<Vec<Decision>, PortalError> {
        let path = self.dir.join(LOG_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PortalError::io(&path)(e)),
        };
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).map_err(|e| recording_error(&path, e)))
            .collect()
    }
}

/// Writes a new file, refusing to replace one.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), PortalError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(PortalError::io(path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(PortalError::io(path))
}

#[cfg(test)]
mod tests {
    use triad_auth::{APPROVAL_DOMAIN, ScriptStep, UserKey};
    use triad_client::script::RECORDING_FORMAT;

    use super::*;

    #[test]
    fn ids_are_file_names_never_paths() {
        assert!(valid_id("seed-analysis"));
        assert!(valid_id("a.b_c-1"));
        for bad in ["", "../x", ".hidden", "a/b", "a b", "-x", &"a".repeat(129)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        assert_eq!(stem_for("../../etc/passwd"), "etc-passwd");
        assert_eq!(stem_for("seed analysis"), "seed-analysis");
        assert_eq!(stem_for("///"), "recording");
    }

    /// A recording file for a script with no steps (the plan crate
    /// decodes steps; an empty script needs none).
    fn write_recording(dir: &Path, name: &str, analyst: &UserKey, deployment: DeploymentId) {
        let script = Script {
            version: SCRIPT_VERSION,
            deployment,
            analyst: analyst.public(),
            name: name.into(),
            steps: Vec::<ScriptStep>::new(),
        };
        let recording = Recording {
            format: RECORDING_FORMAT.into(),
            name: name.into(),
            deployment: deployment.to_string(),
            analyst: analyst.public().to_string(),
            digest: script.digest().to_string(),
            script: hex::encode(script.encode()),
            steps: Vec::new(),
        };
        fs::write(
            dir.join(format!("{name}.recording")),
            serde_json::to_string(&recording).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn approve_twice_then_a_rejection_is_refused_and_everything_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let deployment = DeploymentId::from_bytes([5; 32]);
        let analyst = UserKey::generate().unwrap();
        let first = UserKey::generate().unwrap();
        let second = UserKey::generate().unwrap();
        write_recording(dir.path(), "study", &analyst, deployment);
        let recordings = Recordings::new(dir.path(), deployment);
        assert_eq!(recordings.get("study").unwrap().status, Status::Pending);

        // The analyst cannot approve their own script.
        assert!(
            recordings
                .approval("study", analyst.public(), 30, 1000)
                .is_err()
        );
        assert!(
            recordings
                .approval("study", first.public(), 0, 1000)
                .is_err()
        );

        for (key, name) in [(&first, "first"), (&second, "second")] {
            let (_, approval) = recordings
                .approval("study", key.public(), 30, 1000)
                .unwrap();
            assert_eq!(approval.expires_at, 1000 + 30 * 86_400);
            // What the browser signs.
            let signature = key.sign_in_domain(APPROVAL_DOMAIN, &approval.signed_bytes());
            // A signature by someone else is refused before anything is
            // written.
            let forged = analyst.sign_in_domain(APPROVAL_DOMAIN, &approval.signed_bytes());
            assert!(
                recordings
                    .add_approval("study", approval.clone(), *forged.as_bytes(), name, 1000)
                    .is_err()
            );
            recordings
                .add_approval("study", approval, *signature.as_bytes(), name, 1000)
                .unwrap();
        }
        let path = dir.path().join("study.approved");
        let (file, approved, _) = ApprovedFile::load(&path).unwrap();
        assert_eq!(file.approvals.len(), 2);
        approved.check(&deployment, &[], 1000).unwrap();
        match recordings.get("study").unwrap().status {
            Status::Approved(views) => assert_eq!(views.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(
            recordings
                .reject("study", first.public(), "first", "no", 1001)
                .is_err()
        );
        let decisions = recordings.decisions().unwrap();
        assert_eq!(decisions.len(), 2);
        assert_eq!(decisions[1].by_name, "second");
        assert_eq!(decisions[1].expires_at, Some(1000 + 30 * 86_400));
    }

    #[test]
    fn a_rejection_needs_a_reason_ends_pending_and_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let deployment = DeploymentId::from_bytes([5; 32]);
        let analyst = UserKey::generate().unwrap();
        let approver = UserKey::generate().unwrap();
        write_recording(dir.path(), "study", &analyst, deployment);
        let recordings = Recordings::new(dir.path(), deployment);
        assert!(
            recordings
                .reject("study", approver.public(), "ann", "  ", 5)
                .is_err()
        );
        let rejection = recordings
            .reject("study", approver.public(), "ann", "reveals single rows", 5)
            .unwrap();
        assert_eq!(rejection.reason, "reveals single rows");
        match recordings.get("study").unwrap().status {
            Status::Rejected(r) => assert_eq!(r, rejection),
            other => panic!("{other:?}"),
        }
        assert!(
            recordings
                .reject("study", approver.public(), "ann", "again", 6)
                .is_err()
        );
        assert!(
            recordings
                .approval("study", approver.public(), 1, 6)
                .is_err()
        );
        let decisions = recordings.decisions().unwrap();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].decision, "rejected");
        assert_eq!(decisions[0].reason.as_deref(), Some("reveals single rows"));
    }

    #[test]
    fn submissions_must_check_and_be_the_analysts_own() {
        let dir = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let deployment = DeploymentId::from_bytes([5; 32]);
        let analyst = UserKey::generate().unwrap();
        let other = UserKey::generate().unwrap();
        write_recording(source.path(), "my study", &analyst, deployment);
        let bytes = fs::read(source.path().join("my study.recording")).unwrap();
        let recordings = Recordings::new(dir.path(), deployment);

        let error = recordings.submit(&bytes, other.public()).unwrap_err();
        assert!(error.to_string().contains("not by you"), "{error}");
        let error = recordings.submit(b"{}", analyst.public()).unwrap_err();
        assert!(
            error.to_string().contains("not a valid recording"),
            "{error}"
        );
        let mut tampered: Recording = serde_json::from_slice(&bytes).unwrap();
        tampered.name = "another".into();
        let error = recordings
            .submit(
                serde_json::to_string(&tampered).unwrap().as_bytes(),
                analyst.public(),
            )
            .unwrap_err();
        assert!(
            error.to_string().contains("not a valid recording"),
            "{error}"
        );

        let id = recordings.submit(&bytes, analyst.public()).unwrap();
        assert_eq!(id, "my-study");
        assert_eq!(recordings.get(&id).unwrap().status, Status::Pending);
        let error = recordings.submit(&bytes, analyst.public()).unwrap_err();
        assert!(error.to_string().contains("submitted already"), "{error}");

        let foreign = Recordings::new(dir.path(), DeploymentId::from_bytes([6; 32]));
        assert!(foreign.submit(&bytes, analyst.public()).is_err());
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["my-study.recording"]);
    }
}
