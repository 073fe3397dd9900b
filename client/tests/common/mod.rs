//! A local three-node cluster with named users, for the integration tests
//! that play several people: each has a key file in the test directory
//! and a role in the operators' signed roles document.

#![allow(dead_code)] // each test binary uses its own part of this

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use triad_auth::UserKey;
use triad_client::cluster::LocalCluster;
use triad_client::schema::Schema;
use triad_client::table::read_table;
use triad_client::{Client, ConnectionFile, Handle, UploadOptions};
use triad_node::config::Role;

const PROGRAM: &str = env!("CARGO_BIN_EXE_triad");

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub cluster: LocalCluster,
}

impl Fixture {
    /// A running cluster whose configurations `edit` may change first.
    pub fn start(people: &[(&str, Role)], edit: impl FnOnce(&LocalCluster)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let mut users = Vec::new();
        for (name, role) in people {
            let key = UserKey::generate().unwrap();
            key.save(&root.join(format!("{name}.key"))).unwrap();
            users.push((name.to_string(), key.public().to_string(), vec![*role]));
        }
        let mut cluster = LocalCluster::create(
            &root.join("cluster"),
            Path::new(PROGRAM),
            &users,
            &root.join(format!("{}.key", people[0].0)),
        )
        .unwrap();
        edit(&cluster);
        cluster.start(Duration::from_secs(60)).unwrap();
        Fixture {
            _dir: dir,
            root,
            cluster,
        }
    }

    pub fn key(&self, name: &str) -> UserKey {
        UserKey::load(&self.root.join(format!("{name}.key"))).unwrap()
    }

    pub fn connect(&self, name: &str) -> Client {
        let mut file = ConnectionFile::load(&self.cluster.connection_path()).unwrap();
        file.key = self.root.join(format!("{name}.key"));
        Client::connect(&file).unwrap()
    }

    /// Uploads a CSV with its schema file.
    pub fn upload(
        &self,
        client: &Client,
        csv: &Path,
        schema: &Path,
        options: &UploadOptions,
    ) -> Handle {
        let table = read_table(csv, Some(&Schema::load(schema).unwrap())).unwrap();
        client.upload_with(&table, options).unwrap().handle
    }
}

/// Runs the `triad` CLI with `args` (and `TRIAD_CONN` set to `conn`) as
/// a user would: whether it succeeded, its stdout and its stderr.
pub fn triad(args: &[&str], conn: Option<&Path>) -> (bool, String, String) {
    let mut command = Command::new(PROGRAM);
    command.args(args);
    if let Some(conn) = conn {
        command.env("TRIAD_CONN", conn);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
