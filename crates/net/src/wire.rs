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

/// Version of this crate's wire protocol; bump on any change of the hello
/// or framing.
pub const NET_PROTOCOL_VERSION: u32 = 1;

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
