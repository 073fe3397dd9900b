//! The configuration file: the documented example parses, each kind of
//! mistake is refused naming the key, and the roles document is served only
//! when all three operators signed it.

use std::path::{Path, PathBuf};

use triad_auth::{AuthError, Role, RoleUser, RolesDocument, SignedRoles, UserKey};
use triad_node::config::{Config, ConfigError};

/// The peers' operator keys in the example are the public keys of RFC 8032's
/// first two ed25519 test vectors, whose secret keys are published there;
/// written as key files so that the tests can sign as those operators.
const PEER_SECRETS: [(&str, &str); 2] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    ),
];

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/example-node.toml"
    ))
    .unwrap()
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// A node directory holding `config` as its configuration, a fresh operator
/// key, and the three operator keys (node 0's is this node's).
struct NodeDir {
    dir: tempfile::TempDir,
    operators: [UserKey; 3],
}

impl NodeDir {
    fn new(config: &str) -> NodeDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("triad-node.toml"), config).unwrap();
        let own = UserKey::generate().unwrap();
        own.save(&dir.path().join("operator.key")).unwrap();
        let peers = PEER_SECRETS.map(|(secret, public)| {
            let path = dir.path().join(format!("peer-operator-{public}.key"));
            write_private(
                &path,
                &format!("triad-user-key v1\nsecret {secret}\npublic {public}\n"),
            );
            UserKey::load(&path).unwrap()
        });
        let [first, second] = peers;
        NodeDir {
            dir,
            operators: [own, first, second],
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("triad-node.toml")
    }

    fn roles_path(&self) -> PathBuf {
        self.dir.path().join("roles.toml")
    }

    fn document(&self) -> RolesDocument {
        let config = example();
        let deployment = config
            .lines()
            .find_map(|line| line.strip_prefix("deployment = \""))
            .unwrap()
            .trim_end_matches('"')
            .parse()
            .unwrap();
        let mut document = RolesDocument::new(deployment, 1);
        document.users.push(RoleUser {
            name: "alice".into(),
            public_key: UserKey::generate().unwrap().public(),
            roles: vec![Role::Owner],
        });
        document
    }

    /// Installs `document` signed by the operators of `nodes`.
    fn install(&self, document: RolesDocument, nodes: &[u8]) {
        let mut signed = SignedRoles::unsigned(document);
        for &node in nodes {
            signed.sign(node, &self.operators[usize::from(node)]);
        }
        signed.save(&self.roles_path()).unwrap();
    }

    fn load(&self) -> Result<Config, String> {
        Config::load(&self.config_path()).map_err(|e| e.to_string())
    }
}

/// The example configuration with a document signed by all three
/// operators beside it.
fn signed_example(config: &str) -> NodeDir {
    let node = NodeDir::new(config);
    node.install(node.document(), &[0, 1, 2]);
    node
}

#[test]
fn the_documented_example_is_valid() {
    let node = signed_example(&example());
    let config = node.load().unwrap();
    assert_eq!(config.party.index(), 0);
    assert_eq!(config.peers.len(), 2);
    assert_eq!(config.data_dir, node.dir.path().join("data"));
    assert_eq!(
        config.peers[1].certificate,
        node.dir.path().join("peer2.crt")
    );
    assert_eq!(config.roles_path, node.roles_path());
    assert_eq!(config.roles.users().count(), 1);
    assert_eq!(config.roles.serial(), 1);
    let alice = config.roles.users().next().unwrap().clone();
    assert_eq!(config.user(&alice.public_key), Some(&alice));
    assert_eq!(config.file.threads.compute, 2);
    assert_eq!(config.file.limits.min_threshold, 3);
    // Absent, it defaults to 3 too.
    let without = example().replacen("min_threshold = 3\n", "", 1);
    assert_ne!(without, example());
    let config = signed_example(&without).load().unwrap();
    assert_eq!(config.file.limits.min_threshold, 3);
    // The roles path defaults to roles.toml beside the configuration.
    let without = example().replacen("roles = \"roles.toml\"\n", "", 1);
    assert_ne!(without, example());
    let node = signed_example(&without);
    assert_eq!(node.load().unwrap().roles_path, node.roles_path());
}

#[test]
fn mistakes_are_named() {
    let cases = [
        ("node = 0", "node = 3", "node"),
        ("deployment = \"3b", "deployment = \"zz", "deployment"),
        (
            "node = 2\naddress = \"10.0.0.3:7000\"",
            "node = 1\naddress = \"10.0.0.3:7000\"",
            "listed twice",
        ),
        (
            "node = 2\naddress = \"10.0.0.3:7000\"",
            "node = 0\naddress = \"10.0.0.3:7000\"",
            "peer.node",
        ),
        (
            "operator_public_key = \"d75a",
            "operator_public_key = \"xx5a",
            "peer.operator_public_key",
        ),
        ("compute = 2", "compute = 0", "threads"),
        ("lanes = 1", "lanes = 0", "mesh.lanes"),
        (
            "lanes = 1",
            "lanes = 17",
            "17 connections per peer; use 1 to 16",
        ),
        (
            "rows_max = 4294967296",
            "rows_max = 1\nsurprise = 1",
            "surprise",
        ),
        ("idle_timeout_ms = 10000", "idle_timeout_ms = 5", "limits"),
        (
            "operator_key = \"operator.key\"",
            "operator_key = \"missing.key\"",
            "missing.key",
        ),
        (
            "roles = \"roles.toml\"",
            "roles = \"missing.toml\"",
            "missing.toml",
        ),
        // The old per-node user list is gone, and not silently ignored.
        (
            "[threads]",
            "[[user]]\nname = \"alice\"\n\n[threads]",
            "user",
        ),
    ];
    for (from, to, expect) in cases {
        let text = example().replacen(from, to, 1);
        assert_ne!(text, example(), "case {to:?} did not apply");
        let error = signed_example(&text).load().expect_err(to);
        assert!(error.contains(expect), "{to:?}: {error}");
    }
    // A node with only one peer cannot run.
    let cut = example()
        .rsplit_once("[[peer]]")
        .map(|(head, _)| head.to_owned())
        .unwrap();
    let error = signed_example(&cut).load().unwrap_err();
    assert!(error.contains("1 of the 2 other nodes"), "{error}");
}

#[test]
fn an_unsigned_roles_document_is_refused_naming_the_missing_node() {
    let node = NodeDir::new(&example());
    node.install(node.document(), &[]);
    let error = Config::load(&node.config_path()).unwrap_err();
    assert!(
        matches!(
            &error,
            ConfigError::Roles {
                source: AuthError::RolesSignatureMissing { node: 0 },
                ..
            }
        ),
        "{error}"
    );
    let shown = error.to_string();
    assert!(shown.contains("triad-node.toml"), "{shown}");
    assert!(shown.contains("node 0's operator"), "{shown}");
    // Two of three are not enough either.
    node.install(node.document(), &[0, 2]);
    let error = node.load().unwrap_err();
    assert!(
        error.contains("no signature from node 1's operator"),
        "{error}"
    );
}

#[test]
fn a_roles_document_signed_by_a_wrong_key_is_refused() {
    let node = NodeDir::new(&example());
    let mut signed = SignedRoles::unsigned(node.document());
    signed.sign(0, &node.operators[0]);
    signed.sign(1, &UserKey::generate().unwrap());
    signed.sign(2, &node.operators[2]);
    signed.save(&node.roles_path()).unwrap();
    let error = node.load().unwrap_err();
    assert!(
        error.contains("node 1's signature on the roles document does not verify"),
        "{error}"
    );
    // Signed, then edited: the signatures no longer cover it.
    let mut edited = signed.clone();
    edited.sign(1, &node.operators[1]);
    edited.document.users[0].roles.push(Role::Analyst);
    edited.save(&node.roles_path()).unwrap();
    let error = node.load().unwrap_err();
    assert!(error.contains("node 0's signature"), "{error}");
}

#[test]
fn revoked_keys_are_not_users() {
    let node = NodeDir::new(&example());
    let mut document = node.document();
    let alice = document.users[0].public_key;
    document.revoked_keys.push(alice);
    node.install(document, &[0, 1, 2]);
    let config = node.load().unwrap();
    assert!(config.user(&alice).is_none());
    assert_eq!(config.roles.users().count(), 0);
}

#[test]
fn a_partial_configuration_needs_no_roles_document() {
    let node = NodeDir::new(&example());
    let config = Config::load_partial(&node.config_path()).unwrap();
    assert_eq!(config.roles.serial(), 0);
    assert_eq!(config.roles.users().count(), 0);
    let operators = config.operator_public_keys().unwrap();
    assert_eq!(operators[0], node.operators[0].public());
    assert_eq!(operators[2], node.operators[2].public());
}

#[test]
fn install_moves_only_to_newer_documents() {
    use triad_node::cli::{RolesConfigArgs, roles_install};

    let node = NodeDir::new(&example());
    let draft = node.dir.path().join("draft.toml");
    let install = || {
        roles_install(&RolesConfigArgs {
            config: node.config_path(),
            roles: draft.clone(),
        })
        .map_err(|e| e.to_string())
    };
    let sign_all = |document: RolesDocument| {
        let mut signed = SignedRoles::unsigned(document);
        for (node_index, key) in (0u8..).zip(&node.operators) {
            signed.sign(node_index, key);
        }
        signed.save(&draft).unwrap();
    };
    // Unsigned: refused, and nothing is installed.
    SignedRoles::unsigned(node.document()).save(&draft).unwrap();
    let error = install().unwrap_err();
    assert!(
        error.contains("no signature from node 0's operator"),
        "{error}"
    );
    assert!(!node.roles_path().exists());
    let mut document = node.document();
    document.serial = 5;
    sign_all(document.clone());
    install().unwrap();
    assert_eq!(node.load().unwrap().roles.serial(), 5);
    // The same document again is fine; another with the same serial or
    // an older one is not.
    install().unwrap();
    let mut fork = document.clone();
    fork.users[0].roles.push(Role::Analyst);
    sign_all(fork);
    let error = install().unwrap_err();
    assert!(error.contains("only moves to a newer document"), "{error}");
    let mut older = document.clone();
    older.serial = 4;
    sign_all(older);
    assert!(install().is_err());
    let mut newer = document;
    newer.serial = 6;
    sign_all(newer);
    install().unwrap();
    assert_eq!(node.load().unwrap().roles.serial(), 6);
}

#[test]
fn metrics_and_peer_client_addresses_are_optional_and_checked() {
    let config = signed_example(&example()).load().unwrap();
    assert_eq!(
        config.file.metrics_listen,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    assert_eq!(
        config.peers[0].client_address,
        Some("10.0.0.2:7100".parse().unwrap())
    );
    // Absent: no metrics endpoint, and `check` cannot reach that peer.
    let without = example()
        .replacen("metrics_listen = \"127.0.0.1:9100\"\n", "", 1)
        .replacen("client_address = \"10.0.0.2:7100\"\n", "", 1);
    assert!(!without.contains("metrics_listen") && without.contains("client_address"));
    let config = signed_example(&without).load().unwrap();
    assert_eq!(config.file.metrics_listen, None);
    assert_eq!(config.peers[0].client_address, None);
    assert!(config.peers[1].client_address.is_some());
    // A port that moves at every start, or an address nobody can dial.
    let cases = [
        (
            "metrics_listen = \"127.0.0.1:9100\"",
            "metrics_listen = \"127.0.0.1:0\"",
            "metrics_listen",
        ),
        (
            "metrics_listen = \"127.0.0.1:9100\"",
            "metrics_listen = \"localhost\"",
            "metrics_listen",
        ),
        (
            "client_address = \"10.0.0.3:7100\"",
            "client_address = \"0.0.0.0:7100\"",
            "peer.client_address",
        ),
        (
            "client_address = \"10.0.0.3:7100\"",
            "client_address = \"10.0.0.3:0\"",
            "peer.client_address",
        ),
    ];
    for (from, to, expect) in cases {
        let text = example().replacen(from, to, 1);
        assert_ne!(text, example(), "case {to:?} did not apply");
        let error = signed_example(&text).load().expect_err(to);
        assert!(error.contains(expect), "{to:?}: {error}");
    }
}

/// Every key of the configuration file, as dotted paths (`limits.rows_max`,
/// `peer.node`), and the tables (`threads`, `peer`).
fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => {
                out.push(format!("[{path}]"));
                keys(inner, &format!("{path}."), out);
            }
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                out.push(format!("[[{path}]]"));
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        keys(inner, &format!("{path}."), out);
                    }
                }
            }
            _ => out.push(path),
        }
    }
}

#[test]
fn the_configuration_reference_names_every_key() {
    use triad_node::config::ConfigFile;

    let reference =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/CONFIG.md"))
            .unwrap();
    // The example holds every key, optional ones included; serializing the
    // parsed file (not the text) lists every key the node knows, so a new
    // field that the reference does not describe fails here.
    let file: ConfigFile = toml::from_str(&example()).unwrap();
    assert!(file.metrics_listen.is_some());
    assert!(file.peers.iter().all(|p| p.client_address.is_some()));
    let serialized = toml::Table::try_from(&file).unwrap();
    let mut found = Vec::new();
    keys(&serialized, "", &mut found);
    found.sort();
    found.dedup();
    assert!(found.len() > 25, "{found:?}");
    let missing: Vec<&String> = found
        .iter()
        .filter(|key| !reference.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/CONFIG.md does not describe {missing:?}"
    );
    // And the example shows every key but the test-only `[faults]`.
    let example_table: toml::Table = toml::from_str(&example()).unwrap();
    let mut written = Vec::new();
    keys(&example_table, "", &mut written);
    written.sort();
    written.dedup();
    found.retain(|key| !key.starts_with("faults.") && key != "[faults]");
    assert_eq!(written, found);
}
