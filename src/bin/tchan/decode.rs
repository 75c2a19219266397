//! `tchan decode`: a captured byte stream as one JSON object per line.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::inspect::{self, Outcome};
use crate::{EXIT_LOCAL, read_input};

pub(crate) fn decode(file: Option<PathBuf>, hex: bool, thrift: Option<PathBuf>) -> ExitCode {
    let idl = match &thrift {
        Some(p) => match tchan::idl::Idl::load(p) {
            Ok(i) => Some(i),
            Err(e) => {
                eprintln!("tchan decode: --thrift: {e}");
                return ExitCode::from(EXIT_LOCAL);
            }
        },
        None => None,
    };
    let raw = match file {
        None => read_input(std::path::Path::new("-")),
        Some(p) => read_input(&p),
    };
    let raw = match raw {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tchan decode: cannot read input: {e}");
            return ExitCode::from(EXIT_LOCAL);
        }
    };
    let (bytes, hex_error) = if hex {
        inspect::parse_hex(&raw)
    } else {
        (raw, None)
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let outcome = inspect::decode_stream_with(&bytes, hex_error, idl.as_ref(), &mut out);
    match outcome.and_then(|o| out.flush().map(|()| o)) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::DecodeError) => ExitCode::from(1),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tchan decode: cannot write output: {e}");
            ExitCode::from(EXIT_LOCAL)
        }
    }
}
