//! A real DNS server in the test process (hickory-server on UDP
//! 127.0.0.1, port 0), whose records a test changes while it runs, and which
//! logs every query it receives (name, type, when).

#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hickory_server::ServerFuture;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::proto::op::{Header, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

#[derive(Default)]
struct Zone {
    /// (lower-case absolute name, record).
    records: Mutex<Vec<(String, Record)>>,
    /// Names answered SERVFAIL.
    failing: Mutex<Vec<String>>,
    log: Mutex<Vec<(String, RecordType, Instant)>>,
}

struct Handler(Arc<Zone>);

fn absolute(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());
        header.set_authoritative(true);
        let Ok(info) = request.request_info() else {
            header.set_response_code(ResponseCode::FormErr);
            let msg = builder.build_no_records(header);
            return response
                .send_response(msg)
                .await
                .unwrap_or_else(|_| header.into());
        };
        let name = absolute(&info.query.name().to_string());
        let qtype = info.query.query_type();
        self.0
            .log
            .lock()
            .unwrap()
            .push((name.clone(), qtype, Instant::now()));
        if self.0.failing.lock().unwrap().contains(&name) {
            header.set_response_code(ResponseCode::ServFail);
            let msg = builder.build_no_records(header);
            return response
                .send_response(msg)
                .await
                .unwrap_or_else(|_| header.into());
        }
        let (answers, known): (Vec<Record>, bool) = {
            let records = self.0.records.lock().unwrap();
            let known = records.iter().any(|(n, _)| *n == name);
            let answers = records
                .iter()
                .filter(|(n, r)| *n == name && r.record_type() == qtype)
                .map(|(_, r)| r.clone())
                .collect();
            (answers, known)
        };
        if !known {
            header.set_response_code(ResponseCode::NXDomain);
        }
        let msg = builder.build(
            header,
            answers.iter(),
            std::iter::empty(),
            std::iter::empty(),
            std::iter::empty(),
        );
        response
            .send_response(msg)
            .await
            .unwrap_or_else(|_| header.into())
    }
}

/// The running server.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Zone>,
    server: Option<ServerFuture<Handler>>,
}

impl DnsServer {
    /// Starts on 127.0.0.1, a free port.
    pub async fn start() -> DnsServer {
        DnsServer::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), Arc::default()).await
    }

    async fn start_on(addr: SocketAddr, zone: Arc<Zone>) -> DnsServer {
        let socket = tokio::net::UdpSocket::bind(addr).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut server = ServerFuture::new(Handler(zone.clone()));
        server.register_socket(socket);
        DnsServer {
            addr,
            zone,
            server: Some(server),
        }
    }

    /// Where it listens (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the A records of `name`.
    pub fn set_a(&self, name: &str, ips: &[Ipv4Addr], ttl: u32) {
        let n = absolute(name);
        let owner = Name::from_ascii(&n).unwrap();
        let mut records = self.zone.records.lock().unwrap();
        records.retain(|(k, r)| !(*k == n && r.record_type() == RecordType::A));
        for ip in ips {
            records.push((
                n.clone(),
                Record::from_rdata(owner.clone(), ttl, RData::A(A(*ip))),
            ));
        }
    }

    /// Replaces the AAAA records of `name`.
    pub fn set_aaaa(&self, name: &str, ips: &[Ipv6Addr], ttl: u32) {
        let n = absolute(name);
        let owner = Name::from_ascii(&n).unwrap();
        let mut records = self.zone.records.lock().unwrap();
        records.retain(|(k, r)| !(*k == n && r.record_type() == RecordType::AAAA));
        for ip in ips {
            records.push((
                n.clone(),
                Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(*ip))),
            ));
        }
    }

    /// Replaces the SRV records of `name`: (priority, weight, port, target).
    pub fn set_srv(&self, name: &str, entries: &[(u16, u16, u16, &str)], ttl: u32) {
        let n = absolute(name);
        let owner = Name::from_ascii(&n).unwrap();
        let mut records = self.zone.records.lock().unwrap();
        records.retain(|(k, r)| !(*k == n && r.record_type() == RecordType::SRV));
        for &(priority, weight, port, target) in entries {
            let target = Name::from_ascii(absolute(target)).unwrap();
            records.push((
                n.clone(),
                Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::SRV(SRV::new(priority, weight, port, target)),
                ),
            ));
        }
    }

    /// Answers SERVFAIL for `name` (or stops doing so).
    pub fn set_failing(&self, name: &str, failing: bool) {
        let n = absolute(name);
        let mut f = self.zone.failing.lock().unwrap();
        f.retain(|k| *k != n);
        if failing {
            f.push(n);
        }
    }

    /// Removes every record of `name` (it then answers NXDOMAIN).
    pub fn remove(&self, name: &str) {
        let n = absolute(name);
        self.zone.records.lock().unwrap().retain(|(k, _)| *k != n);
    }

    /// When each query for `name` arrived.
    pub fn queries(&self, name: &str, qtype: RecordType) -> Vec<Instant> {
        let n = absolute(name);
        self.zone
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, t, _)| *k == n && *t == qtype)
            .map(|(_, _, at)| *at)
            .collect()
    }

    /// Stops answering (the socket is closed; the records are kept).
    pub async fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.shutdown_gracefully().await;
        }
    }

    /// Starts again on the same port with the same records.
    pub async fn restart(&mut self) {
        self.stop().await;
        let again = DnsServer::start_on(self.addr, self.zone.clone()).await;
        self.server = again.server;
    }
}
