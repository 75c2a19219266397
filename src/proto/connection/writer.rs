//! Writing messages, the same for requests and responses: a whole message
//! in one go, or a streamed one arg piece by arg piece.

use super::*;

/// Encodes a whole message (fragmented as `max_frame` requires) into the
/// transmit queue.
pub(super) fn whole<A: MessageArg>(
    transmit: &mut Transmit,
    id: u32,
    head: &CallHead,
    checksum: ChecksumType,
    max_frame: usize,
    args: [A; 3],
) -> Result<(), Error> {
    encode_message(transmit, id, head, checksum, max_frame, args).map_err(encode_error)
}

/// Appends bytes to the current arg of a streamed message. Whole frames are
/// queued; a partial one is flushed so that other calls can interleave.
pub(super) fn stream_write(
    w: &mut MessageWriter,
    transmit: &mut Transmit,
    data: &[u8],
) -> Result<(), Error> {
    w.write(transmit.buf(), data).map_err(encode_error)?;
    w.flush(transmit.buf());
    Ok(())
}

/// Ends the current arg of a streamed message; true when that was the third
/// (the message is complete). Otherwise the frame `end_arg` left open is
/// flushed: the transmit queue only ever holds whole frames (other calls and
/// pings are appended to it).
pub(super) fn stream_end_arg(
    w: &mut MessageWriter,
    transmit: &mut Transmit,
) -> Result<bool, Error> {
    if w.end_arg(transmit.buf()).map_err(encode_error)? {
        return Ok(true);
    }
    w.flush(transmit.buf());
    Ok(false)
}
