//! Conversions between arithmetic and boolean sharing (Mohassel and Rindal,
//! ABY3, CCS 2018, section 5.3), specialised to the two-known-summands
//! trick: `x = u + v` with `u` known to party 0 and `v` to parties 1 and 2.

use rayon::prelude::*;

use crate::circuit::{AdderCircuit, Adjust, planes_to_words, words_to_planes};
use crate::error::Error;
use crate::party::PartyId;
use crate::session::Session;
use crate::share::{Arith, Bits, XorWords, unpack_bools};
use crate::transport::Transport;

fn check_width(op: &'static str, width: u32) -> Result<usize, Error> {
    if (1..=64).contains(&width) {
        Ok(width as usize)
    } else {
        Err(Error::Width { op, width, max: 64 })
    }
}

impl<T: Transport> Session<T> {
    /// Arithmetic to boolean: XOR shares of the low `width` bits of each
    /// element (higher bits zero). Party 0 inputs `u`'s planes, then a
    /// Kogge-Stone adder computes `u + v`: `1 + ceil(log2 width)` AND rounds.
    pub fn a2b(&mut self, x: &Arith, width: u32) -> Result<XorWords, Error> {
        let width = check_width("a2b", width)?;
        let (u, mut vs) = self.summand_planes(&x.own, &x.next, width, &[Adjust::Plain])?;
        let v = vs.pop().unwrap_or_default();
        let mut adder = AdderCircuit::new(u, v);
        self.run_circuits(&mut [&mut adder])?;
        let (own, next) = planes_to_words(&adder.output(), x.len());
        Ok(XorWords { own, next })
    }

    /// Boolean to arithmetic for full 64-bit words. The result's components
    /// 1 and 2 are fresh randomness `r_1, r_2`; party 1 knows both and inputs
    /// `s = -(r_1 + r_2)` as boolean shares, the adder computes `x + s`, and
    /// that is opened to parties 0 and 2 only, as component 0.
    pub fn b2a(&mut self, x: &XorWords) -> Result<Arith, Error> {
        let n = x.len();
        let (r_own, r_next) = self.random_pair(n);
        let id = self.id();
        let s = (id == PartyId::P1).then(|| {
            r_own
                .iter()
                .zip(&r_next)
                .map(|(a, b)| a.wrapping_add(*b).wrapping_neg())
                .collect::<Vec<u64>>()
        });
        let (s_own, s_next) = self.input_xor_words(PartyId::P1, s.as_deref(), n)?;
        let xp = words_to_planes(&x.own, &x.next, 64);
        let sp = words_to_planes(&s_own, &s_next, 64);
        let mut adder = AdderCircuit::new(xp, sp);
        self.run_circuits(&mut [&mut adder])?;
        let (y_own, y_next) = planes_to_words(&adder.output(), n);
        // Open y (= component 0) to party 0, which lacks y_2 (party 1's
        // `next`), and to party 2, which lacks y_1 (party 0's `next`).
        let step = self.next_step();
        let open = |own: &[u64], next: &[u64], missing: &[u64]| -> Vec<u64> {
            own.iter()
                .zip(next)
                .zip(missing)
                .map(|((a, b), c)| a ^ b ^ c)
                .collect()
        };
        Ok(match id {
            PartyId::P0 => {
                self.send(PartyId::P2, step, &y_next)?;
                let missing = self.recv(PartyId::P1, step, n)?;
                Arith {
                    own: open(&y_own, &y_next, &missing),
                    next: r_next,
                }
            }
            PartyId::P1 => {
                self.send(PartyId::P0, step, &y_next)?;
                Arith {
                    own: r_own,
                    next: r_next,
                }
            }
            PartyId::P2 => {
                let missing = self.recv(PartyId::P0, step, n)?;
                Arith {
                    own: r_own,
                    next: open(&y_own, &y_next, &missing),
                }
            }
        })
    }

    /// Bit injection: shares of `b` in {0, 1} as ring elements. Party 0
    /// inputs `c = b_0 ^ b_1`; `b_2` is shared for free; then
    /// `b = c + b_2 - 2 c b_2` with one multiplication. Two rounds.
    pub fn inject(&mut self, b: &Bits) -> Result<Arith, Error> {
        let n = b.len();
        let id = self.id();
        let c_values = (id == PartyId::P0).then(|| {
            let xor: Vec<u64> = b.own.iter().zip(&b.next).map(|(x, y)| x ^ y).collect();
            unpack_bools(&xor, n)
                .into_iter()
                .map(u64::from)
                .collect::<Vec<u64>>()
        });
        let c = self.input(PartyId::P0, c_values.as_deref(), n)?;
        let b2 = match id {
            PartyId::P0 => Arith::zeros(n),
            PartyId::P1 => Arith {
                own: vec![0; n],
                next: unpack_bools(&b.next, n)
                    .into_iter()
                    .map(u64::from)
                    .collect(),
            },
            PartyId::P2 => Arith {
                own: unpack_bools(&b.own, n).into_iter().map(u64::from).collect(),
                next: vec![0; n],
            },
        };
        let product = self.mul(&c, &b2)?;
        let out = self.install(|| {
            let combine = |c: &[u64], b: &[u64], p: &[u64]| -> Vec<u64> {
                c.par_iter()
                    .zip(b)
                    .zip(p)
                    .with_min_len(4096)
                    .map(|((c, b), p)| c.wrapping_add(*b).wrapping_sub(p.wrapping_mul(2)))
                    .collect()
            };
            Arith {
                own: combine(&c.own, &b2.own, &product.own),
                next: combine(&c.next, &b2.next, &product.next),
            }
        });
        Ok(out)
    }
}
