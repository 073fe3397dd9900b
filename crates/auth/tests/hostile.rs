//! Decoders of signed things from the network and disk, fed edited valid
//! encodings (which reach much further than random bytes): no panic, what
//! decodes is canonical, and an edited signed request, approved script or
//! roles file never passes verification as something it was not. Random
//! bytes, hex texts, key files and nonce logs are in `decoders.rs` and the
//! unit tests.

use std::fs;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use triad_auth::{
    APPROVED_BYTES_MAX, Approval, ApprovalStep, ApprovedScript, DeploymentId, Digest, Mode, Nonce,
    REQUEST_VERSION, Request, Role, RoleUser, RolesDocument, SCRIPT_VERSION, Script, ScriptStep,
    SignedRequest, SignedRoles, UserKey, X25519Public,
};

/// One edit of an encoding.
#[path = "../../../testkit/mutate.rs"]
mod mutate;
use mutate::{apply, edits};

const DEPLOYMENT: DeploymentId = DeploymentId::from_bytes([5; 32]);

/// Keys made once per run: analyst (0), approver (1), operators (2..5).
fn keys() -> &'static [UserKey; 5] {
    static KEYS: OnceLock<[UserKey; 5]> = OnceLock::new();
    KEYS.get_or_init(|| [(); 5].map(|_| UserKey::generate().expect("OS generator")))
}

fn signed_request(approval: bool) -> SignedRequest {
    let key = &keys()[0];
    Request {
        version: REQUEST_VERSION,
        deployment: DEPLOYMENT,
        mode: if approval {
            Mode::Authorized
        } else {
            Mode::Design
        },
        body: Digest::of(b"a plan"),
        approval: approval.then_some(ApprovalStep {
            approval: Digest::of(b"an approval"),
            step: 3,
        }),
        nonce: Nonce::from_bytes([4; 16]),
        issued_at: 1_700_000_000,
        // A point of large order, so the unedited request verifies.
        result_key: X25519Public::from_bytes([9; 32]),
        signer: key.public(),
    }
    .sign(key)
    .expect("the key is the signer")
}

fn handles() -> Vec<String> {
    vec!["ab".repeat(32)]
}

fn approved_script() -> ApprovedScript {
    let [analyst, approver, ..] = keys();
    let script = Script {
        version: SCRIPT_VERSION,
        deployment: DEPLOYMENT,
        analyst: analyst.public(),
        name: "hostile".into(),
        steps: vec![
            ScriptStep {
                plan: vec![1, 2, 3, 4],
                allow_errors: false,
            },
            ScriptStep {
                plan: vec![5; 9],
                allow_errors: true,
            },
        ],
    };
    let approval = Approval {
        version: SCRIPT_VERSION,
        script: script.digest(),
        analyst: analyst.public(),
        handles: handles(),
        deployment: DEPLOYMENT,
        expires_at: 2_000_000_000,
        approver: approver.public(),
    }
    .sign(approver)
    .expect("the key is the approver");
    ApprovedScript {
        script,
        approvals: vec![approval],
    }
}

fn operator_keys() -> [triad_auth::UserPublicKey; 3] {
    let keys = keys();
    [keys[2].public(), keys[3].public(), keys[4].public()]
}

fn signed_roles() -> SignedRoles {
    let mut document = RolesDocument::new(DEPLOYMENT, 4);
    document.users = vec![
        RoleUser {
            name: "alice".into(),
            public_key: keys()[0].public(),
            roles: vec![Role::Analyst],
        },
        RoleUser {
            name: "bob".into(),
            public_key: keys()[1].public(),
            roles: vec![Role::Approver, Role::Owner],
        },
    ];
    document.revoked_approvals = vec![Digest::of(b"withdrawn")];
    let mut signed = SignedRoles::unsigned(document);
    for (node, key) in (0u8..).zip(&keys()[2..]) {
        signed.sign(node, key);
    }
    signed
}

/// A temporary file holding `bytes`, removed when dropped.
fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    fs::write(file.path(), bytes).expect("write");
    file
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn an_edited_request_is_refused_or_canonical_and_never_verifies(
        approval in any::<bool>(),
        edits in edits(),
    ) {
        let signed = signed_request(approval);
        prop_assert!(signed.verify().is_ok());
        let mut bytes = signed.to_bytes();
        apply(&mut bytes, &edits);
        if let Ok(decoded) = SignedRequest::from_bytes(&bytes) {
            prop_assert_eq!(decoded.to_bytes(), bytes);
            if decoded != signed {
                prop_assert!(decoded.verify().is_err());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_are_never_scripts_that_do_not_re_encode(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        if let Ok(script) = Script::decode(&bytes) {
            prop_assert_eq!(script.encode(), bytes.clone());
        }
        if let Ok(approved) = ApprovedScript::decode(&bytes) {
            prop_assert_eq!(approved.encode(), bytes);
        }
    }

    #[test]
    fn an_edited_approved_script_is_refused_or_canonical_and_never_checks(edits in edits()) {
        let approved = approved_script();
        prop_assert!(approved.check(&DEPLOYMENT, &handles(), 0).is_ok());
        let mut bytes = approved.encode();
        apply(&mut bytes, &edits);
        if let Ok(decoded) = ApprovedScript::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
            if decoded != approved {
                prop_assert!(decoded.check(&DEPLOYMENT, &handles(), 0).is_err());
            }
        }
    }

    #[test]
    fn an_edited_script_is_refused_or_canonical(edits in edits()) {
        let mut bytes = approved_script().script.encode();
        apply(&mut bytes, &edits);
        if let Ok(decoded) = Script::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn arbitrary_role_names_parse_or_are_refused(text in "\\PC{0,20}") {
        if let Ok(role) = text.parse::<Role>() {
            prop_assert_eq!(role.name(), text);
        }
    }
}

proptest! {
    // Each case writes a file: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn roles_files_of_arbitrary_bytes_are_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        let file = file_with(&bytes);
        if let Ok(roles) = SignedRoles::load(file.path()) {
            // Random bytes are never a document all three operators signed.
            prop_assert!(roles.verify(&DEPLOYMENT, &operator_keys()).is_err());
        }
    }

    #[test]
    fn an_edited_roles_file_verifies_only_as_the_signed_document(edits in edits()) {
        let signed = signed_roles();
        let mut bytes = signed.to_toml().expect("toml").into_bytes();
        apply(&mut bytes, &edits);
        let file = file_with(&bytes);
        if let Ok(loaded) = SignedRoles::load(file.path())
            && let Ok(verified) = loaded.verify(&DEPLOYMENT, &operator_keys())
        {
            // Layout and comments are not signed; the document is.
            prop_assert_eq!(verified.document(), &signed.document);
        }
    }
}

/// A fixed-width-integer length prefix of 2^60 where a script's name
/// starts: refused at once, nothing of that size allocated.
#[test]
fn forged_length_prefixes_are_refused_before_allocation() {
    let script = approved_script().script;
    let name_at = 4 + 32 + 32;
    for (what, at) in [
        ("name", name_at),
        ("steps", name_at + 8 + script.name.len()),
    ] {
        let mut bytes = script.encode();
        bytes[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let started = Instant::now();
        assert!(Script::decode(&bytes).is_err(), "{what}");
        assert!(started.elapsed() < Duration::from_secs(1), "{what}");
    }
    // The first step's plan, inside an approved script.
    let approved = approved_script();
    let plan_at = name_at + 8 + approved.script.name.len() + 8;
    let mut bytes = approved.encode();
    bytes[plan_at..plan_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(ApprovedScript::decode(&bytes).is_err());
    // Over the byte limit: refused before decoding.
    let error = ApprovedScript::decode(&vec![0; APPROVED_BYTES_MAX + 1]).unwrap_err();
    assert!(error.to_string().contains("at most"), "{error}");
}

#[test]
fn an_oversized_roles_file_is_refused_before_reading() {
    let file = file_with(b"");
    file.as_file()
        .set_len(triad_auth::ROLES_FILE_BYTES_MAX + 1)
        .expect("sparse file");
    let error = SignedRoles::load(file.path()).unwrap_err();
    assert!(error.to_string().contains("bytes"), "{error}");
}
