//! Frame codec benchmarks: decode/encode of small and 64 KiB call frames, checksum
//! verification, and fragment + reassemble of 1 KiB .. 1 MiB args.
//!
//! Run: `cargo bench --bench frame`. Figures go in the README's performance section.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio_util::codec::Decoder;

use tchan::codec::FrameCodec;
use tchan::frame::{
    ArgCollector, CallFragment, CallHead, ChecksumType, Frame, MessageWriter, Reassembler,
    ReassemblyLimits, ReqHead, Tracing, TransportHeaders,
};

fn head() -> CallHead {
    CallHead::Req(ReqHead {
        ttl: 1000,
        tracing: Tracing {
            span_id: 1,
            parent_id: 2,
            trace_id: 3,
            flags: 1,
        },
        service: Bytes::from_static(b"bench-service"),
        headers: TransportHeaders::strict([("cn", "bench"), ("as", "raw"), ("re", "c")]).unwrap(),
    })
}

fn message(arg3_len: usize, ty: ChecksumType) -> Bytes {
    let arg3 = vec![0x5a; arg3_len];
    let mut out = BytesMut::new();
    MessageWriter::write_message(&mut out, 7, head(), ty, 65535, [b"echo", &[0u8; 64], &arg3])
        .unwrap();
    out.freeze()
}

/// A single call req frame whose total size is exactly 65535 bytes.
fn full_frame(ty: ChecksumType) -> Bytes {
    let probe = message(0, ty);
    let arg3_len = 65535 - probe.len();
    let f = message(arg3_len, ty);
    assert_eq!(f.len(), 65535);
    f
}

fn decode_and_verify(frame: Bytes) -> usize {
    let Frame::CallReq(req) = Frame::decode(frame).unwrap() else {
        unreachable!()
    };
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let chunks = r.push(CallFragment::from(&req)).unwrap();
    chunks.iter().map(|c| c.data.len()).sum()
}

fn small(c: &mut Criterion) {
    let mut g = c.benchmark_group("small_call_req");
    let small64 = {
        let mut out = BytesMut::new();
        MessageWriter::write_message(
            &mut out,
            7,
            head(),
            ChecksumType::NONE,
            65535,
            [&[b'm'; 64], &[1; 64], &[2; 64]],
        )
        .unwrap();
        out.freeze()
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode/none", |b| {
        b.iter(|| Frame::decode(black_box(small64.clone())).unwrap())
    });
    g.bench_function("decode+verify/none", |b| {
        b.iter(|| decode_and_verify(black_box(small64.clone())))
    });
    let frame = Frame::decode(small64.clone()).unwrap();
    let mut buf = BytesMut::with_capacity(4096);
    g.bench_function("encode_frame", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&frame).encode(&mut buf).unwrap();
        })
    });
    g.bench_function("write_message/crc32c", |b| {
        let head = head();
        b.iter(|| {
            buf.clear();
            MessageWriter::write_message(
                &mut buf,
                7,
                head.clone(),
                ChecksumType::CRC32C,
                65535,
                [&[b'm'; 64], &[1; 64], &[2; 64]],
            )
            .unwrap();
        })
    });
    g.finish();
}

fn full(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_65535");
    g.throughput(Throughput::Bytes(65535));
    for ty in [
        ChecksumType::NONE,
        ChecksumType::CRC32,
        ChecksumType::CRC32C,
        ChecksumType::FARMHASH32,
    ] {
        let f = full_frame(ty);
        g.bench_with_input(BenchmarkId::new("decode", ty.name()), &f, |b, f| {
            b.iter(|| Frame::decode(black_box(f.clone())).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("decode+verify", ty.name()), &f, |b, f| {
            b.iter(|| decode_and_verify(black_box(f.clone())))
        });
    }
    let f = full_frame(ChecksumType::NONE);
    g.bench_function("codec_split/none", |b| {
        let mut codec = FrameCodec::new();
        b.iter(|| {
            let mut buf = BytesMut::from(&f[..]);
            codec.decode(&mut buf).unwrap().unwrap()
        })
    });
    g.finish();
}

fn fragment_reassemble(c: &mut Criterion) {
    let mut g = c.benchmark_group("fragment_reassemble");
    for size in [1024usize, 64 * 1024, 1024 * 1024] {
        let arg3 = vec![0xa5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        let mut out = BytesMut::with_capacity(size + size / 32 + 1024);
        g.bench_with_input(BenchmarkId::new("fragment/crc32c", size), &arg3, |b, a| {
            b.iter(|| {
                out.clear();
                MessageWriter::write_message(
                    &mut out,
                    9,
                    head(),
                    ChecksumType::CRC32C,
                    65535,
                    [b"echo", b"", a],
                )
                .unwrap();
            })
        });
        let mut wire = BytesMut::new();
        MessageWriter::write_message(
            &mut wire,
            9,
            head(),
            ChecksumType::CRC32C,
            65535,
            [b"echo", b"", &arg3],
        )
        .unwrap();
        let wire = wire.freeze();
        g.bench_with_input(
            BenchmarkId::new("reassemble/crc32c", size),
            &wire,
            |b, w| {
                b.iter(|| {
                    let mut codec = FrameCodec::new();
                    let mut buf = BytesMut::from(&w[..]);
                    let mut r = Reassembler::new(ReassemblyLimits::default());
                    let mut args = ArgCollector::new();
                    while let Some(f) = codec.decode(&mut buf).unwrap() {
                        let frag = match &f {
                            Frame::CallReq(x) => CallFragment::from(x),
                            Frame::CallReqContinue(x) => CallFragment::from(x),
                            _ => unreachable!(),
                        };
                        args.extend(&r.push(frag).unwrap());
                    }
                    args.into_args()
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, small, full, fragment_reassemble);
criterion_main!(benches);
