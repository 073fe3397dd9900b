//! Test helpers: a seeded dealer that shares columns the way a client
//! does, and three stores standing in for the three nodes.
#![allow(dead_code)]

pub mod operators;

use std::path::Path;

use triad_node::store::{
    AgreedUpload, ColumnInfo, ColumnSchema, ComponentKeys, Store, TableInfo, Upload, UploadId,
    combine, component_digest,
};
use triad_ring::{Arith, PartyId};

/// splitmix64: a seeded generator for test data (never for keys).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn words(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.next_u64()).collect()
    }

    pub fn key(&mut self) -> [u8; 32] {
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        key
    }
}

pub fn upload_id(s: &str) -> UploadId {
    s.parse().expect("valid upload id")
}

/// A schema with one i64 column per name.
pub fn schema(names: &[&str]) -> Vec<ColumnSchema> {
    names
        .iter()
        .map(|name| ColumnSchema {
            name: (*name).to_owned(),
            type_tag: "i64".to_owned(),
            min: i128::from(i64::MIN),
            max: i128::from(i64::MAX),
            nullable: false,
        })
        .collect()
}

/// Each party's part of an upload of `columns` (plaintext values), shared
/// as a client does: `x = x0 + x1 + x2`, party `i` gets `(x_i, x_{i+1})`
/// and the keys of those two components.
pub fn deal(id: &str, rows: u64, columns: &[(&str, Vec<u64>)], seed: u64) -> [Upload; 3] {
    let mut rng = Rng::new(seed);
    let keys = [rng.key(), rng.key(), rng.key()];
    let mut per_party: [Vec<(String, Arith)>; 3] = Default::default();
    for (name, values) in columns {
        let x0 = rng.words(values.len());
        let x1 = rng.words(values.len());
        let x2: Vec<u64> = values
            .iter()
            .zip(x0.iter().zip(&x1))
            .map(|(x, (a, b))| x.wrapping_sub(*a).wrapping_sub(*b))
            .collect();
        let components = [x0, x1, x2];
        for party in PartyId::ALL {
            let i = party.index();
            let shares = Arith::from_components(
                components[i].clone(),
                components[party.next().index()].clone(),
            )
            .expect("equal lengths");
            per_party[i].push(((*name).to_owned(), shares));
        }
    }
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    PartyId::ALL.map(|party| Upload {
        upload_id: upload_id(id),
        owner: "00ff".parse().expect("valid owner"),
        schema: schema(&names),
        rows,
        policy: Default::default(),
        keys: ComponentKeys {
            own: keys[party.index()],
            next: keys[party.next().index()],
        },
        columns: per_party[party.index()].clone(),
    })
}

/// The agreed upload as the client computes it, from the keys and all
/// three components (no nodes involved).
pub fn client_agreed(uploads: &[Upload; 3]) -> AgreedUpload {
    let first = &uploads[0];
    let columns = first
        .columns
        .iter()
        .enumerate()
        .map(|(j, (name, _))| ColumnInfo {
            name: name.clone(),
            digests: PartyId::ALL.map(|c| {
                let upload = &uploads[c.index()];
                let (own, _) = upload.columns[j].1.components();
                component_digest(&upload.keys.own, &upload.upload_id, name, c, own)
            }),
        })
        .collect();
    AgreedUpload {
        upload_id: first.upload_id.clone(),
        owner: first.owner.clone(),
        rows: first.rows,
        schema: first.schema.clone(),
        columns,
        policy: first.policy.clone(),
    }
}

/// Stages and commits `upload` on one store, with the agreed upload the
/// client would compute.
pub fn store_one(store: &Store, uploads: &[Upload; 3], created_at: u64) -> TableInfo {
    let party = store.party().index();
    store.stage(&uploads[party]).expect("stage");
    store
        .commit(&client_agreed(uploads), created_at)
        .expect("commit")
}

/// Three stores, one per party, under `root`.
pub struct Trio {
    pub stores: [Store; 3],
}

impl Trio {
    pub fn open(root: &Path) -> Trio {
        Trio {
            stores: PartyId::ALL
                .map(|p| Store::open(root.join(format!("p{}", p.index())), p).expect("open")),
        }
    }

    /// The whole upload protocol: stage everywhere, cross-check, commit
    /// everywhere. Returns each node's table info.
    pub fn upload(&self, uploads: &[Upload; 3], created_at: u64) -> [TableInfo; 3] {
        let reports: Vec<_> = self
            .stores
            .iter()
            .zip(uploads)
            .map(|(store, upload)| store.stage(upload).expect("stage"))
            .collect();
        let agreed = combine([&reports[0], &reports[1], &reports[2]]).expect("cross-check");
        [0, 1, 2].map(|i| self.stores[i].commit(&agreed, created_at).expect("commit"))
    }
}

/// Reconstructs a column from the three parties' shares.
pub fn reconstruct(shares: [&Arith; 3]) -> Vec<u64> {
    let own = shares.map(|s| s.components().0);
    (0..own[0].len())
        .map(|e| own[0][e].wrapping_add(own[1][e]).wrapping_add(own[2][e]))
        .collect()
}
