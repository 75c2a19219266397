//! Our calls: requests going out (whole or streamed), cancels, pings, and
//! the responses and error frames coming back.

use std::time::Instant;

use bytes::Bytes;

use super::*;

impl Connection {
    /// The fast path of `on_call_res`: a response the general path would
    /// accept with no violation, whole in this frame.
    #[inline]
    pub(super) fn whole_response(&mut self, id: u32, payload: &Bytes) -> Option<Whole> {
        let call = self.out_calls.get(OutId(id))?;
        if !matches!(call.phase, OutPhase::Sent) || call.streamed {
            return None;
        }
        let w = WholeCall::scan(false, payload)?;
        let limits = &self.config.reassembly;
        let [a1, a2, a3] = w.args;
        if limits.max_frames == 0
            || a1.len() > limits.max_arg1_len
            || (a1.len() + a2.len() + a3.len()) as u64 > limits.max_message_bytes
            || self.response_bytes + (a1.len() + a2.len() + a3.len()) as u64
                > self.config.max_response_bytes
        {
            return None;
        }
        TransportHeaders::scan_few(w.headers, w.header_count)?;
        if !checksum_ok(&w) {
            return None;
        }
        self.remove_outbound(OutId(id));
        Some(Whole::Response(WholeResponse {
            id,
            code: ResponseCode(w.code),
            headers: TransportHeaders::from_checked(lift(payload, w.headers), w.header_count),
            tracing: w.tracing,
            arg2: lift(payload, a2),
            arg3: lift(payload, a3),
        }))
    }

    pub(super) fn on_call_res(&mut self, f: CallRes) {
        let id = f.id;
        let Some(call) = self.out_calls.get_mut(OutId(id)) else {
            return; // late or unknown: dropped quietly ([CONN-15])
        };
        if !matches!(call.phase, OutPhase::Sent) {
            let tracing = call.tracing;
            return self.fatal(id, tracing, format!("unexpected call res {id}"));
        }
        if !self.count_response(OutId(id), f.args.data_len() as u64) {
            return;
        }
        let Some(call) = self.out_calls.get_mut(OutId(id)) else {
            return;
        };
        if let Some(chunks) =
            Reassembler::check_whole(&self.config.reassembly, CallFragment::from(&f))
        {
            self.remove_outbound(OutId(id));
            self.events.push_back(Event::Response(ResponseStart {
                id,
                code: f.code,
                headers: f.headers,
                tracing: f.tracing,
                chunks,
            }));
            return;
        }
        let mut r = Reassembler::new(self.config.reassembly);
        match r.push(CallFragment::from(&f)) {
            Ok(chunks) => {
                if chunks.message_complete() {
                    self.remove_outbound(OutId(id));
                } else {
                    call.phase = OutPhase::Receiving(Box::new(r));
                }
                self.events.push_back(Event::Response(ResponseStart {
                    id,
                    code: f.code,
                    headers: f.headers,
                    tracing: f.tracing,
                    chunks,
                }));
            }
            Err(e) => self.response_failed(id, e),
        }
    }

    pub(super) fn on_call_res_continue(&mut self, f: CallContinue) {
        let id = f.id;
        let Some(call) = self.out_calls.get(OutId(id)) else {
            return;
        };
        if !matches!(call.phase, OutPhase::Receiving(_)) {
            let tracing = call.tracing;
            return self.fatal(
                id,
                tracing,
                format!("call res continue {id} before call res"),
            );
        }
        if !self.count_response(OutId(id), f.args.data_len() as u64) {
            return;
        }
        let Some(OutCall {
            phase: OutPhase::Receiving(r),
            ..
        }) = self.out_calls.get_mut(OutId(id))
        else {
            return;
        };
        match r.push(CallFragment::from(&f)) {
            Ok(chunks) => {
                if chunks.message_complete() {
                    self.remove_outbound(OutId(id));
                }
                self.events
                    .push_back(Event::ResponseContinue { id, chunks });
            }
            Err(e) => self.response_failed(id, e),
        }
    }

    pub(super) fn response_failed(&mut self, id: u32, e: ReassemblyError) {
        let tracing = self
            .out_calls
            .get(OutId(id))
            .map(|c| c.tracing)
            .unwrap_or_default();
        self.remove_outbound(OutId(id));
        let code = violation_code(&e);
        let protocol = code == ErrorCode::PROTOCOL;
        self.events.push_back(Event::CallFailed {
            id,
            error: Error::new(code, format!("bad response: {e}")),
        });
        if protocol {
            self.fatal(id, tracing, format!("bad response message: {e}"));
        }
    }

    pub(super) fn on_error(&mut self, f: ErrorFrame) {
        let message = String::from_utf8_lossy(&f.message).into_owned();
        if f.code == ErrorCode::PROTOCOL {
            // [CONN-14] a 0xff for one of our calls fails it with that error,
            // then closes like any other 0xff.
            if f.id != NO_MESSAGE_ID && self.out_calls.contains(OutId(f.id)) {
                self.remove_outbound(OutId(f.id));
                self.events.push_back(Event::CallFailed {
                    id: f.id,
                    error: Error::from_peer(f.code, message.clone()),
                });
            }
            return self.close(CloseReason::PeerProtocolError(message));
        }
        if f.id == NO_MESSAGE_ID {
            // [CONN-12] no new calls on this connection.
            self.peer_draining = true;
            self.events
                .push_back(Event::PeerDraining(Error::from_peer(f.code, message)));
            return;
        }
        if self.out_calls.contains(OutId(f.id)) {
            self.remove_outbound(OutId(f.id));
            self.events.push_back(Event::CallFailed {
                id: f.id,
                error: Error::from_peer(f.code, message),
            });
        } else if self.pings.remove(&f.id) {
            // An error for one of our pings: nothing waits for it.
        }
    }

    pub(super) fn check_can_call(&self) -> Result<(), Error> {
        self.check_can_call_as(false)
    }

    /// `meta`: a `Meta::*` thrift call, which a draining peer still answers
    /// (SCHEME-19), so it may go to one.
    pub(super) fn check_can_call_as(&self, meta: bool) -> Result<(), Error> {
        match self.state {
            State::Ready if !self.peer_draining || meta => {}
            State::Ready => return Err(Error::new(ErrorCode::DECLINED, "peer is draining")),
            State::Draining { .. } => {
                return Err(Error::new(ErrorCode::DECLINED, "connection draining"));
            }
            State::Closed => return Err(Error::new(ErrorCode::NETWORK, "connection closed")),
            _ => {
                return Err(Error::new(ErrorCode::DECLINED, "handshake not finished"));
            }
        }
        if self.out_calls.len() >= self.config.max_outbound_calls {
            return Err(Error::new(ErrorCode::BUSY, "too many calls in flight"));
        }
        Ok(())
    }

    pub(super) fn alloc_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            // [ID-3] 0xffffffff is reserved; ids still in use or remembered are skipped.
            if id != NO_MESSAGE_ID
                && !self.out_calls.contains(OutId(id))
                && !self.pings.contains(&id)
                && !self.tombstone_set.contains(&(Dir::Out, id))
            {
                return id;
            }
        }
    }

    pub(super) fn ttl_ms(&self, now: Instant, deadline: Instant) -> Result<u32, Error> {
        let left = deadline
            .saturating_duration_since(now)
            .min(self.config.max_ttl);
        let ms = left.as_millis();
        if ms < 1 {
            // [TTL-2] never send a ttl of 0: fail locally.
            return Err(Error::new(
                ErrorCode::TIMEOUT,
                "less than 1 ms left before the deadline",
            ));
        }
        Ok(u32::try_from(ms).unwrap_or(u32::MAX))
    }

    /// The first frame's fields of a request, with the ttl left at `now`.
    pub(super) fn request_head(&self, now: Instant, head: RequestHead) -> Result<CallHead, Error> {
        let ttl = self.ttl_ms(now, head.deadline)?;
        Ok(CallHead::Req(ReqHead {
            ttl,
            tracing: head.tracing,
            service: head.service,
            headers: head.headers,
        }))
    }

    /// Sends a whole request and returns its id. Its outcome arrives as
    /// [`Event::Response`] (and continues) or [`Event::CallFailed`].
    pub fn send_request(
        &mut self,
        now: Instant,
        head: RequestHead,
        args: [&[u8]; 3],
    ) -> Result<u32, Error> {
        self.send_request_with(now, head, args)
    }

    /// [`Connection::send_request`] with args in shared buffers: large ones
    /// are queued by reference (written with a vectored write), not copied.
    pub fn send_request_shared(
        &mut self,
        now: Instant,
        head: RequestHead,
        args: [&Bytes; 3],
    ) -> Result<u32, Error> {
        self.send_request_with(now, head, args)
    }

    pub(super) fn send_request_with<A: MessageArg>(
        &mut self,
        now: Instant,
        head: RequestHead,
        args: [A; 3],
    ) -> Result<u32, Error> {
        let meta = self.peer_draining && super::is_meta_call(&head.headers, args[0].as_ref());
        self.check_can_call_as(meta)?;
        let id = self.alloc_id();
        let (deadline, tracing, checksum) = (head.deadline, head.tracing, head.checksum);
        let call_head = self.request_head(now, head)?;
        writer::whole(
            &mut self.transmit,
            id,
            &call_head,
            checksum,
            self.config.max_frame_size,
            args,
        )?;
        self.register_outbound(id, deadline, tracing, None);
        Ok(id)
    }

    /// Starts a request whose args will be written piece by piece with
    /// [`Connection::write_request`] and [`Connection::end_request_arg`].
    pub fn start_request(&mut self, now: Instant, head: RequestHead) -> Result<u32, Error> {
        self.check_can_call()?;
        let id = self.alloc_id();
        let (deadline, tracing, checksum) = (head.deadline, head.tracing, head.checksum);
        let call_head = self.request_head(now, head)?;
        let w = MessageWriter::new(id, call_head, checksum, self.config.max_frame_size)
            .map_err(encode_error)?;
        self.register_outbound(id, deadline, tracing, Some(w));
        Ok(id)
    }

    pub(super) fn register_outbound(
        &mut self,
        id: u32,
        deadline: Instant,
        tracing: Tracing,
        writer: Option<MessageWriter>,
    ) {
        let r = self.out_calls.insert(
            OutId(id),
            OutCall {
                deadline,
                tracing,
                phase: writer.map_or(OutPhase::Sent, |w| OutPhase::Writing(Box::new(w))),
                bytes: 0,
                streamed: false,
            },
        );
        self.deadlines.push((deadline, Dir::Out, r));
    }

    /// Appends bytes to the current arg of a streamed request. Whole frames
    /// are queued; a partial frame is flushed so other calls can interleave.
    pub fn write_request(&mut self, id: u32, data: &[u8]) -> Result<(), Error> {
        let w = request_writer(&mut self.out_calls, id)?;
        writer::stream_write(w, &mut self.transmit, data)
    }

    /// Ends the current arg of a streamed request; after the third the
    /// request is complete.
    pub fn end_request_arg(&mut self, id: u32) -> Result<(), Error> {
        let w = request_writer(&mut self.out_calls, id)?;
        if writer::stream_end_arg(w, &mut self.transmit)?
            && let Some(call) = self.out_calls.get_mut(OutId(id))
        {
            call.phase = OutPhase::Sent;
        }
        Ok(())
    }

    /// The caller gave up on a call: forget it, remember its id so late
    /// frames are dropped, and send a cancel frame if configured ([CANCEL-1]).
    pub fn cancel_call(&mut self, now: Instant, id: u32, why: &str) {
        let Some(call) = self.out_calls.get(OutId(id)) else {
            return;
        };
        let tracing = call.tracing;
        // [TTL-9] the cancel carries the call's remaining time.
        let left = call
            .deadline
            .saturating_duration_since(now)
            .min(self.config.max_ttl);
        let ttl = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
        self.remove_outbound(OutId(id));
        self.tombstone(now, Dir::Out, id);
        if self.config.send_cancel && self.state != State::Closed {
            self.send_cancel(id, ttl, tracing, why);
        }
        self.maybe_drained();
    }

    pub(super) fn send_cancel(&mut self, id: u32, ttl: u32, tracing: Tracing, why: &str) {
        // [FRAME-5] header, ttl:4, tracing:25, why~2: the reason is cut to fit
        // our max frame size.
        let room = self
            .config
            .max_frame_size
            .saturating_sub(crate::frame::HEADER_LEN + 4 + crate::frame::TRACING_LEN + 2)
            .min(usize::from(u16::MAX));
        let why = Bytes::copy_from_slice(super::cut_utf8(why, room).as_bytes());
        self.queue(Frame::Cancel(Cancel {
            id,
            ttl,
            tracing,
            why,
            trailing: Bytes::new(),
        }));
    }

    /// Sends a ping; the answer arrives as [`Event::Pong`].
    pub fn ping(&mut self) -> Result<u32, Error> {
        if !self.is_ready() {
            return Err(Error::new(ErrorCode::NETWORK, "connection not ready"));
        }
        let id = self.alloc_id();
        self.pings.insert(id);
        self.queue(Frame::PingReq(Ping::new(id)));
        Ok(id)
    }

    pub(super) fn remove_outbound(&mut self, id: OutId) {
        if let Some(c) = self.out_calls.remove(id) {
            if !c.streamed {
                self.response_bytes = self.response_bytes.saturating_sub(c.bytes);
            }
            self.prune_deadlines();
        }
    }

    /// Counts `n` arg bytes of a response against `max_response_bytes`
    /// ([CONN-23]). False when they do not fit: the call has then failed
    /// locally (bad request), its id is remembered so that the rest of its
    /// response is dropped, and the connection stays open.
    pub(super) fn count_response(&mut self, id: OutId, n: u64) -> bool {
        let max = self.config.max_response_bytes;
        if self.response_bytes.saturating_add(n) > max {
            self.events.push_back(Event::CallFailed {
                id: id.0,
                error: Error::new(
                    ErrorCode::BAD_REQUEST,
                    format!(
                        "the responses on this connection would hold over {max} bytes \
                         (max_response_bytes)"
                    ),
                ),
            });
            // Forgotten and tombstoned as a caller's give-up is (after the
            // event: a draining connection may close now), the server told to
            // stop when cancels are sent ([CANCEL-1]).
            self.cancel_call(self.last_now, id.0, "response over max_response_bytes");
            return false;
        }
        if let Some(c) = self.out_calls.get_mut(id) {
            c.bytes += n;
        }
        self.response_bytes += n;
        true
    }

    /// The caller of `id` reads its response as a stream: the response's arg
    /// bytes stay counted against `max_response_bytes` after the call ends,
    /// until [`Connection::release_response_bytes`] says the consumer took
    /// them (or dropped them).
    pub fn stream_response(&mut self, id: u32) {
        if let Some(c) = self.out_calls.get_mut(OutId(id)) {
            c.streamed = true;
        }
    }

    /// Bytes of streamed responses ([`Connection::stream_response`]) that
    /// their consumers took or dropped.
    pub fn release_response_bytes(&mut self, n: u64) {
        self.response_bytes = self.response_bytes.saturating_sub(n);
    }

    /// Arg bytes held for the responses to our calls now.
    pub fn response_bytes(&self) -> u64 {
        self.response_bytes
    }
}

fn request_writer(
    out_calls: &mut CallTable<OutId, OutCall>,
    id: u32,
) -> Result<&mut MessageWriter, Error> {
    let call = out_calls
        .get_mut(OutId(id))
        .ok_or_else(|| Error::new(ErrorCode::NETWORK, "call is no longer in flight"))?;
    match &mut call.phase {
        OutPhase::Writing(w) => Ok(w),
        _ => Err(Error::new(ErrorCode::BAD_REQUEST, "request already sent")),
    }
}
