//! The `tchan` command line: decode captured TChannel bytes (more to come).

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tchan::inspect::{self, Outcome};

/// Exit status for a local error, usage errors included.
const EXIT_LOCAL: u8 = 125;

#[derive(Parser)]
#[command(name = "tchan", version, about = "TChannel RPC tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a captured TChannel byte stream into one JSON object per line.
    ///
    /// Exit status: 0 when every byte was decoded (messages still open at the
    /// end are reported as "incomplete"); 1 after a decode_error line; 125 on a
    /// local error (unreadable input, bad usage).
    Decode {
        /// The capture; `-` or absent reads stdin.
        file: Option<PathBuf>,
        /// The input is hex text (whitespace ignored, either case).
        #[arg(long)]
        hex: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_LOCAL } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Decode { file, hex } => decode(file, hex),
    }
}

fn decode(file: Option<PathBuf>, hex: bool) -> ExitCode {
    let mut raw = Vec::new();
    let read = match file.as_deref() {
        None => io::stdin().read_to_end(&mut raw),
        Some(p) if p.as_os_str() == "-" => io::stdin().read_to_end(&mut raw),
        Some(p) => std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut raw)),
    };
    if let Err(e) = read {
        eprintln!("tchan decode: cannot read input: {e}");
        return ExitCode::from(EXIT_LOCAL);
    }
    let (bytes, hex_error) = if hex {
        inspect::parse_hex(&raw)
    } else {
        (raw, None)
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let outcome = inspect::decode_stream(&bytes, hex_error, &mut out);
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
