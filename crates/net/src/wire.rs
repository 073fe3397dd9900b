//! Bytes on a stream: the hello that opens each direction, and the frame
//! header. Pure functions, no I/O, so they can be tested and fuzzed alone.
//!
//! Each direction between two parties is one unidirectional QUIC stream:
//!
//! ```text
//! hello   = "triadnet" (8 bytes) | version: u32 LE | party index: u32 LE
//! frame   = word count n: u64 LE | n words, each u64 LE
//! ```
//!
//! The stream ends (FIN) when the sender closes the transport.

use triad_ring::PartyId;

use crate::error::NetError;

/// Version of the node-to-node protocol: this crate's hello and framing,
/// and the sequence of messages the nodes exchange over them. Bump on any
/// change of either, so that nodes of different releases refuse each other
/// by name rather than as malformed messages. 2: nodes say at each
/// formation whether they wait to be rebuilt.
pub const NET_PROTOCOL_VERSION: u32 = 2;

/// Bytes of a hello.
pub(crate) const HELLO_BYTES: usize = 16;

/// First bytes of every hello.
const MAGIC: &[u8; 8] = b"triadnet";

/// Bytes of a frame header.
pub(crate) const HEADER_BYTES: usize = 8;

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

/// The header of a frame of `words` words.
pub(crate) fn header(words: usize) -> [u8; HEADER_BYTES] {
    (words as u64).to_le_bytes()
}

/// The word count a header announces, if it is at most `words_max` (checked
/// before anything is allocated for the frame).
pub(crate) fn frame_words(
    header: [u8; HEADER_BYTES],
    words_max: u64,
    peer: PartyId,
) -> Result<usize, NetError> {
    let words = u64::from_le_bytes(header);
    let too_large = NetError::FrameTooLarge {
        peer,
        words,
        words_max,
    };
    if words > words_max {
        return Err(too_large);
    }
    // The byte length must fit the address space too.
    match usize::try_from(words) {
        Ok(n) if n.checked_mul(8).is_some() => Ok(n),
        _ => Err(too_large),
    }
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
    fn frame_headers_are_bounded_before_allocation() {
        assert_eq!(frame_words(header(0), 10, PartyId::P0).unwrap(), 0);
        assert_eq!(frame_words(header(10), 10, PartyId::P0).unwrap(), 10);
        assert!(matches!(
            frame_words(header(11), 10, PartyId::P0),
            Err(NetError::FrameTooLarge { words: 11, .. })
        ));
        assert!(frame_words(u64::MAX.to_le_bytes(), u64::MAX, PartyId::P0).is_err());
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
        fn a_frame_header_is_accepted_only_up_to_the_maximum(
            header in any::<[u8; HEADER_BYTES]>(),
            words_max in prop_oneof![any::<u64>(), 0u64..1 << 20],
            peer in party(),
        ) {
            let announced = u64::from_le_bytes(header);
            match frame_words(header, words_max, peer) {
                Ok(words) => {
                    prop_assert!(announced <= words_max);
                    prop_assert_eq!(words as u64, announced);
                    prop_assert!(words.checked_mul(8).is_some());
                }
                Err(NetError::FrameTooLarge { words, .. }) => {
                    prop_assert_eq!(words, announced);
                    prop_assert!(announced > words_max || announced > (usize::MAX / 8) as u64);
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

    /// A header announcing 2^40 words (8 TiB) is refused from the header
    /// alone, under the default maximum: the reader allocates the frame only
    /// after this check.
    #[test]
    fn a_huge_announced_frame_is_refused_before_allocation() {
        let words_max = default_words_max();
        for words in [1u64 << 40, words_max + 1, u64::MAX] {
            let error = frame_words(words.to_le_bytes(), words_max, PartyId::P1).unwrap_err();
            assert!(
                matches!(error, NetError::FrameTooLarge { words: w, .. } if w == words),
                "{error}"
            );
        }
        assert_eq!(
            frame_words(words_max.to_le_bytes(), words_max, PartyId::P1).ok(),
            usize::try_from(words_max).ok()
        );
    }
}
