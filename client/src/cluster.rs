//! A local three-node cluster on loopback: configurations made the way
//! three operators would (`init` on each node, certificates and operator
//! keys exchanged with `add-peer`, users admitted in one roles document
//! that each node's operator signs and installs), and three real node
//! processes. Used by `triad demo`, `triad cluster` and the integration
//! tests.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use triad_node::cli::{
    AddPeerArgs, InitArgs, RolesAddUserArgs, RolesConfigArgs, RolesNewArgs, add_peer, init,
    recover, roles_add_user, roles_install, roles_new, roles_sign,
};
use triad_node::config::Role;

use crate::connection::{ConnectionFile, NodeEntry};
use crate::error::ClientError;

/// Three node directories under one root, and the processes serving them.
#[derive(Debug)]
pub struct LocalCluster {
    root: PathBuf,
    program: PathBuf,
    configs: [PathBuf; 3],
    client_addrs: [SocketAddr; 3],
    launchers: [Vec<String>; 3],
    children: [Option<Child>; 3],
}

/// Where the three nodes listen, how they and the clients reach each other,
/// and how each node's process is started. [`Placement::loopback`] is one
/// host; a network test puts each node on its own host (namespace) and
/// routes every link through something between them.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Node `i` listens for the other nodes here.
    pub listen: [SocketAddr; 3],
    /// Node `i` listens for clients here.
    pub client_listen: [SocketAddr; 3],
    /// `dial[i][j]`: where node `i` reaches node `j` (used where `i > j`:
    /// the higher index dials).
    pub dial: [[SocketAddr; 3]; 3],
    /// Where clients reach node `i` (written to the connection file).
    pub client_dial: [SocketAddr; 3],
    /// A command prefix that starts a program where node `i` runs (empty:
    /// here), e.g. `ip netns exec NAME`.
    pub launchers: [Vec<String>; 3],
}

impl Placement {
    /// Three nodes on 127.0.0.1, on free ports, reaching each other directly.
    pub fn loopback() -> Result<Placement, ClientError> {
        let mut listen = Vec::new();
        let mut client = Vec::new();
        for _ in 0..3 {
            listen.push(SocketAddr::from(([127, 0, 0, 1], free_port()?)));
            client.push(SocketAddr::from(([127, 0, 0, 1], free_port()?)));
        }
        let listen: [SocketAddr; 3] = [listen[0], listen[1], listen[2]];
        let client: [SocketAddr; 3] = [client[0], client[1], client[2]];
        Ok(Placement {
            listen,
            client_listen: client,
            dial: [listen; 3],
            client_dial: client,
            launchers: Default::default(),
        })
    }
}

fn free_port() -> Result<u16, ClientError> {
    // Bound and released at once: the window in which another process
    // could take it is small, and a clash fails loudly at bind.
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|source| ClientError::File {
        path: "udp socket".into(),
        source,
    })?;
    socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| ClientError::File {
            path: "udp socket".into(),
            source,
        })
}

fn other(e: impl std::fmt::Display) -> ClientError {
    ClientError::Usage(e.to_string())
}

/// The operator public key `init` wrote for node `node`.
fn read_operator_key(root: &Path, node: usize) -> Result<String, ClientError> {
    let path = root.join(format!("node{node}/operator.pub"));
    std::fs::read_to_string(&path).map_err(|source| ClientError::File { path, source })
}

impl LocalCluster {
    /// Creates the three node directories under `root` and a connection
    /// file `root/triad.conn` for the user whose key file is `user_key`;
    /// `users` are admitted on every node. `program` is the executable that
    /// serves a node with `program node run --config FILE`.
    pub fn create(
        root: &Path,
        program: &Path,
        users: &[(String, String, Vec<Role>)],
        user_key: &Path,
    ) -> Result<LocalCluster, ClientError> {
        LocalCluster::create_placed(root, program, users, user_key, &Placement::loopback()?)
    }

    /// [`create`](Self::create) with the nodes placed as `placement` says.
    pub fn create_placed(
        root: &Path,
        program: &Path,
        users: &[(String, String, Vec<Role>)],
        user_key: &Path,
        placement: &Placement,
    ) -> Result<LocalCluster, ClientError> {
        let listen = &placement.listen;
        let client = &placement.client_listen;
        let mut configs = Vec::new();
        let mut deployment = None;
        for node in 0..3 {
            let config = init(&InitArgs {
                node,
                listen: listen[node],
                client_listen: client[node],
                dir: root.join(format!("node{node}")),
                deployment: deployment.clone(),
            })
            .map_err(other)?;
            if deployment.is_none() {
                let file = triad_node::config::ConfigFile::read(&config).map_err(other)?;
                deployment = Some(file.deployment);
            }
            configs.push(config);
        }
        for (node, config) in configs.iter().enumerate() {
            for (peer, address) in placement.dial[node].iter().enumerate() {
                if peer == node {
                    continue;
                }
                add_peer(&AddPeerArgs {
                    config: config.clone(),
                    node: peer,
                    address: *address,
                    certificate: root.join(format!("node{peer}/node.crt")),
                    operator_key: read_operator_key(root, peer)?,
                })
                .map_err(other)?;
            }
        }
        // So that `triad-node check` can ask each peer for its versions and
        // roles document, as an operator's configuration would.
        for config in &configs {
            let mut file = triad_node::config::ConfigFile::read(config).map_err(other)?;
            for peer in &mut file.peers {
                peer.client_address = placement.client_listen.get(peer.node).copied();
            }
            triad_node::config::Config::save(&file, config).map_err(other)?;
        }
        // One document for the three nodes: built once, signed by each
        // node's operator key in turn, then installed on each.
        let roles = root.join("roles.toml");
        roles_new(&RolesNewArgs {
            deployment: deployment.clone().unwrap_or_default(),
            out: roles.clone(),
        })
        .map_err(other)?;
        for (name, public_key, roles_granted) in users {
            roles_add_user(&RolesAddUserArgs {
                roles: roles.clone(),
                name: name.clone(),
                public_key: public_key.clone(),
                role: roles_granted.clone(),
            })
            .map_err(other)?;
        }
        for config in &configs {
            roles_sign(&RolesConfigArgs {
                config: config.clone(),
                roles: roles.clone(),
            })
            .map_err(other)?;
        }
        for config in &configs {
            roles_install(&RolesConfigArgs {
                config: config.clone(),
                roles: roles.clone(),
            })
            .map_err(other)?;
        }
        let connection = ConnectionFile {
            deployment: deployment.unwrap_or_default(),
            key: user_key.to_owned(),
            nodes: (0..3)
                .map(|i| NodeEntry {
                    index: i,
                    address: placement.client_dial[i],
                    certificate: root.join(format!("node{i}/node.crt")),
                })
                .collect(),
        };
        connection.save(&root.join("triad.conn"))?;
        let configs: [PathBuf; 3] = configs.try_into().map_err(|_| other("three configs"))?;
        Ok(LocalCluster {
            root: root.to_owned(),
            program: program.to_owned(),
            configs,
            client_addrs: placement.client_dial,
            launchers: placement.launchers.clone(),
            children: [None, None, None],
        })
    }

    /// Edits every node's configuration file (before [`start`](Self::start)
    /// or between restarts).
    pub fn tune(
        &self,
        edit: impl Fn(&mut triad_node::config::ConfigFile),
    ) -> Result<(), ClientError> {
        for path in &self.configs {
            let mut file = triad_node::config::ConfigFile::read(path).map_err(other)?;
            edit(&mut file);
            triad_node::config::Config::save(&file, path).map_err(other)?;
        }
        Ok(())
    }

    /// The connection file for the cluster.
    pub fn connection_path(&self) -> PathBuf {
        self.root.join("triad.conn")
    }

    /// Node `i`'s configuration file.
    pub fn config(&self, i: usize) -> &Path {
        &self.configs[i]
    }

    /// Node `i`'s log file.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.root.join(format!("node{i}.log"))
    }

    /// Starts node `i` (if it is not running).
    pub fn start_node(&mut self, i: usize) -> Result<(), ClientError> {
        if self.children[i].is_some() {
            return Ok(());
        }
        let log_path = self.log_path(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| ClientError::File {
                path: log_path.clone(),
                source,
            })?;
        let mut command = match self.launchers[i].split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        let child = command
            .args(["node", "run", "--config"])
            .arg(&self.configs[i])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| ClientError::File {
                path: self.program.clone(),
                source,
            })?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// Starts all three and waits until their client ports answer and the
    /// mesh is formed (an authenticated listing succeeds), or `timeout`.
    pub fn start(&mut self, timeout: Duration) -> Result<(), ClientError> {
        for i in 0..3 {
            self.start_node(i)?;
        }
        self.wait_ready(timeout)
    }

    /// Waits until a listing through the connection file succeeds.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let attempt =
                crate::remote::Client::connect_file(&self.connection_path()).and_then(|client| {
                    let tables = client.tables();
                    client.close();
                    tables
                });
            match attempt {
                Ok(_) => return Ok(()),
                Err(error) if Instant::now() >= deadline => {
                    return Err(ClientError::Usage(format!(
                        "the cluster did not become ready within {} s: {error} (logs in {})",
                        timeout.as_secs(),
                        self.root.display()
                    )));
                }
                Err(_) => {
                    for i in 0..3 {
                        if let Some(child) = &mut self.children[i]
                            && let Ok(Some(status)) = child.try_wait()
                        {
                            return Err(ClientError::Usage(format!(
                                "node {i} exited with {status}; see {}",
                                self.log_path(i).display()
                            )));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Kills node `i` at once (no clean shutdown: what a crash looks like).
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Gives stopped node `i` a new disk and marks it to be rebuilt from
    /// the other two, by the operator guide's steps: a fresh `init` in its
    /// directory (new node key and certificate, the same addresses and
    /// deployment), its operator key put back (kept apart from the disk),
    /// the other two pinned on it and it on them (the others read pinned
    /// certificates at each connection, so they keep running), the roles
    /// document installed, its settings restored, and `recover`. Start it
    /// with [`start_node`](Self::start_node); it serves once rebuilt.
    pub fn replace_disk(&mut self, i: usize) -> Result<(), ClientError> {
        use triad_node::config::{Config, ConfigFile};

        self.kill_node(i);
        let dir = self.root.join(format!("node{i}"));
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| ClientError::File {
                path: path.to_owned(),
                source,
            })
        };
        let old = ConfigFile::read(&self.configs[i]).map_err(other)?;
        let operator_key = read(&dir.join("operator.key"))?;
        let operator_public = read(&dir.join("operator.pub"))?;
        std::fs::remove_dir_all(&dir).map_err(|source| ClientError::File {
            path: dir.clone(),
            source,
        })?;
        let config = init(&InitArgs {
            node: i,
            listen: old.listen,
            client_listen: old.client_listen,
            dir: dir.clone(),
            deployment: Some(old.deployment.clone()),
        })
        .map_err(other)?;
        for (name, bytes) in [
            ("operator.key", &operator_key),
            ("operator.pub", &operator_public),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|source| ClientError::File { path, source })?;
        }
        let operator_public = String::from_utf8_lossy(&operator_public).into_owned();
        for peer in &old.peers {
            add_peer(&AddPeerArgs {
                config: config.clone(),
                node: peer.node,
                address: peer.address,
                certificate: self.root.join(format!("node{}/node.crt", peer.node)),
                operator_key: peer.operator_public_key.clone(),
            })
            .map_err(other)?;
            let survivor = &self.configs[peer.node];
            let dialed = ConfigFile::read(survivor).map_err(other)?;
            let address = dialed
                .peers
                .iter()
                .find(|p| p.node == i)
                .map(|p| p.address)
                .ok_or_else(|| other(format!("node {} has no entry for node {i}", peer.node)))?;
            add_peer(&AddPeerArgs {
                config: survivor.clone(),
                node: i,
                address,
                certificate: dir.join("node.crt"),
                operator_key: operator_public.clone(),
            })
            .map_err(other)?;
        }
        let survivor = old.peers.first().map(|p| p.node).unwrap_or((i + 1) % 3);
        roles_install(&RolesConfigArgs {
            config: config.clone(),
            roles: self.root.join(format!("node{survivor}/roles.toml")),
        })
        .map_err(other)?;
        // What the operator had configured beyond `init`'s defaults.
        let mut file = ConfigFile::read(&config).map_err(other)?;
        file.threads = old.threads;
        file.limits = old.limits;
        file.release = old.release;
        file.metrics_listen = old.metrics_listen;
        for (entry, before) in file.peers.iter_mut().zip(&old.peers) {
            entry.client_address = before.client_address;
        }
        Config::save(&file, &config).map_err(other)?;
        recover(&config).map_err(other)?;
        Ok(())
    }

    /// The directory holding the cluster's files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Node `i`'s client address (where clients reach it).
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        self.client_addrs[i]
    }

    /// Stops all nodes.
    pub fn stop(&mut self) {
        for i in 0..3 {
            self.kill_node(i);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
