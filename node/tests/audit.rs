//! `triad-node audit verify` end to end: three nodes initialised the way
//! operators do it, requests logged and heads exchanged through the audit
//! API the server uses, then one operator rewrites its own log.

// The CLI's errors name files and tables by value (see node/src/cli.rs).
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use clap::Parser;
use triad_auth::UserKey;
use triad_node::audit::{AuditEntry, AuditLog, LOG_FILE, SignedHead, audit_dir, verify_chain};
use triad_node::cli::{self, AddPeerArgs, AuditCommand, AuditVerifyArgs, InitArgs, NodeCommand};
use triad_node::config::Config;

struct Cluster {
    _root: tempfile::TempDir,
    configs: [PathBuf; 3],
}

impl Cluster {
    /// Three initialised nodes, each with the other two pinned.
    fn new() -> Cluster {
        let root = tempfile::tempdir().expect("temporary directory");
        let deployment = "11".repeat(32);
        let node_dir = |node: usize| root.path().join(format!("node{node}"));
        let address = |node: usize| {
            format!("127.0.0.1:{}", 47000 + node)
                .parse()
                .expect("address")
        };
        let configs = [0, 1, 2].map(|node| {
            cli::init(&InitArgs {
                node,
                listen: address(node),
                client_listen: address(node + 10),
                dir: node_dir(node),
                deployment: Some(deployment.clone()),
            })
            .expect("init")
        });
        for (node, config) in configs.iter().enumerate() {
            for peer in (0..3).filter(|&peer| peer != node) {
                let operator = operator_key(&configs[peer]).public().to_string();
                cli::add_peer(&AddPeerArgs {
                    config: config.clone(),
                    node: peer,
                    address: address(peer),
                    certificate: node_dir(peer).join("node.crt"),
                    operator_key: operator,
                })
                .expect("add-peer");
            }
        }
        Cluster {
            _root: root,
            configs,
        }
    }

    fn audit_dir(&self, node: usize) -> PathBuf {
        let config = Config::load_partial(&self.configs[node]).expect("config");
        audit_dir(&config.data_dir)
    }

    fn open(&self, node: usize) -> AuditLog {
        let config = Config::load_partial(&self.configs[node]).expect("config");
        AuditLog::open(&audit_dir(&config.data_dir), config.deployment, node as u8).expect("open")
    }

    /// Logs `requests` requests on all three nodes, each node sending its
    /// signed head to the other two after each, as the server does.
    fn serve(&self, requests: u64) {
        let mut logs = [0, 1, 2].map(|node| self.open(node));
        let keys = self.configs.each_ref().map(|config| operator_key(config));
        for n in 0..requests {
            for log in &mut logs {
                log.append(entry(n)).expect("append");
            }
            let heads: Vec<SignedHead> = (0..3).map(|i| logs[i].sign_head(&keys[i])).collect();
            for (i, log) in logs.iter_mut().enumerate() {
                for (j, head) in heads.iter().enumerate() {
                    if i != j {
                        log.record_peer_head(head, &keys[j].public())
                            .expect("record");
                    }
                }
            }
        }
    }

    fn verify(&self, node: usize, peers: &[usize]) -> Result<(), cli::CliError> {
        cli::audit_verify(&AuditVerifyArgs {
            config: self.configs[node].clone(),
            peer_dirs: peers
                .iter()
                .map(|&peer| (peer as u8, self.audit_dir(peer)))
                .collect(),
        })
    }
}

fn operator_key(config: &Path) -> UserKey {
    let config = Config::load_partial(config).expect("config");
    UserKey::load(&config.operator_key).expect("operator key")
}

fn entry(n: u64) -> AuditEntry {
    AuditEntry {
        time: 1_700_000_000 + n,
        user: "ab".repeat(32),
        request: format!("{n:064x}"),
        kind: "sum".into(),
        mode: "design".into(),
        script: None,
        step: None,
        plan: Some("ef".repeat(32)),
        revealed: format!("1 word sealed to {}", "12".repeat(32)),
        status: "ok".into(),
    }
}

/// What an operator with write access to its own disk can do: change an
/// entry and recompute every hash after it.
fn rewrite(cluster: &Cluster, node: usize, change: impl Fn(&mut Vec<AuditEntry>)) {
    let dir = cluster.audit_dir(node);
    let path = dir.join(LOG_FILE);
    let text = std::fs::read_to_string(&path).expect("read");
    let mut entries: Vec<AuditEntry> = text
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("record");
            serde_json::from_value(record["entry"].clone()).expect("entry")
        })
        .collect();
    change(&mut entries);
    std::fs::remove_file(&path).expect("remove");
    let mut log = cluster.open(node);
    for entry in entries {
        log.append(entry).expect("append");
    }
}

#[test]
fn honest_logs_verify_alone_and_across_nodes() {
    let cluster = Cluster::new();
    cluster.serve(3);
    cluster.verify(0, &[]).expect("own chain");
    cluster.verify(0, &[1, 2]).expect("across the three");
    cluster.verify(2, &[0, 1]).expect("from node 2");
}

#[test]
fn a_rewritten_log_is_caught_by_the_other_nodes() {
    let cluster = Cluster::new();
    cluster.serve(3);
    rewrite(&cluster, 1, |entries| {
        entries[0].revealed = "nothing".into();
    });
    // The rewritten chain holds together on its own...
    assert_eq!(
        verify_chain(&cluster.audit_dir(1))
            .expect("self-consistent")
            .entries,
        3
    );
    cluster.verify(1, &[]).expect("alone, node 1 looks fine");
    // ...but not against the heads it signed for nodes 0 and 2, whichever
    // node's operator runs the check.
    let error = cluster.verify(0, &[1, 2]).expect_err("caught from node 0");
    assert!(error.to_string().contains("problems found"), "{error}");
    cluster.verify(1, &[0, 2]).expect_err("caught from node 1");
}

#[test]
fn peer_heads_alone_catch_a_truncation() {
    let cluster = Cluster::new();
    cluster.serve(3);
    rewrite(&cluster, 0, |entries| entries.truncate(2));
    // Node 2's operator sent only its peer-heads file.
    let copy = tempfile::tempdir().expect("temporary directory");
    std::fs::copy(
        cluster.audit_dir(2).join("peer-heads.jsonl"),
        copy.path().join("peer-heads.jsonl"),
    )
    .expect("copy");
    let error = cli::audit_verify(&AuditVerifyArgs {
        config: cluster.configs[0].clone(),
        peer_dirs: vec![(2, copy.path().to_owned())],
    })
    .expect_err("truncation caught");
    assert!(error.to_string().contains("problems found"), "{error}");
}

#[test]
fn the_command_line_parses() {
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: NodeCommand,
    }
    let cli = Cli::try_parse_from([
        "triad-node",
        "audit",
        "verify",
        "--config",
        "node.toml",
        "--peer-dir",
        "1=/copies/node1/audit",
        "--peer-dir",
        "2=/copies/node2/audit",
    ])
    .expect("parses");
    let NodeCommand::Audit(AuditCommand::Verify(args)) = cli.command else {
        panic!("parsed as {:?}", cli.command);
    };
    assert_eq!(
        args.peer_dirs,
        vec![
            (1, PathBuf::from("/copies/node1/audit")),
            (2, PathBuf::from("/copies/node2/audit"))
        ]
    );
    for bad in ["3=/x", "one=/x", "/x"] {
        assert!(
            Cli::try_parse_from([
                "triad-node",
                "audit",
                "verify",
                "--config",
                "c",
                "--peer-dir",
                bad
            ])
            .is_err(),
            "{bad}"
        );
    }
}
