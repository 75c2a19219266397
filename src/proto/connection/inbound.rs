//! The peer's calls: requests arriving (the fast path for a whole one, the
//! general path, continues, cancels) and our responses to them.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

impl Connection {
    /// The fast path of `on_call_req`: only a request that the general path
    /// would accept with no violation, whole in this frame.
    #[inline]
    pub(super) fn whole_request(
        &mut self,
        now: Instant,
        id: u32,
        payload: &Bytes,
    ) -> Option<Whole> {
        let w = WholeCall::scan(true, payload)?;
        let limits = &self.config.reassembly;
        let [a1, a2, a3] = w.args;
        let bytes = (a1.len() + a2.len() + a3.len()) as u64;
        if w.ttl == 0
            || self.in_calls.contains(InId(id))
            || self.in_calls.len() >= self.config.max_inbound_calls
            || (!self.tombstone_set.is_empty() && self.tombstone_set.contains(&(Dir::In, id)))
            || limits.max_frames == 0
            || a1.len() > limits.max_arg1_len
            || bytes > limits.max_message_bytes
            || self.inbound_bytes + bytes > self.config.max_inbound_bytes
        {
            return None;
        }
        let scan = TransportHeaders::scan_few(w.headers, w.header_count)?;
        if limits.strict_headers && (scan.as_pair.is_none() || !scan.has_cn) {
            return None;
        }
        if !checksum_ok(&w) {
            return None;
        }
        let ttl = Duration::from_millis(u64::from(w.ttl)).min(self.config.max_ttl);
        let deadline = now + ttl;
        self.inbound_bytes += bytes;
        let r = self.in_calls.insert(
            InId(id),
            InCall {
                tracing: w.tracing,
                checksum: w.checksum.ty,
                request: None,
                bytes,
                writer: None,
            },
        );
        self.deadlines.push((deadline, Dir::In, r));
        let lift = |part: &[u8]| lift(payload, part);
        Some(Whole::Request(WholeRequest {
            id,
            service: lift(w.service),
            headers: TransportHeaders::from_checked(lift(w.headers), w.header_count),
            scheme: scan.as_pair.map(|p| scheme_pair(payload, p)),
            tracing: w.tracing,
            ttl_ms: w.ttl,
            deadline,
            checksum: w.checksum.ty,
            args: [lift(a1), lift(a2), lift(a3)],
        }))
    }

    pub(super) fn on_call_req(&mut self, now: Instant, f: CallReq) {
        let id = f.id;
        if self.in_calls.contains(InId(id)) {
            return self.fatal(
                id,
                f.tracing,
                format!("call req {id} while a request with that id is in flight"),
            );
        }
        // A reused id starts a new call; forget the old one's tombstone.
        if self.tombstone_set.remove(&(Dir::In, id)) {
            self.tombstones.retain(|t| !(t.1 == Dir::In && t.2 == id));
        }
        let refuse = if matches!(self.state, State::Draining { .. })
            && !f
                .args
                .iter()
                .next()
                .is_some_and(|a1| is_meta_call(&f.headers, &a1))
        {
            Some((ErrorCode::DECLINED, "connection draining".to_string()))
        } else if self.in_calls.len() >= self.config.max_inbound_calls {
            Some((ErrorCode::BUSY, "too many calls in flight".to_string()))
        } else if self.config.reassembly.strict_headers
            && (f.headers.get(b"as").is_none() || f.headers.get(b"cn").is_none())
        {
            // [HDR-11] a strict reader requires `as` and `cn` on a call req.
            Some((
                ErrorCode::BAD_REQUEST,
                "call req lacks the required transport header as or cn".to_string(),
            ))
        } else if f.ttl == 0 {
            // [TTL-4] an inbound ttl of 0 has already expired.
            Some((ErrorCode::TIMEOUT, "ttl of 0: already expired".to_string()))
        } else {
            None
        };
        if let Some((code, msg)) = refuse {
            self.send_error_frame(id, code, f.tracing, &msg);
            if f.flags.more_fragments() {
                self.tombstone(now, Dir::In, id);
            }
            return;
        }
        let ttl = Duration::from_millis(u64::from(f.ttl)).min(self.config.max_ttl);
        let deadline = now + ttl;
        // A message whole in this frame is checked in one pass; any other
        // (or one that breaks a rule) goes through a reassembler.
        let (chunks, reassembler) =
            match Reassembler::check_whole(&self.config.reassembly, CallFragment::from(&f)) {
                Some(c) => (c, None),
                None => {
                    let mut r = Reassembler::new(self.config.reassembly);
                    match r.push(CallFragment::from(&f)) {
                        Ok(c) => (c, Some(r)),
                        Err(e) => {
                            return self.reject_request(
                                now,
                                id,
                                f.tracing,
                                e,
                                !f.flags.more_fragments(),
                            );
                        }
                    }
                }
            };
        let bytes = chunks.data_len() as u64;
        if self.inbound_bytes + bytes > self.config.max_inbound_bytes {
            self.send_error_frame(id, ErrorCode::BUSY, f.tracing, "too many bytes in flight");
            if !chunks.message_complete() {
                self.tombstone(now, Dir::In, id);
            }
            return;
        }
        self.inbound_bytes += bytes;
        let complete = chunks.message_complete();
        let r = self.in_calls.insert(
            InId(id),
            InCall {
                tracing: f.tracing,
                checksum: f.checksum.ty,
                request: reassembler.filter(|_| !complete).map(Box::new),
                bytes,
                writer: None,
            },
        );
        self.deadlines.push((deadline, Dir::In, r));
        self.events.push_back(Event::Request(RequestStart {
            id,
            service: f.service,
            headers: f.headers,
            tracing: f.tracing,
            ttl_ms: f.ttl,
            deadline,
            checksum: f.checksum.ty,
            chunks,
        }));
    }

    /// A request that breaks a rule: a protocol error for arg-count problems
    /// ([FRAG-10]), bad request for the rest; the call is forgotten.
    pub(super) fn reject_request(
        &mut self,
        now: Instant,
        id: u32,
        tracing: Tracing,
        e: ReassemblyError,
        ended: bool,
    ) {
        if violation_code(&e) == ErrorCode::PROTOCOL {
            return self.fatal(id, tracing, format!("bad request message: {e}"));
        }
        self.send_error_frame(id, ErrorCode::BAD_REQUEST, tracing, &e.to_string());
        if !ended {
            self.tombstone(now, Dir::In, id);
        }
    }

    pub(super) fn on_call_req_continue(&mut self, now: Instant, f: CallContinue) {
        let id = f.id;
        let Some(call) = self.in_calls.get_mut(InId(id)) else {
            return; // unknown or finished: dropped quietly ([CONN-15])
        };
        let Some(r) = call.request.as_mut() else {
            // The request already ended; a continue frame now is a violation.
            let tracing = call.tracing;
            return self.fatal(
                id,
                tracing,
                format!("call req continue {id} after the request ended"),
            );
        };
        let before = r.message_bytes();
        let result = r.push(CallFragment::from(&f));
        let added = r.message_bytes() - before;
        call.bytes += added;
        let tracing = call.tracing;
        self.inbound_bytes += added;
        match result {
            Ok(chunks) => {
                if self.inbound_bytes > self.config.max_inbound_bytes {
                    self.abort_inbound(id, ErrorCode::BUSY, "too many bytes in flight", now);
                    return;
                }
                if chunks.message_complete()
                    && let Some(c) = self.in_calls.get_mut(InId(id))
                {
                    c.request = None;
                }
                self.events.push_back(Event::RequestContinue { id, chunks });
            }
            Err(e) => {
                let ended = !f.flags.more_fragments();
                let code = violation_code(&e);
                self.remove_inbound(InId(id));
                self.events.push_back(Event::RequestAborted {
                    id,
                    error: Error::new(code, e.to_string()),
                });
                if code == ErrorCode::PROTOCOL {
                    return self.fatal(id, tracing, format!("bad request message: {e}"));
                }
                self.send_error_frame(id, code, tracing, &e.to_string());
                if !ended {
                    self.tombstone(now, Dir::In, id);
                }
            }
        }
    }

    pub(super) fn on_cancel(&mut self, f: Cancel) {
        let id = f.id;
        let Some(call) = self.in_calls.get(InId(id)) else {
            return; // crossed with our response: fine ([CANCEL-3])
        };
        if call.writer.as_ref().is_some_and(|w| w.frames() > 0) {
            return; // [CANCEL-4] our response has started: ignored
        }
        let tracing = call.tracing;
        self.remove_inbound(InId(id));
        self.send_error_frame(id, ErrorCode::CANCELLED, tracing, "cancelled by the caller");
        self.events.push_back(Event::RequestCancelled { id });
    }

    pub(super) fn abort_inbound(&mut self, id: u32, code: ErrorCode, message: &str, now: Instant) {
        let Some(call) = self.in_calls.get(InId(id)) else {
            return;
        };
        let tracing = call.tracing;
        let arriving = call.request.is_some();
        self.remove_inbound(InId(id));
        self.send_error_frame(id, code, tracing, message);
        if arriving {
            self.tombstone(now, Dir::In, id);
        }
        self.events.push_back(Event::RequestAborted {
            id,
            error: Error::new(code, message.to_owned()),
        });
        self.maybe_drained();
    }

    pub(super) fn inbound_writer(&mut self, id: u32) -> Result<&mut InCall, Error> {
        self.in_calls
            .get_mut(InId(id))
            .ok_or_else(|| Error::new(ErrorCode::CANCELLED, "request is no longer in flight"))
    }

    pub(super) fn response_head(
        call: &InCall,
        code: ResponseCode,
        headers: TransportHeaders,
    ) -> CallHead {
        CallHead::Res(ResHead {
            code,
            tracing: call.tracing,
            headers,
        })
    }

    /// Answers a request with a whole response, in the request's checksum
    /// type ([CSUM-12]). The call is then finished.
    pub fn send_response(
        &mut self,
        id: u32,
        code: ResponseCode,
        headers: TransportHeaders,
        args: [&[u8]; 3],
    ) -> Result<(), Error> {
        self.send_response_with(id, code, headers, args)
    }

    /// [`Connection::send_response`] with args in shared buffers: large ones
    /// are queued by reference, not copied.
    pub fn send_response_shared(
        &mut self,
        id: u32,
        code: ResponseCode,
        headers: TransportHeaders,
        args: [&Bytes; 3],
    ) -> Result<(), Error> {
        self.send_response_with(id, code, headers, args)
    }

    pub(super) fn send_response_with<A: MessageArg>(
        &mut self,
        id: u32,
        code: ResponseCode,
        headers: TransportHeaders,
        args: [A; 3],
    ) -> Result<(), Error> {
        let call = self.inbound_writer(id)?;
        if call.writer.is_some() {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "response already started",
            ));
        }
        let head = Self::response_head(call, code, headers);
        let checksum = call.checksum;
        writer::whole(
            &mut self.transmit,
            id,
            &head,
            checksum,
            self.config.max_frame_size,
            args,
        )?;
        self.finish_inbound(id);
        Ok(())
    }

    /// Starts a streamed response; write it with [`Connection::write_response`]
    /// and [`Connection::end_response_arg`].
    pub fn start_response(
        &mut self,
        id: u32,
        code: ResponseCode,
        headers: TransportHeaders,
    ) -> Result<(), Error> {
        let call = self.inbound_writer(id)?;
        if call.writer.is_some() {
            return Err(Error::new(
                ErrorCode::BAD_REQUEST,
                "response already started",
            ));
        }
        let max_frame = self.config.max_frame_size;
        let call = self.inbound_writer(id)?;
        let head = Self::response_head(call, code, headers);
        let w = MessageWriter::new(id, head, call.checksum, max_frame).map_err(encode_error)?;
        call.writer = Some(Box::new(w));
        Ok(())
    }

    /// Appends bytes to the current arg of a streamed response.
    pub fn write_response(&mut self, id: u32, data: &[u8]) -> Result<(), Error> {
        let w = response_writer(&mut self.in_calls, id)?;
        writer::stream_write(w, &mut self.transmit, data)
    }

    /// Ends the current arg of a streamed response; after the third the call
    /// is finished.
    pub fn end_response_arg(&mut self, id: u32) -> Result<(), Error> {
        let w = response_writer(&mut self.in_calls, id)?;
        if writer::stream_end_arg(w, &mut self.transmit)? {
            self.finish_inbound(id);
        }
        Ok(())
    }

    /// Answers a request with an error frame (also after part of a streamed
    /// response went out: the error frame ends it); the call is then finished.
    pub fn send_error(&mut self, id: u32, code: ErrorCode, message: &str) -> Result<(), Error> {
        let call = self.in_calls.get(InId(id)).ok_or_else(gone)?;
        let tracing = call.tracing;
        self.send_error_frame(id, code, tracing, message);
        self.finish_inbound(id);
        Ok(())
    }

    pub(super) fn finish_inbound(&mut self, id: u32) {
        let still_arriving = self
            .remove_inbound(InId(id))
            .is_some_and(|c| c.request.is_some());
        if still_arriving {
            // Continue frames may still come; drop them quietly.
            self.tombstone(self.last_now, Dir::In, id);
        }
        self.maybe_drained();
    }

    pub(super) fn remove_inbound(&mut self, id: InId) -> Option<InCall> {
        let c = self.in_calls.remove(id)?;
        self.inbound_bytes = self.inbound_bytes.saturating_sub(c.bytes);
        self.prune_deadlines();
        Some(c)
    }
}

/// The `as` pair of a request as a header list of its own: a static one for
/// the usual schemes (no slice of the frame kept), else a slice.
#[inline]
pub(super) fn scheme_pair(payload: &Bytes, pair: &[u8]) -> TransportHeaders {
    const RAW: &[u8] = b"\x02as\x03raw";
    const JSON: &[u8] = b"\x02as\x04json";
    const THRIFT: &[u8] = b"\x02as\x06thrift";
    let known = match pair.len() {
        7 => RAW,
        8 => JSON,
        10 => THRIFT,
        _ => &[],
    };
    if !known.is_empty() && pair == known {
        TransportHeaders::from_static_pair(known)
    } else {
        TransportHeaders::from_checked(lift(payload, pair), 1)
    }
}

fn response_writer(
    in_calls: &mut CallTable<InId, InCall>,
    id: u32,
) -> Result<&mut MessageWriter, Error> {
    let call = in_calls.get_mut(InId(id)).ok_or_else(gone)?;
    call.writer
        .as_deref_mut()
        .ok_or_else(|| Error::new(ErrorCode::BAD_REQUEST, "response not started"))
}
