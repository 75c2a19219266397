//! The fragmenter: writes a call message as frames of at most the maximum
//! frame size, straight into an output buffer.
//!
//! Rules (spec/05-fragmentation.md): args go in order, each `arg~2` counting
//! the bytes of that arg in this frame. An arg that does not fit is cut at the
//! frame end and the frame gets flag 0x01. Starting the next arg needs two
//! bytes for its length: with two or more left they are written in the same
//! frame; with zero or one left the frame is sent with 0x01 and the next frame
//! starts with an empty chunk that closes the finished arg. (Node 4.0.1 drops
//! the remaining args in that case; we never do.) A frame that is exactly full
//! is only closed when more bytes arrive, so a last arg that ends exactly at a
//! frame end needs no extra frame.

use bytes::{BufMut, Bytes, BytesMut};

use super::call::{CallReq, CallRes, Flags, ResponseCode, continue_type};
use super::checksum::{Checksum, ChecksumType};
use super::error::EncodeError;
use super::headers::TransportHeaders;
use super::tracing::{TRACING_LEN, Tracing};
use super::{FrameHeader, FrameType, HEADER_LEN, MAX_FRAME_SIZE};

/// The fields of a call req's first frame, before the checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqHead {
    /// Time to live in ms; never 0.
    pub ttl: u32,
    /// Tracing: span, parent and trace ids and flags (`tracing:25`).
    pub tracing: Tracing,
    /// Destination service, at most 255 bytes.
    pub service: Bytes,
    /// Transport headers; checked strictly.
    pub headers: TransportHeaders,
}

/// The fields of a call res's first frame, before the checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResHead {
    /// Response code.
    pub code: ResponseCode,
    /// Tracing (the request's).
    pub tracing: Tracing,
    /// Transport headers; checked strictly.
    pub headers: TransportHeaders,
}

/// What the first frame of a message carries before its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallHead {
    /// A request.
    Req(ReqHead),
    /// A response.
    Res(ResHead),
}

impl CallHead {
    fn head_len(&self) -> usize {
        match self {
            CallHead::Req(h) => CallReq::head_len(h.service.len(), &h.headers),
            CallHead::Res(h) => CallRes::head_len(&h.headers),
        }
    }

    fn is_request(&self) -> bool {
        matches!(self, CallHead::Req(_))
    }

    /// The first frame's fields after the flags byte, before the checksum.
    fn encode_fields(&self, dst: &mut BytesMut) {
        match self {
            CallHead::Req(h) => {
                dst.put_u32(h.ttl);
                h.tracing.encode(dst);
                dst.put_u8(h.service.len() as u8);
                dst.put_slice(&h.service);
                h.headers.encode(dst);
            }
            CallHead::Res(h) => {
                dst.put_u8(h.code.0);
                h.tracing.encode(dst);
                h.headers.encode(dst);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct OpenFrame {
    start: usize,
    flags_pos: usize,
    csum_pos: Option<usize>,
    chunk_pos: usize,
}

/// Writes one call message as frames, incrementally.
///
/// Call [`write`](Self::write) any number of times per arg and
/// [`end_arg`](Self::end_arg) after each of the three args. Frames are written
/// into the `dst` passed to each call. While a frame is open (after `write` or
/// `end_arg`, until [`flush`](Self::flush) or the end of the message) nothing
/// else may be appended to or taken from `dst`: the writer patches the open
/// frame's size, flags, checksum and chunk length when it closes it.
#[derive(Debug)]
pub struct MessageWriter {
    id: u32,
    head: CallHead,
    checksum: Checksum,
    max_frame: usize,
    arg: usize,
    arg1_len: usize,
    frames: u32,
    open: Option<OpenFrame>,
    done: bool,
}

/// The longest arg1 the writer sends ([FRAG-20]).
pub const MAX_ARG1_LEN: usize = 16 * 1024;

/// The smallest max frame size the writer accepts: a continue frame with a
/// checksum and two chunk headers, plus room for data.
const MIN_FRAME: usize = HEADER_LEN + 1 + 5 + 2 + 2 + 4;

/// The checks both writers make before writing anything: ttl not 0, service
/// 1..=255 bytes, transport headers valid, checksum type known, and the first
/// frame's fixed fields plus one chunk header within the frame size (capped at
/// 65535). Returns the running checksum and the frame size to use.
fn check_head(
    head: &CallHead,
    checksum: ChecksumType,
    max_frame_size: usize,
) -> Result<(Checksum, usize), EncodeError> {
    let checksum = Checksum::new(checksum).ok_or(EncodeError::UnknownChecksumType(checksum.0))?;
    let max_frame = max_frame_size.min(MAX_FRAME_SIZE);
    match head {
        CallHead::Req(h) => {
            if h.ttl == 0 {
                return Err(EncodeError::ZeroTtl);
            }
            if h.service.is_empty() {
                // [CALL-10] a call req names its service.
                return Err(EncodeError::FieldTooLong {
                    field: "service (empty)",
                    len: 0,
                    max: 255,
                });
            }
            if h.service.len() > 255 {
                return Err(EncodeError::FieldTooLong {
                    field: "service",
                    len: h.service.len(),
                    max: 255,
                });
            }
            h.headers.validate()?;
        }
        CallHead::Res(h) => h.headers.validate()?,
    }
    let first = HEADER_LEN + head.head_len() + 1 + checksum_len(checksum.checksum_type()) + 2;
    if first > max_frame || max_frame < MIN_FRAME {
        return Err(EncodeError::HeadTooLarge {
            size: first,
            max: max_frame,
        });
    }
    Ok((checksum, max_frame))
}

fn checksum_len(ty: ChecksumType) -> usize {
    ty.value_len().unwrap_or(4)
}

impl MessageWriter {
    /// A writer for message `id`. Checks everything that can be checked before
    /// writing: ttl not 0, service at most 255 bytes, transport headers valid,
    /// checksum type known, and that the first frame's fixed fields plus the
    /// first chunk header fit in `max_frame_size` (which is capped at 65535).
    pub fn new(
        id: u32,
        head: CallHead,
        checksum: ChecksumType,
        max_frame_size: usize,
    ) -> Result<MessageWriter, EncodeError> {
        let (checksum, max_frame) = check_head(&head, checksum, max_frame_size)?;
        Ok(MessageWriter {
            id,
            head,
            checksum,
            max_frame,
            arg: 0,
            arg1_len: 0,
            frames: 0,
            open: None,
            done: false,
        })
    }

    /// Writes a whole message (three args) into `dst` in one go; the same
    /// bytes as [`encode_message`].
    pub fn write_message(
        dst: &mut BytesMut,
        id: u32,
        head: CallHead,
        checksum: ChecksumType,
        max_frame_size: usize,
        args: [&[u8]; 3],
    ) -> Result<(), EncodeError> {
        encode_message(dst, id, &head, checksum, max_frame_size, args)
    }

    /// Index (0, 1, 2) of the arg being written.
    pub fn current_arg(&self) -> usize {
        self.arg
    }

    /// True once the third arg has been ended.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// Frames started so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Appends `data` to the current arg, opening and closing frames as needed.
    pub fn write(&mut self, dst: &mut BytesMut, mut data: &[u8]) -> Result<(), EncodeError> {
        if self.done {
            return Err(EncodeError::MessageComplete);
        }
        if self.arg == 0 {
            self.arg1_len += data.len();
            if self.arg1_len > MAX_ARG1_LEN {
                return Err(EncodeError::FieldTooLong {
                    field: "arg1",
                    len: self.arg1_len,
                    max: MAX_ARG1_LEN,
                });
            }
        }
        let mut open = match self.open {
            Some(o) => o,
            None => self.open_frame(dst),
        };
        loop {
            let room = self.max_frame - (dst.len() - open.start);
            let n = room.min(data.len());
            let (now, later) = data.split_at(n);
            dst.extend_from_slice(now);
            self.checksum.update(now);
            data = later;
            if data.is_empty() {
                return Ok(());
            }
            self.close_frame(dst, true);
            open = self.open_frame(dst);
        }
    }

    /// Ends the current arg. Returns true when that was the third arg and the
    /// message is complete (its last frame, flag 0x01 clear, is then in `dst`).
    pub fn end_arg(&mut self, dst: &mut BytesMut) -> Result<bool, EncodeError> {
        if self.done {
            return Err(EncodeError::MessageComplete);
        }
        let mut open = match self.open {
            Some(o) => o,
            None => self.open_frame(dst),
        };
        if self.arg == 2 {
            self.close_frame(dst, false);
            self.done = true;
            return Ok(true);
        }
        if self.max_frame - (dst.len() - open.start) < 2 {
            // Not enough room for the next arg's length: close this frame and
            // start the next with an empty chunk that ends the current arg.
            self.close_frame(dst, true);
            open = self.open_frame(dst);
        }
        patch_chunk_len(dst, open.chunk_pos);
        self.arg += 1;
        let chunk_pos = dst.len();
        dst.put_u16(0);
        self.open = Some(OpenFrame { chunk_pos, ..open });
        Ok(false)
    }

    /// Closes the open frame (with flag 0x01) so that `dst` holds only whole
    /// frames. Use it to send what was written so far of a streamed arg.
    pub fn flush(&mut self, dst: &mut BytesMut) {
        if self.open.is_some() {
            self.close_frame(dst, true);
        }
    }

    fn open_frame(&mut self, dst: &mut BytesMut) -> OpenFrame {
        let start = dst.len();
        let first = self.frames == 0;
        let frame_type = match (&self.head, first) {
            (CallHead::Req(_), true) => FrameType::CALL_REQ,
            (CallHead::Res(_), true) => FrameType::CALL_RES,
            (head, false) => continue_type(head.is_request()),
        };
        dst.reserve(self.max_frame.min(4096));
        FrameHeader {
            size: 0,
            frame_type,
            id: self.id,
        }
        .encode(dst);
        let flags_pos = dst.len();
        dst.put_u8(0);
        if first {
            self.head.encode_fields(dst);
        }
        let ty = self.checksum.checksum_type();
        dst.put_u8(ty.0);
        let csum_pos = (ty != ChecksumType::NONE).then(|| {
            let p = dst.len();
            dst.put_u32(0);
            p
        });
        let chunk_pos = dst.len();
        dst.put_u16(0);
        self.frames += 1;
        let open = OpenFrame {
            start,
            flags_pos,
            csum_pos,
            chunk_pos,
        };
        self.open = Some(open);
        open
    }

    fn close_frame(&mut self, dst: &mut BytesMut, more: bool) {
        let Some(open) = self.open.take() else {
            return;
        };
        patch_chunk_len(dst, open.chunk_pos);
        let value = self.checksum.finish_frame(&dst[open.chunk_pos + 2..]);
        if let Some(p) = open.csum_pos {
            dst[p..p + 4].copy_from_slice(&value.to_be_bytes());
        }
        dst[open.flags_pos] = if more { Flags::MORE_FRAGMENTS } else { 0 };
        let size = (dst.len() - open.start) as u16;
        dst[open.start..open.start + 2].copy_from_slice(&size.to_be_bytes());
    }
}

fn patch_chunk_len(dst: &mut BytesMut, chunk_pos: usize) {
    let len = (dst.len() - chunk_pos - 2) as u16;
    dst[chunk_pos..chunk_pos + 2].copy_from_slice(&len.to_be_bytes());
}

/// Where frames are written: a byte buffer that a large arg may also be
/// appended to by reference (a write queue that sends it with a vectored
/// write) instead of being copied.
pub trait FrameSink {
    /// The buffer encoded bytes are appended to.
    fn buf(&mut self) -> &mut BytesMut;

    /// Appends `data` after everything written so far. The default copies it.
    fn put_shared(&mut self, data: Bytes) {
        self.buf().extend_from_slice(&data);
    }
}

impl FrameSink for BytesMut {
    fn buf(&mut self) -> &mut BytesMut {
        self
    }
}

/// An arg of a whole message: bytes, and the shared buffer they live in when
/// there is one (so a sink can keep a slice of it instead of a copy).
pub trait MessageArg: AsRef<[u8]> {
    /// The shared buffer behind these bytes, if any.
    fn shared(&self) -> Option<&Bytes> {
        None
    }
}

impl MessageArg for &[u8] {}
impl<const N: usize> MessageArg for &[u8; N] {}
impl MessageArg for Bytes {
    fn shared(&self) -> Option<&Bytes> {
        Some(self)
    }
}
impl MessageArg for &Bytes {
    fn shared(&self) -> Option<&Bytes> {
        Some(self)
    }
}

/// Pieces of an arg at least this long are handed to the sink by reference.
const SHARE_MIN: usize = 4096;

/// One chunk of a planned frame: `args[arg][start..end]`.
#[derive(Clone, Copy, Default)]
struct Piece {
    arg: usize,
    start: usize,
    end: usize,
}

/// Writes a whole message (three args) as frames into `dst`: byte for byte
/// what [`MessageWriter`] writes, but each frame is planned before a byte of
/// it is written, so its size and checksum go straight into its header and
/// large args can be appended by reference ([`FrameSink::put_shared`]).
/// Checks what [`MessageWriter::new`] checks, and the arg1 limit; on an error
/// nothing is written.
pub fn encode_message<A: MessageArg>(
    dst: &mut impl FrameSink,
    id: u32,
    head: &CallHead,
    checksum: ChecksumType,
    max_frame_size: usize,
    args: [A; 3],
) -> Result<(), EncodeError> {
    let (mut sum, max_frame) = check_head(head, checksum, max_frame_size)?;
    let lens = [
        args[0].as_ref().len(),
        args[1].as_ref().len(),
        args[2].as_ref().len(),
    ];
    if lens[0] > MAX_ARG1_LEN {
        return Err(EncodeError::FieldTooLong {
            field: "arg1",
            len: lens[0],
            max: MAX_ARG1_LEN,
        });
    }
    let ty = sum.checksum_type();
    let csum_len = checksum_len(ty);
    let head_fixed = HEADER_LEN + head.head_len() + 1 + csum_len;
    if head_fixed + 6 + lens[0] + lens[1] + lens[2] <= max_frame {
        // The usual message: one frame.
        let parts = [args[0].as_ref(), args[1].as_ref(), args[2].as_ref()];
        sum.update_parts(&parts);
        let value = sum.finish_frame(parts[2]);
        let size = head_fixed + 6 + lens[0] + lens[1] + lens[2];
        let frame_type = match head {
            CallHead::Req(_) => FrameType::CALL_REQ,
            CallHead::Res(_) => FrameType::CALL_RES,
        };
        let b = dst.buf();
        b.reserve(head_fixed + 6 + lens.iter().filter(|&&l| l < SHARE_MIN).sum::<usize>());
        put_frame_head(b, size, frame_type, id, false, Some(head), ty, value);
        for (arg, part) in args.iter().zip(parts) {
            put_chunk(dst, arg, part, 0..part.len());
        }
        return Ok(());
    }
    let (mut arg, mut off, mut first) = (0usize, 0usize, true);
    loop {
        // Plan one frame the way MessageWriter fills it: the open arg's chunk,
        // then each following arg while two bytes remain for its length.
        // head_len counts the flags byte.
        let fixed = HEADER_LEN + if first { head.head_len() } else { 1 } + 1 + csum_len;
        let mut room = max_frame - fixed - 2;
        let mut pieces = [Piece::default(); 3];
        pieces[0] = Piece {
            arg,
            start: off,
            end: off,
        };
        let mut n = 1;
        let more = loop {
            let take = room.min(lens[arg] - off);
            off += take;
            room -= take;
            pieces[n - 1].end = off;
            if off < lens[arg] {
                break true;
            }
            if arg == 2 {
                break false;
            }
            if room < 2 {
                // The next frame opens with an empty chunk that ends this arg.
                break true;
            }
            arg += 1;
            off = 0;
            room -= 2;
            pieces[n] = Piece {
                arg,
                start: 0,
                end: 0,
            };
            n += 1;
        };
        let pieces = &pieces[..n];
        let data = |p: &Piece| &args[p.arg].as_ref()[p.start..p.end];
        let mut parts: [&[u8]; 3] = [&[]; 3];
        for (slot, p) in parts.iter_mut().zip(pieces) {
            *slot = data(p);
        }
        sum.update_parts(&parts[..n]);
        let value = sum.finish_frame(pieces.last().map_or(&[][..], data));
        let size = fixed + pieces.iter().map(|p| 2 + p.end - p.start).sum::<usize>();
        let frame_type = match (head, first) {
            (CallHead::Req(_), true) => FrameType::CALL_REQ,
            (CallHead::Res(_), true) => FrameType::CALL_RES,
            (head, false) => continue_type(head.is_request()),
        };
        let b = dst.buf();
        b.reserve(
            fixed
                + 2 * n
                + pieces
                    .iter()
                    .map(|p| p.end - p.start)
                    .filter(|&l| l < SHARE_MIN)
                    .sum::<usize>(),
        );
        put_frame_head(
            b,
            size,
            frame_type,
            id,
            more,
            first.then_some(head),
            ty,
            value,
        );
        for p in pieces {
            let arg = &args[p.arg];
            put_chunk(dst, arg, arg.as_ref(), p.start..p.end);
        }
        if !more {
            return Ok(());
        }
        first = false;
    }
}

/// Writes a call frame's fixed part: the 16-byte header, the flags, the
/// first frame's fields when `head` is given, and the checksum field.
#[allow(clippy::too_many_arguments)]
#[inline]
fn put_frame_head(
    b: &mut BytesMut,
    size: usize,
    frame_type: FrameType,
    id: u32,
    more: bool,
    head: Option<&CallHead>,
    ty: ChecksumType,
    value: u32,
) {
    // The fixed-size fields go through one stack buffer and one copy.
    let mut fixed = [0u8; HEADER_LEN + 1 + 4 + TRACING_LEN];
    fixed[0..2].copy_from_slice(&(size as u16).to_be_bytes());
    fixed[2] = frame_type.0;
    fixed[4..8].copy_from_slice(&id.to_be_bytes());
    fixed[HEADER_LEN] = if more { Flags::MORE_FRAGMENTS } else { 0 };
    let mut n = HEADER_LEN + 1;
    let tracing = match head {
        Some(CallHead::Req(h)) => {
            fixed[n..n + 4].copy_from_slice(&h.ttl.to_be_bytes());
            n += 4;
            Some(&h.tracing)
        }
        Some(CallHead::Res(h)) => {
            fixed[n] = h.code.0;
            n += 1;
            Some(&h.tracing)
        }
        None => None,
    };
    if let Some(t) = tracing {
        t.write_to(&mut fixed[n..n + TRACING_LEN]);
        n += TRACING_LEN;
    }
    b.extend_from_slice(&fixed[..n]);
    match head {
        Some(CallHead::Req(h)) => {
            b.put_u8(h.service.len() as u8);
            b.extend_from_slice(&h.service);
            h.headers.encode(b);
        }
        Some(CallHead::Res(h)) => h.headers.encode(b),
        None => {}
    }
    let mut csum = [ty.0, 0, 0, 0, 0];
    let csum = if ty == ChecksumType::NONE {
        &csum[..1]
    } else {
        csum[1..].copy_from_slice(&value.to_be_bytes());
        &csum[..]
    };
    b.extend_from_slice(csum);
}

/// Writes one arg chunk: its length, then `data[range]`, by reference when
/// it is large and lives in a shared buffer.
#[inline]
fn put_chunk<A: MessageArg>(
    dst: &mut impl FrameSink,
    arg: &A,
    data: &[u8],
    range: std::ops::Range<usize>,
) {
    let part = &data[range.clone()];
    dst.buf()
        .extend_from_slice(&(part.len() as u16).to_be_bytes());
    match arg.shared().filter(|_| part.len() >= SHARE_MIN) {
        Some(shared) => dst.put_shared(shared.slice(range)),
        None => dst.buf().extend_from_slice(part),
    }
}
