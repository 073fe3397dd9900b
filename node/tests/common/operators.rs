//! Three node directories set up the way three operators would: `init` on
//! each host, `add-peer` both ways, and one roles document that all three
//! sign and install.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use triad_auth::UserKey;
use triad_node::cli::{
    AddPeerArgs, InitArgs, RolesAddUserArgs, RolesConfigArgs, RolesNewArgs, add_peer, init,
    roles_add_user, roles_install, roles_new, roles_sign,
};
use triad_node::config::{ConfigFile, Role};

/// A loopback address on a UDP port that was free a moment ago.
pub fn free_loopback() -> SocketAddr {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Logs of the nodes under test, shown for failing tests (and with
/// `--nocapture`): they must carry handles, kinds and timings, never
/// values.
pub fn show_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRIAD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .try_init();
}

/// `init` for nodes 0, 1 and 2 under `root/nodeI` (one deployment), then
/// each pins the other two. Gives the configuration paths and the
/// deployment id.
pub fn init_three(
    root: &Path,
    listen: [SocketAddr; 3],
    clients: [SocketAddr; 3],
) -> ([PathBuf; 3], String) {
    let mut configs = Vec::new();
    let mut deployment = None;
    for node in 0..3 {
        let path = init(&InitArgs {
            node,
            listen: listen[node],
            client_listen: clients[node],
            dir: root.join(format!("node{node}")),
            deployment: deployment.clone(),
        })
        .unwrap();
        if deployment.is_none() {
            deployment = Some(ConfigFile::read(&path).unwrap().deployment);
        }
        configs.push(path);
    }
    for (node, path) in configs.iter().enumerate() {
        for peer in (0..3).filter(|p| *p != node) {
            add_peer(&AddPeerArgs {
                config: path.clone(),
                node: peer,
                address: listen[peer],
                certificate: root.join(format!("node{peer}/node.crt")),
                operator_key: std::fs::read_to_string(
                    root.join(format!("node{peer}/operator.pub")),
                )
                .unwrap(),
            })
            .unwrap();
        }
    }
    (configs.try_into().unwrap(), deployment.unwrap())
}

/// A roles document at `path` for `users`, signed by the operators of the
/// three `configs` (not yet installed).
pub fn signed_roles(
    path: &Path,
    deployment: &str,
    users: &[(String, &UserKey, Role)],
    configs: &[PathBuf; 3],
) {
    roles_new(&RolesNewArgs {
        deployment: deployment.to_owned(),
        out: path.to_owned(),
    })
    .unwrap();
    for (name, key, role) in users {
        roles_add_user(&RolesAddUserArgs {
            roles: path.to_owned(),
            name: name.clone(),
            public_key: key.public().to_string(),
            role: vec![*role],
        })
        .unwrap();
    }
    for config in configs {
        roles_sign(&RolesConfigArgs {
            config: config.clone(),
            roles: path.to_owned(),
        })
        .unwrap();
    }
}

/// Installs the roles document at `roles` on the node of `config`.
pub fn install_roles(config: &Path, roles: &Path) {
    roles_install(&RolesConfigArgs {
        config: config.to_owned(),
        roles: roles.to_owned(),
    })
    .unwrap();
}

/// A client's runtime and a link to each node at `addresses`, pinning the
/// node certificates at `certificates`.
pub fn connect_links(
    addresses: &[SocketAddr; 3],
    certificates: &[PathBuf; 3],
) -> (tokio::runtime::Runtime, Vec<triad_net::NodeLink>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let links = runtime.block_on(async {
        let mut links = Vec::new();
        for (address, certificate) in addresses.iter().zip(certificates) {
            let certificate = triad_net::load_certificate(certificate).unwrap();
            links.push(
                triad_net::NodeLink::connect(
                    *address,
                    certificate,
                    triad_net::LinkConfig::default(),
                    std::time::Duration::from_secs(10),
                )
                .await
                .unwrap(),
            );
        }
        links
    });
    (runtime, links)
}
