//! Job records fetched from the three nodes with the client library,
//! under the portal's own user key.
//!
//! The client is blocking and owns a tokio runtime of its own, which must
//! not be driven or dropped on the server's async threads; so one worker
//! thread owns it, connects when first asked (and again after a failure),
//! and answers requests sent over a channel. The portal's key signs only
//! these read requests; it is a user key like any other, never a user's.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

use triad_client::{Client, ClientError, ConnectionFile};
use triad_node::jobs::JobView;

use crate::error::PortalError;
use crate::jobs::JobSource;

enum Ask {
    Jobs(Sender<Result<Vec<JobView>, PortalError>>),
    Job(String, Sender<Result<JobView, PortalError>>),
}

/// Job records from the nodes named in a connection file.
#[derive(Debug)]
pub struct NodeJobSource {
    asks: Mutex<Sender<Ask>>,
}

fn fetch_error(error: ClientError) -> PortalError {
    match error {
        ClientError::Refused { error, .. } if error.message.contains("no job") => {
            PortalError::NotFound(error.message)
        }
        other => PortalError::Jobs(other.to_string()),
    }
}

impl NodeJobSource {
    /// Reads the connection file now (so that a bad one stops the portal
    /// at start) and connects when first asked. `key` replaces the
    /// connection file's key file.
    pub fn new(connection: &Path, key: Option<&Path>) -> Result<NodeJobSource, PortalError> {
        let mut file = ConnectionFile::load(connection).map_err(|e| PortalError::Config {
            path: connection.to_owned(),
            key: "connection",
            problem: e.to_string(),
        })?;
        if let Some(key) = key {
            file.key = key.to_owned();
        }
        let (asks, answers) = channel::<Ask>();
        std::thread::Builder::new()
            .name("triad-portal-nodes".into())
            .spawn(move || worker(&file, answers))
            .map_err(|source| PortalError::Io {
                path: PathBuf::from("node client thread"),
                source,
            })?;
        Ok(NodeJobSource {
            asks: Mutex::new(asks),
        })
    }

    fn ask(&self, ask: Ask) -> Result<(), PortalError> {
        self.asks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(ask)
            .map_err(|_| PortalError::Jobs("the node client thread has stopped".into()))
    }
}

fn worker(file: &ConnectionFile, asks: std::sync::mpsc::Receiver<Ask>) {
    let mut client: Option<Client> = None;
    for ask in asks {
        if client.is_none() {
            match Client::connect(file) {
                Ok(connected) => client = Some(connected),
                Err(error) => {
                    let error = PortalError::Jobs(format!("cannot reach the nodes: {error}"));
                    match ask {
                        Ask::Jobs(reply) => drop(reply.send(Err(error))),
                        Ask::Job(_, reply) => drop(reply.send(Err(error))),
                    }
                    continue;
                }
            }
        }
        let Some(connected) = &client else { continue };
        let failed = match ask {
            Ask::Jobs(reply) => {
                let result = connected.jobs();
                let failed = matches!(result, Err(ClientError::Link { .. }));
                let _ = reply.send(result.map_err(fetch_error));
                failed
            }
            Ask::Job(id, reply) => {
                let result = connected.job(&id);
                let failed = matches!(result, Err(ClientError::Link { .. }));
                let _ = reply.send(result.map_err(fetch_error));
                failed
            }
        };
        if failed {
            // A broken link: connect afresh next time.
            if let Some(old) = client.take() {
                old.close();
            }
        }
    }
    if let Some(client) = client {
        client.close();
    }
}

impl JobSource for NodeJobSource {
    fn jobs(&self) -> Result<Vec<JobView>, PortalError> {
        let (reply, answer) = channel();
        self.ask(Ask::Jobs(reply))?;
        answer
            .recv()
            .map_err(|_| PortalError::Jobs("the node client thread has stopped".into()))?
    }

    fn job(&self, id: &str) -> Result<JobView, PortalError> {
        let (reply, answer) = channel();
        self.ask(Ask::Job(id.to_owned(), reply))?;
        answer
            .recv()
            .map_err(|_| PortalError::Jobs("the node client thread has stopped".into()))?
    }
}
