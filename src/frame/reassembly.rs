//! The reassembler: follows the frames of one call message, tells which arg
//! each chunk belongs to, verifies checksums frame by frame and enforces
//! limits.
//!
//! It never buffers: each pushed frame yields its chunks as `Bytes` slices of
//! that frame, so a consumer can stream arg3 chunk by chunk. [`ArgCollector`]
//! gathers whole args for callers that want them.
//!
//! Rules broken by a message that can still be read are *violations*
//! ([`Violation`]). A strict reassembler (the default) fails on the first one;
//! a lenient one (for tools like `tchan decode`) records them and goes on.
//! Limits on size and frame count are never lenient.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::args::ArgChunks;
use super::call::CallFragment;
use super::checksum::{Checksum, ChecksumType};
use super::headers::HeaderViolation;

/// Limits and strictness of a [`Reassembler`]. Every limit has a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Longest arg1 (the method name) accepted. Default 16 KiB, the spec's limit.
    pub(crate) max_arg1_len: usize,
    /// Most arg bytes (all three args together) in one message. Default 256 MiB.
    /// This bounds what a peer can make us hold or process for one message;
    /// a streaming consumer that wants more raises it.
    pub(crate) max_message_bytes: u64,
    /// Most frames in one message. Default 65536 (4 GiB at full frames; a
    /// flood of tiny frames hits it long before the byte limit).
    pub(crate) max_frames: u32,
    /// When true (default), a transport header that breaks the spec's rules
    /// (empty or duplicate key, key over 16 bytes, over 128 headers) fails a
    /// strict reassembler. When false it is only recorded.
    pub(crate) strict_headers: bool,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_arg1_len: 16 * 1024,
            max_message_bytes: 256 * 1024 * 1024,
            max_frames: 65536,
            strict_headers: true,
        }
    }
}

impl ReassemblyLimits {
    /// Longest arg1 (the method name) accepted. Default 16 KiB, the spec's limit.
    pub fn max_arg1_len(&self) -> usize {
        self.max_arg1_len
    }

    /// Sets [`ReassemblyLimits::max_arg1_len`].
    pub fn set_max_arg1_len(&mut self, value: usize) -> &mut Self {
        self.max_arg1_len = value;
        self
    }

    /// Most arg bytes (all three args together) in one message. Default 256 MiB.
    /// This bounds what a peer can make us hold or process for one message;
    /// a streaming consumer that wants more raises it.
    pub fn max_message_bytes(&self) -> u64 {
        self.max_message_bytes
    }

    /// Sets [`ReassemblyLimits::max_message_bytes`].
    pub fn set_max_message_bytes(&mut self, value: u64) -> &mut Self {
        self.max_message_bytes = value;
        self
    }

    /// Most frames in one message. Default 65536 (4 GiB at full frames; a
    /// flood of tiny frames hits it long before the byte limit).
    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    /// Sets [`ReassemblyLimits::max_frames`].
    pub fn set_max_frames(&mut self, value: u32) -> &mut Self {
        self.max_frames = value;
        self
    }

    /// When true (default), a transport header that breaks the spec's rules
    /// (empty or duplicate key, key over 16 bytes, over 128 headers) fails a
    /// strict reassembler. When false it is only recorded.
    pub fn strict_headers(&self) -> bool {
        self.strict_headers
    }

    /// Sets [`ReassemblyLimits::strict_headers`].
    pub fn set_strict_headers(&mut self, value: bool) -> &mut Self {
        self.strict_headers = value;
        self
    }
}

/// A rule broken by a message that can still be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// The message ended with fewer than 3 args.
    MissingArgs,
    /// The message carried more than 3 args.
    ExtraArgs,
    /// A continue frame used another checksum type than the first frame.
    ChecksumTypeChanged,
    /// arg1 is over the limit.
    Arg1TooLong,
    /// A transport header breaks the spec's rules.
    BadHeader,
    /// Unknown flag bits, or the streaming bit on a continue frame.
    BadFlags,
}

impl Violation {
    const ALL: [Violation; 6] = [
        Violation::MissingArgs,
        Violation::ExtraArgs,
        Violation::ChecksumTypeChanged,
        Violation::Arg1TooLong,
        Violation::BadHeader,
        Violation::BadFlags,
    ];

    /// The code `tchan decode` prints (`missing_args`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Violation::MissingArgs => "missing_args",
            Violation::ExtraArgs => "extra_args",
            Violation::ChecksumTypeChanged => "checksum_type_changed",
            Violation::Arg1TooLong => "arg1_too_long",
            Violation::BadHeader => "bad_header",
            Violation::BadFlags => "bad_flags",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of violations.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Violations(u8);

impl Violations {
    /// True when no rule was broken.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when `v` is in the set.
    pub fn contains(self, v: Violation) -> bool {
        self.0 & v.bit() != 0
    }

    fn insert(&mut self, v: Violation) {
        self.0 |= v.bit();
    }

    /// The violations in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Violation> {
        Violation::ALL
            .into_iter()
            .filter(move |v| self.contains(*v))
    }
}

impl fmt::Debug for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Violation::code))
            .finish()
    }
}

/// Why a message could not be reassembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReassemblyError {
    /// A frame's checksum does not match its args.
    #[error(
        "checksum mismatch in frame {frame} of the message: carried 0x{carried:08x}, computed 0x{computed:08x}"
    )]
    ChecksumMismatch {
        /// 1-based frame number within the message.
        frame: u32,
        /// The value in the frame.
        carried: u32,
        /// The value computed from the args.
        computed: u32,
    },
    /// The message ended with fewer than 3 args.
    #[error("message ended with {count} args, expected 3")]
    MissingArgs {
        /// How many it had.
        count: usize,
    },
    /// The message carried a 4th arg.
    #[error("message carries more than 3 args")]
    ExtraArgs,
    /// The checksum type changed between frames.
    #[error("checksum type changed from {first} to {now} within a message")]
    ChecksumTypeChanged {
        /// The first frame's type.
        first: ChecksumType,
        /// This frame's type.
        now: ChecksumType,
    },
    /// arg1 is over the limit.
    #[error("arg1 is over {max} bytes")]
    Arg1TooLong {
        /// The limit.
        max: usize,
    },
    /// A transport header breaks the spec's rules.
    #[error("transport headers: {0}")]
    BadHeader(HeaderViolation),
    /// Undefined flag bits, or the streaming bit on a continue frame.
    #[error("bad flags 0x{flags:02x}")]
    BadFlags {
        /// The flags byte.
        flags: u8,
    },
    /// The message's arg bytes are over the limit.
    #[error("message args are over the limit of {max} bytes")]
    MessageTooLarge {
        /// The limit.
        max: u64,
    },
    /// The message has more frames than allowed.
    #[error("message has more than {max} frames")]
    TooManyFrames {
        /// The limit.
        max: u32,
    },
    /// A frame arrived for a message that already ended.
    #[error("frame after the message's last frame")]
    AlreadyComplete,
    /// A continue frame arrived before the message's first frame.
    #[error("continue frame before the message's first frame")]
    NotStarted,
    /// A second first frame (call req / call res) arrived for the message.
    #[error("a second first frame for the same message")]
    AlreadyStarted,
    /// A frame arrived after an earlier one was refused: a failed message
    /// stays failed.
    #[error("frame after the message failed")]
    AlreadyFailed,
}

impl ReassemblyError {
    /// The violation this error reports, if it is one.
    pub fn violation(&self) -> Option<Violation> {
        Some(match self {
            ReassemblyError::MissingArgs { .. } => Violation::MissingArgs,
            ReassemblyError::ExtraArgs => Violation::ExtraArgs,
            ReassemblyError::ChecksumTypeChanged { .. } => Violation::ChecksumTypeChanged,
            ReassemblyError::Arg1TooLong { .. } => Violation::Arg1TooLong,
            ReassemblyError::BadHeader(_) => Violation::BadHeader,
            ReassemblyError::BadFlags { .. } => Violation::BadFlags,
            _ => return None,
        })
    }
}

/// One arg chunk, placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgChunk {
    /// Which arg: 0 for arg1, 1 for arg2, 2 for arg3 (3 and up only in a
    /// lenient reassembler, for extra args).
    pub index: usize,
    /// The bytes, a slice of the frame.
    pub data: Bytes,
    /// True when this chunk ends its arg.
    pub ends_arg: bool,
}

/// The chunks of one pushed frame.
#[derive(Debug, Clone)]
pub struct FrameChunks {
    args: ArgChunks,
    first_index: usize,
    message_complete: bool,
}

impl FrameChunks {
    /// True when this frame ended the message.
    pub fn message_complete(&self) -> bool {
        self.message_complete
    }

    /// arg1, arg2 and arg3 when this frame holds the whole message (the
    /// usual single-frame call): slices of the frame, no copy.
    pub fn whole_args(&self) -> Option<[Bytes; 3]> {
        if !self.message_complete || self.first_index != 0 || self.args.len() != 3 {
            return None;
        }
        let mut it = self.args.iter();
        Some([it.next()?, it.next()?, it.next()?])
    }

    /// Arg data bytes in this frame.
    pub fn data_len(&self) -> usize {
        self.args.data_len()
    }

    /// The chunks, each with its arg index.
    pub fn iter(&self) -> impl Iterator<Item = ArgChunk> + '_ {
        let n = self.args.len();
        let complete = self.message_complete;
        self.args.iter().enumerate().map(move |(i, data)| ArgChunk {
            index: self.first_index + i,
            data,
            ends_arg: i + 1 < n || complete,
        })
    }
}

/// Follows the frames of one call message.
#[derive(Debug, Clone)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    lenient: bool,
    checksum: Option<Checksum>,
    /// Args started so far (the open arg is `args - 1`).
    args: usize,
    arg1_len: usize,
    frames: u32,
    bytes: u64,
    done: bool,
    failed: bool,
    checksum_ok: bool,
    violations: Violations,
}

impl Reassembler {
    /// A strict reassembler: the first violation is an error.
    pub fn new(limits: ReassemblyLimits) -> Reassembler {
        Reassembler {
            limits,
            lenient: false,
            checksum: None,
            args: 0,
            arg1_len: 0,
            frames: 0,
            bytes: 0,
            done: false,
            failed: false,
            checksum_ok: true,
            violations: Violations::default(),
        }
    }

    /// A lenient reassembler: violations and checksum mismatches are recorded
    /// ([`violations`](Self::violations), [`checksum_ok`](Self::checksum_ok))
    /// instead of failing. Limits still fail.
    pub fn lenient(limits: ReassemblyLimits) -> Reassembler {
        Reassembler {
            lenient: true,
            ..Reassembler::new(limits)
        }
    }

    /// The rules broken so far.
    pub fn violations(&self) -> Violations {
        self.violations
    }

    /// False once a frame's checksum did not verify (or its type changed).
    pub fn checksum_ok(&self) -> bool {
        self.checksum_ok
    }

    /// True once the message's last frame was pushed.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// Number of args seen so far.
    pub fn arg_count(&self) -> usize {
        self.args
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Arg bytes seen so far.
    pub fn message_bytes(&self) -> u64 {
        self.bytes
    }

    /// The checksum type of the message (after its first frame).
    pub fn checksum_type(&self) -> Option<ChecksumType> {
        self.checksum.as_ref().map(Checksum::checksum_type)
    }

    fn violate(&mut self, v: Violation, err: ReassemblyError) -> Result<(), ReassemblyError> {
        self.violations.insert(v);
        let fatal = !self.lenient && (v != Violation::BadHeader || self.limits.strict_headers);
        if fatal { Err(err) } else { Ok(()) }
    }

    /// A message that is whole in its first frame (flag 0x01 clear): the
    /// checks a strict reassembler makes, in one pass with no state, and the
    /// frame's chunks when every one passes. `None` means the message breaks
    /// a rule or is not whole: push it through a [`Reassembler`], which
    /// names the problem.
    #[inline]
    pub fn check_whole(limits: &ReassemblyLimits, frame: CallFragment<'_>) -> Option<FrameChunks> {
        if !frame.first || frame.flags.0 != 0 || limits.max_frames == 0 {
            return None;
        }
        if let Some(h) = frame.headers
            && h.validate().is_err()
        {
            return None;
        }
        let args = frame.args;
        if args.len() != 3 {
            return None;
        }
        let mut it = args.slices();
        let (a1, a2, a3) = (it.next()?, it.next()?, it.next()?);
        if a1.len() > limits.max_arg1_len
            || (a1.len() + a2.len() + a3.len()) as u64 > limits.max_message_bytes
        {
            return None;
        }
        let ty = frame.checksum.ty;
        if ty != ChecksumType::NONE {
            let mut c = Checksum::new(ty)?;
            c.update_parts(&[a1, a2, a3]);
            if c.finish_frame(a3) != frame.checksum.value {
                return None;
            }
        }
        Some(FrameChunks {
            args: args.clone(),
            first_index: 0,
            message_complete: true,
        })
    }

    /// Takes the next frame of the message. After an error every later push
    /// fails with [`ReassemblyError::AlreadyFailed`].
    pub fn push(&mut self, frame: CallFragment<'_>) -> Result<FrameChunks, ReassemblyError> {
        if self.failed {
            return Err(ReassemblyError::AlreadyFailed);
        }
        let r = self.push_inner(frame);
        self.failed = r.is_err();
        r
    }

    fn push_inner(&mut self, frame: CallFragment<'_>) -> Result<FrameChunks, ReassemblyError> {
        if self.done {
            return Err(ReassemblyError::AlreadyComplete);
        }
        match (self.frames == 0, frame.first) {
            (true, false) => return Err(ReassemblyError::NotStarted),
            (false, true) => return Err(ReassemblyError::AlreadyStarted),
            _ => {}
        }
        self.frames += 1;
        if self.frames > self.limits.max_frames {
            return Err(ReassemblyError::TooManyFrames {
                max: self.limits.max_frames,
            });
        }
        let flags = frame.flags;
        if flags.unknown_bits() != 0 || (!frame.first && flags.streaming()) {
            self.violate(
                Violation::BadFlags,
                ReassemblyError::BadFlags { flags: flags.0 },
            )?;
        }
        if let Some(Err(e)) = frame.headers.map(|h| h.validate()) {
            self.violate(Violation::BadHeader, ReassemblyError::BadHeader(e))?;
        }
        let mut verify = true;
        match &self.checksum {
            None => self.checksum = Checksum::new(frame.checksum.ty),
            Some(c) if c.checksum_type() != frame.checksum.ty => {
                let first = c.checksum_type();
                self.checksum_ok = false;
                verify = false;
                self.violate(
                    Violation::ChecksumTypeChanged,
                    ReassemblyError::ChecksumTypeChanged {
                        first,
                        now: frame.checksum.ty,
                    },
                )?;
            }
            Some(_) => {}
        }

        // Chunk 0 of a continue frame continues the open arg; every other
        // chunk starts the next one.
        let first_index = if frame.first || self.args == 0 {
            self.args
        } else {
            self.args - 1
        };
        let mut last: &[u8] = &[];
        for (i, chunk) in frame.args.slices().enumerate() {
            last = chunk;
            let index = first_index + i;
            if index >= self.args {
                self.args = index + 1;
                if index == 3 {
                    self.violate(Violation::ExtraArgs, ReassemblyError::ExtraArgs)?;
                }
            }
            self.bytes += chunk.len() as u64;
            if self.bytes > self.limits.max_message_bytes {
                return Err(ReassemblyError::MessageTooLarge {
                    max: self.limits.max_message_bytes,
                });
            }
            if index == 0 {
                self.arg1_len += chunk.len();
                if self.arg1_len > self.limits.max_arg1_len
                    && !self.violations.contains(Violation::Arg1TooLong)
                {
                    self.violate(
                        Violation::Arg1TooLong,
                        ReassemblyError::Arg1TooLong {
                            max: self.limits.max_arg1_len,
                        },
                    )?;
                }
            }
            if let Some(c) = self.checksum.as_mut().filter(|_| verify) {
                c.update(chunk);
            }
        }
        if verify && let Some(c) = self.checksum.as_mut() {
            let computed = c.finish_frame(last);
            if c.checksum_type() != ChecksumType::NONE && computed != frame.checksum.value {
                self.checksum_ok = false;
                if !self.lenient {
                    return Err(ReassemblyError::ChecksumMismatch {
                        frame: self.frames,
                        carried: frame.checksum.value,
                        computed,
                    });
                }
            }
        }
        let message_complete = !flags.more_fragments();
        if message_complete {
            self.done = true;
            if self.args < 3 {
                self.violate(
                    Violation::MissingArgs,
                    ReassemblyError::MissingArgs { count: self.args },
                )?;
            }
        }
        Ok(FrameChunks {
            args: frame.args.clone(),
            first_index,
            message_complete,
        })
    }
}

/// Gathers the chunks of a message into whole args.
///
/// An arg that arrived in one chunk stays a slice of its frame (no copy); an
/// arg spread over several frames is kept as its chunks (a rope) and copied
/// once, into a buffer of exactly its size, only when asked for whole. The
/// three args live inline; only a (lenient) message with extra args allocates.
#[derive(Debug, Default, Clone)]
pub struct ArgCollector {
    args: [ArgBuf; 3],
    count: usize,
    extra: Vec<ArgBuf>,
}

/// One arg as it is gathered. A single chunk stays a slice of the frame it
/// came in (no copy, the usual case). From the second chunk on, every chunk
/// is a copy of exactly its bytes: a slice would keep its whole read buffer
/// alive (often a megabyte shared with other calls' frames) for as long as
/// the message is assembling, so counting arg bytes would not bound memory;
/// exact copies make the bytes held the bytes counted (a growing buffer
/// would hold up to twice as much, and fragment the heap as it grows).
#[derive(Debug, Clone)]
enum ArgBuf {
    One(Bytes),
    /// Owned copies, and their total length.
    Many(Vec<Bytes>, usize),
}

impl Default for ArgBuf {
    fn default() -> Self {
        ArgBuf::One(Bytes::new())
    }
}

impl ArgBuf {
    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        match self {
            ArgBuf::One(b) if b.is_empty() => *b = data,
            ArgBuf::One(b) => {
                let len = b.len() + data.len();
                let mut chunks = Vec::with_capacity(8);
                chunks.push(Bytes::copy_from_slice(b));
                chunks.push(Bytes::copy_from_slice(&data));
                *self = ArgBuf::Many(chunks, len);
            }
            ArgBuf::Many(chunks, len) => {
                *len += data.len();
                chunks.push(Bytes::copy_from_slice(&data));
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            ArgBuf::One(b) => b,
            ArgBuf::Many(chunks, len) => concat(&chunks, len),
        }
    }

    fn into_chunks(self) -> Vec<Bytes> {
        match self {
            ArgBuf::One(b) if b.is_empty() => Vec::new(),
            ArgBuf::One(b) => vec![b],
            ArgBuf::Many(chunks, _) => chunks,
        }
    }

    fn peek(&self) -> Bytes {
        match self {
            ArgBuf::One(b) => b.clone(),
            ArgBuf::Many(chunks, len) => concat(chunks, *len),
        }
    }
}

/// The chunks as one buffer of exactly `len` bytes.
fn concat(chunks: &[Bytes], len: usize) -> Bytes {
    let mut m = BytesMut::with_capacity(len);
    for c in chunks {
        m.extend_from_slice(c);
    }
    m.freeze()
}

impl ArgCollector {
    /// An empty collector.
    pub fn new() -> ArgCollector {
        ArgCollector::default()
    }

    /// Adds every chunk of a pushed frame.
    pub fn extend(&mut self, chunks: &FrameChunks) {
        for c in chunks.iter() {
            self.push(c);
        }
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: ArgChunk) {
        self.count = self.count.max(chunk.index + 1);
        match self.args.get_mut(chunk.index) {
            Some(slot) => slot.push(chunk.data),
            None => {
                let i = chunk.index - 3;
                if self.extra.len() <= i {
                    self.extra.resize_with(i + 1, ArgBuf::default);
                }
                self.extra[i].push(chunk.data);
            }
        }
    }

    /// Number of args seen so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True before the first chunk.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// arg `index` as gathered so far (a copy if it spans frames), without
    /// consuming the collector.
    pub fn peek(&self, index: usize) -> Bytes {
        match self.args.get(index) {
            Some(a) => a.peek(),
            None => self
                .extra
                .get(index - 3)
                .map(ArgBuf::peek)
                .unwrap_or_default(),
        }
    }

    /// arg1, arg2 and arg3 (empty where none arrived); extra args are dropped.
    pub fn into_three(self) -> [Bytes; 3] {
        self.args.map(ArgBuf::into_bytes)
    }

    /// arg1 and arg2 whole, and arg3 as chunks (one piece: the frame's
    /// slice when it arrived in one frame, else its gathered copy).
    pub fn into_two_and_chunks(self) -> (Bytes, Bytes, Vec<Bytes>) {
        let [a1, a2, a3] = self.args;
        (a1.into_bytes(), a2.into_bytes(), a3.into_chunks())
    }

    /// Every arg gathered, as many as arrived.
    pub fn into_args(self) -> Vec<Bytes> {
        let n = self.count;
        self.args
            .into_iter()
            .chain(self.extra)
            .take(n)
            .map(ArgBuf::into_bytes)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{ArgChunks, ChecksumField, Flags};

    fn frag(first: bool, flags: u8, args: &ArgChunks) -> CallFragment<'_> {
        CallFragment {
            first,
            flags: Flags(flags),
            checksum: ChecksumField::NONE,
            headers: None,
            args,
        }
    }

    #[test]
    fn a_failed_message_stays_failed() {
        // [FRAG-13] after an error nothing more is accepted for the message
        let limits = ReassemblyLimits {
            max_arg1_len: 4,
            ..ReassemblyLimits::default()
        };
        let mut r = Reassembler::new(limits);
        let long = ArgChunks::from_chunks([b"toolong"]);
        assert_eq!(
            r.push(frag(true, 1, &long)).unwrap_err(),
            ReassemblyError::Arg1TooLong { max: 4 }
        );
        let rest = ArgChunks::from_chunks([&b"x"[..], b"", b""]);
        assert_eq!(
            r.push(frag(false, 0, &rest)).unwrap_err(),
            ReassemblyError::AlreadyFailed
        );
        let mut r = Reassembler::new(ReassemblyLimits::default());
        assert_eq!(
            r.push(frag(false, 0, &rest)).unwrap_err(),
            ReassemblyError::NotStarted
        );
        assert_eq!(
            r.push(frag(true, 0, &rest)).unwrap_err(),
            ReassemblyError::AlreadyFailed
        );
    }
}
