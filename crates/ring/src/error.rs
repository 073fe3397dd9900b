use crate::party::PartyId;
use crate::transport::TransportError;

/// Everything a protocol run can fail with. No variant carries a share or a
/// value, so errors can be logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport to a peer failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A peer sent a message that does not fit the protocol.
    #[error("bad message from {peer} at step {step}: {problem}")]
    Protocol {
        /// The peer that sent it.
        peer: PartyId,
        /// The step this party expected.
        step: u64,
        /// What was wrong.
        problem: ProtocolProblem,
    },
    /// Two inputs of one operation have different lengths.
    #[error("{op}: operands have {left} and {right} elements")]
    LengthMismatch {
        /// The operation.
        op: &'static str,
        /// Length of the first operand.
        left: usize,
        /// Length of the other operand.
        right: usize,
    },
    /// A declared bit width is outside what the operation supports.
    #[error("{op}: width {width} is not in 1..={max}")]
    Width {
        /// The operation.
        op: &'static str,
        /// The width asked for.
        width: u32,
        /// The largest width supported.
        max: u32,
    },
    /// Shares received for reconstruction disagree: a party lied or data was
    /// corrupted.
    #[error("inconsistent shares: component {component} differs at element {index}")]
    Inconsistent {
        /// The share component that two parties reported differently.
        component: usize,
        /// The element where they differ.
        index: usize,
    },
    /// A revealed value that must be a permutation is not one.
    #[error("{op}: revealed vector is not a permutation of 0..{len}")]
    NotPermutation {
        /// The operation.
        op: &'static str,
        /// The vector's length.
        len: usize,
    },
    /// The per-session thread pool could not be built.
    #[error("building the thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    /// The OS random generator failed.
    #[error("the OS random generator failed: {0}")]
    Randomness(getrandom::Error),
}

/// What was wrong with a peer's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolProblem {
    /// Shorter than the fixed header.
    #[error("message of {len} bytes is shorter than the header")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// Another protocol version.
    #[error("protocol version {got}, expected {expected}")]
    Version {
        /// Version this party speaks.
        expected: u8,
        /// Version received.
        got: u8,
    },
    /// The sender is at another step of the protocol.
    #[error("message is for step {got}")]
    WrongStep {
        /// Step the message carries.
        got: u64,
    },
    /// The payload has another number of elements than the step needs.
    #[error("{got} elements where {expected} were expected")]
    WrongLength {
        /// Elements expected.
        expected: u64,
        /// Elements the header or payload gave.
        got: u64,
    },
}
