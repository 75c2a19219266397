//! Shard-key ownership on the serving side (`spec/11-peer-policy.md`
//! POOL-32): does this process own a key on the current ring, and if not,
//! forward the call to the owner once, marked so the owner does not forward
//! it again.

use std::future::Future;
use std::sync::{Mutex, RwLock};

use super::ring::HashRing;
use crate::server::{HandlerResult, Request, Response};
use crate::util::HashMap;
use crate::{CallRequest, Channel, Client, Error};

/// The transport header that marks a raw call forwarded by an owner check
/// (`rf: 1`, 3 bytes).
pub const FORWARDED_HEADER: &str = "rf";

/// The arg2 application header that marks a forwarded thrift or json call,
/// as ringpop-go's forwarding does; its value is the shard key.
pub const FORWARD_KEYS_HEADER: &str = "ringpop-forward-keys";

/// Who owns which shard key, for a server that is one of the ring's peers.
pub struct Ownership {
    me: String,
    ring: RwLock<HashRing>,
    channel: Channel,
    clients: Mutex<HashMap<String, Client>>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Ownership {
    /// This process is `me` (`host:port`, as the others know it) on the
    /// ring of `peers` (which should include `me`); forwards go out through
    /// `channel`.
    pub fn new<I, S>(channel: Channel, me: impl Into<String>, peers: I) -> Ownership
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ownership {
            me: me.into(),
            ring: RwLock::new(HashRing::new(peers)),
            channel,
            clients: Mutex::new(HashMap::default()),
        }
    }

    /// Replaces the ring's peers (a membership change); connections to
    /// peers that left are forgotten, and closed if no call of ours is on
    /// them.
    pub fn set_peers<I, S>(&self, peers: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let ring = HashRing::new(peers);
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|addr, c| {
                let stays = ring.peers().iter().any(|p| p == addr);
                if !stays && c.calls_in_flight().0 == 0 {
                    c.close();
                }
                stays
            });
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
    }

    /// The owner of `key` on the current ring.
    pub fn owner(&self, key: &[u8]) -> Option<String> {
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        ring.lookup(key).map(str::to_owned)
    }

    /// True when this process owns `key` (or the ring is empty).
    pub fn owns(&self, key: &[u8]) -> bool {
        let ring = self.ring.read().unwrap_or_else(|e| e.into_inner());
        ring.lookup(key).is_none_or(|o| o == self.me)
    }

    /// True when `req` was already forwarded by an owner check.
    pub fn is_forwarded(req: &Request) -> bool {
        match req.scheme() {
            Some("thrift") => crate::scheme::thrift::parse_headers(&req.arg2)
                .is_ok_and(|h| h.iter().any(|(k, _)| k == FORWARD_KEYS_HEADER)),
            #[cfg(feature = "json")]
            Some("json") => crate::scheme::json::parse_headers(&req.arg2)
                .is_ok_and(|h| h.iter().any(|(k, _)| k == FORWARD_KEYS_HEADER)),
            _ => req.header(FORWARDED_HEADER).is_some(),
        }
    }

    /// Runs `local` when this process owns `key` or the call was already
    /// forwarded; otherwise forwards the call, once, to the owner, and
    /// answers with the owner's answer.
    pub async fn handle<F, Fut>(&self, req: Request, key: &[u8], local: F) -> HandlerResult
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = HandlerResult>,
    {
        if self.owns(key) || Ownership::is_forwarded(&req) {
            return local(req).await;
        }
        // The ring may have changed since: whoever owns the key now.
        let Some(owner) = self.owner(key).filter(|o| *o != self.me) else {
            return local(req).await;
        };
        let scheme = req.scheme().unwrap_or("raw").to_owned();
        let key_text = String::from_utf8_lossy(key).into_owned();
        let arg2 = match scheme.as_str() {
            "thrift" => {
                let mut h = crate::scheme::thrift::parse_headers(&req.arg2)?;
                h.push((FORWARD_KEYS_HEADER.to_owned(), key_text.clone()));
                crate::scheme::thrift::encode_headers(&h)?
            }
            #[cfg(feature = "json")]
            "json" => {
                let mut h = crate::scheme::json::parse_headers(&req.arg2)?;
                h.push((FORWARD_KEYS_HEADER.to_owned(), key_text.clone()));
                crate::scheme::json::encode_headers(&h)
            }
            _ => req.arg2.clone(),
        };
        let remaining = req.deadline.saturating_duration_since(crate::util::now());
        let mut call = CallRequest::new(req.service.clone(), req.method.clone())
            .arg2(arg2)
            .arg3(req.arg3.into_bytes().await?)
            .scheme(scheme.as_str())
            .shard_key(key_text)
            .timeout(remaining);
        let marked_in_arg2 = scheme == "thrift" || (cfg!(feature = "json") && scheme == "json");
        if !marked_in_arg2 {
            call = call.header(FORWARDED_HEADER, "1");
        }
        let client = self.client(&owner).await?;
        let r = client.call(call).await?;
        Ok(if r.is_ok() {
            Response::ok(r.arg2, r.arg3)
        } else {
            Response::app_error(r.arg2, r.arg3)
        })
    }

    async fn client(&self, owner: &str) -> Result<Client, Error> {
        let cached = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(owner)
            .filter(|c| c.accepts_new_calls())
            .cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let c = self.channel.connect(owner).await?;
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(owner.to_owned(), c.clone());
        Ok(c)
    }
}
