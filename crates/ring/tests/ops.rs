//! Every protocol operation against a plaintext reference on random inputs,
//! with the edge values the issue names.

mod common;

use common::{agree, ring, shares};
use proptest::prelude::*;
use triad_ring::{Arith, PartyId, XorWords};

/// Edge values mixed with uniform ones.
fn element() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(u64::MAX),
        Just(i64::MIN as u64),
        Just(i64::MAX as u64),
        any::<u64>(),
    ]
}

fn column(max: usize) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(element(), 0..max)
}

fn pair(max: usize) -> impl Strategy<Value = (Vec<u64>, Vec<u64>)> {
    (0..max).prop_flat_map(|n| {
        (
            prop::collection::vec(element(), n),
            prop::collection::vec(element(), n),
        )
    })
}

/// Signed values in `[-2^(w-1), 2^(w-1))`, bounds included often, so any
/// difference is below `2^w`.
fn bounded_pair(max: usize) -> impl Strategy<Value = (u32, Vec<i64>, Vec<i64>)> {
    (1u32..=63, 0..max).prop_flat_map(|(w, n)| {
        let lo = -(1i64 << (w - 1));
        let hi = (1i64 << (w - 1)) - 1;
        let v = prop_oneof![Just(lo), Just(hi), Just(0i64), Just(-1i64.max(lo)), lo..=hi];
        (
            Just(w),
            prop::collection::vec(v.clone(), n),
            prop::collection::vec(v, n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn local_linear_ops(seed in any::<u64>(), (a, b) in pair(150), c in any::<u64>()) {
        let got = agree(seed, |s| {
            let x = shares(s.id(), seed, &a);
            let y = shares(s.id(), seed ^ 1, &b);
            let sum = s.reveal(&x.add(&y)?)?;
            let diff = s.reveal(&x.sub(&y)?)?;
            let neg = s.reveal(&x.neg())?;
            let scaled = s.reveal(&x.mul_public(c))?;
            let shifted = s.reveal(&x.add_public(s.id(), c))?;
            let column = s.reveal(&x.mul_public_column(&b)?)?;
            let total = s.reveal(&s.sum(&x))?;
            Ok((sum, diff, neg, scaled, shifted, column, total))
        });
        let z = |f: fn(u64, u64) -> u64| a.iter().zip(&b).map(|(x, y)| f(*x, *y)).collect::<Vec<_>>();
        prop_assert_eq!(got.0, z(u64::wrapping_add));
        prop_assert_eq!(got.1, z(u64::wrapping_sub));
        prop_assert_eq!(got.2, a.iter().map(|x| x.wrapping_neg()).collect::<Vec<_>>());
        prop_assert_eq!(got.3, a.iter().map(|x| x.wrapping_mul(c)).collect::<Vec<_>>());
        prop_assert_eq!(got.4, a.iter().map(|x| x.wrapping_add(c)).collect::<Vec<_>>());
        prop_assert_eq!(got.5, z(u64::wrapping_mul));
        prop_assert_eq!(got.6, vec![a.iter().fold(0u64, |s, x| s.wrapping_add(*x))]);
    }

    #[test]
    fn mul_and_inner_product(seed in any::<u64>(), (a, b) in pair(300)) {
        let got = agree(seed, |s| {
            let x = shares(s.id(), seed, &a);
            let y = shares(s.id(), seed ^ 1, &b);
            let z = s.mul(&x, &y)?;
            let many = s.mul_many(&[(&x, &y), (&y, &y)])?;
            let ip = s.inner_product(&x, &y)?;
            Ok((s.reveal(&z)?, s.reveal(&many[1])?, s.reveal(&ip)?))
        });
        let prod: Vec<u64> = a.iter().zip(&b).map(|(x, y)| x.wrapping_mul(*y)).collect();
        prop_assert_eq!(&got.0, &prod);
        prop_assert_eq!(got.1, b.iter().map(|y| y.wrapping_mul(*y)).collect::<Vec<_>>());
        prop_assert_eq!(got.2, vec![prod.iter().fold(0u64, |s, x| s.wrapping_add(*x))]);
    }

    #[test]
    fn input_and_reveal_to_one(seed in any::<u64>(), a in column(130), owner in 0usize..3, target in 0usize..3) {
        let owner = PartyId::from_index(owner).unwrap();
        let target = PartyId::from_index(target).unwrap();
        let n = a.len();
        let [r0, r1, r2] = triad_ring::testing::run3(seed, Default::default(), |s| {
            let mine = (s.id() == owner).then_some(a.as_slice());
            let x = s.input(owner, mine, n)?;
            let all = s.reveal(&x)?;
            let one = s.reveal_to(&x, target)?;
            Ok((all, one))
        });
        for (id, r) in PartyId::ALL.into_iter().zip([r0, r1, r2]) {
            let (all, one) = r.unwrap();
            prop_assert_eq!(&all, &a);
            if id == target {
                prop_assert_eq!(one.as_ref(), Some(&a));
            } else {
                prop_assert!(one.is_none());
            }
        }
    }

    #[test]
    fn boolean_and_xor_not(seed in any::<u64>(), bits in prop::collection::vec(any::<(bool, bool)>(), 0..200)) {
        let (a, b): (Vec<bool>, Vec<bool>) = bits.iter().copied().unzip();
        let n = a.len();
        let got = agree(seed, |s| {
            let x = s.input_bits(PartyId::P1, (s.id() == PartyId::P1).then_some(a.as_slice()), n)?;
            let y = s.input_bits(PartyId::P2, (s.id() == PartyId::P2).then_some(b.as_slice()), n)?;
            let and = s.and(&x, &y)?;
            let xor = x.xor(&y)?;
            let not = x.not(s.id());
            Ok((s.reveal_bits(&and)?, s.reveal_bits(&xor)?, s.reveal_bits(&not)?))
        });
        prop_assert_eq!(got.0, a.iter().zip(&b).map(|(x, y)| x & y).collect::<Vec<_>>());
        prop_assert_eq!(got.1, a.iter().zip(&b).map(|(x, y)| x ^ y).collect::<Vec<_>>());
        prop_assert_eq!(got.2, a.iter().map(|x| !x).collect::<Vec<_>>());
    }

    #[test]
    fn arithmetic_boolean_conversions(seed in any::<u64>(), a in column(150), width in 1u32..=64) {
        let got = agree(seed, |s| {
            let x = shares(s.id(), seed, &a);
            let bits = s.a2b(&x, width)?;
            let low = s.reveal_xor(&bits)?;
            let back = s.b2a(&bits)?;
            let full = s.a2b(&x, 64)?;
            let roundtrip = s.b2a(&full)?;
            let injected = s.inject(&full.bit(63))?;
            Ok((low, s.reveal(&back)?, s.reveal(&roundtrip)?, s.reveal(&injected)?))
        });
        let mask = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
        let low: Vec<u64> = a.iter().map(|x| x & mask).collect();
        prop_assert_eq!(&got.0, &low);
        prop_assert_eq!(&got.1, &low);
        prop_assert_eq!(&got.2, &a);
        prop_assert_eq!(got.3, a.iter().map(|x| x >> 63).collect::<Vec<_>>());
    }

    #[test]
    fn bounded_comparisons((width, a, b) in bounded_pair(150), seed in any::<u64>()) {
        let got = agree(seed, |s| {
            let x = shares(s.id(), seed, &ring(&a));
            let y = shares(s.id(), seed ^ 1, &ring(&b));
            let lt = s.lt(&x, &y, width)?;
            let le = s.le(&x, &y, width)?;
            let gt = s.gt(&x, &y, width)?;
            let ge = s.ge(&x, &y, width)?;
            let eq = s.eq(&x, &y, width)?;
            Ok([s.reveal_bits(&lt)?, s.reveal_bits(&le)?, s.reveal_bits(&gt)?, s.reveal_bits(&ge)?, s.reveal_bits(&eq)?])
        });
        let z = |f: fn(&i64, &i64) -> bool| a.iter().zip(&b).map(|(x, y)| f(x, y)).collect::<Vec<_>>();
        prop_assert_eq!(&got[0], &z(|x, y| x < y), "lt, width {}", width);
        prop_assert_eq!(&got[1], &z(|x, y| x <= y), "le");
        prop_assert_eq!(&got[2], &z(|x, y| x > y), "gt");
        prop_assert_eq!(&got[3], &z(|x, y| x >= y), "ge");
        prop_assert_eq!(&got[4], &z(|x, y| x == y), "eq");
    }

    #[test]
    fn full_range_comparison_and_equality(seed in any::<u64>(), (a, b) in pair(150)) {
        let got = agree(seed, |s| {
            let x = shares(s.id(), seed, &a);
            let y = shares(s.id(), seed ^ 1, &b);
            let lt = s.lt_full(&x, &y)?;
            let self_lt = s.lt_full(&x, &x)?;
            let eq = s.eq(&x, &y, 64)?;
            let self_eq = s.eq(&x, &x, 64)?;
            Ok([s.reveal_bits(&lt)?, s.reveal_bits(&self_lt)?, s.reveal_bits(&eq)?, s.reveal_bits(&self_eq)?])
        });
        prop_assert_eq!(&got[0], &a.iter().zip(&b).map(|(x, y)| (*x as i64) < (*y as i64)).collect::<Vec<_>>());
        prop_assert_eq!(&got[1], &vec![false; a.len()]);
        prop_assert_eq!(&got[2], &a.iter().zip(&b).map(|(x, y)| x == y).collect::<Vec<_>>());
        prop_assert_eq!(&got[3], &vec![true; a.len()]);
    }

    #[test]
    fn select_picks(seed in any::<u64>(), (a, b) in pair(150), c in prop::collection::vec(any::<bool>(), 150)) {
        let c = &c[..a.len()];
        let got = agree(seed, |s| {
            let x = shares(s.id(), seed, &a);
            let y = shares(s.id(), seed ^ 1, &b);
            let bits = s.input_bits(PartyId::P0, (s.id() == PartyId::P0).then_some(c), c.len())?;
            let picked = s.select(&bits, &x, &y)?;
            let flags = s.inject(&bits)?;
            let picked_arith = s.select_arith(&flags, &x, &y)?;
            Ok((s.reveal(&picked)?, s.reveal(&picked_arith)?))
        });
        let expected: Vec<u64> = c.iter().zip(a.iter().zip(&b)).map(|(c, (x, y))| if *c { *x } else { *y }).collect();
        prop_assert_eq!(&got.0, &expected);
        prop_assert_eq!(&got.1, &expected);
    }

    #[test]
    fn prefix_sum_and_segmented_copy(seed in any::<u64>(), a in column(200), starts in prop::collection::vec(prop::bool::weighted(0.2), 200)) {
        let starts: Vec<u64> = starts[..a.len()].iter().map(|&b| b as u64).collect();
        let got = agree(seed, |s| {
            let x = shares(s.id(), seed, &a);
            let f = shares(s.id(), seed ^ 1, &starts);
            let prefix = s.prefix_sum(&x);
            let doubled = x.mul_public(2);
            let copied = s.copy_forward(&f, &[&x, &doubled])?;
            Ok((s.reveal(&prefix)?, s.reveal(&copied[0])?, s.reveal(&copied[1])?))
        });
        let mut acc = 0u64;
        let prefix: Vec<u64> = a.iter().map(|v| { acc = acc.wrapping_add(*v); acc }).collect();
        prop_assert_eq!(got.0, prefix);
        let mut current = 0u64;
        let copied: Vec<u64> = a.iter().zip(&starts).enumerate().map(|(i, (v, f))| {
            if i == 0 || *f == 1 { current = *v; }
            current
        }).collect();
        prop_assert_eq!(&got.1, &copied);
        prop_assert_eq!(got.2, copied.iter().map(|v| v.wrapping_mul(2)).collect::<Vec<_>>());
    }

    #[test]
    fn shuffle_keeps_rows_together(seed in any::<u64>(), a in column(200)) {
        let tags: Vec<u64> = (0..a.len() as u64).collect();
        let got = agree(seed, |s| {
            let x = shares(s.id(), seed, &a);
            let t = shares(s.id(), seed ^ 1, &tags);
            let w = XorWords::public(s.id(), &tags);
            let (arith, xor) = s.shuffle(&[&x, &t], &[&w])?;
            Ok((s.reveal(&arith[0])?, s.reveal(&arith[1])?, s.reveal_xor(&xor[0])?))
        });
        let (values, tag_out, xor_tags) = got;
        prop_assert_eq!(&tag_out, &xor_tags);
        let mut sorted = tag_out.clone();
        sorted.sort_unstable();
        prop_assert_eq!(&sorted, &tags);
        for (v, t) in values.iter().zip(&tag_out) {
            prop_assert_eq!(*v, a[*t as usize]);
        }
    }
}

/// Keys with many duplicates, in `[0, 2^width)`.
fn keys(width: u32, n: usize) -> impl Strategy<Value = Vec<u64>> {
    let top = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let few = top.min(3);
    prop::collection::vec(prop_oneof![0..=few, Just(top), 0..=top], n)
}

fn sort_case() -> impl Strategy<Value = (u32, Vec<u64>)> {
    (1u32..=63, 0usize..120).prop_flat_map(|(w, n)| (Just(w), keys(w, n)))
}

fn two_limb_case() -> impl Strategy<Value = (u32, u32, Vec<(u64, u64)>)> {
    (1u32..=63, 1u32..=63, 0usize..90).prop_flat_map(|(wh, wl, n)| {
        (
            Just(wh),
            Just(wl),
            prop::collection::vec(
                (keys(wh, 1), keys(wl, 1)).prop_map(|(h, l)| (h[0], l[0])),
                n,
            ),
        )
    })
}

fn expected_order(keys: &[u64]) -> Vec<u64> {
    let mut order: Vec<u64> = (0..keys.len() as u64).collect();
    order.sort_by_key(|&i| keys[i as usize]);
    order
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn sorts_are_stable_and_correct((width, k) in sort_case(), seed in any::<u64>()) {
        let positions: Vec<u64> = (0..k.len() as u64).collect();
        for algorithm in [triad_ring::SortAlgorithm::Quick, triad_ring::SortAlgorithm::Radix] {
            let got = agree(seed, |s| {
                let key = shares(s.id(), seed, &k);
                let payload = shares(s.id(), seed ^ 1, &positions);
                let sort_key = triad_ring::SortKey::new(vec![(key.clone(), width)])?;
                let out = s.sort(&sort_key, &[&payload, &key], algorithm)?;
                Ok((s.reveal(&out[0])?, s.reveal(&out[1])?))
            });
            let expected = expected_order(&k);
            prop_assert_eq!(&got.0, &expected, "{:?} width {}", algorithm, width);
            let sorted_keys: Vec<u64> = expected.iter().map(|&i| k[i as usize]).collect();
            prop_assert_eq!(&got.1, &sorted_keys);
        }
    }

    #[test]
    fn two_limb_sorts((wh, wl, k) in two_limb_case(), seed in any::<u64>()) {
        let hi: Vec<u64> = k.iter().map(|p| p.0).collect();
        let lo: Vec<u64> = k.iter().map(|p| p.1).collect();
        let positions: Vec<u64> = (0..k.len() as u64).collect();
        for algorithm in [triad_ring::SortAlgorithm::Quick, triad_ring::SortAlgorithm::Radix] {
            let got = agree(seed, |s| {
                let h = shares(s.id(), seed, &hi);
                let l = shares(s.id(), seed ^ 1, &lo);
                let payload = shares(s.id(), seed ^ 2, &positions);
                let key = triad_ring::SortKey::new(vec![(h, wh), (l, wl)])?;
                let out = s.sort(&key, &[&payload], algorithm)?;
                s.reveal(&out[0])
            });
            let mut expected: Vec<u64> = positions.clone();
            expected.sort_by_key(|&i| k[i as usize]);
            prop_assert_eq!(&got, &expected, "{:?}", algorithm);
        }
    }
}

#[test]
fn empty_and_single_element_columns() {
    for n in [0usize, 1] {
        let values: Vec<u64> = vec![u64::MAX; n];
        let got = agree(3, |s| {
            let x = shares(s.id(), 3, &values);
            let m = s.mul(&x, &x)?;
            let lt = s.lt(&x, &x, 63)?;
            let lf = s.lt_full(&x, &x)?;
            let eq = s.eq(&x, &x, 64)?;
            let b = s.a2b(&x, 64)?;
            let back = s.b2a(&b)?;
            let (sh, _) = s.shuffle(&[&x], &[])?;
            let key = triad_ring::SortKey::new(vec![(Arith::zeros(n), 5)])?;
            let sorted = s.sort(&key, &[&x], Default::default())?;
            let copied = s.copy_forward(&x, &[&x])?;
            Ok((
                s.reveal(&m)?,
                s.reveal_bits(&lt)?,
                s.reveal_bits(&lf)?,
                s.reveal_bits(&eq)?,
                s.reveal(&back)?,
                s.reveal(&sh[0])?,
                s.reveal(&sorted[0])?,
                s.reveal(&copied[0])?,
            ))
        });
        assert_eq!(got.0, vec![1; n]);
        assert_eq!(got.1, vec![false; n]);
        assert_eq!(got.2, vec![false; n]);
        assert_eq!(got.3, vec![true; n]);
        assert_eq!(got.4, values);
        assert_eq!(got.5, values);
        assert_eq!(got.6, values);
        assert_eq!(got.7, values);
    }
}

#[test]
fn operand_errors_are_reported_not_panics() {
    let got = agree(5, |s| {
        let a = Arith::zeros(3);
        let b = Arith::zeros(4);
        let mul = s.mul(&a, &b).is_err();
        let lt_width = s.lt(&a, &a, 64).is_err();
        let lt_zero = s.lt(&a, &a, 0).is_err();
        let eq_width = s.eq(&a, &a, 65).is_err();
        let a2b_width = s.a2b(&a, 0).is_err();
        let key = triad_ring::SortKey::new(vec![(a.clone(), 64)]).is_err();
        let shuffle = s.shuffle(&[&a, &b], &[]).is_err();
        Ok([mul, lt_width, lt_zero, eq_width, a2b_width, key, shuffle])
    });
    assert_eq!(got, [true; 7]);
}

/// Long enough that pivots come from samples (the first level's and the
/// look-ahead ones), with many duplicate keys: still stable and correct.
#[test]
fn long_sorts_with_sampled_pivots_are_stable_and_correct() {
    for (n, width, seed) in [(5000usize, 6u32, 3u64), (9000, 40, 4)] {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let k: Vec<u64> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state & ((1u64 << width) - 1)
            })
            .collect();
        let positions: Vec<u64> = (0..n as u64).collect();
        let got = agree(seed, |s| {
            let key = shares(s.id(), seed, &k);
            let payload = shares(s.id(), seed ^ 1, &positions);
            let sort_key = triad_ring::SortKey::new(vec![(key, width)])?;
            let out = s.sort(&sort_key, &[&payload], triad_ring::SortAlgorithm::Quick)?;
            s.reveal(&out[0])
        });
        assert_eq!(got, expected_order(&k), "n {n} width {width}");
    }
}
