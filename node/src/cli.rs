//! The `triad-node` commands: `init` makes this node's key, certificate and
//! configuration on its own host; `add-peer` pins another node's
//! certificate; `add-user` admits a user's public key; `check` validates a
//! configuration and the data directory; `run` serves.

// Store errors name table, column and file by value (see `store`); they
// sit on cold paths, and boxing them would only hide them from matching.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use triad_auth::UserPublicKey;
use triad_net::NodeIdentity;

use crate::config::{Config, ConfigError, ConfigFile, Limits, PeerEntry, Role, Threads, UserEntry};
use crate::server::{Node, NodeError};
use crate::store::Store;

/// The commands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Make this node's key pair, certificate and configuration file.
    Init(InitArgs),
    /// Pin another node's certificate and address.
    AddPeer(AddPeerArgs),
    /// Admit a user's public key with roles.
    AddUser(AddUserArgs),
    /// Validate the configuration, keys, certificates and stored tables.
    Check(ConfigArg),
    /// Run the node until it is stopped.
    Run(ConfigArg),
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// This node's index: 0, 1 or 2.
    #[arg(long)]
    pub node: usize,
    /// Address the other nodes connect to.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Address clients connect to.
    #[arg(long)]
    pub client_listen: SocketAddr,
    /// Directory for the key, certificate, configuration and data.
    #[arg(long)]
    pub dir: PathBuf,
    /// The deployment id (64 hex) agreed by the three operators; a fresh
    /// one is made if absent (give it to the other two).
    #[arg(long)]
    pub deployment: Option<String>,
}

/// `add-peer`.
#[derive(Debug, Args)]
pub struct AddPeerArgs {
    /// The configuration file to change.
    #[arg(long)]
    pub config: PathBuf,
    /// The peer's index.
    #[arg(long)]
    pub node: usize,
    /// The peer's node-to-node address.
    #[arg(long)]
    pub address: SocketAddr,
    /// The peer's certificate (PEM), as its operator sent it.
    #[arg(long)]
    pub certificate: PathBuf,
}

/// `add-user`.
#[derive(Debug, Args)]
pub struct AddUserArgs {
    /// The configuration file to change.
    #[arg(long)]
    pub config: PathBuf,
    /// A name for logs.
    #[arg(long)]
    pub name: String,
    /// The user's ed25519 public key (hex), from `triad keygen`.
    #[arg(long)]
    pub public_key: String,
    /// Roles: owner, analyst, approver.
    #[arg(long = "role", value_parser = parse_role, required = true)]
    pub roles: Vec<Role>,
}

fn parse_role(text: &str) -> Result<Role, String> {
    match text {
        "owner" => Ok(Role::Owner),
        "analyst" => Ok(Role::Analyst),
        "approver" => Ok(Role::Approver),
        other => Err(format!("unknown role {other:?} (owner, analyst, approver)")),
    }
}

/// A command taking only the configuration file.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Running.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Identity files.
    #[error(transparent)]
    Net(#[from] triad_net::NetError),
    /// Storage.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Anything else, explained.
    #[error("{0}")]
    Other(String),
}

/// The file name `init` gives the configuration.
pub const CONFIG_FILE: &str = "triad-node.toml";

/// Runs one command.
pub fn run_command(command: NodeCommand) -> Result<(), CliError> {
    match command {
        NodeCommand::Init(args) => {
            let path = init(&args)?;
            let config = Config::load_partial(&path)?;
            let identity = NodeIdentity::load(&config.certificate, &config.key)?;
            println!(
                "node {} initialised: {}\n  certificate {} (send node.crt to the other operators)\n  deployment {}",
                args.node,
                path.display(),
                identity.fingerprint(),
                config.file.deployment
            );
            Ok(())
        }
        NodeCommand::AddPeer(args) => add_peer(&args),
        NodeCommand::AddUser(args) => add_user(&args),
        NodeCommand::Check(args) => check(&args.config),
        NodeCommand::Run(args) => {
            let config = Config::load(&args.config)?;
            let node = Node::start(config)?;
            node.wait();
            Ok(())
        }
    }
}

/// `init`: returns the configuration file's path.
pub fn init(args: &InitArgs) -> Result<PathBuf, CliError> {
    if args.node > 2 {
        return Err(CliError::Other(format!(
            "--node {} is not 0, 1 or 2",
            args.node
        )));
    }
    std::fs::create_dir_all(&args.dir).map_err(|source| ConfigError::Io {
        path: args.dir.clone(),
        source,
    })?;
    let config_path = args.dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(CliError::Other(format!(
            "{} exists; refusing to replace this node's identity",
            config_path.display()
        )));
    }
    let deployment = match &args.deployment {
        Some(d) => d.clone(),
        None => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| CliError::Other(format!("OS random generator: {e}")))?;
            crate::server::hex(&bytes)
        }
    };
    let identity = NodeIdentity::generate()?;
    identity.save(&args.dir.join("node.crt"), &args.dir.join("node.key"))?;
    let file = ConfigFile {
        node: args.node,
        deployment,
        data_dir: PathBuf::from("data"),
        listen: args.listen,
        client_listen: args.client_listen,
        certificate: PathBuf::from("node.crt"),
        key: PathBuf::from("node.key"),
        threads: Threads::default(),
        limits: Limits::default(),
        peers: Vec::new(),
        users: Vec::new(),
    };
    // Validate before writing, so a bad deployment id is caught here.
    Config::from_file(&config_path, file.clone(), false)?;
    Config::save(&file, &config_path)?;
    Ok(config_path)
}

fn load_file(path: &Path) -> Result<ConfigFile, CliError> {
    Ok(ConfigFile::read(path)?)
}

/// `add-peer`.
pub fn add_peer(args: &AddPeerArgs) -> Result<(), CliError> {
    let mut file = load_file(&args.config)?;
    // Parse it now: a file that is not a certificate is refused here, not
    // at the first connection.
    let certificate = triad_net::load_certificate(&args.certificate)?;
    let name = format!("peer{}.crt", args.node);
    let dir = args.config.parent().unwrap_or(Path::new("."));
    let target = dir.join(&name);
    if std::fs::canonicalize(&args.certificate).ok() != std::fs::canonicalize(&target).ok() {
        std::fs::copy(&args.certificate, &target).map_err(|source| ConfigError::Io {
            path: target.clone(),
            source,
        })?;
    }
    file.peers.retain(|p| p.node != args.node);
    file.peers.push(PeerEntry {
        node: args.node,
        address: args.address,
        certificate: PathBuf::from(name),
    });
    file.peers.sort_by_key(|p| p.node);
    Config::from_file(&args.config, file.clone(), false)?;
    Config::save(&file, &args.config)?;
    tracing::info!(
        node = args.node,
        address = %args.address,
        certificate = %triad_net::fingerprint(&certificate),
        "peer pinned"
    );
    Ok(())
}

/// `add-user`.
pub fn add_user(args: &AddUserArgs) -> Result<(), CliError> {
    let mut file = load_file(&args.config)?;
    let key: UserPublicKey = args
        .public_key
        .parse()
        .map_err(|e| CliError::Other(format!("--public-key: {e}")))?;
    file.users
        .retain(|u| u.public_key.parse::<UserPublicKey>().ok() != Some(key));
    file.users.push(UserEntry {
        name: args.name.clone(),
        public_key: args.public_key.clone(),
        roles: args.roles.clone(),
    });
    Config::from_file(&args.config, file.clone(), false)?;
    Config::save(&file, &args.config)?;
    tracing::info!(user = %args.name, key = %key.fingerprint(), "user admitted");
    Ok(())
}

/// `check`: everything that can be checked without the other nodes.
pub fn check(path: &Path) -> Result<(), CliError> {
    let config = Config::load(path)?;
    let identity = NodeIdentity::load(&config.certificate, &config.key)?;
    for peer in &config.peers {
        let certificate = triad_net::load_certificate(&peer.certificate)?;
        if &certificate == identity.certificate() {
            return Err(CliError::Other(format!(
                "peer {} has this node's own certificate",
                peer.node
            )));
        }
    }
    let store = Store::open(&config.data_dir, config.party)?;
    let tables = store.tables();
    for table in &tables {
        store.verify_table(&table.handle)?;
    }
    println!(
        "node {}: configuration valid, certificate {}, {} peers, {} users, {} tables verified",
        config.party.index(),
        identity.fingerprint(),
        config.peers.len(),
        config.users.len(),
        tables.len()
    );
    Ok(())
}
