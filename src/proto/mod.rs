//! The sans-IO protocol core: the connection and call state machines.
//!
//! [`Connection`] takes decoded frames and `now` in, and gives frames (one
//! buffer per batch) and [`Event`]s out. It owns the handshake, message ids,
//! the two call tables (ours and the peer's: ids are per direction),
//! fragmenting, reassembly, deadlines, cancellation, pings and drain. It has
//! no sockets, tasks or clocks, so two of them can be wired back to back and
//! driven on a virtual clock.

mod config;
mod connection;
mod event;
pub(crate) mod table;
mod timers;
mod transmit;

pub use config::{ConnectionConfig, Keepalive, MIN_FRAME_SIZE};
pub use connection::{Connection, RequestHead};
pub use event::{
    CloseReason, Event, PeerInfo, RequestStart, ResponseStart, Whole, WholeRequest, WholeResponse,
};
pub use transmit::Transmit;
