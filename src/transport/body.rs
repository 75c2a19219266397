//! Argument bodies: whole, or a stream of chunks.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::Error;

/// An argument (arg3, usually): whole bytes, or a stream of chunks so that a
/// large argument never has to sit whole in memory.
#[non_exhaustive]
pub enum Body {
    /// All the bytes.
    Full(Bytes),
    /// All the bytes, in pieces: a body built from parts (sent without
    /// joining them), or an arg that arrived over several frames (a copy of
    /// each frame's chunk). [`Body::into_bytes`] joins them with one copy.
    Chunks(Vec<Bytes>),
    /// Chunks as they come.
    Stream(Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Body {
        Body::Full(Bytes::new())
    }

    /// A body streamed from any stream of chunks.
    pub fn from_stream(s: impl Stream<Item = Result<Bytes, Error>> + Send + 'static) -> Body {
        Body::Stream(Box::pin(s))
    }

    /// The body as a stream of chunks, whatever its form: a whole body is one
    /// chunk, a body in pieces one chunk per piece.
    pub fn into_stream(self) -> Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>> {
        match self {
            Body::Stream(s) => s,
            Body::Full(b) => Box::pin(futures::stream::iter([Ok(b)])),
            Body::Chunks(c) => Box::pin(futures::stream::iter(c.into_iter().map(Ok))),
        }
    }

    /// Reads the whole body as one contiguous buffer: as it is when it is
    /// one piece, otherwise copied once into a buffer.
    pub async fn into_bytes(self) -> Result<Bytes, Error> {
        match self {
            Body::Full(b) => Ok(b),
            Body::Chunks(chunks) => Ok(join(chunks)),
            Body::Stream(mut s) => {
                let mut first: Option<Bytes> = None;
                let mut buf = BytesMut::new();
                while let Some(chunk) = s.next().await {
                    let chunk = chunk?;
                    match first.take() {
                        None if buf.is_empty() => first = Some(chunk),
                        None => buf.extend_from_slice(&chunk),
                        Some(f) => {
                            buf.extend_from_slice(&f);
                            buf.extend_from_slice(&chunk);
                        }
                    }
                }
                Ok(first.unwrap_or_else(|| buf.freeze()))
            }
        }
    }
}

/// The chunks as one buffer: the chunk itself when there is one, else one
/// copy into a buffer of exactly the total size.
pub(crate) fn join(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut buf = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in &chunks {
                buf.extend_from_slice(c);
            }
            buf.freeze()
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Full(b) => write!(f, "Body::Full({} bytes)", b.len()),
            Body::Chunks(c) => write!(
                f,
                "Body::Chunks({} bytes in {} pieces)",
                c.iter().map(Bytes::len).sum::<usize>(),
                c.len()
            ),
            Body::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::Full(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Body {
        Body::Full(b.into())
    }
}

impl From<String> for Body {
    fn from(b: String) -> Body {
        Body::Full(b.into())
    }
}

impl From<&'static str> for Body {
    fn from(b: &'static str) -> Body {
        Body::Full(Bytes::from_static(b.as_bytes()))
    }
}

#[derive(Default)]
struct StreamState {
    chunks: VecDeque<Bytes>,
    done: bool,
    error: Option<Error>,
    waker: Option<Waker>,
    receiver_gone: bool,
    /// For a response: where the bytes the consumer took (or dropped) are
    /// added up, for the connection's `max_response_bytes` budget.
    taken: Option<Arc<AtomicU64>>,
    /// For a response: run when the consumer drops the stream before the
    /// response ended, to give up on the call.
    abandon: Option<Abandon>,
}

/// Gives up on a call whose streamed response nobody reads any more: the
/// connection forgets it, tombstones its id and sends a cancel frame if it
/// is configured to.
pub(crate) struct Abandon {
    pub(crate) shared: std::sync::Weak<super::shared::Shared>,
    pub(crate) id: u32,
}

impl Abandon {
    fn run(self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut st = shared.lock();
        if st.streams.remove(&self.id).is_some() {
            st.conn
                .cancel_call(super::shared::now(), self.id, "response body dropped");
            drop(st);
            shared.driver.wake();
        }
    }
}

impl StreamState {
    fn took(&self, n: usize) {
        if let Some(t) = &self.taken {
            t.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// The receiving end of a streamed argument, fed by the connection.
pub struct ArgStream {
    inner: Arc<Mutex<StreamState>>,
}

/// The feeding end, held by the connection driver.
#[derive(Clone)]
pub(crate) struct ArgSender {
    inner: Arc<Mutex<StreamState>>,
}

pub(crate) fn arg_stream() -> (ArgSender, ArgStream) {
    arg_stream_with(None, None)
}

/// [`arg_stream`] for a response: chunks count against the connection's
/// budget until the consumer takes them; `taken` adds up those it took or
/// dropped.
/// Dropping the stream before the response ended runs `abandon`.
pub(crate) fn arg_stream_counted(
    taken: Arc<AtomicU64>,
    abandon: Abandon,
) -> (ArgSender, ArgStream) {
    arg_stream_with(Some(taken), Some(abandon))
}

fn arg_stream_with(
    taken: Option<Arc<AtomicU64>>,
    abandon: Option<Abandon>,
) -> (ArgSender, ArgStream) {
    let inner = Arc::new(Mutex::new(StreamState {
        taken,
        abandon,
        ..StreamState::default()
    }));
    (
        ArgSender {
            inner: inner.clone(),
        },
        ArgStream { inner },
    )
}

impl ArgSender {
    fn with(&self, f: impl FnOnce(&mut StreamState)) {
        let waker = {
            let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut st);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn push(&self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.with(|s| {
                if s.receiver_gone {
                    s.took(chunk.len());
                } else if s.chunks.is_empty() {
                    s.chunks.push_back(chunk)
                } else {
                    // The consumer lags: keep a copy, not a slice that would
                    // keep its whole read buffer (shared with other calls'
                    // frames) alive while it waits.
                    s.chunks.push_back(Bytes::copy_from_slice(&chunk))
                }
            });
        }
    }

    pub(crate) fn finish(&self) {
        self.with(|s| s.done = true);
    }

    pub(crate) fn fail(&self, e: Error) {
        self.with(|s| {
            if !s.done {
                s.error = Some(e);
                s.done = true;
            }
        });
    }
}

impl Stream for ArgStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = st.chunks.pop_front() {
            st.took(c.len());
            return Poll::Ready(Some(Ok(c)));
        }
        if let Some(e) = st.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if st.done {
            return Poll::Ready(None);
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for ArgStream {
    fn drop(&mut self) {
        let abandon = {
            let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            st.receiver_gone = true;
            let left: usize = st.chunks.iter().map(Bytes::len).sum();
            st.took(left);
            st.chunks.clear();
            if st.done { None } else { st.abandon.take() }
        };
        // Without the stream's lock: the connection's lock is taken before
        // it elsewhere.
        if let Some(a) = abandon {
            a.run();
        }
    }
}

impl fmt::Debug for ArgStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ArgStream")
    }
}
