//! What a relay reads from the frames it forwards, and how it rewrites them.
//!
//! A relay routes a call by the first frame alone: [`RelayHead::parse`]
//! reads the service, the routing headers and arg1 (the endpoint) from a call
//! req's bytes, bounds-checked, without touching the other args or verifying
//! the checksum (the destination does that). [`Forward`] then rewrites a
//! frame for the other connection: a new message id and, for a call req, a
//! lower ttl. Everything else (flags, tracing, headers, checksum, args) goes
//! out as the same bytes, by reference: no arg byte is copied.

use bytes::Bytes;

use crate::frame::{
    CallReq, DecodeError, FrameHeader, FrameType, HEADER_LEN, MAX_ARG1_LEN, Tracing,
    TransportHeaders,
};

/// Offset of the ttl in a call req's payload (after `flags:1`).
const TTL_AT: usize = 1;

/// Why a call req cannot be relayed. Each is answered with an error frame
/// (bad request) for the call's id; none closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayParseError {
    /// The frame is not a call req.
    NotCallReq(FrameType),
    /// The call req does not decode.
    Malformed(DecodeError),
    /// Arg1 continues in a later frame, or the call req has no arg chunk: a
    /// relay reads the endpoint from the first frame only ([RELAY-2]).
    Arg1NotInFirstFrame,
    /// Arg1 is longer than [`MAX_ARG1_LEN`].
    Arg1TooLong(usize),
    /// The service name is empty.
    NoService,
}

impl std::fmt::Display for RelayParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayParseError::NotCallReq(t) => write!(f, "not a call req: {t:?}"),
            RelayParseError::Malformed(e) => write!(f, "malformed call req: {e}"),
            RelayParseError::Arg1NotInFirstFrame => {
                f.write_str("arg1 must be whole in the first frame of a relayed call")
            }
            RelayParseError::Arg1TooLong(n) => {
                write!(f, "arg1 of {n} bytes is over the limit of {MAX_ARG1_LEN}")
            }
            RelayParseError::NoService => f.write_str("empty service name"),
        }
    }
}

impl std::error::Error for RelayParseError {}

/// What a relay needs from the first frame of a call: the parts are slices
/// of the frame's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayHead {
    /// The call's message id on the connection it arrived on.
    pub id: u32,
    /// The ttl the caller gave, in milliseconds.
    pub ttl: u32,
    /// The call's tracing (for the errors the relay answers it with).
    pub tracing: Tracing,
    /// `service~1`.
    pub service: Bytes,
    /// The transport headers (`cn`, `rd`, `as`, `sk`, ...).
    pub headers: TransportHeaders,
    /// Arg1 as far as this frame has it: the endpoint (method) name.
    pub arg1: Bytes,
    /// Arg1 ends this frame and more frames follow, so by the protocol it may
    /// go on in the next one: the next frame's first chunk tells (empty: it
    /// did not; [RELAY-2]).
    pub arg1_open: bool,
}

impl RelayHead {
    /// Reads a call req frame (`header` and its payload). Fails, without
    /// panicking, on anything that is not a relayable call req.
    pub fn parse(header: FrameHeader, payload: &Bytes) -> Result<RelayHead, RelayParseError> {
        if header.frame_type != FrameType::CALL_REQ {
            return Err(RelayParseError::NotCallReq(header.frame_type));
        }
        let req = CallReq::decode(header, payload).map_err(RelayParseError::Malformed)?;
        if req.service.is_empty() {
            return Err(RelayParseError::NoService);
        }
        // [RELAY-2] arg1 is whole when another arg follows it in this frame,
        // or when no frame follows.
        // A frame with no arg chunk at all does not carry arg1 either.
        let mut chunks = req.args.iter();
        let Some(arg1) = chunks.next() else {
            return Err(RelayParseError::Arg1NotInFirstFrame);
        };
        let arg1_open = chunks.next().is_none() && req.flags.more_fragments();
        if arg1.len() > MAX_ARG1_LEN {
            return Err(RelayParseError::Arg1TooLong(arg1.len()));
        }
        Ok(RelayHead {
            id: req.id,
            ttl: req.ttl,
            tracing: req.tracing,
            service: req.service,
            headers: req.headers,
            arg1,
            arg1_open,
        })
    }

    /// The service to route to: the routing delegate (`rd`) when the caller
    /// set one, else the service ([RELAY-1]).
    pub fn route(&self) -> &[u8] {
        match self.headers.get(b"rd") {
            Some(rd) if !rd.is_empty() => rd,
            _ => &self.service,
        }
    }

    /// The caller's name (`cn`), empty when it gave none.
    pub fn caller(&self) -> &[u8] {
        self.headers.get(b"cn").unwrap_or_default()
    }
}

/// A frame rewritten for the other connection: a fresh 16-byte header (and,
/// for a call req, its flags byte and new ttl) followed by the rest of the
/// original payload, shared, not copied. Write [`Forward::head`] then
/// [`Forward::rest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    head: [u8; HEADER_LEN + TTL_AT + 4],
    head_len: usize,
    rest: Bytes,
}

impl Forward {
    /// Any frame with its message id replaced by `id` (for call req
    /// continues, cancels, and every frame of a response on its way back).
    pub fn with_id(header: FrameHeader, payload: Bytes, id: u32) -> Forward {
        let mut head = [0u8; HEADER_LEN + TTL_AT + 4];
        write_header(&mut head, header, id);
        Forward {
            head,
            head_len: HEADER_LEN,
            rest: payload,
        }
    }

    /// A call req with its id replaced by `id` and its ttl by `ttl`
    /// (the relay lowers it by the time the call spent in the relay and
    /// clamps it to its max ttl: [`lowered_ttl`]). `None` when the payload is
    /// too short to be a call req.
    pub fn call_req(header: FrameHeader, payload: Bytes, id: u32, ttl: u32) -> Option<Forward> {
        if header.frame_type != FrameType::CALL_REQ || payload.len() < TTL_AT + 4 {
            return None;
        }
        let mut head = [0u8; HEADER_LEN + TTL_AT + 4];
        write_header(&mut head, header, id);
        head[HEADER_LEN] = payload[0];
        head[HEADER_LEN + TTL_AT..].copy_from_slice(&ttl.to_be_bytes());
        Some(Forward {
            head,
            head_len: HEADER_LEN + TTL_AT + 4,
            rest: payload.slice(TTL_AT + 4..),
        })
    }

    /// The rewritten bytes to write first.
    pub fn head(&self) -> &[u8] {
        &self.head[..self.head_len]
    }

    /// The rest of the original frame, shared with the buffer it came in.
    pub fn rest(&self) -> &Bytes {
        &self.rest
    }

    /// Length of the whole frame.
    pub fn len(&self) -> usize {
        self.head_len + self.rest.len()
    }

    /// Never true: a frame has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }
}

fn write_header(dst: &mut [u8], header: FrameHeader, id: u32) {
    dst[0..2].copy_from_slice(&header.size.to_be_bytes());
    dst[2] = header.frame_type.0;
    // Reserved bytes (3, 8..16) are written as zero (FRAME-8).
    dst[4..8].copy_from_slice(&id.to_be_bytes());
}

/// The ttl to forward: what the caller gave, less the time the call spent in
/// the relay, at most `max`, in milliseconds. Zero means the call has
/// already timed out: answer it with a timeout instead ([RELAY-3]).
pub fn lowered_ttl(ttl: u32, spent: std::time::Duration, max: std::time::Duration) -> u32 {
    let spent = u32::try_from(spent.as_millis()).unwrap_or(u32::MAX);
    let max = u32::try_from(max.as_millis()).unwrap_or(u32::MAX);
    ttl.saturating_sub(spent).min(max)
}
