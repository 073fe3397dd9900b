//! Bytes on a stream: the hello that opens each direction, and the frame
//! header. Pure functions, no I/O, so they can be tested and fuzzed alone.
//!
//! Each direction between two parties is one unidirectional QUIC stream:
//!
//! ```text
//! hello   = "triadnet" (8 bytes) | version: u32 LE | party index: u32 LE
//!           | lane: u16 LE | lanes: u16 LE
//! frame   = part+
//! part    = part words p: u64 LE | frame words n: u64 LE | p words, each u64 LE
//! ```
//!
//! Two peers may be linked by several connections ("lanes"), each with one
//! stream per direction; the hello says which lane of how many this is.
//! Parts go to the lanes in turn (part `k` of everything sent to a peer on
//! lane `k mod lanes`), so each lane's connection encrypts and sends its
//! share of a large frame on its own runtime task.
//!
//! A frame of `n` words travels as one or more parts whose word counts add
//! up to `n` (a frame of no words is one empty part), so a sender can put
//! the first part of a large vector on the wire while it computes the rest;
//! every part repeats `n`, and the receiver gathers the parts straight into
//! one buffer of `n` words allocated at the first. The stream ends (FIN)
//! when the sender closes the transport.

use triad_ring::PartyId;

use crate::error::NetError;

/// Version of the node-to-node protocol: this crate's hello and framing,
/// and the sequence of messages the nodes exchange over them. Bump on any
/// change of either, so that nodes of different releases refuse each other
/// by name rather than as malformed messages. 2: nodes say at each
/// formation whether they wait to be rebuilt. 3: frames travel in parts,
/// and hellos carry the lane.
pub const NET_PROTOCOL_VERSION: u32 = 3;

/// Bytes of a hello.
pub(crate) const HELLO_BYTES: usize = 16;

/// Bytes of the lane words that follow a hello (read only once the hello's
/// version is known to match, so that a node of another version is named
/// as such rather than as a malformed hello).
pub(crate) const LANE_BYTES: usize = 4;

/// First bytes of every hello.
const MAGIC: &[u8; 8] = b"triadnet";

/// Bytes of a part header.
pub(crate) const HEADER_BYTES: usize = 16;

/// The hello a party sends first on its stream to a peer.
pub(crate) fn hello(version: u32, party: PartyId) -> [u8; HELLO_BYTES] {
    let mut bytes = [0u8; HELLO_BYTES];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    bytes[12..].copy_from_slice(&(party.index() as u32).to_le_bytes());
    bytes
}

/// Checks the hello received from `peer` (identified by its certificate):
/// right magic, our version, and the party the certificate belongs to.
pub(crate) fn check_hello(
    bytes: &[u8; HELLO_BYTES],
    version: u32,
    peer: PartyId,
) -> Result<(), NetError> {
    if &bytes[..8] != MAGIC {
        return Err(NetError::BadHello { peer });
    }
    let word = |range: std::ops::Range<usize>| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&bytes[range]);
        u32::from_le_bytes(w)
    };
    let theirs = word(8..12);
    if theirs != version {
        return Err(NetError::VersionMismatch {
            peer,
            ours: version,
            theirs,
        });
    }
    let claimed = word(12..16);
    if claimed as usize != peer.index() {
        return Err(NetError::WrongParty { peer, claimed });
    }
    Ok(())
}

/// The header of a part of `part` words of a frame of `frame` words.
pub(crate) fn header(part: usize, frame: usize) -> [u8; HEADER_BYTES] {
    let mut bytes = [0u8; HEADER_BYTES];
    bytes[..8].copy_from_slice(&(part as u64).to_le_bytes());
    bytes[8..].copy_from_slice(&(frame as u64).to_le_bytes());
    bytes
}

/// The part and frame word counts a part header announces, given the
/// frame in progress (`received` of `expected` words), or `None` between
/// frames. A frame longer than `words_max` is refused before anything is
/// allocated for it; a part must be non-empty (unless it is a whole empty
/// frame), continue the frame in progress and not run past its end.
pub(crate) fn part_words(
    header: [u8; HEADER_BYTES],
    in_progress: Option<(usize, usize)>,
    words_max: u64,
    peer: PartyId,
) -> Result<(usize, usize), NetError> {
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let (part, frame) = (word(0), word(8));
    let too_large = NetError::FrameTooLarge {
        peer,
        words: frame,
        words_max,
    };
    if frame > words_max {
        return Err(too_large);
    }
    // The byte length must fit the address space too.
    let frame_len = match usize::try_from(frame) {
        Ok(n) if n.checked_mul(8).is_some() => n,
        _ => return Err(too_large),
    };
    let (received, expected) = in_progress.unwrap_or((0, frame_len));
    let bad = NetError::BadPart {
        peer,
        part,
        frame,
        received: received as u64,
        expected: expected as u64,
    };
    let fits = frame_len == expected
        && part <= expected.saturating_sub(received) as u64
        && (part > 0 || expected == 0);
    if !fits {
        return Err(bad);
    }
    Ok((part as usize, frame_len))
}

/// The lane words after a hello: this connection is lane `lane` of
/// `lanes`.
pub(crate) fn lane(lane: usize, lanes: usize) -> [u8; LANE_BYTES] {
    let mut bytes = [0u8; LANE_BYTES];
    bytes[..2].copy_from_slice(&(lane as u16).to_le_bytes());
    bytes[2..].copy_from_slice(&(lanes as u16).to_le_bytes());
    bytes
}

/// Checks the lane words from `peer` against our lane count; gives the
/// lane.
pub(crate) fn check_lane(
    bytes: [u8; LANE_BYTES],
    lanes: usize,
    peer: PartyId,
) -> Result<usize, NetError> {
    let lane = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
    let theirs = usize::from(u16::from_le_bytes([bytes[2], bytes[3]]));
    if theirs != lanes {
        return Err(NetError::LanesMismatch {
            peer,
            ours: lanes,
            theirs,
        });
    }
    if lane >= lanes {
        return Err(NetError::BadHello { peer });
    }
    Ok(lane)
}

/// Bytes of the reason sent with a version-mismatch close: our version, so
/// the dialer can name both.
pub(crate) fn version_reason(version: u32) -> [u8; 4] {
    version.to_le_bytes()
}

/// The acceptor's version from a version-mismatch close reason (0 if the
/// reason is not one).
pub(crate) fn version_from_reason(reason: &[u8]) -> u32 {
    reason
        .try_into()
        .map(u32::from_le_bytes)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_names_each_problem() {
        let h = hello(NET_PROTOCOL_VERSION, PartyId::P2);
        check_hello(&h, NET_PROTOCOL_VERSION, PartyId::P2).unwrap();
        assert!(matches!(
            check_hello(&h, NET_PROTOCOL_VERSION, PartyId::P1),
            Err(NetError::WrongParty {
                peer: PartyId::P1,
                claimed: 2
            })
        ));
        let newer = hello(NET_PROTOCOL_VERSION + 1, PartyId::P2);
        let error = check_hello(&newer, NET_PROTOCOL_VERSION, PartyId::P2).unwrap_err();
        assert!(matches!(
            error,
            NetError::VersionMismatch { ours, theirs, .. }
                if ours == NET_PROTOCOL_VERSION && theirs == NET_PROTOCOL_VERSION + 1
        ));
        assert!(error.to_string().contains("version"));
        let mut garbage = h;
        garbage[0] = b'x';
        assert!(matches!(
            check_hello(&garbage, NET_PROTOCOL_VERSION, PartyId::P2),
            Err(NetError::BadHello { .. })
        ));
    }

    #[test]
    fn lane_words_round_trip_and_a_lane_count_mismatch_is_named() {
        let p = PartyId::P1;
        assert_eq!(check_lane(lane(0, 1), 1, p).unwrap(), 0);
        assert_eq!(check_lane(lane(2, 3), 3, p).unwrap(), 2);
        let error = check_lane(lane(0, 2), 4, p).unwrap_err();
        assert!(matches!(
            error,
            NetError::LanesMismatch {
                ours: 4,
                theirs: 2,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "party 1 links with 2 connections, this node with 4; set the same `lanes` on all three nodes"
        );
        assert!(matches!(
            check_lane(lane(3, 3), 3, p),
            Err(NetError::BadHello { .. })
        ));
    }

    #[test]
    fn part_headers_are_bounded_before_allocation_and_must_continue_their_frame() {
        let p = PartyId::P0;
        assert_eq!(part_words(header(0, 0), None, 10, p).unwrap(), (0, 0));
        assert_eq!(part_words(header(10, 10), None, 10, p).unwrap(), (10, 10));
        assert_eq!(part_words(header(4, 10), None, 10, p).unwrap(), (4, 10));
        assert_eq!(
            part_words(header(6, 10), Some((4, 10)), 10, p).unwrap(),
            (6, 10)
        );
        assert!(matches!(
            part_words(header(11, 11), None, 10, p),
            Err(NetError::FrameTooLarge { words: 11, .. })
        ));
        let mut huge = header(1, 0);
        huge[8..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(part_words(huge, None, u64::MAX, p).is_err());
        for (part, frame, in_progress) in [
            (0, 10, None),          // empty part of a non-empty frame
            (11, 10, None),         // part longer than its frame
            (7, 10, Some((4, 10))), // past the end of the frame in progress
            (2, 9, Some((4, 10))),  // another frame's length
            (0, 10, Some((4, 10))), // empty continuation
        ] {
            let error = part_words(header(part, frame), in_progress, 10, p).unwrap_err();
            assert!(matches!(error, NetError::BadPart { .. }), "{error}");
        }
        let error = part_words(header(7, 10), Some((4, 10)), 10, PartyId::P2).unwrap_err();
        assert_eq!(
            error.to_string(),
            "party 2 sent a part of 7 words for a frame of 10 words with 4 of 10 received"
        );
        assert_eq!(version_from_reason(&version_reason(7)), 7);
        assert_eq!(version_from_reason(b"nope!"), 0);
    }
}

/// The decoders of stream bytes on hostile input: everything a peer can put
/// in a hello or a frame header. They are private, so the properties live
/// here; `tests/hostile.rs` covers the public decoders.
#[cfg(test)]
mod hostile {
    use proptest::prelude::*;

    use super::*;
    use crate::config::MeshConfig;

    fn party() -> impl Strategy<Value = PartyId> {
        prop::sample::select(PartyId::ALL.to_vec())
    }

    /// The maximum a mesh gets unless configured otherwise.
    fn default_words_max() -> u64 {
        let identity = crate::NodeIdentity::generate().expect("identity");
        let peer = |party| crate::PeerConfig {
            party,
            address: None,
            certificate: identity.certificate().clone(),
        };
        MeshConfig::new(
            PartyId::P0,
            "127.0.0.1:0".parse().expect("address"),
            identity.clone(),
            [peer(PartyId::P1), peer(PartyId::P2)],
        )
        .frame_words_max
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn only_the_exact_hello_is_accepted(
            bytes in any::<[u8; HELLO_BYTES]>(),
            version in any::<u32>(),
            peer in party(),
        ) {
            let accepted = check_hello(&bytes, version, peer).is_ok();
            prop_assert_eq!(accepted, bytes == hello(version, peer));
        }

        #[test]
        fn an_edited_hello_is_refused(
            version in any::<u32>(),
            peer in party(),
            at in 0..HELLO_BYTES,
            mask in 1u8..,
        ) {
            let mut bytes = hello(version, peer);
            prop_assert!(check_hello(&bytes, version, peer).is_ok());
            bytes[at] ^= mask;
            prop_assert!(check_hello(&bytes, version, peer).is_err());
        }

        #[test]
        fn a_part_header_is_accepted_only_within_the_maximum_and_its_frame(
            header in any::<[u8; HEADER_BYTES]>(),
            words_max in prop_oneof![any::<u64>(), 0u64..1 << 20],
            in_progress in prop::option::of((0usize..1 << 20, 0usize..1 << 20)),
            peer in party(),
        ) {
            let in_progress = in_progress.map(|(a, b)| (a.min(b), a.max(b)));
            let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
            let (part, frame) = (word(0), word(8));
            match part_words(header, in_progress, words_max, peer) {
                Ok((p, n)) => {
                    prop_assert!(frame <= words_max);
                    prop_assert_eq!((p as u64, n as u64), (part, frame));
                    prop_assert!(n.checked_mul(8).is_some());
                    let (received, expected) = in_progress.unwrap_or((0, n));
                    prop_assert_eq!(n, expected);
                    prop_assert!(received + p <= n);
                    prop_assert!(p > 0 || n == 0);
                }
                Err(NetError::FrameTooLarge { words, .. }) => {
                    prop_assert_eq!(words, frame);
                    prop_assert!(frame > words_max || frame > (usize::MAX / 8) as u64);
                }
                Err(NetError::BadPart { part: p, frame: n, .. }) => {
                    prop_assert_eq!((p, n), (part, frame));
                    prop_assert!(frame <= words_max);
                }
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }

        #[test]
        fn close_reasons_of_any_bytes_read_as_a_version_or_zero(
            reason in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            let version = version_from_reason(&reason);
            if reason.len() != 4 {
                prop_assert_eq!(version, 0);
            } else {
                prop_assert_eq!(version_reason(version).to_vec(), reason);
            }
        }
    }

    /// A header announcing a frame of 2^40 words (8 TiB) is refused from
    /// the header alone, under the default maximum: the reader allocates the
    /// frame only after this check.
    #[test]
    fn a_huge_announced_frame_is_refused_before_allocation() {
        let words_max = default_words_max();
        for words in [1u64 << 40, words_max + 1, u64::MAX] {
            let mut bytes = header(1, 0);
            bytes[8..].copy_from_slice(&words.to_le_bytes());
            let error = part_words(bytes, None, words_max, PartyId::P1).unwrap_err();
            assert!(
                matches!(error, NetError::FrameTooLarge { words: w, .. } if w == words),
                "{error}"
            );
        }
        let max = usize::try_from(words_max).expect("fits");
        assert_eq!(
            part_words(header(max, max), None, words_max, PartyId::P1).ok(),
            Some((max, max))
        );
    }
}
