//! Boolean circuits evaluated level by level on bit planes. Every circuit
//! offers the AND gates of its next level; [`Session::run_circuits`] runs the
//! gates of all given circuits in one round per level, so independent
//! circuits (the limbs of a key, a comparison and an equality) share rounds.

use crate::bits::{from_planes, to_planes, to_planes_flat};
use crate::error::Error;
use crate::party::PartyId;
use crate::session::Session;
use crate::transport::Transport;

/// XOR shares of one bit position of a column, bit-sliced.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Plane {
    pub(crate) own: Vec<u64>,
    pub(crate) next: Vec<u64>,
}

impl Plane {
    pub(crate) fn xor(&self, other: &Plane) -> Plane {
        Plane {
            own: self
                .own
                .iter()
                .zip(&other.own)
                .map(|(a, b)| a ^ b)
                .collect(),
            next: self
                .next
                .iter()
                .zip(&other.next)
                .map(|(a, b)| a ^ b)
                .collect(),
        }
    }

    pub(crate) fn xor_assign(&mut self, other: &Plane) {
        self.own
            .iter_mut()
            .zip(&other.own)
            .for_each(|(a, b)| *a ^= b);
        self.next
            .iter_mut()
            .zip(&other.next)
            .for_each(|(a, b)| *a ^= b);
    }

    /// XORs public words into the plane (component 0 carries them).
    pub(crate) fn xor_public(&mut self, id: PartyId, words: &[u64]) {
        let target = match id {
            PartyId::P0 => &mut self.own,
            PartyId::P1 => return,
            PartyId::P2 => &mut self.next,
        };
        target.iter_mut().zip(words).for_each(|(t, w)| *t ^= w);
    }
}

/// A circuit evaluated one AND level per round.
pub(crate) trait Circuit {
    /// The AND gates of the next level; empty once the circuit is done.
    fn gates(&self) -> Vec<(&Plane, &Plane)>;
    /// Takes the outputs of the gates last offered, in order.
    fn absorb(&mut self, outputs: Vec<Plane>);
}

impl<T: Transport> Session<T> {
    /// Runs circuits side by side until all are done: one round per level.
    pub(crate) fn run_circuits(&mut self, circuits: &mut [&mut dyn Circuit]) -> Result<(), Error> {
        loop {
            let mut counts = Vec::with_capacity(circuits.len());
            let outputs = {
                let mut gates = Vec::new();
                for circuit in circuits.iter() {
                    let level = circuit.gates();
                    counts.push(level.len());
                    for (x, y) in level {
                        gates.push((
                            x.own.as_slice(),
                            x.next.as_slice(),
                            y.own.as_slice(),
                            y.next.as_slice(),
                        ));
                    }
                }
                if gates.is_empty() {
                    return Ok(());
                }
                self.and_planes(&gates)?
            };
            let mut outputs = outputs.into_iter();
            for (circuit, count) in circuits.iter_mut().zip(counts) {
                if count > 0 {
                    circuit.absorb(outputs.by_ref().take(count).collect());
                }
            }
        }
    }

    /// Boolean planes of the two summands of `x`: `x = u + v` with
    /// `u = x_0 + x_1` known to party 0 (which inputs its planes, one
    /// message) and `v = x_2` known to parties 1 and 2 (shared for free as
    /// components `(0, 0, v)`). `planes` low bits of each; `v` is adjusted
    /// as asked first, once per entry of `adjust`.
    pub(crate) fn summand_planes(
        &mut self,
        own: &[u64],
        next: &[u64],
        planes: usize,
        adjust: &[Adjust],
    ) -> Result<(Vec<Plane>, Vec<Vec<Plane>>), Error> {
        let mut out = self.summands(&[SummandRequest {
            own,
            next,
            planes,
            adjust,
        }])?;
        let (u, vs) = out.pop().unwrap_or_default();
        Ok((u, vs))
    }

    /// [`Session::summand_planes`] for several columns with one input
    /// message for all of them.
    pub(crate) fn summands(
        &mut self,
        requests: &[SummandRequest<'_>],
    ) -> Result<Vec<SummandPlanes>, Error> {
        // Every party holds two components, so any party j can play the
        // role of party 0 for a block of elements: u = x_j + x_{j+1} is known
        // to j and v = x_{j+2} to its two neighbours. The column is cut into
        // three word-aligned blocks, block j held by party j, so the input
        // bytes and the transposes are spread evenly: each party sends one
        // message, to its previous party, for its own block.
        let id = self.id();
        let me = id.index();
        let blocks: Vec<[std::ops::Range<usize>; 3]> = requests
            .iter()
            .map(|r| holder_blocks(r.own.len()))
            .collect();
        let block_words = |r: &SummandRequest<'_>, range: &std::ops::Range<usize>| {
            r.planes * range.len().div_ceil(64)
        };
        let sizes: Vec<[usize; 3]> = requests
            .iter()
            .zip(&blocks)
            .map(|(r, b)| [0, 1, 2].map(|j| block_words(r, &b[j])))
            .collect();
        let total = |j: usize| sizes.iter().map(|s| s[j]).sum::<usize>();
        let (mine, from_prev, from_next) = (total(me), total((me + 2) % 3), total((me + 1) % 3));

        let stream = self.next_step();
        let step = self.next_step();
        let mut masked = Vec::with_capacity(mine);
        for (r, b) in requests.iter().zip(&blocks) {
            let range = b[me].clone();
            let u: Vec<u64> = r.own[range.clone()]
                .iter()
                .zip(&r.next[range])
                .map(|(a, b)| a.wrapping_add(*b))
                .collect();
            masked.extend(to_planes_flat(&u, r.planes));
        }
        let mut mask = vec![0u64; mine];
        self.random_next(stream, &mut mask);
        masked.iter_mut().zip(&mask).for_each(|(m, r)| *m ^= r);
        let mut prev_mask = vec![0u64; from_prev];
        self.random_own(stream, &mut prev_mask);
        self.send(id.prev(), step, &masked)?;
        let received = self.recv(id.next(), step, from_next)?;

        let mut offsets = [0usize; 3];
        let mut results = Vec::with_capacity(requests.len());
        for ((r, b), size) in requests.iter().zip(&blocks).zip(&sizes) {
            let words = r.own.len().div_ceil(64);
            let mut u = vec![
                Plane {
                    own: vec![0u64; words],
                    next: vec![0u64; words],
                };
                r.planes
            ];
            let mut vs = vec![u.clone(); r.adjust.len()];
            for j in 0..3 {
                let block = &b[j];
                let first_word = block.start / 64;
                let bw = block.len().div_ceil(64);
                if bw == 0 {
                    continue;
                }
                let offset = offsets[j];
                // Components of u for block j: (x_j, x_{j+1}, x_{j+2}) =
                // (masked, mask, 0).
                for (k, plane) in u.iter_mut().enumerate() {
                    let at = offset + k * bw..offset + (k + 1) * bw;
                    let target = first_word..first_word + bw;
                    if j == me {
                        plane.own[target.clone()].copy_from_slice(&masked[at.clone()]);
                        plane.next[target].copy_from_slice(&mask[at]);
                    } else if j == (me + 2) % 3 {
                        plane.own[target].copy_from_slice(&prev_mask[at]);
                    } else {
                        plane.next[target].copy_from_slice(&received[at]);
                    }
                }
                // v = x_{j+2}: this party's `next` if it is j + 1, its `own`
                // if it is j + 2; the holder itself has zeros.
                if j != me {
                    let holder_is_prev = j == (me + 2) % 3;
                    let source = if holder_is_prev { r.next } else { r.own };
                    for (adjust, v_planes) in r.adjust.iter().zip(vs.iter_mut()) {
                        let v: Vec<u64> = source[block.clone()]
                            .iter()
                            .map(|x| match adjust {
                                Adjust::Plain => *x,
                                Adjust::Negate => x.wrapping_neg(),
                                Adjust::MinusOne => x.wrapping_sub(1),
                            })
                            .collect();
                        let flat = to_planes_flat(&v, r.planes);
                        for (k, plane) in v_planes.iter_mut().enumerate() {
                            let target = first_word..first_word + bw;
                            let part = &flat[k * bw..(k + 1) * bw];
                            if holder_is_prev {
                                plane.next[target].copy_from_slice(part);
                            } else {
                                plane.own[target].copy_from_slice(part);
                            }
                        }
                    }
                }
                offsets[j] += size[j];
            }
            results.push((u, vs));
        }
        Ok(results)
    }
}

/// Element ranges of the three holder blocks of an `n`-element column: word
/// aligned, so bit-sliced planes of the blocks concatenate without shifts.
fn holder_blocks(n: usize) -> [std::ops::Range<usize>; 3] {
    let words = n.div_ceil(64);
    let per_block = words.div_ceil(3) * 64;
    [0, 1, 2].map(|j| (j * per_block).min(n)..((j + 1) * per_block).min(n))
}

/// Planes of `u` and of each adjusted `v` of one column.
pub(crate) type SummandPlanes = (Vec<Plane>, Vec<Vec<Plane>>);

/// How parties 1 and 2 transform their summand `v` before splitting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Adjust {
    /// `v` itself: `u + v` is the value.
    Plain,
    /// `-v`: the value is zero iff `u == -v`.
    Negate,
    /// `v - 1`: with a carry-in `c`, `u + (v - 1) + c` is the value minus
    /// `1 - c`, for chaining limbs.
    MinusOne,
}

/// One column for [`Session::summands`].
pub(crate) struct SummandRequest<'a> {
    pub(crate) own: &'a [u64],
    pub(crate) next: &'a [u64],
    pub(crate) planes: usize,
    pub(crate) adjust: &'a [Adjust],
}

/// Bit `width` of `u + v` (the sign of a value known to lie in
/// `(-2^width, 2^width)`): `u_w ^ v_w ^ carry_w`, the carry from a
/// generate/propagate tree over bits `0..width` (ALGORITHMS.md, less-than).
///
/// The two lowest levels are fused: for each pair of bits the pair's carry
/// out is `maj(u_hi, v_hi, u_lo & v_lo)`, one AND after the low generate,
/// instead of two generates and a combine; the pair's propagate is ANDed
/// alongside. That is `1.5 width` ANDs for the first two rounds
/// instead of `2 width`, about `2.5 width` in all, in `1 + ceil(log2
/// width)` rounds.
pub(crate) struct SignCircuit {
    top: Plane,
    u: Vec<Plane>,
    v: Vec<Plane>,
    /// Keep the propagate of the range containing bit 0, for a carry-in.
    carry_in: bool,
    stage: Stage,
    /// Per pair of bits: the carry into the high bit, and the pair's
    /// propagate (if needed).
    pairs: Vec<(Plane, Option<Plane>)>,
    /// Inputs of the majority gate of each pair: `(u_hi ^ c, v_hi ^ c)`,
    /// then of the propagate AND of each pair that keeps its propagate.
    majority: Vec<(Plane, Plane)>,
    /// The unpaired top bit when `width` is odd.
    odd: Option<(Plane, Option<Plane>)>,
    /// (generate, propagate) of adjacent bit ranges, lowest first; the
    /// range containing bit 0 needs no propagate without a carry-in.
    nodes: Vec<(Plane, Option<Plane>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Leaves,
    Majority,
    Tree,
}

impl SignCircuit {
    /// `u` and `v` hold planes `0..=width`.
    pub(crate) fn new(u: Vec<Plane>, v: Vec<Plane>, width: usize) -> SignCircuit {
        let top = u[width].xor(&v[width]);
        let mut u = u;
        let mut v = v;
        u.truncate(width);
        v.truncate(width);
        SignCircuit {
            top,
            u,
            v,
            carry_in: false,
            stage: if width == 0 {
                Stage::Tree
            } else {
                Stage::Leaves
            },
            pairs: Vec::new(),
            majority: Vec::new(),
            odd: None,
            nodes: Vec::new(),
        }
    }

    /// As [`SignCircuit::new`], for a sum that will also get a carry-in
    /// bit: the circuit keeps the whole range's propagate, and
    /// [`SignCircuit::generate_propagate`] hands out both.
    pub(crate) fn with_carry_in(u: Vec<Plane>, v: Vec<Plane>, width: usize) -> SignCircuit {
        let mut circuit = SignCircuit::new(u, v, width);
        circuit.carry_in = true;
        circuit
    }

    /// `(u_w ^ v_w, G, P)` of bits `0..width` once the circuit is done, so
    /// that bit `width` of `u + v + c` is `top ^ G ^ (P & c)`.
    pub(crate) fn generate_propagate(&self) -> (Plane, Plane, Plane) {
        match self.nodes.first() {
            Some((g, Some(p))) => (self.top.clone(), g.clone(), p.clone()),
            // Callers use width >= 1, which always leaves a node.
            _ => (self.top.clone(), Plane::default(), Plane::default()),
        }
    }

    pub(crate) fn output(&self) -> Plane {
        match self.nodes.first() {
            Some((carry, _)) => self.top.xor(carry),
            None => self.top.clone(),
        }
    }

    fn propagate(&self, k: usize) -> Plane {
        self.u[k].xor(&self.v[k])
    }

    fn keeps_low_propagate(&self) -> bool {
        self.carry_in
    }
}

impl Circuit for SignCircuit {
    fn gates(&self) -> Vec<(&Plane, &Plane)> {
        match self.stage {
            Stage::Leaves => {
                let width = self.u.len();
                let mut gates = Vec::with_capacity(width + width / 2);
                for m in 0..width / 2 {
                    gates.push((&self.u[2 * m], &self.v[2 * m]));
                }
                if width % 2 == 1 {
                    gates.push((&self.u[width - 1], &self.v[width - 1]));
                }
                gates
            }
            Stage::Majority => self.majority.iter().map(|(a, b)| (a, b)).collect(),
            Stage::Tree => {
                if self.nodes.len() <= 1 {
                    return Vec::new();
                }
                let mut gates = Vec::new();
                for pair in self.nodes.chunks(2) {
                    if let [lo, hi] = pair {
                        let hi_p = hi.1.as_ref().unwrap_or(&hi.0);
                        gates.push((hi_p, &lo.0));
                        if let Some(lo_p) = &lo.1 {
                            gates.push((hi_p, lo_p));
                        }
                    }
                }
                gates
            }
        }
    }

    fn absorb(&mut self, outputs: Vec<Plane>) {
        match self.stage {
            Stage::Leaves => {
                let width = self.u.len();
                let mut outputs = outputs.into_iter();
                let mut lows = Vec::with_capacity(width / 2);
                for _ in 0..width / 2 {
                    lows.push(outputs.next().unwrap_or_default());
                }
                if width % 2 == 1 {
                    let k = width - 1;
                    let g = outputs.next().unwrap_or_default();
                    let p = (k > 0 || self.keeps_low_propagate()).then(|| self.propagate(k));
                    self.odd = Some((g, p));
                }
                self.majority = lows
                    .iter()
                    .enumerate()
                    .map(|(m, c)| (self.u[2 * m + 1].xor(c), self.v[2 * m + 1].xor(c)))
                    .collect();
                for m in 0..lows.len() {
                    if m > 0 || self.keeps_low_propagate() {
                        let pair = (self.propagate(2 * m + 1), self.propagate(2 * m));
                        self.majority.push(pair);
                    }
                }
                self.pairs = lows.into_iter().map(|c| (c, None)).collect();
                if self.pairs.is_empty() {
                    self.nodes = self.odd.take().into_iter().collect();
                    self.stage = Stage::Tree;
                } else {
                    self.stage = Stage::Majority;
                }
            }
            Stage::Majority => {
                // Outputs: one majority AND per pair, then one propagate AND
                // per pair that keeps its propagate.
                let count = self.pairs.len();
                let mut outputs = outputs.into_iter();
                let mut nodes = Vec::with_capacity(count + 1);
                let mut generates = Vec::with_capacity(count);
                for (c, _) in &self.pairs {
                    let mut g = outputs.next().unwrap_or_default();
                    g.xor_assign(c);
                    generates.push(g);
                }
                for (m, g) in generates.into_iter().enumerate() {
                    let p = (m > 0 || self.keeps_low_propagate())
                        .then(|| outputs.next().unwrap_or_default());
                    nodes.push((g, p));
                }
                nodes.extend(self.odd.take());
                self.nodes = nodes;
                self.majority.clear();
                self.pairs.clear();
                self.stage = Stage::Tree;
            }
            Stage::Tree => {
                let mut outputs = outputs.into_iter();
                let mut nodes = Vec::with_capacity(self.nodes.len().div_ceil(2));
                let old = std::mem::take(&mut self.nodes);
                let mut old = old.into_iter();
                while let Some(lo) = old.next() {
                    match old.next() {
                        Some(hi) => {
                            let t = outputs.next().unwrap_or_default();
                            let mut g = hi.0;
                            g.xor_assign(&t);
                            let p = lo.1.is_some().then(|| outputs.next().unwrap_or_default());
                            nodes.push((g, p));
                        }
                        None => nodes.push(lo),
                    }
                }
                self.nodes = nodes;
            }
        }
    }
}

/// AND of all input planes, by a balanced tree: `k - 1` ANDs in
/// `ceil(log2 k)` rounds.
pub(crate) struct AndTree {
    nodes: Vec<Plane>,
}

impl AndTree {
    pub(crate) fn new(leaves: Vec<Plane>) -> AndTree {
        AndTree { nodes: leaves }
    }

    pub(crate) fn output(&self) -> Plane {
        self.nodes.first().cloned().unwrap_or_default()
    }
}

impl Circuit for AndTree {
    fn gates(&self) -> Vec<(&Plane, &Plane)> {
        self.nodes
            .chunks(2)
            .filter_map(|pair| match pair {
                [a, b] => Some((a, b)),
                _ => None,
            })
            .collect()
    }

    fn absorb(&mut self, outputs: Vec<Plane>) {
        let odd = (self.nodes.len() % 2 == 1)
            .then(|| self.nodes.pop())
            .flatten();
        self.nodes = outputs;
        self.nodes.extend(odd);
    }
}

/// `x + y mod 2^bits` with a Kogge-Stone parallel prefix adder: all carries
/// in `1 + ceil(log2 bits)` rounds.
pub(crate) struct AdderCircuit {
    p: Vec<Plane>,
    x: Vec<Plane>,
    y: Vec<Plane>,
    /// Distance of the next prefix level; 0 before the generate level.
    distance: usize,
    /// Generate and propagate of the prefix ending at each bit.
    gen_prefix: Vec<Plane>,
    prop_prefix: Vec<Plane>,
}

impl AdderCircuit {
    pub(crate) fn new(x: Vec<Plane>, y: Vec<Plane>) -> AdderCircuit {
        let p = x.iter().zip(&y).map(|(a, b)| a.xor(b)).collect();
        AdderCircuit {
            p,
            x,
            y,
            distance: 0,
            gen_prefix: Vec::new(),
            prop_prefix: Vec::new(),
        }
    }

    /// Carries needed: into bits 1..bits.
    fn carries(&self) -> usize {
        self.p.len().saturating_sub(1)
    }

    pub(crate) fn output(&self) -> Vec<Plane> {
        self.p
            .iter()
            .enumerate()
            .map(|(k, p)| {
                if k == 0 {
                    p.clone()
                } else {
                    p.xor(&self.gen_prefix[k - 1])
                }
            })
            .collect()
    }
}

impl Circuit for AdderCircuit {
    fn gates(&self) -> Vec<(&Plane, &Plane)> {
        let m = self.carries();
        if self.distance == 0 {
            return self.x.iter().zip(&self.y).take(m).collect();
        }
        let d = self.distance;
        if d >= m {
            return Vec::new();
        }
        let mut gates = Vec::new();
        for k in d..m {
            gates.push((&self.prop_prefix[k], &self.gen_prefix[k - d]));
            if k >= 2 * d {
                gates.push((&self.prop_prefix[k], &self.prop_prefix[k - d]));
            }
        }
        gates
    }

    fn absorb(&mut self, outputs: Vec<Plane>) {
        let m = self.carries();
        if self.distance == 0 {
            self.gen_prefix = outputs;
            self.prop_prefix = self.p[..m].to_vec();
            self.distance = 1;
            return;
        }
        let d = self.distance;
        let mut outputs = outputs.into_iter();
        // The gates already read the previous level, so positions update
        // independently.
        let mut updates = Vec::with_capacity(m - d);
        for k in d..m {
            let t = outputs.next().unwrap_or_default();
            let p = (k >= 2 * d).then(|| outputs.next().unwrap_or_default());
            updates.push((k, t, p));
        }
        for (k, t, p) in updates {
            self.gen_prefix[k] = self.gen_prefix[k].xor(&t);
            if let Some(p) = p {
                self.prop_prefix[k] = p;
            }
        }
        self.distance = 2 * d;
    }
}

/// Joins planes into one word per element.
pub(crate) fn planes_to_words(planes: &[Plane], len: usize) -> (Vec<u64>, Vec<u64>) {
    let own: Vec<&[u64]> = planes.iter().map(|p| p.own.as_slice()).collect();
    let next: Vec<&[u64]> = planes.iter().map(|p| p.next.as_slice()).collect();
    (from_planes(&own, len), from_planes(&next, len))
}

/// Splits shares of one word per element into planes.
pub(crate) fn words_to_planes(own: &[u64], next: &[u64], planes: usize) -> Vec<Plane> {
    to_planes(own, planes)
        .into_iter()
        .zip(to_planes(next, planes))
        .map(|(own, next)| Plane { own, next })
        .collect()
}
